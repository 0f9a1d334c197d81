//! The CodePipeline job API over HTTP (AWS JSON 1.1): authentication, throttling, dispatch
//! on `X-Amz-Target`, JSON error bodies, and the call log.

use std::time::SystemTime;

use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::Sandbox;
use super::aws_auth;
use super::aws_json;
use super::fleet::{Caller, credential_account};
use super::model::{CallOutcome, RecordedCall};
use super::sigv4::{self, AuthorizationError};
use super::state::CredentialScope;

/// `X-Amz-Target` is `CodePipeline_20150709.<Operation>`.
const TARGET_PREFIX: &str = "CodePipeline_20150709.";
/// Job API requests are small; anything larger is not a job worker talking.
const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// An error answered as HTTP 400 `{"__type": kind, "message": message}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) kind: &'static str,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn validation(message: String) -> Self {
        Self::new("ValidationException", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "__type": self.kind, "message": self.message });
        let status = if self.kind == "ServiceUnavailableException" {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::BAD_REQUEST
        };
        aws_json::response(status, &body, aws_json::JSON_1_1)
    }
}

/// True when a request is meant for the job API (used by the combined router).
pub(crate) fn is_job_api_request(request: &Request) -> bool {
    request.method() == axum::http::Method::POST
        && request.uri().path() == "/"
        && request.headers().contains_key("x-amz-target")
}

/// The axum handler for `POST /`.
pub(crate) async fn handle(State(sandbox): State<Sandbox>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let operation = parts
        .headers
        .get("x-amz-target")
        .and_then(|value| value.to_str().ok())
        .and_then(|target| target.strip_prefix(TARGET_PREFIX))
        .unwrap_or("")
        .to_owned();
    let body = match to_bytes(body, MAX_REQUEST_BYTES).await {
        Ok(body) => body,
        Err(error) => {
            let error = ApiError::new("SerializationException", error.to_string());
            sandbox.record_job_call(&operation, None, (None, None), Err(&error));
            return error.into_response();
        }
    };
    let job_id = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|value| value.get("jobId")?.as_str().map(str::to_owned));

    let authenticated = authenticate(&sandbox, &parts, &body, &operation);
    let caller = authenticated.as_ref().ok().cloned();
    let result = authenticated
        .and_then(|caller| take_throttle(&sandbox).map(|()| caller))
        .and_then(|caller| take_rate_limit(&sandbox, &caller).map(|()| caller))
        .and_then(|caller| {
            super::list_action_types::dispatch(&sandbox, &caller, &operation, &body)
        });
    let signed_region = sigv4::parse(&parts.headers).ok().map(|auth| auth.region);
    sandbox.record_job_call(
        &operation,
        job_id.as_deref(),
        (caller.map(|caller| caller.account_id), signed_region),
        result.as_ref().map(|_| ()),
    );
    match result {
        Ok(value) => aws_json::response(StatusCode::OK, &value, aws_json::JSON_1_1),
        Err(error) => error.into_response(),
    }
}

/// Checks the SigV4 signature and that the key is the worker's or an assumed member role's
/// (job credentials are scoped to S3, as CodePipeline's artifact credentials are); returns
/// the account and region the caller sees.
fn authenticate(
    sandbox: &Sandbox,
    parts: &axum::http::request::Parts,
    body: &[u8],
    operation: &str,
) -> Result<Caller, ApiError> {
    let config = &sandbox.inner.config;
    let authorization = sigv4::parse(&parts.headers).map_err(|error| match error {
        AuthorizationError::Missing => ApiError::new(
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ),
        AuthorizationError::Malformed(why) => ApiError::new(
            "IncompleteSignatureException",
            format!("Authorization header requires AWS4-HMAC-SHA256 SigV4 fields: {why}"),
        ),
    })?;
    if authorization.service != "codepipeline" {
        return Err(ApiError::new(
            "InvalidSignatureException",
            "Credential should be scoped to correct service: 'codepipeline'. ",
        ));
    }
    if !sandbox.serves_region(&authorization.region) {
        return Err(ApiError::new(
            "InvalidSignatureException",
            format!(
                "Credential should be scoped to a valid region, not '{}'. ",
                authorization.region
            ),
        ));
    }
    let credential =
        aws_auth::issued_key(sandbox, &authorization, &parts.headers).map_err(|_| {
            ApiError::new(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
        })?;
    if !aws_auth::body_signed_by(&authorization, &credential, parts, body) {
        return Err(ApiError::new(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method. Consult the service \
             documentation for details.",
        ));
    }
    if let CredentialScope::Job(job_id) = &credential.scope {
        return Err(ApiError::new(
            "AccessDeniedException",
            format!(
                "User: arn:aws:sts::{}:assumed-role/CodePipelineArtifactAccess/{job_id} is not \
                 authorized to perform: codepipeline:{operation}",
                config.account_id
            ),
        ));
    }
    let account_id = credential_account(sandbox, &credential, SystemTime::now()).map_err(|_| {
        ApiError::new(
            "ExpiredTokenException",
            "The security token included in the request is expired",
        )
    })?;
    Ok(Caller {
        account_id,
        region: authorization.region,
    })
}

/// Answers ThrottlingException while `throttle_next` has calls left.
fn take_throttle(sandbox: &Sandbox) -> Result<(), ApiError> {
    let mut state = sandbox.inner.state();
    if state.unavailable_remaining > 0 {
        state.unavailable_remaining -= 1;
        return Err(ApiError::new(
            "ServiceUnavailableException",
            "Service is unavailable",
        ));
    }
    if state.throttle_remaining > 0 {
        state.throttle_remaining -= 1;
        return Err(ApiError::new("ThrottlingException", "Rate exceeded"));
    }
    Ok(())
}

/// Answers ThrottlingException when the caller's account is over its rate limit.
fn take_rate_limit(sandbox: &Sandbox, caller: &Caller) -> Result<(), ApiError> {
    let mut state = sandbox.inner.state();
    let allowed = state
        .fleet
        .rate_limits
        .get_mut(&caller.account_id)
        .is_none_or(|bucket| bucket.take(tokio::time::Instant::now()));
    if allowed {
        Ok(())
    } else {
        Err(ApiError::new("ThrottlingException", "Rate exceeded"))
    }
}

impl Sandbox {
    /// Logs a job-API call; a refused result call is also kept on its job.
    fn record_job_call(
        &self,
        operation: &str,
        job_id: Option<&str>,
        (account, region): (Option<String>, Option<String>),
        result: Result<(), &ApiError>,
    ) {
        let mut state = self.inner.state();
        if let (Err(error), Some(job_id)) = (result, job_id)
            && matches!(operation, "PutJobSuccessResult" | "PutJobFailureResult")
            && let Some(job) = state.job_mut(job_id)
        {
            job.rejected_results
                .push((error.kind.to_owned(), error.message.clone()));
        }
        state.calls.push(RecordedCall::JobApi {
            operation: operation.to_owned(),
            job_id: job_id.map(str::to_owned),
            outcome: match result {
                Ok(()) => CallOutcome::Ok,
                Err(error) => CallOutcome::Error(error.kind.to_owned()),
            },
            account,
            region,
        });
    }
}
