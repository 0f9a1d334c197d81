//! Artifactory's error responses: `{"errors":[{"status":N,"message":"..."}]}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// An error answered the way Artifactory answers it: a status and a message in its JSON envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ApiError {
    /// HTTP status, repeated inside the body as Artifactory does.
    pub(super) status: StatusCode,
    /// Human-readable message; clients show it to users, so it mirrors Artifactory's wording.
    pub(super) message: String,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub(super) fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    pub(super) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    pub(super) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub(super) fn too_large(limit_bytes: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Request body exceeds the limit of {limit_bytes} bytes"),
        )
    }

    /// A failure of the mock itself (disk full, unreadable store); the cause is logged, not sent.
    pub(super) fn internal(context: &str, cause: &dyn std::fmt::Display) -> Self {
        tracing::warn!(%cause, "mock registry: {context}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, context.to_string())
    }
}

/// An error from the npm API. npm shows a registry's `error` field, so the body carries the
/// message there as well as in Artifactory's `errors` envelope (which other clients read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NpmError(pub(super) ApiError);

impl From<ApiError> for NpmError {
    fn from(error: ApiError) -> Self {
        Self(error)
    }
}

impl IntoResponse for NpmError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": self.0.message,
            "errors": [{ "status": self.0.status.as_u16(), "message": self.0.message }]
        });
        (self.0.status, axum::Json(body)).into_response()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "errors": [{ "status": self.status.as_u16(), "message": self.message }]
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Artifactory Realm\""),
            );
        }
        response
    }
}
