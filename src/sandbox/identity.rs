//! The worker's AWS identity and what it may read: its instance role, the outbound identity
//! federation keys and issuer, the secrets (Secrets Manager) and parameters (SSM) tests seed,
//! and the role's policy over them.
//!
//! The worker's credentials ([`Sandbox::worker_credentials`]) are the instance role
//! `pipeline-publisher-worker`'s: STS answers them as
//! `arn:aws:sts::{account}:assumed-role/pipeline-publisher-worker/i-0123456789abcdef0`.
//! Its default policy allows `secretsmanager:GetSecretValue` on secrets named
//! `pipeline-publisher/…` and `ssm:GetParameter` on parameters under `/pipeline-publisher/`
//! (SSM hierarchies start with `/`), less whatever [`Sandbox::deny_worker`] takes away.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::distr::{Alphanumeric, SampleString};
use time::OffsetDateTime;

use super::Sandbox;
use super::web_identity::{KeyError, SigningKeys};

/// The instance role the worker's credentials belong to.
pub const WORKER_ROLE_NAME: &str = "pipeline-publisher-worker";
/// The role session of the worker's credentials: an EC2 instance id, as instance roles use.
pub const WORKER_SESSION_NAME: &str = "i-0123456789abcdef0";
/// Secrets the worker's role may read: names starting with this.
pub const WORKER_SECRET_PREFIX: &str = "pipeline-publisher/";
/// Parameters the worker's role may read: names starting with this.
pub const WORKER_PARAMETER_PREFIX: &str = "/pipeline-publisher/";

/// Everything of this module, shared by a sandbox's clones.
pub(crate) struct Identity {
    keys: OnceLock<SigningKeys>,
    /// `http://127.0.0.1:PORT` once served (the issuer URL is built from it).
    endpoint_url: OnceLock<String>,
    /// The role's unique id (`AROA…`), as `GetCallerIdentity` reports it in `UserId`.
    pub(crate) role_id: String,
    data: Mutex<IdentityData>,
}

impl Default for Identity {
    fn default() -> Self {
        Self {
            keys: OnceLock::new(),
            endpoint_url: OnceLock::new(),
            role_id: super::ids::access_key_id("AROA"),
            data: Mutex::new(IdentityData {
                outbound_federation_enabled: true,
                ..IdentityData::default()
            }),
        }
    }
}

impl Identity {
    /// Generates the signing keys (once; later calls keep the first keys).
    pub(crate) fn generate_keys(&self) -> Result<(), KeyError> {
        if self.keys.get().is_none() {
            let _ = self.keys.set(SigningKeys::generate()?);
        }
        Ok(())
    }

    pub(crate) fn keys(&self) -> Option<&SigningKeys> {
        self.keys.get()
    }

    pub(crate) fn data(&self) -> MutexGuard<'_, IdentityData> {
        self.data.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One secret (a single `AWSCURRENT` version).
#[derive(Clone, Debug)]
pub(crate) struct StoredSecret {
    pub(crate) name: String,
    pub(crate) arn: String,
    pub(crate) value: String,
    pub(crate) version_id: String,
    pub(crate) created: OffsetDateTime,
}

/// One parameter.
#[derive(Clone, Debug)]
pub(crate) struct StoredParameter {
    pub(crate) value: String,
    pub(crate) secure: bool,
    /// What a `SecureString` reads as without `WithDecryption`: KMS-ciphertext-like base64.
    pub(crate) ciphertext: String,
    pub(crate) version: u64,
    pub(crate) modified: OffsetDateTime,
}

/// The mutable part.
#[derive(Default)]
pub(crate) struct IdentityData {
    pub(crate) secrets: Vec<StoredSecret>,
    pub(crate) parameters: BTreeMap<String, StoredParameter>,
    /// Secret names, secret ARNs and parameter names the worker's role may not read.
    pub(crate) denied: HashSet<String>,
    /// `iam enable-outbound-web-identity-federation` was run for the account.
    pub(crate) outbound_federation_enabled: bool,
    /// Every web identity token issued, for tests proving none leaks.
    pub(crate) web_identity_tokens: Vec<String>,
}

impl IdentityData {
    /// A secret by name, full ARN, or ARN without its random suffix.
    pub(crate) fn secret(&self, secret_id: &str) -> Option<&StoredSecret> {
        self.secrets.iter().find(|secret| {
            secret.name == secret_id
                || secret.arn == secret_id
                || secret
                    .arn
                    .rsplit_once('-')
                    .is_some_and(|(partial, _)| partial == secret_id)
        })
    }
}

impl Sandbox {
    /// The worker's instance role: `arn:aws:iam::{account}:role/pipeline-publisher-worker`,
    /// what a JFrog admin maps to a user.
    pub fn worker_role_arn(&self) -> String {
        format!(
            "arn:aws:iam::{}:role/{WORKER_ROLE_NAME}",
            self.inner.config.account_id
        )
    }

