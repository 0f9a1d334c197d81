//! OpenID Connect sign-in (Artifactory 7.73+): providers (`POST /access/api/v1/oidc`), their
//! identity mappings (`POST /access/api/v1/oidc/{provider}/identity_mappings`), and the
//! token exchange `POST /access/api/v1/oidc/token` (RFC 8693 token-exchange grant).
//!
//! The exchange reads the provider's issuer documents over HTTP
//! (`{issuer_url}/.well-known/openid-configuration`, then its `jwks_uri`), verifies the JWT's
//! signature with the key its `kid` names (RS256 or ES384, via `jsonwebtoken`), its `iss`,
//! its `aud` (against the provider's audience, when set) and `exp`/`nbf` (against the
//! registry's clock, so tests can move past expiry), then mints a token for the
//! highest-priority mapping whose claims the token carries.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Shared;
use super::auth::Caller;
use super::federation::{AccessError, IdentityMapping, OidcProvider};

const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// `POST /access/api/v1/oidc` `{name, issuer_url, audience?, provider_type?, description?}`.
pub(super) async fn create_provider(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, AccessError> {
    shared.federation.require_admin(&caller)?;
    let provider: OidcProvider = serde_json::from_slice(&body)
        .map_err(|error| AccessError::bad_request(format!("Invalid OIDC provider: {error}")))?;
    if provider.name.is_empty() || url::Url::parse(&provider.issuer_url).is_err() {
        return Err(AccessError::bad_request(
            "An OIDC provider needs a name and an absolute issuer_url",
        ));
    }
    let mut data = shared.federation.data();
    if data.providers.contains_key(&provider.name) {
        return Err(AccessError::new(
            StatusCode::CONFLICT,
            format!("OIDC provider '{}' already exists", provider.name),
        ));
    }
    data.providers
        .insert(provider.name.clone(), provider.clone());
    Ok((StatusCode::CREATED, axum::Json(provider)).into_response())
}

/// `GET /access/api/v1/oidc/{provider}` (admin).
pub(super) async fn get_provider(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Response, AccessError> {
    shared.federation.require_admin(&caller)?;
    let provider = shared.federation.data().providers.get(&name).cloned();
    provider
        .map(|provider| axum::Json(provider).into_response())
        .ok_or_else(|| provider_not_found(&name))
}

fn provider_not_found(name: &str) -> AccessError {
    AccessError::not_found(format!("OIDC provider '{name}' was not found"))
}

/// `POST /access/api/v1/oidc/{provider}/identity_mappings`
/// `{name, priority, claims{…}, token_spec{username, scope?, audience?, expires_in?}}`.
pub(super) async fn create_mapping(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(provider): Path<String>,
    body: Bytes,
) -> Result<Response, AccessError> {
    shared.federation.require_admin(&caller)?;
    let mapping: IdentityMapping = serde_json::from_slice(&body)
        .map_err(|error| AccessError::bad_request(format!("Invalid identity mapping: {error}")))?;
    if !(60..=86_400).contains(&mapping.token_spec.expires_in) {
        return Err(AccessError::bad_request(
            "token_spec.expires_in must be between 60 and 86400 seconds",
        ));
    }
    let mut data = shared.federation.data();
    if !data.providers.contains_key(&provider) {
        return Err(provider_not_found(&provider));
    }
    let mappings = data.mappings.entry(provider).or_default();
    if mappings
        .iter()
        .any(|existing| existing.name == mapping.name)
    {
        return Err(AccessError::new(
            StatusCode::CONFLICT,
            format!("Identity mapping '{}' already exists", mapping.name),
        ));
    }
    mappings.push(mapping.clone());
    Ok((StatusCode::CREATED, axum::Json(mapping)).into_response())
}

#[derive(Deserialize)]
pub(super) struct ExchangeRequest {
    grant_type: Option<String>,
    subject_token_type: Option<String>,
    subject_token: Option<String>,
    provider_name: Option<String>,
    identity_mapping_name: Option<String>,
}

/// Whether a token's claim satisfies a mapping's expected value: equal, a member of an array
/// claim, or (an expected string ending in `*`) a prefix of it.
fn claim_matches(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Array(values), _) => values.iter().any(|value| claim_matches(value, expected)),
        (Value::String(actual), Value::String(expected)) => match expected.strip_suffix('*') {
            Some(prefix) => actual.starts_with(prefix),
            None => actual == expected,
        },
        _ => actual == expected,
    }
}

fn unauthorized(why: impl std::fmt::Display) -> AccessError {
    AccessError::unauthorized(format!("Failed to verify the OIDC token: {why}"))
}

/// The issuer's JWK set, through its openid-configuration.
async fn issuer_keys(shared: &Shared, issuer_url: &str) -> Result<JwkSet, AccessError> {
    let http = &shared.federation.http;
    let configuration_url = format!(
        "{}/.well-known/openid-configuration",
        issuer_url.trim_end_matches('/')
    );
    let fetch_failed =
        |what: &str| unauthorized(format!("could not read {what} of issuer {issuer_url}"));
    let configuration: Value = http
        .get(&configuration_url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|_| fetch_failed("the openid-configuration"))?
        .json()
        .await
        .map_err(|_| fetch_failed("the openid-configuration"))?;
    let jwks_uri = configuration["jwks_uri"]
        .as_str()
        .ok_or_else(|| fetch_failed("the jwks_uri"))?;
    http.get(jwks_uri)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|_| fetch_failed("the JWKS"))?
        .json()
        .await
        .map_err(|_| fetch_failed("the JWKS"))
}

