//! What a Prometheus scrape of `worker --metrics-listen` returns, as a snapshot: every series
//! with its help text, type and labels, after a fixed set of events, so a change of name, type
//! or label (or a series gone missing) shows up as a diff.

use std::sync::Arc;
use std::time::Duration;

use crate::support;

use pipeline_publisher::health::{self, HealthState};
use pipeline_publisher::metrics::{JobApiOperation, Metrics, WakeOutcome};
use pipeline_publisher::pipeline::FailureType;

/// A worker's counters after a busy stretch: successes, failures of three types, a lost claim,
/// an undelivered result, uploads, job-API errors and throttling, registry retries, two
/// sources (one failing) and wake-up messages. No poll has
/// succeeded, so the timestamp gauge is 0 rather than the wall clock.
fn busy_worker_metrics() -> Metrics {
    let metrics = Metrics::new();
    for _ in 0..6 {
        metrics.job_claimed();
    }
    metrics.job_succeeded(Duration::from_millis(200));
    metrics.job_succeeded(Duration::from_secs(45));
    metrics.job_failed(FailureType::PermissionError, Duration::from_secs(3));
    metrics.job_failed(FailureType::ConfigurationError, Duration::from_millis(700));
    metrics.job_failed(FailureType::SystemUnavailable, Duration::from_secs(4000));
    metrics.lost_claim();
    metrics.result_undelivered();
    metrics.file_published(2048);
    metrics.file_published(1_000_000);
    metrics.file_published(0);
    metrics.job_api_error(JobApiOperation::GetJobDetails);
    metrics.job_api_throttled(JobApiOperation::PollForJobs);
    metrics.job_api_throttled(JobApiOperation::PollForJobs);
    metrics.job_api_throttled(JobApiOperation::PutJobSuccessResult);
    for _ in 0..3 {
        metrics.registry_retry();
    }
    // Two sources: the worker's own region, and a member account whose role cannot be assumed.
    let own = metrics.add_source("eu-west-1");
    let member = metrics.add_source("222233334444/us-east-1");
    metrics.source_poll_succeeded(own);
    metrics.source_job_finished(own);
    metrics.source_poll_failed(member, "no credentials for the job API", true);
    metrics.wake_message(WakeOutcome::Woke);
    metrics.wake_message(WakeOutcome::NotCodePipeline);
    metrics.wake_queue_failed();
    metrics
}

#[tokio::test]
async fn a_scrape_of_metrics_lists_every_series_with_its_help_type_and_labels() {
    let metrics = Arc::new(busy_worker_metrics());
    let _one_job_running = metrics.in_flight();
    let address = health::spawn(
        "127.0.0.1:0".parse().unwrap(),
        HealthState {
            metrics: metrics.clone(),
            max_poll_age: Duration::from_secs(60),
        },
    )
    .await
    .unwrap();

    let response = reqwest::get(format!("http://{address}/metrics"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let body = response.text().await.unwrap();
    support::assert_snapshot("metrics_exposition", &body);
}
