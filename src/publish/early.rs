//! Uploads that start while the artifact is still downloading (issue 13, point 2): a file is
//! uploaded as soon as extraction has placed and hashed it, while later entries are still
//! arriving.
//!
//! Only files whose place in the plan depends on nothing else go early: `TypeOfArtifact`
//! `generic`, a single input artifact, and no publish spec among the archive's files (decided
//! from the central directory's names). Everything else takes the usual path: extract all,
//! plan, then upload. Uploads begin only once the central directory passed every check made
//! before an entry is read, the configuration is valid and the registry token is minted.
//!
//! What can still fail once uploads have begun: a later entry's CRC, the byte and ratio caps,
//! its overlap test and local header, the download itself (a changed object, a range past its
//! retry budget), the worker's disk, or planning. The run then takes back every file it
//! uploaded ([`RegistryClient::take_back`]: only while the path holds what this run sent, with
//! its properties), so that such a failure publishes nothing, as without early uploads; files
//! the registry already held are never touched. Taking back needs the Delete permission; a
//! token without it leaves the files published, and the failure says so, lists them and gives
//! the fix (the permission, or `--early-uploads off`). A failed *upload* ends the job as it
//! does on the usual path: what landed stays, and re-running the stage publishes what is
//! missing. No build info is published before every file has landed, either way.
//!
//! The build info and the receipt are assembled at the end from every item of the plan built
//! as usual, exactly as without early uploads; each early item was planned by the same
//! planner, one file at a time.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, stream};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::artifacts::{ExtractedFile, ExtractionEvent, GrowingFile};
use crate::checksum::Checksums;
use crate::error::inline_chain;
use crate::pipeline::config::{ActionConfig, ArtifactType};
use crate::pipeline::job::JobData;
use crate::publish::error::JobError;
use crate::publish::login::{self, LoginSettings};
use crate::publish::plan::{ExtractedArtifact, PublishItem, PublishPlan};
use crate::publish::receipt::{self, Outcome};
use crate::publish::run::{self, Published};
use crate::publish::streamed::StreamedUploads;
use crate::registry::{
    DeployOutcome, Deployed, RegistryClient, RegistryError, Reporter, TokenSession,
};
use crate::secret::Redactor;

/// What extraction tells the early uploads, owned so that it crosses threads.
#[derive(Debug)]
pub(crate) enum Extracted {
    /// The paths of every file the archive holds; its central directory passed its checks.
    Checked(Vec<String>),
    /// A large file has begun; it may be uploaded as it grows ([`crate::publish::streamed`]).
    Begun(GrowingFile),
    Placed(ExtractedFile),
}

/// The sending half given to extraction, and the receiving half for [`EarlyUploads::run`].
/// Unbounded: extraction must never wait for the registry (nor for a path that does not read
/// the messages), and there is at most one small message per archive entry (capped).
pub(crate) fn channel() -> (ExtractionReport, UnboundedReceiver<Extracted>) {
    let (sender, receiver) = unbounded_channel();
    (ExtractionReport(sender), receiver)
}

/// Turns extraction's events into [`Extracted`] messages; a closed receiver is ignored (the
/// uploads have stopped; extraction goes on and reports its own result).
pub(crate) struct ExtractionReport(UnboundedSender<Extracted>);

impl ExtractionReport {
    pub(crate) fn report(&self, event: ExtractionEvent<'_>) {
        let message = match event {
            ExtractionEvent::Checked(names) => Extracted::Checked(names.to_vec()),
            ExtractionEvent::Begun(file) => Extracted::Begun(file.clone()),
            ExtractionEvent::Placed(file) => Extracted::Placed(file.clone()),
        };
        let _ = self.0.send(message);
    }
}

/// Whether a job's files may be uploaded while its artifact is still downloading, as far as
/// the configuration tells (the archive's names decide the rest).
pub(crate) fn eligible(enabled: bool, config: &ActionConfig, data: &JobData) -> bool {
    enabled && config.artifact_type == ArtifactType::Generic && data.input_artifacts.len() == 1
}

/// Uploads begun early, with the session they used (still open: the caller closes it once the
/// build info is published).
pub(crate) struct Started {
    pub(crate) session: TokenSession,
    /// Every file of the archive, from its central directory.
    pub(crate) names: Vec<String>,
    pub(crate) outcomes: Vec<Outcome>,
}

