//! The poll loop: claim jobs while there is room, run them concurrently, end each with one
//! result, and drain on shutdown.
//!
//! The loop is handed its control plane ([`JobApi`]), its work ([`JobHandler`]) and its shutdown
//! signal (a future), so tests run the real loop against fakes and stand-ins.
//!
//! One worker serves one or more [`Source`]s (an account and region each, with its own job
//! API). Each source is paced on its own; free slots are shared among the sources that have
//! work by [`shares`]; a wake-up queue ([`wake`]) makes a source due the moment a job is queued
//! there. Which versions of the action type each poll asks is the loop's choice too
//! ([`PollVersions`]), so that idle and busy polls cost one request each. Every job is
//! reported to the job API of the source it came from, also after a crash (the journal names
//! the source).
//!
//! Concurrency is bounded by counting the job tasks in a `JoinSet` ([`tasks`]) and by
//! `--concurrency` permits to work: the loop normally asks `PollForJobs` for as many jobs as it
//! has free slots, so it holds no job it cannot start; where a source's job API throttles polls
//! it may claim a few more, which wait for a slot. A job whose work is done gives its slot
//! back while its result is delivered. [`tasks`] gives the bounds. When to poll is decided by
//! [`pacing::Pacer`]; the loop only carries it out. The handler's errors are opaque to the
//! loop: it classifies ([`Classify`]) and renders them.

mod heartbeat;
mod job_task;
pub mod journal;
pub mod lane;
mod metered;
pub mod pacing;
mod results;
pub mod shares;
mod tasks;
pub mod wake;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::metrics::Metrics;
use crate::pipeline::{Classify, JobApi, JobApiError, JobSuccess, PollVersions};
use heartbeat::Heartbeat;
use job_task::JobHooks;
pub use job_task::{BoxFuture, Claim, ClaimedJob, JobContext, JobDetailsSource, JobEnd, JobTally};
use lane::LanedJobApi;
use metered::MeteredJobApi;
use pacing::{Pacer, PollResult};
use shares::{Choice, SourceView};
use tasks::{JobTasks, TaskSource};
use tokio::sync::mpsc;
pub use wake::WakeEvent;

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
    /// With a wake-up queue: the longest idle wait while the queue does not answer (the pace
    /// of a worker without one); `poll_max_interval` is then the safety net while it does.
    pub fallback_poll_max_interval: Duration,
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
            // loop sees it; 50 ms → 400 ms keeps a throttled worker asking again within a
            // fraction of a second, so the account's rate is not left unused between polls.
            throttle_base_interval: Duration::from_millis(50),
            throttle_max_interval: Duration::from_millis(400),
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
            fallback_poll_max_interval: Duration::from_secs(10),
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

/// One source of jobs: a job API (one account and region, with its action type versions) and
/// the name logs, metrics and `/healthz` know it by.
pub struct Source<A> {
    pub name: String,
    pub api: Arc<A>,
}

impl<A> Source<A> {
    pub fn new(name: impl Into<String>, api: Arc<A>) -> Self {
        Self {
            name: name.into(),
            api,
        }
    }
}

/// Runs the worker on one source until `shutdown` resolves or `max_jobs` jobs have ended.
pub async fn run<A: JobApi, H: JobHandler>(
    api: Arc<A>,
    handler: Arc<H>,
    settings: WorkerSettings,
    shutdown: impl Future<Output = ()>,
) -> WorkerReport {
    run_sources(
        vec![Source::new("default", api)],
        handler,
        settings,
        None,
        shutdown,
    )
    .await
}

/// A source's job API as the loop and its jobs use it: every attempt metered, the job calls
/// retried through the source's line.
type SourceApi<A> = LanedJobApi<MeteredJobApi<A>>;

/// The loop's view of one source.
struct SourceState<A> {
    name: Arc<str>,
    api: Arc<SourceApi<A>>,
    pacer: Pacer,
    next_poll: Instant,
    last_polled: Option<Instant>,
    /// Versions a wake-up named that have not been asked since, oldest first.
    woken: Vec<String>,
}

impl<A> SourceState<A> {
    /// The versions the next poll asks: a woken one alone; with a queue that answers, one
    /// (a queued job wakes its version anyway); without, every version.
    fn poll_versions(&self, queue_up: bool) -> PollVersions<'_> {
        match self.woken.first() {
            Some(version) => PollVersions::Only(version),
            None if queue_up => PollVersions::Next,
            None => PollVersions::All,
        }
    }
}

