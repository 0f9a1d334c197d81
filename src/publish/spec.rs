//! The file spec: a JFrog-CLI-style `publish-spec.json` in the build output that decides which
//! files go where, as which type, with which properties — plus the settings that do not fit in
//! the action's ten configuration properties.
//!
//! ```json
//! { "settings": { "buildName": "nestbox", "npmTag": "next",
//!                 "debianDistribution": "bookworm", "debianComponent": "main" },
//!   "files": [ { "pattern": "firmware/(*).img", "target": "firmware-local/nestbox-cam/{1}/",
//!                "props": "board=rpi-zero-2w", "type": "generic", "flat": true,
//!                "exclusions": ["*.tmp"] } ] }
//! ```
//! Unknown keys are refused (a typo would otherwise silently publish the wrong thing), and
//! patterns and targets cannot leave the artifact or the repository.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::pipeline::config::{
    ArtifactType, PropertiesError, parse_properties, relative_file_path,
};
use crate::publish::formats::{MetadataError, WorkspaceError, WorkspaceFailure, read_extracted};
use crate::publish::pattern::{Pattern, PatternError};

/// Why a file spec cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error(transparent)]
    Unreadable(#[from] MetadataError),
    #[error(
        "it is not a valid file spec; a spec is {{\"settings\": {{…}}, \"files\": \
         [{{\"pattern\", \"target\", \"props\", \"type\", \"flat\", \"exclusions\"}}]}}"
    )]
    Invalid(#[source] serde_json::Error),
    #[error("its \"files\" list is empty; list at least one pattern")]
    NoFiles,
    #[error("its files[{index}] entry cannot be used")]
    Entry {
        index: usize,
        #[source]
        problem: EntryError,
    },
}

impl WorkspaceFailure for SpecError {
    fn into_workspace(self) -> Result<WorkspaceError, Self> {
        match self {
            SpecError::Unreadable(MetadataError::Workspace(error)) => Ok(error),
            other => Err(other),
        }
    }
}

/// What is wrong with one `files` entry of a spec.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    #[error(
        "pattern `{pattern}` would reach outside the artifact; patterns are relative paths inside \
         it (no `..`, `\\` or leading `/`)"
    )]
    OutsideArtifact { pattern: String },
    #[error("\"type\": `{name}` is not one of {}", ArtifactType::NAMES)]
    UnknownType { name: String },
    #[error("\"flat\": `{value}` is not true or false")]
    NotABoolean { value: String },
    #[error("\"props\" is not a property list like `team=cams;channel=beta,stable`")]
    Props(#[source] PropertiesError),
    #[error(transparent)]
    Pattern(#[from] PatternError),
}

/// Settings the action's configuration properties have no room for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SpecSettings {
    /// Build-info name; the pipeline name when unset.
    pub build_name: Option<String>,
    /// npm dist-tag; `latest` when unset (required for prereleases).
    pub npm_tag: Option<String>,
    /// npm `access` (`public` or `restricted`) for scoped packages.
    pub npm_access: Option<String>,
    /// Debian distribution (`bookworm`) for `.deb` files.
    pub debian_distribution: Option<String>,
    /// Debian component; `main` when unset.
    pub debian_component: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    #[serde(default)]
    settings: SpecSettings,
    files: Vec<RawEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    pattern: String,
    target: Option<String>,
    props: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    flat: Option<Flag>,
    #[serde(default)]
    exclusions: Vec<String>,
}

/// JFrog CLI writes booleans as strings (`"flat": "true"`); both are accepted.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Flag {
    Bool(bool),
    Text(String),
}

/// One `files` entry, checked.
#[derive(Debug, Clone)]
pub struct SpecEntry {
    pub pattern_text: String,
    pattern: Pattern,
    exclusions: Vec<Pattern>,
    /// `repository/path`, as in JFrog CLI; a trailing `/` makes the path a folder. May use
    /// `{1}`… and the `TargetPath` placeholders. For npm and PyPI only the repository counts
    /// (their registry API decides the path). `None`: `RepoKey` and `TargetPath`.
    pub target: Option<String>,
    pub props: BTreeMap<String, Vec<String>>,
    /// `None`: the action's `TypeOfArtifact`.
    pub kind: Option<ArtifactType>,
    /// Put files directly in the target folder instead of keeping their path.
    pub flat: bool,
}

/// A parsed file spec.
#[derive(Debug, Clone)]
pub struct PublishSpec {
    pub settings: SpecSettings,
    pub entries: Vec<SpecEntry>,
}

impl SpecEntry {
    /// The captures when `path` matches the pattern and no exclusion.
    pub fn captures(&self, path: &str) -> Option<Vec<String>> {
        if self
            .exclusions
            .iter()
            .any(|exclusion| exclusion.is_match(path))
        {
            return None;
        }
        self.pattern.captures(path)
    }
}

