//! The middleware every request passes: it resolves the credential, answers 503 while the
//! registry is "down", records the request for inspection and logs it at debug level
//! (never a credential value).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Shared;
use super::auth::{Caller, resolve_caller};
use super::error::ApiError;
use super::model::{RecordedRequest, RequestAuth};
use super::multipart::MultipartState;
use super::store::lock;

/// Headers whose values are credentials and are recorded as `****`.
const SECRET_HEADERS: [&str; 6] = [
    "authorization",
    "x-amz-security-token",
    "cookie",
    "x-jfrog-art-api",
    "proxy-authorization",
    "x-checksum-deploy-token",
];

fn recorded_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            let name = name.as_str().to_ascii_lowercase();
            let value = if SECRET_HEADERS.contains(&name.as_str()) {
                "****".to_string()
            } else {
                String::from_utf8_lossy(value.as_bytes()).into_owned()
            };
            (name, value)
        })
        .collect()
}

fn auth_kind(auth: &RequestAuth) -> &'static str {
    match auth {
        RequestAuth::Anonymous => "anonymous",
        RequestAuth::Basic { .. } => "basic",
        RequestAuth::Bearer { .. } => "token",
        RequestAuth::Rejected => "rejected",
    }
}

pub(super) async fn front_door(
    State(shared): State<Arc<Shared>>,
    mut request: Request,
    next: Next,
) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    let query = request.uri().query().map(str::to_string);
    let headers = recorded_headers(request.headers());
    // The AWS token exchange carries a SigV4 `Authorization` that is STS's to check.
    // The AWS token exchange carries a SigV4 `Authorization` that is STS's to check; multipart
    // calls after `create` carry the upload's own token, which their handlers check.
    let caller =
        if path == super::aws_token::AWS_TOKEN_PATH || MultipartState::uses_upload_token(&path) {
            Ok(Caller::Anonymous)
        } else {
            resolve_caller(
                request.headers(),
                &shared.users,
                &shared.tokens,
                shared.clock.now(),
            )
        };
    let (auth, response) = if shared.unavailable.load(Ordering::Relaxed) {
        let auth = caller
            .map(|caller| caller.request_auth())
            .unwrap_or(RequestAuth::Rejected);
        let error = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
        (auth, error.into_response())
    } else {
        match caller {
            Ok(caller) => {
                let auth = caller.request_auth();
                request.extensions_mut().insert(caller);
                (auth, next.run(request).await)
            }
            Err(error) => (RequestAuth::Rejected, error.into_response()),
        }
    };
    let status = response.status().as_u16();
    tracing::debug!(
        %method,
        %path,
        query = query.as_deref().unwrap_or(""),
        auth = auth_kind(&auth),
        status,
        "mock registry request"
    );
    lock(&shared.requests).push(RecordedRequest {
        method,
        path,
        query,
        auth,
        status,
        headers,
    });
    response
}
