//! The `Authentication` property of action type version 2, and the fleet's trust policy that
//! decides where the worker may use its own identity.
//!
//! A pipeline author chooses *how* the worker gets its registry token; the fleet's operator
//! decides *for which registries* the worker's AWS identity, a signed STS request or a secret may
//! be used (`--allowed-registries`) and *which* secrets it reads (`--secret-prefix`). Both are
//! checked here, before any network call, so a host the operator did not allow receives nothing.

use std::fmt;

use url::Url;

use crate::secret::{MASK, SecretString};

/// How the worker gets the job's registry token.
#[derive(Clone)]
pub enum Authentication {
    /// `UserName` + `Password` exchanged for a short-lived token (version 1's only mode).
    Password {
        user_name: String,
        password: SecretString,
    },
    /// The worker's own AWS credentials: a signed STS `GetCallerIdentity` exchanged at
    /// `/access/api/v1/aws/token`.
    AwsIam,
    /// An STS web identity token for the worker's role, exchanged at `/access/api/v1/oidc/token`
    /// with the registry's OIDC provider of this name.
    Oidc { provider: String },
    /// A Secrets Manager secret (ARN or name) holding `{"username", "password", "registry"?}`.
    SecretsManager { secret_id: String },
    /// An SSM SecureString parameter holding the same JSON.
    Ssm { parameter: String },
}

impl fmt::Debug for Authentication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Password { user_name, .. } => f
                .debug_struct("Password")
                .field("user_name", user_name)
                .field("password", &MASK)
                .finish(),
            other => write!(f, "{other}"),
        }
    }
}

impl fmt::Display for Authentication {
    /// The mode as the property spells it (never with a password).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Password { .. } => f.write_str("password"),
            Self::AwsIam => f.write_str("aws-iam"),
            Self::Oidc { provider } => write!(f, "oidc:{provider}"),
            Self::SecretsManager { secret_id } => write!(f, "secretsmanager:{secret_id}"),
            Self::Ssm { parameter } => write!(f, "ssm:{parameter}"),
        }
    }
}

impl Authentication {
    /// The forms `Authentication` accepts, for messages.
    pub const FORMS: &'static str = "password (the default), aws-iam, oidc:<provider name>, \
                                     secretsmanager:<secret ARN or name>, ssm:<parameter name>";

    /// Whether this mode uses the fleet's own identity or secrets (and so needs the host to be
    /// allowed by the fleet).
    pub fn uses_fleet_identity(&self) -> bool {
        !matches!(self, Self::Password { .. })
    }
}

/// The mode named by `Authentication`, without the password mode's user and password (those are
/// separate properties).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthenticationMode {
    Password,
    AwsIam,
    Oidc(String),
    SecretsManager(String),
    Ssm(String),
}

/// An `Authentication` value that is not one of [`Authentication::FORMS`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthenticationError {
    #[error(
        "`{value}` is not an authentication mode; use {}",
        Authentication::FORMS
    )]
    Unknown { value: String },
    #[error("`{prefix}:` needs a {what} after the colon, e.g. {example}")]
    Empty {
        prefix: &'static str,
        what: &'static str,
        example: &'static str,
    },
    #[error("the OIDC provider name `{value}` may hold only letters, digits, '-', '_' and '.'")]
    BadProvider { value: String },
    #[error("`{value}` holds whitespace or control characters; give the {what} exactly")]
    BadName { value: String, what: &'static str },
}

