//! The worker's own AWS identity, used to reach a registry without a password: a SigV4-signed
//! STS `GetCallerIdentity` request (for Artifactory's AWS IAM exchange), an STS web identity
//! token (for an OIDC exchange), and registry logins read from Secrets Manager or SSM.
//!
//! Every client is built from the worker's one `SdkConfig`, so `AWS_ENDPOINT_URL_STS`,
//! `AWS_ENDPOINT_URL_SECRETS_MANAGER`, `AWS_ENDPOINT_URL_SSM` and `AWS_ENDPOINT_URL` apply as
//! they do to the SDK's own clients; the hand-signed STS request resolves its endpoint the same
//! way. Nothing here knows a registry: what is signed or read is handed to the caller, which
//! decides where it may go.
//!
//! The signed request follows JFrog's own client (the secret-rotator Lambda): `GET
//! {sts}/?Action=GetCallerIdentity&Version=2011-06-15`, no body, signed for service `sts` in the
//! worker's region; the registry replays it to STS to learn the caller. Whoever holds it can do
//! the same for a few minutes, so its header values are secrets.

use std::fmt;
use std::time::SystemTime;

use aws_config::SdkConfig;
use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_sts::error::ProvideErrorMetadata;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;

use crate::secret::{ExposeSecret, MASK, SecretString};

/// The STS API version JFrog's client signs.
const STS_VERSION: &str = "2011-06-15";

/// Lifetime asked for a web identity token: the exchange happens at once.
const WEB_IDENTITY_TOKEN_SECONDS: i32 = 300;

/// A signature algorithm `GetWebIdentityToken` offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SigningAlgorithm {
    #[default]
    #[value(name = "RS256")]
    Rs256,
    #[value(name = "ES384")]
    Es384,
}

impl SigningAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Es384 => "ES384",
        }
    }
}

/// The worker's AWS clients for identity and secrets.
#[derive(Clone)]
pub struct AwsIdentity {
    sdk_config: SdkConfig,
    sts: aws_sdk_sts::Client,
    secrets: aws_sdk_secretsmanager::Client,
    ssm: aws_sdk_ssm::Client,
}

impl fmt::Debug for AwsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsIdentity")
            .field("region", &self.sdk_config.region())
            .finish_non_exhaustive()
    }
}

/// A signed `GetCallerIdentity` request, as the registry must replay it.
pub struct SignedCallerIdentity {
    /// The region it was signed for (JFrog's `?region=`).
    pub region: String,
    /// `Authorization`, `X-Amz-Date`, `X-Amz-Security-Token` (when the credentials have one).
    pub headers: Vec<(&'static str, SecretString)>,
}

impl fmt::Debug for SignedCallerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedCallerIdentity")
            .field("region", &self.region)
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(name, _)| (*name, MASK))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A registry login kept in a secret: `{"username", "password", "registry"?}`.
pub struct RegistryLogin {
    pub user_name: String,
    pub password: SecretString,
    /// The registry the login is for, when the secret says.
    pub registry: Option<String>,
}

impl fmt::Debug for RegistryLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryLogin")
            .field("user_name", &self.user_name)
            .field("password", &MASK)
            .field("registry", &self.registry)
            .finish()
    }
}

/// Where a registry login is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretStore {
    SecretsManager,
    Ssm,
}

impl SecretStore {
    /// The IAM action that reads it.
    pub fn action(self) -> &'static str {
        match self {
            Self::SecretsManager => "secretsmanager:GetSecretValue",
            Self::Ssm => "ssm:GetParameter",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Self::SecretsManager => "secret",
            Self::Ssm => "parameter",
        }
    }
}

impl fmt::Display for SecretStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::SecretsManager => "Secrets Manager secret",
            Self::Ssm => "SSM parameter",
        })
    }
}

/// What is wrong with a login secret's content. Never holds any of the content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MalformedLogin {
    #[error("it has no text value (binary secrets are not read)")]
    NoText,
    #[error("it is not a JSON object")]
    NotJsonObject,
    #[error("its `username` is missing or not a non-empty string")]
    UserName,
    #[error("its `password` is missing or not a non-empty string")]
    Password,
    #[error("its `registry` is not a string")]
    Registry,
}

