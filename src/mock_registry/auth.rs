//! Credentials: the registry of minted access tokens and the resolution of an
//! `Authorization` header (basic `user:password`, basic `user:token`, `Bearer token`) into a caller.

use std::sync::Mutex;
use std::time::Duration;

use axum::http::{HeaderMap, header};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use time::OffsetDateTime;

use super::error::ApiError;
use super::model::{RequestAuth, TokenRecord};
use super::store::lock;

/// Who made a request, once its credential has been verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Caller {
    Anonymous,
    /// Authenticated with the user's password.
    Password {
        username: String,
    },
    /// Authenticated with an access token (bearer or as the basic-auth password).
    Token {
        username: String,
        token_id: String,
    },
}

impl Caller {
    pub(super) fn username(&self) -> Option<&str> {
        match self {
            Self::Anonymous => None,
            Self::Password { username } | Self::Token { username, .. } => Some(username),
        }
    }

    pub(super) fn request_auth(&self) -> RequestAuth {
        match self {
            Self::Anonymous => RequestAuth::Anonymous,
            Self::Password { username } => RequestAuth::Basic {
                username: username.clone(),
            },
            Self::Token { token_id, .. } => RequestAuth::Bearer {
                token_id: token_id.clone(),
            },
        }
    }

    /// The authenticated user, or the 401 Artifactory answers anonymous writers with.
    pub(super) fn require_user(&self) -> Result<&str, ApiError> {
        self.username()
            .ok_or_else(|| ApiError::unauthorized("Authentication is required"))
    }
}

/// A minted token with its secret values.
struct IssuedToken {
    record: TokenRecord,
    access_token: String,
    refresh_token: Option<String>,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("IssuedToken")
            .field("record", &self.record)
            .field("access_token", &"****")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "****"),
            )
            .finish()
    }
}

/// What a client receives when a token is minted.
pub(super) struct MintedToken {
    pub(super) token_id: String,
    pub(super) access_token: String,
    pub(super) refresh_token: Option<String>,
    /// Lifetime in whole seconds as reported in `expires_in`.
    pub(super) expires_in: u64,
    pub(super) scope: String,
}

/// Outcome of a revocation, mapped to 200 / 204 by the endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Revocation {
    Revoked,
    AlreadyRevokedOrUnknown,
}

/// All tokens minted since start (tokens are not persisted).
#[derive(Debug, Default)]
pub(super) struct TokenRegistry {
    tokens: Mutex<Vec<IssuedToken>>,
}

fn random_text(bytes: usize) -> String {
    let random: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    URL_SAFE_NO_PAD.encode(random)
}

fn random_token_id() -> String {
    let hex = hex::encode(rand::random::<[u8; 16]>());
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

impl TokenRegistry {
    /// Mints a token valid for `lifetime` from `now`.
    pub(super) fn mint(
        &self,
        username: &str,
        scope: &str,
        lifetime: Duration,
        now: OffsetDateTime,
        refreshable: bool,
        legacy: bool,
    ) -> MintedToken {
        let token_id = random_token_id();
        let access_token = format!("mockreg.{}", random_text(48));
        let refresh_token = refreshable.then(|| random_text(32));
        let lifetime_time = time::Duration::try_from(lifetime).unwrap_or(time::Duration::MAX);
        let record = TokenRecord {
            token_id: token_id.clone(),
            username: username.to_string(),
            scope: scope.to_string(),
            expires_at: now.checked_add(lifetime_time).unwrap_or(now),
            revoked: false,
            legacy,
        };
        lock(&self.tokens).push(IssuedToken {
            record,
            access_token: access_token.clone(),
            refresh_token: refresh_token.clone(),
        });
        MintedToken {
            token_id,
            access_token,
            refresh_token,
            expires_in: lifetime.as_secs() + u64::from(lifetime.subsec_nanos() > 0),
            scope: scope.to_string(),
        }
    }

    /// Checks a token value; the error is Artifactory's 401.
    pub(super) fn verify(&self, value: &str, now: OffsetDateTime) -> Result<TokenRecord, ApiError> {
        let tokens = lock(&self.tokens);
        let issued = tokens
            .iter()
            .find(|issued| issued.access_token == value)
            .ok_or_else(|| ApiError::unauthorized("Token failed verification: parse"))?;
        if issued.record.revoked {
            Err(ApiError::unauthorized("Token failed verification: revoked"))
        } else if now >= issued.record.expires_at {
            Err(ApiError::unauthorized("Token failed verification: expired"))
        } else {
            Ok(issued.record.clone())
        }
    }

    /// The id of the token with this value, if it was minted here.
    pub(super) fn id_of(&self, value: &str) -> Option<String> {
        lock(&self.tokens)
            .iter()
            .find(|issued| issued.access_token == value)
            .map(|issued| issued.record.token_id.clone())
    }

    /// The owner of a token id, if known.
    pub(super) fn owner_of(&self, token_id: &str) -> Option<String> {
        lock(&self.tokens)
            .iter()
            .find(|issued| issued.record.token_id == token_id)
            .map(|issued| issued.record.username.clone())
    }

    pub(super) fn revoke(&self, token_id: &str) -> Revocation {
        let mut tokens = lock(&self.tokens);
        match tokens
            .iter_mut()
            .find(|issued| issued.record.token_id == token_id)
        {
            Some(issued) if !issued.record.revoked => {
                issued.record.revoked = true;
                Revocation::Revoked
            }
            _ => Revocation::AlreadyRevokedOrUnknown,
        }
    }

    pub(super) fn token_values(&self) -> Vec<String> {
        lock(&self.tokens)
            .iter()
            .map(|issued| issued.access_token.clone())
            .collect()
    }

    pub(super) fn records(&self) -> Vec<TokenRecord> {
        lock(&self.tokens)
            .iter()
            .map(|issued| issued.record.clone())
            .collect()
    }
}

/// Resolves the `Authorization` header into a caller; a credential that is present but
/// wrong is a 401 even where anonymous access would be allowed (as Artifactory does).
pub(super) fn resolve_caller(
    headers: &HeaderMap,
    users: &[(String, String)],
    tokens: &TokenRegistry,
    now: OffsetDateTime,
) -> Result<Caller, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(Caller::Anonymous);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("Malformed Authorization header"))?;
    let (scheme, credential) = value.trim().split_once(' ').unwrap_or((value, ""));
    let credential = credential.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        let record = tokens.verify(credential, now)?;
        return Ok(Caller::Token {
            username: record.username,
            token_id: record.token_id,
        });
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(ApiError::unauthorized(format!(
            "Unsupported authorization scheme '{scheme}'"
        )));
    }
    let decoded = STANDARD
        .decode(credential)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| ApiError::unauthorized("Malformed basic authentication"))?;
    let (username, secret) = decoded
        .split_once(':')
        .ok_or_else(|| ApiError::unauthorized("Malformed basic authentication"))?;
    if users
        .iter()
        .any(|(name, password)| name == username && password == secret)
    {
        return Ok(Caller::Password {
            username: username.to_string(),
        });
    }
    if tokens.id_of(secret).is_some() {
        let record = tokens.verify(secret, now)?;
        if record.username == username {
            return Ok(Caller::Token {
                username: record.username,
                token_id: record.token_id,
            });
        }
    }
    Err(ApiError::unauthorized("Bad credentials"))
}
