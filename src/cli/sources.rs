//! The sources a worker serves, as configured: `--source` flags and `--sources-file`.
//!
//! A source is one account and region where the custom action type lives: the region, the role
//! to assume there (none: the worker's own credentials) with its external ID, and the versions
//! of the action type to poll. Without any, the worker serves one source: its own account and
//! region (`AWS_REGION`), the version of `--action-version`, exactly as before sources existed.
//!
//! `--source` (repeatable; `PIPELINE_PUBLISHER_SOURCES` holds several separated by `;`) is a
//! comma-separated list of `key=value` items:
//!
//! ```text
//! --source region=eu-west-1,role=arn:aws:iam::222233334444:role/pipeline-publisher-poller,external-id=fleet-7f3a,versions=1+2
//! ```
//!
//! | key           | value                                                                    |
//! |---------------|--------------------------------------------------------------------------|
//! | `region`      | the source's region (default: the worker's `AWS_REGION`)                   |
//! | `role`        | ARN of the IAM role to assume there (default: the worker's own identity)  |
//! | `external-id` | the `ExternalId` the role's trust policy requires (only with `role`)     |
//! | `account`     | the account id (default: the role's account); names the source and maps wake-up events |
//! | `versions`    | action type versions, joined with `+` (default: `--action-version`)      |
//! | `name`        | how logs, metrics and `/healthz` name it (default: `ACCOUNT/REGION`, or `REGION`) |
//!
//! A value cannot hold a comma there (external IDs may): use the file for such a source.
//!
//! `--sources-file` is JSON, not TOML: JSON needs no parser beyond the one the worker already
//! has, and the documents a fleet is set up with — a CloudFormation parameter, an SSM
//! parameter, `aws` CLI output — are JSON already, so the file can be written from them
//! without a conversion step. It holds an object with a `sources` array whose entries take the
//! keys above (`versions` as an array of strings or numbers):
//!
//! ```json
//! {"sources": [
//!   {"region": "eu-west-1"},
//!   {"region": "us-east-1", "role": "arn:aws:iam::222233334444:role/pipeline-publisher-poller",
//!    "external-id": "fleet-7f3a", "versions": ["1", "2"]}
//! ]}
//! ```
//!
//! Anything malformed is a usage error (exit 64) naming the entry and the field.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

/// The longest idle wait without a wake-up queue (and while it fails).
pub const POLL_MAX_INTERVAL: Duration = Duration::from_secs(10);
/// The longest idle wait while a wake-up queue answers: a safety net only.
pub const WAKE_QUEUE_POLL_MAX_INTERVAL: Duration = Duration::from_secs(60);

/// The `--source` and `--sources-file` flags (of `worker` and `check`).
#[derive(Debug, Clone, Default, Args)]
pub struct SourcesArgs {
    /// A source to serve (repeatable): region=R[,role=ARN][,external-id=ID][,account=ID][,versions=1+2][,name=N];
    /// default: the worker's own account and AWS_REGION. Several in the variable are separated by `;`.
    #[arg(long = "source", env = "PIPELINE_PUBLISHER_SOURCES", value_delimiter = ';', value_parser = parse_source)]
    pub sources: Vec<SourceSpec>,
    /// A JSON file of sources, {"sources": [{"region": …, "role": …, "external-id": …, "versions": […]}]}, served besides any --source.
    #[arg(long, env = "PIPELINE_PUBLISHER_SOURCES_FILE")]
    pub sources_file: Option<PathBuf>,
}

impl SourcesArgs {
    /// Every source configured, with defaults applied (see the module docs).
    pub fn resolve(
        &self,
        default_region: Option<&str>,
        default_versions: &[String],
    ) -> Result<Vec<Source>, SourcesError> {
        let mut specs = self.sources.clone();
        if let Some(path) = &self.sources_file {
            specs.extend(load_file(path)?);
        }
        resolve(&specs, default_region, default_versions)
    }
}

/// One source as configured, before defaults are applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SourceSpec {
    pub name: Option<String>,
    pub region: Option<String>,
    pub role: Option<String>,
    pub external_id: Option<String>,
    pub account: Option<String>,
    #[serde(default, deserialize_with = "versions")]
    pub versions: Option<Vec<String>>,
}

/// A source with every default applied: what the worker builds a job API from.
#[derive(Clone, PartialEq, Eq)]
pub struct Source {
    pub name: String,
    pub region: String,
    pub role: Option<String>,
    pub external_id: Option<String>,
    /// Known when given or when the role names it; the worker's own account otherwise.
    pub account: Option<String>,
    pub versions: Vec<String>,
}

