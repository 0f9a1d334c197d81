//! Deploying one file to a generic repository, idempotently.
//!
//! Order of work for each file: look at what the path already holds (same sha256: done,
//! "already published"; different: refuse, never overwrite); for files of 10 KiB or more, try a
//! checksum deploy (no bytes sent when the registry already stores the content); files of
//! `--multipart-min-size` or more go in parts where the registry supports it (`multipart`);
//! otherwise stream the file with its checksums in headers, and check the checksums the
//! registry reports.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use futures::TryStreamExt;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use serde::Deserialize;
use tokio_util::io::ReaderStream;

use crate::checksum::Checksums;
use crate::registry::multipart::{FileRange, MultipartTarget};
use crate::registry::paths::{encode_path, encode_segment, matrix_params};
use crate::registry::{AccessToken, RegistryClient, RegistryError, Reporter};
use crate::secret::ExposeSecret;

/// Files at least this large are first offered by checksum only (as JFrog CLI does).
pub const CHECKSUM_DEPLOY_MIN_BYTES: u64 = 10 * 1024;

/// One file to deploy.
#[derive(Debug, Clone, Copy)]
pub struct DeployRequest<'a> {
    pub repo: &'a str,
    /// Relative, `/`-separated, unencoded.
    pub path: &'a str,
    pub file: &'a Path,
    pub size: u64,
    pub checksums: &'a Checksums,
    pub properties: &'a BTreeMap<String, Vec<String>>,
}

/// How a deploy ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeployOutcome {
    /// The bytes were sent.
    Uploaded,
    /// The registry had the content already; only the checksums were sent.
    ChecksumDeployed,
    /// The path already held exactly this content; nothing was changed.
    AlreadyPublished,
}

/// What the registry holds at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    pub sha256: Option<String>,
    pub sha1: Option<String>,
    pub is_folder: bool,
}

#[derive(Deserialize)]
struct StorageInfo {
    checksums: Option<ChecksumsJson>,
    children: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct DeployResponse {
    checksums: Option<ChecksumsJson>,
}

#[derive(Deserialize)]
struct ChecksumsJson {
    sha1: Option<String>,
    sha256: Option<String>,
    md5: Option<String>,
}

impl RegistryClient {
    /// What `repo`/`path` holds, or `None` when nothing is there.
    pub async fn file_info(
        &self,
        token: &AccessToken,
        repo: &str,
        path: &str,
    ) -> Result<Option<RemoteFile>, RegistryError> {
        let url = self.url(&format!(
            "artifactory/api/storage/{}/{}",
            encode_segment(repo),
            encode_path(path)
        ));
        let Some(response) = self.get_if_found("file info", &url, token, None).await? else {
            return Ok(None);
        };
        let info: StorageInfo =
            response
                .json()
                .await
                .map_err(|error| RegistryError::InvalidResponse {
                    operation: "file info",
                    url,
                    message: error.without_url().to_string(),
                })?;
        let checksums = info.checksums;
        Ok(Some(RemoteFile {
            is_folder: info.children.is_some(),
            sha256: checksums.as_ref().and_then(|c| c.sha256.clone()),
            sha1: checksums.and_then(|c| c.sha1),
        }))
    }

    /// Deploys one file; see the module documentation for the order of work.
    pub async fn deploy(
        &self,
        token: &AccessToken,
        request: DeployRequest<'_>,
    ) -> Result<DeployOutcome, RegistryError> {
        self.deploy_with_progress(token, request, None).await
    }

