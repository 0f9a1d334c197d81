//! Secrets Manager (AWS JSON 1.1, `X-Amz-Target: secretsmanager.GetSecretValue`) and the
//! JSON 1.1 plumbing SSM shares with it: signature check, access policy, error bodies.
//!
//! Only the worker's own credentials are served, and only for secrets its role may read
//! (see `identity`); a job's artifact credentials get `AccessDeniedException`, as a role
//! scoped to the artifact bucket would.

use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::Sandbox;
use super::aws_auth::{self, AuthFailure};
use super::aws_json;
use super::identity::WORKER_SECRET_PREFIX;
use super::model::{CallOutcome, RecordedCall};
use super::sigv4;
use super::state::CredentialScope;

const TARGET_PREFIX: &str = "secretsmanager.";

/// True for requests signed for `secretsmanager` (used by the combined router).
pub(crate) fn is_secrets_request(request: &Request) -> bool {
    sigv4::parse(request.headers())
        .is_ok_and(|authorization| authorization.service == "secretsmanager")
}

/// A JSON 1.1 error: HTTP status, `__type`, and the message under the key the service uses
/// (`Message` for Secrets Manager, `message` for SSM).
pub(crate) struct JsonError {
    pub(crate) status: StatusCode,
    pub(crate) error_type: String,
    pub(crate) message: String,
}

impl JsonError {
    pub(crate) fn new(error_type: &str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error_type: error_type.to_owned(),
            message: message.into(),
        }
    }

    fn from_auth(failure: &AuthFailure) -> Self {
        let error_type = match failure {
            AuthFailure::Missing => "MissingAuthenticationTokenException",
            AuthFailure::Malformed(_) => "IncompleteSignatureException",
            AuthFailure::UnknownKey | AuthFailure::BadSessionToken => "UnrecognizedClientException",
            AuthFailure::ExpiredToken => "ExpiredTokenException",
            AuthFailure::Stale(_) | AuthFailure::BadSignature => "InvalidSignatureException",
        };
        Self {
            status: StatusCode::BAD_REQUEST,
            error_type: error_type.to_owned(),
            message: failure.message(),
        }
    }

    pub(crate) fn into_response(self, message_key: &str) -> Response {
        let mut body = serde_json::Map::new();
        body.insert("__type".to_owned(), json!(self.error_type));
        body.insert(message_key.to_owned(), json!(self.message));
        aws_json::response(self.status, &Value::Object(body), aws_json::JSON_1_1)
    }
}

/// A verified JSON 1.1 call: its operation, body and the caller's scope.
pub(crate) struct JsonCall {
    pub(crate) operation: String,
    pub(crate) body: Value,
    pub(crate) scope: CredentialScope,
}

/// Reads and verifies a JSON 1.1 request whose target starts with `target_prefix`.
pub(crate) async fn read_call(
    sandbox: &Sandbox,
    request: Request,
    target_prefix: &str,
) -> (Option<String>, String, Result<JsonCall, JsonError>) {
    let (parts, body) = request.into_parts();
    let operation = target_operation(&parts, target_prefix);
    let access_key_id = sigv4::parse(&parts.headers)
        .ok()
        .map(|authorization| authorization.access_key_id);
    let result = async {
        let body = to_bytes(body, 64 * 1024)
            .await
            .map_err(|error| JsonError::new("SerializationException", error.to_string()))?;
        let verified = aws_auth::verify(sandbox, &parts, &body, OffsetDateTime::now_utc())
            .map_err(|failure| JsonError::from_auth(&failure))?;
        let body: Value = serde_json::from_slice(&body)
            .map_err(|error| JsonError::new("SerializationException", error.to_string()))?;
        Ok(JsonCall {
            operation: operation.clone(),
            body,
            scope: verified.credential.scope,
        })
    }
    .await;
    (access_key_id, operation, result)
}

fn target_operation(parts: &Parts, target_prefix: &str) -> String {
    parts
        .headers
        .get("x-amz-target")
        .and_then(|value| value.to_str().ok())
        .and_then(|target| target.strip_prefix(target_prefix))
        .unwrap_or("")
        .to_owned()
}

/// AWS's text for a call no policy allows.
pub(crate) fn access_denied(
    sandbox: &Sandbox,
    scope: &CredentialScope,
    action: &str,
    resource: &str,
) -> JsonError {
    JsonError::new(
        "AccessDeniedException",
        format!(
            "User: {} is not authorized to perform: {action} on resource: {resource} because \
             no identity-based policy allows the {action} action",
            super::sts::caller_arn(sandbox, scope)
        ),
    )
}