impl AuthenticationMode {
    /// Parses the property's value; empty means `password`.
    pub fn parse(raw: &str) -> Result<Self, AuthenticationError> {
        let value = raw.trim();
        if value.is_empty() || value.eq_ignore_ascii_case("password") {
            return Ok(Self::Password);
        }
        if value.eq_ignore_ascii_case("aws-iam") {
            return Ok(Self::AwsIam);
        }
        let Some((prefix, rest)) = value.split_once(':') else {
            return Err(AuthenticationError::Unknown {
                value: value.to_owned(),
            });
        };
        let rest = rest.trim();
        let name = |prefix: &'static str, what: &'static str, example: &'static str| {
            if rest.is_empty() {
                Err(AuthenticationError::Empty {
                    prefix,
                    what,
                    example,
                })
            } else if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
                Err(AuthenticationError::BadName {
                    value: rest.to_owned(),
                    what,
                })
            } else {
                Ok(rest.to_owned())
            }
        };
        match prefix.to_ascii_lowercase().as_str() {
            "oidc" => {
                let provider = name("oidc", "provider name", "oidc:aws-fleet")?;
                if !provider
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                {
                    return Err(AuthenticationError::BadProvider { value: provider });
                }
                Ok(Self::Oidc(provider))
            }
            "secretsmanager" => Ok(Self::SecretsManager(name(
                "secretsmanager",
                "secret ARN or name",
                "secretsmanager:pipeline-publisher/acme",
            )?)),
            "ssm" => Ok(Self::Ssm(name(
                "ssm",
                "parameter name",
                "ssm:/pipeline-publisher/acme",
            )?)),
            _ => Err(AuthenticationError::Unknown {
                value: value.to_owned(),
            }),
        }
    }
}

/// The default of `--secret-prefix`.
pub const DEFAULT_SECRET_PREFIX: &str = "pipeline-publisher/";

/// What the fleet's operator allows: the only registries the worker's identity and secrets are
/// used for, and the only secret names and parameter paths it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetTrust {
    /// Base URLs (normalised like `ArtifactoryHost`); empty means no non-password mode at all.
    pub allowed_registries: Vec<Url>,
    /// Secret names and parameter paths must start with it (a leading `/` is ignored).
    pub secret_prefix: String,
}

impl Default for FleetTrust {
    fn default() -> Self {
        Self {
            allowed_registries: Vec::new(),
            secret_prefix: DEFAULT_SECRET_PREFIX.to_owned(),
        }
    }
}

/// A value of `--allowed-registries` that is not a registry base URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--allowed-registries: {0}")]
pub struct AllowedRegistryError(pub String);

impl FleetTrust {
    /// Parses the comma-separated base URLs of `--allowed-registries`.
    pub fn parse_registries(values: &[String]) -> Result<Vec<Url>, AllowedRegistryError> {
        values
            .iter()
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .map(|value| {
                crate::pipeline::config::normalise_base_url(value)
                    .map_err(|problem| AllowedRegistryError(problem.to_string()))
            })
            .collect()
    }

    /// Whether `host` (an `ArtifactoryHost` already normalised) is one of the allowed registries.
    pub fn allows_registry(&self, host: &Url) -> bool {
        let key = |url: &Url| {
            (
                url.scheme().to_owned(),
                url.host_str().map(str::to_ascii_lowercase),
                url.port_or_known_default(),
                url.path().trim_end_matches('/').to_owned(),
            )
        };
        self.allowed_registries
            .iter()
            .any(|allowed| key(allowed) == key(host))
    }

    /// Whether a Secrets Manager secret (name or ARN) lies under the prefix.
    pub fn allows_secret(&self, secret_id: &str) -> bool {
        let name = match secret_id.strip_prefix("arn:") {
            // arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME-SUFFIX
            Some(_) => match secret_id.splitn(7, ':').collect::<Vec<_>>().as_slice() {
                [_, _, "secretsmanager", _, _, "secret", name] => *name,
                _ => return false,
            },
            None => secret_id,
        };
        self.under_prefix(name)
    }

    /// Whether an SSM parameter (name, path or ARN) lies under the prefix.
    pub fn allows_parameter(&self, parameter: &str) -> bool {
        let name = match parameter.strip_prefix("arn:") {
            // arn:PARTITION:ssm:REGION:ACCOUNT:parameter/NAME
            Some(_) => match parameter.splitn(6, ':').collect::<Vec<_>>().as_slice() {
                [_, _, "ssm", _, _, resource] => match resource.strip_prefix("parameter") {
                    Some(name) => name,
                    None => return false,
                },
                _ => return false,
            },
            None => parameter,
        };
        self.under_prefix(name)
    }

