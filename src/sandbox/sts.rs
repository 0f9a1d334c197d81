//! STS (AWS Query protocol: form-encoded `POST /` or a `GET /?Action=…` query, XML answers):
//! `GetCallerIdentity` and `GetWebIdentityToken`.
//!
//! Both verify the SigV4 signature against the keys the sandbox issued (see `aws_auth`),
//! including a forwarded `GetCallerIdentity` replayed by a registry: it verifies only while its
//! `X-Amz-Date` is within 15 minutes and only for the `Host` it was signed for.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::Sandbox;
use super::aws_auth::{self, AuthFailure};
use super::ids;
use super::model::{CallOutcome, RecordedCall};
use super::sigv4;
use super::state::CredentialScope;
use super::web_identity::SigningAlgorithm;

const NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// True for requests signed for the `sts` service (used by the combined router).
pub(crate) fn is_sts_request(request: &Request) -> bool {
    sigv4::parse(request.headers()).is_ok_and(|authorization| authorization.service == "sts")
}

/// The ARN STS reports for a credential of this scope.
pub(crate) fn caller_arn(sandbox: &Sandbox, scope: &CredentialScope) -> String {
    match scope {
        CredentialScope::Worker => sandbox.worker_caller_arn(),
        CredentialScope::Job(job_id) => format!(
            "arn:aws:sts::{}:assumed-role/CodePipelineArtifactAccess/{job_id}",
            sandbox.inner.config.account_id
        ),
    }
}

fn xml(status: StatusCode, body: String) -> Response {
    let mut response = (status, Body::from(body)).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    response
}

/// An STS error, with AWS's `ErrorResponse` envelope.
struct StsError {
    status: StatusCode,
    code: String,
    message: String,
}

impl StsError {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
        }
    }

    fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "ValidationError", message)
    }

    fn into_response(self) -> Response {
        xml(
            self.status,
            format!(
                "<ErrorResponse xmlns=\"{NAMESPACE}\"><Error><Type>Sender</Type>\
                 <Code>{}</Code><Message>{}</Message></Error>\
                 <RequestId>{}</RequestId></ErrorResponse>",
                self.code,
                xml_escape(&self.message),
                ids::uuid()
            ),
        )
    }
}

impl From<AuthFailure> for StsError {
    fn from(failure: AuthFailure) -> Self {
        let status = match failure {
            AuthFailure::Malformed(_) | AuthFailure::ExpiredToken => StatusCode::BAD_REQUEST,
            _ => StatusCode::FORBIDDEN,
        };
        Self::new(status, failure.code(), failure.message())
    }
}

