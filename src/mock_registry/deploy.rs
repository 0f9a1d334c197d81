//! `PUT /artifactory/{repo}/{path}`: deploy a file (streamed to disk while hashed), or deploy
//! by checksum without bytes when the store already holds the content.

use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use serde_json::json;

use super::Shared;
use super::auth::Caller;
use super::clock::{artifactory_timestamp, from_unix_millis, to_unix_millis};
use super::error::ApiError;
use super::paths::{ItemPath, base_url, download_url, parse_item_path};
use super::staging::{FileDigests, StagedFile, StagingWriter};
use super::store::{ArtifactRecord, ChecksumKind, Commit};

/// Checksums announced in `X-Checksum-*` headers, lower-cased.
#[derive(Debug, Default)]
struct Announced {
    sha1: Option<String>,
    sha256: Option<String>,
    md5: Option<String>,
}

impl Announced {
    fn from_headers(headers: &HeaderMap) -> Result<Self, ApiError> {
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(|value| value.trim().to_ascii_lowercase())
                .filter(|value| !value.is_empty())
        };
        let mut announced = Self {
            sha1: get("x-checksum-sha1"),
            sha256: get("x-checksum-sha256"),
            md5: get("x-checksum-md5"),
        };
        if let Some(untyped) = get("x-checksum") {
            let slot = match ChecksumKind::from_hex_length(untyped.len()) {
                Some(ChecksumKind::Sha1) => &mut announced.sha1,
                Some(ChecksumKind::Sha256) => &mut announced.sha256,
                Some(ChecksumKind::Md5) => &mut announced.md5,
                None => {
                    return Err(ApiError::bad_request(format!(
                        "Unrecognised checksum in X-Checksum: '{untyped}'"
                    )));
                }
            };
            slot.get_or_insert(untyped);
        }
        Ok(announced)
    }

    fn pairs(&self) -> impl Iterator<Item = (ChecksumKind, &str)> {
        [
            (ChecksumKind::Sha256, &self.sha256),
            (ChecksumKind::Sha1, &self.sha1),
            (ChecksumKind::Md5, &self.md5),
        ]
        .into_iter()
        .filter_map(|(kind, value)| value.as_deref().map(|value| (kind, value)))
    }

    /// `originalChecksums` as stored: what the client announced.
    fn originals(&self) -> std::collections::BTreeMap<String, String> {
        self.pairs()
            .map(|(kind, value)| (kind.name().to_string(), value.to_string()))
            .collect()
    }
}

impl FileDigests {
    fn get(&self, kind: ChecksumKind) -> &str {
        match kind {
            ChecksumKind::Sha1 => &self.sha1,
            ChecksumKind::Sha256 => &self.sha256,
            ChecksumKind::Md5 => &self.md5,
        }
    }
}

/// A MIME type from the file name, for `mimeType` and downloads.
fn mime_type_for(path: &str) -> &'static str {
    let extension = path.rsplit_once('.').map_or("", |(_, extension)| extension);
    match extension.to_ascii_lowercase().as_str() {
        "json" => "application/json",
        "xml" | "pom" => "application/xml",
        "txt" | "md" => "text/plain",
        "zip" | "whl" => "application/zip",
        "jar" => "application/java-archive",
        "gz" | "tgz" => "application/x-gzip",
        "deb" => "application/x-debian-package",
        "tar" => "application/x-tar",
        _ => "application/octet-stream",
    }
}

fn mismatch(item: &ItemPath, announced: &Announced, actual: &FileDigests) -> Option<ApiError> {
    let infos: Vec<String> = announced
        .pairs()
        .map(|(kind, original)| {
            let label = match kind {
                ChecksumKind::Sha1 => "SHA-1",
                ChecksumKind::Sha256 => "SHA-256",
                ChecksumKind::Md5 => "MD5",
            };
            format!(
                "ChecksumInfo{{type={label}, original='{original}', actual='{}'}}",
                actual.get(kind)
            )
        })
        .collect();
    let any_differs = announced
        .pairs()
        .any(|(kind, original)| original != actual.get(kind));
    any_differs.then(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "Checksum policy 'LocalRepoChecksumPolicy: CLIENT' rejected the artifact '{}:{}'. \
                 Checksums info: [{}]",
                item.repo,
                item.path,
                infos.join(", ")
            ),
        )
    })
}

fn overwrite_denied(item: &ItemPath, username: &str) -> ApiError {
    ApiError::forbidden(format!(
        "Not enough permissions to delete/overwrite artifact '{}:{}' (user: '{username}' needs DELETE permission).",
        item.repo, item.path
    ))
}

/// Streams the body into a staging file, hashing as it goes.
async fn receive(shared: &Shared, body: Body) -> Result<StagedFile, ApiError> {
    let mut writer = StagingWriter::new(shared)?;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|error| ApiError::bad_request(format!("Failed to read the body: {error}")))?;
        writer.write(chunk).await?;
    }
    writer.finish().await
}

