//! The loop's running jobs: one task per claimed job in a `JoinSet`, which source each came
//! from, the tally of how they ended, the free-slot arithmetic (including `--max-jobs`),
//! resuming journaled jobs (each with the source that handed it out), and the drain at
//! shutdown.
//!
//! Slots. A job holds one of the `--concurrency` slots from its poll until its work is done;
//! then it only waits for the job API to take its result, which under throttling means backing
//! off for up to a second, so it gives its slot to the next job
//! ([`SlotReleases`](job_task::SlotReleases)). The loop never holds more than twice
//! `--concurrency` jobs acknowledging, waiting or working, nor more than four times
//! `--concurrency` jobs in all, those delivering their results included.
//!
//! A poll normally asks for the free slots only. Where the job API throttles polls, a poll is
//! worth more than a slot held a moment, so the loop may claim up to that bound
//! ([`Room::claimable`](crate::worker::shares::Room)): jobs beyond the free slots wait after their acknowledgement (itself a
//! throttled call, made while the others run) for a permit to work
//! ([`JobHooks::work_permits`](job_task::JobHooks)). Never more than `--concurrency` jobs
//! work at once. The drain waits for the waiting and delivering jobs too.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::error::inline_chain;
use crate::pipeline::{Job, JobApi};
use crate::worker::job_task::{self, JobEnd, JobHooks};
use crate::worker::journal::Journal;
use crate::worker::shares::Room;
use crate::worker::{JobHandler, WorkerReport};

/// How long job tasks may take to deliver their failure results once cancelled at shutdown.
const REPORT_GRACE: Duration = Duration::from_secs(30);

/// A source's job API and the hooks its jobs run with.
pub(crate) struct TaskSource<A> {
    pub(crate) api: Arc<A>,
    pub(crate) hooks: JobHooks,
    /// The source's index in [`crate::metrics::Metrics`]' per-source series.
    pub(crate) metric: usize,
}

pub(crate) struct JobTasks<A, H> {
    sources: Vec<TaskSource<A>>,
    handler: Arc<H>,
    cancel: CancellationToken,
    running: JoinSet<JobEnd>,
    /// Which source each running task's job came from, and whether it still holds a slot.
    owners: HashMap<tokio::task::Id, Owner>,
    /// Jobs holding a slot, per source.
    working: Vec<usize>,
    /// Jobs whose work is done and whose result is still being delivered (holding no slot).
    delivering: usize,
    /// The tasks that say their work is done ([`job_task::SlotReleases`]).
    released: mpsc::UnboundedReceiver<tokio::task::Id>,
    report: WorkerReport,
}

#[derive(Debug, Clone, Copy)]
struct Owner {
    source: usize,
    holds_slot: bool,
}

impl<A: JobApi, H: JobHandler> JobTasks<A, H> {
    /// `released` is the receiving end of the [`job_task::SlotReleases`] in the sources' hooks.
    pub(crate) fn new(
        sources: Vec<TaskSource<A>>,
        handler: Arc<H>,
        released: mpsc::UnboundedReceiver<tokio::task::Id>,
    ) -> Self {
        Self {
            working: vec![0; sources.len()],
            sources,
            handler,
            cancel: CancellationToken::new(),
            running: JoinSet::new(),
            owners: HashMap::new(),
            delivering: 0,
            released,
            report: WorkerReport::default(),
        }
    }

    /// Jobs from source `index` holding a slot.
    pub(crate) fn in_flight(&self, index: usize) -> usize {
        self.working.get(index).copied().unwrap_or(0)
    }

    /// Jobs holding a slot, from every source.
    pub(crate) fn working(&self) -> usize {
        self.running.len() - self.delivering
    }

    fn spawn(&mut self, source: usize, task: impl Future<Output = JobEnd> + Send + 'static) {
        let handle = self.running.spawn(task);
        self.owners.insert(
            handle.id(),
            Owner {
                source,
                holds_slot: true,
            },
        );
        self.working[source] += 1;
    }

    /// A task's work is done: its slot is free while its result is delivered.
    fn release(&mut self, id: tokio::task::Id) {
        if let Some(owner) = self.owners.get_mut(&id)
            && owner.holds_slot
        {
            owner.holds_slot = false;
            self.working[owner.source] -= 1;
            self.delivering += 1;
        }
    }

    pub(crate) fn report(&self) -> &WorkerReport {
        &self.report
    }

    /// Job tasks, working or delivering their result.
    pub(crate) fn len(&self) -> usize {
        self.running.len()
    }

    /// Starts a task for each job a process before this one acknowledged but never answered.
    pub(crate) fn resume_journaled(&mut self, journal: &Arc<Journal>) {
        let entries = match journal.pending() {
            Ok(entries) => entries,
            Err(error) => {
                error!(error = %inline_chain(&error), "could not read the job journal");
                return;
            }
        };
        if !entries.is_empty() {
            info!(
                jobs = entries.len(),
                "resuming jobs acknowledged before the last stop"
            );
        }
        for entry in entries {
            // Entries written before sources existed belong to the first (the only) source.
            let source = match &entry.source {
                None => Some(0),
                Some(name) => self
                    .sources
                    .iter()
                    .position(|source| *source.hooks.source == **name),
            };
            let Some(source) = source else {
                warn!(
                    job_id = %entry.job_id,
                    source = entry.source.as_deref().unwrap_or_default(),
                    "a journaled job belongs to a source this worker no longer serves; leaving it \
                     in the journal for a worker that does (CodePipeline times it out otherwise)"
                );
                continue;
            };
            let task = job_task::recover_job(
                self.sources[source].api.clone(),
                self.handler.clone(),
                entry,
                self.cancel.child_token(),
                self.sources[source].hooks.clone(),
                journal.clone(),
            );
            self.spawn(source, task);
        }
    }

