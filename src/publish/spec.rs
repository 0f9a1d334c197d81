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

use crate::pipeline::config::{ArtifactType, parse_properties, relative_file_path};
use crate::publish::formats::MAX_METADATA_BYTES;
use crate::publish::pattern::Pattern;

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
pub fn read(path: &Path) -> Result<PublishSpec, String> {
    let file = std::fs::File::open(path).map_err(|error| format!("could not open it: {error}"))?;
    let bytes = crate::publish::formats::read_limited(file, MAX_METADATA_BYTES, "content")?;
    parse(&bytes)
}

/// Parses and checks a spec's JSON.
pub fn parse(bytes: &[u8]) -> Result<PublishSpec, String> {
    let raw: RawSpec = serde_json::from_slice(bytes).map_err(|error| {
        format!(
            "it is not a valid file spec ({error}); a spec is {{\"settings\": {{…}}, \"files\": \
             [{{\"pattern\", \"target\", \"props\", \"type\", \"flat\", \"exclusions\"}}]}}"
        )
    })?;
    if raw.files.is_empty() {
        return Err("its \"files\" list is empty; list at least one pattern".into());
    }
    let mut entries = Vec::with_capacity(raw.files.len());
    for (index, entry) in raw.files.into_iter().enumerate() {
        let at = |problem: String| format!("files[{index}]: {problem}");
        let pattern = inside_artifact(&entry.pattern).map_err(at)?;
        let exclusions = entry
            .exclusions
            .iter()
            .map(|exclusion| inside_artifact(exclusion))
            .collect::<Result<Vec<_>, _>>()
            .map_err(at)?;
        let kind = match entry.kind.as_deref() {
            None => None,
            Some(name) => Some(ArtifactType::parse(name).ok_or_else(|| {
                at(format!(
                    "\"type\": `{name}` is not one of {}",
                    ArtifactType::NAMES
                ))
            })?),
        };
        let flat = match entry.flat {
            None => false,
            Some(Flag::Bool(flat)) => flat,
            Some(Flag::Text(text)) => match text.as_str() {
                "true" => true,
                "false" => false,
                other => return Err(at(format!("\"flat\": `{other}` is not true or false"))),
            },
        };
        let props = parse_properties(entry.props.as_deref().unwrap_or(""))
            .map_err(|problem| at(format!("\"props\": {problem}")))?;
        entries.push(SpecEntry {
            pattern_text: entry.pattern.clone(),
            pattern: Pattern::jfrog(&pattern).map_err(at)?,
            exclusions: exclusions
                .iter()
                .map(|exclusion| Pattern::jfrog(exclusion))
                .collect::<Result<_, _>>()
                .map_err(at)?,
            target: entry.target,
            props,
            kind,
            flat,
        });
    }
    Ok(PublishSpec {
        settings: raw.settings,
        entries,
    })
}

/// A pattern is a path inside the artifact: no leading `/`, no `..`, no `\`.
fn inside_artifact(pattern: &str) -> Result<String, String> {
    // Wildcards are not path segments; check the literal shape with them replaced.
    let literal = pattern.replace(['*', '?', '(', ')'], "x");
    relative_file_path(&literal)
        .map(|_| pattern.trim().trim_start_matches("./").to_owned())
        .map_err(|_| {
            format!(
                "pattern `{pattern}` would reach outside the artifact; patterns are relative \
                 paths inside it (no `..`, `\\` or leading `/`)"
            )
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

    #[test]
    fn unknown_keys_and_escaping_patterns_are_refused_clearly() {
        let unknown = parse(br#"{"files":[{"pattern":"*","tagret":"x/"}]}"#).unwrap_err();
        assert!(unknown.contains("unknown field `tagret`"), "{unknown}");
        let settings =
            parse(br#"{"settings":{"npmtag":"x"},"files":[{"pattern":"*"}]}"#).unwrap_err();
        assert!(settings.contains("unknown field `npmtag`"), "{settings}");
        for escaping in ["../secrets/*", "/etc/*", "a/../../b", "a\\b"] {
            let spec = format!(
                r#"{{"files":[{{"pattern":"{}"}}]}}"#,
                escaping.replace('\\', "\\\\")
            );
            let error = parse(spec.as_bytes()).unwrap_err();
            assert!(
                error.contains("outside the artifact"),
                "{escaping}: {error}"
            );
        }
    }
}
