//! An Artifactory-compatible mock registry (axum), used by `pipeline-publisher mock-registry`,
//! the `demo` command and the tests.
//!
//! It speaks the subset of Artifactory's REST API the publisher uses, with Artifactory's JSON
//! shapes, status codes and error bodies, and keeps everything on disk (never in memory), so
//! 1 GiB uploads work and a data directory survives restarts.
//!
//! One module per API area, over a shared `store`:
//! - `tokens`: Access API tokens and the deprecated security-token endpoint;
//! - `deploy`: `PUT` deploys (streamed, hashed, checksum deploy, properties);
//! - `storage`: downloads, storage info, properties, checksum search;
//! - `front_door`: authentication, 503 simulation, request recording and logging;
//! - `npm_publish`, `npm_read` (over `npm_names`, `npm_index`): the npm registry API;
//! - `pypi_upload`, `pypi_index`: the legacy upload API and the PEP 503 simple index;
//! - `build_info`: publishing and reading build info;
//! - `aws_token`, `oidc` (over `federation`): passwordless sign-in with an AWS IAM role or an
//!   OIDC token, each exchanged for an access token.
//! - `multipart`: multipart uploads (create, pre-signed part URLs, complete, status, abort),
//!   finished by a checksum deploy with `X-Checksum-Deploy-Token`.
//!
//! Debian packages need nothing of their own: a generic deploy with `deb.*` matrix parameters
//! stores them with their properties. Package files (npm tarballs, wheels) are ordinary
//! artifacts in the store (`staging`), so storage info, checksum search and downloads see them;
//! the npm index and build info are small JSON documents beside it (`persisted`).

mod aql;
mod auth;
mod aws_token;
mod body;
mod build_info;
mod catalog;
mod clock;
mod delete;
mod deploy;
mod error;
mod federation;
mod front_door;
mod metadata;
mod model;
mod multipart;
mod npm_index;
mod npm_names;
mod npm_publish;
mod npm_read;
mod oidc;
mod paths;
mod persisted;
mod pypi_index;
mod pypi_upload;
mod repositories;
mod set_properties;
mod staging;
mod storage;
mod store;
mod tokens;
mod ui;

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests_access;
#[cfg(test)]
mod tests_artifacts;
#[cfg(test)]
mod tests_aws_token;
#[cfg(test)]
mod tests_build_info;
#[cfg(test)]
mod tests_npm;
#[cfg(test)]
mod tests_pypi;
#[cfg(test)]
mod tests_rest;
#[cfg(test)]
mod tests_tokens;
#[cfg(test)]
mod tests_ui;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, patch, post, put};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use aws_token::STS_REPLAY_QUERY;
pub use federation::{IdentityMapping, OidcProvider, TokenSpec};
pub use model::{RecordedRequest, RequestAuth, StoredArtifact, TokenRecord};
pub use multipart::MultipartMode;

use auth::TokenRegistry;
use build_info::{BUILDS_FILE, BuildStore};
use clock::Clock;
use error::ApiError;
use multipart::MultipartState;
use npm_index::{NPM_INDEX_FILE, NpmIndex};
use persisted::JsonFile;
use store::{Store, lock};

/// How the mock registry behaves.
#[derive(Clone)]
pub struct MockRegistryConfig {
    /// `(name, password)` pairs accepted for basic auth and token minting.
    pub users: Vec<(String, String)>,
    /// Repositories that accept deploys; empty = any key is accepted and created on first deploy.
    pub repositories: Vec<String>,
    /// Where blobs and metadata persist; `None` = a private temporary directory (still on disk).
    pub data_dir: Option<PathBuf>,
    /// Upper bound on a token's `expires_in` (also used when none or 0 is requested).
    pub max_token_lifetime: Duration,
    /// Whether downloads, storage info and searches work without credentials.
    pub anonymous_read: bool,
    /// Whether the Access API (`/access/api/v1/tokens`) exists; `false` answers 404 like an
    /// Artifactory older than 7.21, so clients fall back to the legacy token endpoint.
    pub access_api: bool,
    /// Users allowed to call the admin endpoints (IAM role mappings, OIDC configuration).
    pub admins: Vec<String>,
    /// Users with Delete permission: they may delete items (none by default). Overwriting a
    /// file with other content is refused to everyone, deleters too: the mock models release
    /// repositories, where a client that overwrites is the bug to catch.
    pub deleters: Vec<String>,
    /// Where `POST /access/api/v1/aws/token` replays the signed `GetCallerIdentity` request
    /// (`http://127.0.0.1:PORT` of a sandbox); `None` = `https://sts.{region}.amazonaws.com`
    /// (`?region=`) or `https://sts.amazonaws.com`, as JFrog does.
    pub sts_endpoint: Option<String>,
    /// Whether `/access/api/v1/aws/*` exists; `false` answers 404 like an Artifactory older
    /// than 7.90.10.
    pub aws_token_supported: bool,
    /// What `GET /artifactory/api/v1/uploads/config` says and whether multipart uploads work.
    pub multipart: MultipartMode,
    /// How long a multipart part URL stays valid.
    pub multipart_url_lifetime: Duration,
    /// Rate caps on the registry's network link (per connection, in total); unlimited by default.
    pub link: crate::netem::Link,
}