/// The stored record whose content matches every announced checksum, for a checksum deploy.
fn find_existing(shared: &Shared, announced: &Announced) -> Result<ArtifactRecord, ApiError> {
    let (kind, value) = announced.pairs().next().ok_or_else(|| {
        ApiError::bad_request("Checksum deploy requires an X-Checksum-Sha256, -Sha1 or -Md5 header")
    })?;
    shared
        .store
        .find_by_checksum(kind, value)
        .into_iter()
        .filter_map(|(repo, path)| shared.store.record(&repo, &path))
        .find(|record| {
            announced.pairs().all(|(kind, value)| {
                let stored = match kind {
                    ChecksumKind::Sha1 => &record.sha1,
                    ChecksumKind::Sha256 => &record.sha256,
                    ChecksumKind::Md5 => &record.md5,
                };
                stored == value
            })
        })
        .filter(|record| shared.store.blob_path(&record.sha256).is_file())
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "Checksum deploy failed: no artifact with checksum {value} was found"
            ))
        })
}

/// `PUT /artifactory/{repo}/{path;matrix}`
pub(super) async fn deploy(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let raw = uri.path().strip_prefix("/artifactory/").unwrap_or_default();
    let item = parse_item_path(raw)?;
    if item.repo == "api" {
        return Err(ApiError::not_found("Not Found"));
    }
    let username = caller.require_user()?.to_string();
    if item.path.is_empty() || item.trailing_slash {
        return Err(ApiError::bad_request("A file path is required to deploy"));
    }
    if !shared.store.accepts_deploys_to(&item.repo) {
        return Err(ApiError::not_found(format!(
            "Repository '{}' does not exist",
            item.repo
        )));
    }
    let announced = Announced::from_headers(&headers)?;
    let checksum_deploy = headers
        .get("x-checksum-deploy")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim().eq_ignore_ascii_case("true"));
    let deploy_token = headers
        .get("x-checksum-deploy-token")
        .and_then(|value| value.to_str().ok())
        .map(|value| value.trim().to_owned());
    let digests = if let Some(token) = deploy_token.as_deref().filter(|_| checksum_deploy) {
        // The end of a multipart upload: the assembled blob becomes the artifact.
        let digests = shared.multipart.redeem(token, &item.repo, &item.path)?;
        if let Some(error) = mismatch(&item, &announced, &digests) {
            return Err(error);
        }
        digests
    } else if checksum_deploy {
        let existing = find_existing(&shared, &announced)?;
        FileDigests {
            size: existing.size,
            sha1: existing.sha1,
            sha256: existing.sha256,
            md5: existing.md5,
        }
    } else {
        let StagedFile {
            temp: staged,
            digests,
        } = receive(&shared, body).await?;
        if let Some(error) = mismatch(&item, &announced, &digests) {
            return Err(error);
        }
        if let Some(existing) = shared.store.record(&item.repo, &item.path)
            && existing.sha256 != digests.sha256
        {
            return Err(overwrite_denied(&item, &username));
        }
        shared
            .store
            .commit_blob(staged, &digests.sha256)
            .map_err(|error| ApiError::internal("Cannot store the blob", &error))?;
        digests
    };
    let now = to_unix_millis(shared.clock.now());
    let record = ArtifactRecord {
        size: digests.size,
        sha1: digests.sha1,
        sha256: digests.sha256,
        md5: digests.md5,
        original_checksums: announced.originals(),
        properties: item.properties.clone(),
        mime_type: mime_type_for(&item.path).to_string(),
        created_by: username.clone(),
        created_millis: now,
        modified_millis: now,
    };
    let stored = match shared.store.commit(&item.repo, &item.path, record) {
        Commit::Stored(stored) => stored,
        Commit::Conflict => return Err(overwrite_denied(&item, &username)),
        Commit::FolderClash => {
            return Err(ApiError::bad_request(format!(
                "Cannot deploy '{}:{}': a file and a folder would share a path",
                item.repo, item.path
            )));
        }
    };
    if let Some(token) = deploy_token.as_deref().filter(|_| checksum_deploy) {
        shared.multipart.spend(token);
    }
    shared
        .store
        .persist()
        .await
        .map_err(|error| ApiError::internal("Cannot write the metadata file", &error))?;
    let url = download_url(&base_url(&headers, &uri), &item.repo, &item.path);
    let created = from_unix_millis(stored.created_millis)
        .map(artifactory_timestamp)
        .unwrap_or_default();
    let body = json!({
        "repo": item.repo,
        "path": format!("/{}", item.path),
        "created": created,
        "createdBy": stored.created_by,
        "downloadUri": url,
        "mimeType": stored.mime_type,
        "size": stored.size.to_string(),
        "checksums": { "sha1": stored.sha1, "md5": stored.md5, "sha256": stored.sha256 },
        "originalChecksums": stored.original_checksums,
        "uri": url,
    });
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}