/// Why the worker's identity could not be used.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "the worker has no AWS credentials (instance profile, AWS_PROFILE or AWS_ACCESS_KEY_ID)"
    )]
    NoCredentials {
        #[source]
        source: aws_credential_types::provider::error::CredentialsError,
    },
    #[error("no AWS region is configured; set AWS_REGION (STS requests are regional)")]
    NoRegion,
    #[error("could not sign the STS GetCallerIdentity request")]
    Signing {
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("STS {operation} was refused ({code}): {message}")]
    StsRefused {
        operation: &'static str,
        code: String,
        message: String,
    },
    #[error("could not reach STS for {operation}")]
    StsUnavailable {
        operation: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("the {store} `{name}` does not exist (or the worker's region is another one)")]
    SecretNotFound { store: SecretStore, name: String },
    #[error(
        "the worker's role may not read the {store} `{name}`: {action} was denied ({message}); \
         grant {action} on it (and kms:Decrypt through {service} for its key)"
    )]
    SecretAccessDenied {
        store: SecretStore,
        name: String,
        action: &'static str,
        service: &'static str,
        message: String,
    },
    #[error("the {store} `{name}` could not be read ({code}): {message}")]
    SecretRefused {
        store: SecretStore,
        name: String,
        code: String,
        message: String,
    },
    #[error("could not reach AWS to read the {store} `{name}`")]
    SecretUnavailable {
        store: SecretStore,
        name: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(
        "the {store} `{name}` is not a registry login: {problem}; it must hold \
         {{\"username\": \"...\", \"password\": \"...\", \"registry\": \"https://...\"}} \
         (registry optional)"
    )]
    MalformedLogin {
        store: SecretStore,
        name: String,
        problem: MalformedLogin,
    },
}

impl IdentityError {
    /// Whether AWS refused the worker's role (a permission the operator grants).
    pub fn is_access_denied(&self) -> bool {
        match self {
            Self::SecretAccessDenied { .. } => true,
            Self::StsRefused { code, .. } => code.contains("AccessDenied"),
            _ => false,
        }
    }

    /// Whether the pipeline's configuration names something that is not there or unusable.
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            Self::SecretNotFound { .. } | Self::MalformedLogin { .. }
        )
    }
}

impl AwsIdentity {
    /// Builds every client from `sdk_config` (region, credentials, endpoint overrides).
    pub fn new(sdk_config: &SdkConfig) -> Self {
        Self {
            sdk_config: sdk_config.clone(),
            sts: aws_sdk_sts::Client::new(sdk_config),
            secrets: aws_sdk_secretsmanager::Client::new(sdk_config),
            ssm: aws_sdk_ssm::Client::new(sdk_config),
        }
    }

    fn region(&self) -> Result<String, IdentityError> {
        self.sdk_config
            .region()
            .map(|region| region.as_ref().to_owned())
            .ok_or(IdentityError::NoRegion)
    }

    /// The STS endpoint the SDK's own STS client would use: an endpoint URL set on the
    /// configuration, else `AWS_ENDPOINT_URL_STS` (or the profile's), else `AWS_ENDPOINT_URL`,
    /// else the regional endpoint.
    pub fn sts_endpoint(&self) -> Result<String, IdentityError> {
        let configured = if self
            .sdk_config
            .get_origin("endpoint_url")
            .is_client_config()
        {
            self.sdk_config.endpoint_url().map(str::to_owned)
        } else {
            let key = aws_types::service_config::ServiceConfigKey::builder()
                .service_id("STS")
                .env("AWS_ENDPOINT_URL")
                .profile("endpoint_url")
                .build()
                .ok();
            self.sdk_config
                .service_config()
                .zip(key)
                .and_then(|(config, key)| config.load_config(key))
                .or_else(|| self.sdk_config.endpoint_url().map(str::to_owned))
        };
        match configured {
            Some(endpoint) => Ok(endpoint),
            None => Ok(format!("https://sts.{}.amazonaws.com", self.region()?)),
        }
    }

