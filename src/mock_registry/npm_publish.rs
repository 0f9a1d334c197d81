//! `PUT /artifactory/api/npm/{repo}/{name}`: `npm publish`. The JSON document carries each new
//! version's manifest and its tarball as base64 in `_attachments`; each tarball is checked
//! against `length`, `dist.shasum` and `dist.integrity`, stored as an ordinary artifact at
//! `{name}/-/{name}-{version}.tgz` with `npm.*` properties, and indexed for the packument.
//! Only one decoded tarball is held in memory at a time.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Value, json};
use sha1::{Digest as _, Sha1};
use sha2::Sha512;

use super::Shared;
use super::auth::Caller;
use super::body::read_capped;
use super::clock::to_unix_millis;
use super::error::{ApiError, NpmError};
use super::npm_index::NpmVersion;
use super::npm_names::{
    NpmTarget, check_package_name, check_version, parse_npm_path, tarball_file, tarball_path,
};
use super::paths::Properties;
use super::staging::{
    CommitError, PackageFile, StagedFile, commit_package_file, persist_store, stage_bytes,
};

/// The largest publish document accepted (the tarballs are inside it, base64-encoded).
pub(super) const MAX_DOCUMENT_BYTES: usize = 512 << 20;

/// The parts of npm's publish document the registry acts on.
#[derive(Debug, Deserialize)]
struct PublishDocument<'a> {
    #[serde(default)]
    name: Option<String>,
    #[serde(rename = "dist-tags", default)]
    dist_tags: BTreeMap<String, String>,
    #[serde(default)]
    versions: BTreeMap<String, Value>,
    #[serde(rename = "_attachments", default, borrow)]
    attachments: BTreeMap<String, Attachment<'a>>,
}

/// One `_attachments` entry; `data` is borrowed from the request body when it has no escapes.
#[derive(Debug, Deserialize)]
struct Attachment<'a> {
    #[serde(default)]
    length: Option<u64>,
    #[serde(borrow)]
    data: Cow<'a, str>,
}

/// A new version, validated and staged on disk, waiting to be committed.
struct Prepared {
    version: String,
    manifest: Value,
    sha1: String,
    integrity: String,
    staged: StagedFile,
}

fn forbidden_republish(version: &str) -> ApiError {
    ApiError::forbidden(format!(
        "You cannot publish over the previously published versions: {version}."
    ))
}

/// The attachment for a version: under `{name}-{version}.tgz`, or under the file name that
/// the manifest's `dist.tarball` ends with.
fn find_attachment<'d, 'a>(
    document: &'d PublishDocument<'a>,
    name: &str,
    version: &str,
    manifest: &Value,
) -> Option<(String, &'d Attachment<'a>)> {
    let key = tarball_file(name, version);
    if let Some(attachment) = document.attachments.get(&key) {
        return Some((key, attachment));
    }
    let from_url = manifest["dist"]["tarball"]
        .as_str()
        .and_then(|url| url.rsplit_once("/-/"))
        .map(|(_, file)| {
            percent_encoding::percent_decode_str(file)
                .decode_utf8_lossy()
                .into_owned()
        })?;
    document
        .attachments
        .get(&from_url)
        .map(|attachment| (from_url, attachment))
}

/// Checks a decoded tarball against what the document declares; returns `(sha1 hex, sri)`.
fn verify(
    key: &str,
    attachment: &Attachment<'_>,
    manifest: &Value,
    tarball: &[u8],
) -> Result<(String, String), ApiError> {
    if let Some(length) = attachment.length
        && length != tarball.len() as u64
    {
        return Err(ApiError::bad_request(format!(
            "Attachment '{key}' declares length {length} but holds {} bytes",
            tarball.len()
        )));
    }
    let sha1 = hex::encode(Sha1::digest(tarball));
    let sha512 = STANDARD.encode(Sha512::digest(tarball));
    let integrity = format!("sha512-{sha512}");
    let shasum = manifest["dist"]["shasum"].as_str().ok_or_else(|| {
        ApiError::bad_request(format!("Version manifest for '{key}' has no dist.shasum"))
    })?;
    if !shasum.eq_ignore_ascii_case(&sha1) {
        return Err(ApiError::bad_request(format!(
            "Shasum check failed for '{key}': declared {shasum}, computed {sha1}"
        )));
    }
    if let Some(declared) = manifest["dist"]["integrity"].as_str() {
        let sri_sha1 = format!("sha1-{}", STANDARD.encode(Sha1::digest(tarball)));
        // An SRI string is a space-separated list of `algorithm-base64[?options]`; those
        // using an algorithm computed here must all match, and there must be one.
        let mut known = declared
            .split_whitespace()
            .map(|entry| entry.split('?').next().unwrap_or(entry))
            .filter(|entry| entry.starts_with("sha512-") || entry.starts_with("sha1-"))
            .peekable();
        let matches =
            known.peek().is_some() && known.all(|entry| entry == integrity || entry == sri_sha1);
        if !matches {
            return Err(ApiError::bad_request(format!(
                "Integrity check failed for '{key}': declared {declared}, computed {integrity}"
            )));
        }
    }
    Ok((sha1, integrity))
}

