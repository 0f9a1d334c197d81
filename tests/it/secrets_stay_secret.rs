//! No secret — registry password, registry token, S3 secret key, S3 session token — appears in
//! any log line at the most verbose level, in either log format, or in any result message.

use pipeline_publisher::demo::{DEMO_PASSWORD, FIRMWARE_EXAMPLE, LocalEnvironment};
use pipeline_publisher::pipeline::properties;
use pipeline_publisher::publish::PublisherSettings;
use pipeline_publisher::sandbox::JobResult;
use pipeline_publisher::telemetry::{self, LogFormat};

use crate::trace_capture::{CapturedLogs, assert_no_secret, run_alone};

/// Runs a successful job and a failing one with every log line captured; returns the logs, the
/// result messages and every secret that was in play.
async fn run_jobs_capturing(format: LogFormat) -> (String, Vec<String>, Vec<String>) {
    let logs = CapturedLogs::default();
    let writer = logs.clone();
    let subscriber = telemetry::subscriber(format, "trace", move || writer.clone(), false).unwrap();
    // A current-thread runtime keeps every task on this thread, under this default subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);

    let environment = LocalEnvironment::start().await.unwrap();
    let artifact = environment
        .upload_artifact("BuildOutput", Some("0123456789abcdef"), FIRMWARE_EXAMPLE)
        .unwrap();
    let good = environment.queue_job(
        "nestbox-firmware",
        environment.firmware_configuration(),
        vec![artifact.clone()],
    );
    // A failure whose message could tempt an implementation to echo the configuration.
    let mut failing = environment.firmware_configuration();
    failing.insert(properties::TARGET_PATH.to_owned(), "{Nope}".to_owned());
    let bad = environment.queue_job("nestbox-firmware", failing, vec![artifact]);

    let publisher = environment.publisher(PublisherSettings::default()).unwrap();
    let report = environment.run_worker(publisher, 2).await.unwrap();
    assert_eq!((report.succeeded, report.failed), (1, 1));

    let mut secrets = vec![DEMO_PASSWORD.to_owned()];
    secrets.extend(environment.registry.registry.issued_token_values());
    let mut messages = Vec::new();
    for job_id in [&good, &bad] {
        let record = environment.sandbox.sandbox.job(job_id).unwrap();
        let (_, secret_key, session_token) = record.credentials.clone();
        secrets.push(secret_key);
        secrets.push(session_token);
        for result in record.results {
            messages.push(match result {
                JobResult::Success { summary, .. } => summary.unwrap_or_default(),
                JobResult::Failure { message, .. } => message,
            });
        }
    }
    assert_eq!(secrets.len(), 6, "password, one token, two job credentials");
    (logs.text(), messages, secrets)
}

/// Set in the child process that does the capture.
const CAPTURE_CHILD: &str = "PIPELINE_PUBLISHER_SECRETS_CAPTURE_CHILD";

#[test]
fn trace_level_logs_and_result_messages_hold_no_secret() {
    run_alone(
        "secrets_stay_secret::trace_level_logs_and_result_messages_hold_no_secret",
        CAPTURE_CHILD,
        capture_and_check,
    );
}

// One capture for both formats, so two captures never run side by side.
async fn capture_and_check() {
    let (logs, messages, secrets) = run_jobs_capturing(LogFormat::Text).await;
    assert!(
        logs.contains("job acknowledged"),
        "the capture saw the worker's logs"
    );
    assert!(logs.contains("TRACE"), "the capture ran at trace level");
    assert_no_secret(&logs, &secrets, "the text logs");
    for message in &messages {
        assert_no_secret(message, &secrets, "a result message");
    }

    let (logs, _, secrets) = run_jobs_capturing(LogFormat::Json).await;
    assert!(logs.contains("\"job_id\""), "JSON lines carry the job span");
    assert_no_secret(&logs, &secrets, "the JSON logs");
}
