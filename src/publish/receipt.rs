//! Carrying out a plan, and the receipt that says what landed where.
//!
//! Generic files and `.deb`s are deployed to their path; npm packages and Python distributions
//! go through their registry API, are then found by checksum where the registry stored them,
//! and get the same traceability properties as every other file.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::{Stream, StreamExt, stream};
use tokio::sync::RwLock;
use tracing::{info, warn};

use crate::checksum::Checksums;
use crate::publish::error::JobError;
use crate::publish::formats::{Format, file_name};
use crate::publish::plan::{Package, PublishItem, PublishPlan};
use crate::registry::{
    AccessToken, DeployOutcome, DeployRequest, NpmPublish, PypiUpload, RegistryClient,
    RegistryError, Reporter, TokenSession,
};
use crate::secret::ExposeSecret;

/// One published file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedFile {
    /// The input artifact it came from.
    pub artifact_name: String,
    /// Its path inside the artifact (for a packed npm directory, the directory).
    pub source_path: String,
    /// The repository it is in.
    pub repo: String,
    /// Where it is in the repository.
    pub target_path: String,
    /// Where it can be fetched (npm: the tarball; PyPI: the project's simple-index page).
    pub url: String,
    pub size: u64,
    pub checksums: Checksums,
    pub format: Format,
    /// `(name, version)` of a package.
    pub package: Option<(String, String)>,
    pub outcome: DeployOutcome,
}

/// What a job published.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Receipt {
    pub files: Vec<PublishedFile>,
}

/// Publishes the items of `plan`, up to `concurrency` at a time over the shared connection
/// pool, renewing the session's token once if it expires. After the first failure no new item
/// is started; the error says what was and was not published. The receipt keeps plan order.
pub async fn execute(
    session: &mut TokenSession,
    plan: &PublishPlan,
    progress: &Arc<dyn Reporter>,
    concurrency: usize,
) -> Result<Receipt, JobError> {
    let items = stream::iter(plan.items.iter().cloned());
    let outcomes = publish_items(session, items, progress, concurrency).await;
    assemble(plan, outcomes)
}

/// One item handed to [`publish_items`] and what became of it: `None` when it was not started
/// because another had failed.
pub type Outcome = (PublishItem, Option<Result<PublishedFile, RegistryError>>);

