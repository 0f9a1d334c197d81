//! One publish run, the same for a CodePipeline job and for `publish PATH`: plan, token
//! session, upload, build info, receipt, close. The two callers differ only in where the files
//! come from (a job's S3 artifacts, a local zip or directory) and how progress is shown (the
//! [`Reporter`] they pass).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tracing::{info, warn};

use crate::pipeline::config::ActionConfig;
use crate::pipeline::job::JobData;
use crate::publish::build_info;
use crate::publish::error::JobError;
use crate::publish::plan::{BuildIdentity, ExtractedArtifact, PublishPlan};
use crate::publish::receipt::{self, Receipt};
use crate::registry::{RegistryClient, RegistryError, Reporter, TokenSession, TokenSource};
use crate::secret::Redactor;

/// Plans the publish on a blocking thread (packing npm directories and reading package
/// metadata is file work).
pub async fn plan(
    config: &ActionConfig,
    data: &JobData,
    extracted: Vec<ExtractedArtifact>,
    pack_dir: PathBuf,
) -> Result<PublishPlan, JobError> {
    let (config, data) = (config.clone(), data.clone());
    tokio::task::spawn_blocking(move || PublishPlan::build(&config, &data, &extracted, &pack_dir))
        .await
        .map_err(|error| JobError::internal("the planning task failed", error))?
        .map_err(|(artifact, source)| JobError::Plan { artifact, source })
}

/// Gives the build another name or number than the plan derived (`publish PATH`'s
/// `--build-name` / `--build-number`), on the build and on every file's properties alike.
pub fn rename_build(plan: &mut PublishPlan, build: BuildIdentity) {
    for item in &mut plan.items {
        item.properties
            .insert("build.name".to_owned(), vec![build.name.clone()]);
        item.properties
            .insert("build.number".to_owned(), vec![build.number.clone()]);
    }
    plan.build = build;
}

/// What a run needs besides the plan.
pub struct PublishRun<'a> {
    pub client: RegistryClient,
    pub config: &'a ActionConfig,
    pub data: &'a JobData,
    pub plan: &'a PublishPlan,
    /// Where the run's registry token comes from (see [`crate::publish::login`]).
    pub token_source: TokenSource,
    /// Lifetime asked for the run's registry token.
    pub token_lifetime: Duration,
    /// The token's description in the registry (who minted it, for what).
    pub token_description: String,
    /// Learns every token minted, so none reaches a message or a log line.
    pub redactor: Redactor,
    pub reporter: Arc<dyn Reporter>,
    pub upload_concurrency: usize,
    /// When the run started (build info's `started`), to the millisecond.
    pub started: OffsetDateTime,
}

/// What a run published.
#[derive(Debug, Clone)]
pub struct Published {
    pub receipt: Receipt,
    /// False when the registry has no build-info API (the files carry the build properties).
    pub build_info: bool,
}

/// The start of a run to the millisecond: build info identifies a run by it.
pub fn started_now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1_000_000 * 1_000_000)
        .unwrap_or(now)
}

impl PublishRun<'_> {
    /// Mints the token, publishes the plan and its build info, and revokes the token however
    /// the publish ended.
    pub async fn execute(self) -> Result<Published, JobError> {
        let mut session = open_session(
            &self.client,
            self.config,
            &self.token_source,
            self.token_lifetime,
            &self.token_description,
            &self.redactor,
        )
        .await?;
        info!(
            files = self.plan.items.len(),
            bytes = self.plan.total_bytes(),
            "publishing"
        );
        let published = self.publish(&mut session).await;
        session.close().await;
        published
    }

    async fn publish(&self, session: &mut TokenSession) -> Result<Published, JobError> {
        let receipt =
            receipt::execute(session, self.plan, &self.reporter, self.upload_concurrency).await?;
        publish_build_info(session, self.plan, receipt, self.data, self.started).await
    }
}

/// Mints a run's first token: the session its uploads share.
pub async fn open_session(
    client: &RegistryClient,
    config: &ActionConfig,
    token_source: &TokenSource,
    lifetime: Duration,
    description: &str,
    redactor: &Redactor,
) -> Result<TokenSession, JobError> {
    let mode = token_source.mode();
    TokenSession::open(
        client.clone(),
        token_source.clone(),
        lifetime,
        description,
        redactor.clone(),
    )
    .await
    .map_err(|source| JobError::Token {
        host: config.host.to_string(),
        mode,
        source: Box::new(source),
    })
}

/// Publishes the build info of `plan` once `receipt` holds every file of it.
pub async fn publish_build_info(
    session: &TokenSession,
    plan: &PublishPlan,
    receipt: Receipt,
    data: &JobData,
    started: OffsetDateTime,
) -> Result<Published, JobError> {
    let document = build_info::document(plan, &receipt, data, started, OffsetDateTime::now_utc());
    let build = &plan.build;
    match session
        .client()
        .publish_build_info(session.token(), &document)
        .await
    {
        Ok(()) => {
            info!(name = %build.name, number = %build.number, "published build info");
            Ok(Published {
                receipt,
                build_info: true,
            })
        }
        // Artifactory always has the build API; a registry that answers 404 is merely
        // Artifactory-compatible for deploys. The files carry build.name/build.number
        // anyway, so the publish stands and the summary says what is missing.
        Err(RegistryError::Status { status: 404, .. }) => {
            warn!("the registry has no build-info API (404); build info was not published");
            Ok(Published {
                receipt,
                build_info: false,
            })
        }
        Err(source) => Err(JobError::BuildInfo {
            name: build.name.clone(),
            number: build.number.clone(),
            source: Box::new(source),
        }),
    }
}
