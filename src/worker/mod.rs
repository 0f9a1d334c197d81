//! The poll loop: claim jobs while there is room, run them concurrently, end each with one
//! result, and drain on shutdown.
//!
//! The loop is handed its control plane ([`JobApi`]), its work ([`JobHandler`]) and its shutdown
//! signal (a future), so tests run the real loop against fakes and stand-ins.
//!
//! Concurrency is bounded by counting the job tasks in a `JoinSet` ([`tasks`]): the loop only
//! asks `PollForJobs` for as many jobs as it has free slots, so it never holds a job it cannot
//! start. When to poll is decided by [`pacing::Pacer`]; the loop only carries it out. The
//! handler's errors are opaque to the loop: it classifies ([`Classify`]) and renders them.

mod heartbeat;
mod job_task;
pub mod journal;
mod metered;
pub mod pacing;
mod tasks;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::metrics::Metrics;
use crate::pipeline::{Classify, JobApi, JobApiError, JobSuccess};
use heartbeat::Heartbeat;
pub use job_task::{BoxFuture, Claim, ClaimedJob, JobContext, JobDetailsSource, JobEnd, JobTally};
use metered::MeteredJobApi;
use pacing::{Pacer, PollResult};
use tasks::JobTasks;

/// The work done for one acknowledged job.
pub trait JobHandler: Send + Sync + 'static {
    /// What the loop classifies into the job's failure type and renders into its message.
    type Error: Classify + Send + Sync;

    fn handle(
        &self,
        job: ClaimedJob,
        context: JobContext,
    ) -> impl Future<Output = Result<JobSuccess, Self::Error>> + Send;
}

/// How the loop behaves; every field is a `worker` flag.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Jobs run at once.
    pub concurrency: usize,
    /// Wait after the first empty poll.
    pub poll_min_interval: Duration,
    /// Longest wait between polls while idle.
    pub poll_max_interval: Duration,
    /// First wait after a job API error; doubles up to `error_max_interval`.
    pub error_base_interval: Duration,
    pub error_max_interval: Duration,
    /// First wait after a throttled poll (full jitter); doubles up to `throttle_max_interval`.
    pub throttle_base_interval: Duration,
    /// Longest wait after throttled polls: a few seconds, so the fleet keeps using its rate.
    pub throttle_max_interval: Duration,
    /// How long after the last received job empty polls keep the `poll_min_interval` pace
    /// before the idle backoff starts growing.
    pub busy_window: Duration,
    /// How long a partly free worker with jobs still running waits for more slots to free
    /// before polling; capped at half of `poll_min_interval`.
    pub gather_delay: Duration,
    /// On shutdown, how long in-flight jobs may take before they are reported as failed.
    pub drain_timeout: Duration,
    /// Exit after this many jobs have ended with a result (smoke runs and tests).
    pub max_jobs: Option<u64>,
    /// While idle, one info line per interval; `Duration::ZERO` turns it off.
    pub heartbeat_interval: Duration,
    /// Where the loop and its jobs count what they do (served by `--metrics-listen`).
    pub metrics: Arc<Metrics>,
    /// Where acknowledged jobs are journaled, so a crashed worker ends them on its next start.
    pub journal: Option<Arc<journal::Journal>>,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            concurrency: 4,
            poll_min_interval: Duration::from_secs(1),
            poll_max_interval: Duration::from_secs(10),
            error_base_interval: Duration::from_secs(1),
            error_max_interval: Duration::from_secs(60),
            // The SDK has already retried a throttled poll twice within ~0.3 s by the time the
            // loop sees it; 200 ms → 2 s keeps a throttled worker asking several times a
            // second at first and about once a second at worst.
            throttle_base_interval: Duration::from_millis(200),
            throttle_max_interval: Duration::from_secs(2),
            busy_window: Duration::from_secs(60),
            // The jobs of one batch start together but end spread over several hundred ms when
            // the job API throttles (each acknowledgement and result retried at a random
            // 0.1–1 s pace). Measured with 8 workers on a 100 req/s job API (BENCHMARKS.md,
            // scenario 5): 250 ms left 2.3 jobs per poll, 877 polls, 51.6 s; 500 ms gave 3.3
            // jobs per poll, 598 polls, 48.5 s. Only a partly busy worker waits (an idle one
            // polls at once), and never more than half of `poll_min_interval`.
            gather_delay: Duration::from_millis(500),
            drain_timeout: Duration::from_secs(60),
            max_jobs: None,
            heartbeat_interval: Duration::from_secs(5 * 60),
            metrics: Arc::new(Metrics::new()),
            journal: None,
        }
    }
}