/// Publishes items as `items` yields them — a plan's, or files as extraction places them
/// ([`crate::publish::early`]) — up to `concurrency` at a time, with [`execute`]'s token
/// renewal; after the first failure no new item is taken. Outcomes in completion order; items
/// never taken have none.
pub async fn publish_items(
    session: &mut TokenSession,
    items: impl Stream<Item = PublishItem>,
    progress: &Arc<dyn Reporter>,
    concurrency: usize,
) -> Vec<Outcome> {
    let client = session.client().clone();
    let session = RwLock::new(session);
    let failed = AtomicBool::new(false);
    let (client, session_ref, failed_ref) = (&client, &session, &failed);
    items
        .take_while(|_| std::future::ready(!failed_ref.load(Ordering::SeqCst)))
        .map(|item| async move {
            let outcome = run_item(&item, client, session_ref, failed_ref, progress).await;
            (item, outcome)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await
}

/// Which plan item an outcome belongs to.
type ItemKey = (String, String, String, String);

fn key(item: &PublishItem) -> ItemKey {
    (
        item.artifact_name.clone(),
        item.source.relative_path.clone(),
        item.repo.clone(),
        item.target_path.clone(),
    )
}

/// The receipt of `plan` from the outcomes of its items, in plan order; or the error naming
/// the first failure (in plan order) and what was and was not published. An item without an
/// outcome was not published.
pub fn assemble(plan: &PublishPlan, outcomes: Vec<Outcome>) -> Result<Receipt, JobError> {
    let mut by_key: HashMap<ItemKey, VecDeque<Option<Result<PublishedFile, RegistryError>>>> =
        HashMap::new();
    for (item, outcome) in outcomes {
        by_key.entry(key(&item)).or_default().push_back(outcome);
    }
    let mut receipt = Receipt::default();
    let mut first_error: Option<(usize, RegistryError)> = None;
    let mut not_published = Vec::new();
    for (index, item) in plan.items.iter().enumerate() {
        let outcome = by_key
            .get_mut(&key(item))
            .and_then(VecDeque::pop_front)
            .flatten();
        match outcome {
            Some(Ok(published)) => receipt.files.push(published),
            Some(Err(error)) => {
                not_published.push(item.source.relative_path.clone());
                if first_error.is_none() {
                    first_error = Some((index, error));
                }
            }
            None => not_published.push(item.source.relative_path.clone()),
        }
    }
    match first_error {
        None => Ok(receipt),
        Some((index, source)) => {
            // The failing file first, then the rest in plan order.
            let failing = plan.items[index].source.relative_path.clone();
            not_published.retain(|path| *path != failing);
            not_published.insert(0, failing);
            Err(JobError::Publish {
                path: plan.items[index].target_path.clone(),
                published: receipt.files.iter().map(|file| file.url.clone()).collect(),
                not_published,
                source: Box::new(source),
            })
        }
    }
}

/// One item of [`publish_items`]: skipped once another has failed.
async fn run_item(
    item: &PublishItem,
    client: &RegistryClient,
    session: &RwLock<&mut TokenSession>,
    failed: &AtomicBool,
    progress: &Arc<dyn Reporter>,
) -> Option<Result<PublishedFile, RegistryError>> {
    if failed.load(Ordering::SeqCst) {
        return None;
    }
    let result = publish_with_renewal(client, session, item, progress).await;
    if result.is_err() {
        failed.store(true, Ordering::SeqCst);
    }
    Some(result)
}

/// Publishes one item; a 401 renews the session's token (once per job, whichever task sees it
/// first) and tries the item again with the new token.
async fn publish_with_renewal(
    client: &RegistryClient,
    session: &RwLock<&mut TokenSession>,
    item: &PublishItem,
    progress: &Arc<dyn Reporter>,
) -> Result<PublishedFile, RegistryError> {
    progress.start(&item.target_path, item.source.size);
    let token = session.read().await.token().clone();
    let mut result = publish_item(client, &token, item, progress).await;
    if let Err(RegistryError::Status { status: 401, .. }) = &result {
        let mut guard = session.write().await;
        let renewed = if !same_token(guard.token(), &token) {
            // Another upload already renewed it.
            true
        } else if let Err(error) = &result
            && guard.should_renew(error)
        {
            match guard.renew().await {
                Ok(()) => true,
                Err(renewal) => {
                    result = Err(renewal);
                    false
                }
            }
        } else {
            false
        };
        let current = guard.token().clone();
        drop(guard);
        if renewed {
            result = publish_item(client, &current, item, progress).await;
        }
    }
    let published = result?;
    progress.complete(&item.target_path, item.source.size, published.outcome);
    info!(
        target = %published.url,
        format = published.format.as_str(),
        bytes = published.size,
        outcome = ?published.outcome,
        "published file"
    );
    Ok(published)
}

fn same_token(a: &AccessToken, b: &AccessToken) -> bool {
    a.token.expose_secret() == b.token.expose_secret()
}

async fn publish_item(
    client: &RegistryClient,
    token: &AccessToken,
    item: &PublishItem,
    progress: &Arc<dyn Reporter>,
) -> Result<PublishedFile, RegistryError> {
    let repo = item.repo.as_str();
    let source = &item.source;
    let (outcome, url) = match &item.package {
        Package::Generic | Package::Debian(_) => {
            let request = DeployRequest {
                repo,
                path: &item.target_path,
                file: &source.path,
                size: source.size,
                checksums: &source.checksums,
                properties: &item.properties,
            };
            let outcome = client
                .deploy_with_progress(token, request, Some(progress.clone()))
                .await?;
            (outcome, client.artifact_url(repo, &item.target_path))
        }
        Package::Npm(manifest) => {
            let options = item.npm.as_ref();
            let request = NpmPublish {
                repo,
                name: &manifest.name,
                version: &manifest.version,
                manifest: &manifest.fields,
                tag: options.map_or("latest", |options| options.tag.as_str()),
                access: options.and_then(|options| options.access.as_deref()),
                tarball: &source.path,
                size: source.size,
                sha1: &source.checksums.sha1,
                sha512_base64: options.map_or("", |options| options.sha512_base64.as_str()),
            };
            let outcome = client.npm_publish(token, request).await?;
            let url = client.npm_tarball_url(repo, &manifest.name, &manifest.version);
            (outcome, url)
        }
        Package::Pypi(dist) => {
            let file_name = file_name(&source.relative_path);
            let fields = dist.upload_fields(&source.checksums.md5, &source.checksums.sha256);
            let project = dist.normalized_name();
            let request = PypiUpload {
                repo,
                project: &project,
                version: &dist.version,
                file_name,
                file: &source.path,
                size: source.size,
                sha256: &source.checksums.sha256,
                fields: &fields,
            };
            let outcome = client.pypi_upload(token, request).await?;
            (outcome, client.pypi_project_url(repo, &project))
        }
    };
    let mut target_path = item.target_path.clone();
    if matches!(item.package, Package::Npm(_) | Package::Pypi(_)) {
        target_path = attach_properties(client, token, repo, item, outcome).await?;
    }
    Ok(PublishedFile {
        artifact_name: item.artifact_name.clone(),
        source_path: source.relative_path.clone(),
        repo: item.repo.clone(),
        target_path,
        url,
        size: source.size,
        checksums: source.checksums.clone(),
        format: item.package.format(),
        package: item
            .package
            .name_and_version()
            .map(|(name, version)| (name.to_owned(), version.to_owned())),
        outcome,
    })
}

/// Finds where the registry stored a package file and, when it was just uploaded, sets the
/// traceability properties on it (a file published earlier keeps the properties of the
/// execution that published it, like a generic file). Returns the stored path.
async fn attach_properties(
    client: &RegistryClient,
    token: &AccessToken,
    repo: &str,
    item: &PublishItem,
    outcome: DeployOutcome,
) -> Result<String, RegistryError> {
    let sha256 = &item.source.checksums.sha256;
    match client.find_by_sha256(token, repo, sha256).await? {
        Some(path) => {
            if outcome != DeployOutcome::AlreadyPublished {
                client
                    .set_properties(token, repo, &path, &item.properties)
                    .await?;
            }
            Ok(path)
        }
        None => {
            // The package is published; failing now would only make a re-run report "already
            // published" without the properties. Say so instead.
            warn!(
                sha256,
                expected = %item.target_path,
                "the registry's checksum search does not find the published package; its \
                 traceability properties could not be attached"
            );
            Ok(item.target_path.clone())
        }
    }
}

impl Receipt {
    pub fn already_published(&self) -> usize {
        self.files
            .iter()
            .filter(|file| file.outcome == DeployOutcome::AlreadyPublished)
            .count()
    }

    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|file| file.size).sum()
    }
}

/// `1.5 MiB`-style sizes for summaries.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn sizes_read_like_a_person_writes_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
