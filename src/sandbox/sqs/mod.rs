//! SQS (AWS JSON 1.0, `POST /` with `X-Amz-Target: AmazonSQS.<Operation>`, as
//! `aws-sdk-sqs` sends it with `x-amzn-query-mode: true`): `ReceiveMessage` with long polling,
//! `DeleteMessage`, `ChangeMessageVisibility`, `SendMessage`, `GetQueueUrl` and
//! `GetQueueAttributes`, for the fleet's wake-up queue.
//!
//! Queues live in the fleet's account (the sandbox's own); only its worker credentials may
//! use them, as the fleet template's queue policy and role allow. Errors carry the
//! query-compatible code in `x-amzn-query-error` (`AWS.SimpleQueueService.NonExistentQueue;Sender`),
//! which is what the SDK reports as the error code.

use std::time::Duration;

use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::Value;

mod error;
mod operations;
mod queue;

use super::Sandbox;
use super::aws_auth;
use super::aws_json;
use super::fleet::SqsFault;
use super::model::{CallOutcome, RecordedCall};
use super::sigv4;
use super::state::CredentialScope;
use error::SqsError;
use operations::{
    change_message_visibility, delete_message, get_queue_attributes, get_queue_url,
    receive_message, send_message,
};
pub(crate) use queue::Queue;
pub use queue::QueueCounts;

/// `X-Amz-Target` is `AmazonSQS.<Operation>`.
const TARGET_PREFIX: &str = "AmazonSQS.";
/// SQS's message size limit is 256 KiB; a request is never much more.
const MAX_REQUEST_BYTES: usize = 1024 * 1024;
/// A queue's default `VisibilityTimeout`.
const DEFAULT_VISIBILITY: Duration = Duration::from_secs(30);

/// True for `POST /` with an `AmazonSQS.` target (checked before the job API).
pub(crate) fn is_sqs_request(request: &Request) -> bool {
    request.method() == axum::http::Method::POST
        && request
            .headers()
            .get("x-amz-target")
            .and_then(|value| value.to_str().ok())
            .is_some_and(|target| target.starts_with(TARGET_PREFIX))
}

/// The axum handler for SQS requests.
pub(crate) async fn handle(State(sandbox): State<Sandbox>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let operation = parts
        .headers
        .get("x-amz-target")
        .and_then(|value| value.to_str().ok())
        .and_then(|target| target.strip_prefix(TARGET_PREFIX))
        .unwrap_or("")
        .to_owned();
    let result = match to_bytes(body, MAX_REQUEST_BYTES).await {
        Ok(body) => answer(&sandbox, &parts, &operation, &body).await,
        Err(error) => Err(SqsError::invalid_parameter(error.to_string())),
    };
    let messages = result.as_ref().map_or(0, |value| {
        value
            .get("Messages")
            .and_then(Value::as_array)
            .map_or(0, Vec::len)
    });
    sandbox.inner.state().calls.push(RecordedCall::Sqs {
        operation,
        outcome: match &result {
            Ok(_) => CallOutcome::Ok,
            Err(error) => CallOutcome::Error(error.code.to_owned()),
        },
        messages,
    });
    match result {
        Ok(value) => aws_json::response(StatusCode::OK, &value, aws_json::JSON_1_0),
        Err(error) => error.into_response(),
    }
}

async fn answer(
    sandbox: &Sandbox,
    parts: &Parts,
    operation: &str,
    body: &[u8],
) -> Result<Value, SqsError> {
    authenticate(sandbox, parts, body, operation)?;
    take_fault(sandbox, operation)?;
    match operation {
        "ReceiveMessage" => receive_message(sandbox, parse(body)?).await,
        "DeleteMessage" => delete_message(sandbox, parse(body)?),
        "ChangeMessageVisibility" => change_message_visibility(sandbox, parse(body)?),
        "SendMessage" => send_message(sandbox, parse(body)?),
        "GetQueueUrl" => get_queue_url(sandbox, parse(body)?),
        "GetQueueAttributes" => get_queue_attributes(sandbox, parse(body)?),
        other => Err(SqsError::new(
            StatusCode::BAD_REQUEST,
            "com.amazonaws.sqs#UnsupportedOperation",
            "AWS.SimpleQueueService.UnsupportedOperation",
            format!("The sandbox does not implement SQS operation '{other}'"),
        )),
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, SqsError> {
    serde_json::from_slice(body).map_err(|error| {
        SqsError::new(
            StatusCode::BAD_REQUEST,
            "com.amazon.coral.service#SerializationException",
            "SerializationException",
            error.to_string(),
        )
    })
}

/// Signature, live credentials, and the fleet's own worker identity (the only one the
/// queue policy and the fleet role allow).
fn authenticate(
    sandbox: &Sandbox,
    parts: &Parts,
    body: &[u8],
    operation: &str,
) -> Result<(), SqsError> {
    let invalid_token = || {
        SqsError::new(
            StatusCode::FORBIDDEN,
            "com.amazon.coral.service#UnrecognizedClientException",
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        )
    };
    let authorization = sigv4::parse(&parts.headers).map_err(|_| {
        SqsError::new(
            StatusCode::FORBIDDEN,
            "com.amazon.coral.service#MissingAuthenticationTokenException",
            "MissingAuthenticationToken",
            "Missing Authentication Token",
        )
    })?;
    if authorization.service != "sqs" || !sandbox.serves_region(&authorization.region) {
        return Err(SqsError::new(
            StatusCode::FORBIDDEN,
            "com.amazon.coral.service#InvalidSignatureException",
            "SignatureDoesNotMatch",
            format!(
                "Credential should be scoped to a valid region and service 'sqs', not '{}/{}'.",
                authorization.region, authorization.service
            ),
        ));
    }
    let credential = aws_auth::issued_key(sandbox, &authorization, &parts.headers)
        .map_err(|_| invalid_token())?;
    if !aws_auth::body_signed_by(&authorization, &credential, parts, body) {
        return Err(SqsError::new(
            StatusCode::FORBIDDEN,
            "com.amazon.coral.service#InvalidSignatureException",
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        ));
    }
    let config = &sandbox.inner.config;
    let caller = match &credential.scope {
        CredentialScope::Worker => return Ok(()),
        CredentialScope::Job(job_id) => format!(
            "arn:aws:sts::{}:assumed-role/CodePipelineArtifactAccess/{job_id}",
            config.account_id
        ),
        CredentialScope::Assumed(session) => session.arn(),
    };
    let resource = format!(
        "arn:aws:sqs:{}:{}:*",
        authorization.region, config.account_id
    );
    Err(SqsError::access_denied(&caller, operation, &resource))
}

/// Answers the fault set by `fail_sqs`, counting it down.
fn take_fault(sandbox: &Sandbox, operation: &str) -> Result<(), SqsError> {
    let mut state = sandbox.inner.state();
    let Some((fault, remaining)) = state.fleet.sqs_fault else {
        return Ok(());
    };
    state.fleet.sqs_fault = match remaining {
        Some(0 | 1) => None,
        Some(n) => Some((fault, Some(n - 1))),
        None => Some((fault, None)),
    };
    if remaining == Some(0) {
        return Ok(());
    }
    let config = &sandbox.inner.config;
    Err(match fault {
        SqsFault::Unavailable => SqsError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "com.amazon.coral.availability#ServiceUnavailableException",
            "ServiceUnavailable",
            "Service is unavailable. Please try again later.",
        ),
        SqsFault::AccessDenied => SqsError::access_denied(
            &sandbox.worker_caller_arn(),
            operation,
            &format!("arn:aws:sqs:{}:{}:*", config.region, config.account_id),
        ),
    })
}
