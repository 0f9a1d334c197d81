//! What the registry holds, seen as Artifactory shows it rather than as files: repositories
//! with a package type, and the npm, PyPI and Debian packages (name, versions, files) in them.
//! The UI pages and `GET /api/repositories` read this.
//!
//! The mock has no repository configuration beyond keys, so a repository's package type is
//! judged by what it holds: npm packages make it `npm`, files uploaded through the PyPI API make
//! it `pypi`, `.deb` files with `deb.*` properties make it `debian`; anything else is `generic`.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use super::Shared;
use super::npm_names::tarball_path;
use super::pypi_upload::{PROPERTY_NAME, PROPERTY_VERSION};
use super::store::ArtifactRecord;

/// The package formats the mock knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum PackageKind {
    Npm,
    Pypi,
    Debian,
}

impl PackageKind {
    /// Artifactory's lower-case package type (`packageType` filters, package ids `npm://name`).
    pub(super) fn key(self) -> &'static str {
        match self {
            Self::Npm => "npm",
            Self::Pypi => "pypi",
            Self::Debian => "debian",
        }
    }

    /// How people write it.
    pub(super) fn label(self) -> &'static str {
        match self {
            Self::Npm => "npm",
            Self::Pypi => "PyPI",
            Self::Debian => "Debian",
        }
    }

    pub(super) fn from_key(key: &str) -> Option<Self> {
        [Self::Npm, Self::Pypi, Self::Debian]
            .into_iter()
            .find(|kind| kind.key().eq_ignore_ascii_case(key))
    }
}

/// One version of a package and the files that make it up.
#[derive(Debug, Clone)]
pub(super) struct PackageVersion {
    pub(super) version: String,
    /// Paths inside the package's repository.
    pub(super) files: Vec<String>,
    pub(super) published_millis: i64,
}

/// A package in one repository.
#[derive(Debug, Clone)]
pub(super) struct Package {
    pub(super) kind: PackageKind,
    pub(super) name: String,
    pub(super) repo: String,
    /// Oldest first, in version order.
    pub(super) versions: Vec<PackageVersion>,
}

impl Package {
    /// The newest version, by version order.
    pub(super) fn latest(&self) -> Option<&PackageVersion> {
        self.versions.last()
    }
}

/// A repository with what the UI and `GET /api/repositories` say about it.
#[derive(Debug, Clone)]
pub(super) struct Repository {
    pub(super) key: String,
    /// `generic`, `npm`, `pypi` or `debian`.
    pub(super) package_type: &'static str,
    pub(super) files: usize,
    pub(super) bytes: u64,
}

/// Compares versions the way people read them: runs of digits as numbers, the rest as text
/// (`1.10.0` after `1.9.2`).
pub(super) fn version_order(left: &str, right: &str) -> Ordering {
    fn chunks(text: &str) -> Vec<(bool, &str)> {
        let mut chunks = Vec::new();
        let mut start = 0;
        let bytes = text.as_bytes();
        for index in 1..=bytes.len() {
            let boundary = index == bytes.len()
                || bytes[index].is_ascii_digit() != bytes[index - 1].is_ascii_digit();
            if boundary {
                chunks.push((bytes[start].is_ascii_digit(), &text[start..index]));
                start = index;
            }
        }
        chunks
    }
    for (left_chunk, right_chunk) in chunks(left).into_iter().zip(chunks(right)) {
        let ordering = match (left_chunk, right_chunk) {
            ((true, left_digits), (true, right_digits)) => {
                let left_digits = left_digits.trim_start_matches('0');
                let right_digits = right_digits.trim_start_matches('0');
                left_digits
                    .len()
                    .cmp(&right_digits.len())
                    .then_with(|| left_digits.cmp(right_digits))
            }
            ((_, left_text), (_, right_text)) => left_text.cmp(right_text),
        };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    left.len().cmp(&right.len())
}

fn first<'a>(record: &'a ArtifactRecord, key: &str) -> Option<&'a str> {
    record
        .properties
        .get(key)
        .and_then(|values| values.first())
        .map(String::as_str)
        .filter(|value| !value.is_empty())
}