impl Source {
    /// How to reach the source, with `session_name` for the role session (CloudTrail shows it).
    pub fn access<'a>(
        &'a self,
        session_name: &'a str,
    ) -> crate::pipeline::sources::SourceAccess<'a> {
        crate::pipeline::sources::SourceAccess {
            region: &self.region,
            role: self.role.as_deref(),
            external_id: self.external_id.as_deref(),
            session_name,
        }
    }

    /// `action_type` in each version this source serves.
    pub fn action_types(
        &self,
        action_type: &crate::pipeline::ActionTypeId,
    ) -> Vec<crate::pipeline::ActionTypeId> {
        self.versions
            .iter()
            .map(|version| crate::pipeline::ActionTypeId {
                version: version.clone(),
                ..action_type.clone()
            })
            .collect()
    }
}

impl std::fmt::Debug for Source {
    // The external ID is not a secret, but it is one half of the trust: kept out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("name", &self.name)
            .field("region", &self.region)
            .field("role", &self.role)
            .field("external_id", &self.external_id.as_ref().map(|_| "…"))
            .field("account", &self.account)
            .field("versions", &self.versions)
            .finish()
    }
}

/// What is wrong with one field of one source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {reason}")]
pub struct FieldProblem {
    pub field: String,
    pub reason: String,
}

impl FieldProblem {
    fn new(field: &str, reason: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Why the configured sources cannot be used; a usage error (exit 64).
#[derive(Debug, thiserror::Error)]
pub enum SourcesError {
    #[error("--source `{entry}`: {problem}")]
    Flag {
        entry: String,
        #[source]
        problem: FieldProblem,
    },
    #[error("`{path}`, sources[{index}]: {problem}")]
    FileEntry {
        path: PathBuf,
        index: usize,
        #[source]
        problem: FieldProblem,
    },
    #[error("could not read the sources file `{path}` (--sources-file)")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "`{path}` is not a sources file: {reason} (expected {{\"sources\": [{{\"region\": …}}, …]}})"
    )]
    Json { path: PathBuf, reason: String },
    #[error("no region for source `{entry}`: give it region=, or set AWS_REGION")]
    NoRegion { entry: String },
    #[error(
        "two sources are both named `{name}`; give each its own name= (or another region/account)"
    )]
    Duplicate { name: String },
}

const KEYS: &str = "region, role, external-id, account, versions, name";

/// Parses one `--source` value (clap's value parser: its error names the field).
pub fn parse_source(value: &str) -> Result<SourceSpec, FieldProblem> {
    let mut spec = SourceSpec::default();
    for item in value.split(',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let Some((key, raw)) = item.split_once('=') else {
            return Err(FieldProblem::new(
                item,
                format!("expected key=value (keys: {KEYS})"),
            ));
        };
        let key = key.trim();
        let raw = raw.trim().to_owned();
        let slot = match key {
            "region" => &mut spec.region,
            "role" => &mut spec.role,
            "external-id" => &mut spec.external_id,
            "account" => &mut spec.account,
            "name" => &mut spec.name,
            "versions" => {
                if spec.versions.is_some() {
                    return Err(FieldProblem::new(key, "given twice"));
                }
                spec.versions = Some(raw.split('+').map(|v| v.trim().to_owned()).collect());
                continue;
            }
            other => {
                return Err(FieldProblem::new(
                    other,
                    format!("unknown field (known: {KEYS})"),
                ));
            }
        };
        if slot.is_some() {
            return Err(FieldProblem::new(key, "given twice"));
        }
        *slot = Some(raw);
    }
    spec.check()?;
    Ok(spec)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourcesFile {
    sources: Vec<serde_json::Value>,
}

/// Reads `--sources-file`.
pub fn load_file(path: &Path) -> Result<Vec<SourceSpec>, SourcesError> {
    let text = std::fs::read_to_string(path).map_err(|source| SourcesError::Read {
        path: path.to_owned(),
        source,
    })?;
    let file: SourcesFile = serde_json::from_str(&text).map_err(|error| SourcesError::Json {
        path: path.to_owned(),
        reason: error.to_string(),
    })?;
    let entry_error = |index, problem| SourcesError::FileEntry {
        path: path.to_owned(),
        index,
        problem,
    };
    file.sources
        .into_iter()
        .enumerate()
        .map(|(index, value)| {
            let spec: SourceSpec = serde_json::from_value(value)
                .map_err(|error| entry_error(index, field_of_json_error(&error)))?;
            spec.check()
                .map_err(|problem| entry_error(index, problem))?;
            Ok(spec)
        })
        .collect()
}

