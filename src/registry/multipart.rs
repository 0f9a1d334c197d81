//! Multipart deploys, as JFrog CLI (jfrog-client-go) makes them: a large file goes to the
//! registry's cloud storage in parts sent side by side, then becomes an artifact by a checksum
//! deploy. Artifactory 7.82.2+ on cloud storage only; everyone else gets one streamed `PUT`.
//!
//! The protocol (under `{base}/artifactory/api/v1/uploads/`):
//! 1. `GET config` → `{"supported": bool}`, asked once per client (one job or one `publish`
//!    run); any answer but 200 means "not supported".
//! 2. `POST create?repoKey=&repoPath=&partSizeMB=` with the job's token → `{"token"}`: the
//!    upload's own token, a secret (never logged). A 404 here means the registry claimed
//!    support it does not have: the caller falls back to one `PUT`.
//! 3. For each part, up to `concurrency` at once: `POST urlPart?partNumber=N` (1-based, Bearer =
//!    the upload token) → `{"url"}`, a pre-signed URL of the storage, and a `PUT` of the part's
//!    bytes there without any registry credential (200). A part is retried on its own under
//!    [`crate::retry::MULTIPART_PART`], with a fresh URL each time (an expired URL answers 403).
//! 4. `POST complete?sha1=` → 202; then `POST status` is polled under
//!    [`crate::retry::MULTIPART_STATUS`] through `QUEUED` and `PROCESSING` until `FINISHED`,
//!    which carries a `checksumToken`. `RETRYABLE_ERROR` (or a 503 on `status`) runs `complete`
//!    again, a bounded number of times; `NON_RETRYABLE_ERROR` and `ABORTED` fail the deploy.
//! 5. A checksum deploy `PUT` of the artifact URL (with its properties) carrying
//!    `X-Checksum-Deploy: true` and `X-Checksum-Deploy-Token: <checksumToken>` creates the
//!    artifact; the caller checks that answer as it checks a normal deploy's.
//!
//! Any failure after `create` and before `FINISHED` calls `POST abort` (204, best effort), so
//! the registry drops the parts; so does a deploy dropped midway (a cancelled job). No
//! repository path holds anything until step 5.
//!
//! The bytes come from a [`FileRange`] (a path, an offset, a length), so a file that is a byte
//! range of a larger file on disk (a stored zip entry) is sent without being copied out first.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, HeaderValue};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;
use tracing::{debug, info, warn};

use crate::checksum::Checksums;
use crate::error::inline_chain;
use crate::registry::retry::{is_transient_status, is_transient_transport};
use crate::registry::{AccessToken, RegistryClient, RegistryError, Reporter};
use crate::retry::{MULTIPART_PART, MULTIPART_STATUS};
use crate::secret::{ExposeSecret, SecretString};

const MIB: u64 = 1024 * 1024;

/// Files at least this large are deployed in parts (JFrog CLI's `--min-split`, 200 MiB).
pub const DEFAULT_MULTIPART_MIN_SIZE: u64 = 200 * MIB;
/// Parts sent at once (JFrog CLI's `--split-count`).
pub const DEFAULT_MULTIPART_CONCURRENCY: usize = 5;
/// Size of each part but the last (JFrog CLI's `--chunk-size`, 20 MiB).
pub const DEFAULT_MULTIPART_PART_SIZE: u64 = 20 * MIB;

/// How often `complete` is sent for one upload (the first included) when the registry answers
/// `RETRYABLE_ERROR`.
const MAX_COMPLETIONS: u32 = 4;

/// When and how files are deployed in parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultipartSettings {
    /// Files of at least this many bytes go in parts, when the registry supports it.
    pub min_size: u64,
    /// Parts of one file sent at once.
    pub concurrency: usize,
    /// Bytes per part (whole MiB: the API takes the size in MB).
    pub part_size: u64,
}

impl Default for MultipartSettings {
    fn default() -> Self {
        Self {
            min_size: DEFAULT_MULTIPART_MIN_SIZE,
            concurrency: DEFAULT_MULTIPART_CONCURRENCY,
            part_size: DEFAULT_MULTIPART_PART_SIZE,
        }
    }
}