    /// Signs `GET {sts}/?Action=GetCallerIdentity&Version=2011-06-15` with the worker's
    /// credentials, as JFrog's clients do for `/access/api/v1/aws/token`.
    pub async fn sign_get_caller_identity(&self) -> Result<SignedCallerIdentity, IdentityError> {
        let region = self.region()?;
        let provider =
            self.sdk_config
                .credentials_provider()
                .ok_or_else(|| IdentityError::NoCredentials {
                    source: aws_credential_types::provider::error::CredentialsError::not_loaded(
                        "no credentials provider is configured",
                    ),
                })?;
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|source| IdentityError::NoCredentials { source })?;
        let url = format!(
            "{}/?Action=GetCallerIdentity&Version={STS_VERSION}",
            self.sts_endpoint()?.trim_end_matches('/')
        );
        let identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&region)
            .name("sts")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|source| IdentityError::Signing {
                source: Box::new(source),
            })?
            .into();
        let signable =
            SignableRequest::new("GET", url, std::iter::empty(), SignableBody::Bytes(&[]))
                .map_err(|source| IdentityError::Signing {
                    source: Box::new(source),
                })?;
        let (instructions, _signature) = aws_sigv4::http_request::sign(signable, &params)
            .map_err(|source| IdentityError::Signing {
                source: Box::new(source),
            })?
            .into_parts();
        let (headers, _query) = instructions.into_parts();
        Ok(SignedCallerIdentity {
            region,
            headers: headers
                .into_iter()
                .map(|header| (header.name(), SecretString::from(header.value().to_owned())))
                .collect(),
        })
    }

    /// The IAM role the worker runs as (`arn:aws:iam::ACCOUNT:role/NAME`), from STS
    /// `GetCallerIdentity`; an assumed-role ARN is turned into its role's ARN, which is what a
    /// JFrog admin maps. Other identities (users) are returned as they are.
    pub async fn role_arn(&self) -> Result<String, IdentityError> {
        let operation = "GetCallerIdentity";
        let output = self
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|error| sts_error(operation, error))?;
        let arn = output.arn.unwrap_or_default();
        Ok(role_arn_of(&arn))
    }

    /// An STS web identity token for the worker's role, for `audience`.
    pub async fn web_identity_token(
        &self,
        audience: &str,
        algorithm: SigningAlgorithm,
    ) -> Result<SecretString, IdentityError> {
        let operation = "GetWebIdentityToken";
        let output = self
            .sts
            .get_web_identity_token()
            .audience(audience)
            .signing_algorithm(algorithm.as_str())
            .duration_seconds(WEB_IDENTITY_TOKEN_SECONDS)
            .send()
            .await
            .map_err(|error| sts_error(operation, error))?;
        output
            .web_identity_token
            .map(SecretString::from)
            .ok_or_else(|| IdentityError::StsRefused {
                operation,
                code: "MissingToken".into(),
                message: "the answer held no WebIdentityToken".into(),
            })
    }

    /// Reads a registry login from a Secrets Manager secret (ARN or name).
    pub async fn login_from_secret(&self, secret_id: &str) -> Result<RegistryLogin, IdentityError> {
        let store = SecretStore::SecretsManager;
        let output = self
            .secrets
            .get_secret_value()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|error| secret_error(store, secret_id, error))?;
        let text = output.secret_string.map(SecretString::from);
        parse_login(store, secret_id, text)
    }

    /// Reads a registry login from an SSM SecureString parameter, decrypted.
    pub async fn login_from_parameter(
        &self,
        parameter: &str,
    ) -> Result<RegistryLogin, IdentityError> {
        let store = SecretStore::Ssm;
        let output = self
            .ssm
            .get_parameter()
            .name(parameter)
            .with_decryption(true)
            .send()
            .await
            .map_err(|error| secret_error(store, parameter, error))?;
        let text = output
            .parameter
            .and_then(|parameter| parameter.value)
            .map(SecretString::from);
        parse_login(store, parameter, text)
    }
}

/// `arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION` → `arn:aws:iam::ACCOUNT:role/NAME`.
pub fn role_arn_of(caller_arn: &str) -> String {
    let parts: Vec<&str> = caller_arn.splitn(6, ':').collect();
    if let [arn, partition, "sts", _, account, resource] = parts.as_slice()
        && let Some(rest) = resource.strip_prefix("assumed-role/")
        && let Some((role, _session)) = rest.split_once('/')
    {
        return format!("{arn}:{partition}:iam::{account}:role/{role}");
    }
    caller_arn.to_owned()
}

fn sts_error<E, R>(
    operation: &'static str,
    error: aws_sdk_sts::error::SdkError<E, R>,
) -> IdentityError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: fmt::Debug + Send + Sync + 'static,
{
    match error {
        aws_sdk_sts::error::SdkError::ServiceError(service) => {
            let error = service.into_err();
            IdentityError::StsRefused {
                operation,
                code: error.code().unwrap_or("Unknown").to_owned(),
                message: error.message().unwrap_or("no message").to_owned(),
            }
        }
        other => IdentityError::StsUnavailable {
            operation,
            source: Box::new(other),
        },
    }
}