    /// What STS `GetCallerIdentity` answers for the worker's credentials:
    /// `arn:aws:sts::{account}:assumed-role/pipeline-publisher-worker/i-0123456789abcdef0`.
    pub fn worker_caller_arn(&self) -> String {
        format!(
            "arn:aws:sts::{}:assumed-role/{WORKER_ROLE_NAME}/{WORKER_SESSION_NAME}",
            self.inner.config.account_id
        )
    }

    /// Tells the sandbox the URL it is served at (done by [`Sandbox::start`]; call it when
    /// serving [`Sandbox::router`] yourself). The first call wins.
    pub fn set_endpoint_url(&self, endpoint_url: &str) {
        let _ = self
            .inner
            .identity
            .endpoint_url
            .set(endpoint_url.trim_end_matches('/').to_owned());
    }

    /// `127.0.0.1:PORT` of the served endpoint, once known.
    pub(crate) fn endpoint_authority(&self) -> Option<String> {
        let endpoint = self.inner.identity.endpoint_url.get()?;
        let authority = endpoint
            .split_once("://")
            .map_or(endpoint.as_str(), |(_, rest)| rest);
        Some(authority.split('/').next().unwrap_or(authority).to_owned())
    }

    /// The account's outbound identity federation issuer, `{endpoint}/_oidc/{account}`: the
    /// `iss` of the tokens `GetWebIdentityToken` signs, serving
    /// `/.well-known/openid-configuration` and `/.well-known/jwks.json` below it.
    pub fn oidc_issuer_url(&self) -> String {
        let endpoint = self
            .inner
            .identity
            .endpoint_url
            .get()
            .map_or("http://127.0.0.1", String::as_str);
        format!(
            "{endpoint}{}{}",
            super::web_identity::ISSUER_PATH_PREFIX,
            self.inner.config.account_id
        )
    }

    /// Turns the account's outbound identity federation on (the default) or off; while off,
    /// `GetWebIdentityToken` answers `OutboundWebIdentityFederationDisabledException`.
    pub fn set_outbound_federation_enabled(&self, enabled: bool) {
        self.inner.identity.data().outbound_federation_enabled = enabled;
    }

    /// Every web identity token STS issued so far (for secret-hygiene tests).
    pub fn issued_web_identity_tokens(&self) -> Vec<String> {
        self.inner.identity.data().web_identity_tokens.clone()
    }

    /// Creates or replaces the secret `name` with `value` as its `SecretString`; returns its
    /// ARN, `arn:aws:secretsmanager:{region}:{account}:secret:{name}-XXXXXX`.
    pub fn put_secret(&self, name: &str, value: &str) -> String {
        let mut data = self.inner.identity.data();
        if let Some(existing) = data.secrets.iter_mut().find(|secret| secret.name == name) {
            existing.value = value.to_owned();
            existing.version_id = super::ids::uuid();
            return existing.arn.clone();
        }
        let arn = format!(
            "arn:aws:secretsmanager:{}:{}:secret:{name}-{}",
            self.inner.config.region,
            self.inner.config.account_id,
            Alphanumeric.sample_string(&mut rand::rng(), 6)
        );
        data.secrets.push(StoredSecret {
            name: name.to_owned(),
            arn: arn.clone(),
            value: value.to_owned(),
            version_id: super::ids::uuid(),
            created: OffsetDateTime::now_utc(),
        });
        arn
    }

    /// Creates or overwrites the parameter `name` (a `SecureString` when `secure`, else a
    /// `String`); each write bumps its version.
    pub fn put_parameter(&self, name: &str, value: &str, secure: bool) {
        let mut data = self.inner.identity.data();
        let version = data.parameters.get(name).map_or(1, |old| old.version + 1);
        let random: Vec<u8> = (0..48).map(|_| rand::random::<u8>()).collect();
        data.parameters.insert(
            name.to_owned(),
            StoredParameter {
                value: value.to_owned(),
                secure,
                ciphertext: format!("AQICAHh{}", STANDARD.encode(random)),
                version,
                modified: OffsetDateTime::now_utc(),
            },
        );
    }

    /// Takes away the worker role's permission to read this secret (by name or ARN) or
    /// parameter (by name): it then gets `AccessDeniedException`.
    pub fn deny_worker(&self, name_or_arn: &str) {
        self.inner
            .identity
            .data()
            .denied
            .insert(name_or_arn.to_owned());
    }
}
