//! The worker's counters and gauges, and their Prometheus text exposition.
//!
//! A small hand-written registry rather than a metrics crate: the set of series is fixed and
//! small, every label value is known in advance (failure types, job-API operations), and the
//! text format (`# HELP`, `# TYPE`, `name{label="v"} value`) is a few lines to write. One
//! [`Metrics`] is shared (as an `Arc`) by the worker loop, its job tasks and the HTTP listener in
//! [`crate::health`]; tests make their own.
//!
//! The same struct remembers when the loop last polled successfully, which `/healthz` reads.

mod exposition;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::pipeline::FailureType;

/// Every failure type, so each `failed` series exists (at 0) before the first failure.
const FAILURE_TYPES: [FailureType; 6] = [
    FailureType::JobFailed,
    FailureType::ConfigurationError,
    FailureType::PermissionError,
    FailureType::RevisionOutOfSync,
    FailureType::RevisionUnavailable,
    FailureType::SystemUnavailable,
];

/// The job-API operations the worker makes.
pub const JOB_API_OPERATIONS: [&str; 5] = [
    "PollForJobs",
    "AcknowledgeJob",
    "GetJobDetails",
    "PutJobSuccessResult",
    "PutJobFailureResult",
];

/// Upper bounds (seconds) of the job-duration histogram: small files take a second, firmware
/// images minutes; anything past an hour is an outlier worth seeing in `+Inf`.
const DURATION_BUCKETS: [f64; 12] = [
    0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// A counter per label value, label values fixed at construction.
#[derive(Debug)]
struct LabelledCounter {
    values: BTreeMap<&'static str, AtomicU64>,
}

impl LabelledCounter {
    fn new(labels: impl IntoIterator<Item = &'static str>) -> Self {
        Self {
            values: labels
                .into_iter()
                .map(|label| (label, AtomicU64::new(0)))
                .collect(),
        }
    }

    fn increment(&self, label: &str) {
        if let Some(counter) = self.values.get(label) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn get(&self, label: &str) -> u64 {
        self.values
            .get(label)
            .map_or(0, |counter| counter.load(Ordering::Relaxed))
    }
}

/// Cumulative histogram of job durations.
#[derive(Debug, Default)]
struct Histogram {
    /// Observations per bucket (not cumulative; summed when rendered), plus `+Inf` last.
    buckets: [AtomicU64; DURATION_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn observe(&self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        let index = DURATION_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(DURATION_BUCKETS.len());
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            u64::try_from(duration.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.count.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the worker counts; see the module documentation.
#[derive(Debug)]
pub struct Metrics {
    jobs_claimed: AtomicU64,
    jobs_succeeded: AtomicU64,
    jobs_failed: LabelledCounter,
    lost_claims: AtomicU64,
    results_undelivered: AtomicU64,
    in_flight: AtomicU64,
    published_bytes: AtomicU64,
    published_files: AtomicU64,
    job_duration: Histogram,
    job_api_errors: LabelledCounter,
    job_api_throttles: LabelledCounter,
    registry_retries: AtomicU64,
    /// When this `Metrics` was made: the health bound's start before the first poll.
    created: Instant,
    /// Milliseconds after `created` of the last successful `PollForJobs`, plus one (0 = never).
    last_poll_ok_ms: AtomicU64,
    /// Wall-clock time of the last successful poll, for the exported timestamp gauge.
    last_poll_ok_unix: AtomicU64,
    /// Why the last poll failed, for `/healthz`; cleared by a successful poll.
    last_poll_error: Mutex<Option<String>>,
    /// Slots of the loop; while all are busy the loop does not poll and is still healthy.
    concurrency: AtomicU64,
    /// Set when the loop has returned.
    stopped: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self {
            jobs_claimed: AtomicU64::new(0),
            jobs_succeeded: AtomicU64::new(0),
            jobs_failed: LabelledCounter::new(FAILURE_TYPES.map(FailureType::as_str)),
            lost_claims: AtomicU64::new(0),
            results_undelivered: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            published_bytes: AtomicU64::new(0),
            published_files: AtomicU64::new(0),
            job_duration: Histogram::default(),
            job_api_errors: LabelledCounter::new(JOB_API_OPERATIONS),
            job_api_throttles: LabelledCounter::new(JOB_API_OPERATIONS),
            registry_retries: AtomicU64::new(0),
            created: Instant::now(),
            last_poll_ok_ms: AtomicU64::new(0),
            last_poll_ok_unix: AtomicU64::new(0),
            last_poll_error: Mutex::new(None),
            concurrency: AtomicU64::new(1),
            stopped: AtomicBool::new(false),
        }
    }

    pub fn job_claimed(&self) {
        self.jobs_claimed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn lost_claim(&self) {
        self.lost_claims.fetch_add(1, Ordering::Relaxed);
    }

    pub fn job_succeeded(&self, duration: Duration) {
        self.jobs_succeeded.fetch_add(1, Ordering::Relaxed);
        self.job_duration.observe(duration);
    }

    pub fn job_failed(&self, failure_type: FailureType, duration: Duration) {
        self.jobs_failed.increment(failure_type.as_str());
        self.job_duration.observe(duration);
    }

    pub fn result_undelivered(&self) {
        self.results_undelivered.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a job as in flight until the returned guard is dropped.
    pub fn in_flight(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight { metrics: self }
    }

    /// A file landed in the registry (uploaded or checksum-deployed) with `bytes` of content.
    pub fn file_published(&self, bytes: u64) {
        self.published_files.fetch_add(1, Ordering::Relaxed);
        self.published_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn job_api_error(&self, operation: &str) {
        self.job_api_errors.increment(operation);
    }

    pub fn job_api_throttled(&self, operation: &str) {
        self.job_api_throttles.increment(operation);
    }

    pub fn registry_retry(&self) {
        self.registry_retries.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_concurrency(&self, concurrency: usize) {
        self.concurrency
            .store(concurrency.max(1) as u64, Ordering::Relaxed);
    }

    pub fn poll_succeeded(&self) {
        let since_start = u64::try_from(self.created.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_poll_ok_ms
            .store(since_start.saturating_add(1), Ordering::Relaxed);
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        self.last_poll_ok_unix.store(unix, Ordering::Relaxed);
        *self
            .last_poll_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }

    pub fn poll_failed(&self, reason: &str) {
        *self
            .last_poll_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(reason.chars().take(300).collect());
    }

    pub fn set_stopped(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    /// Jobs being worked on now.
    pub fn jobs_in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Time since the last successful poll (since start when there was none yet), and whether
    /// there was one.
    pub fn since_last_poll(&self) -> (Duration, bool) {
        let last = self.last_poll_ok_ms.load(Ordering::Relaxed);
        let now = self.created.elapsed();
        if last == 0 {
            (now, false)
        } else {
            (now.saturating_sub(Duration::from_millis(last - 1)), true)
        }
    }

    /// `Ok(description)` when the loop is alive: it polled successfully within `max_poll_age`,
    /// or every slot is busy (a full worker does not poll). `Err(reason)` otherwise.
    pub fn health(&self, max_poll_age: Duration) -> Result<String, String> {
        if self.stopped.load(Ordering::Relaxed) {
            return Err("the worker loop has stopped".to_owned());
        }
        let in_flight = self.jobs_in_flight();
        let (age, ever) = self.since_last_poll();
        if age <= max_poll_age {
            return Ok(if ever {
                format!("last successful poll {}s ago", age.as_secs())
            } else {
                "starting".to_owned()
            });
        }
        if in_flight >= self.concurrency.load(Ordering::Relaxed) {
            return Ok(format!("all {in_flight} slots busy; not polling"));
        }
        let error = self
            .last_poll_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let when = if ever {
            format!("no successful PollForJobs for {}s", age.as_secs())
        } else {
            format!(
                "no successful PollForJobs since start {}s ago",
                age.as_secs()
            )
        };
        Err(match error {
            Some(error) => format!("{when}; last error: {error}"),
            None => when,
        })
    }
}

/// Keeps a job counted in `jobs_in_flight` while alive.
#[derive(Debug)]
pub struct InFlight<'a> {
    metrics: &'a Metrics,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
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
        metrics.job_api_throttled("PollForJobs");
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
            metrics.health(Duration::from_secs(60)),
            Ok("starting".into())
        );
        metrics.poll_failed("ThrottlingException: Rate exceeded");
        let reason = metrics.health(Duration::ZERO).unwrap_err();
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
