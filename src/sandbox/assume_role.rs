//! STS `AssumeRole` (AWS Query protocol: a form-encoded `POST /`, XML answers): the fleet's
//! worker credentials assume a member account's role and get temporary credentials that the
//! job API accepts for that account only.
//!
//! Checked as STS does: the SigV4 signature, then the role's trust (only the fleet's
//! long-term worker credentials are trusted, never job or assumed-role credentials), the
//! `ExternalId` its trust policy requires, and `DurationSeconds` between
//! `SandboxConfig::min_assume_role_duration` (STS: 900 s) and the role's maximum session
//! (one hour). Every refusal of trust is the same 403 `AccessDenied`, as STS gives no hint.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::Sandbox;
use super::aws_auth;
use super::fleet::AssumedSession;
use super::ids;
use super::model::{CallOutcome, RecordedCall};
use super::sigv4;
use super::state::{Credential, CredentialScope};

/// STS's own limit on `DurationSeconds` (12 hours); a role's own maximum is usually lower.
const MAX_DURATION_SECONDS: u64 = 43_200;
/// `DurationSeconds` when the request does not say (STS: one hour, capped by the role).
const DEFAULT_DURATION_SECONDS: u64 = 3600;

/// An STS error: HTTP status, `Code` and `Message`.
struct StsError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl StsError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "ValidationError", message)
    }
}

fn xml(status: StatusCode, body: String) -> Response {
    let mut response = (status, Body::from(body)).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    response
}

impl IntoResponse for StsError {
    fn into_response(self) -> Response {
        let kind = if self.status.is_server_error() {
            "Receiver"
        } else {
            "Sender"
        };
        xml(
            self.status,
            format!(
                "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>\
                 <Type>{kind}</Type><Code>{}</Code><Message>{}</Message></Error>\
                 <RequestId>{}</RequestId></ErrorResponse>",
                self.code,
                escape(&self.message),
                ids::uuid()
            ),
        )
    }
}

/// The form fields of an AssumeRole request.
#[derive(Default)]
struct AssumeRoleInput {
    role_arn: Option<String>,
    role_session_name: Option<String>,
    external_id: Option<String>,
    duration_seconds: Option<String>,
}

/// Answers the request when it is `Action=AssumeRole`; `None` for any other STS action.
pub(crate) fn handle(sandbox: &Sandbox, parts: &Parts, body: &[u8]) -> Option<Response> {
    let mut action = None;
    let mut input = AssumeRoleInput::default();
    for (name, value) in url::form_urlencoded::parse(body) {
        let value = Some(value.into_owned());
        match name.as_ref() {
            "Action" => action = value,
            "RoleArn" => input.role_arn = value,
            "RoleSessionName" => input.role_session_name = value,
            "ExternalId" => input.external_id = value,
            "DurationSeconds" => input.duration_seconds = value,
            _ => {}
        }
    }
    if action.as_deref() != Some("AssumeRole") {
        return None;
    }
    let role_arn = input.role_arn.clone();
    let result = assume_role(sandbox, parts, body, input);
    let outcome = match &result {
        Ok(_) => CallOutcome::Ok,
        Err(error) => CallOutcome::Error(error.code.to_owned()),
    };
    sandbox.inner.state().calls.push(RecordedCall::Sts {
        operation: "AssumeRole".to_owned(),
        role_arn,
        outcome,
    });
    Some(match result {
        Ok(body) => xml(StatusCode::OK, body),
        Err(error) => error.into_response(),
    })
}

/// The account GetCallerIdentity names for credentials of `scope`.
pub(crate) fn identity_account(sandbox: &Sandbox, scope: &CredentialScope) -> String {
    match scope {
        CredentialScope::Assumed(session) => session.account_id.clone(),
        _ => sandbox.inner.config.account_id.clone(),
    }
}

fn assume_role(
    sandbox: &Sandbox,
    parts: &Parts,
    body: &[u8],
    input: AssumeRoleInput,
) -> Result<String, StsError> {
    let caller = authenticate(sandbox, parts, body)?;
    let (role_arn, session_name, external_id, duration) = validate(sandbox, input)?;
    let caller_arn = super::sts::caller_arn(sandbox, &caller.scope);
    let denied = || {
        StsError::new(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            format!(
                "User: {caller_arn} is not authorized to perform: sts:AssumeRole on resource: \
                 {role_arn}"
            ),
        )
    };
    let mut state = sandbox.inner.state();
    let role = state
        .fleet
        .roles
        .get(&role_arn)
        .cloned()
        .ok_or_else(denied)?;
    // The trust policy names the fleet's role (here: its worker identity) and nothing else.
    let trusted = caller.scope == CredentialScope::Worker;
    let external_id_ok = role.external_id.is_none() || role.external_id == external_id;
    if !trusted || role.denied || !external_id_ok {
        return Err(denied());
    }
    if duration > role.max_session {
        return Err(StsError::validation(
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
        ));
    }
    let expires_at = whole_seconds(SystemTime::now() + duration);
    let session = AssumedSession {
        account_id: role.account_id.clone(),
        role_arn: role_arn.clone(),
        session_name: session_name.clone(),
        expires_at,
    };
    let access_key_id = ids::access_key_id("ASIA");
    let secret = ids::secret_access_key();
    let token = ids::session_token();
    let assumed_arn = session.arn();
    state.credentials.insert(
        access_key_id.clone(),
        Credential {
            secret: secret.clone(),
            session_token: Some(token.clone()),
            scope: CredentialScope::Assumed(session),
            revoked: false,
        },
    );
    drop(state);
    let role_id = ids::access_key_id("AROA");
    Ok(format!(
        "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
         <AssumeRoleResult>\
         <AssumedRoleUser><AssumedRoleId>{role_id}:{session}</AssumedRoleId>\
         <Arn>{arn}</Arn></AssumedRoleUser>\
         <Credentials><AccessKeyId>{access_key_id}</AccessKeyId>\
         <SecretAccessKey>{secret}</SecretAccessKey><SessionToken>{token}</SessionToken>\
         <Expiration>{expiration}</Expiration></Credentials>\
         </AssumeRoleResult>\
         <ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>\
         </AssumeRoleResponse>",
        session = escape(&session_name),
        arn = escape(&assumed_arn),
        expiration = iso8601(expires_at),
        request_id = ids::uuid(),
    ))
}

