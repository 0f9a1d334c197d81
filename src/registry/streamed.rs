//! Deploying a file whose bytes are still being produced: one `PUT` whose body the caller
//! streams as the bytes arrive, before their checksums are known.
//!
//! A normal deploy sends `X-Checksum-Sha1`/`-Sha256`/`-Md5` headers, so the registry refuses a
//! body that does not match; headers go first, so a streamed deploy cannot send them. Instead
//! the registry's answer (the checksums it computed, as Artifactory's deploy response carries
//! them) is compared with the caller's once the body is complete
//! ([`RegistryClient::confirm_streamed`]). The caller keeps the last bytes of the body back
//! until its own checks have passed and ends the body with an error otherwise: a `PUT` whose
//! body breaks off creates nothing, so a file that fails its checks is never published.
//!
//! Only a path that holds nothing is deployed this way, and never a file that would go in
//! parts (a multipart deploy of the whole file is faster than one stream); nor is a checksum
//! deploy tried first, since it needs the checksums. The body is sent once: it cannot be
//! replayed, so a failed attempt is the caller's to repeat the usual way, from the whole file.

use std::collections::BTreeMap;

use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use serde::Deserialize;

use crate::checksum::Checksums;
use crate::registry::paths::matrix_params;
use crate::registry::{AccessToken, RegistryClient, RegistryError};
use crate::secret::ExposeSecret;

/// A file to deploy as its bytes arrive.
#[derive(Debug, Clone, Copy)]
pub struct StreamedDeploy<'a> {
    pub repo: &'a str,
    /// Relative, `/`-separated, unencoded.
    pub path: &'a str,
    /// The body's length, sent as `Content-Length`.
    pub size: u64,
    pub properties: &'a BTreeMap<String, Vec<String>>,
}

/// A streamed deploy the registry accepted, with the checksums it computed.
#[derive(Debug)]
pub struct StreamedUpload {
    url: String,
    reported: Option<ReportedChecksums>,
}

#[derive(Debug, Deserialize)]
struct DeployAnswer {
    checksums: Option<ReportedChecksums>,
}

#[derive(Debug, Clone, Deserialize)]
struct ReportedChecksums {
    sha1: Option<String>,
    sha256: Option<String>,
    md5: Option<String>,
}

impl RegistryClient {
    /// Whether `request` may be deployed as a stream: its path holds nothing and the file
    /// would not go in parts.
    pub async fn may_stream(
        &self,
        token: &AccessToken,
        request: StreamedDeploy<'_>,
    ) -> Result<bool, RegistryError> {
        if request.size >= self.multipart.min_size && self.multipart_supported(token).await? {
            return Ok(false);
        }
        Ok(self
            .file_info(token, request.repo, request.path)
            .await?
            .is_none())
    }

    /// Sends `body` (exactly `request.size` bytes) to the path, once.
    pub async fn deploy_streamed(
        &self,
        token: &AccessToken,
        request: StreamedDeploy<'_>,
        body: reqwest::Body,
    ) -> Result<StreamedUpload, RegistryError> {
        let url = self.artifact_url(request.repo, request.path);
        let response = self
            .http()
            .put(format!("{url}{}", matrix_params(request.properties)))
            .bearer_auth(token.token.expose_secret())
            .header(CONTENT_LENGTH, request.size)
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(body)
            .send()
            .await
            .map_err(|source| RegistryError::Transport {
                url: url.clone(),
                source,
            })?;
        if !response.status().is_success() {
            return Err(RegistryError::from_response("deploy", response).await);
        }
        let answer: DeployAnswer =
            response
                .json()
                .await
                .map_err(|error| RegistryError::InvalidResponse {
                    operation: "deploy",
                    url: url.clone(),
                    message: error.without_url().to_string(),
                })?;
        Ok(StreamedUpload {
            url,
            reported: answer.checksums,
        })
    }

    /// Checks that what the registry stored is `local` (the checksums computed while the
    /// bytes were read and checked): by the deploy's answer, or by asking for the file when
    /// the answer carried no SHA-256.
    pub async fn confirm_streamed(
        &self,
        token: &AccessToken,
        request: StreamedDeploy<'_>,
        upload: &StreamedUpload,
        local: &Checksums,
    ) -> Result<(), RegistryError> {
        let mut reported = upload.reported.clone();
        if reported.as_ref().is_none_or(|r| r.sha256.is_none()) {
            let stored = self.file_info(token, request.repo, request.path).await?;
            reported = Some(ReportedChecksums {
                sha256: stored.as_ref().and_then(|file| file.sha256.clone()),
                sha1: stored.and_then(|file| file.sha1),
                md5: None,
            });
        }
        let reported = reported.unwrap_or(ReportedChecksums {
            sha1: None,
            sha256: None,
            md5: None,
        });
        let pairs = [
            ("sha256", reported.sha256, &local.sha256),
            ("sha1", reported.sha1, &local.sha1),
            ("md5", reported.md5, &local.md5),
        ];
        for (algorithm, remote, local) in pairs {
            let matches = match &remote {
                Some(remote) => remote.eq_ignore_ascii_case(local),
                // Without a SHA-256 nothing proves the stored bytes are ours.
                None => algorithm != "sha256",
            };
            if !matches {
                return Err(RegistryError::ChecksumMismatch {
                    url: upload.url.clone(),
                    algorithm,
                    expected: local.clone(),
                    actual: remote.unwrap_or_else(|| "none reported".into()),
                });
            }
        }
        Ok(())
    }
}
