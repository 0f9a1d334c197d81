//! Passwordless sign-in state shared by `aws_token` and `oidc`: IAM role → user mappings,
//! OIDC providers and their identity mappings, the admin check their configuration endpoints
//! use. Their errors are the Access service's ([`AccessError`]).

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::auth::Caller;
pub(super) use super::error::AccessError;
use super::store::lock;

/// An OIDC provider (`POST /access/api/v1/oidc`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcProvider {
    /// The provider's name, `provider_name` in the token exchange.
    pub name: String,
    /// The issuer: `iss` must equal it; `{issuer_url}/.well-known/openid-configuration` is read.
    pub issuer_url: String,
    /// The `aud` a token must carry; `None` accepts any audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// `GitHub`, `Azure` or `Generic OpenID Connect` (informational).
    #[serde(default = "generic_provider_type")]
    pub provider_type: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

fn generic_provider_type() -> String {
    "Generic OpenID Connect".to_owned()
}

/// What a token minted through an identity mapping is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenSpec {
    /// The user the token is for.
    pub username: String,
    /// Default `applied-permissions/user`.
    #[serde(default = "default_scope")]
    pub scope: String,
    /// Informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Seconds, 60–86 400, default 60 (capped by the registry's `max_token_lifetime`).
    #[serde(default = "default_mapping_lifetime")]
    pub expires_in: u64,
}

fn default_scope() -> String {
    "applied-permissions/user".to_owned()
}

fn default_mapping_lifetime() -> u64 {
    60
}

/// An identity mapping: a token whose claims include all of `claims` gets `token_spec`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IdentityMapping {
    /// Unique per provider.
    pub name: String,
    /// Higher first when several match.
    #[serde(default)]
    pub priority: i64,
    /// Claim name → expected value (a JSON value; strings may end in `*` as a prefix match).
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// The token to mint.
    pub token_spec: TokenSpec,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The mutable state.
#[derive(Default)]
pub(super) struct FederationData {
    /// username → IAM role ARN (one role per user, as JFrog keeps it).
    pub(super) iam_roles: BTreeMap<String, String>,
    pub(super) providers: BTreeMap<String, OidcProvider>,
    /// provider name → its mappings.
    pub(super) mappings: BTreeMap<String, Vec<IdentityMapping>>,
}

/// Configuration and state of passwordless sign-in.
pub(super) struct Federation {
    /// Users who may call the configuration endpoints.
    pub(super) admins: Vec<String>,
    /// Where `/aws/token` replays the signed request; `None` = `https://sts.{region}.amazonaws.com`.
    pub(super) sts_endpoint: Option<String>,
    /// Whether `/access/api/v1/aws/*` exists (Artifactory 7.90.10+).
    pub(super) aws_token_supported: bool,
    /// Replays to STS and reads issuers' documents.
    pub(super) http: reqwest::Client,
    data: Mutex<FederationData>,
}

impl Federation {
    pub(super) fn new(
        admins: Vec<String>,
        sts_endpoint: Option<String>,
        aws_token_supported: bool,
    ) -> Self {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self {
            admins,
            sts_endpoint,
            aws_token_supported,
            http,
            data: Mutex::new(FederationData::default()),
        }
    }

    pub(super) fn data(&self) -> std::sync::MutexGuard<'_, FederationData> {
        lock(&self.data)
    }

    /// The configuration endpoints' check: 401 for anonymous callers, 403 for non-admins.
    pub(super) fn require_admin(&self, caller: &Caller) -> Result<(), AccessError> {
        let Some(username) = caller.username() else {
            return Err(AccessError::unauthorized("Unauthorized"));
        };
        if self.admins.iter().any(|admin| admin == username) {
            Ok(())
        } else {
            Err(AccessError::forbidden(format!(
                "User '{username}' is not an admin"
            )))
        }
    }
}

impl super::MockRegistry {
    /// Maps `username` to an IAM role ARN, as `PUT /access/api/v1/aws/iam_role` does (no
    /// validation: tests may seed what the endpoint would refuse).
    pub fn map_iam_role(&self, username: &str, role_arn: &str) {
        self.shared
            .federation
            .data()
            .iam_roles
            .insert(username.to_owned(), role_arn.to_owned());
    }

    /// Every `(username, IAM role ARN)` mapping, sorted by user.
    pub fn iam_role_mappings(&self) -> Vec<(String, String)> {
        self.shared
            .federation
            .data()
            .iam_roles
            .iter()
            .map(|(user, role)| (user.clone(), role.clone()))
            .collect()
    }
}

impl OidcProvider {
    /// A generic provider trusting `issuer_url` for `audience` (`None`: any audience).
    pub fn new(name: &str, issuer_url: &str, audience: Option<&str>) -> Self {
        Self {
            name: name.to_owned(),
            issuer_url: issuer_url.to_owned(),
            audience: audience.map(str::to_owned),
            provider_type: generic_provider_type(),
            description: None,
        }
    }
}

impl IdentityMapping {
    /// A priority-1 mapping of tokens whose `sub` is `subject` to `username`, with the default
    /// token spec (scope `applied-permissions/user`, 60 s unless `expires_in` says otherwise).
    pub fn for_subject(name: &str, subject: &str, username: &str, expires_in: u64) -> Self {
        let mut claims = serde_json::Map::new();
        claims.insert(
            "sub".to_owned(),
            serde_json::Value::String(subject.to_owned()),
        );
        Self {
            name: name.to_owned(),
            priority: 1,
            claims,
            token_spec: TokenSpec {
                username: username.to_owned(),
                scope: default_scope(),
                audience: None,
                expires_in,
            },
            description: None,
        }
    }
}
