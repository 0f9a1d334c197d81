//! npm packages: reading the manifest of a tarball (as `npm pack` makes it), checking names and
//! versions the way npm does, and choosing the dist-tag.

use std::fs::File;
use std::path::Path;

use flate2::read::GzDecoder;
use serde_json::{Map, Value};

use crate::publish::formats::{
    MAX_METADATA_BYTES, MetadataError, WorkspaceError, WorkspaceFailure, read_limited,
};

/// Why a `package.json` cannot be published.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("its package.json is not valid JSON; fix the syntax")]
    NotJson(#[source] serde_json::Error),
    #[error("its package.json is not a JSON object; it must be `{{\"name\": …, \"version\": …}}`")]
    NotObject,
    #[error("its package.json has no \"name\"; add one")]
    NoName,
    #[error("its name `{name}` is not a valid npm name: {why}; fix \"name\" in package.json")]
    InvalidName { name: String, why: &'static str },
    #[error("its package.json has no \"version\"; add one (MAJOR.MINOR.PATCH)")]
    NoVersion,
    #[error("its version `{version}` is not a semantic version (MAJOR.MINOR.PATCH)")]
    NotSemver { version: String },
    #[error(
        "`{name}` is marked \"private\": true, so npm refuses to publish it; remove the flag or \
         leave the package out of the artifact"
    )]
    Private { name: String },
}

/// Why an npm tarball's manifest cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum TarballError {
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    #[error("it is not a gzip'd tar archive; make it with `npm pack`")]
    NotTarGz(#[source] std::io::Error),
    #[error("it is not a readable npm tarball; make it again with `npm pack`")]
    Unreadable(#[source] std::io::Error),
    #[error("it has an unreadable entry name; make it again with `npm pack`")]
    EntryName(#[source] std::io::Error),
    #[error(transparent)]
    ManifestUnreadable(#[from] MetadataError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(
        "it has no package/package.json, so it is not an npm package tarball (make it with \
         `npm pack`)"
    )]
    NoManifest,
}

impl WorkspaceFailure for TarballError {
    fn into_workspace(self) -> Result<WorkspaceError, Self> {
        match self {
            TarballError::Workspace(error)
            | TarballError::ManifestUnreadable(MetadataError::Workspace(error)) => Ok(error),
            other => Err(other),
        }
    }
}

/// Why a package cannot be published under a dist-tag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DistTagError {
    #[error(
        "the npm dist-tag `{tag}` looks like a version; npm refuses tags that parse as versions"
    )]
    LooksLikeVersion { tag: String },
    #[error("the npm dist-tag `{tag}` must not contain spaces, `/` or `%`")]
    BadCharacters { tag: String },
    #[error(
        "{name}@{version} is a prerelease; npm requires an explicit dist-tag for it. Set \
         \"settings\": {{\"npmTag\": \"next\"}} in the publish spec (or publish a release version)"
    )]
    PrereleaseNeedsTag { name: String, version: String },
}

/// The manifest of an npm package, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct NpmManifest {
    pub name: String,
    pub version: String,
    /// `package.json` as written, every field kept: npm sends it as the version document.
    pub fields: Map<String, Value>,
}

impl NpmManifest {
    /// Parses and checks a `package.json`.
    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestError> {
        let value: Value = serde_json::from_slice(bytes).map_err(ManifestError::NotJson)?;
        let Value::Object(fields) = value else {
            return Err(ManifestError::NotObject);
        };
        let text = |key: &str| fields.get(key).and_then(Value::as_str).map(str::trim);
        let name = text("name")
            .filter(|name| !name.is_empty())
            .ok_or(ManifestError::NoName)?
            .to_owned();
        check_name(&name)?;
        let version = text("version")
            .filter(|version| !version.is_empty())
            .ok_or(ManifestError::NoVersion)?
            .to_owned();
        if !is_semver(&version) {
            return Err(ManifestError::NotSemver { version });
        }
        if fields.get("private").and_then(Value::as_bool) == Some(true) {
            return Err(ManifestError::Private { name });
        }
        Ok(Self {
            name,
            version,
            fields,
        })
    }

    /// The name with a scope's `/` escaped, as npm puts it in the registry URL.
    pub fn escaped_name(&self) -> String {
        self.name.replacen('/', "%2f", 1)
    }

    /// `{name}-{version}.tgz`, the attachment key npm uses (unescaped name).
    pub fn tarball_name(&self) -> String {
        format!("{}-{}.tgz", self.name, self.version)
    }

    /// Whether the version has a prerelease part (`1.3.0-beta.1`).
    pub fn is_prerelease(&self) -> bool {
        self.version
            .split('+')
            .next()
            .is_some_and(|core| core.contains('-'))
    }
}

