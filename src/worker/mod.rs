//! The poll loop: claim jobs while there is room, run them concurrently, end each with one
//! result, and drain on shutdown.
//!
//! The loop is handed its control plane ([`JobApi`]), its work ([`JobHandler`]) and its shutdown
//! signal (a future), so tests run the real loop against fakes and stand-ins.
//!
//! Concurrency is bounded by counting the job tasks in a `JoinSet`: the loop only asks
//! `PollForJobs` for as many jobs as it has free slots, so it never holds a job it cannot start.
//!
//! Pacing, in the order the loop applies it:
//! - Nothing in flight: poll at once.
//! - Some slots free while jobs still run: gather first. Poll when every slot is free or
//!   `gather_delay` after the first one freed, whichever comes first, and then ask for all free
//!   slots. One poll then claims a batch instead of one job per freed slot.
//! - An empty poll while busy (jobs in flight, or jobs received within `busy_window`): wait
//!   `poll_min_interval` (jittered), so the next job is picked up within about that long.
//! - An empty poll once the busy window has passed: the idle backoff, doubling up to
//!   `poll_max_interval`, so an idle worker's request rate stays bounded.
//! - Throttled: a short full-jitter backoff (`throttle_base_interval` to
//!   `throttle_max_interval`). Transport errors and rejections: the slower error backoff.
//!
//! [`backoff`] describes the jitter of each policy.

pub mod backoff;
mod heartbeat;
mod job_task;
pub mod journal;
mod metered;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::metrics::Metrics;
use crate::pipeline::{Job, JobApi, JobApiError, JobError, JobSuccess};
use backoff::Backoff;
use heartbeat::Heartbeat;
pub use job_task::{BoxFuture, JobContext, JobDetailsSource, JobEnd};
use metered::MeteredJobApi;

/// The work done for one acknowledged job.
pub trait JobHandler: Send + Sync + 'static {
    fn handle(
        &self,
        job: Job,
        context: JobContext,
    ) -> impl Future<Output = Result<JobSuccess, JobError>> + Send;
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
    /// Files at least this large log upload progress every 10 % or 30 s.
    pub progress_log_min_bytes: u64,
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
            progress_log_min_bytes: crate::progress::DEFAULT_MIN_BYTES,
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