/// Checks the signature; returns the caller's credential.
fn authenticate(sandbox: &Sandbox, parts: &Parts, body: &[u8]) -> Result<Credential, StsError> {
    let forbidden = |code, message: &str| StsError::new(StatusCode::FORBIDDEN, code, message);
    let authorization = sigv4::parse(&parts.headers).map_err(|_| {
        forbidden(
            "MissingAuthenticationToken",
            "Request is missing Authentication Token",
        )
    })?;
    let invalid_token = || {
        forbidden(
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        )
    };
    let credential = aws_auth::issued_key(sandbox, &authorization, &parts.headers)
        .map_err(|_| invalid_token())?;
    if !aws_auth::body_signed_by(&authorization, &credential, parts, body) {
        return Err(forbidden(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method. Consult the service \
             documentation for details.",
        ));
    }
    if let CredentialScope::Assumed(session) = &credential.scope
        && session.expires_at <= SystemTime::now()
    {
        return Err(StsError::new(
            StatusCode::BAD_REQUEST,
            "ExpiredToken",
            "The security token included in the request is expired",
        ));
    }
    Ok(credential)
}

/// (role ARN, session name, external id, duration) after STS's constraint checks.
fn validate(
    sandbox: &Sandbox,
    input: AssumeRoleInput,
) -> Result<(String, String, Option<String>, Duration), StsError> {
    let mut violations = Vec::new();
    let mut check =
        |field: &str, value: Option<&String>, min: usize, max: usize, extra: &str| match value {
            None if min > 0 => violations.push(format!(
                "Value null at '{field}' failed to satisfy constraint: Member must not be null"
            )),
            Some(value) if value.len() < min || value.len() > max => violations.push(format!(
                "Value '{value}' at '{field}' failed to satisfy constraint: Member must have \
                 length between {min} and {max}"
            )),
            Some(value)
                if !value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || extra.contains(c)) =>
            {
                violations.push(format!(
                    "Value '{value}' at '{field}' failed to satisfy constraint: Member must \
                     satisfy regular expression pattern: [\\w{extra}]*"
                ));
            }
            _ => {}
        };
    check("roleArn", input.role_arn.as_ref(), 20, 2048, "+=,.@:/-_");
    check(
        "roleSessionName",
        input.role_session_name.as_ref(),
        2,
        64,
        "+=,.@-_",
    );
    check(
        "externalId",
        input.external_id.as_ref(),
        0,
        1224,
        "+=,.@:/-_",
    );
    let min = sandbox.inner.config.min_assume_role_duration.as_secs();
    let duration = match input.duration_seconds.as_deref() {
        None => DEFAULT_DURATION_SECONDS,
        Some(text) => match text.parse::<u64>() {
            Ok(seconds) if (min..=MAX_DURATION_SECONDS).contains(&seconds) => seconds,
            _ => {
                violations.push(format!(
                    "Value '{text}' at 'durationSeconds' failed to satisfy constraint: Member \
                     must have value between {min} and {MAX_DURATION_SECONDS}"
                ));
                0
            }
        },
    };
    if !violations.is_empty() {
        let count = violations.len();
        let noun = if count == 1 { "error" } else { "errors" };
        return Err(StsError::validation(format!(
            "{count} validation {noun} detected: {}",
            violations.join("; ")
        )));
    }
    Ok((
        input.role_arn.unwrap_or_default(),
        input.role_session_name.unwrap_or_default(),
        input.external_id,
        Duration::from_secs(duration.max(1)),
    ))
}

/// `time` without its sub-second part, so the sandbox and the `Expiration` it sends agree.
fn whole_seconds(time: SystemTime) -> SystemTime {
    let seconds = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    UNIX_EPOCH + Duration::from_secs(seconds)
}

/// `2026-12-02T04:05:06Z`, as STS writes `Expiration`.
fn iso8601(time: SystemTime) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::from(time)
        .format(&format)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

/// Escapes text for an XML element.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
