//! The typed action configuration, parsed from a job before anything is done with it.
//!
//! Every missing or invalid property is collected and reported at once, so a pipeline author
//! fixes their action in one edit rather than one failed run per property.

use std::collections::BTreeMap;
use std::fmt;

use url::Url;

pub use crate::pipeline::authentication::{
    Authentication, AuthenticationError, AuthenticationMode, FleetTrust,
};
use crate::pipeline::job::JobData;
use crate::pipeline::properties::{
    ARTIFACTORY_HOST, AUTHENTICATION, EMAIL_ADDRESS, PASSWORD, PROPERTIES, PUBLISH_SPEC, REPO_KEY,
    TARGET_PATH, TYPE_OF_ARTIFACT, USER_NAME,
};
use crate::secret::SecretString;

pub use crate::pipeline::paths::{
    ArtifactPathError, PropertiesError, TargetPathError, expand_target_path, parse_properties,
    relative_file_path,
};

/// Used when `TargetPath` is empty: keeps every execution's files apart, so a rebuild never
/// collides with an earlier release.
pub const DEFAULT_TARGET_PATH: &str = "{PipelineName}/{ExecutionId}";

/// Policy the worker applies to every job's configuration.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConfigPolicy {
    /// Allow plain `http://` to hosts other than loopback (passwords would cross the network
    /// unencrypted, so this is off unless the operator asks for it).
    pub allow_insecure_http: bool,
}

/// Where the file spec is looked for in each input artifact when `PublishSpec` is empty.
pub const DEFAULT_PUBLISH_SPEC: &str = "publish-spec.json";

/// The package format of the files to publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactType {
    /// Every file as it is, under `TargetPath`.
    Generic,
    /// npm packages: `npm pack` tarballs and directories with a `package.json`.
    Npm,
    /// `.deb` packages, into the repository's pool with `deb.*` properties.
    Debian,
    /// Wheels and sdists, through the legacy upload API.
    Pypi,
    /// Decided per file: npm, Debian and Python packages by their content, the rest generic.
    Auto,
}

impl ArtifactType {
    /// The names `TypeOfArtifact` and a file spec's `type` accept.
    pub const NAMES: &'static str = "generic, npm, debian, pypi or auto";

    /// Parses a type name, ignoring case.
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "generic" => Some(Self::Generic),
            "npm" => Some(Self::Npm),
            "debian" | "deb" => Some(Self::Debian),
            "pypi" | "python" => Some(Self::Pypi),
            "auto" => Some(Self::Auto),
            _ => None,
        }
    }
}

/// The parsed, validated configuration of one job.
#[derive(Clone)]
pub struct ActionConfig {
    /// Registry base URL without a trailing slash or `/artifactory` suffix.
    pub host: Url,
    pub repo_key: String,
    /// How the registry token is obtained (`Authentication`; version 1 is always `password`).
    pub authentication: Authentication,
    pub artifact_type: ArtifactType,
    pub email_address: Option<String>,
    /// Path prefix inside the repository, placeholders expanded, no leading or trailing `/`.
    pub target_path: String,
    /// User properties for every deployed file; a key may carry several values.
    pub properties: BTreeMap<String, Vec<String>>,
    /// Path of the file spec inside each input artifact (`/`-separated, relative).
    pub publish_spec: String,
}

impl fmt::Debug for ActionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActionConfig")
            .field("host", &self.host.as_str())
            .field("repo_key", &self.repo_key)
            .field("authentication", &self.authentication)
            .field("artifact_type", &self.artifact_type)
            .field("target_path", &self.target_path)
            .field("properties", &self.properties)
            .field("publish_spec", &self.publish_spec)
            .finish()
    }
}

/// One thing wrong with one property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub property: &'static str,
    pub problem: String,
    /// What usually fixes it, where the problem's type knows (shown by the command line).
    pub hint: Option<&'static str>,
}

/// Every problem found in a job's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the action configuration has {} problem{}; edit the action in the pipeline and fix:",
            self.problems.len(),
            if self.problems.len() == 1 { "" } else { "s" }
        )?;
        for problem in &self.problems {
            write!(f, "\n  - {}: {}", problem.property, problem.problem)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl crate::error::Hint for ConfigError {
    fn hint(&self) -> Option<std::borrow::Cow<'static, str>> {
        let hints: Vec<&str> = self.problems.iter().filter_map(|p| p.hint).collect();
        (!hints.is_empty()).then(|| hints.join("\nhint: ").into())
    }
}

struct Problems(Vec<ConfigProblem>);