/// Runs the worker on every source until `shutdown` resolves or `max_jobs` jobs have ended.
/// Free slots are shared among the sources by [`shares`]; each source is paced on its own.
/// With a wake-up channel ([`wake`]), a message naming a source makes it due at once, and the
/// idle pace of every source is `poll_max_interval` while the queue answers (from the start)
/// and `fallback_poll_max_interval` once it has failed, until it answers again.
pub async fn run_sources<A: JobApi, H: JobHandler>(
    sources: Vec<Source<A>>,
    handler: Arc<H>,
    settings: WorkerSettings,
    mut wake: Option<mpsc::Receiver<WakeEvent>>,
    shutdown: impl Future<Output = ()>,
) -> WorkerReport {
    let concurrency = settings.concurrency.max(1);
    let metrics = settings.metrics.clone();
    metrics.set_concurrency(concurrency);
    let start = Instant::now();
    let mut states = Vec::with_capacity(sources.len());
    let mut task_sources = Vec::with_capacity(sources.len());
    let (slots, released) = job_task::SlotReleases::channel();
    let work_permits = Arc::new(tokio::sync::Semaphore::new(concurrency));
    for source in sources {
        let metric = metrics.add_source(&source.name);
        let name: Arc<str> = source.name.into();
        let api = Arc::new(LanedJobApi::new(MeteredJobApi::new(
            source.api,
            metrics.clone(),
            metric,
        )));
        task_sources.push(TaskSource {
            api: api.clone(),
            hooks: JobHooks {
                metrics: metrics.clone(),
                journal: settings.journal.clone(),
                source: name.clone(),
                slots: slots.clone(),
                work_permits: work_permits.clone(),
            },
            metric,
        });
        // With a queue, `poll_max_interval` is the safety net from the start; the wake-up task
        // says when the queue fails.
        let mut pacer = Pacer::new(&settings);
        if wake.is_some() {
            pacer.set_idle_pace(settings.poll_max_interval, true);
        }
        states.push(SourceState {
            name,
            api,
            pacer,
            next_poll: start,
            last_polled: None,
            woken: Vec::new(),
        });
    }
    let sources_count = states.len();
    let mut tasks = JobTasks::new(task_sources, handler, released);
    if let Some(journal) = &settings.journal {
        tasks.resume_journaled(journal);
    }
    let mut heartbeat = Heartbeat::new(settings.heartbeat_interval);
    // The loop trusts a queue from the start (see `wait`).
    let mut queue_up = wake.is_some();
    tokio::pin!(shutdown);
    info!(
        concurrency,
        sources = sources_count,
        wake_queue = wake.is_some(),
        "worker started; polling for jobs"
    );

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
        if states.is_empty() {
            // Nothing to poll (only journaled jobs to finish): wait for them, then stop.
            if tasks.len() == 0 || !tasks.wait_for_one(&mut shutdown).await {
                break;
            }
            continue;
        }
        let room = tasks.room(concurrency, settings.max_jobs);
        let now = Instant::now();
        let views: Vec<SourceView> = states
            .iter()
            .enumerate()
            .map(|(index, state)| SourceView {
                in_flight: tasks.in_flight(index),
                next_poll: state.next_poll,
                last_polled: state.last_polled,
                polls_scarce: state.pacer.throttled_recently(now),
            })
            .collect();
        let choice = if room.claimable == 0 {
            // Full (or waiting for the last jobs of --max-jobs): wait for a slot.
            Choice::WaitForRoom { or_until: None }
        } else {
            shares::choose(&views, room, concurrency, now)
        };
        // Either the poll to make, or the deadline `wait` takes (and whether a job's end cuts it
        // short) when there is none.
        let poll_or_wait = match choice {
            Choice::Poll { source, batch } => Ok((source, batch)),
            Choice::WaitForRoom { or_until } => Err(or_until.map(|until| (until, true))),
            // A finished job frees a slot but does not cut the wait short: the wait is what
            // keeps an idle or throttled worker's request rate down. A wake-up does.
            Choice::WaitUntil(until) => Err(Some((until, false))),
        };
        let (index, batch) = match poll_or_wait {
            Ok(poll) => poll,
            Err(deadline) => {
                let waited = wait(
                    &mut tasks,
                    deadline,
                    &mut wake,
                    &mut queue_up,
                    &mut states,
                    &settings,
                    &mut shutdown,
                )
                .await;
                if !waited {
                    break;
                }
                continue;
            }
        };
        // Gathering slots saves polls while this source's own jobs end one by one. While other
        // sources hold slots too, the share rule decides and a waiting job is not held back,
        // unless the source's job API throttles: then a poll is scarcer than a few hundred ms.
        let asked_all = batch
            == if views[index].polls_scarce {
                room.claimable
            } else {
                room.free
            };
        let gather = room.more_would_help
            && asked_all
            && (tasks.in_flight(index) == tasks.working()
                || states[index].pacer.throttled_recently(now));
        if let Some(deadline) = states[index]
            .pacer
            .gather_until(now, tasks.working(), gather)
        {
            let waited = wait(
                &mut tasks,
                Some((deadline, true)),
                &mut wake,
                &mut queue_up,
                &mut states,
                &settings,
                &mut shutdown,
            )
            .await;
            if !waited {
                break;
            }
            continue;
        }

        let state = &mut states[index];
        let polled = tokio::select! {
            polled = state.api.poll_for_jobs(batch, state.poll_versions(queue_up)) => polled,
            () = &mut shutdown => break,
        };
        if polled.is_ok() && !state.woken.is_empty() {
            state.woken.remove(0);
        }
        let result = match &polled {
            Ok(jobs) if !jobs.is_empty() => PollResult::Jobs,
            Ok(_) => PollResult::Empty,
            Err(JobApiError::Throttled { .. }) => PollResult::Throttled,
            Err(_) => PollResult::Failed,
        };
        let now = Instant::now();
        let delay = state.pacer.after_poll(now, result, tasks.in_flight(index));
        // Another version woken meanwhile is asked at once, not after the idle wait.
        state.next_poll = if state.woken.is_empty() {
            now + delay
        } else {
            now
        };
        state.last_polled = Some(now);
        let source = state.name.clone();
        match polled {
            Ok(jobs) if !jobs.is_empty() => {
                debug!(%source, count = jobs.len(), "received jobs");
                tasks.start(index, jobs, batch);
            }
            Ok(_) => heartbeat.idle_poll(tasks.report(), tasks.len()),
            Err(error) if error.is_transient() => {
                warn!(%source, %error, retry_in_ms = delay.as_millis() as u64, "PollForJobs failed; backing off")
            }
            Err(error) => error!(
                %source,
                %error,
                retry_in_ms = delay.as_millis() as u64,
                "PollForJobs was rejected; check the action type flags and the worker's IAM permissions"
            ),
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

/// Waits for a job to end (`deadline` `None`), or until the deadline (returning at the first
/// job that ends when its flag is set), or for a wake-up, which it applies to `states`; false
/// when `shutdown` came first.
async fn wait<A: JobApi, H: JobHandler>(
    tasks: &mut JobTasks<SourceApi<A>, H>,
    deadline: Option<(Instant, bool)>,
    wake: &mut Option<mpsc::Receiver<WakeEvent>>,
    queue_up: &mut bool,
    states: &mut [SourceState<A>],
    settings: &WorkerSettings,
    shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
) -> bool {
    let event = {
        let waiting = async {
            match deadline {
                None => tasks.wait_for_one(shutdown).await,
                Some((deadline, until_a_job_ends)) => {
                    tasks.wait_until(deadline, until_a_job_ends, shutdown).await
                }
            }
        };
        let Some(receiver) = wake.as_mut() else {
            return waiting.await;
        };
        tokio::select! {
            waited = waiting => return waited,
            event = receiver.recv() => event,
        }
    };
    let now = Instant::now();
    match event {
        Some(WakeEvent::Source { source, version }) => {
            if let Some(state) = states.get_mut(source) {
                debug!(source = %state.name, %version, "woken up: polling the source now");
                if !state.woken.contains(&version) {
                    state.woken.push(version);
                }
                state.next_poll = now;
            }
        }
        Some(WakeEvent::QueueUp) => {
            *queue_up = true;
            for state in states.iter_mut() {
                state.pacer.set_idle_pace(settings.poll_max_interval, true);
            }
        }
        Some(WakeEvent::QueueDown) | None => {
            *queue_up = false;
            if event.is_none() {
                *wake = None;
            }
            // Back to the pace of a worker without a queue: no job waits for the safety net.
            let fallback = settings.fallback_poll_max_interval;
            for state in states.iter_mut() {
                state.pacer.set_idle_pace(fallback, false);
                state.next_poll = state.next_poll.min(now + fallback);
            }
        }
    }
    true
}