impl Started {
    /// Where the files that landed are, and the paths of those that did not.
    fn published_and_not(&self) -> (Vec<String>, Vec<String>) {
        let mut published = Vec::new();
        let mut landed = HashSet::new();
        for (item, outcome) in &self.outcomes {
            if let Some(Ok(file)) = outcome {
                published.push(file.url.clone());
                landed.insert(item.source.relative_path.as_str());
            }
        }
        // Completion order says nothing to a reader; path order does.
        published.sort();
        let not_published = self
            .names
            .iter()
            .filter(|name| !landed.contains(name.as_str()))
            .cloned()
            .collect();
        (published, not_published)
    }

    /// Takes back the files this run uploaded (a failure before the whole artifact was read
    /// publishes nothing), closes the session and returns `error`. Files the registry already
    /// held are not touched; a file that cannot be taken back (the token may not delete) is
    /// listed as published, with the fix.
    pub(crate) async fn fail(mut self, error: JobError) -> JobError {
        let (kept, refusal) = take_back_all(&mut self.session, &self.outcomes).await;
        // What is left published is what could not be taken back.
        self.outcomes.retain(|(_, outcome)| {
            matches!(outcome, Some(Ok(file)) if kept.contains(&file.url)
                || file.outcome == DeployOutcome::AlreadyPublished)
        });
        let (published, not_published) = self.published_and_not();
        self.session.close().await;
        match refusal {
            None => error,
            Some(refusal) => JobError::PartlyPublished {
                published,
                not_published,
                refusal: refusal.to_string(),
                source: Box::new(error),
            },
        }
    }

    /// With every file extracted: plans the job as usual, matches each early upload to its
    /// item (receipt in plan order), publishes the build info and closes the session.
    pub(crate) async fn finish(
        self,
        config: &ActionConfig,
        data: &JobData,
        extracted: Vec<ExtractedArtifact>,
        pack_dir: PathBuf,
        started: time::OffsetDateTime,
    ) -> Result<(PublishPlan, Published), JobError> {
        let plan = match run::plan(config, data, extracted, pack_dir).await {
            Ok(plan) => plan,
            Err(error) => return Err(self.fail(error).await),
        };
        let Started {
            session, outcomes, ..
        } = self;
        let published = match receipt::assemble(&plan, outcomes) {
            Ok(receipt) => run::publish_build_info(&session, &plan, receipt, data, started).await,
            Err(error) => Err(error),
        };
        session.close().await;
        published.map(|published| (plan, published))
    }
}

/// Takes back every file of `outcomes` this run deployed, renewing a refused token once;
/// returns the URLs of those that stay published, and the first refusal.
async fn take_back_all(
    session: &mut TokenSession,
    outcomes: &[Outcome],
) -> (Vec<String>, Option<RegistryError>) {
    let mut kept = Vec::new();
    let mut refusal = None;
    for (item, outcome) in outcomes {
        let Some(Ok(file)) = outcome else { continue };
        if file.outcome == DeployOutcome::AlreadyPublished {
            continue;
        }
        let deployed = Deployed {
            repo: &file.repo,
            path: &file.target_path,
            sha256: &file.checksums.sha256,
            properties: &item.properties,
        };
        let mut taken = session.client().take_back(session.token(), deployed).await;
        if let Err(error) = &taken
            && session.should_renew(error)
            && session.renew().await.is_ok()
        {
            taken = session.client().take_back(session.token(), deployed).await;
        }
        match taken {
            Ok(removal) => info!(url = %file.url, ?removal, "took back an early upload"),
            Err(error) => {
                warn!(url = %file.url, error = %inline_chain(&error), "could not take back an early upload");
                kept.push(file.url.clone());
                refusal.get_or_insert(error);
            }
        }
    }
    (kept, refusal)
}

/// What the early uploads need besides the files.
pub(crate) struct EarlyUploads<'a> {
    pub(crate) config: &'a ActionConfig,
    pub(crate) data: &'a JobData,
    pub(crate) client: RegistryClient,
    pub(crate) login: &'a LoginSettings,
    pub(crate) redactor: Redactor,
    pub(crate) token_lifetime: Duration,
    pub(crate) token_description: String,
    pub(crate) reporter: Arc<dyn Reporter>,
    pub(crate) upload_concurrency: usize,
    /// Where the artifact is extracted.
    pub(crate) root: PathBuf,
    /// Where planning may write (it writes nothing for generic files).
    pub(crate) pack_dir: PathBuf,
}

