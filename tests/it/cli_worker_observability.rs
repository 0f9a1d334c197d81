//! What an operator sees of a running `pipeline-publisher worker`: the per-job summary line,
//! the idle heartbeat (and nothing else at info while idle), `/metrics` and `/healthz`.

use crate::support;

use std::time::Duration;

use pipeline_publisher::demo::{FIRMWARE_EXAMPLE, LocalEnvironment};
use pipeline_publisher::sandbox::{JobResult, SandboxConfig};
use serde_json::Value;
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

/// Log lines of the worker, parsed, until one matches `wanted` (at most 60 s).
async fn next_line_where(
    lines: &mut mpsc::UnboundedReceiver<Value>,
    seen: &mut Vec<Value>,
    wanted: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let line = tokio::time::timeout_at(deadline, lines.recv())
            .await
            .unwrap_or_else(|_| panic!("no such log line within 60 s; saw {seen:#?}"))
            .unwrap_or_else(|| panic!("the worker exited; saw {seen:#?}"));
        seen.push(line.clone());
        if wanted(&line) {
            return line;
        }
    }
}

fn message(line: &Value) -> &str {
    line["message"].as_str().unwrap_or("")
}

#[tokio::test]
async fn the_worker_logs_a_summary_per_job_a_heartbeat_when_idle_and_serves_metrics() {
    let environment = LocalEnvironment::start().await.unwrap();
    let artifact = environment
        .upload_artifact("BuildOutput", Some("0123456789abcdef"), FIRMWARE_EXAMPLE)
        .unwrap();
    let job_id = environment.queue_job(
        "nestbox-firmware",
        environment.firmware_configuration(),
        vec![artifact],
    );

    let home = tempfile::tempdir().unwrap();
    let (access_key_id, secret) = environment.sandbox.sandbox.worker_credentials();
    let region = SandboxConfig::default().region;
    let env = [
        ("AWS_REGION", region.as_str()),
        ("AWS_ACCESS_KEY_ID", access_key_id.as_str()),
        ("AWS_SECRET_ACCESS_KEY", secret.as_str()),
        (
            "AWS_ENDPOINT_URL",
            environment.sandbox.endpoint_url.as_str(),
        ),
    ];
    let mut worker = support::command(home.path(), &env);
    worker
        .args(["--log-format", "json", "worker", "--s3-force-path-style"])
        .args(["--poll-min-interval", "20ms", "--poll-max-interval", "50ms"])
        .args([
            "--heartbeat-interval",
            "300ms",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .stderr(std::process::Stdio::piped());
    let mut child = worker.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (sender, mut lines) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut reader = tokio::io::BufReader::new(stderr).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            let parsed = serde_json::from_str(&line)
                .unwrap_or_else(|_| Value::String(format!("not JSON: {line}")));
            if sender.send(parsed).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();

    let listening = next_line_where(&mut lines, &mut seen, |line| {
        message(line) == "serving /metrics and /healthz"
    })
    .await;
    let address = listening["bound"].as_str().unwrap().to_owned();

    let summary = next_line_where(&mut lines, &mut seen, |line| {
        message(line) == "job succeeded"
    })
    .await;
    assert_eq!(summary["level"], "INFO");
    assert_eq!(summary["result"], "Succeeded");
    assert_eq!(summary["files"], 3);
    assert_eq!(
        summary["bytes"],
        FIRMWARE_EXAMPLE
            .iter()
            .map(|(_, bytes)| bytes.len())
            .sum::<usize>()
    );
    assert!(summary["duration_ms"].is_u64());
    assert_eq!(summary["span"]["job_id"], job_id.as_str());
    assert_eq!(summary["span"]["pipeline"], "nestbox-firmware");
    assert!(matches!(
        environment
            .sandbox
            .sandbox
            .job(&job_id)
            .unwrap()
            .results
            .as_slice(),
        [JobResult::Success { .. }]
    ));

    // Idle now: nothing at info but heartbeats, until one counts the finished job.
    let after_job = seen.len();
    next_line_where(&mut lines, &mut seen, |line| {
        message(line) == "idle; polling for jobs" && line["jobs_succeeded"] == 1
    })
    .await;
    let idle_info: Vec<&str> = seen[after_job..]
        .iter()
        .filter(|line| line["level"] == "INFO")
        .map(message)
        .collect();
    assert!(
        idle_info
            .iter()
            .all(|text| *text == "idle; polling for jobs"),
        "{idle_info:?}"
    );

    let http = reqwest::Client::new();
    let health = http
        .get(format!("http://{address}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert!(
        health
            .text()
            .await
            .unwrap()
            .starts_with("ok: last successful poll")
    );
    let metrics = http
        .get(format!("http://{address}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for expected in [
        "pipeline_publisher_jobs_claimed_total 1",
        "pipeline_publisher_jobs_succeeded_total 1",
        "pipeline_publisher_jobs_failed_total{failure_type=\"ConfigurationError\"} 0",
        "pipeline_publisher_jobs_in_flight 0",
        "pipeline_publisher_published_files_total 3",
        "pipeline_publisher_job_duration_seconds_count 1",
        "pipeline_publisher_job_api_errors_total{operation=\"PollForJobs\"} 0",
    ] {
        assert!(
            metrics.lines().any(|line| line == expected),
            "missing {expected}:\n{metrics}"
        );
    }

    // The job API throttles: a warning per failed poll (the 503 of /healthz after
    // --health-max-poll-age is covered by the unit tests of `metrics`).
    environment.sandbox.sandbox.throttle_next(u32::MAX);
    let throttled = next_line_where(&mut lines, &mut seen, |line| {
        message(line).contains("PollForJobs failed")
    })
    .await;
    assert_eq!(throttled["level"], "WARN");
    child.start_kill().unwrap();
    let _ = child.wait().await;
}
