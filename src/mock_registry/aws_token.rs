//! AWS IAM role sign-in (Artifactory 7.90.10+): the admin's role mappings
//! (`PUT /access/api/v1/aws/iam_role`, `GET`/`DELETE /access/api/v1/aws/iam_role/{username}`)
//! and the exchange `POST /access/api/v1/aws/token[?region=…]`.
//!
//! The exchange receives the headers of an STS `GetCallerIdentity` request the client signed
//! (`GET /?Action=GetCallerIdentity&Version=2011-06-15` with an empty body, as JFrog's
//! secret-rotator Lambda signs it) and replays them to STS, as JFrog does: STS alone can tell
//! whether the signature is good, and answers whose it is. `assumed-role/{name}/{session}` is
//! turned into the role ARN, which must be mapped to a user; that user gets a token.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Shared;
use super::auth::Caller;
use super::federation::AccessError;

/// The token endpoint's path (the front door does not read its SigV4 `Authorization`).
pub(super) const AWS_TOKEN_PATH: &str = "/access/api/v1/aws/token";

/// Scope of the tokens this exchange mints.
const TOKEN_SCOPE: &str = "applied-permissions/user";

/// The request JFrog replays (and so the one clients must sign).
pub const STS_REPLAY_QUERY: &str = "Action=GetCallerIdentity&Version=2011-06-15";

fn require_supported(shared: &Shared) -> Result<(), AccessError> {
    if shared.federation.aws_token_supported {
        Ok(())
    } else {
        // An Artifactory older than 7.90.10 has no such endpoint.
        Err(AccessError::not_found("Not Found"))
    }
}

/// True for `arn:aws:iam::<12 digits>:role/<name>` with JFrog's name characters
/// (`^arn:aws:iam::\d{12}:role/[\w+=,.@:-]+$`).
pub(super) fn is_role_arn(arn: &str) -> bool {
    let Some(rest) = arn.strip_prefix("arn:aws:iam::") else {
        return false;
    };
    let Some((account, name)) = rest.split_once(":role/") else {
        return false;
    };
    account.len() == 12
        && account.bytes().all(|byte| byte.is_ascii_digit())
        && !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || "_+=,.@:-".contains(c))
}

#[derive(Deserialize)]
pub(super) struct IamRoleBody {
    username: Option<String>,
    iam_role: Option<String>,
}

/// `PUT /access/api/v1/aws/iam_role` `{"username", "iam_role"}` (admin).
pub(super) async fn put_iam_role(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, AccessError> {
    require_supported(&shared)?;
    shared.federation.require_admin(&caller)?;
    let body: IamRoleBody = serde_json::from_slice(&body)
        .map_err(|error| AccessError::bad_request(format!("Invalid JSON body: {error}")))?;
    let (Some(username), Some(iam_role)) = (body.username, body.iam_role) else {
        return Err(AccessError::bad_request(
            "Both 'username' and 'iam_role' are required",
        ));
    };
    if !is_role_arn(&iam_role) {
        return Err(AccessError::bad_request(format!(
            "Invalid IAM role '{iam_role}': it must match ^arn:aws:iam::\\d{{12}}:role/[\\w+=,.@:-]+$ \
             (a role ARN, not an assumed-role session)"
        )));
    }
    shared
        .federation
        .data()
        .iam_roles
        .insert(username, iam_role);
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], "").into_response())
}

/// `GET /access/api/v1/aws/iam_role/{username}` (admin) → `{"username", "iam_role"}`.
pub(super) async fn get_iam_role(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(username): Path<String>,
) -> Result<Response, AccessError> {
    require_supported(&shared)?;
    shared.federation.require_admin(&caller)?;
    let role = shared.federation.data().iam_roles.get(&username).cloned();
    match role {
        Some(iam_role) => {
            Ok(axum::Json(json!({ "username": username, "iam_role": iam_role })).into_response())
        }
        None => Err(AccessError::not_found(format!(
            "No AWS IAM role is assigned to user '{username}'"
        ))),
    }
}

