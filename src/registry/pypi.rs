//! Uploading wheels and sdists with the legacy upload API that twine and uv use: a multipart
//! `POST {host}/artifactory/api/pypi/{repo}` whose file part is streamed from disk.
//!
//! Order of work: look the file up in the project's simple index (same sha256: "already
//! published"; different: conflict); otherwise upload. A refusal that mentions an existing file
//! ("overwrite") is answered the same way, by comparing hashes.

use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use tokio_util::io::ReaderStream;

use crate::registry::paths::encode_segment;
use crate::registry::{AccessToken, DeployOutcome, HexDigest, RegistryClient, RegistryError};
use crate::secret::ExposeSecret;

/// One distribution file to upload.
#[derive(Debug, Clone, Copy)]
pub struct PypiUpload<'a> {
    pub repo: &'a str,
    /// PEP 503 normalized project name, for the simple index.
    pub project: &'a str,
    pub version: &'a str,
    pub file_name: &'a str,
    pub file: &'a std::path::Path,
    pub size: u64,
    pub sha256: &'a str,
    /// Every form field before the file, in the order twine sends them.
    pub fields: &'a [(&'static str, String)],
}

impl RegistryClient {
    /// The upload URL (twine's `--repository-url`).
    pub fn pypi_upload_url(&self, repo: &str) -> String {
        self.url(&format!("artifactory/api/pypi/{}", encode_segment(repo)))
    }

    /// The project's page in the simple index (pip's `--index-url` + project).
    pub fn pypi_project_url(&self, repo: &str, project: &str) -> String {
        self.url(&format!(
            "artifactory/api/pypi/{}/simple/{}/",
            encode_segment(repo),
            encode_segment(project)
        ))
    }

    /// The sha256 the simple index lists for `file_name`, if it lists the file.
    async fn pypi_published_sha256(
        &self,
        token: &AccessToken,
        request: &PypiUpload<'_>,
    ) -> Result<Option<HexDigest>, RegistryError> {
        let url = self.pypi_project_url(request.repo, request.project);
        let Some(response) = self
            .get_if_found("PyPI simple index", &url, token, None)
            .await?
        else {
            return Ok(None);
        };
        let page = response
            .text()
            .await
            .map_err(|source| RegistryError::Transport { url, source })?;
        Ok(simple_index_sha256(&page, request.file_name))
    }

    /// Uploads one distribution file; see the module documentation for the order of work.
    pub async fn pypi_upload(
        &self,
        token: &AccessToken,
        request: PypiUpload<'_>,
    ) -> Result<DeployOutcome, RegistryError> {
        if let Some(sha256) = self.pypi_published_sha256(token, &request).await? {
            return same_sha256(&request, sha256).map(|()| DeployOutcome::AlreadyPublished);
        }
        let url = self.pypi_upload_url(request.repo);
        let response = self
            .send_with_retries("PyPI upload", &url, || async {
                // Rebuilt for every attempt: the file part streams from disk.
                let file = tokio::fs::File::open(request.file)
                    .await
                    .map_err(|source| RegistryError::Read {
                        path: request.file.to_owned(),
                        source,
                    })?;
                let content = Part::stream_with_length(
                    reqwest::Body::wrap_stream(ReaderStream::with_capacity(file, 256 * 1024)),
                    request.size,
                )
                .file_name(request.file_name.to_owned())
                .mime_str("application/octet-stream")
                .map_err(|source| RegistryError::Transport {
                    url: url.clone(),
                    source,
                })?;
                let mut form = Form::new();
                for (name, value) in request.fields {
                    form = form.text(*name, value.clone());
                }
                Ok(self
                    .http()
                    .post(&url)
                    .bearer_auth(token.token.expose_secret())
                    .multipart(form.part("content", content)))
            })
            .await?;
        let status = response.status();
        if status.is_success() {
            return Ok(DeployOutcome::Uploaded);
        }
        let error = RegistryError::from_response("PyPI upload", response).await;
        let mentions_existing = match &error {
            RegistryError::Status { message, .. } => {
                let message = message.to_ascii_lowercase();
                message.contains("overwrite") || message.contains("exist")
            }
            _ => false,
        };
        if matches!(
            status,
            StatusCode::BAD_REQUEST | StatusCode::FORBIDDEN | StatusCode::CONFLICT
        ) && mentions_existing
            && let Some(sha256) = self.pypi_published_sha256(token, &request).await?
        {
            return same_sha256(&request, sha256).map(|()| DeployOutcome::AlreadyPublished);
        }
        Err(error)
    }
}

fn same_sha256(request: &PypiUpload<'_>, remote: String) -> Result<(), RegistryError> {
    if remote.eq_ignore_ascii_case(request.sha256) {
        Ok(())
    } else {
        Err(RegistryError::VersionConflict {
            package: format!(
                "Python distribution {} ({} {})",
                request.file_name, request.project, request.version
            ),
            algorithm: "sha256",
            remote,
            local: request.sha256.to_owned(),
        })
    }
}

/// Finds `<a href="…/{file_name}#sha256=…">` in a PEP 503 page; `unknown` when the link has
/// no hash.
fn simple_index_sha256(page: &str, file_name: &str) -> Option<String> {
    page.split("href=\"").skip(1).find_map(|rest| {
        let href = rest.split('"').next()?;
        let (location, fragment) = match href.split_once('#') {
            Some((location, fragment)) => (location, Some(fragment)),
            None => (href, None),
        };
        let linked = location.rsplit('/').next()?;
        let linked = percent_encoding::percent_decode_str(linked).decode_utf8_lossy();
        (linked == file_name).then(|| {
            fragment
                .and_then(|fragment| fragment.strip_prefix("sha256="))
                .map(str::to_owned)
                .unwrap_or_else(|| "unknown".to_owned())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::simple_index_sha256;

    #[test]
    fn links_of_the_simple_index_are_found_by_file_name() {
        let page = r#"<html><body><a href="../../packages/a/nestbox_camera_agent-1.3.0-py3-none-any.whl#sha256=abc">x</a>
            <a href="nestbox_camera_agent-1.3.0.tar.gz">y</a></body></html>"#;
        assert_eq!(
            simple_index_sha256(page, "nestbox_camera_agent-1.3.0-py3-none-any.whl").as_deref(),
            Some("abc")
        );
        assert_eq!(
            simple_index_sha256(page, "nestbox_camera_agent-1.3.0.tar.gz").as_deref(),
            Some("unknown")
        );
        assert_eq!(simple_index_sha256(page, "other.whl"), None);
    }
}