/// Records the call in the sandbox's log.
pub(crate) fn record(
    sandbox: &Sandbox,
    service: &str,
    operation: String,
    access_key_id: Option<String>,
    outcome: CallOutcome,
) {
    sandbox.inner.state().calls.push(RecordedCall::Aws {
        service: service.to_owned(),
        operation,
        access_key_id,
        outcome,
    });
}

/// The axum handler for Secrets Manager requests.
pub(crate) async fn handle(State(sandbox): State<Sandbox>, request: Request) -> Response {
    let (access_key_id, operation, call) = read_call(&sandbox, request, TARGET_PREFIX).await;
    let result = call.and_then(|call| match call.operation.as_str() {
        "GetSecretValue" => get_secret_value(&sandbox, &call),
        other => Err(JsonError::new(
            "UnknownOperationException",
            format!("The sandbox's Secrets Manager does not implement {other}"),
        )),
    });
    let (outcome, response) = match result {
        Ok(value) => (
            CallOutcome::Ok,
            aws_json::response(StatusCode::OK, &value, aws_json::JSON_1_1),
        ),
        Err(error) => (
            CallOutcome::Error(error.error_type.clone()),
            error.into_response("Message"),
        ),
    };
    record(
        &sandbox,
        "secretsmanager",
        operation,
        access_key_id,
        outcome,
    );
    response
}

/// `GetSecretValue {SecretId, VersionId?, VersionStage?}` → `{ARN, Name, VersionId,
/// SecretString, VersionStages, CreatedDate}`.
fn get_secret_value(sandbox: &Sandbox, call: &JsonCall) -> Result<Value, JsonError> {
    const ACTION: &str = "secretsmanager:GetSecretValue";
    let Some(secret_id) = call.body.get("SecretId").and_then(Value::as_str) else {
        return Err(JsonError::new(
            "ValidationException",
            "1 validation error detected: Value null at 'secretId' failed to satisfy \
             constraint: Member must not be null",
        ));
    };
    let data = sandbox.inner.identity.data();
    let secret = data.secret(secret_id);
    let config = &sandbox.inner.config;
    // What the policy is evaluated against: the secret's ARN, or the ARN the name would have.
    let resource = secret.map_or_else(
        || {
            if secret_id.starts_with("arn:") {
                secret_id.to_owned()
            } else {
                format!(
                    "arn:aws:secretsmanager:{}:{}:secret:{secret_id}",
                    config.region, config.account_id
                )
            }
        },
        |secret| secret.arn.clone(),
    );
    let name = secret.map_or_else(
        || {
            secret_id
                .rsplit_once(":secret:")
                .map_or(secret_id, |(_, name)| name)
                .to_owned()
        },
        |secret| secret.name.clone(),
    );
    let denied = data.denied.contains(secret_id)
        || data.denied.contains(&name)
        || data.denied.contains(&resource);
    let allowed = matches!(call.scope, CredentialScope::Worker)
        && name.starts_with(WORKER_SECRET_PREFIX)
        && !denied;
    if !allowed {
        return Err(access_denied(sandbox, &call.scope, ACTION, &resource));
    }
    let Some(secret) = secret else {
        return Err(JsonError::new(
            "ResourceNotFoundException",
            "Secrets Manager can't find the specified secret.",
        ));
    };
    let stage = call.body.get("VersionStage").and_then(Value::as_str);
    if stage.is_some_and(|stage| stage != "AWSCURRENT") {
        return Err(JsonError::new(
            "ResourceNotFoundException",
            format!(
                "Secrets Manager can't find the specified secret value for staging label: {}",
                stage.unwrap_or_default()
            ),
        ));
    }
    let version = call.body.get("VersionId").and_then(Value::as_str);
    if version.is_some_and(|version| version != secret.version_id) {
        return Err(JsonError::new(
            "ResourceNotFoundException",
            format!(
                "Secrets Manager can't find the specified secret value for VersionId: {}",
                version.unwrap_or_default()
            ),
        ));
    }
    Ok(json!({
        "ARN": secret.arn,
        "Name": secret.name,
        "VersionId": secret.version_id,
        "SecretString": secret.value,
        "VersionStages": ["AWSCURRENT"],
        "CreatedDate": epoch_seconds(secret.created),
    }))
}

/// A timestamp as JSON 1.1 sends it: epoch seconds with a fraction.
pub(crate) fn epoch_seconds(time: OffsetDateTime) -> f64 {
    let millis = i64::try_from(time.unix_timestamp_nanos() / 1_000_000).unwrap_or_default();
    // Milliseconds fit f64's 53-bit mantissa exactly for the next 285,000 years.
    #[allow(clippy::cast_precision_loss)]
    let seconds = millis as f64 / 1000.0;
    seconds
}
