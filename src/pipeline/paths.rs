//! Parsing of the path- and property-shaped configuration values: `TargetPath` templates,
//! paths inside the artifact, and `key=value;key2=v1,v2` property lists. Each result is checked
//! to stay inside the repository or artifact it names.

use std::collections::BTreeMap;

use crate::pipeline::job::JobData;

/// Artifactory item properties: each key with its values.
pub type Properties = BTreeMap<String, Vec<String>>;

impl TargetPathError {
    /// What usually fixes it, shown by the command line.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            TargetPathError::NoRevision { .. } => Some(
                "pass the revision with --revision (publish) or drop {Revision} / \
                 {ShortRevision} from TargetPath",
            ),
            _ => None,
        }
    }
}

/// Why a `TargetPath` template (or a file spec's target) cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetPathError {
    #[error("`{template}` has an unclosed `{{`; close it, as in {{PipelineName}}")]
    UnclosedPlaceholder { template: String },
    // A snapshot asserts this text; the CLI shows `TargetPathError::hint` after it.
    #[error("`{template}` uses {{{placeholder}}} but the input artifact has no revision")]
    NoRevision {
        template: String,
        placeholder: &'static str,
    },
    #[error(
        "`{template}` uses unknown placeholder {{{placeholder}}}; known: {{PipelineName}}, \
         {{ExecutionId}}, {{Revision}}, {{ShortRevision}}"
    )]
    UnknownPlaceholder {
        template: String,
        placeholder: String,
    },
    #[error("`{path}` must stay inside the repository (no `.`, `..` or `\\`)")]
    OutsideRepository { path: String },
    #[error("`{path}` contains control characters; remove them")]
    ControlCharacters { path: String },
}

/// A path that is not a relative path inside the artifact.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{raw}` must be a relative path inside the artifact, e.g. publish-spec.json or \
     ci/publish-spec.json (no `..`, `\\` or leading `/`)"
)]
pub struct ArtifactPathError {
    pub raw: String,
}

/// Why a `key=value;key2=v1,v2` property list cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PropertiesError {
    #[error("`{pair}` is not key=value (separate pairs with `;`)")]
    NotKeyValue { pair: String },
    #[error("`{pair}` needs a key without spaces before `=`")]
    BadKey { pair: String },
}

/// Expands `{PipelineName}`, `{ExecutionId}`, `{Revision}` and `{ShortRevision}` and checks that
/// the result stays inside the repository.
pub fn expand_target_path(template: &str, data: &JobData) -> Result<String, TargetPathError> {
    let revision = data
        .input_artifacts
        .iter()
        .find_map(|artifact| artifact.revision.as_deref());
    let mut expanded = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        expanded.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}') else {
            return Err(TargetPathError::UnclosedPlaceholder {
                template: template.to_owned(),
            });
        };
        let name = &rest[start + 1..start + end];
        let value = match name {
            "PipelineName" => data.pipeline.pipeline_name.clone(),
            "ExecutionId" => data.pipeline.execution_id.clone(),
            "Revision" | "ShortRevision" => {
                let Some(revision) = revision else {
                    return Err(TargetPathError::NoRevision {
                        template: template.to_owned(),
                        placeholder: if name == "Revision" {
                            "Revision"
                        } else {
                            "ShortRevision"
                        },
                    });
                };
                if name == "Revision" {
                    revision.to_owned()
                } else {
                    revision.chars().take(7).collect()
                }
            }
            other => {
                return Err(TargetPathError::UnknownPlaceholder {
                    template: template.to_owned(),
                    placeholder: other.to_owned(),
                });
            }
        };
        expanded.push_str(&value);
        rest = &rest[start + end + 1..];
    }
    expanded.push_str(rest);

    let segments: Vec<&str> = expanded.split('/').filter(|s| !s.is_empty()).collect();
    for segment in &segments {
        if *segment == "." || *segment == ".." || segment.contains('\\') {
            return Err(TargetPathError::OutsideRepository { path: expanded });
        }
        if segment.chars().any(char::is_control) {
            return Err(TargetPathError::ControlCharacters { path: expanded });
        }
    }
    Ok(segments.join("/"))
}

/// Checks a path inside an artifact: relative, `/`-separated, never leaving the artifact.
pub fn relative_file_path(raw: &str) -> Result<String, ArtifactPathError> {
    let trimmed = raw.trim().trim_start_matches("./");
    let segments: Vec<&str> = trimmed.split('/').collect();
    if trimmed.is_empty()
        || trimmed.starts_with('/')
        || trimmed.contains('\\')
        || segments
            .iter()
            .any(|segment| segment.is_empty() || *segment == "." || *segment == "..")
        || trimmed.chars().any(char::is_control)
    {
        return Err(ArtifactPathError {
            raw: raw.to_owned(),
        });
    }
    Ok(segments.join("/"))
}

/// Parses `key=value;key2=a,b` into properties; `,` separates several values of one key.
pub fn parse_properties(raw: &str) -> Result<Properties, PropertiesError> {
    let mut properties: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pair in raw.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(PropertiesError::NotKeyValue {
                pair: pair.to_owned(),
            });
        };
        let key = key.trim();
        if key.is_empty() || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(PropertiesError::BadKey {
                pair: pair.to_owned(),
            });
        }
        let values = properties.entry(key.to_owned()).or_default();
        values.extend(
            value
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned),
        );
    }
    Ok(properties)
}