/// How long job tasks may take to deliver their failure results once cancelled at shutdown.
const REPORT_GRACE: Duration = Duration::from_secs(30);

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
    let mut heartbeat = Heartbeat::new(settings.heartbeat_interval);
    let hooks = job_task::JobHooks {
        metrics: metrics.clone(),
        progress_log_min_bytes: settings.progress_log_min_bytes,
        journal: settings.journal.clone(),
    };
    let cancel = CancellationToken::new();
    let mut tasks: JoinSet<JobEnd> = JoinSet::new();
    let mut report = WorkerReport::default();
    let mut idle = Backoff::idle(settings.poll_min_interval, settings.poll_max_interval);
    let mut errors = Backoff::errors(settings.error_base_interval, settings.error_max_interval);
    let mut throttles = Backoff::throttled(
        settings.throttle_base_interval,
        settings.throttle_max_interval,
    );
    let gather_delay = settings.gather_delay.min(settings.poll_min_interval / 2);
    // When the last poll returned jobs: the start of the busy window.
    let mut last_received: Option<Instant> = None;
    // While some slots are free and jobs still run: when to stop gathering and poll. Cleared
    // when a poll returns jobs, so the next partly free state gathers afresh; kept (in the
    // past) after empty or failed polls, whose own wait already did the gathering.
    let mut gather_until: Option<Instant> = None;
    tokio::pin!(shutdown);
    if let Some(journal) = &settings.journal {
        match journal.pending() {
            Ok(entries) => {
                if !entries.is_empty() {
                    info!(
                        jobs = entries.len(),
                        "resuming jobs acknowledged before the last stop"
                    );
                }
                for entry in entries {
                    tasks.spawn(job_task::recover_job(
                        api.clone(),
                        handler.clone(),
                        entry,
                        cancel.child_token(),
                        hooks.clone(),
                        journal.clone(),
                    ));
                }
            }
            Err(error) => {
                error!(error = %crate::pipeline::failure::inline_chain(&error), "could not read the job journal")
            }
        }
    }
    info!(concurrency, "worker started; polling for jobs");

    'poll: loop {
        while let Some(joined) = tasks.try_join_next() {
            record(&mut report, joined);
        }
        let in_flight = tasks.len();
        let remaining = settings
            .max_jobs
            .map(|max| max.saturating_sub(report.finished() + in_flight as u64));
        if settings
            .max_jobs
            .is_some_and(|max| report.finished() >= max)
        {
            info!(jobs = report.finished(), "reached --max-jobs; stopping");
            break;
        }
        let free = concurrency.saturating_sub(in_flight);
        let batch = remaining.map_or(free, |left| free.min(left as usize));
        if batch == 0 {
            // Full (or waiting for the last jobs of --max-jobs): wait for a slot.
            tokio::select! {
                Some(joined) = tasks.join_next() => record(&mut report, joined),
                () = &mut shutdown => break 'poll,
            }
            continue;
        }
        // Some slots free, others still running, and a finishing job would let us ask for more:
        // gather instead of polling for a partial batch.
        let more_would_help = remaining.is_none_or(|left| (free as u64) < left);
        if in_flight > 0 && more_would_help {
            let deadline = *gather_until.get_or_insert_with(|| Instant::now() + gather_delay);
            if Instant::now() < deadline {
                tokio::select! {
                    Some(joined) = tasks.join_next() => record(&mut report, joined),
                    () = tokio::time::sleep_until(deadline) => {}
                    () = &mut shutdown => break 'poll,
                }
                continue;
            }
        }

        let polled = tokio::select! {
            polled = api.poll_for_jobs(batch) => polled,
            () = &mut shutdown => break 'poll,
        };
        let delay = match polled {
            Ok(jobs) if !jobs.is_empty() => {
                idle.reset();
                errors.reset();
                throttles.reset();
                last_received = Some(Instant::now());
                gather_until = None;
                debug!(count = jobs.len(), "received jobs");
                for (index, job) in jobs.into_iter().enumerate() {
                    if index >= batch {
                        // Never acknowledged, so CodePipeline hands it to a worker with room.
                        warn!(job_id = %job.id, "PollForJobs returned more jobs than asked for; leaving this one");
                        continue;
                    }
                    tasks.spawn(job_task::run_job(
                        api.clone(),
                        handler.clone(),
                        job,
                        cancel.child_token(),
                        hooks.clone(),
                    ));
                }
                continue;
            }
            Ok(_) => {
                errors.reset();
                throttles.reset();
                heartbeat.idle_poll(&report, tasks.len());
                let busy = !tasks.is_empty()
                    || last_received.is_some_and(|at| at.elapsed() < settings.busy_window);
                if busy {
                    // More work is likely soon: keep the short pace, and do not grow the idle
                    // backoff, so once the window has passed it starts from the minimum.
                    idle.shortest_delay()
                } else {
                    idle.next_delay()
                }
            }
            Err(error) if error.is_transient() => {
                let delay = match error {
                    // Pace, do not sleep: the allowed rate is there to be used soon.
                    JobApiError::Throttled { .. } => throttles.next_delay(),
                    _ => errors.next_delay(),
                };
                warn!(%error, retry_in_ms = delay.as_millis() as u64, "PollForJobs failed; backing off");
                delay
            }
            Err(error) => {
                let delay = errors.next_delay();
                error!(
                    %error,
                    retry_in_ms = delay.as_millis() as u64,
                    "PollForJobs was rejected; check the action type flags and the worker's IAM permissions"
                );
                delay
            }
        };
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => break,
                () = &mut shutdown => break 'poll,
                // A finished job frees a slot but does not cut the wait short: the wait is what
                // keeps an idle or throttled worker's request rate down.
                Some(joined) = tasks.join_next() => record(&mut report, joined),
            }
        }
    }

    drain(&mut tasks, &mut report, &cancel, settings.drain_timeout).await;
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

/// Lets in-flight jobs finish within `drain_timeout`, then cancels the rest, which report
/// themselves as failed.
async fn drain(
    tasks: &mut JoinSet<JobEnd>,
    report: &mut WorkerReport,
    cancel: &CancellationToken,
    drain_timeout: Duration,
) {
    if tasks.is_empty() {
        return;
    }
    info!(
        in_flight = tasks.len(),
        timeout_s = drain_timeout.as_secs(),
        "draining in-flight jobs"
    );
    let finished = tokio::time::timeout(drain_timeout, async {
        while let Some(joined) = tasks.join_next().await {
            record(report, joined);
        }
    })
    .await;
    if finished.is_ok() {
        return;
    }
    warn!(
        in_flight = tasks.len(),
        "drain timeout reached; reporting unfinished jobs as failed"
    );
    cancel.cancel();
    let reported = tokio::time::timeout(REPORT_GRACE, async {
        while let Some(joined) = tasks.join_next().await {
            record(report, joined);
        }
    })
    .await;
    if reported.is_err() {
        error!(
            in_flight = tasks.len(),
            "could not report every unfinished job before exiting"
        );
        tasks.abort_all();
    }
}

fn record(report: &mut WorkerReport, joined: Result<JobEnd, tokio::task::JoinError>) {
    match joined {
        Ok(end) => report.record(end),
        Err(join_error) => {
            error!(%join_error, "a job task ended abnormally");
            report.undelivered += 1;
        }
    }
}