/// What the loop did, returned when it stops.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerReport {
    pub succeeded: u64,
    pub failed: u64,
    /// Jobs another worker acknowledged first.
    pub not_ours: u64,
    /// Jobs whose acknowledgement or result call could not be made.
    pub undelivered: u64,
}

impl WorkerReport {
    fn record(&mut self, end: JobEnd) {
        match end {
            JobEnd::Succeeded => self.succeeded += 1,
            JobEnd::Failed(_) => self.failed += 1,
            JobEnd::NotOurs => self.not_ours += 1,
            JobEnd::NotAcknowledged | JobEnd::ResultNotDelivered | JobEnd::AlreadyEnded => {
                self.undelivered += 1
            }
        }
    }

    fn finished(&self) -> u64 {
        self.succeeded + self.failed
    }
}

/// Runs the worker until `shutdown` resolves or `max_jobs` jobs have ended.
pub async fn run<A: JobApi, H: JobHandler>(
    api: Arc<A>,
    handler: Arc<H>,
    settings: WorkerSettings,
    shutdown: impl Future<Output = ()>,
) -> WorkerReport {
    let concurrency = settings.concurrency.max(1);
    let metrics = settings.metrics.clone();
    metrics.set_concurrency(concurrency);
    let api = Arc::new(MeteredJobApi::new(api, metrics.clone()));
    let mut tasks = JobTasks::new(api.clone(), handler, &settings);
    if let Some(journal) = &settings.journal {
        tasks.resume_journaled(journal);
    }
    let mut pacer = Pacer::new(&settings);
    let mut heartbeat = Heartbeat::new(settings.heartbeat_interval);
    tokio::pin!(shutdown);
    info!(concurrency, "worker started; polling for jobs");

    loop {
        tasks.reap();
        if settings
            .max_jobs
            .is_some_and(|max| tasks.report().finished() >= max)
        {
            info!(
                jobs = tasks.report().finished(),
                "reached --max-jobs; stopping"
            );
            break;
        }
        let (batch, more_would_help) = tasks.batch(concurrency, settings.max_jobs);
        if batch == 0 {
            // Full (or waiting for the last jobs of --max-jobs): wait for a slot.
            if !tasks.wait_for_one(&mut shutdown).await {
                break;
            }
            continue;
        }
        if let Some(deadline) = pacer.gather_until(Instant::now(), tasks.len(), more_would_help) {
            if !tasks.wait_until(deadline, true, &mut shutdown).await {
                break;
            }
            continue;
        }

        let polled = tokio::select! {
            polled = api.poll_for_jobs(batch) => polled,
            () = &mut shutdown => break,
        };
        let result = match &polled {
            Ok(jobs) if !jobs.is_empty() => PollResult::Jobs,
            Ok(_) => PollResult::Empty,
            Err(JobApiError::Throttled { .. }) => PollResult::Throttled,
            Err(_) => PollResult::Failed,
        };
        let delay = pacer.after_poll(Instant::now(), result, tasks.len());
        match polled {
            Ok(jobs) if !jobs.is_empty() => {
                debug!(count = jobs.len(), "received jobs");
                tasks.start(jobs, batch);
                continue;
            }
            Ok(_) => heartbeat.idle_poll(tasks.report(), tasks.len()),
            Err(error) if error.is_transient() => {
                warn!(%error, retry_in_ms = delay.as_millis() as u64, "PollForJobs failed; backing off")
            }
            Err(error) => error!(
                %error,
                retry_in_ms = delay.as_millis() as u64,
                "PollForJobs was rejected; check the action type flags and the worker's IAM permissions"
            ),
        }
        // A finished job frees a slot but does not cut the wait short: the wait is what keeps
        // an idle or throttled worker's request rate down.
        if !tasks
            .wait_until(Instant::now() + delay, false, &mut shutdown)
            .await
        {
            break;
        }
    }

    let report = tasks.drain(settings.drain_timeout).await;
    metrics.set_stopped();
    info!(
        succeeded = report.succeeded,
        failed = report.failed,
        not_ours = report.not_ours,
        undelivered = report.undelivered,
        "worker stopped"
    );
    report
}
