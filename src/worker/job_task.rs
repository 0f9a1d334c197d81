//! One claimed job, from `AcknowledgeJob` to its one result.
//!
//! The handler runs in its own task so that a panic inside it is caught (as a `JoinError`) and
//! reported like any other failure, and so that shutdown can abandon it and still report.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, error, info, warn};

use crate::error::inline_chain;
use crate::metrics::Metrics;
use crate::pipeline::{
    Acknowledgement, Classify, FailureType, Job, JobApi, JobApiError, JobData, JobFailure,
};
use crate::secret::Redactor;
use crate::worker::JobHandler;
use crate::worker::journal::{Journal, JournalEntry};
use crate::worker::results::{report_failure, report_success};

/// How a claimed job ended, for the loop's bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobEnd {
    Succeeded,
    Failed(FailureType),
    /// Another worker acknowledged the job first; we reported nothing, as we must.
    NotOurs,
    /// `AcknowledgeJob` itself failed; CodePipeline will hand the job out again.
    NotAcknowledged,
    /// The work finished but the job API stayed unreachable, so no result was delivered.
    ResultNotDelivered,
    /// CodePipeline says the job has already ended (e.g. it timed out); nothing to report.
    AlreadyEnded,
}

impl JobEnd {
    /// Whether this job counts towards `--max-jobs`: it was ours and we reported on it.
    pub fn finished(self) -> bool {
        matches!(self, JobEnd::Succeeded | JobEnd::Failed(_))
    }
}

/// Fetches the job's current data — above all fresh `artifactCredentials`, which last about
/// 15 minutes — through `GetJobDetails`.
pub trait JobDetailsSource: Send + Sync {
    fn job_details(&self) -> BoxFuture<'_, Result<JobData, JobApiError>>;
}

/// A boxed, sendable future, so the job API's details call can sit behind a trait object.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

struct ApiJobDetails<A> {
    api: Arc<A>,
    job_id: String,
}

impl<A: JobApi> JobDetailsSource for ApiJobDetails<A> {
    fn job_details(&self) -> BoxFuture<'_, Result<JobData, JobApiError>> {
        Box::pin(self.api.get_job_details(&self.job_id))
    }
}

/// A job the worker owns and must end with one result.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub id: String,
    pub data: JobData,
    pub claim: Claim,
}

/// How the worker came to own a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Polled and acknowledged by this process.
    Polled { nonce: String, account_id: String },
    /// Acknowledged by an earlier process that stopped before answering; found in the journal
    /// and fetched again with `GetJobDetails`.
    Recovered,
}

impl From<Job> for ClaimedJob {
    fn from(job: Job) -> Self {
        Self {
            id: job.id,
            data: job.data,
            claim: Claim::Polled {
                nonce: job.nonce,
                account_id: job.account_id,
            },
        }
    }
}

/// What a job moved, as its handler counts it, for the job's closing log line.
#[derive(Debug, Default)]
pub struct JobTally {
    files: AtomicU64,
    bytes: AtomicU64,
}

impl JobTally {
    /// Sets the totals (the handler keeps its own running count and reports it at the end).
    pub fn record(&self, files: u64, bytes: u64) {
        self.files.store(files, Ordering::Relaxed);
        self.bytes.store(bytes, Ordering::Relaxed);
    }

    pub fn files(&self) -> u64 {
        self.files.load(Ordering::Relaxed)
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// What a job handler gets besides the job itself.
#[derive(Clone)]
pub struct JobContext {
    /// Knows the job's secrets; the handler adds any it creates (e.g. a registry token).
    pub redactor: Redactor,
    /// Where fresh job data (renewed artifact credentials) comes from during long jobs.
    pub details: Arc<dyn JobDetailsSource>,
    /// Filled in by the handler; read for the job's closing log line.
    pub tally: Arc<JobTally>,
}

impl std::fmt::Debug for JobContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobContext")
            .field("redactor", &self.redactor)
            .finish_non_exhaustive()
    }
}

/// What the loop hands each job task for observability and crash recovery.
#[derive(Debug, Clone)]
pub(crate) struct JobHooks {
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) journal: Option<Arc<Journal>>,
    /// The name of the source the job came from: the `source` field of its log span, and
    /// where the journal says to send its result after a crash.
    pub(crate) source: Arc<str>,
    /// Where the job says its work is done and only its result call remains.
    pub(crate) slots: SlotReleases,
    /// The worker's `--concurrency` permits to work, one held while a handler runs. A job
    /// claimed beyond them (see [`crate::worker::tasks`]) waits here after its
    /// acknowledgement, in the order the jobs were claimed.
    pub(crate) work_permits: Arc<Semaphore>,
}

