//! The npm package index: for each repository and package, its versions (the manifest npm
//! sent, with `dist`), dist-tags and times, persisted in `npm.json`; and the packument built
//! from it, as `GET {registry}{name}` answers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::clock::{artifactory_timestamp, from_unix_millis};
use super::npm_names::tarball_url;

/// File name of the index inside the data directory.
pub(super) const NPM_INDEX_FILE: &str = "npm.json";

/// Every npm package known, by repository key then package name.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct NpmIndex {
    pub(super) repositories: BTreeMap<String, BTreeMap<String, NpmPackage>>,
}

/// One package: its versions and dist-tags.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct NpmPackage {
    /// Tag → version, e.g. `latest` → `1.2.0`.
    pub(super) dist_tags: BTreeMap<String, String>,
    /// Version → what was published.
    pub(super) versions: BTreeMap<String, NpmVersion>,
    pub(super) created_millis: i64,
    pub(super) modified_millis: i64,
}

/// One published version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct NpmVersion {
    /// The version manifest as npm sent it (package.json fields, `_id`, `dist`).
    pub(super) manifest: Value,
    /// SHA-1 (hex) of the tarball, to tell an identical republish from a conflicting one.
    pub(super) sha1: String,
    /// SHA-512 SRI string of the tarball (`sha512-…`).
    pub(super) integrity: String,
    pub(super) published_millis: i64,
}

impl NpmIndex {
    pub(super) fn package(&self, repo: &str, name: &str) -> Option<&NpmPackage> {
        self.repositories
            .get(repo)
            .and_then(|packages| packages.get(name))
    }
}

fn timestamp(millis: i64) -> String {
    from_unix_millis(millis)
        .map(artifactory_timestamp)
        .unwrap_or_default()
}

/// The packument: every version with `dist.tarball` pointing at this server (`base` =
/// `http://host`, or empty for host-relative URLs), dist-tags and publication times.
pub(super) fn packument(base: &str, repo: &str, name: &str, package: &NpmPackage) -> Value {
    let mut versions = Map::new();
    let mut time = Map::new();
    time.insert("created".into(), timestamp(package.created_millis).into());
    time.insert("modified".into(), timestamp(package.modified_millis).into());
    for (version, published) in &package.versions {
        let mut manifest = match &published.manifest {
            Value::Object(fields) => fields.clone(),
            _ => Map::new(),
        };
        let mut dist = match manifest.remove("dist") {
            Some(Value::Object(dist)) => dist,
            _ => Map::new(),
        };
        dist.insert(
            "tarball".into(),
            tarball_url(base, repo, name, version).into(),
        );
        dist.insert("shasum".into(), published.sha1.clone().into());
        dist.insert("integrity".into(), published.integrity.clone().into());
        manifest.insert("dist".into(), Value::Object(dist));
        manifest.insert("name".into(), name.into());
        manifest.insert("version".into(), version.clone().into());
        manifest
            .entry("_id")
            .or_insert_with(|| format!("{name}@{version}").into());
        versions.insert(version.clone(), Value::Object(manifest));
        time.insert(
            version.clone(),
            timestamp(published.published_millis).into(),
        );
    }
    let latest_description = package
        .dist_tags
        .get("latest")
        .and_then(|latest| package.versions.get(latest))
        .and_then(|published| published.manifest.get("description").cloned());
    let mut document = json!({
        "_id": name,
        "name": name,
        "dist-tags": package.dist_tags,
        "versions": versions,
        "time": time,
    });
    if let (Some(description), Value::Object(fields)) = (latest_description, &mut document) {
        fields.insert("description".into(), description);
    }
    document
}
