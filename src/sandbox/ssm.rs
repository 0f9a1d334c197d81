//! SSM Parameter Store (AWS JSON 1.1, `X-Amz-Target: AmazonSSM.GetParameter`).
//!
//! A `SecureString` read without `WithDecryption` answers its KMS ciphertext (base64), as AWS
//! does; with it, the plain value. Names that form a path must start with `/` (AWS answers a
//! `ValidationException` otherwise). Access as in `secrets`: the worker's role only, on
//! `/pipeline-publisher/…` unless denied.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::Sandbox;
use super::aws_json;
use super::identity::WORKER_PARAMETER_PREFIX;
use super::model::CallOutcome;
use super::secrets::{JsonCall, JsonError, access_denied, epoch_seconds, read_call, record};
use super::sigv4;
use super::state::CredentialScope;

const TARGET_PREFIX: &str = "AmazonSSM.";

/// True for requests signed for `ssm` (used by the combined router).
pub(crate) fn is_ssm_request(request: &Request) -> bool {
    sigv4::parse(request.headers()).is_ok_and(|authorization| authorization.service == "ssm")
}

/// The axum handler for SSM requests.
pub(crate) async fn handle(State(sandbox): State<Sandbox>, request: Request) -> Response {
    let (access_key_id, operation, call) = read_call(&sandbox, request, TARGET_PREFIX).await;
    let result = call.and_then(|call| match call.operation.as_str() {
        "GetParameter" => get_parameter(&sandbox, &call),
        other => Err(JsonError::new(
            "UnknownOperationException",
            format!("The sandbox's SSM does not implement {other}"),
        )),
    });
    let (outcome, response) = match result {
        Ok(value) => (
            CallOutcome::Ok,
            aws_json::response(StatusCode::OK, &value, aws_json::JSON_1_1),
        ),
        Err(error) => (
            CallOutcome::Error(error.error_type.clone()),
            error.into_response("message"),
        ),
    };
    record(&sandbox, "ssm", operation, access_key_id, outcome);
    response
}

/// True for names SSM accepts: `name` or `/a/b/name`, segments of `[A-Za-z0-9._-]`; a name
/// without a path may not start with `aws` or `ssm` (paths under `/aws/` are public ones).
fn is_valid_name(name: &str) -> bool {
    let (hierarchical, rest) = match name.strip_prefix('/') {
        Some(rest) => (true, rest),
        None => (false, name),
    };
    let lower = rest.to_ascii_lowercase();
    !rest.is_empty()
        && (hierarchical || !rest.contains('/'))
        && (hierarchical || !(lower.starts_with("aws") || lower.starts_with("ssm")))
        && rest.split('/').all(|segment| {
            !segment.is_empty()
                && segment
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        })
}

/// `GetParameter {Name, WithDecryption?}` → `{Parameter: {Name, Type, Value, Version,
/// LastModifiedDate, ARN, DataType}}`.
fn get_parameter(sandbox: &Sandbox, call: &JsonCall) -> Result<Value, JsonError> {
    const ACTION: &str = "ssm:GetParameter";
    let Some(name) = call.body.get("Name").and_then(Value::as_str) else {
        return Err(JsonError::new(
            "ValidationException",
            "1 validation error detected: Value null at 'name' failed to satisfy constraint: \
             Member must not be null",
        ));
    };
    if !is_valid_name(name) {
        return Err(JsonError::new(
            "ValidationException",
            "Parameter name: can't be prefixed with \"ssm\" (case-insensitive). If formed as a \
             path, it can consist of sub-paths divided by slash symbol; each sub-path can be \
             formed as a mix of letters, numbers and the following 3 symbols .-_",
        ));
    }
    let config = &sandbox.inner.config;
    let arn = format!(
        "arn:aws:ssm:{}:{}:parameter/{}",
        config.region,
        config.account_id,
        name.trim_start_matches('/')
    );
    let data = sandbox.inner.identity.data();
    let allowed = matches!(call.scope, CredentialScope::Worker)
        && name.starts_with(WORKER_PARAMETER_PREFIX)
        && !data.denied.contains(name)
        && !data.denied.contains(&arn);
    if !allowed {
        return Err(access_denied(sandbox, &call.scope, ACTION, &arn));
    }
    let Some(parameter) = data.parameters.get(name) else {
        return Err(JsonError::new("ParameterNotFound", ""));
    };
    let decrypt = call
        .body
        .get("WithDecryption")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let (kind, value) = match (parameter.secure, decrypt) {
        (false, _) => ("String", &parameter.value),
        (true, true) => ("SecureString", &parameter.value),
        (true, false) => ("SecureString", &parameter.ciphertext),
    };
    Ok(json!({
        "Parameter": {
            "Name": name,
            "Type": kind,
            "Value": value,
            "Version": parameter.version,
            "LastModifiedDate": epoch_seconds(parameter.modified),
            "ARN": arn,
            "DataType": "text",
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::is_valid_name;

    #[test]
    fn names_follow_ssms_rules() {
        assert!(is_valid_name("/pipeline-publisher/registry"));
        assert!(is_valid_name("plain-name"));
        assert!(!is_valid_name("pipeline-publisher/registry"));
        assert!(!is_valid_name("ssm-things"));
        assert!(!is_valid_name("/a//b"));
        assert!(!is_valid_name("/a/b c"));
    }
}
