//! Publishing to an npm repository through Artifactory's npm API, with the document npm itself
//! sends — streamed, so a large tarball is never held in memory twice (base64 is produced
//! chunk by chunk while the request is sent).
//!
//! Order of work: read the packument; the same version with the same shasum is "already
//! published", a different shasum a conflict; otherwise `PUT` the document.

use bytes::Bytes;
use futures::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use serde_json::{Map, Value, json};
use tokio::io::AsyncReadExt;

use base64::Engine;

use crate::registry::paths::encode_segment;
use crate::registry::{AccessToken, DeployOutcome, HexDigest, RegistryClient, RegistryError};
use crate::secret::ExposeSecret;

/// Base64 is produced from whole 3-byte groups, so chunks concatenate without padding.
const BASE64_CHUNK_BYTES: usize = 3 * 64 * 1024;

/// One npm package to publish.
#[derive(Debug, Clone, Copy)]
pub struct NpmPublish<'a> {
    pub repo: &'a str,
    pub name: &'a str,
    pub version: &'a str,
    /// `package.json` as written.
    pub manifest: &'a Map<String, Value>,
    pub tag: &'a str,
    pub access: Option<&'a str>,
    pub tarball: &'a std::path::Path,
    pub size: u64,
    pub sha1: &'a str,
    pub sha512_base64: &'a str,
}

impl RegistryClient {
    /// The registry URL npm is configured with: `{host}/artifactory/api/npm/{repo}/`.
    pub fn npm_registry_url(&self, repo: &str) -> String {
        self.url(&format!("artifactory/api/npm/{}/", encode_segment(repo)))
    }

    /// The package's URL: the name with a scope's `/` escaped, as npm sends it.
    fn npm_package_url(&self, repo: &str, name: &str) -> String {
        let escaped = match name.split_once('/') {
            Some((scope, bare)) => format!(
                "{}%2f{}",
                encode_segment(scope).replace("%40", "@"),
                encode_segment(bare)
            ),
            None => encode_segment(name),
        };
        format!("{}{escaped}", self.npm_registry_url(repo))
    }

    /// Where npm (and Artifactory) serve the tarball.
    pub fn npm_tarball_url(&self, repo: &str, name: &str, version: &str) -> String {
        format!(
            "{}{name}/-/{name}-{version}.tgz",
            self.npm_registry_url(repo)
        )
    }

    /// The published shasum of `name@version`, if that version exists.
    async fn npm_published_shasum(
        &self,
        token: &AccessToken,
        request: &NpmPublish<'_>,
    ) -> Result<Option<HexDigest>, RegistryError> {
        let url = self.npm_package_url(request.repo, request.name);
        let Some(response) = self
            .get_if_found("npm packument", &url, token, Some("application/json"))
            .await?
        else {
            return Ok(None);
        };
        let packument: Value =
            response
                .json()
                .await
                .map_err(|error| RegistryError::InvalidResponse {
                    operation: "npm packument",
                    url,
                    message: error.without_url().to_string(),
                })?;
        Ok(packument
            .pointer(&format!(
                "/versions/{}",
                request.version.replace('~', "~0").replace('/', "~1")
            ))
            .map(|version| {
                version
                    .pointer("/dist/shasum")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown")
                    .to_owned()
            }))
    }

    /// Publishes one npm package; see the module documentation for the order of work.
    pub async fn npm_publish(
        &self,
        token: &AccessToken,
        request: NpmPublish<'_>,
    ) -> Result<DeployOutcome, RegistryError> {
        if let Some(shasum) = self.npm_published_shasum(token, &request).await? {
            return same_shasum(&request, shasum).map(|()| DeployOutcome::AlreadyPublished);
        }
        let url = self.npm_package_url(request.repo, request.name);
        let (prefix, suffix) = document_parts(&request, &self.npm_registry_url(request.repo));
        let length = prefix.len() as u64 + 4 * request.size.div_ceil(3) + suffix.len() as u64;
        let response = self
            .send_with_retries("npm publish", &url, || async {
                // Rebuilt for every attempt: the document streams from disk.
                let file = tokio::fs::File::open(request.tarball)
                    .await
                    .map_err(|source| RegistryError::Read {
                        path: request.tarball.to_owned(),
                        source,
                    })?;
                let (prefix, suffix) = (prefix.clone(), suffix.clone());
                let body =
                    futures::stream::once(
                        async move { Ok::<_, std::io::Error>(Bytes::from(prefix)) },
                    )
                    .chain(base64_stream(file))
                    .chain(futures::stream::once(
                        async move { Ok(Bytes::from(suffix)) },
                    ));
                Ok(self
                    .http()
                    .put(&url)
                    .bearer_auth(token.token.expose_secret())
                    .header(CONTENT_TYPE, "application/json")
                    .header(CONTENT_LENGTH, length)
                    .body(reqwest::Body::wrap_stream(body)))
            })
            .await?;
        let status = response.status();
        if status.is_success() {
            return Ok(DeployOutcome::Uploaded);
        }
        let error = RegistryError::from_response("npm publish", response).await;
        if matches!(status, StatusCode::FORBIDDEN | StatusCode::CONFLICT)
            && let Some(shasum) = self.npm_published_shasum(token, &request).await?
        {
            // Lost a race with another publish of the same version: say what is there now.
            return same_shasum(&request, shasum).map(|()| DeployOutcome::AlreadyPublished);
        }
        Err(error)
    }
}