    /// Starts the jobs polled from source `source`, at most `batch` of them.
    pub(crate) fn start(&mut self, source: usize, jobs: Vec<Job>, batch: usize) {
        for (index, job) in jobs.into_iter().enumerate() {
            if index >= batch {
                // Never acknowledged, so CodePipeline hands it to a worker with room.
                warn!(job_id = %job.id, "PollForJobs returned more jobs than asked for; leaving this one");
                continue;
            }
            let task = job_task::run_job(
                self.sources[source].api.clone(),
                self.handler.clone(),
                job,
                self.cancel.child_token(),
                self.sources[source].hooks.clone(),
            );
            self.spawn(source, task);
        }
    }

    /// How many jobs the loop may claim now.
    pub(crate) fn room(&self, concurrency: usize, max_jobs: Option<u64>) -> Room {
        let in_flight = self.running.len();
        // Jobs whose results wait in a throttled source's line hold only a message; bounded
        // apart, so that they do not shrink the next batch.
        let claimed = in_flight - self.delivering;
        let claimable = (2 * concurrency)
            .saturating_sub(claimed)
            .min((4 * concurrency).saturating_sub(in_flight));
        let free = concurrency.saturating_sub(self.working()).min(claimable);
        // --max-jobs counts jobs that ended with a result; running ones may still do so.
        let remaining =
            max_jobs.map(|max| max.saturating_sub(self.report.finished() + in_flight as u64));
        let cap = |room: usize| {
            remaining.map_or(room, |left| room.min(usize::try_from(left).unwrap_or(room)))
        };
        Room {
            free: cap(free),
            claimable: cap(claimable),
            more_would_help: remaining.is_none_or(|left| (free as u64) < left),
        }
    }

    /// Records the jobs that have ended, without waiting.
    pub(crate) fn reap(&mut self) {
        while let Ok(id) = self.released.try_recv() {
            self.release(id);
        }
        while let Some(joined) = self.running.try_join_next_with_id() {
            self.record(joined);
        }
    }

    fn record(&mut self, joined: Result<(tokio::task::Id, JobEnd), tokio::task::JoinError>) {
        let (id, end) = match joined {
            Ok((id, end)) => (id, Some(end)),
            Err(join_error) => {
                error!(%join_error, "a job task ended abnormally");
                (join_error.id(), None)
            }
        };
        if let Some(Owner { source, holds_slot }) = self.owners.remove(&id) {
            if holds_slot {
                self.working[source] -= 1;
            } else {
                self.delivering -= 1;
            }
            if end.is_some_and(JobEnd::finished) {
                let source = &self.sources[source];
                source.hooks.metrics.source_job_finished(source.metric);
            }
        }
        match end {
            Some(end) => self.report.record(end),
            None => self.report.undelivered += 1,
        }
    }

    /// Waits for one job to end or give its slot back; false when `shutdown` came first.
    pub(crate) async fn wait_for_one(&mut self, shutdown: &mut Pin<&mut impl Future>) -> bool {
        tokio::select! {
            Some(joined) = self.running.join_next_with_id() => {
                self.record(joined);
                true
            }
            Some(id) = self.released.recv() => {
                self.release(id);
                true
            }
            _ = shutdown.as_mut() => false,
        }
    }

    /// Waits until `deadline`, recording jobs that end or give their slot back meanwhile
    /// (returning at the first one when `until_a_job_ends`); false when `shutdown` came first.
    pub(crate) async fn wait_until(
        &mut self,
        deadline: Instant,
        until_a_job_ends: bool,
        shutdown: &mut Pin<&mut impl Future>,
    ) -> bool {
        let sleep = tokio::time::sleep_until(deadline);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => return true,
                _ = shutdown.as_mut() => return false,
                Some(joined) = self.running.join_next_with_id() => {
                    self.record(joined);
                    if until_a_job_ends {
                        return true;
                    }
                }
                Some(id) = self.released.recv() => {
                    self.release(id);
                    if until_a_job_ends {
                        return true;
                    }
                }
            }
        }
    }

    /// Lets in-flight jobs finish within `drain_timeout`, then cancels the rest, which report
    /// themselves as failed; returns what the loop did.
    pub(crate) async fn drain(mut self, drain_timeout: Duration) -> WorkerReport {
        if self.running.is_empty() {
            return self.report;
        }
        info!(
            in_flight = self.running.len(),
            timeout_s = drain_timeout.as_secs(),
            "draining in-flight jobs"
        );
        if self.join_all_within(drain_timeout).await {
            return self.report;
        }
        warn!(
            in_flight = self.running.len(),
            "drain timeout reached; reporting unfinished jobs as failed"
        );
        self.cancel.cancel();
        if !self.join_all_within(REPORT_GRACE).await {
            error!(
                in_flight = self.running.len(),
                "could not report every unfinished job before exiting"
            );
            self.running.abort_all();
        }
        self.report
    }

    async fn join_all_within(&mut self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, async {
            while let Some(joined) = self.running.join_next_with_id().await {
                self.record(joined);
            }
        })
        .await
        .is_ok()
    }
}
