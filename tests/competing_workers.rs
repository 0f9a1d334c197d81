//! Four worker processes compete for 200 queued jobs on one job-API stand-in whose
//! acknowledgement window is short enough that jobs are handed to several workers at once.
//! Every job must be acknowledged by exactly one worker and end with exactly one result; the
//! losers of each race must stay silent. Then SIGTERM stops every worker cleanly.

use std::time::Duration;

use pipeline_publisher::demo::{DEMO_PASSWORD, DEMO_REPO, DEMO_USER, zip_entries};
use pipeline_publisher::mock_registry::{MockRegistry, MockRegistryConfig};
use pipeline_publisher::pipeline::properties;
use pipeline_publisher::sandbox::{
    ArtifactSpec, CallOutcome, JobResult, JobSpec, RecordedCall, Sandbox, SandboxConfig,
};

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
        let key = format!("nestbox-firmware/BuildOutput/{index:05}");
        let archive = zip_entries(&[("image.img", body.as_bytes())]).unwrap();
        sandbox
            .sandbox
            .put_object(&config.artifact_bucket, &key, &archive)
            .unwrap();
        let mut spec = JobSpec::new("nestbox-firmware");
        spec.input_artifacts = vec![ArtifactSpec {
            name: "BuildOutput".into(),
            revision: Some(format!("{index:040x}")),
            bucket: config.artifact_bucket.clone(),
            key,
        }];
        spec.configuration = [
            (properties::ARTIFACTORY_HOST, registry.base_url.clone()),
            (properties::REPO_KEY, DEMO_REPO.to_owned()),
            (properties::USER_NAME, DEMO_USER.to_owned()),
            (properties::PASSWORD, DEMO_PASSWORD.to_owned()),
            (properties::TARGET_PATH, format!("race/{index:05}")),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect();
        job_ids.push(sandbox.sandbox.queue_job(spec));
    }

    let (access_key_id, secret_access_key) = sandbox.sandbox.worker_credentials();
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("config"), "").unwrap();
    std::fs::write(home.path().join("credentials"), "").unwrap();
    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_pipeline-publisher"));
        command
            .args(["worker", "--s3-force-path-style", "--concurrency", "4"])
            .args([
                "--poll-min-interval",
                "20ms",
                "--poll-max-interval",
                "100ms",
            ])
            .arg("--state-dir")
            .arg(home.path().join(format!("state-{worker}")))
            .env_clear()
            .env("HOME", home.path())
            .env("AWS_CONFIG_FILE", home.path().join("config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                home.path().join("credentials"),
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_REGION", &config.region)
            .env("AWS_ACCESS_KEY_ID", &access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &secret_access_key)
            .env("AWS_ENDPOINT_URL", &sandbox.endpoint_url)
            .env("PIPELINE_PUBLISHER_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
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