impl Problems {
    fn add(&mut self, property: &'static str, problem: impl Into<String>) {
        self.add_hinted(property, problem, None);
    }

    fn add_hinted(
        &mut self,
        property: &'static str,
        problem: impl Into<String>,
        hint: Option<&'static str>,
    ) {
        self.0.push(ConfigProblem {
            property,
            problem: problem.into(),
            hint,
        });
    }

    fn required<'a>(&mut self, data: &'a JobData, property: &'static str) -> Option<&'a str> {
        match data.configuration.get(property).map(str::trim) {
            Some(value) if !value.is_empty() => Some(value),
            _ => {
                self.add(property, "is required but missing");
                None
            }
        }
    }
}

/// The usual fix of an `ArtifactoryHost` that is not a base URL.
const HOST_HINT: &str = "ArtifactoryHost is the registry's base URL, e.g. https://acme.jfrog.io \
                         (a trailing /artifactory is accepted)";

fn optional<'a>(data: &'a JobData, property: &str) -> Option<&'a str> {
    data.configuration
        .get(property)
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

impl ActionConfig {
    /// Parses and validates the configuration of `data`, reporting every problem at once.
    pub fn from_job(data: &JobData, policy: ConfigPolicy) -> Result<Self, ConfigError> {
        let mut problems = Problems(Vec::new());

        let host = problems.required(data, ARTIFACTORY_HOST).and_then(|raw| {
            match parse_host(raw, policy) {
                Ok(url) => Some(url),
                Err(problem) => {
                    problems.add_hinted(ARTIFACTORY_HOST, problem.to_string(), problem.hint());
                    None
                }
            }
        });

        let repo_key = problems.required(data, REPO_KEY).and_then(|key| {
            let valid = key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                && !key.starts_with('.');
            if valid {
                Some(key.to_owned())
            } else {
                problems.add(
                    REPO_KEY,
                    format!("`{key}` is not a repository key (use letters, digits, '-', '_', '.')"),
                );
                None
            }
        });

        let authentication = authentication(data, &mut problems);

        let artifact_type = match optional(data, TYPE_OF_ARTIFACT) {
            None => Some(ArtifactType::Generic),
            Some(kind) => match ArtifactType::parse(kind) {
                Some(kind) => Some(kind),
                None => {
                    problems.add(
                        TYPE_OF_ARTIFACT,
                        format!("`{kind}` is not a known type; use {}", ArtifactType::NAMES),
                    );
                    None
                }
            },
        };

        let email_address = optional(data, EMAIL_ADDRESS).and_then(|email| {
            if email.contains('@') && !email.contains(char::is_whitespace) {
                Some(email.to_owned())
            } else {
                problems.add(EMAIL_ADDRESS, format!("`{email}` is not an e-mail address"));
                None
            }
        });

        let template = optional(data, TARGET_PATH).unwrap_or(DEFAULT_TARGET_PATH);
        let target_path = match expand_target_path(template, data) {
            Ok(path) => Some(path),
            Err(problem) => {
                problems.add_hinted(TARGET_PATH, problem.to_string(), problem.hint());
                None
            }
        };

        let properties = match parse_properties(optional(data, PROPERTIES).unwrap_or("")) {
            Ok(properties) => Some(properties),
            Err(problem) => {
                problems.add(PROPERTIES, problem.to_string());
                None
            }
        };

        let publish_spec = optional(data, PUBLISH_SPEC).unwrap_or(DEFAULT_PUBLISH_SPEC);
        let publish_spec = match relative_file_path(publish_spec) {
            Ok(path) => Some(path),
            Err(problem) => {
                problems.add(PUBLISH_SPEC, problem.to_string());
                None
            }
        };

        match (
            host,
            repo_key,
            authentication,
            artifact_type,
            target_path,
            properties,
            publish_spec,
        ) {
            (
                Some(host),
                Some(repo_key),
                Some(authentication),
                Some(artifact_type),
                Some(target_path),
                Some(properties),
                Some(publish_spec),
            ) if problems.0.is_empty() => Ok(Self {
                host,
                repo_key,
                authentication,
                artifact_type,
                email_address,
                target_path,
                properties,
                publish_spec,
            }),
            _ => Err(ConfigError {
                problems: problems.0,
            }),
        }
    }
}

