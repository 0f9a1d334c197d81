//! The worker's counters and gauges, exposed for Prometheus through `prometheus-client`.
//!
//! One [`Metrics`] is shared (as an `Arc`) by the worker loop, its job tasks and the HTTP
//! listener in [`crate::health`]; tests make their own. The series, their names and help text
//! are declared in [`exposition`]; the labelled ones take typed label sets from [`labels`], so
//! every series exists (at 0) from the start and a misspelt label value does not compile.
//!
//! The same struct remembers when the loop last polled successfully, which `/healthz` reads
//! ([`liveness`]).

mod exposition;
mod labels;
mod liveness;
mod sources;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::pipeline::FailureType;
pub use exposition::CONTENT_TYPE;
pub use labels::JobApiOperation;
use labels::{CounterFamily, FailureLabels, OperationLabels};
use liveness::Liveness;
pub use liveness::{Healthy, Unhealthy};
pub use sources::{SourceHealth, WakeOutcome};
use sources::{SourceSeries, WakeLabels};

/// What the worker counts; see the module documentation.
#[derive(Debug)]
pub struct Metrics {
    /// Every series below, registered once; rendered by [`Metrics::render`].
    registry: Registry,
    jobs_claimed: Counter,
    jobs_succeeded: Counter,
    jobs_failed: CounterFamily<FailureLabels>,
    lost_claims: Counter,
    results_undelivered: Counter,
    in_flight: Gauge,
    published_files: Counter,
    published_bytes: Counter,
    job_duration: Histogram,
    job_api_errors: CounterFamily<OperationLabels>,
    job_api_throttles: CounterFamily<OperationLabels>,
    registry_retries: Counter,
    /// Wall-clock time of the last successful poll, for dashboards; `/healthz` uses `liveness`.
    last_poll_ok_unix: Gauge,
    liveness: Liveness,
    /// The `source`-labelled series and each source's own liveness.
    sources: SourceSeries,
    wake_messages: CounterFamily<WakeLabels>,
    /// 1 while the wake-up queue is being received from; 0 without a queue or while it fails.
    wake_queue_up: Gauge,
    wake_queue_failures: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        exposition::registered()
    }

    pub fn job_claimed(&self) {
        self.jobs_claimed.inc();
    }

    pub fn lost_claim(&self) {
        self.lost_claims.inc();
    }

    pub fn job_succeeded(&self, duration: Duration) {
        self.jobs_succeeded.inc();
        self.job_duration.observe(duration.as_secs_f64());
    }

    pub fn job_failed(&self, failure_type: FailureType, duration: Duration) {
        self.jobs_failed.get(&FailureLabels::of(failure_type)).inc();
        self.job_duration.observe(duration.as_secs_f64());
    }

    pub fn result_undelivered(&self) {
        self.results_undelivered.inc();
    }

    /// Counts a job as in flight until the returned guard is dropped.
    pub fn in_flight(&self) -> InFlight<'_> {
        self.in_flight.inc();
        InFlight { metrics: self }
    }

    /// A file landed in the registry (uploaded or checksum-deployed) with `bytes` of content.
    pub fn file_published(&self, bytes: u64) {
        self.published_files.inc();
        self.published_bytes.inc_by(bytes);
    }

    pub fn job_api_error(&self, operation: JobApiOperation) {
        self.job_api_errors
            .get(&OperationLabels::of(operation))
            .inc();
    }

    pub fn job_api_throttled(&self, operation: JobApiOperation) {
        self.job_api_throttles
            .get(&OperationLabels::of(operation))
            .inc();
    }

    pub fn registry_retry(&self) {
        self.registry_retries.inc();
    }

    pub fn set_concurrency(&self, concurrency: usize) {
        self.liveness.set_concurrency(concurrency);
    }

    pub fn poll_succeeded(&self) {
        self.liveness.poll_succeeded();
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        self.last_poll_ok_unix
            .set(i64::try_from(unix).unwrap_or(i64::MAX));
    }

    pub fn poll_failed(&self, reason: &str) {
        self.liveness.poll_failed(reason);
    }

    pub fn set_stopped(&self) {
        self.liveness.set_stopped();
    }

    /// Adds a source (its `source` label value) before the loop starts; returns its index,
    /// which the loop uses to count what the source does.
    pub fn add_source(&self, name: &str) -> usize {
        self.sources.add(name)
    }

    /// A successful poll of source `index`.
    pub fn source_poll_succeeded(&self, index: usize) {
        self.sources.poll_succeeded(index);
    }

    /// A failed poll of source `index`; `down` (not mere throttling) marks it unhealthy.
    pub fn source_poll_failed(&self, index: usize, reason: &str, down: bool) {
        self.sources.poll_failed(index, reason, down);
    }

    /// A job of source `index` ended with a result.
    pub fn source_job_finished(&self, index: usize) {
        self.sources.jobs.get(index).inc();
    }

    /// Each source's health, in the order they were added.
    pub fn sources_health(&self, max_poll_age: Duration) -> Vec<SourceHealth> {
        self.sources.health(max_poll_age)
    }

    /// A wake-up queue message was handled (and deleted).
    pub fn wake_message(&self, outcome: WakeOutcome) {
        self.wake_messages.get(&WakeLabels::of(outcome)).inc();
    }

    /// The wake-up queue answers (true) or has failed and the worker polls on its own (false).
    pub fn set_wake_queue_up(&self, up: bool) {
        self.wake_queue_up.set(i64::from(up));
    }

    /// A receive from the wake-up queue failed.
    pub fn wake_queue_failed(&self) {
        self.wake_queue_failures.inc();
    }

    /// Jobs being worked on now.
    pub fn jobs_in_flight(&self) -> u64 {
        // Never negative: each decrement is an `InFlight` dropped after its own increment.
        u64::try_from(self.in_flight.get()).unwrap_or(0)
    }

    /// Time since the last successful poll (since start when there was none yet), and whether
    /// there was one.
    pub fn since_last_poll(&self) -> (Duration, bool) {
        self.liveness.since_last_poll()
    }

    /// Alive when the loop polled successfully within `max_poll_age`, or every slot is busy
    /// (a full worker does not poll); otherwise why not.
    pub fn health(&self, max_poll_age: Duration) -> Result<Healthy, Unhealthy> {
        self.liveness.health(self.jobs_in_flight(), max_poll_age)
    }
}