/// Validates each version in the document; stages new tarballs. Versions already published
/// with the same tarball (or sent without one) are left as they are.
async fn prepare(
    shared: &Shared,
    repo: &str,
    name: &str,
    document: &PublishDocument<'_>,
) -> Result<Vec<Prepared>, ApiError> {
    let published = shared.npm.read(|index| index.package(repo, name).cloned());
    let mut prepared = Vec::new();
    for (version, manifest) in &document.versions {
        check_version(version)?;
        if !manifest.is_object() {
            return Err(ApiError::bad_request(format!(
                "versions['{version}'] must be an object"
            )));
        }
        let stated_name = manifest["name"].as_str().unwrap_or(name);
        let stated_version = manifest["version"].as_str().unwrap_or(version);
        if stated_name != name || stated_version != version {
            return Err(ApiError::bad_request(format!(
                "versions['{version}'] names {stated_name}@{stated_version}, expected {name}@{version}"
            )));
        }
        let earlier = published
            .as_ref()
            .and_then(|package| package.versions.get(version));
        let Some((key, attachment)) = find_attachment(document, name, version, manifest) else {
            if earlier.is_some() {
                continue;
            }
            return Err(ApiError::bad_request(format!(
                "No attachment for {name}@{version}: expected _attachments['{}']",
                tarball_file(name, version)
            )));
        };
        let tarball = STANDARD
            .decode(attachment.data.as_bytes())
            .map_err(|error| {
                ApiError::bad_request(format!("Attachment '{key}' is not valid base64: {error}"))
            })?;
        let (sha1, integrity) = verify(&key, attachment, manifest, &tarball)?;
        match earlier {
            Some(earlier) if earlier.sha1 == sha1 => continue,
            Some(_) => return Err(forbidden_republish(version)),
            None => {}
        }
        let staged = stage_bytes(shared, tarball.into()).await?;
        prepared.push(Prepared {
            version: version.clone(),
            manifest: manifest.clone(),
            sha1,
            integrity,
            staged,
        });
    }
    Ok(prepared)
}

fn npm_properties(name: &str, version: &str, manifest: &Value) -> Properties {
    let mut properties = Properties::new();
    properties.insert("npm.name".into(), vec![name.to_string()]);
    properties.insert("npm.version".into(), vec![version.to_string()]);
    if let Some(description) = manifest["description"]
        .as_str()
        .filter(|text| !text.is_empty())
    {
        properties.insert("npm.description".into(), vec![description.to_string()]);
    }
    properties
}

/// `PUT /artifactory/api/npm/{repo}/{name}`
pub(super) async fn publish(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, NpmError> {
    let NpmTarget::Package { repo, name } = parse_npm_path(uri.path())? else {
        return Err(ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed").into());
    };
    let username = caller.require_user()?.to_string();
    if !shared.store.accepts_deploys_to(&repo) {
        return Err(ApiError::not_found(format!("Repository '{repo}' does not exist")).into());
    }
    let bytes = read_capped(&headers, body, MAX_DOCUMENT_BYTES).await?;
    let document: PublishDocument<'_> = serde_json::from_slice(&bytes)
        .map_err(|error| ApiError::bad_request(format!("Invalid npm publish document: {error}")))?;
    if let Some(stated) = &document.name
        && stated != &name
    {
        return Err(ApiError::bad_request(format!(
            "Document names package '{stated}' but was sent to '{name}'"
        ))
        .into());
    }
    check_package_name(&name)?;
    if document.versions.is_empty() {
        return Err(ApiError::bad_request("The publish document has no versions").into());
    }
    let prepared = prepare(&shared, &repo, &name, &document).await?;
    for (tag, version) in &document.dist_tags {
        let known = document.versions.contains_key(version)
            || shared.npm.read(|index| {
                index
                    .package(&repo, &name)
                    .is_some_and(|package| package.versions.contains_key(version))
            });
        if !known {
            return Err(ApiError::bad_request(format!(
                "dist-tag '{tag}' points at unknown version '{version}'"
            ))
            .into());
        }
    }
    let mut new_versions = Vec::new();
    for item in prepared {
        let path = tarball_path(&name, &item.version);
        let file = PackageFile {
            repo: &repo,
            path: &path,
            properties: npm_properties(&name, &item.version, &item.manifest),
            mime_type: "application/x-gzip",
            username: &username,
        };
        match commit_package_file(&shared, item.staged, file) {
            Ok(_) => {}
            Err(CommitError::Conflict) => return Err(forbidden_republish(&item.version).into()),
            Err(CommitError::Api(error)) => return Err(error.into()),
        }
        new_versions.push((item.version, item.manifest, item.sha1, item.integrity));
    }
    persist_store(&shared).await?;
    let now = to_unix_millis(shared.clock.now());
    let changed = shared.npm.update(|index| {
        let package = index
            .repositories
            .entry(repo.clone())
            .or_default()
            .entry(name.clone())
            .or_insert_with(|| super::npm_index::NpmPackage {
                created_millis: now,
                ..Default::default()
            });
        let mut changed = !new_versions.is_empty();
        for (version, manifest, sha1, integrity) in new_versions {
            // A concurrent identical publish may have indexed it first: keep that one.
            package.versions.entry(version).or_insert(NpmVersion {
                manifest,
                sha1,
                integrity,
                published_millis: now,
            });
        }
        for (tag, version) in &document.dist_tags {
            let previous = package.dist_tags.insert(tag.clone(), version.clone());
            changed |= previous.as_ref() != Some(version);
        }
        if changed {
            package.modified_millis = now;
        }
        changed
    });
    shared.npm.persist().await?;
    let status = if changed {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(json!({ "ok": true, "id": name }))).into_response())
}
