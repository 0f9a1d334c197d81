//! Turns a job's `Authentication` into the registry session's [`TokenSource`]: the password as
//! given, the worker's AWS identity, or a login read from Secrets Manager or SSM.
//!
//! The fleet's trust (`--allowed-registries`, `--secret-prefix`) is checked by
//! [`ActionConfig::check_trust`] before this runs, and checked again here so that no caller can
//! skip it: a registry the fleet does not allow never sees the worker's identity or a secret.

use url::Url;

use crate::aws_identity::{AwsIdentity, IdentityError, SecretStore, SigningAlgorithm};
use crate::pipeline::config::{ActionConfig, Authentication, ConfigError, FleetTrust};
use crate::pipeline::{Classify, FailureType};
use crate::registry::TokenSource;
use crate::secret::Redactor;

/// What the worker brings to passwordless modes; every field is a flag of `worker`.
#[derive(Debug, Clone, Default)]
pub struct LoginSettings {
    /// The registries and secrets the fleet allows.
    pub trust: FleetTrust,
    /// The worker's AWS clients; `None` where no AWS configuration was loaded.
    pub identity: Option<AwsIdentity>,
    /// `aud` of web identity tokens; the registry's base URL when unset.
    pub oidc_audience: Option<String>,
    pub oidc_algorithm: SigningAlgorithm,
}

/// Why no token source could be made for the job.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error(transparent)]
    NotAllowed(#[from] ConfigError),

    #[error("Authentication {mode} needs the worker's AWS identity, which this run does not have")]
    NoIdentity { mode: String },

    #[error("could not read the registry login for Authentication {mode}")]
    Read {
        mode: String,
        #[source]
        source: IdentityError,
    },

    #[error(
        "the {store} `{name}` holds a login for the registry `{registry}`, not for ArtifactoryHost \
         `{host}`; it is refused, so that a login is never sent to another registry (fix the \
         secret's \"registry\" or the action's ArtifactoryHost)"
    )]
    RegistryMismatch {
        store: SecretStore,
        name: String,
        registry: String,
        host: String,
    },
}

impl Classify for LoginError {
    fn failure_type(&self) -> FailureType {
        match self {
            LoginError::Read { source, .. } if source.is_access_denied() => {
                FailureType::PermissionError
            }
            LoginError::Read { source, .. } if source.is_configuration() => {
                FailureType::ConfigurationError
            }
            LoginError::Read { .. } => FailureType::JobFailed,
            LoginError::NotAllowed(_)
            | LoginError::NoIdentity { .. }
            | LoginError::RegistryMismatch { .. } => FailureType::ConfigurationError,
        }
    }
}

/// The token source for `config`, reading a secret where the mode says; the password read from a
/// secret is added to `redactor` before anything else happens with it.
pub async fn token_source(
    config: &ActionConfig,
    settings: &LoginSettings,
    redactor: &Redactor,
) -> Result<TokenSource, LoginError> {
    token_source_for(&config.host, &config.authentication, settings, redactor).await
}

/// [`token_source`] for a registry and a mode.
pub async fn token_source_for(
    host: &Url,
    authentication: &Authentication,
    settings: &LoginSettings,
    redactor: &Redactor,
) -> Result<TokenSource, LoginError> {
    crate::pipeline::config::check_trust(host, authentication, &settings.trust)?;
    let identity = || {
        settings
            .identity
            .clone()
            .ok_or_else(|| LoginError::NoIdentity {
                mode: authentication.to_string(),
            })
    };
    let read = |source| LoginError::Read {
        mode: authentication.to_string(),
        source,
    };
    let (store, name, login) = match authentication {
        Authentication::Password {
            user_name,
            password,
        } => {
            return Ok(TokenSource::Password {
                user_name: user_name.clone(),
                password: password.clone(),
            });
        }
        Authentication::AwsIam => {
            return Ok(TokenSource::AwsIam {
                identity: identity()?,
            });
        }
        Authentication::Oidc { provider } => {
            return Ok(TokenSource::Oidc {
                provider: provider.clone(),
                identity: identity()?,
                audience: settings
                    .oidc_audience
                    .clone()
                    .unwrap_or_else(|| host.as_str().trim_end_matches('/').to_owned()),
                algorithm: settings.oidc_algorithm,
            });
        }
        Authentication::SecretsManager { secret_id } => (
            SecretStore::SecretsManager,
            secret_id,
            identity()?
                .login_from_secret(secret_id)
                .await
                .map_err(read)?,
        ),
        Authentication::Ssm { parameter } => (
            SecretStore::Ssm,
            parameter,
            identity()?
                .login_from_parameter(parameter)
                .await
                .map_err(read)?,
        ),
    };
    redactor.add(&login.password);
    if let Some(registry) = &login.registry
        && !same_registry(registry, host)
    {
        return Err(LoginError::RegistryMismatch {
            store,
            name: name.clone(),
            registry: registry.clone(),
            host: host.as_str().trim_end_matches('/').to_owned(),
        });
    }
    Ok(TokenSource::Password {
        user_name: login.user_name,
        password: login.password,
    })
}

/// Whether a secret's `registry` names the action's host (compared as base URLs).
fn same_registry(registry: &str, host: &Url) -> bool {
    crate::pipeline::config::normalise_base_url(registry).is_ok_and(|registry| {
        FleetTrust {
            allowed_registries: vec![registry],
            ..FleetTrust::default()
        }
        .allows_registry(host)
    })
}