/// A job task's way to give its slot back before it ends: once the work is done, delivering
/// the result only waits on the job API (throttled calls back off for up to a second), and a
/// slot held through that wait is a job not started. The loop bounds how many results may be
/// waiting this way ([`crate::worker::tasks`]).
#[derive(Debug, Clone)]
pub(crate) struct SlotReleases(mpsc::UnboundedSender<tokio::task::Id>);

impl SlotReleases {
    pub(crate) fn channel() -> (Self, mpsc::UnboundedReceiver<tokio::task::Id>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        (Self(sender), receiver)
    }

    /// Called from the job's own task (the loop knows it by its task id).
    fn work_done(&self) {
        if let Some(id) = tokio::task::try_id() {
            // The loop stops listening only when it has stopped counting slots.
            let _ = self.0.send(id);
        }
    }
}

/// Why a job failed: its handler's error, or an end the loop itself imposed.
#[derive(Debug, thiserror::Error)]
enum TaskFailure<E> {
    #[error(transparent)]
    Handler(E),
    #[error("the job handler panicked: {0}")]
    Panicked(String),
    #[error("the worker stopped before the job finished ({0}); run the pipeline stage again")]
    Interrupted(&'static str),
}

impl<E: Classify> Classify for TaskFailure<E> {
    fn failure_type(&self) -> FailureType {
        match self {
            TaskFailure::Handler(error) => error.failure_type(),
            TaskFailure::Panicked(_) | TaskFailure::Interrupted(_) => FailureType::JobFailed,
        }
    }
}

fn job_span(
    job_id: &str,
    pipeline: &crate::pipeline::job::PipelineContext,
    source: &str,
) -> tracing::Span {
    tracing::info_span!(
        "job",
        source = %source,
        job_id = %job_id,
        pipeline = %pipeline.pipeline_name,
        stage = %pipeline.stage_name,
        action = %pipeline.action_name,
        execution_id = %pipeline.execution_id,
    )
}

/// Acknowledges a polled job, records it in the journal, runs it and reports its result.
pub(crate) async fn run_job<A: JobApi, H: JobHandler>(
    api: Arc<A>,
    handler: Arc<H>,
    job: Job,
    cancel: CancellationToken,
    hooks: JobHooks,
) -> JobEnd {
    let span = job_span(&job.id, &job.data.pipeline, &hooks.source);
    async move {
        match api.acknowledge_job(&job.id, &job.nonce).await {
            Ok(Acknowledgement::InProgress) => {}
            Ok(Acknowledgement::NotOurs { status }) => {
                info!(%status, "job is not ours to run (another worker owns it); dropping it");
                hooks.metrics.lost_claim();
                return JobEnd::NotOurs;
            }
            Err(JobApiError::InvalidNonce { .. }) => {
                info!("job was claimed by another worker (InvalidNonceException); dropping it");
                hooks.metrics.lost_claim();
                return JobEnd::NotOurs;
            }
            Err(error) => {
                warn!(%error, "could not acknowledge the job; CodePipeline will hand it out again");
                hooks.metrics.result_undelivered();
                return JobEnd::NotAcknowledged;
            }
        }
        info!("job acknowledged");
        if let Some(journal) = &hooks.journal {
            let entry = JournalEntry {
                job_id: job.id.clone(),
                pipeline: job.data.pipeline.pipeline_name.clone(),
                execution_id: job.data.pipeline.execution_id.clone(),
                acknowledged_at: now_rfc3339(),
                source: Some(hooks.source.to_string()),
            };
            if let Err(error) = journal.record(&entry) {
                warn!(error = %inline_chain(&error), "could not journal the job; a crash now would leave it to CodePipeline's timeout");
            }
        }
        let job_id = job.id.clone();
        let end = execute_and_report(api, handler, job.into(), cancel, &hooks).await;
        forget_if_answered(hooks.journal.as_deref(), &job_id, end);
        end
    }
    .instrument(span)
    .await
}

/// Ends a job that an earlier worker process acknowledged but never answered: fetches it with
/// `GetJobDetails`, runs it again (publishing is idempotent) and reports the result.
pub(crate) async fn recover_job<A: JobApi, H: JobHandler>(
    api: Arc<A>,
    handler: Arc<H>,
    entry: JournalEntry,
    cancel: CancellationToken,
    hooks: JobHooks,
    journal: Arc<Journal>,
) -> JobEnd {
    let span = tracing::info_span!(
        "job",
        source = %hooks.source,
        job_id = %entry.job_id,
        pipeline = %entry.pipeline,
        execution_id = %entry.execution_id,
        recovered = true,
    );
    async move {
        let data = match api.get_job_details(&entry.job_id).await {
            Ok(data) => data,
            Err(JobApiError::JobNotFound { .. }) => {
                info!("a journaled job no longer exists; forgetting it");
                forget_if_answered(Some(&journal), &entry.job_id, JobEnd::AlreadyEnded);
                return JobEnd::AlreadyEnded;
            }
            Err(error) => {
                warn!(%error, "could not fetch a journaled job; will try again at the next start");
                return JobEnd::ResultNotDelivered;
            }
        };
        info!("resuming a job acknowledged before the worker last stopped");
        let job = ClaimedJob {
            id: entry.job_id.clone(),
            data,
            claim: Claim::Recovered,
        };
        let end = execute_and_report(api, handler, job, cancel, &hooks).await;
        forget_if_answered(Some(&journal), &entry.job_id, end);
        end
    }
    .instrument(span)
    .await
}

fn forget_if_answered(journal: Option<&Journal>, job_id: &str, end: JobEnd) {
    let answered = matches!(
        end,
        JobEnd::Succeeded | JobEnd::Failed(_) | JobEnd::AlreadyEnded
    );
    if let (Some(journal), true) = (journal, answered)
        && let Err(error) = journal.remove(job_id)
    {
        warn!(error = %inline_chain(&error), "could not remove the job from the journal");
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Runs the handler in its own task (so a panic is caught) and reports exactly one result.
async fn execute_and_report<A: JobApi, H: JobHandler>(
    api: Arc<A>,
    handler: Arc<H>,
    job: ClaimedJob,
    cancel: CancellationToken,
    hooks: &JobHooks,
) -> JobEnd {
    hooks.metrics.job_claimed();
    let started = Instant::now();
    let redactor = job.data.redactor();
    let tally = Arc::new(JobTally::default());
    let context = JobContext {
        redactor: redactor.clone(),
        details: Arc::new(ApiJobDetails {
            api: api.clone(),
            job_id: job.id.clone(),
        }),
        tally: tally.clone(),
    };
    let job_id = job.id.clone();
    let permits = hooks.work_permits.clone();
    let metrics = hooks.metrics.clone();
    let mut work = tokio::spawn(
        async move {
            // The semaphore is never closed, so this only waits for a running job to end.
            let _permit = permits.acquire_owned().await;
            // `jobs_in_flight` counts jobs at work, which scaling policies compare with the
            // concurrency.
            let _in_flight = metrics.in_flight();
            handler.handle(job, context).await
        }
        .in_current_span(),
    );
    let outcome = tokio::select! {
        joined = &mut work => match joined {
            Ok(result) => result.map_err(TaskFailure::Handler),
            Err(join_error) if join_error.is_panic() => {
                Err(TaskFailure::Panicked(panic_message(join_error.into_panic())))
            }
            Err(_) => Err(TaskFailure::Interrupted("the job task was cancelled")),
        },
        () = cancel.cancelled() => {
            work.abort();
            Err(TaskFailure::Interrupted(
                "it did not finish within the drain timeout during shutdown",
            ))
        }
    };
    let elapsed = started.elapsed();
    hooks.slots.work_done();
    let end = match outcome {
        Ok(success) => {
            report_success(api.as_ref(), &job_id, success, &redactor, elapsed, &tally).await
        }
        Err(job_error) => {
            let failure = JobFailure::from_error(&job_error, &redactor);
            error!(
                result = "Failed",
                failure_type = %failure.failure_type,
                duration_ms = elapsed.as_millis() as u64,
                files = tally.files(),
                bytes = tally.bytes(),
                message = %failure.message,
                "job failed"
            );
            report_failure(api.as_ref(), &job_id, failure).await
        }
    };
    let duration = started.elapsed();
    match end {
        JobEnd::Succeeded => hooks.metrics.job_succeeded(duration),
        JobEnd::Failed(failure_type) => hooks.metrics.job_failed(failure_type, duration),
        JobEnd::ResultNotDelivered | JobEnd::NotAcknowledged | JobEnd::AlreadyEnded => {
            hooks.metrics.result_undelivered()
        }
        JobEnd::NotOurs => hooks.metrics.lost_claim(),
    }
    end
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}