/// `Authentication` and, in the password mode, `UserName` and `Password`.
fn authentication(data: &JobData, problems: &mut Problems) -> Option<Authentication> {
    let mode = match AuthenticationMode::parse(optional(data, AUTHENTICATION).unwrap_or("")) {
        Ok(mode) => mode,
        Err(problem) => {
            problems.add(AUTHENTICATION, problem.to_string());
            return None;
        }
    };
    // The password is taken as given: leading or trailing spaces may be part of it.
    let password = data
        .configuration
        .get(PASSWORD)
        .filter(|value| !value.is_empty());
    let (user_name, password) = match mode {
        AuthenticationMode::Password => (
            problems.required(data, USER_NAME).map(str::to_owned),
            match password {
                Some(value) => Some(SecretString::from(value.to_owned())),
                None => {
                    problems.add(PASSWORD, "is required but missing");
                    None
                }
            },
        ),
        other => {
            if password.is_some() {
                problems.add(
                    PASSWORD,
                    "is set, but this Authentication mode does not use it; remove the password \
                     from the pipeline",
                );
            }
            return Some(match other {
                AuthenticationMode::AwsIam => Authentication::AwsIam,
                AuthenticationMode::Oidc(provider) => Authentication::Oidc { provider },
                AuthenticationMode::SecretsManager(secret_id) => {
                    Authentication::SecretsManager { secret_id }
                }
                AuthenticationMode::Ssm(parameter) => Authentication::Ssm { parameter },
                AuthenticationMode::Password => return None,
            });
        }
    };
    Some(Authentication::Password {
        user_name: user_name?,
        password: password?,
    })
}

impl ActionConfig {
    /// Refuses, before any network call, a mode that would use the fleet's identity or secrets
    /// for a registry the fleet does not allow, or a secret outside the fleet's prefix.
    pub fn check_trust(&self, trust: &FleetTrust) -> Result<(), ConfigError> {
        check_trust(&self.host, &self.authentication, trust)
    }
}

/// [`ActionConfig::check_trust`] for a host and mode (for `check`, which has no whole action).
pub fn check_trust(
    host: &Url,
    authentication: &Authentication,
    trust: &FleetTrust,
) -> Result<(), ConfigError> {
    {
        let mut problems = Problems(Vec::new());
        if !authentication.uses_fleet_identity() {
            return Ok(());
        }
        if !trust.allows_registry(host) {
            let host = host.as_str().trim_end_matches('/');
            let why = if trust.allowed_registries.is_empty() {
                "the worker was started without --allowed-registries".to_owned()
            } else {
                "it is not one of the worker's --allowed-registries".to_owned()
            };
            problems.add_hinted(
                ARTIFACTORY_HOST,
                format!(
                    "Authentication {authentication} is refused for `{host}`: {why}; the worker \
                     uses its AWS identity and secrets only for registries its operator allows"
                ),
                Some(
                    "the fleet's operator adds the registry's base URL to --allowed-registries \
                     (PIPELINE_PUBLISHER_ALLOWED_REGISTRIES, the stack's AllowedRegistries), or \
                     use Authentication password",
                ),
            );
        }
        let outside = match authentication {
            Authentication::SecretsManager { secret_id } => {
                (!trust.allows_secret(secret_id)).then_some(("secret", secret_id))
            }
            Authentication::Ssm { parameter } => {
                (!trust.allows_parameter(parameter)).then_some(("parameter", parameter))
            }
            _ => None,
        };
        if let Some((what, name)) = outside {
            problems.add_hinted(
                AUTHENTICATION,
                format!(
                    "the {what} `{name}` is outside the worker's --secret-prefix `{}`; the worker \
                     reads no other secrets",
                    trust.secret_prefix
                ),
                Some("store the registry login under the fleet's secret prefix (the stack's SecretPrefix)"),
            );
        }
        if problems.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigError {
                problems: problems.0,
            })
        }
    }
}

/// Normalises a registry base URL as `ArtifactoryHost` is (for `--allowed-registries`, where the
/// operator may name plain-http hosts on purpose).
pub fn normalise_base_url(raw: &str) -> Result<Url, HostError> {
    parse_host(
        raw,
        ConfigPolicy {
            allow_insecure_http: true,
        },
    )
}

/// Why `ArtifactoryHost` cannot be used. Each is one line of the configuration problem list,
/// which is plain text: the URL parser's reason is part of the message, not a source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error(
        "`{raw}` is not a URL ({reason}); use the registry's base URL, e.g. https://acme.jfrog.io"
    )]
    NotUrl {
        raw: String,
        reason: url::ParseError,
    },
    #[error("`{raw}` must be an http(s) URL, e.g. https://acme.jfrog.io")]
    NotHttp { raw: String },
    #[error("`{raw}` has no host name; use the registry's base URL, e.g. https://acme.jfrog.io")]
    NoHost { raw: String },
    #[error("must not contain credentials; use UserName and Password")]
    Credentials,
    #[error("`{raw}` must not have a query or fragment; use the registry's base URL")]
    QueryOrFragment { raw: String },
    #[error(
        "`{raw}` uses plain http, which would send the password unencrypted; use https \
         (or start the worker with --allow-insecure-http)"
    )]
    PlainHttp { raw: String },
}

