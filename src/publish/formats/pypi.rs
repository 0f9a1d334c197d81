//! Python distributions: the core metadata of a wheel (`*.dist-info/METADATA`) or an sdist
//! (`{name}-{version}/PKG-INFO`), turned into the form fields twine sends to the legacy upload
//! API.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use flate2::read::GzDecoder;

use crate::publish::formats::{
    MAX_METADATA_BYTES, MetadataError, WorkspaceError, WorkspaceFailure, read_limited,
};

/// Why a wheel's or an sdist's core metadata cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum PythonError {
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    #[error(
        "its file name is not a wheel name ({{name}}-{{version}}-{{python}}-{{abi}}-{{platform}}.whl); \
         keep the name the build gave it"
    )]
    WheelName,
    #[error("it is not a readable wheel (zip) archive; build it again")]
    NotZip(#[source] zip::result::ZipError),
    #[error("it has no *.dist-info/METADATA, so it is not a wheel")]
    NoWheelMetadata,
    #[error("could not read {member}; build the wheel again")]
    WheelMember {
        member: String,
        #[source]
        source: zip::result::ZipError,
    },
    #[error("it is not a gzip'd tar archive")]
    NotTarGz(#[source] std::io::Error),
    #[error("it is not a readable tar.gz")]
    Unreadable(#[source] std::io::Error),
    #[error(transparent)]
    MetadataUnreadable(#[from] MetadataError),
    #[error("its metadata has no {field}; fix the package's build configuration")]
    MissingField { field: &'static str },
}

impl WorkspaceFailure for PythonError {
    fn into_workspace(self) -> Result<WorkspaceError, Self> {
        match self {
            PythonError::Workspace(error)
            | PythonError::MetadataUnreadable(MetadataError::Workspace(error)) => Ok(error),
            other => Err(other),
        }
    }
}

/// A wheel or sdist and its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PythonDistribution {
    pub name: String,
    pub version: String,
    /// `bdist_wheel` or `sdist`.
    pub filetype: &'static str,
    /// The wheel's python tag (`py3`), or `source` for an sdist.
    pub pyversion: String,
    /// Every header of the metadata file, in order, plus `Description` from the body.
    pub headers: Vec<(String, String)>,
}

/// Metadata headers and the upload field twine sends each under, in twine's order.
const FIELDS: &[(&str, &str)] = &[
    ("Metadata-Version", "metadata_version"),
    ("Summary", "summary"),
    ("Home-page", "home_page"),
    ("Author", "author"),
    ("Author-email", "author_email"),
    ("Maintainer", "maintainer"),
    ("Maintainer-email", "maintainer_email"),
    ("License", "license"),
    ("Description", "description"),
    ("Keywords", "keywords"),
    ("Platform", "platform"),
    ("Classifier", "classifiers"),
    ("Download-URL", "download_url"),
    ("Supported-Platform", "supported_platform"),
    ("Provides", "provides"),
    ("Requires", "requires"),
    ("Obsoletes", "obsoletes"),
    ("Project-URL", "project_urls"),
    ("Provides-Dist", "provides_dist"),
    ("Obsoletes-Dist", "obsoletes_dist"),
    ("Requires-Dist", "requires_dist"),
    ("Requires-External", "requires_external"),
    ("Requires-Python", "requires_python"),
    ("Provides-Extra", "provides_extras"),
    ("Description-Content-Type", "description_content_type"),
    ("Dynamic", "dynamic"),
    ("License-Expression", "license_expression"),
    ("License-File", "license_file"),
];

impl PythonDistribution {
    /// The form fields of the upload before the file, in the order twine sends them: metadata,
    /// digests after `supported_platform`, then `:action` and `protocol_version`.
    pub fn upload_fields(&self, md5: &str, sha256: &str) -> Vec<(&'static str, String)> {
        let mut fields = vec![
            ("name", self.name.clone()),
            ("version", self.version.clone()),
            ("filetype", self.filetype.to_owned()),
            ("pyversion", self.pyversion.clone()),
        ];
        for (header, field) in FIELDS {
            fields.extend(
                self.headers
                    .iter()
                    .filter(|(name, value)| name.eq_ignore_ascii_case(header) && !value.is_empty())
                    .map(|(_, value)| (*field, value.clone())),
            );
            if *header == "Supported-Platform" {
                fields.push(("md5_digest", md5.to_owned()));
                fields.push(("sha256_digest", sha256.to_owned()));
            }
        }
        fields.push((":action", "file_upload".to_owned()));
        fields.push(("protocol_version", "1".to_owned()));
        fields
    }

    /// The name as the simple index spells it (PEP 503): lower case, runs of `-_.` → `-`.
    pub fn normalized_name(&self) -> String {
        normalize(&self.name)
    }
}

/// PEP 503 normalization.
pub fn normalize(name: &str) -> String {
    let mut normalized = String::with_capacity(name.len());
    let mut separator = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            separator = true;
        } else {
            if separator && !normalized.is_empty() {
                normalized.push('-');
            }
            separator = false;
            normalized.push(c.to_ascii_lowercase());
        }
    }
    normalized
}

/// Whether `file_name` names a wheel.
pub fn is_wheel(file_name: &str) -> bool {
    file_name.ends_with(".whl")
}

/// Reads a wheel's metadata; `file_name` gives the python tag.
pub fn read_wheel(path: &Path, file_name: &str) -> Result<PythonDistribution, PythonError> {
    let stem = file_name.trim_end_matches(".whl");
    let parts: Vec<&str> = stem.split('-').collect();
    if parts.len() < 5 {
        return Err(PythonError::WheelName);
    }
    let pyversion = parts[parts.len() - 3].to_owned();
    let file = File::open(path).map_err(|source| WorkspaceError::new("open", path, source))?;
    let mut zip = zip::ZipArchive::new(BufReader::new(file)).map_err(PythonError::NotZip)?;
    let metadata_name = zip
        .file_names()
        .filter_map(Result::ok)
        .find(|name| {
            let mut segments = name.split('/');
            matches!((segments.next(), segments.next(), segments.next()),
                (Some(dir), Some("METADATA"), None) if dir.ends_with(".dist-info"))
        })
        .map(|name| name.into_owned())
        .ok_or(PythonError::NoWheelMetadata)?;
    let entry = zip
        .by_name(&metadata_name)
        .map_err(|source| PythonError::WheelMember {
            member: metadata_name.clone(),
            source,
        })?;
    let text = read_limited(entry, MAX_METADATA_BYTES, "METADATA")?;
    distribution(&text, "bdist_wheel", pyversion)
}

/// Reads an sdist's `PKG-INFO`; `None` when the archive has none (not an sdist).
pub fn read_sdist(path: &Path) -> Result<Option<PythonDistribution>, PythonError> {
    let file = File::open(path).map_err(|source| WorkspaceError::new("open", path, source))?;
    let mut archive = tar::Archive::new(GzDecoder::new(file));
    let entries = archive.entries().map_err(PythonError::NotTarGz)?;
    for entry in entries {
        let entry = entry.map_err(PythonError::Unreadable)?;
        let entry_path = entry
            .path()
            .map(|path| path.to_string_lossy().trim_start_matches("./").to_owned())
            .unwrap_or_default();
        let mut segments = entry_path.split('/');
        if matches!(
            (segments.next(), segments.next(), segments.next()),
            (Some(_), Some("PKG-INFO"), None)
        ) {
            let text = read_limited(entry, MAX_METADATA_BYTES, "PKG-INFO")?;
            return distribution(&text, "sdist", "source".to_owned()).map(Some);
        }
    }
    Ok(None)
}

fn distribution(
    text: &[u8],
    filetype: &'static str,
    pyversion: String,
) -> Result<PythonDistribution, PythonError> {
    let text = String::from_utf8_lossy(text);
    let headers = parse_headers(&text);
    let header = |name: &str| {
        headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.clone())
            .filter(|value| !value.is_empty())
    };
    let missing = |field| PythonError::MissingField { field };
    let name = header("Name").ok_or_else(|| missing("Name"))?;
    let version = header("Version").ok_or_else(|| missing("Version"))?;
    header("Metadata-Version").ok_or_else(|| missing("Metadata-Version"))?;
    Ok(PythonDistribution {
        name,
        version,
        filetype,
        pyversion,
        headers,
    })
}