/// serde's message names the field for unknown ones (`unknown field `x``) and for wrong types
/// it is all there is; either way it is the reason, and the field is picked out when named.
fn field_of_json_error(error: &serde_json::Error) -> FieldProblem {
    let text = error.to_string();
    let field = text
        .split('`')
        .nth(1)
        .filter(|_| text.starts_with("unknown field") || text.starts_with("missing field"))
        .unwrap_or("?")
        .to_owned();
    FieldProblem {
        field,
        reason: text,
    }
}

fn versions<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Version {
        Text(String),
        Number(u64),
    }
    let versions = Option::<Vec<Version>>::deserialize(deserializer)?;
    Ok(versions.map(|versions| {
        versions
            .into_iter()
            .map(|version| match version {
                Version::Text(text) => text,
                Version::Number(number) => number.to_string(),
            })
            .collect()
    }))
}

impl SourceSpec {
    /// Checks each field on its own (defaults and cross-source rules come in [`resolve`]).
    fn check(&self) -> Result<(), FieldProblem> {
        if let Some(region) = &self.region {
            let parts: Vec<&str> = region.split('-').collect();
            let valid = parts.len() >= 3
                && parts.iter().all(|part| {
                    !part.is_empty()
                        && part
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                })
                && parts
                    .last()
                    .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()));
            if !valid {
                return Err(FieldProblem::new(
                    "region",
                    format!("`{region}` is not an AWS region (e.g. eu-west-1)"),
                ));
            }
        }
        let role_account = match &self.role {
            Some(role) => Some(role_account(role).ok_or_else(|| {
                FieldProblem::new(
                    "role",
                    format!(
                        "`{role}` is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)"
                    ),
                )
            })?),
            None => None,
        };
        if let Some(external_id) = &self.external_id {
            if self.role.is_none() {
                return Err(FieldProblem::new(
                    "external-id",
                    "only a role takes an external ID; add role=",
                ));
            }
            let valid = (2..=1224).contains(&external_id.len())
                && external_id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(c));
            if !valid {
                return Err(FieldProblem::new(
                    "external-id",
                    "must be 2 to 1224 characters of letters, digits and _+=,.@:/-",
                ));
            }
        }
        if let Some(account) = &self.account {
            if account.len() != 12 || !account.chars().all(|c| c.is_ascii_digit()) {
                return Err(FieldProblem::new(
                    "account",
                    format!("`{account}` is not a 12-digit account id"),
                ));
            }
            if let Some(role_account) = role_account
                && role_account != account
            {
                return Err(FieldProblem::new(
                    "account",
                    format!("`{account}` is not the account of the role ({role_account})"),
                ));
            }
        }
        if let Some(versions) = &self.versions {
            if versions.is_empty() {
                return Err(FieldProblem::new("versions", "no version given"));
            }
            for (index, version) in versions.iter().enumerate() {
                let valid = (1..=9).contains(&version.len())
                    && version
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if !valid {
                    return Err(FieldProblem::new(
                        "versions",
                        format!(
                            "`{version}` is not an action type version (1 to 9 of A-Z a-z 0-9 _ -; \
                             several joined with +)"
                        ),
                    ));
                }
                if versions[..index].contains(version) {
                    return Err(FieldProblem::new(
                        "versions",
                        format!("`{version}` is listed twice"),
                    ));
                }
            }
        }
        if let Some(name) = &self.name {
            let valid = (1..=64).contains(&name.len())
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._/-".contains(c));
            if !valid {
                return Err(FieldProblem::new(
                    "name",
                    "must be 1 to 64 characters of letters, digits and ._/-",
                ));
            }
        }
        Ok(())
    }

    /// How an error about this entry names it.
    fn describe(&self) -> String {
        self.name
            .clone()
            .or_else(|| self.role.clone())
            .unwrap_or_else(|| "(no name)".to_owned())
    }
}

