//! Token endpoints: the Access API (`/access/api/v1/tokens`, Artifactory 7.21+) and the
//! deprecated `/artifactory/api/security/token` one that older servers offer instead.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Shared;
use super::auth::{Caller, MintedToken, Revocation};
use super::error::ApiError;

/// Scope the Access API applies when none is requested.
const DEFAULT_SCOPE: &str = "applied-permissions/user";
/// Scope the legacy endpoint reports when none is requested.
const DEFAULT_LEGACY_SCOPE: &str = "api:*";

/// A token request's fields, from a form or a JSON body alike.
type FormFields = HashMap<String, String>;

/// Request fields from a JSON object or an `application/x-www-form-urlencoded` body.
fn request_fields(headers: &HeaderMap, body: &Bytes) -> Result<FormFields, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let looks_like_json = body.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b'{');
    if content_type.starts_with("application/json") || (content_type.is_empty() && looks_like_json)
    {
        let object: serde_json::Map<String, Value> = serde_json::from_slice(body)
            .map_err(|error| ApiError::bad_request(format!("Invalid JSON body: {error}")))?;
        Ok(object
            .into_iter()
            .filter_map(|(key, value)| match value {
                Value::Null => None,
                Value::String(text) => Some((key, text)),
                other => Some((key, other.to_string())),
            })
            .collect())
    } else {
        Ok(url::form_urlencoded::parse(body).into_owned().collect())
    }
}

/// The password-authenticated user minting a token for themselves.
fn minting_user<'a>(
    caller: &'a Caller,
    fields: &HashMap<String, String>,
) -> Result<&'a str, ApiError> {
    let Caller::Password { username } = caller else {
        return Err(ApiError::unauthorized(
            "Token creation requires basic authentication with the user's password",
        ));
    };
    match fields.get("username") {
        Some(requested) if requested != username => Err(ApiError::forbidden(format!(
            "User '{username}' can only create tokens for itself, not for '{requested}'"
        ))),
        _ => Ok(username),
    }
}

/// `expires_in` capped to the configured maximum; 0 or absent means the maximum.
fn token_lifetime(fields: &HashMap<String, String>, cap: Duration) -> Result<Duration, ApiError> {
    let requested = match fields.get("expires_in") {
        None => 0,
        Some(text) => text.trim().parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!("Invalid expires_in '{text}': expected seconds"))
        })?,
    };
    Ok(if requested == 0 {
        cap
    } else {
        Duration::from_secs(requested).min(cap)
    })
}

fn is_true(fields: &HashMap<String, String>, key: &str) -> bool {
    fields
        .get(key)
        .is_some_and(|value| value.eq_ignore_ascii_case("true"))
}

fn token_response(minted: MintedToken, with_id: bool) -> Response {
    let mut body = json!({
        "access_token": minted.access_token,
        "expires_in": minted.expires_in,
        "scope": minted.scope,
        "token_type": "Bearer",
    });
    if with_id {
        body["token_id"] = json!(minted.token_id);
    }
    if let Some(refresh_token) = minted.refresh_token {
        body["refresh_token"] = json!(refresh_token);
    }
    (StatusCode::OK, axum::Json(body)).into_response()
}

fn access_api_enabled(shared: &Shared) -> Result<(), ApiError> {
    if shared.access_api {
        Ok(())
    } else {
        Err(ApiError::not_found("Not Found"))
    }
}

/// `POST /access/api/v1/tokens`
pub(super) async fn create_access_token(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    access_api_enabled(&shared)?;
    let fields = request_fields(&headers, &body)?;
    let username = minting_user(&caller, &fields)?;
    let scope = fields.get("scope").map_or(DEFAULT_SCOPE, String::as_str);
    let lifetime = token_lifetime(&fields, shared.max_token_lifetime)?;
    let minted = shared.tokens.mint(
        username,
        scope,
        lifetime,
        shared.clock.now(),
        is_true(&fields, "refreshable"),
        false,
    );
    Ok(token_response(minted, true))
}

/// Revokes `token_id` for `caller`: 200 when revoked now, 204 when unknown or already revoked.
fn revoke_for(shared: &Shared, caller: &Caller, token_id: &str) -> Result<Revocation, ApiError> {
    let username = caller.require_user()?;
    match shared.tokens.owner_of(token_id) {
        None => Ok(Revocation::AlreadyRevokedOrUnknown),
        Some(owner) if owner != username => Err(ApiError::forbidden(format!(
            "User '{username}' may not revoke a token of another user"
        ))),
        Some(_) => Ok(shared.tokens.revoke(token_id)),
    }
}

/// `DELETE /access/api/v1/tokens/{token_id}` (`me` names the token authenticating the call).
pub(super) async fn revoke_access_token(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(token_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    access_api_enabled(&shared)?;
    let token_id = match (&caller, token_id.as_str()) {
        (Caller::Token { token_id, .. }, "me") => token_id.clone(),
        (_, "me") => {
            return Err(ApiError::bad_request(
                "'me' can only be revoked when authenticating with a token",
            ));
        }
        _ => token_id,
    };
    Ok(match revoke_for(&shared, &caller, &token_id)? {
        Revocation::Revoked => StatusCode::OK,
        Revocation::AlreadyRevokedOrUnknown => StatusCode::NO_CONTENT,
    })
}

/// `POST /artifactory/api/security/token` (deprecated; form body).
pub(super) async fn create_legacy_token(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let fields = request_fields(&headers, &body)?;
    let username = minting_user(&caller, &fields)?;
    let scope = fields
        .get("scope")
        .map_or(DEFAULT_LEGACY_SCOPE, String::as_str);
    let lifetime = token_lifetime(&fields, shared.max_token_lifetime)?;
    let minted = shared.tokens.mint(
        username,
        scope,
        lifetime,
        shared.clock.now(),
        is_true(&fields, "refreshable"),
        true,
    );
    Ok(token_response(minted, false))
}

/// `POST /artifactory/api/security/token/revoke` with `token=` or `token_id=`: 200 even when
/// the token is unknown or already revoked, as documented.
pub(super) async fn revoke_legacy_token(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let fields = request_fields(&headers, &body)?;
    let token_id = match (fields.get("token_id"), fields.get("token")) {
        (Some(token_id), _) => Some(token_id.clone()),
        (None, Some(token)) => shared.tokens.id_of(token),
        (None, None) => {
            return Err(ApiError::bad_request(
                "Either token or token_id is required",
            ));
        }
    };
    if let Some(token_id) = token_id {
        revoke_for(&shared, &caller, &token_id)?;
    } else {
        caller.require_user()?;
    }
    Ok(StatusCode::OK)
}