/// `DELETE /access/api/v1/aws/iam_role/{username}` (admin).
pub(super) async fn delete_iam_role(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(username): Path<String>,
) -> Result<Response, AccessError> {
    require_supported(&shared)?;
    shared.federation.require_admin(&caller)?;
    match shared.federation.data().iam_roles.remove(&username) {
        Some(_) => Ok(StatusCode::NO_CONTENT.into_response()),
        None => Err(AccessError::not_found(format!(
            "No AWS IAM role is assigned to user '{username}'"
        ))),
    }
}

#[derive(Deserialize)]
pub(super) struct RegionQuery {
    region: Option<String>,
}

/// `expires_in` as a number or a numeric string (JFrog's Lambda sends the latter).
fn requested_lifetime(body: &[u8], max: Duration) -> Result<Duration, AccessError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(max);
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|error| AccessError::bad_request(format!("Invalid JSON body: {error}")))?;
    let seconds = match value.get("expires_in") {
        None | Some(Value::Null) => None,
        Some(Value::Number(number)) => number.as_u64(),
        Some(Value::String(text)) => text.trim().parse::<u64>().ok(),
        Some(_) => None,
    };
    match (value.get("expires_in"), seconds) {
        (None | Some(Value::Null), _) => Ok(max),
        (Some(_), Some(0)) => Ok(max),
        (Some(_), Some(seconds)) => Ok(Duration::from_secs(seconds).min(max)),
        (Some(other), None) => Err(AccessError::bad_request(format!(
            "Invalid 'expires_in': {other}"
        ))),
    }
}

/// `arn:aws:sts::A:assumed-role/N/S` → `arn:aws:iam::A:role/N`; IAM role ARNs stay as they are.
pub(super) fn role_arn_of(caller_arn: &str) -> Option<String> {
    if is_role_arn(caller_arn) {
        return Some(caller_arn.to_owned());
    }
    let rest = caller_arn.strip_prefix("arn:aws:sts::")?;
    let (account, session) = rest.split_once(":assumed-role/")?;
    let (name, _session) = session.split_once('/')?;
    Some(format!("arn:aws:iam::{account}:role/{name}"))
}

/// The text of the first `<tag>…</tag>` in an STS XML answer.
fn xml_text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(xml[start..end].trim())
}