    /// [`RegistryClient::deploy`], telling `progress` about the bytes of an upload as they
    /// are handed to the connection.
    pub async fn deploy_with_progress(
        &self,
        token: &AccessToken,
        request: DeployRequest<'_>,
        progress: Option<Arc<dyn Reporter>>,
    ) -> Result<DeployOutcome, RegistryError> {
        let display_url = self.artifact_url(request.repo, request.path);
        if let Some(existing) = self.file_info(token, request.repo, request.path).await? {
            return same_content(&existing, request.checksums, &display_url)
                .map(|()| DeployOutcome::AlreadyPublished);
        }
        let url = format!("{display_url}{}", matrix_params(request.properties));

        if request.size >= CHECKSUM_DEPLOY_MIN_BYTES {
            let response = self
                .send_with_retries("checksum deploy", &display_url, || async {
                    Ok(self
                        .put(&url, token, request.checksums)
                        .header("X-Checksum-Deploy", "true")
                        .header(CONTENT_LENGTH, 0))
                })
                .await?;
            if response.status().is_success() {
                return Ok(DeployOutcome::ChecksumDeployed);
            }
            // 404: the registry does not have the content; anything else is answered below by
            // the real upload, which reports its own error.
            if response.status() != StatusCode::NOT_FOUND {
                tracing::debug!(status = %response.status(), "checksum deploy refused; uploading");
            }
        }

        let mut multipart = None;
        if request.size >= self.multipart.min_size && self.multipart_supported(token).await? {
            let target = MultipartTarget {
                repo: request.repo,
                path: request.path,
                deploy_url: &url,
                display_url: &display_url,
                checksums: request.checksums,
            };
            let source = FileRange {
                path: request.file,
                offset: 0,
                length: request.size,
            };
            multipart = self
                .multipart_deploy(token, target, source, progress.clone())
                .await?;
        }
        let response = match multipart {
            Some(response) => response,
            None => {
                self.send_with_retries("deploy", &display_url, || async {
                    // Reopened for every attempt: a streamed body cannot be replayed.
                    let file = tokio::fs::File::open(request.file)
                        .await
                        .map_err(|source| RegistryError::Read {
                            path: request.file.to_owned(),
                            source,
                        })?;
                    let stream = ReaderStream::with_capacity(file, 256 * 1024);
                    let body = match &progress {
                        Some(progress) => {
                            let progress = progress.clone();
                            let target = request.path.to_owned();
                            reqwest::Body::wrap_stream(stream.inspect_ok(move |chunk| {
                                progress.advance(&target, chunk.len() as u64);
                            }))
                        }
                        None => reqwest::Body::wrap_stream(stream),
                    };
                    Ok(self
                        .put(&url, token, request.checksums)
                        .header(CONTENT_LENGTH, request.size)
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .body(body))
                })
                .await?
            }
        };
        let status = response.status();
        if status == StatusCode::FORBIDDEN {
            // Lost a race with another deploy of the same path: say what is there now.
            let error = RegistryError::from_response("deploy", response).await;
            if let Some(existing) = self.file_info(token, request.repo, request.path).await? {
                same_content(&existing, request.checksums, &display_url)?;
                return Ok(DeployOutcome::AlreadyPublished);
            }
            return Err(error);
        }
        if !status.is_success() {
            return Err(RegistryError::from_response("deploy", response).await);
        }
        let answer: DeployResponse =
            response
                .json()
                .await
                .map_err(|error| RegistryError::InvalidResponse {
                    operation: "deploy",
                    url: display_url.clone(),
                    message: error.without_url().to_string(),
                })?;
        verify_checksums(answer.checksums, request.checksums, &display_url)?;
        Ok(DeployOutcome::Uploaded)
    }

    fn put(
        &self,
        url: &str,
        token: &AccessToken,
        checksums: &Checksums,
    ) -> reqwest::RequestBuilder {
        self.http()
            .put(url)
            .bearer_auth(token.token.expose_secret())
            .header("X-Checksum-Sha1", &checksums.sha1)
            .header("X-Checksum-Sha256", &checksums.sha256)
            .header("X-Checksum-Md5", &checksums.md5)
    }
}

fn same_content(existing: &RemoteFile, local: &Checksums, url: &str) -> Result<(), RegistryError> {
    let remote = existing
        .sha256
        .clone()
        .or_else(|| {
            existing
                .sha1
                .clone()
                .map(|sha1| format!("unknown (sha1 {sha1})"))
        })
        .unwrap_or_else(|| {
            if existing.is_folder {
                "n/a: it is a folder".into()
            } else {
                "unknown".into()
            }
        });
    let identical = !existing.is_folder
        && match (&existing.sha256, &existing.sha1) {
            (Some(sha256), _) => sha256.eq_ignore_ascii_case(&local.sha256),
            (None, Some(sha1)) => sha1.eq_ignore_ascii_case(&local.sha1),
            (None, None) => false,
        };
    if identical {
        Ok(())
    } else {
        Err(RegistryError::Conflict {
            url: url.to_owned(),
            local_sha256: local.sha256.clone(),
            remote_sha256: remote,
        })
    }
}

fn verify_checksums(
    reported: Option<ChecksumsJson>,
    local: &Checksums,
    url: &str,
) -> Result<(), RegistryError> {
    let Some(reported) = reported else {
        tracing::debug!(url, "the registry reported no checksums for the upload");
        return Ok(());
    };
    let pairs = [
        ("sha256", reported.sha256, &local.sha256),
        ("sha1", reported.sha1, &local.sha1),
        ("md5", reported.md5, &local.md5),
    ];
    for (algorithm, remote, local) in pairs {
        if let Some(remote) = remote
            && !remote.eq_ignore_ascii_case(local)
        {
            return Err(RegistryError::ChecksumMismatch {
                url: url.to_owned(),
                algorithm,
                expected: local.clone(),
                actual: remote,
            });
        }
    }
    Ok(())
}