/// RFC 822-style headers (continuation lines indented), then the description as the body.
fn parse_headers(text: &str) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut lines = text.split('\n');
    for line in lines.by_ref() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push('\n');
                value.push_str(line.trim_start());
            }
        } else if let Some((key, value)) = line.split_once(':') {
            headers.push((key.trim().to_owned(), value.trim().to_owned()));
        }
    }
    let body: Vec<&str> = lines.collect();
    let body = body.join("\n");
    if !body.trim().is_empty()
        && !headers
            .iter()
            .any(|(key, _)| key.eq_ignore_ascii_case("Description"))
    {
        headers.push(("Description".to_owned(), body.trim_end().to_owned()));
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_becomes_twine_fields_in_twine_order() {
        let text = b"Metadata-Version: 2.1\nName: Nestbox_Camera.Agent\nVersion: 1.3.0\nSummary: Camera agent\nClassifier: A\nClassifier: B\nRequires-Python: >=3.9\n\nLong text\nmore\n";
        let dist = distribution(text, "bdist_wheel", "py3".into()).unwrap();
        assert_eq!(dist.normalized_name(), "nestbox-camera-agent");
        let fields = dist.upload_fields("m", "s");
        let names: Vec<&str> = fields.iter().map(|(name, _)| *name).collect();
        assert_eq!(
            names,
            [
                "name",
                "version",
                "filetype",
                "pyversion",
                "metadata_version",
                "summary",
                "description",
                "classifiers",
                "classifiers",
                "md5_digest",
                "sha256_digest",
                "requires_python",
                ":action",
                "protocol_version"
            ]
        );
        assert_eq!(fields[6].1, "Long text\nmore");
        assert!(distribution(b"Name: x\n", "sdist", "source".into()).is_err());
    }
}