fn secret_error<E, R>(
    store: SecretStore,
    name: &str,
    error: aws_sdk_sts::error::SdkError<E, R>,
) -> IdentityError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: fmt::Debug + Send + Sync + 'static,
{
    use aws_sdk_sts::error::SdkError;
    let name = name.to_owned();
    match error {
        SdkError::ServiceError(service) => {
            let error = service.into_err();
            let code = error.code().unwrap_or("Unknown").to_owned();
            let message = error.message().unwrap_or("no message").to_owned();
            let service = match store {
                SecretStore::SecretsManager => "secretsmanager",
                SecretStore::Ssm => "ssm",
            };
            match code.as_str() {
                "ResourceNotFoundException" | "ParameterNotFound" => {
                    IdentityError::SecretNotFound { store, name }
                }
                "AccessDeniedException" | "AccessDenied" => IdentityError::SecretAccessDenied {
                    store,
                    name,
                    action: store.action(),
                    service,
                    message,
                },
                // The key's policy refused kms:Decrypt through the service.
                "DecryptionFailure" | "KMSAccessDeniedException" | "KMSAccessDenied" => {
                    IdentityError::SecretAccessDenied {
                        store,
                        name,
                        action: "kms:Decrypt",
                        service,
                        message,
                    }
                }
                _ => IdentityError::SecretRefused {
                    store,
                    name,
                    code,
                    message,
                },
            }
        }
        other => IdentityError::SecretUnavailable {
            store,
            name,
            source: Box::new(other),
        },
    }
}

/// Reads `{"username", "password", "registry"?}`; a problem names the field, never its value.
fn parse_login(
    store: SecretStore,
    name: &str,
    text: Option<SecretString>,
) -> Result<RegistryLogin, IdentityError> {
    let malformed = |problem| IdentityError::MalformedLogin {
        store,
        name: name.to_owned(),
        problem,
    };
    let text = text.ok_or(malformed(MalformedLogin::NoText))?;
    let value: serde_json::Value = serde_json::from_str(text.expose_secret())
        .map_err(|_| malformed(MalformedLogin::NotJsonObject))?;
    let object = value
        .as_object()
        .ok_or(malformed(MalformedLogin::NotJsonObject))?;
    let non_empty = |key: &str| {
        object
            .get(key)
            .and_then(serde_json::Value::as_str)
            .filter(|value| !value.is_empty())
    };
    let user_name = non_empty("username").ok_or(malformed(MalformedLogin::UserName))?;
    let password = non_empty("password").ok_or(malformed(MalformedLogin::Password))?;
    let registry = match object.get("registry") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(registry)) => Some(registry.clone()),
        Some(_) => return Err(malformed(MalformedLogin::Registry)),
    };
    tracing::debug!(store = store.noun(), %name, "read the registry login");
    Ok(RegistryLogin {
        user_name: user_name.to_owned(),
        password: SecretString::from(password.to_owned()),
        registry,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assumed_role_arns_become_role_arns() {
        assert_eq!(
            role_arn_of("arn:aws:sts::123456789012:assumed-role/publisher-fleet/i-0abc"),
            "arn:aws:iam::123456789012:role/publisher-fleet"
        );
        assert_eq!(
            role_arn_of("arn:aws:iam::123456789012:user/ci"),
            "arn:aws:iam::123456789012:user/ci"
        );
    }

    #[test]
    fn malformed_logins_never_echo_their_content() {
        let cases = [
            ("hunter2-not-json", MalformedLogin::NotJsonObject),
            ("[\"hunter2\"]", MalformedLogin::NotJsonObject),
            ("{\"password\":\"hunter2\"}", MalformedLogin::UserName),
            (
                "{\"username\":\"ci\",\"password\":7}",
                MalformedLogin::Password,
            ),
            (
                "{\"username\":\"ci\",\"password\":\"hunter2\",\"registry\":[\"hunter2\"]}",
                MalformedLogin::Registry,
            ),
        ];
        for (text, expected) in cases {
            let error = parse_login(
                SecretStore::Ssm,
                "/pipeline-publisher/acme",
                Some(SecretString::from(text)),
            )
            .unwrap_err();
            let message = crate::error::inline_chain(&error);
            assert!(!message.contains("hunter2"), "{message}");
            assert!(
                matches!(error, IdentityError::MalformedLogin { problem, .. } if problem == expected)
            );
        }
        let login = parse_login(
            SecretStore::SecretsManager,
            "pipeline-publisher/acme",
            Some(SecretString::from(
                "{\"username\":\"ci\",\"password\":\"hunter2\",\"registry\":\"https://acme.jfrog.io\"}",
            )),
        )
        .unwrap();
        assert_eq!(login.user_name, "ci");
        assert!(!format!("{login:?}").contains("hunter2"));
    }
}