/// `POST /access/api/v1/oidc/token`.
pub(super) async fn exchange(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<Response, AccessError> {
    let request: ExchangeRequest = serde_json::from_slice(&body)
        .map_err(|error| AccessError::bad_request(format!("Invalid token request: {error}")))?;
    if request.grant_type.as_deref() != Some(TOKEN_EXCHANGE_GRANT) {
        return Err(AccessError::bad_request(format!(
            "Unsupported grant_type: expected {TOKEN_EXCHANGE_GRANT}"
        )));
    }
    if request.subject_token_type.as_deref() != Some(ID_TOKEN_TYPE) {
        return Err(AccessError::bad_request(format!(
            "Unsupported subject_token_type: expected {ID_TOKEN_TYPE}"
        )));
    }
    let (Some(token), Some(provider_name)) = (request.subject_token, request.provider_name) else {
        return Err(AccessError::bad_request(
            "subject_token and provider_name are required",
        ));
    };
    let provider = shared
        .federation
        .data()
        .providers
        .get(&provider_name)
        .cloned();
    let provider = provider.ok_or_else(|| provider_not_found(&provider_name))?;

    let header = jsonwebtoken::decode_header(&token).map_err(|_| unauthorized("not a JWT"))?;
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES384) {
        return Err(unauthorized(format!(
            "unsupported signing algorithm {:?}",
            header.alg
        )));
    }
    let keys = issuer_keys(&shared, &provider.issuer_url).await?;
    let jwk = header
        .kid
        .as_deref()
        .and_then(|kid| keys.find(kid))
        .ok_or_else(|| unauthorized("no key of the issuer's JWKS matches the token's kid"))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|_| unauthorized("unusable issuer key"))?;
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[provider.issuer_url.as_str()]);
    match &provider.audience {
        Some(audience) => validation.set_audience(&[audience.as_str()]),
        None => validation.validate_aud = false,
    }
    // Expiry is checked below against the registry's clock.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    let claims = jsonwebtoken::decode::<Value>(&token, &key, &validation)
        .map_err(|error| match error.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => unauthorized("invalid signature"),
            jsonwebtoken::errors::ErrorKind::InvalidAudience => unauthorized(format!(
                "the token's audience is not {}",
                provider.audience.as_deref().unwrap_or("")
            )),
            jsonwebtoken::errors::ErrorKind::InvalidIssuer => {
                unauthorized(format!("the token's issuer is not {}", provider.issuer_url))
            }
            _ => unauthorized(error),
        })?
        .claims;
    let now = shared.clock.now().unix_timestamp();
    match claims["exp"].as_i64() {
        Some(exp) if exp > now => {}
        _ => return Err(unauthorized("the token has expired")),
    }
    if claims["nbf"].as_i64().is_some_and(|nbf| nbf > now) {
        return Err(unauthorized("the token is not valid yet"));
    }

    let mut mappings = shared
        .federation
        .data()
        .mappings
        .get(&provider.name)
        .cloned()
        .unwrap_or_default();
    mappings.sort_by_key(|mapping| std::cmp::Reverse(mapping.priority));
    let mapping = mappings
        .into_iter()
        .filter(|mapping| {
            request
                .identity_mapping_name
                .as_deref()
                .is_none_or(|name| name == mapping.name)
        })
        .find(|mapping| {
            mapping.claims.iter().all(|(name, expected)| {
                claims
                    .get(name)
                    .is_some_and(|actual| claim_matches(actual, expected))
            })
        });
    let Some(mapping) = mapping else {
        return Err(unauthorized(format!(
            "no identity mapping of provider '{}' matches the token (sub: {})",
            provider.name,
            claims["sub"].as_str().unwrap_or("none")
        )));
    };
    let spec = mapping.token_spec;
    let lifetime = Duration::from_secs(spec.expires_in).min(shared.max_token_lifetime);
    let minted = shared.tokens.mint(
        &spec.username,
        &spec.scope,
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
        "issued_token_type": ACCESS_TOKEN_TYPE,
        "username": spec.username,
    }))
    .into_response())
}

impl super::MockRegistry {
    /// Adds an OIDC provider, as `POST /access/api/v1/oidc` does.
    pub fn add_oidc_provider(&self, provider: OidcProvider) {
        self.shared
            .federation
            .data()
            .providers
            .insert(provider.name.clone(), provider);
    }

    /// Adds an identity mapping to `provider`, as
    /// `POST /access/api/v1/oidc/{provider}/identity_mappings` does.
    pub fn add_identity_mapping(&self, provider: &str, mapping: IdentityMapping) {
        self.shared
            .federation
            .data()
            .mappings
            .entry(provider.to_owned())
            .or_default()
            .push(mapping);
    }
}

#[cfg(test)]
mod tests {
    use super::claim_matches;
    use serde_json::json;

    #[test]
    fn claims_match_exactly_by_prefix_or_in_arrays() {
        assert!(claim_matches(
            &json!("arn:aws:iam::1:role/a"),
            &json!("arn:aws:iam::1:role/a")
        ));
        assert!(claim_matches(
            &json!("arn:aws:iam::1:role/a"),
            &json!("arn:aws:iam::1:*")
        ));
        assert!(claim_matches(&json!(["x", "y"]), &json!("y")));
        assert!(!claim_matches(
            &json!("arn:aws:iam::2:role/a"),
            &json!("arn:aws:iam::1:*")
        ));
    }
}