/// npm's rules for package names: lower-case, URL-safe, at most 214 characters, optionally
/// `@scope/name`.
fn check_name(name: &str) -> Result<(), ManifestError> {
    let problem = |why: &'static str| {
        Err(ManifestError::InvalidName {
            name: name.to_owned(),
            why,
        })
    };
    if name.len() > 214 {
        return problem("longer than 214 characters");
    }
    let bare = match name.strip_prefix('@') {
        Some(scoped) => match scoped.split_once('/') {
            Some((scope, bare)) if !scope.is_empty() && is_url_safe(scope) => bare,
            _ => return problem("a scoped name is @scope/name"),
        },
        None => name,
    };
    if bare.is_empty() || bare.starts_with('.') || bare.starts_with('_') {
        return problem("it must not be empty or start with `.` or `_`");
    }
    if name.chars().any(|c| c.is_ascii_uppercase()) {
        return problem("new packages must have lower-case names");
    }
    if !is_url_safe(bare) {
        return problem("only URL-safe characters (a-z 0-9 - . _ ~) are allowed");
    }
    Ok(())
}

fn is_url_safe(part: &str) -> bool {
    part.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~'))
}

/// `MAJOR.MINOR.PATCH[-prerelease][+build]`, numbers without leading zeros.
pub fn is_semver(version: &str) -> bool {
    let (rest, build) = match version.split_once('+') {
        Some((rest, build)) => (rest, Some(build)),
        None => (version, None),
    };
    let (core, prerelease) = match rest.split_once('-') {
        Some((core, prerelease)) => (core, Some(prerelease)),
        None => (rest, None),
    };
    let numeric = |part: &str| {
        !part.is_empty()
            && part.chars().all(|c| c.is_ascii_digit())
            && (part == "0" || !part.starts_with('0'))
    };
    let identifiers = |text: &str| {
        text.split('.').all(|part| {
            !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
    };
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|part| numeric(part))
        && prerelease.is_none_or(identifiers)
        && build.is_none_or(identifiers)
}

/// The dist-tag to publish under: the configured one, else `latest`, which npm refuses for a
/// prerelease (it would make every `npm install` pick the prerelease).
pub fn dist_tag(manifest: &NpmManifest, configured: Option<&str>) -> Result<String, DistTagError> {
    match configured.map(str::trim).filter(|tag| !tag.is_empty()) {
        Some(tag) if is_semver(tag) || tag.starts_with('v') && is_semver(&tag[1..]) => {
            Err(DistTagError::LooksLikeVersion {
                tag: tag.to_owned(),
            })
        }
        Some(tag)
            if tag
                .chars()
                .any(|c| c.is_whitespace() || c == '/' || c == '%') =>
        {
            Err(DistTagError::BadCharacters {
                tag: tag.to_owned(),
            })
        }
        Some(tag) => Ok(tag.to_owned()),
        None if manifest.is_prerelease() => Err(DistTagError::PrereleaseNeedsTag {
            name: manifest.name.clone(),
            version: manifest.version.clone(),
        }),
        None => Ok("latest".to_owned()),
    }
}

/// Reads `package/package.json` from an npm tarball (gzip'd tar, entries under `package/`).
pub fn read_tarball_manifest(path: &Path) -> Result<NpmManifest, TarballError> {
    let file = File::open(path).map_err(|source| WorkspaceError::new("open", path, source))?;
    let mut archive = tar::Archive::new(GzDecoder::new(file));
    let entries = archive.entries().map_err(TarballError::NotTarGz)?;
    for entry in entries {
        let entry = entry.map_err(TarballError::Unreadable)?;
        let entry_path = entry
            .path()
            .map_err(TarballError::EntryName)?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_owned();
        if entry_path == "package/package.json" {
            let bytes = read_limited(entry, MAX_METADATA_BYTES, "package.json")?;
            return Ok(NpmManifest::parse(&bytes)?);
        }
    }
    Err(TarballError::NoManifest)
}

/// Whether `path` is an npm tarball (a `.tgz` holding `package/package.json`).
pub fn is_npm_tarball(path: &Path) -> bool {
    read_tarball_manifest(path).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(json: &str) -> Result<NpmManifest, ManifestError> {
        NpmManifest::parse(json.as_bytes())
    }

    #[test]
    fn names_and_versions_are_checked_like_npm() {
        let scoped = manifest(r#"{"name":"@nestbox/camera-agent","version":"1.3.0"}"#).unwrap();
        assert_eq!(scoped.escaped_name(), "@nestbox%2fcamera-agent");
        assert_eq!(scoped.tarball_name(), "@nestbox/camera-agent-1.3.0.tgz");
        assert!(manifest(r#"{"name":"Camera","version":"1.0.0"}"#).is_err());
        assert!(manifest(r#"{"name":"camera","version":"1.0"}"#).is_err());
        assert!(manifest(r#"{"name":"camera","version":"1.0.0","private":true}"#).is_err());
        assert!(is_semver("1.3.0-beta.1+build.5"));
        assert!(!is_semver("01.3.0"));
    }

    #[test]
    fn prereleases_need_an_explicit_tag() {
        let beta = manifest(r#"{"name":"camera","version":"1.4.0-beta.1"}"#).unwrap();
        assert!(
            dist_tag(&beta, None)
                .unwrap_err()
                .to_string()
                .contains("npmTag")
        );
        assert_eq!(dist_tag(&beta, Some("next")).unwrap(), "next");
        let release = manifest(r#"{"name":"camera","version":"1.4.0"}"#).unwrap();
        assert_eq!(dist_tag(&release, None).unwrap(), "latest");
        assert!(dist_tag(&release, Some("1.4.0")).is_err());
    }
}
