//! The idle heartbeat: while the worker has nothing to do it logs nothing at info, except one
//! line per `--heartbeat-interval` saying it is alive and what it has done since the last one.

use std::time::Duration;

use tokio::time::Instant;
use tracing::info;

use crate::worker::WorkerReport;

pub(crate) struct Heartbeat {
    /// `Duration::ZERO` turns the heartbeat off.
    interval: Duration,
    last: Instant,
    polls: u64,
    jobs_at_last: u64,
}

impl Heartbeat {
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: Instant::now(),
            polls: 0,
            jobs_at_last: 0,
        }
    }

    /// Called after each poll that returned no jobs.
    pub(crate) fn idle_poll(&mut self, report: &WorkerReport, in_flight: usize) {
        self.polls += 1;
        if self.interval.is_zero() || self.last.elapsed() < self.interval {
            return;
        }
        let jobs = report.succeeded + report.failed;
        info!(
            in_flight,
            empty_polls = self.polls,
            jobs_since_last = jobs - self.jobs_at_last,
            jobs_succeeded = report.succeeded,
            jobs_failed = report.failed,
            "idle; polling for jobs"
        );
        self.last = Instant::now();
        self.polls = 0;
        self.jobs_at_last = jobs;
    }
}