/// A Debian package's name and version: from `deb.name`/`deb.version` when set (Artifactory
/// sets them when it indexes a package), else from the file name `name_version_arch.deb`.
fn debian_identity(path: &str, record: &ArtifactRecord) -> Option<(String, String)> {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.strip_suffix(".deb")?;
    record.properties.get("deb.distribution")?;
    let mut parts = stem.split('_');
    let from_file_name = (parts.next(), parts.next());
    let name = first(record, "deb.name").or(from_file_name.0)?;
    let version = first(record, "deb.version").or(from_file_name.1)?;
    Some((name.to_owned(), version.to_owned()))
}

/// Every npm, PyPI and Debian package, sorted by kind, name and repository.
pub(super) fn packages(shared: &Shared) -> Vec<Package> {
    // (kind, name, repo) → version → (files, first published)
    type Found = BTreeMap<(PackageKind, String, String), BTreeMap<String, (Vec<String>, i64)>>;
    let mut found: Found = BTreeMap::new();
    shared.npm.read(|index| {
        for (repo, packages) in &index.repositories {
            for (name, package) in packages {
                let versions = found
                    .entry((PackageKind::Npm, name.clone(), repo.clone()))
                    .or_default();
                for (version, published) in &package.versions {
                    let tarball = tarball_path(name, version);
                    let files = if shared.store.record(repo, &tarball).is_some() {
                        vec![tarball]
                    } else {
                        Vec::new()
                    };
                    versions.insert(version.clone(), (files, published.published_millis));
                }
            }
        }
    });
    for repo in shared.store.repository_keys() {
        for (path, record) in shared.store.records_in(&repo) {
            let identity = match (
                first(&record, PROPERTY_NAME),
                first(&record, PROPERTY_VERSION),
            ) {
                (Some(name), Some(version)) => {
                    Some((PackageKind::Pypi, name.to_owned(), version.to_owned()))
                }
                _ => debian_identity(&path, &record)
                    .map(|(name, version)| (PackageKind::Debian, name, version)),
            };
            if let Some((kind, name, version)) = identity {
                let entry = found
                    .entry((kind, name, repo.clone()))
                    .or_default()
                    .entry(version)
                    .or_insert_with(|| (Vec::new(), record.created_millis));
                entry.0.push(path);
                entry.1 = entry.1.min(record.created_millis);
            }
        }
    }
    found
        .into_iter()
        .map(|((kind, name, repo), versions)| {
            let mut versions: Vec<PackageVersion> = versions
                .into_iter()
                .map(|(version, (files, published_millis))| PackageVersion {
                    version,
                    files,
                    published_millis,
                })
                .collect();
            versions.sort_by(|left, right| version_order(&left.version, &right.version));
            Package {
                kind,
                name,
                repo,
                versions,
            }
        })
        .collect()
}

/// Every repository, sorted by key, with its judged package type.
pub(super) fn repositories(shared: &Shared, packages: &[Package]) -> Vec<Repository> {
    shared
        .store
        .repository_keys()
        .into_iter()
        .map(|key| {
            let records = shared.store.records_in(&key);
            let package_type = packages
                .iter()
                .filter(|package| package.repo == key)
                .map(|package| package.kind)
                .min()
                .map_or("generic", PackageKind::key);
            Repository {
                package_type,
                files: records.len(),
                bytes: records.iter().map(|(_, record)| record.size).sum(),
                key,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_their_numbers() {
        let mut versions = vec!["1.10.0", "1.9.2", "1.9.10", "0.1.0", "1.9.2-rc1"];
        versions.sort_by(|left, right| version_order(left, right));
        assert_eq!(
            versions,
            ["0.1.0", "1.9.2", "1.9.2-rc1", "1.9.10", "1.10.0"]
        );
    }
}