/// Bytes `offset..offset + length` of the file at `path`.
#[derive(Debug, Clone, Copy)]
pub struct FileRange<'a> {
    pub path: &'a Path,
    pub offset: u64,
    pub length: u64,
}

/// What a multipart deploy is for: the artifact's repository, path and deploy URL.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MultipartTarget<'a> {
    pub repo: &'a str,
    /// Unencoded, `/`-separated.
    pub path: &'a str,
    /// The deploy URL with its matrix parameters (the properties).
    pub deploy_url: &'a str,
    /// The artifact's URL as messages show it.
    pub display_url: &'a str,
    pub checksums: &'a Checksums,
}

#[derive(Deserialize)]
struct ConfigResponse {
    #[serde(default)]
    supported: bool,
}

#[derive(Deserialize)]
struct CreateResponse {
    token: String,
}

#[derive(Deserialize)]
struct UrlPartResponse {
    url: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusResponse {
    status: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    progress: Option<u32>,
    #[serde(default)]
    checksum_token: Option<String>,
}

/// Why one attempt at a part failed, and whether another may cure it.
struct PartFailure {
    retry: bool,
    reason: String,
    error: RegistryError,
}

/// Aborts an upload whose deploy was dropped before it ended (the job was cancelled), from a
/// task of its own, since `Drop` cannot wait.
struct AbortOnDrop {
    client: RegistryClient,
    upload_token: SecretString,
    path: String,
    armed: bool,
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (client, upload_token, path) = (
            self.client.clone(),
            self.upload_token.clone(),
            std::mem::take(&mut self.path),
        );
        runtime.spawn(async move { client.multipart_abort(&upload_token, &path).await });
    }
}

/// A part URL as messages show it: without its query, which is the signature.
fn without_query(url: &str) -> String {
    url.split(['?', '#']).next().unwrap_or_default().to_owned()
}

impl RegistryClient {
    /// Whether the registry takes multipart deploys (`GET …/uploads/config`), asked once.
    pub(crate) async fn multipart_supported(
        &self,
        token: &AccessToken,
    ) -> Result<bool, RegistryError> {
        let support = self.multipart_support.clone();
        support
            .get_or_try_init(|| async {
                let url = self.url("artifactory/api/v1/uploads/config");
                let response = self
                    .send_with_retries("multipart config", &url, || async {
                        Ok(self.http().get(&url).bearer_auth(token.token.expose_secret()))
                    })
                    .await?;
                if response.status() != StatusCode::OK {
                    // Older than 7.82.2, or not Artifactory at all.
                    debug!(status = %response.status(), "no multipart upload API; single PUTs");
                    return Ok(false);
                }
                let supported = match response.json::<ConfigResponse>().await {
                    Ok(config) => config.supported,
                    Err(error) => {
                        warn!(error = %error.without_url(), "unreadable multipart config; single PUTs");
                        false
                    }
                };
                debug!(supported, "multipart upload config");
                Ok(supported)
            })
            .await
            .copied()
    }