impl HostError {
    /// What usually fixes a host that is not the registry's base URL.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            HostError::NotUrl { .. } | HostError::NotHttp { .. } | HostError::NoHost { .. } => {
                Some(HOST_HINT)
            }
            HostError::Credentials
            | HostError::QueryOrFragment { .. }
            | HostError::PlainHttp { .. } => None,
        }
    }
}

fn parse_host(raw: &str, policy: ConfigPolicy) -> Result<Url, HostError> {
    let mut url = Url::parse(raw).map_err(|reason| HostError::NotUrl {
        raw: raw.to_owned(),
        reason,
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(HostError::NotHttp {
            raw: raw.to_owned(),
        });
    }
    let Some(host) = url.host() else {
        return Err(HostError::NoHost {
            raw: raw.to_owned(),
        });
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(HostError::Credentials);
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(HostError::QueryOrFragment {
            raw: raw.to_owned(),
        });
    }
    let loopback = match host {
        url::Host::Domain(name) => name == "localhost",
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    };
    if url.scheme() == "http" && !loopback && !policy.allow_insecure_http {
        return Err(HostError::PlainHttp {
            raw: raw.to_owned(),
        });
    }
    // People paste the URL they see in the UI; the REST paths are built from the base.
    let path = url.path().trim_end_matches('/');
    let path = path.strip_suffix("/artifactory").unwrap_or(path).to_owned();
    url.set_path(&path);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::job::{ActionConfiguration, Artifact, PipelineContext};

    fn job_data(pairs: &[(&str, &str)]) -> JobData {
        JobData {
            configuration: ActionConfiguration(
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            pipeline: PipelineContext {
                pipeline_name: "nestbox-firmware".into(),
                execution_id: "4e1c".into(),
                ..PipelineContext::default()
            },
            input_artifacts: vec![Artifact {
                name: "BuildOutput".into(),
                revision: Some("0123456789abcdef".into()),
                bucket: "b".into(),
                key: "k".into(),
            }],
            ..JobData::default()
        }
    }

    #[test]
    fn a_complete_configuration_parses() {
        let data = job_data(&[
            ("ArtifactoryHost", "https://acme.jfrog.io/artifactory/"),
            ("RepoKey", "firmware-releases"),
            ("UserName", "ci"),
            ("Password", " pass word "),
            ("TargetPath", "/nestbox/{ShortRevision}/"),
            ("Properties", "team=cameras;channel=beta,stable"),
        ]);
        let config = ActionConfig::from_job(&data, ConfigPolicy::default()).unwrap();
        assert_eq!(config.host.as_str(), "https://acme.jfrog.io/");
        assert_eq!(config.target_path, "nestbox/0123456");
        assert_eq!(config.properties["channel"], vec!["beta", "stable"]);
        assert!(!format!("{config:?}").contains("pass word"));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let data = job_data(&[
            ("ArtifactoryHost", "ftp://x"),
            ("TypeOfArtifact", "maven"),
            ("TargetPath", "../{Nope}"),
        ]);
        let error = ActionConfig::from_job(&data, ConfigPolicy::default()).unwrap_err();
        let properties: Vec<_> = error.problems.iter().map(|p| p.property).collect();
        assert_eq!(
            properties,
            [
                "ArtifactoryHost",
                "RepoKey",
                "UserName",
                "Password",
                "TypeOfArtifact",
                "TargetPath"
            ]
        );
    }

    #[test]
    fn plain_http_is_refused_except_on_loopback_or_when_allowed() {
        let strict = ConfigPolicy::default();
        assert!(parse_host("http://registry.example.com", strict).is_err());
        assert!(parse_host("http://127.0.0.1:8081", strict).is_ok());
        assert!(parse_host("http://localhost:8081", strict).is_ok());
        let lax = ConfigPolicy {
            allow_insecure_http: true,
        };
        assert!(parse_host("http://registry.example.com", lax).is_ok());
    }

    #[test]
    fn target_paths_cannot_escape_the_repository() {
        let data = job_data(&[]);
        assert!(expand_target_path("a/../b", &data).is_err());
        assert!(expand_target_path("a\\b", &data).is_err());
        assert_eq!(
            expand_target_path(DEFAULT_TARGET_PATH, &data).unwrap(),
            "nestbox-firmware/4e1c"
        );
    }
}
