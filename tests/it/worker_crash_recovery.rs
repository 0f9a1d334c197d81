//! The worker binary interrupted mid-job: `kill -9` then a restart (the journal makes the new
//! process finish the job), and SIGTERM (the drain timeout makes it report a failure before it
//! exits 0). A proxy in front of the mock registry holds the job mid-publish on demand.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::support;
use axum::extract::{Request, State};
use axum::response::Response;

use pipeline_publisher::demo::{DEMO_PASSWORD, DEMO_REPO, DEMO_USER};
use pipeline_publisher::mock_registry::{MockRegistry, MockRegistryConfig, RunningMockRegistry};
use pipeline_publisher::sandbox::{JobResult, RunningSandbox, Sandbox, SandboxConfig};
use tokio::sync::Notify;

/// Forwards to the registry, or holds every request forever while `stall` is set.
struct StallingProxy {
    upstream: String,
    stall: AtomicBool,
    stalled: Notify,
    client: reqwest::Client,
}

async fn forward(State(proxy): State<Arc<StallingProxy>>, request: Request) -> Response {
    if proxy.stall.load(Ordering::SeqCst) {
        proxy.stalled.notify_one();
        std::future::pending::<()>().await;
    }
    support::forward(&proxy.client, &proxy.upstream, request).await
}

struct Setup {
    sandbox: RunningSandbox,
    registry: RunningMockRegistry,
    proxy: Arc<StallingProxy>,
    job_id: String,
    home: tempfile::TempDir,
}

async fn setup() -> Setup {
    let config = SandboxConfig::default();
    let sandbox = Sandbox::start(config.clone()).await.unwrap();
    let registry = MockRegistry::start(MockRegistryConfig {
        users: vec![(DEMO_USER.to_owned(), DEMO_PASSWORD.to_owned())],
        ..MockRegistryConfig::default()
    })
    .await
    .unwrap();
    let proxy = Arc::new(StallingProxy {
        upstream: registry.base_url.clone(),
        stall: AtomicBool::new(true),
        stalled: Notify::new(),
        client: reqwest::Client::new(),
    });
    let proxy_url = support::serve(
        axum::Router::new()
            .fallback(forward)
            .with_state(proxy.clone()),
    )
    .await;

    let job_id = sandbox.sandbox.queue_job(support::firmware_job(
        &sandbox.sandbox,
        "nestbox-firmware/BuildOutput/Crash01",
        support::FIRMWARE,
        &proxy_url,
        None,
    ));
    Setup {
        sandbox,
        registry,
        proxy,
        job_id,
        home: support::aws_home(),
    }
}

fn worker(setup: &Setup, extra_args: &[&str]) -> tokio::process::Child {
    support::worker_command(
        &setup.sandbox.sandbox,
        setup.home.path(),
        "recovering",
        &[("AWS_ENDPOINT_URL", &setup.sandbox.endpoint_url)],
    )
    .args(["--poll-min-interval", "50ms"])
    .args(extra_args)
    .spawn()
    .unwrap()
}

fn journaled_jobs(home: &Path) -> usize {
    std::fs::read_dir(home.join("state-recovering/jobs")).map_or(0, |dir| dir.count())
}

async fn wait_until_stalled(setup: &Setup) {
    tokio::time::timeout(Duration::from_secs(30), setup.proxy.stalled.notified())
        .await
        .expect("the job reached the registry");
}

#[tokio::test]
async fn a_job_killed_mid_publish_is_finished_by_the_next_worker_process() {
    let setup = setup().await;
    let mut first = worker(&setup, &[]);
    wait_until_stalled(&setup).await;
    assert_eq!(
        journaled_jobs(setup.home.path()),
        1,
        "the acknowledged job is journaled"
    );

    first.start_kill().unwrap();
    first.wait().await.unwrap();
    let record = setup.sandbox.sandbox.job(&setup.job_id).unwrap();
    assert!(record.results.is_empty(), "killed before it could answer");
    assert_eq!(record.acknowledgements, 1);

    setup.proxy.stall.store(false, Ordering::SeqCst);
    let second = worker(&setup, &["--max-jobs", "1"]);
    let output = tokio::time::timeout(Duration::from_secs(60), second.wait_with_output())
        .await
        .expect("the restarted worker ends the journaled job and exits")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("resuming"), "{stderr}");

    let record = setup.sandbox.sandbox.job(&setup.job_id).unwrap();
    assert!(
        matches!(record.results.as_slice(), [JobResult::Success { .. }]),
        "{:?}",
        record.results
    );
    assert_eq!(
        record.acknowledgements, 1,
        "recovery does not claim the job again"
    );
    assert_eq!(setup.registry.registry.artifacts(DEMO_REPO).len(), 3);
    assert_eq!(
        journaled_jobs(setup.home.path()),
        0,
        "the journal is empty again"
    );
}

#[tokio::test]
async fn sigterm_mid_job_reports_a_failure_after_the_drain_timeout_and_exits_zero() {
    let setup = setup().await;
    let running = worker(&setup, &["--drain-timeout", "1s"]);
    wait_until_stalled(&setup).await;
    let pid = running.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let output = tokio::time::timeout(Duration::from_secs(30), running.wait_with_output())
        .await
        .expect("the worker exits after draining")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");

    let record = setup.sandbox.sandbox.job(&setup.job_id).unwrap();
    let [
        JobResult::Failure {
            failure_type,
            message,
            ..
        },
    ] = record.results.as_slice()
    else {
        panic!("one failure result: {:?}", record.results);
    };
    assert_eq!(failure_type, "JobFailed");
    assert!(message.contains("drain timeout"), "{message}");
    assert_eq!(journaled_jobs(setup.home.path()), 0);
}
