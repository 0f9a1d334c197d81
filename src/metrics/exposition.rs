//! Which series the worker exposes (name, help text, type) and their text exposition.
//!
//! The text is prometheus-client's Prometheus format 0.0.4 encoder, not its OpenMetrics one:
//! 0.0.4 names a counter's family with its `_total` suffix (`# TYPE x_total counter`), writes
//! histogram bounds as Go does (`le="5"`), and has no `# EOF` trailer — exactly what this
//! endpoint has always served, so scrapes, recording rules and dashboards see no change.

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::Metrics;
use super::labels::CounterFamily;
use super::liveness::Liveness;
use super::sources::SourceSeries;

/// The `Content-Type` of [`Metrics::render`]'s text, which Prometheus parses as the classic
/// text format.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Every series name starts with this (and `_`).
const PREFIX: &str = "pipeline_publisher";

/// Upper bounds (seconds) of the job-duration histogram: small files take a second, firmware
/// images minutes; anything past an hour is an outlier worth seeing in `+Inf`.
const DURATION_BUCKETS: [f64; 12] = [
    0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// A fresh [`Metrics`] with every series registered, in the order they are exposed.
///
/// Counters are registered without `_total` (the encoder appends it), and help texts without
/// their final full stop (the registry appends one).
pub(super) fn registered() -> Metrics {
    let mut metrics = Metrics {
        registry: Registry::with_prefix(PREFIX),
        jobs_claimed: Counter::default(),
        jobs_succeeded: Counter::default(),
        jobs_failed: CounterFamily::new(),
        lost_claims: Counter::default(),
        results_undelivered: Counter::default(),
        in_flight: Gauge::default(),
        published_files: Counter::default(),
        published_bytes: Counter::default(),
        job_duration: Histogram::new(DURATION_BUCKETS),
        job_api_errors: CounterFamily::new(),
        job_api_throttles: CounterFamily::new(),
        registry_retries: Counter::default(),
        last_poll_ok_unix: Gauge::default(),
        liveness: Liveness::new(),
        sources: SourceSeries::new(),
        wake_messages: CounterFamily::new(),
        wake_queue_up: Gauge::default(),
        wake_queue_failures: Counter::default(),
    };
    let registry = &mut metrics.registry;
    registry.register(
        "jobs_claimed",
        "Jobs acknowledged by this worker (AcknowledgeJob answered InProgress)",
        metrics.jobs_claimed.clone(),
    );
    registry.register(
        "jobs_succeeded",
        "Jobs ended with an accepted PutJobSuccessResult",
        metrics.jobs_succeeded.clone(),
    );
    registry.register(
        "jobs_failed",
        "Jobs ended with an accepted PutJobFailureResult, by failure type",
        metrics.jobs_failed.clone(),
    );
    registry.register(
        "jobs_lost_claims",
        "Polled jobs another worker acknowledged first (dropped without a result, as required)",
        metrics.lost_claims.clone(),
    );
    registry.register(
        "job_results_undelivered",
        "Jobs whose acknowledgement or result call could not be made",
        metrics.results_undelivered.clone(),
    );
    registry.register(
        "jobs_in_flight",
        "Jobs being worked on now; the Auto Scaling metric (average per instance)",
        metrics.in_flight.clone(),
    );
    registry.register(
        "published_files",
        "Files that landed in a registry (uploaded or checksum-deployed)",
        metrics.published_files.clone(),
    );
    registry.register(
        "published_bytes",
        "Bytes of the files that landed in a registry",
        metrics.published_bytes.clone(),
    );
    registry.register(
        "job_duration_seconds",
        "Time from AcknowledgeJob to the job's result, for jobs that ended with a result",
        metrics.job_duration.clone(),
    );
    registry.register(
        "job_api_errors",
        "CodePipeline job-API calls that failed (not counting throttling), by operation",
        metrics.job_api_errors.clone(),
    );
    registry.register(
        "job_api_throttles",
        "CodePipeline job-API calls answered with throttling, by operation",
        metrics.job_api_throttles.clone(),
    );
    registry.register(
        "registry_retries",
        "Registry requests retried after a transient failure",
        metrics.registry_retries.clone(),
    );
    registry.register(
        "last_successful_poll_timestamp_seconds",
        "Unix time of the last successful PollForJobs (0: none yet)",
        metrics.last_poll_ok_unix.clone(),
    );
    registry.register(
        "source_up",
        "1 while the source's last poll did not fail (throttling aside), 0 when it did (e.g. its role could not be assumed), by source",
        metrics.sources.up.clone(),
    );
    registry.register(
        "source_polls",
        "PollForJobs calls made, by source",
        metrics.sources.polls.clone(),
    );
    registry.register(
        "source_poll_errors",
        "PollForJobs calls that failed (throttling included), by source",
        metrics.sources.poll_errors.clone(),
    );
    registry.register(
        "source_jobs",
        "Jobs ended with an accepted result, by source",
        metrics.sources.jobs.clone(),
    );
    registry.register(
        "wake_messages",
        "Wake-up queue messages handled and deleted, by outcome",
        metrics.wake_messages.clone(),
    );
    registry.register(
        "wake_queue_up",
        "1 while the wake-up queue is received from, 0 without one or while it fails (the worker then polls at the normal pace)",
        metrics.wake_queue_up.clone(),
    );
    registry.register(
        "wake_queue_failures",
        "Receives from the wake-up queue that failed",
        metrics.wake_queue_failures.clone(),
    );
    metrics
}

impl Metrics {
    /// The Prometheus text exposition (format 0.0.4, [`CONTENT_TYPE`]) of every series.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Cannot fail: writing to a `String` never does, and the encoder's other errors come
        // from metrics' own encodings, which here only write label values and numbers to it.
        prometheus_text::encode(&mut text, &self.registry)
            .expect("encoding the metrics into a String cannot fail");
        text
    }
}