    /// Sends `source` in parts and finishes with the checksum deploy, whose response is
    /// returned for the caller to check. `None`: `create` answered 404, nothing was sent, and
    /// the caller should deploy with one `PUT`.
    pub(crate) async fn multipart_deploy(
        &self,
        token: &AccessToken,
        target: MultipartTarget<'_>,
        source: FileRange<'_>,
        progress: Option<Arc<dyn Reporter>>,
    ) -> Result<Option<reqwest::Response>, RegistryError> {
        let settings = self.multipart;
        let part_size = settings.part_size.max(MIB);
        let announced_part_size = part_size.min(source.length.div_ceil(MIB) * MIB).max(MIB);
        let Some(upload_token) = self
            .multipart_create(token, target, announced_part_size)
            .await?
        else {
            return Ok(None);
        };
        // A job cancelled mid-upload (drain timeout, shutdown) still tells the registry to drop
        // the parts.
        let mut guard = AbortOnDrop {
            client: self.clone(),
            upload_token: upload_token.clone(),
            path: target.path.to_owned(),
            armed: true,
        };
        let parts = source.length.div_ceil(announced_part_size).max(1);
        info!(
            path = target.path,
            parts,
            part_mib = announced_part_size / MIB,
            concurrency = settings.concurrency,
            "multipart deploy"
        );
        let sent = async {
            let uploads = futures::stream::iter(0..parts)
                .map(|index| {
                    self.multipart_part(
                        &upload_token,
                        target,
                        source,
                        announced_part_size,
                        index,
                        parts,
                        progress.clone(),
                    )
                })
                .buffer_unordered(settings.concurrency.max(1));
            futures::pin_mut!(uploads);
            // The first failure ends the upload; dropping the stream cancels the other parts.
            while let Some(result) = uploads.next().await {
                result?;
            }
            self.multipart_complete(&upload_token, target).await
        }
        .await;
        guard.armed = false;
        let checksum_token = match sent {
            Ok(checksum_token) => checksum_token,
            Err(error) => {
                self.multipart_abort(&upload_token, target.path).await;
                return Err(error);
            }
        };
        let response = self
            .send_with_retries("checksum deploy", target.display_url, || async {
                let mut deploy_token = HeaderValue::from_str(checksum_token.expose_secret())
                    .map_err(|_| RegistryError::InvalidResponse {
                        operation: "multipart status",
                        url: target.display_url.to_owned(),
                        message: "the checksum token is not a header value".to_owned(),
                    })?;
                deploy_token.set_sensitive(true);
                Ok(self
                    .http()
                    .put(target.deploy_url)
                    .bearer_auth(token.token.expose_secret())
                    .header("X-Checksum-Deploy", "true")
                    .header("X-Checksum-Deploy-Token", deploy_token)
                    .header("X-Checksum-Sha1", &target.checksums.sha1)
                    .header("X-Checksum-Sha256", &target.checksums.sha256)
                    .header("X-Checksum-Md5", &target.checksums.md5)
                    .header(CONTENT_LENGTH, 0))
            })
            .await?;
        Ok(Some(response))
    }

