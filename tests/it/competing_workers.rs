//! Four worker processes compete for 200 queued jobs on one job-API stand-in whose
//! acknowledgement window is short enough that jobs are handed to several workers at once.
//! Every job must be acknowledged by exactly one worker and end with exactly one result; the
//! losers of each race must stay silent. Then SIGTERM stops every worker cleanly.

use std::time::Duration;

use crate::support;

use pipeline_publisher::demo::{DEMO_PASSWORD, DEMO_REPO, DEMO_USER};
use pipeline_publisher::mock_registry::{MockRegistry, MockRegistryConfig};
use pipeline_publisher::sandbox::{CallOutcome, JobResult, RecordedCall, Sandbox, SandboxConfig};

const WORKERS: usize = 4;
const JOBS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn competing_workers_end_every_job_exactly_once() {
    let config = SandboxConfig {
        // Re-offer a dispatched job after 20 ms without an acknowledgement, so polls race.
        ack_timeout: Duration::from_millis(20),
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::start(config.clone()).await.unwrap();
    let registry = MockRegistry::start(MockRegistryConfig {
        users: vec![(DEMO_USER.to_owned(), DEMO_PASSWORD.to_owned())],
        ..MockRegistryConfig::default()
    })
    .await
    .unwrap();

    let mut job_ids = Vec::with_capacity(JOBS);
    for index in 0..JOBS {
        let body = format!("firmware build {index}\n");
        let target_path = format!("race/{index:05}");
        job_ids.push(sandbox.sandbox.queue_job(support::firmware_job(
            &sandbox.sandbox,
            &format!("nestbox-firmware/BuildOutput/{index:05}"),
            &[("image.img", body.as_bytes())],
            &registry.base_url,
            Some(&target_path),
        )));
    }

    let home = support::aws_home();
    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let mut command = support::worker_command(
            &sandbox.sandbox,
            home.path(),
            &worker.to_string(),
            &[("AWS_ENDPOINT_URL", &sandbox.endpoint_url)],
        );
        command
            .args(["--concurrency", "4", "--poll-min-interval", "20ms"])
            .args(["--poll-max-interval", "100ms"])
            .env("PIPELINE_PUBLISHER_LOG", "warn");
        workers.push(command.spawn().unwrap());
    }

    let idle = sandbox
        .sandbox
        .wait_until_idle(Duration::from_secs(180))
        .await;
    for worker in &workers {
        let pid = worker.id().expect("worker is running").to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(status.success());
    }
    let mut stderr_of_failures = String::new();
    for worker in workers {
        let output = tokio::time::timeout(Duration::from_secs(30), worker.wait_with_output())
            .await
            .expect("SIGTERM stops an idle worker promptly")
            .unwrap();
        if !output.status.success() {
            stderr_of_failures.push_str(&String::from_utf8_lossy(&output.stderr));
        }
    }
    assert!(
        stderr_of_failures.is_empty(),
        "a worker exited non-zero:\n{stderr_of_failures}"
    );
    assert!(idle, "all {JOBS} jobs ended within the time limit");

    let mut successes = 0;
    for job_id in &job_ids {
        let record = sandbox.sandbox.job(job_id).unwrap();
        assert_eq!(record.acknowledgements, 1, "job {job_id} acknowledged once");
        assert_eq!(
            record.results.len(),
            1,
            "job {job_id}: {:?}",
            record.results
        );
        assert!(
            record.rejected_results.is_empty(),
            "job {job_id}: {:?}",
            record.rejected_results
        );
        if matches!(record.results[0], JobResult::Success { .. }) {
            successes += 1;
        }
    }
    assert_eq!(successes, JOBS);
    assert_eq!(registry.registry.artifacts(DEMO_REPO).len(), JOBS);

    let calls = sandbox.sandbox.calls();
    let count = |operation: &str, ok: bool| {
        calls
            .iter()
            .filter(|call| {
                matches!(call, RecordedCall::JobApi { operation: op, outcome, .. }
                    if op == operation && matches!(outcome, CallOutcome::Ok) == ok)
            })
            .count()
    };
    let lost_races = count("AcknowledgeJob", false);
    println!(
        "competing workers: {WORKERS} processes, {JOBS} jobs, {} polls, {} acknowledgements accepted, \
         {lost_races} lost claims dropped silently, {} results, 0 lost, 0 doubled",
        count("PollForJobs", true),
        count("AcknowledgeJob", true),
        count("PutJobSuccessResult", true) + count("PutJobFailureResult", true),
    );
}