/// Reads and checks the spec at `path`.
pub fn read(path: &Path) -> Result<PublishSpec, SpecError> {
    parse(&read_extracted(path, "content")?)
}

/// Parses and checks a spec's JSON.
pub fn parse(bytes: &[u8]) -> Result<PublishSpec, SpecError> {
    let raw: RawSpec = serde_json::from_slice(bytes).map_err(SpecError::Invalid)?;
    if raw.files.is_empty() {
        return Err(SpecError::NoFiles);
    }
    let mut entries = Vec::with_capacity(raw.files.len());
    for (index, entry) in raw.files.into_iter().enumerate() {
        entries.push(checked_entry(entry).map_err(|problem| SpecError::Entry { index, problem })?);
    }
    Ok(PublishSpec {
        settings: raw.settings,
        entries,
    })
}

fn checked_entry(entry: RawEntry) -> Result<SpecEntry, EntryError> {
    let pattern = inside_artifact(&entry.pattern)?;
    let exclusions = entry
        .exclusions
        .iter()
        .map(|exclusion| inside_artifact(exclusion))
        .collect::<Result<Vec<_>, _>>()?;
    let kind = match entry.kind.as_deref() {
        None => None,
        Some(name) => Some(
            ArtifactType::parse(name).ok_or_else(|| EntryError::UnknownType {
                name: name.to_owned(),
            })?,
        ),
    };
    let flat = match entry.flat {
        None => false,
        Some(Flag::Bool(flat)) => flat,
        Some(Flag::Text(text)) => match text.as_str() {
            "true" => true,
            "false" => false,
            other => {
                return Err(EntryError::NotABoolean {
                    value: other.to_owned(),
                });
            }
        },
    };
    let props =
        parse_properties(entry.props.as_deref().unwrap_or("")).map_err(EntryError::Props)?;
    Ok(SpecEntry {
        pattern_text: entry.pattern.clone(),
        pattern: Pattern::jfrog(&pattern)?,
        exclusions: exclusions
            .iter()
            .map(|exclusion| Pattern::jfrog(exclusion))
            .collect::<Result<_, _>>()?,
        target: entry.target,
        props,
        kind,
        flat,
    })
}

/// A pattern is a path inside the artifact: no leading `/`, no `..`, no `\`.
fn inside_artifact(pattern: &str) -> Result<String, EntryError> {
    // Wildcards are not path segments; check the literal shape with them replaced.
    let literal = pattern.replace(['*', '?', '(', ')'], "x");
    relative_file_path(&literal)
        .map(|_| pattern.trim().trim_start_matches("./").to_owned())
        .map_err(|_| EntryError::OutsideArtifact {
            pattern: pattern.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_parses_with_jfrog_style_flags_and_captures() {
        let spec = parse(
            br#"{"settings":{"npmTag":"next"},"files":[
                {"pattern":"fw/(*).img","target":"fw-local/cam/{1}/","flat":"true","exclusions":["*-debug.img"]},
                {"pattern":"agent/*.deb","type":"debian","props":"team=cams"}]}"#,
        )
        .unwrap();
        assert_eq!(spec.settings.npm_tag.as_deref(), Some("next"));
        let first = &spec.entries[0];
        assert!(first.flat);
        assert_eq!(
            first.captures("fw/nestbox-2.4.1.img"),
            Some(vec!["nestbox-2.4.1".into()])
        );
        assert_eq!(first.captures("fw/nestbox-debug.img"), None);
        assert_eq!(spec.entries[1].kind, Some(ArtifactType::Debian));
    }

    /// The error and its causes as a pipeline author reads them.
    fn rendered(error: SpecError) -> String {
        crate::error::render_chain(&error, crate::error::no_hints)
    }

    #[test]
    fn unknown_keys_and_escaping_patterns_are_refused_clearly() {
        let unknown = rendered(parse(br#"{"files":[{"pattern":"*","tagret":"x/"}]}"#).unwrap_err());
        assert!(unknown.contains("unknown field `tagret`"), "{unknown}");
        let settings = rendered(
            parse(br#"{"settings":{"npmtag":"x"},"files":[{"pattern":"*"}]}"#).unwrap_err(),
        );
        assert!(settings.contains("unknown field `npmtag`"), "{settings}");
        for escaping in ["../secrets/*", "/etc/*", "a/../../b", "a\\b"] {
            let spec = format!(
                r#"{{"files":[{{"pattern":"{}"}}]}}"#,
                escaping.replace('\\', "\\\\")
            );
            let error = rendered(parse(spec.as_bytes()).unwrap_err());
            assert!(
                error.contains("outside the artifact"),
                "{escaping}: {error}"
            );
        }
    }
}