    fn under_prefix(&self, name: &str) -> bool {
        let name = name.trim_start_matches('/');
        let prefix = self.secret_prefix.trim_start_matches('/');
        // A `..` segment means nothing to AWS, but nobody names a secret so on purpose.
        name.starts_with(prefix) && name.len() > prefix.len() && !name.split('/').any(|s| s == "..")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_form_parses() {
        assert_eq!(
            AuthenticationMode::parse(""),
            Ok(AuthenticationMode::Password)
        );
        assert_eq!(
            AuthenticationMode::parse(" Password "),
            Ok(AuthenticationMode::Password)
        );
        assert_eq!(
            AuthenticationMode::parse("aws-iam"),
            Ok(AuthenticationMode::AwsIam)
        );
        assert_eq!(
            AuthenticationMode::parse("oidc:aws-fleet"),
            Ok(AuthenticationMode::Oidc("aws-fleet".into()))
        );
        assert_eq!(
            AuthenticationMode::parse("secretsmanager:pipeline-publisher/acme"),
            Ok(AuthenticationMode::SecretsManager(
                "pipeline-publisher/acme".into()
            ))
        );
        assert_eq!(
            AuthenticationMode::parse("ssm:/pipeline-publisher/acme"),
            Ok(AuthenticationMode::Ssm("/pipeline-publisher/acme".into()))
        );
    }

    #[test]
    fn an_unknown_mode_lists_the_accepted_forms() {
        let error = AuthenticationMode::parse("kerberos").unwrap_err();
        let message = error.to_string();
        for form in ["password", "aws-iam", "oidc:", "secretsmanager:", "ssm:"] {
            assert!(message.contains(form), "{message}");
        }
        assert!(matches!(
            AuthenticationMode::parse("oidc:"),
            Err(AuthenticationError::Empty { .. })
        ));
        assert!(matches!(
            AuthenticationMode::parse("oidc:a b"),
            Err(AuthenticationError::BadName { .. })
        ));
        assert!(matches!(
            AuthenticationMode::parse("oidc:a/b"),
            Err(AuthenticationError::BadProvider { .. })
        ));
    }

    #[test]
    fn only_names_under_the_prefix_are_allowed() {
        let trust = FleetTrust::default();
        assert!(trust.allows_secret("pipeline-publisher/acme"));
        assert!(trust.allows_secret(
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:pipeline-publisher/acme-AbCdEf"
        ));
        assert!(!trust.allows_secret("prod/database"));
        assert!(!trust.allows_secret("pipeline-publisher/"));
        assert!(!trust.allows_secret("pipeline-publisher/../prod/db"));
        assert!(
            !trust.allows_secret(
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf"
            )
        );
        assert!(trust.allows_parameter("/pipeline-publisher/acme"));
        assert!(trust.allows_parameter("pipeline-publisher/acme"));
        assert!(trust.allows_parameter(
            "arn:aws:ssm:eu-west-1:123456789012:parameter/pipeline-publisher/acme"
        ));
        assert!(!trust.allows_parameter("/prod/acme"));
        assert!(!trust.allows_parameter("arn:aws:ssm:eu-west-1:1:document/pipeline-publisher/x"));
    }

    #[test]
    fn registries_compare_by_base_url() {
        let trust = FleetTrust {
            allowed_registries: FleetTrust::parse_registries(&[
                "https://acme.jfrog.io/artifactory/, http://127.0.0.1:8081".into(),
            ])
            .unwrap(),
            ..FleetTrust::default()
        };
        let url = |raw: &str| crate::pipeline::config::normalise_base_url(raw).unwrap();
        assert!(trust.allows_registry(&url("https://ACME.jfrog.io")));
        assert!(trust.allows_registry(&url("https://acme.jfrog.io:443/artifactory")));
        assert!(trust.allows_registry(&url("http://127.0.0.1:8081/")));
        assert!(!trust.allows_registry(&url("http://127.0.0.1:8082")));
        assert!(!trust.allows_registry(&url("https://acme.jfrog.io.evil.example")));
        assert!(!trust.allows_registry(&url("http://acme.jfrog.io")));
    }
}