impl Default for MockRegistryConfig {
    fn default() -> Self {
        Self {
            users: vec![("demo".to_string(), "demo-password".to_string())],
            repositories: Vec::new(),
            data_dir: None,
            max_token_lifetime: Duration::from_secs(3600),
            anonymous_read: true,
            access_api: true,
            admins: vec!["demo".to_string()],
            deleters: Vec::new(),
            sts_endpoint: None,
            aws_token_supported: true,
            multipart: MultipartMode::default(),
            multipart_url_lifetime: Duration::from_secs(15 * 60),
            link: crate::netem::Link::default(),
        }
    }
}

impl std::fmt::Debug for MockRegistryConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let users: Vec<(&str, &str)> = self
            .users
            .iter()
            .map(|(name, _)| (name.as_str(), "****"))
            .collect();
        formatter
            .debug_struct("MockRegistryConfig")
            .field("users", &users)
            .field("repositories", &self.repositories)
            .field("data_dir", &self.data_dir)
            .field("max_token_lifetime", &self.max_token_lifetime)
            .field("anonymous_read", &self.anonymous_read)
            .field("access_api", &self.access_api)
            .field("admins", &self.admins)
            .field("sts_endpoint", &self.sts_endpoint)
            .field("aws_token_supported", &self.aws_token_supported)
            .field("multipart", &self.multipart)
            .field("link", &self.link)
            .finish()
    }
}

/// State shared by every handler.
struct Shared {
    /// Accepted `(name, password)` pairs.
    users: Vec<(String, String)>,
    max_token_lifetime: Duration,
    anonymous_read: bool,
    access_api: bool,
    /// Users who may delete items.
    deleters: Vec<String>,
    store: Store,
    /// npm packages: versions, manifests and dist-tags (`npm.json`).
    npm: JsonFile<NpmIndex>,
    /// Published build info (`builds.json`).
    builds: JsonFile<BuildStore>,
    tokens: TokenRegistry,
    clock: Clock,
    /// While set, every request answers 503.
    unavailable: AtomicBool,
    /// Every answered request, in order.
    requests: Mutex<Vec<RecordedRequest>>,
    /// IAM role and OIDC sign-in (`aws_token`, `oidc`).
    federation: federation::Federation,
    /// Multipart uploads in progress and the faults switched on for them.
    multipart: MultipartState,
    /// Rate caps on every connection accepted.
    link: crate::netem::Link,
}

/// A handle on one mock registry; clones share the same state.
#[derive(Clone)]
pub struct MockRegistry {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MockRegistry {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("MockRegistry")
            .field("data_dir", &self.shared.store.root())
            .field("users", &self.shared.users.len())
            .finish_non_exhaustive()
    }
}

async fn ping() -> &'static str {
    "OK"
}

async fn not_found() -> ApiError {
    ApiError::not_found("Not Found")
}

impl MockRegistry {
    /// Creates a registry, loading existing artifacts from `config.data_dir` if present.
    pub fn new(config: MockRegistryConfig) -> anyhow::Result<Self> {
        let store = Store::open(config.data_dir.as_deref(), config.repositories)?;
        let npm = JsonFile::open(store.root(), NPM_INDEX_FILE)?;
        let builds = JsonFile::open(store.root(), BUILDS_FILE)?;
        Ok(Self {
            shared: Arc::new(Shared {
                users: config.users,
                max_token_lifetime: config.max_token_lifetime,
                anonymous_read: config.anonymous_read,
                access_api: config.access_api,
                deleters: config.deleters,
                store,
                npm,
                builds,
                tokens: TokenRegistry::default(),
                clock: Clock::default(),
                unavailable: AtomicBool::new(false),
                requests: Mutex::new(Vec::new()),
                federation: federation::Federation::new(
                    config.admins,
                    config.sts_endpoint,
                    config.aws_token_supported,
                ),
                multipart: MultipartState::new(config.multipart, config.multipart_url_lifetime),
                link: config.link,
            }),
        })
    }