fn same_shasum(request: &NpmPublish<'_>, remote: String) -> Result<(), RegistryError> {
    if remote.eq_ignore_ascii_case(request.sha1) {
        Ok(())
    } else {
        Err(RegistryError::VersionConflict {
            package: format!("npm package {}@{}", request.name, request.version),
            algorithm: "shasum",
            remote,
            local: request.sha1.to_owned(),
        })
    }
}

/// The document npm sends, split around the attachment's base64 data.
fn document_parts(request: &NpmPublish<'_>, registry: &str) -> (Vec<u8>, Vec<u8>) {
    let tarball_name = format!("{}-{}.tgz", request.name, request.version);
    // npm writes the tarball URL with http://, whatever the registry's scheme; registries
    // rewrite it to their own download URL.
    let tarball_url =
        format!("{registry}{}/-/{tarball_name}", request.name).replacen("https://", "http://", 1);
    let mut version = request.manifest.clone();
    version.insert(
        "_id".into(),
        json!(format!("{}@{}", request.name, request.version)),
    );
    version.insert(
        "dist".into(),
        json!({
            "integrity": format!("sha512-{}", request.sha512_base64),
            "shasum": request.sha1,
            "tarball": tarball_url,
        }),
    );
    let mut document = Map::new();
    document.insert("_id".into(), json!(request.name));
    document.insert("name".into(), json!(request.name));
    if let Some(description) = request.manifest.get("description") {
        document.insert("description".into(), description.clone());
    }
    document.insert("dist-tags".into(), json!({ request.tag: request.version }));
    document.insert("versions".into(), json!({ request.version: version }));
    document.insert("access".into(), json!(request.access));
    // The document without `_attachments`, its closing brace replaced by the attachment.
    let mut prefix = Value::Object(document).to_string().into_bytes();
    prefix.pop();
    prefix.extend_from_slice(b",\"_attachments\":{");
    prefix.extend_from_slice(Value::String(tarball_name).to_string().as_bytes());
    prefix.extend_from_slice(b":{\"content_type\":\"application/octet-stream\",\"data\":\"");
    let suffix = format!("\",\"length\":{}}}}}}}", request.size).into_bytes();
    (prefix, suffix)
}

/// The file as base64, in chunks of whole 3-byte groups.
fn base64_stream(
    file: tokio::fs::File,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::try_unfold(Some(file), |file| async move {
        let Some(mut file) = file else {
            return Ok(None);
        };
        let mut chunk = vec![0u8; BASE64_CHUNK_BYTES];
        let mut filled = 0;
        while filled < chunk.len() {
            let read = file.read(&mut chunk[filled..]).await?;
            if read == 0 {
                break;
            }
            filled += read;
        }
        if filled == 0 {
            return Ok(None);
        }
        let encoded = base64::engine::general_purpose::STANDARD.encode(&chunk[..filled]);
        let next = (filled == chunk.len()).then_some(file);
        Ok(Some((Bytes::from(encoded), next)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_valid_json_once_the_data_is_spliced_in() {
        let manifest: Map<String, Value> =
            serde_json::from_str(r#"{"name":"@nestbox/cam","version":"1.0.0","description":"d"}"#)
                .unwrap();
        let request = NpmPublish {
            repo: "npm-local",
            name: "@nestbox/cam",
            version: "1.0.0",
            manifest: &manifest,
            tag: "latest",
            access: None,
            tarball: std::path::Path::new("unused"),
            size: 3,
            sha1: "abc",
            sha512_base64: "xyz",
        };
        let (prefix, suffix) =
            document_parts(&request, "https://r.example/artifactory/api/npm/npm-local/");
        let mut document = prefix;
        document.extend_from_slice(b"AAAA");
        document.extend_from_slice(&suffix);
        let value: Value = serde_json::from_slice(&document).unwrap();
        let attachment = &value["_attachments"]["@nestbox/cam-1.0.0.tgz"];
        assert_eq!(attachment["data"], "AAAA");
        assert_eq!(attachment["length"], 3);
        assert_eq!(value["dist-tags"]["latest"], "1.0.0");
        assert_eq!(value["versions"]["1.0.0"]["_id"], "@nestbox/cam@1.0.0");
        assert_eq!(
            value["versions"]["1.0.0"]["dist"]["tarball"],
            "http://r.example/artifactory/api/npm/npm-local/@nestbox/cam/-/@nestbox/cam-1.0.0.tgz"
        );
        assert_eq!(value["access"], Value::Null);
    }
}