    /// `POST create`: the upload token, or `None` on 404.
    async fn multipart_create(
        &self,
        token: &AccessToken,
        target: MultipartTarget<'_>,
        part_size: u64,
    ) -> Result<Option<SecretString>, RegistryError> {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("repoKey", target.repo)
            .append_pair("repoPath", target.path)
            .append_pair("partSizeMB", &(part_size / MIB).to_string())
            .finish();
        let url = self.url(&format!("artifactory/api/v1/uploads/create?{query}"));
        let response = self
            .send_with_retries("multipart create", &url, || async {
                Ok(self
                    .http()
                    .post(&url)
                    .bearer_auth(token.token.expose_secret())
                    .header(CONTENT_LENGTH, 0))
            })
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            info!(
                path = target.path,
                "the registry claims multipart support but has no create API (404); one PUT instead"
            );
            return Ok(None);
        }
        if response.status() != StatusCode::OK {
            return Err(RegistryError::from_response("multipart create", response).await);
        }
        // The body is the upload's credential: parsed, never logged.
        let created: CreateResponse =
            response
                .json()
                .await
                .map_err(|error| RegistryError::InvalidResponse {
                    operation: "multipart create",
                    url: url.clone(),
                    message: error.without_url().to_string(),
                })?;
        Ok(Some(SecretString::from(created.token)))
    }

    /// One part, retried on its own with a fresh URL for each attempt.
    #[allow(clippy::too_many_arguments)]
    async fn multipart_part(
        &self,
        upload_token: &SecretString,
        target: MultipartTarget<'_>,
        source: FileRange<'_>,
        part_size: u64,
        index: u64,
        parts: u64,
        progress: Option<Arc<dyn Reporter>>,
    ) -> Result<(), RegistryError> {
        let offset = index * part_size;
        let length = part_size.min(source.length - offset);
        let mut backoff = MULTIPART_PART.errors.backoff();
        let mut attempt = 1;
        loop {
            let failure = match self
                .multipart_part_attempt(
                    upload_token,
                    source,
                    offset,
                    length,
                    index + 1,
                    &progress,
                    target.path,
                )
                .await
            {
                Ok(()) => return Ok(()),
                Err(failure) => failure,
            };
            if !failure.retry || attempt >= MULTIPART_PART.attempts {
                return Err(RegistryError::MultipartPart {
                    url: target.display_url.to_owned(),
                    part: index + 1,
                    parts,
                    source: Box::new(failure.error),
                });
            }
            let delay = backoff.next_delay();
            warn!(
                path = target.path,
                part = index + 1,
                attempt,
                reason = %failure.reason,
                retry_in_ms = delay.as_millis() as u64,
                "multipart part failed; retrying with a fresh part URL"
            );
            if let Some(observer) = self.observer.as_deref() {
                observer.retrying(target.path, attempt, &failure.reason);
            }
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// Asks for the part's URL and `PUT`s its bytes there, once.
    #[allow(clippy::too_many_arguments)]
    async fn multipart_part_attempt(
        &self,
        upload_token: &SecretString,
        source: FileRange<'_>,
        offset: u64,
        length: u64,
        part_number: u64,
        progress: &Option<Arc<dyn Reporter>>,
        target_path: &str,
    ) -> Result<(), PartFailure> {
        let url = self.url(&format!(
            "artifactory/api/v1/uploads/urlPart?partNumber={part_number}"
        ));
        let response = self
            .http()
            .post(&url)
            .bearer_auth(upload_token.expose_secret())
            .header(CONTENT_LENGTH, 0)
            .send()
            .await
            .map_err(|source| PartFailure {
                retry: is_transient_transport(&source),
                reason: "transport error".to_owned(),
                error: RegistryError::Transport {
                    url: url.clone(),
                    source,
                },
            })?;
        if response.status() != StatusCode::OK {
            let status = response.status();
            return Err(PartFailure {
                retry: is_transient_status(status),
                reason: status.as_str().to_owned(),
                error: RegistryError::from_response("multipart part URL", response).await,
            });
        }
        let part_url = response
            .json::<UrlPartResponse>()
            .await
            .map_err(|error| PartFailure {
                retry: false,
                reason: "invalid answer".to_owned(),
                error: RegistryError::InvalidResponse {
                    operation: "multipart part URL",
                    url: url.clone(),
                    message: error.without_url().to_string(),
                },
            })?
            .url;
        let shown_url = without_query(&part_url);

        let read_failed = |error: std::io::Error| PartFailure {
            retry: false,
            reason: "read error".to_owned(),
            error: RegistryError::Read {
                path: source.path.to_owned(),
                source: error,
            },
        };
        let mut file = tokio::fs::File::open(source.path)
            .await
            .map_err(read_failed)?;
        file.seek(std::io::SeekFrom::Start(source.offset + offset))
            .await
            .map_err(read_failed)?;
        let stream = ReaderStream::with_capacity(file.take(length), 256 * 1024);
        let body = match progress {
            Some(progress) => {
                let progress = progress.clone();
                let target = target_path.to_owned();
                reqwest::Body::wrap_stream(stream.inspect_ok(move |chunk| {
                    progress.advance(&target, chunk.len() as u64);
                }))
            }
            None => reqwest::Body::wrap_stream(stream),
        };
        // No registry credential: the URL is its own authorisation.
        let response = self
            .http()
            .put(&part_url)
            .header(CONTENT_LENGTH, length)
            .body(body)
            .send()
            .await
            .map_err(|source| PartFailure {
                retry: is_transient_transport(&source),
                reason: "transport error".to_owned(),
                error: RegistryError::Transport {
                    url: shown_url.clone(),
                    // The error's URL would carry the signature.
                    source: source.without_url(),
                },
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        Err(PartFailure {
            // 403: the URL expired (or the clock moved); a fresh one may well work.
            retry: is_transient_status(status) || status == StatusCode::FORBIDDEN,
            reason: status.as_str().to_owned(),
            error: RegistryError::from_response_at("multipart part upload", shown_url, response)
                .await,
        })
    }

    /// `complete`, then `status` until `FINISHED`; the checksum token.
    async fn multipart_complete(
        &self,
        upload_token: &SecretString,
        target: MultipartTarget<'_>,
    ) -> Result<SecretString, RegistryError> {
        let complete_url = self.url(&format!(
            "artifactory/api/v1/uploads/complete?sha1={}",
            target.checksums.sha1
        ));
        let status_url = self.url("artifactory/api/v1/uploads/status");
        let mut completions = 0;
        'complete: loop {
            completions += 1;
            let response = self
                .send_with_retries("multipart complete", &complete_url, || async {
                    Ok(self
                        .http()
                        .post(&complete_url)
                        .bearer_auth(upload_token.expose_secret())
                        .header(CONTENT_LENGTH, 0))
                })
                .await?;
            if response.status() != StatusCode::ACCEPTED {
                return Err(RegistryError::from_response("multipart complete", response).await);
            }
            let started = tokio::time::Instant::now();
            let mut backoff = MULTIPART_STATUS.errors.backoff();
            let mut polls = 0;
            loop {
                polls += 1;
                let response = self
                    .send_with_retries("multipart status", &status_url, || async {
                        Ok(self
                            .http()
                            .post(&status_url)
                            .bearer_auth(upload_token.expose_secret())
                            .header(CONTENT_LENGTH, 0))
                    })
                    .await?;
                let answer = if response.status() == StatusCode::SERVICE_UNAVAILABLE {
                    // As jfrog-client-go: the node is gone; complete again on another.
                    StatusResponse {
                        status: "RETRYABLE_ERROR".to_owned(),
                        error: Some("the registry is unavailable".to_owned()),
                        progress: None,
                        checksum_token: None,
                    }
                } else if response.status() != StatusCode::OK {
                    return Err(RegistryError::from_response("multipart status", response).await);
                } else {
                    response.json::<StatusResponse>().await.map_err(|error| {
                        RegistryError::InvalidResponse {
                            operation: "multipart status",
                            url: status_url.clone(),
                            message: error.without_url().to_string(),
                        }
                    })?
                };
                let failed = |answer: StatusResponse| RegistryError::MultipartFailed {
                    url: target.display_url.to_owned(),
                    message: answer
                        .error
                        .unwrap_or_else(|| "the registry gave no reason".to_owned()),
                    status: answer.status,
                };
                match answer.status.as_str() {
                    "FINISHED" => {
                        let Some(checksum_token) = answer.checksum_token else {
                            return Err(RegistryError::InvalidResponse {
                                operation: "multipart status",
                                url: status_url,
                                message: "FINISHED without a checksumToken".to_owned(),
                            });
                        };
                        debug!(path = target.path, polls, "multipart upload assembled");
                        return Ok(SecretString::from(checksum_token));
                    }
                    // PARTS: the registry has not taken in the completion yet.
                    "QUEUED" | "PROCESSING" | "PARTS" => {
                        let waited = started.elapsed();
                        if !MULTIPART_STATUS.allows_another(polls, waited) {
                            return Err(RegistryError::MultipartTimedOut {
                                url: target.display_url.to_owned(),
                                status: answer.status,
                                waited_secs: waited.as_secs(),
                            });
                        }
                        debug!(path = target.path, status = %answer.status, progress = answer.progress, "multipart upload assembling");
                        tokio::time::sleep(backoff.next_delay().max(Duration::from_millis(10)))
                            .await;
                    }
                    "RETRYABLE_ERROR" if completions < MAX_COMPLETIONS => {
                        warn!(
                            path = target.path,
                            error = answer.error.as_deref().unwrap_or(""),
                            "the registry could not assemble the parts yet; completing again"
                        );
                        continue 'complete;
                    }
                    "RETRYABLE_ERROR" | "NON_RETRYABLE_ERROR" | "ABORTED" => {
                        return Err(failed(answer));
                    }
                    other => {
                        return Err(RegistryError::InvalidResponse {
                            operation: "multipart status",
                            url: status_url.clone(),
                            message: format!("unknown status `{other}`"),
                        });
                    }
                }
            }
        }
    }

    /// `POST abort`, best effort: the failure that led here is what the caller reports.
    async fn multipart_abort(&self, upload_token: &SecretString, path: &str) {
        let url = self.url("artifactory/api/v1/uploads/abort");
        let outcome = self
            .send_with_retries("multipart abort", &url, || async {
                Ok(self
                    .http()
                    .post(&url)
                    .bearer_auth(upload_token.expose_secret())
                    .header(CONTENT_LENGTH, 0))
            })
            .await;
        match outcome {
            Ok(response) if response.status().is_success() => {
                info!(path, "aborted the multipart upload");
            }
            Ok(response) => {
                let error = RegistryError::from_response("multipart abort", response).await;
                warn!(path, error = %inline_chain(&error), "could not abort the multipart upload");
            }
            Err(error) => {
                warn!(path, error = %inline_chain(&error), "could not abort the multipart upload");
            }
        }
    }
}
