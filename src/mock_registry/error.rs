//! The mock's error responses, in the two envelopes JFrog answers with: Artifactory's
//! `{"errors":[{"status":N,"message":"..."}]}` ([`ApiError`]) and the Access service's
//! `{"errors":[{"code":"...","message":"..."}]}` ([`AccessError`]). One type builds both; only
//! the rendering differs.

use std::marker::PhantomData;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// An error answered the way JFrog answers it: a status and a message, in the JSON envelope of
/// the service `E` ([`Artifactory`] or [`Access`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Reply<E> {
    /// HTTP status, repeated inside the body (as a number or a code, by service).
    pub(super) status: StatusCode,
    /// Human-readable message; clients show it to users, so it mirrors JFrog's wording.
    pub(super) message: String,
    envelope: PhantomData<E>,
}

/// Artifactory's REST API (`/artifactory/api/...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Artifactory {}

/// JFrog Access (`/access/api/...`): tokens, AWS and OIDC sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {}

/// An error of Artifactory's API.
pub(super) type ApiError = Reply<Artifactory>;
/// An error of the Access service.
pub(super) type AccessError = Reply<Access>;

impl<E> Reply<E> {
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            envelope: PhantomData,
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

    /// The response: `body` at the status, with the service's `realm` challenge on a 401.
    fn render(self, body: serde_json::Value, realm: &'static str) -> Response {
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(realm));
        }
        response
    }
}

impl ApiError {
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

impl AccessError {
    /// Access names its statuses instead of numbering them.
    fn code(&self) -> &'static str {
        match self.status {
            StatusCode::BAD_REQUEST => "BAD_REQUEST",
            StatusCode::UNAUTHORIZED => "UNAUTHORIZED",
            StatusCode::FORBIDDEN => "FORBIDDEN",
            StatusCode::NOT_FOUND => "NOT_FOUND",
            StatusCode::CONFLICT => "CONFLICT",
            StatusCode::BAD_GATEWAY => "BAD_GATEWAY",
            _ => "INTERNAL_SERVER_ERROR",
        }
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
        self.render(body, "Basic realm=\"Artifactory Realm\"")
    }
}

impl IntoResponse for AccessError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "errors": [{ "code": self.code(), "message": self.message }]
        });
        self.render(body, "Bearer realm=\"JFrog Access\"")
    }
}