/// The account id in an IAM role ARN, `arn:PARTITION:iam::ACCOUNT:role/NAME`.
pub fn role_account(role: &str) -> Option<&str> {
    let mut parts = role.splitn(6, ':');
    let (arn, partition, service, region, account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    let valid = arn == "arn"
        && partition.starts_with("aws")
        && service == "iam"
        && region.is_empty()
        && account.len() == 12
        && account.chars().all(|c| c.is_ascii_digit())
        && resource.len() > "role/".len()
        && resource.starts_with("role/");
    valid.then_some(account)
}

/// Applies the defaults (region `default_region`, versions `default_version`) and the rules
/// across sources. No spec at all: the one default source.
pub fn resolve(
    specs: &[SourceSpec],
    default_region: Option<&str>,
    default_versions: &[String],
) -> Result<Vec<Source>, SourcesError> {
    let default_spec = [SourceSpec::default()];
    let specs = if specs.is_empty() {
        &default_spec[..]
    } else {
        specs
    };
    let mut sources: Vec<Source> = Vec::with_capacity(specs.len());
    for spec in specs {
        let region = spec
            .region
            .clone()
            .or_else(|| default_region.map(str::to_owned))
            .ok_or_else(|| SourcesError::NoRegion {
                entry: spec.describe(),
            })?;
        let account = spec.account.clone().or_else(|| {
            spec.role
                .as_deref()
                .and_then(role_account)
                .map(str::to_owned)
        });
        let name = spec.name.clone().unwrap_or_else(|| match &account {
            Some(account) => format!("{account}/{region}"),
            None => region.clone(),
        });
        if sources.iter().any(|source| source.name == name) {
            return Err(SourcesError::Duplicate { name });
        }
        sources.push(Source {
            name,
            region,
            role: spec.role.clone(),
            external_id: spec.external_id.clone(),
            account,
            versions: spec
                .versions
                .clone()
                .unwrap_or_else(|| default_versions.to_vec()),
        });
    }
    Ok(sources)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLE: &str = "arn:aws:iam::222233334444:role/pipeline-publisher-poller";

    #[test]
    fn a_flag_names_every_field_and_defaults_fill_the_rest() {
        let spec = parse_source(&format!(
            "region=us-east-1,role={ROLE},external-id=fleet-7f3a,versions=1+2"
        ))
        .unwrap();
        let sources = resolve(
            &[spec, SourceSpec::default()],
            Some("eu-west-1"),
            &["1".to_owned()],
        )
        .unwrap();
        assert_eq!(sources[0].name, "222233334444/us-east-1");
        assert_eq!(sources[0].account.as_deref(), Some("222233334444"));
        assert_eq!(sources[0].versions, ["1", "2"]);
        assert_eq!(sources[1].name, "eu-west-1");
        assert_eq!(sources[1].versions, ["1"]);
        assert!(!format!("{:?}", sources[0]).contains("fleet-7f3a"));
    }

    #[test]
    fn no_source_is_the_worker_itself() {
        let sources = resolve(&[], Some("eu-west-1"), &["3".to_owned()]).unwrap();
        assert_eq!(sources.len(), 1);
        assert_eq!(
            (sources[0].region.as_str(), sources[0].role.as_deref()),
            ("eu-west-1", None)
        );
        assert!(matches!(
            resolve(&[], None, &["1".to_owned()]),
            Err(SourcesError::NoRegion { .. })
        ));
    }

    #[test]
    fn malformed_flags_name_the_field() {
        for (value, field) in [
            ("region=Europe", "region"),
            ("role=arn:aws:iam::2222:role/x", "role"),
            ("region=eu-west-1,external-id=abc", "external-id"),
            (&format!("role={ROLE},account=111122223333"), "account"),
            ("versions=1+", "versions"),
            ("versions=1+1", "versions"),
            ("colour=blue", "colour"),
            ("eu-west-1", "eu-west-1"),
            ("region=eu-west-1,region=us-east-1", "region"),
        ] {
            let problem = parse_source(value).unwrap_err();
            assert_eq!(problem.field, field, "{value}: {problem}");
        }
    }

    #[test]
    fn a_file_entry_is_named_by_its_index_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sources.json");
        std::fs::write(
            &path,
            format!(
                r#"{{"sources": [{{"region": "eu-west-1"}},
                   {{"region": "us-east-1", "role": "{ROLE}", "external-id": "a,b=c", "versions": [1, "2"]}}]}}"#
            ),
        )
        .unwrap();
        let specs = load_file(&path).unwrap();
        assert_eq!(
            specs[1].versions.as_deref(),
            Some(&["1".into(), "2".into()][..])
        );
        assert_eq!(specs[1].external_id.as_deref(), Some("a,b=c"));

        std::fs::write(
            &path,
            r#"{"sources": [{"region": "eu-west-1"}, {"region": "eu-west-1", "rol": "x"}]}"#,
        )
        .unwrap();
        let error = load_file(&path).unwrap_err();
        assert!(
            matches!(&error, SourcesError::FileEntry { index: 1, problem, .. } if problem.field == "rol"),
            "{error}"
        );
        std::fs::write(&path, r#"{"sources": [{"versions": "1"}]}"#).unwrap();
        let error = load_file(&path).unwrap_err().to_string();
        assert!(error.contains("sources[0]"), "{error}");
        std::fs::write(&path, r#"[{"region": "eu-west-1"}]"#).unwrap();
        assert!(matches!(load_file(&path), Err(SourcesError::Json { .. })));
    }

    #[test]
    fn two_sources_may_not_share_a_name() {
        let one = parse_source("region=eu-west-1").unwrap();
        assert!(matches!(
            resolve(&[one.clone(), one], None, &["1".to_owned()]),
            Err(SourcesError::Duplicate { .. })
        ));
    }
}