pub(crate) fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The axum handler for STS requests.
pub(crate) async fn handle(State(sandbox): State<Sandbox>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = to_bytes(body, 64 * 1024).await else {
        return StsError::new(
            StatusCode::BAD_REQUEST,
            "MalformedInput",
            "request body too large",
        )
        .into_response();
    };
    let mut parameters: Vec<(String, String)> =
        url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    parameters.extend(url::form_urlencoded::parse(&body).into_owned());
    let parameter = |name: &str| {
        parameters
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let action = parameter("Action").unwrap_or("").to_owned();
    let verified = aws_auth::verify(&sandbox, &parts, &body, OffsetDateTime::now_utc());
    let access_key_id = sigv4::parse(&parts.headers)
        .ok()
        .map(|authorization| authorization.access_key_id);
    let result = match verified {
        Err(failure) => Err(StsError::from(failure)),
        Ok(verified) => match action.as_str() {
            "GetCallerIdentity" => Ok(get_caller_identity(&sandbox, &verified.credential.scope)),
            "GetWebIdentityToken" => {
                get_web_identity_token(&sandbox, &verified.credential.scope, &parameter)
            }
            other => Err(StsError::new(
                StatusCode::BAD_REQUEST,
                "InvalidAction",
                format!(
                    "Could not find operation {other} for version {}",
                    parameter("Version").unwrap_or("NO_VERSION_SPECIFIED")
                ),
            )),
        },
    };
    let (outcome, response) = match result {
        Ok(body) => (CallOutcome::Ok, xml(StatusCode::OK, body)),
        Err(error) => (
            CallOutcome::Error(error.code.clone()),
            error.into_response(),
        ),
    };
    sandbox.inner.state().calls.push(RecordedCall::Aws {
        service: "sts".to_owned(),
        operation: action,
        access_key_id,
        outcome,
    });
    response
}

fn get_caller_identity(sandbox: &Sandbox, scope: &CredentialScope) -> String {
    let account = &sandbox.inner.config.account_id;
    let arn = caller_arn(sandbox, scope);
    let user_id = match scope {
        CredentialScope::Worker => format!(
            "{}:{}",
            sandbox.inner.identity.role_id,
            super::identity::WORKER_SESSION_NAME
        ),
        CredentialScope::Job(job_id) => format!("AROACODEPIPELINEARTIFACT:{job_id}"),
    };
    format!(
        "<GetCallerIdentityResponse xmlns=\"{NAMESPACE}\">\
         <GetCallerIdentityResult><Arn>{arn}</Arn><UserId>{user_id}</UserId>\
         <Account>{account}</Account></GetCallerIdentityResult>\
         <ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata>\
         </GetCallerIdentityResponse>",
        ids::uuid()
    )
}

/// `GetWebIdentityToken`: `Audience.member.N` (1–10), `SigningAlgorithm` (`RS256`|`ES384`),
/// `DurationSeconds` (60–3600, default 300) → a JWT whose `sub` is the caller's role ARN.
fn get_web_identity_token<'a>(
    sandbox: &Sandbox,
    scope: &CredentialScope,
    parameter: &dyn Fn(&str) -> Option<&'a str>,
) -> Result<String, StsError> {
    let account = &sandbox.inner.config.account_id;
    // Only the worker's own role has `sts:GetWebIdentityToken` (and is the token's `sub`).
    if !matches!(scope, CredentialScope::Worker) {
        return Err(StsError::new(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            format!(
                "User: {} is not authorized to perform: sts:GetWebIdentityToken because no \
                 identity-based policy allows the sts:GetWebIdentityToken action",
                caller_arn(sandbox, scope)
            ),
        ));
    }
    let audiences: Vec<String> = (1..=11)
        .map_while(|index| parameter(&format!("Audience.member.{index}")).map(str::to_owned))
        .collect();
    if audiences.is_empty() {
        return Err(StsError::validation(
            "1 validation error detected: Value null at 'audience' failed to satisfy \
             constraint: Member must not be null",
        ));
    }
    if audiences.len() > 10 {
        return Err(StsError::validation(
            "1 validation error detected: Value at 'audience' failed to satisfy constraint: \
             Member must have length less than or equal to 10",
        ));
    }
    let algorithm_name = parameter("SigningAlgorithm");
    let Some(algorithm) = algorithm_name.and_then(SigningAlgorithm::parse) else {
        return Err(StsError::validation(format!(
            "1 validation error detected: Value {} at 'signingAlgorithm' failed to satisfy \
             constraint: Member must satisfy enum value set: [RS256, ES384]",
            algorithm_name.map_or("null".to_owned(), |name| format!("'{name}'"))
        )));
    };
    let duration = match parameter("DurationSeconds") {
        None => 300,
        Some(value) => match value.parse::<i64>() {
            Ok(seconds) if (60..=3600).contains(&seconds) => seconds,
            _ => {
                return Err(StsError::validation(format!(
                    "1 validation error detected: Value '{value}' at 'durationSeconds' failed \
                     to satisfy constraint: Member must have value between 60 and 3600"
                )));
            }
        },
    };
    if !sandbox.inner.identity.data().outbound_federation_enabled {
        return Err(StsError::new(
            StatusCode::FORBIDDEN,
            "OutboundWebIdentityFederationDisabledException",
            format!(
                "Outbound web identity federation is not enabled for account {account}. \
                 Enable it with iam:EnableOutboundWebIdentityFederation."
            ),
        ));
    }
    let Some(keys) = sandbox.inner.identity.keys() else {
        return Err(StsError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailure",
            "no signing keys",
        ));
    };
    let now = OffsetDateTime::now_utc();
    let issued_at = now.unix_timestamp();
    let expires_at = issued_at + duration;
    let role_arn = sandbox.worker_role_arn();
    let audience = if audiences.len() == 1 {
        json!(audiences[0])
    } else {
        json!(audiences)
    };
    let claims = json!({
        "iss": sandbox.oidc_issuer_url(),
        "sub": role_arn,
        "aud": audience,
        "iat": issued_at,
        "nbf": issued_at,
        "exp": expires_at,
        "jti": ids::uuid(),
        "https://sts.amazonaws.com/": {
            "aws_account": account,
            "source_region": sandbox.inner.config.region,
            "principal_id": role_arn,
            "role_session_name": super::identity::WORKER_SESSION_NAME,
        },
    });
    let token = keys.sign(algorithm, &claims).map_err(|error| {
        StsError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailure",
            error.to_string(),
        )
    })?;
    sandbox
        .inner
        .identity
        .data()
        .web_identity_tokens
        .push(token.clone());
    let expiration = OffsetDateTime::from_unix_timestamp(expires_at)
        .ok()
        .and_then(|time| time.format(&Rfc3339).ok())
        .unwrap_or_default();
    Ok(format!(
        "<GetWebIdentityTokenResponse xmlns=\"{NAMESPACE}\"><GetWebIdentityTokenResult>\
         <WebIdentityToken>{token}</WebIdentityToken><Expiration>{expiration}</Expiration>\
         </GetWebIdentityTokenResult><ResponseMetadata><RequestId>{}</RequestId>\
         </ResponseMetadata></GetWebIdentityTokenResponse>",
        ids::uuid()
    ))
}
