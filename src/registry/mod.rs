//! A client for Artifactory-compatible registries: tokens, deploys, file info, npm and PyPI
//! publishing, item properties and build info.
//!
//! One `reqwest::Client` (connection pool, TLS sessions) is shared by every job; a
//! [`RegistryClient`] pairs it with one registry's base URL. Redirects are never followed, so
//! credentials are only ever sent to the host the action names.

mod build_info;
mod deploy;
mod error;
mod exchange;
mod item_properties;
mod multipart;
mod npm;
pub mod paths;
mod pypi;
mod removal;
mod reporter;
pub mod retry;
mod session;
mod streamed;
mod token;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use url::Url;

use crate::secret::ExposeSecret;

pub use deploy::{DeployOutcome, DeployRequest, RemoteFile};
pub use error::RegistryError;
pub use exchange::TokenSource;
pub use multipart::{
    DEFAULT_MULTIPART_CONCURRENCY, DEFAULT_MULTIPART_MIN_SIZE, DEFAULT_MULTIPART_PART_SIZE,
    FileRange, MultipartSettings,
};
pub use npm::NpmPublish;
pub use pypi::PypiUpload;
pub use removal::{Deployed, Removal};
pub use reporter::{NoReporter, Reporter};
pub use session::TokenSession;
pub use streamed::{StreamedDeploy, StreamedUpload};
pub use token::{AccessToken, TokenApi};

/// A path inside a repository, as the registry reports it (`nestbox-cam/2.4.1/fw.img`).
pub type RepoPath = String;

/// A checksum in lower-case hex, as the registry reports it.
pub type HexDigest = String;

/// The HTTP client every registry call goes through.
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    http_client_with(&HttpOptions::default())
}

/// What an operator can change about how the registry is reached.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// How long the registry may stay silent before a request counts as stalled.
    pub read_timeout: Duration,
    /// Extra CA certificates (PEM) to trust besides the system's, e.g. a private CA.
    pub ca_bundle: Option<PathBuf>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            read_timeout: DEFAULT_READ_TIMEOUT,
            ca_bundle: None,
        }
    }
}

/// How long a registry may stay silent (no byte read) before the request counts as stalled.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(120);

/// [`http_client`] with another stall timeout.
pub fn http_client_with_timeout(read_timeout: Duration) -> anyhow::Result<reqwest::Client> {
    http_client_with(&HttpOptions {
        read_timeout,
        ..HttpOptions::default()
    })
}

/// [`http_client`] with `options`. Certificate verification is always on: a bundle only adds
/// trusted roots, it never turns checking off.
pub fn http_client_with(options: &HttpOptions) -> anyhow::Result<reqwest::Client> {
    let read_timeout = options.read_timeout;
    let mut builder = reqwest::Client::builder();
    if let Some(path) = &options.ca_bundle {
        let pem = std::fs::read(path).with_context(|| {
            format!(
                "could not read the CA bundle `{}` (--ca-bundle)",
                path.display()
            )
        })?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem).with_context(|| {
            format!(
                "`{}` is not a PEM certificate bundle (--ca-bundle)",
                path.display()
            )
        })?;
        anyhow::ensure!(
            !certificates.is_empty(),
            "`{}` holds no PEM certificate (--ca-bundle)",
            path.display()
        );
        builder = builder.tls_certs_merge(certificates);
    }
    let client = builder
        .user_agent(concat!("pipeline-publisher/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        // A stalled registry must not hold a job forever; a stalled request is retried like any
        // other timeout. Large uploads keep reading and writing, so they never trip it.
        .read_timeout(read_timeout)
        .pool_idle_timeout(Duration::from_secs(60))
        .build()?;
    Ok(client)
}

/// One registry, addressed by its base URL (e.g. `https://acme.jfrog.io`).
#[derive(Clone)]
pub struct RegistryClient {
    http: reqwest::Client,
    base: Url,
    /// Told about every retry, for the job's logs and the retry metric.
    observer: Option<Arc<dyn Reporter>>,
    /// When large files are deployed in parts.
    multipart: MultipartSettings,
    /// Whether the registry takes multipart deploys, asked once and shared by clones.
    multipart_support: Arc<tokio::sync::OnceCell<bool>>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl RegistryClient {
    pub fn new(http: reqwest::Client, base: Url) -> Self {
        Self {
            http,
            base,
            observer: None,
            multipart: MultipartSettings::default(),
            multipart_support: Arc::default(),
        }
    }

    /// Deploys large files in parts as `settings` say, where the registry supports it.
    pub fn with_multipart(mut self, settings: MultipartSettings) -> Self {
        self.multipart = settings;
        self
    }

    /// Reports retries to `observer` (the job's progress, which counts them in the metrics).
    pub fn with_observer(mut self, observer: Arc<dyn Reporter>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Sends a request under the [`retry`] policy; `build` makes it anew for each attempt.
    pub(crate) async fn send_with_retries<F, Fut>(
        &self,
        operation: &'static str,
        url: &str,
        build: F,
    ) -> Result<reqwest::Response, RegistryError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<reqwest::RequestBuilder, RegistryError>>,
    {
        retry::send(operation, url, self.observer.as_deref(), build).await
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// GETs `url` with the token under the retry policy: `None` when the registry has nothing
    /// there (404), the response when it does, an error for any other answer.
    pub(crate) async fn get_if_found(
        &self,
        operation: &'static str,
        url: &str,
        token: &AccessToken,
        accept: Option<&'static str>,
    ) -> Result<Option<reqwest::Response>, RegistryError> {
        let response = self
            .send_with_retries(operation, url, || async {
                let request = self
                    .http()
                    .get(url)
                    .bearer_auth(token.token.expose_secret());
                Ok(match accept {
                    Some(accept) => request.header(reqwest::header::ACCEPT, accept),
                    None => request,
                })
            })
            .await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(RegistryError::from_response(operation, response).await);
        }
        Ok(Some(response))
    }

    /// `base` joined with an already-encoded relative path.
    pub(crate) fn url(&self, encoded_path: &str) -> String {
        format!(
            "{}/{}",
            self.base.as_str().trim_end_matches('/'),
            encoded_path.trim_start_matches('/')
        )
    }

    /// The URL where a file of a repository can be downloaded.
    pub fn artifact_url(&self, repo: &str, path: &str) -> String {
        self.url(&format!(
            "artifactory/{}/{}",
            paths::encode_segment(repo),
            paths::encode_path(path)
        ))
    }
}