impl EarlyUploads<'_> {
    /// Waits for the central directory's checks; when the archive holds no publish spec,
    /// mints the token and uploads each file as extraction places it, until extraction ends
    /// (or an upload fails). `None` when the job takes the usual path: the archive holds a
    /// publish spec, or extraction ended before its directory was checked.
    pub(crate) async fn run(
        self,
        mut events: UnboundedReceiver<Extracted>,
    ) -> Result<Option<Started>, JobError> {
        let names = loop {
            match events.recv().await {
                Some(Extracted::Checked(names)) => break names,
                Some(Extracted::Begun(_) | Extracted::Placed(_)) => continue,
                None => return Ok(None),
            }
        };
        if names.contains(&self.config.publish_spec) {
            return Ok(None);
        }
        let token_source = login::token_source(self.config, self.login, &self.redactor).await?;
        let mut session = run::open_session(
            &self.client,
            self.config,
            &token_source,
            self.token_lifetime,
            &self.token_description,
            &self.redactor,
        )
        .await?;
        info!(
            files = names.len(),
            "publishing files as they are extracted"
        );
        let planning = Planning {
            config: self.config.clone(),
            data: self.data.clone(),
            root: self.root.clone(),
            pack_dir: self.pack_dir.clone(),
        };
        // Files reach the usual uploads through this channel: from extraction as it places
        // them, and from a streamed upload that did not work out.
        let (items, queued) = unbounded_channel();
        let streamed = StreamedUploads {
            client: session.client().clone(),
            token: session.token().clone(),
            reporter: self.reporter.clone(),
            fallback: items.clone(),
        };
        let routing = route(events, &planning, streamed, items);
        let queued = stream::unfold(queued, |mut queued| async move {
            queued.recv().await.map(|item| (item, queued))
        })
        // Boxed: the compiler cannot otherwise show the job's future `Send` through the
        // stream's combinators (rust-lang/rust#102211).
        .boxed();
        let (streamed_outcomes, mut outcomes) = tokio::join!(
            routing,
            receipt::publish_items(
                &mut session,
                queued,
                &self.reporter,
                self.upload_concurrency
            )
        );
        outcomes.extend(streamed_outcomes);
        Ok(Some(Started {
            session,
            names,
            outcomes,
        }))
    }
}

/// Hands each file extraction reports to its upload: a large file that may stream is uploaded
/// as it grows, every other one is queued for the usual uploads once placed (a generic file's
/// item depends on nothing but the file; should planning one ever fail, it is not uploaded and
/// the plan made at the end reports the error). Returns the streamed uploads' outcomes, once
/// extraction has ended and they have all finished.
async fn route(
    mut events: UnboundedReceiver<Extracted>,
    planning: &Planning,
    streamed: StreamedUploads,
    items: UnboundedSender<PublishItem>,
) -> Vec<Outcome> {
    // Aborted with the job should it be dropped.
    let mut uploads = JoinSet::new();
    let mut growing = HashMap::new();
    while let Some(event) = events.recv().await {
        match event {
            Extracted::Checked(_) => {}
            Extracted::Begun(file) => {
                let declared = ExtractedFile {
                    relative_path: file.relative_path.clone(),
                    path: planning.root.join(&file.relative_path),
                    size: file.declared_size,
                    checksums: Checksums::default(),
                };
                let Some(item) = planning.item(declared).await else {
                    continue;
                };
                let path = file.relative_path.clone();
                if let Some(placed) = streamed.begin(&mut uploads, item, file).await {
                    growing.insert(path, placed);
                }
            }
            Extracted::Placed(file) => match growing.remove(&file.relative_path) {
                Some(placed) => {
                    let _ = placed.send(file);
                }
                None => {
                    if let Some(item) = planning.item(file).await {
                        // Closed once an upload failed: no further file is started.
                        let _ = items.send(item);
                    }
                }
            },
        }
    }
    // A file still growing when extraction ended failed it: its upload must break off.
    drop(growing);
    drop((items, streamed));
    let mut outcomes = Vec::new();
    while let Some(joined) = uploads.join_next().await {
        match joined {
            Ok(Some(outcome)) => outcomes.push(outcome),
            Ok(None) => {}
            Err(error) => warn!(error = %error, "a streamed upload's task failed"),
        }
    }
    outcomes
}

/// What planning one file needs.
struct Planning {
    config: ActionConfig,
    data: JobData,
    /// Where the artifact is extracted.
    root: PathBuf,
    pack_dir: PathBuf,
}

impl Planning {
    /// The plan item of one file, by the planner of a whole job.
    async fn item(&self, file: ExtractedFile) -> Option<PublishItem> {
        let one = ExtractedArtifact {
            artifact: self.data.input_artifacts.first()?.clone(),
            root: self.root.clone(),
            files: vec![file],
        };
        let plan = run::plan(&self.config, &self.data, vec![one], self.pack_dir.clone())
            .await
            .ok()?;
        plan.items.into_iter().next()
    }
}