/// Keeps a job counted in `jobs_in_flight` while alive.
#[derive(Debug)]
pub struct InFlight<'a> {
    metrics: &'a Metrics,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.metrics.in_flight.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_every_series_with_its_type() {
        let metrics = Metrics::new();
        metrics.job_claimed();
        metrics.job_failed(FailureType::PermissionError, Duration::from_secs(3));
        metrics.job_succeeded(Duration::from_millis(200));
        metrics.job_api_throttled(JobApiOperation::PollForJobs);
        metrics.file_published(2048);
        let guard = metrics.in_flight();
        let text = metrics.render();
        drop(guard);
        for line in [
            "# TYPE pipeline_publisher_jobs_claimed_total counter",
            "pipeline_publisher_jobs_claimed_total 1",
            "pipeline_publisher_jobs_failed_total{failure_type=\"PermissionError\"} 1",
            "pipeline_publisher_jobs_failed_total{failure_type=\"JobFailed\"} 0",
            "pipeline_publisher_jobs_in_flight 1",
            "pipeline_publisher_published_bytes_total 2048",
            "pipeline_publisher_job_api_throttles_total{operation=\"PollForJobs\"} 1",
            "pipeline_publisher_job_duration_seconds_bucket{le=\"0.5\"} 1",
            "pipeline_publisher_job_duration_seconds_bucket{le=\"2.5\"} 1",
            "pipeline_publisher_job_duration_seconds_bucket{le=\"5\"} 2",
            "pipeline_publisher_job_duration_seconds_bucket{le=\"+Inf\"} 2",
            "pipeline_publisher_job_duration_seconds_count 2",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing `{line}` in\n{text}"
            );
        }
        assert_eq!(metrics.jobs_in_flight(), 0);
    }

    #[test]
    fn health_follows_the_last_successful_poll() {
        let metrics = Metrics::new();
        assert_eq!(
            metrics
                .health(Duration::from_secs(60))
                .map(|healthy| healthy.to_string()),
            Ok("starting".into())
        );
        metrics.poll_failed("ThrottlingException: Rate exceeded");
        let reason = metrics.health(Duration::ZERO).unwrap_err().to_string();
        assert!(reason.contains("Rate exceeded"), "{reason}");
        metrics.poll_succeeded();
        assert!(metrics.health(Duration::from_secs(60)).is_ok());
        metrics.set_concurrency(1);
        let _busy = metrics.in_flight();
        assert!(
            metrics.health(Duration::ZERO).is_ok(),
            "a full worker is healthy"
        );
        metrics.set_stopped();
        assert!(metrics.health(Duration::from_secs(60)).is_err());
    }
}