    /// The HTTP application (routes, auth, recording), ready to serve or to merge.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/artifactory/api/system/ping", get(ping))
            .route("/access/api/v1/tokens", post(tokens::create_access_token))
            .route(
                "/access/api/v1/tokens/{token_id}",
                delete(tokens::revoke_access_token),
            )
            .route("/access/api/v1/aws/iam_role", put(aws_token::put_iam_role))
            .route(
                "/access/api/v1/aws/iam_role/{username}",
                get(aws_token::get_iam_role).delete(aws_token::delete_iam_role),
            )
            .route(aws_token::AWS_TOKEN_PATH, post(aws_token::exchange))
            .route("/access/api/v1/oidc", post(oidc::create_provider))
            .route("/access/api/v1/oidc/token", post(oidc::exchange))
            .route("/access/api/v1/oidc/{provider}", get(oidc::get_provider))
            .route(
                "/access/api/v1/oidc/{provider}/identity_mappings",
                post(oidc::create_mapping),
            )
            .route(
                "/artifactory/api/security/token",
                post(tokens::create_legacy_token),
            )
            .route(
                "/artifactory/api/security/token/revoke",
                post(tokens::revoke_legacy_token),
            )
            .route(
                "/artifactory/api/storage/{*item}",
                get(storage::storage_info).put(set_properties::set_item_properties),
            )
            .route("/artifactory/api/repositories", get(repositories::list))
            .route(
                "/artifactory/api/metadata/{*item}",
                patch(metadata::update_item_properties),
            )
            .route("/artifactory/api/v1/uploads/config", get(multipart::config))
            .route(
                "/artifactory/api/v1/uploads/create",
                post(multipart::create),
            )
            .route(
                "/artifactory/api/v1/uploads/urlPart",
                post(multipart::url_part),
            )
            .route(
                "/artifactory/api/v1/uploads/complete",
                post(multipart::complete),
            )
            .route(
                "/artifactory/api/v1/uploads/status",
                post(multipart::status),
            )
            .route("/artifactory/api/v1/uploads/abort", post(multipart::abort))
            .route(
                "/artifactory/api/v1/uploads/part/{upload}/{part}",
                put(multipart::put_part).layer(DefaultBodyLimit::disable()),
            )
            .route("/artifactory/api/search/aql", post(aql::search))
            .route(
                "/artifactory/api/search/checksum",
                get(storage::checksum_search),
            )
            .route(
                "/artifactory/api/npm/{repo}/{*rest}",
                get(npm_read::read)
                    .put(npm_publish::publish)
                    .layer(DefaultBodyLimit::disable()),
            )
            .route(
                "/artifactory/api/pypi/{repo}",
                post(pypi_upload::upload).layer(DefaultBodyLimit::disable()),
            )
            .route(
                "/artifactory/api/pypi/{repo}/",
                post(pypi_upload::upload).layer(DefaultBodyLimit::disable()),
            )
            .route(
                "/artifactory/api/pypi/{repo}/{*rest}",
                get(pypi_index::read),
            )
            .route(
                "/artifactory/api/build",
                put(build_info::publish)
                    .get(build_info::list)
                    .layer(DefaultBodyLimit::disable()),
            )
            .route("/artifactory/api/build/{name}", get(build_info::runs))
            .route(
                "/artifactory/api/build/{name}/{number}",
                get(build_info::build),
            )
            .route(
                "/artifactory/{*item}",
                get(storage::download)
                    .put(deploy::deploy)
                    .delete(delete::delete_item)
                    .layer(DefaultBodyLimit::disable()),
            )
            .merge(ui::routes())
            .fallback(not_found)
            .layer(axum::middleware::from_fn_with_state(
                self.shared.clone(),
                front_door::front_door,
            ))
            .with_state(self.shared.clone())
    }

    /// Serves on `listener` until `shutdown` completes, then finishes in-flight requests.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        if let Ok(address) = listener.local_addr() {
            tracing::info!(%address, "mock registry listening");
        }
        let link = self.shared.link.clone();
        if link.is_unlimited() {
            return axum::serve(listener, self.router())
                .with_graceful_shutdown(shutdown)
                .await;
        }
        let listener = crate::netem::CappedListener::new(listener, link);
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }

    /// Binds `127.0.0.1:0` and serves in the background.
    pub async fn start(config: MockRegistryConfig) -> anyhow::Result<RunningMockRegistry> {
        let registry = Self::new(config)?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(registry.clone().serve(listener, async move {
            // Either a send or the sender being dropped means "stop".
            let _ = stopped.await;
        }));
        Ok(RunningMockRegistry {
            base_url,
            registry,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// Every token minted so far (without secret values).
    pub fn tokens(&self) -> Vec<TokenRecord> {
        self.shared.tokens.records()
    }

    /// The raw values of every token issued, for tests that prove no token leaks anywhere.
    pub fn issued_token_values(&self) -> Vec<String> {
        self.shared.tokens.token_values()
    }

    /// The artifact at `path` (no leading '/') in `repo`.
    pub fn artifact(&self, repo: &str, path: &str) -> Option<StoredArtifact> {
        self.shared.store.stored_artifact(repo, path)
    }

    /// All artifacts in `repo`, sorted by path.
    pub fn artifacts(&self, repo: &str) -> Vec<StoredArtifact> {
        self.shared.store.stored_artifacts(repo)
    }

    /// The packument of an npm package (as `GET {registry}{name}` answers it, with host-relative
    /// `dist.tarball` URLs), or `None` if nothing was published under that name.
    pub fn npm_package(&self, repo: &str, name: &str) -> Option<serde_json::Value> {
        self.shared.npm.read(|index| {
            index
                .package(repo, name)
                .map(|package| npm_index::packument("", repo, name, package))
        })
    }

    /// Every file uploaded through the PyPI API for `project` (any spelling), sorted by path.
    pub fn pypi_files(&self, repo: &str, project: &str) -> Vec<StoredArtifact> {
        pypi_index::project_files(&self.shared.store, repo, project)
    }

    /// The build-info document published for `name` and `number`, as it was sent.
    pub fn build_info(&self, name: &str, number: &str) -> Option<serde_json::Value> {
        self.shared.builds.read(|store| {
            store
                .builds
                .get(name)
                .and_then(|runs| runs.get(number))
                .map(|run| run.build_info.clone())
        })
    }

    /// While `down`, every request answers 503 with an Artifactory error body.
    pub fn set_unavailable(&self, down: bool) {
        self.shared.unavailable.store(down, Ordering::Relaxed);
    }

    /// Switches what the multipart API says and does.
    pub fn set_multipart(&self, mode: MultipartMode) {
        self.shared.multipart.set_mode(mode);
    }

    /// Every PUT of multipart part `part` (1-based) is rejected with 400; `None` clears it.
    pub fn reject_multipart_part(&self, part: Option<u32>) {
        self.shared.multipart.reject_part(part);
    }

    /// While set, assembling a multipart upload ends in `NON_RETRYABLE_ERROR`.
    pub fn fail_multipart_assembly(&self, fail: bool) {
        self.shared.multipart.fail_assembly(fail);
    }

    /// The next `count` multipart part URLs handed out are already expired.
    pub fn expire_next_part_urls(&self, count: u32) {
        self.shared.multipart.expire_next_part_urls(count);
    }

    /// Multipart uploads created and neither deployed nor aborted.
    pub fn open_multipart_uploads(&self) -> usize {
        self.shared.multipart.open_uploads()
    }

    /// Ids of the multipart uploads aborted so far.
    pub fn aborted_multipart_uploads(&self) -> Vec<String> {
        self.shared.multipart.aborted()
    }

    /// Moves the registry's clock forward, so token expiry can be tested without sleeping.
    pub fn advance_clock(&self, by: Duration) {
        self.shared.clock.advance(by);
    }
}

/// A mock registry serving in the background; stops when shut down or dropped.
#[derive(Debug)]
pub struct RunningMockRegistry {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub base_url: String,
    /// Handle for inspection and fault injection.
    pub registry: MockRegistry,
    /// Dropping or sending stops the server.
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl RunningMockRegistry {
    /// Stops accepting connections and waits for in-flight requests to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::warn!(%error, "mock registry stopped with an error"),
                Err(error) => tracing::warn!(%error, "mock registry task failed"),
            }
        }
    }
}

impl Drop for RunningMockRegistry {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