/// `POST /access/api/v1/aws/token[?region=…]` with the signed request's headers and
/// `{"expires_in": N}` → `{"token_id", "access_token", "expires_in", "scope", "token_type",
/// "username"}`.
pub(super) async fn exchange(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<RegionQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AccessError> {
    require_supported(&shared)?;
    let lifetime = requested_lifetime(&body, shared.max_token_lifetime)?;
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .filter(|value| value.starts_with("AWS4-"))
        .ok_or_else(|| {
            AccessError::unauthorized(
                "Missing AWS signature: send the headers of a SigV4-signed STS \
                 GetCallerIdentity request (Authorization, X-Amz-Date, X-Amz-Security-Token)",
            )
        })?;
    if !headers.contains_key("x-amz-date") {
        return Err(AccessError::unauthorized(
            "Missing X-Amz-Date header of the signed STS GetCallerIdentity request",
        ));
    }
    let endpoint = shared.federation.sts_endpoint.clone().unwrap_or_else(|| {
        match query.region.as_deref().filter(|region| !region.is_empty()) {
            Some(region) => format!("https://sts.{region}.amazonaws.com"),
            None => "https://sts.amazonaws.com".to_owned(),
        }
    });
    let url = format!("{}/?{STS_REPLAY_QUERY}", endpoint.trim_end_matches('/'));
    let mut replay = shared
        .federation
        .http
        .get(&url)
        .header(header::AUTHORIZATION, authorization);
    // Every header the client signed, and the AWS ones it sent, as they arrived (Host is the
    // STS endpoint's own, as it is when JFrog replays to sts.<region>.amazonaws.com).
    let mut names = signed_header_names(authorization);
    for always in ["x-amz-date", "x-amz-security-token", "x-amz-region-set"] {
        if !names.iter().any(|name| name == always) {
            names.push(always.to_owned());
        }
    }
    for name in names {
        if matches!(
            name.as_str(),
            "host" | "authorization" | "content-length" | "content-type"
        ) {
            continue;
        }
        for value in headers.get_all(name.as_str()) {
            replay = replay.header(name.as_str(), value);
        }
    }
    let answer = replay.send().await.map_err(|error| {
        tracing::warn!(%error, "mock registry: STS unreachable");
        AccessError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Failed to verify the AWS identity: AWS STS could not be reached",
        )
    })?;
    let status = answer.status();
    let text = answer.text().await.unwrap_or_default();
    if !status.is_success() {
        let code = xml_text(&text, "Code").unwrap_or("UnknownError");
        let message = xml_text(&text, "Message").unwrap_or("");
        return Err(AccessError::unauthorized(format!(
            "Failed to verify the AWS identity: AWS STS answered {} {code}: {message}",
            status.as_u16()
        )));
    }
    let caller_arn = xml_text(&text, "Arn").ok_or_else(|| {
        AccessError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Failed to verify the AWS identity: no Arn in the STS answer",
        )
    })?;
    let Some(role_arn) = role_arn_of(caller_arn) else {
        return Err(AccessError::forbidden(format!(
            "The AWS identity {caller_arn} is not an IAM role; only IAM roles can be mapped to \
             JFrog users"
        )));
    };
    let username = shared
        .federation
        .data()
        .iam_roles
        .iter()
        .find(|(_, mapped)| **mapped == role_arn)
        .map(|(username, _)| username.clone());
    let Some(username) = username else {
        return Err(AccessError::forbidden(format!(
            "No JFrog user is mapped to the AWS IAM role {role_arn}; an admin assigns it with \
             PUT /access/api/v1/aws/iam_role {{\"username\": \"<user>\", \"iam_role\": \"{role_arn}\"}}"
        )));
    };
    let minted = shared.tokens.mint(
        &username,
        TOKEN_SCOPE,
        lifetime,
        shared.clock.now(),
        false,
        false,
    );
    Ok(axum::Json(json!({
        "token_id": minted.token_id,
        "access_token": minted.access_token,
        "expires_in": minted.expires_in,
        "scope": minted.scope,
        "token_type": "Bearer",
        "username": username,
    }))
    .into_response())
}

/// The `SignedHeaders=` list of a SigV4 `Authorization` value, lower-case.
fn signed_header_names(authorization: &str) -> Vec<String> {
    authorization
        .split(',')
        .filter_map(|part| part.trim().split_once('='))
        .find(|(key, _)| key.trim().ends_with("SignedHeaders"))
        .map(|(_, value)| {
            value
                .split(';')
                .map(|name| name.trim().to_ascii_lowercase())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns() {
        assert!(is_role_arn(
            "arn:aws:iam::111122223333:role/pipeline-publisher-worker"
        ));
        assert!(!is_role_arn(
            "arn:aws:sts::111122223333:assumed-role/pipeline-publisher-worker/i-1"
        ));
        assert!(!is_role_arn("arn:aws:iam::1111:role/x"));
        assert_eq!(
            role_arn_of("arn:aws:sts::111122223333:assumed-role/worker/i-0123").as_deref(),
            Some("arn:aws:iam::111122223333:role/worker")
        );
        assert_eq!(role_arn_of("arn:aws:iam::111122223333:user/bob"), None);
    }

    #[test]
    fn signed_headers_are_read() {
        let authorization = "AWS4-HMAC-SHA256 Credential=AKID/20261202/eu-west-1/sts/aws4_request, \
                             SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=abc";
        assert_eq!(
            signed_header_names(authorization),
            ["host", "x-amz-date", "x-amz-security-token"]
        );
    }
}
