//! One worker process serving several sources (accounts and regions), through the real loop,
//! the real SDK clients and the sandbox's STS, job API and SQS: two accounts in two regions,
//! a member account whose role cannot be assumed, the wake-up queue (a queued job, junk, an
//! outage) and malformed sources.

use std::process::Stdio;
use std::time::Duration;

use crate::support;

use pipeline_publisher::demo::{DEMO_PASSWORD, DEMO_USER};
use pipeline_publisher::mock_registry::{MockRegistry, MockRegistryConfig, RunningMockRegistry};
use pipeline_publisher::sandbox::{
    CallOutcome, JobResult, JobSpec, RecordedCall, RunningSandbox, Sandbox, SandboxConfig, SqsFault,
};

const MEMBER: &str = "222233334444";
const MEMBER_REGION: &str = "us-east-1";
const EXTERNAL_ID: &str = "fleet-7f3a";

struct Fleet {
    sandbox: RunningSandbox,
    registry: RunningMockRegistry,
    role: String,
    home: tempfile::TempDir,
}

async fn fleet() -> Fleet {
    let sandbox = Sandbox::start(SandboxConfig {
        extra_regions: vec![MEMBER_REGION.to_owned()],
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let role =
        sandbox
            .sandbox
            .add_member_account(MEMBER, "pipeline-publisher-poller", Some(EXTERNAL_ID));
    let registry = MockRegistry::start(MockRegistryConfig {
        users: vec![(DEMO_USER.to_owned(), DEMO_PASSWORD.to_owned())],
        ..MockRegistryConfig::default()
    })
    .await
    .unwrap();
    Fleet {
        sandbox,
        registry,
        role,
        home: support::aws_home(),
    }
}

impl Fleet {
    fn sandbox(&self) -> &Sandbox {
        &self.sandbox.sandbox
    }

    /// A firmware job in `account`/`region` (the sandbox's own when `None`).
    fn queue(&self, name: &str, account: Option<&str>, region: Option<&str>) -> String {
        let mut spec: JobSpec = support::firmware_job(
            self.sandbox(),
            &format!("nestbox-firmware/BuildOutput/{name}"),
            &[("image.img", name.as_bytes())],
            &self.registry.base_url,
            Some(&format!("fleet/{name}")),
        );
        spec.account = account.map(str::to_owned);
        spec.region = region.map(str::to_owned);
        self.sandbox().queue_job(spec)
    }

    fn member_source(&self) -> String {
        format!(
            "region={MEMBER_REGION},role={},external-id={EXTERNAL_ID}",
            self.role
        )
    }

    fn worker(&self, name: &str) -> tokio::process::Command {
        let mut command = support::worker_command(
            self.sandbox(),
            self.home.path(),
            name,
            &[("AWS_ENDPOINT_URL", &self.sandbox.endpoint_url)],
        );
        command.kill_on_drop(true);
        command
    }

    fn poll_calls(&self, account: &str) -> usize {
        self.sandbox()
            .calls()
            .iter()
            .filter(|call| {
                matches!(call, RecordedCall::JobApi { operation, account: Some(caller), .. }
                    if operation == "PollForJobs" && caller == account)
            })
            .count()
    }

    fn assume_role_calls(&self) -> usize {
        self.sandbox()
            .calls()
            .iter()
            .filter(|call| matches!(call, RecordedCall::Sts { operation, .. } if operation == "AssumeRole"))
            .count()
    }

    async fn succeeded(&self, job_id: &str) {
        let result = self
            .sandbox()
            .wait_for_result(job_id, Duration::from_secs(60))
            .await;
        assert!(
            matches!(result, Some(JobResult::Success { .. })),
            "{job_id}: {result:?}"
        );
        assert_eq!(self.sandbox().job(job_id).unwrap().results.len(), 1);
    }
}

fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

async fn get(url: &str) -> (u16, String) {
    for _ in 0..100 {
        if let Ok(response) = reqwest::get(url).await {
            let status = response.status().as_u16();
            return (status, response.text().await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} never answered");
}

/// Waits (bounded) until `condition` holds.
async fn eventually(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    for _ in 0..300 {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting until {what}");
}

async fn stop(mut worker: tokio::process::Child) -> String {
    let pid = worker.id().expect("worker is running").to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let output = tokio::time::timeout(Duration::from_secs(30), async {
        let status = worker.wait().await.unwrap();
        let mut stderr = String::new();
        if let Some(mut pipe) = worker.stderr.take() {
            tokio::io::AsyncReadExt::read_to_string(&mut pipe, &mut stderr)
                .await
                .unwrap();
        }
        (status, stderr)
    })
    .await
    .expect("SIGTERM stops the worker");
    assert!(output.0.success(), "{}", output.1);
    output.1
}

#[tokio::test]
async fn a_member_role_is_assumed_once_for_many_jobs() {
    // STS rate-limits AssumeRole per account and every call lands in the member's CloudTrail:
    // the role's credentials are reused until they near expiry, not fetched per job.
    let fleet = fleet().await;
    let jobs: Vec<String> = (0..12)
        .map(|index| {
            fleet.queue(
                &format!("member-{index}"),
                Some(MEMBER),
                Some(MEMBER_REGION),
            )
        })
        .collect();
    let mut worker = fleet.worker("reuse");
    worker.args(["--source", &fleet.member_source()]).args([
        "--max-jobs",
        "12",
        "--concurrency",
        "4",
        "--poll-min-interval",
        "50ms",
    ]);
    let output = tokio::time::timeout(Duration::from_secs(120), worker.output())
        .await
        .expect("the worker exits after --max-jobs 12")
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for job in &jobs {
        fleet.succeeded(job).await;
    }
    assert_eq!(fleet.assume_role_calls(), 1);
}

#[tokio::test]
async fn one_worker_serves_two_accounts_in_two_regions() {
    let fleet = fleet().await;
    let own = fleet.queue("own", None, None);
    let member = fleet.queue("member", Some(MEMBER), Some(MEMBER_REGION));
    let mut worker = fleet.worker("two");
    worker
        .args(["--source", "region=eu-west-1"])
        .args(["--source", &fleet.member_source()])
        .args(["--max-jobs", "2", "--poll-min-interval", "50ms"]);
    let output = tokio::time::timeout(Duration::from_secs(90), worker.output())
        .await
        .expect("the worker exits after --max-jobs 2")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    fleet.succeeded(&own).await;
    fleet.succeeded(&member).await;
    // Each result went to the job API as the job's own account.
    for call in fleet.sandbox().calls() {
        if let RecordedCall::JobApi {
            operation,
            job_id: Some(job_id),
            account,
            region,
            ..
        } = call
            && operation.starts_with("PutJob")
        {
            let expected = if job_id == member {
                (MEMBER, MEMBER_REGION)
            } else {
                ("111122223333", "eu-west-1")
            };
            assert_eq!(
                (account.as_deref(), region.as_deref()),
                (Some(expected.0), Some(expected.1)),
                "{operation} {job_id}"
            );
        }
    }
    assert!(
        stderr.contains("source=222233334444/us-east-1"),
        "job log lines name their source:\n{stderr}"
    );
}

#[tokio::test]
async fn a_source_whose_role_cannot_be_assumed_is_unhealthy_the_others_work_and_it_is_retried() {
    let fleet = fleet().await;
    fleet.sandbox().fail_assume_role(&fleet.role, true);
    let address = free_address();
    let mut worker = fleet.worker("denied");
    worker
        .args(["--source", "region=eu-west-1"])
        .args(["--source", &fleet.member_source()])
        .args([
            "--poll-min-interval",
            "50ms",
            "--poll-max-interval",
            "200ms",
        ])
        .args(["--metrics-listen", &address]);
    let child = worker.spawn().unwrap();

    let own = fleet.queue("own-while-denied", None, None);
    fleet.succeeded(&own).await;
    let started = std::time::Instant::now();
    eventually("AssumeRole was tried twice", async || {
        fleet.assume_role_calls() >= 2
    })
    .await;
    let (status, health) = get(&format!("http://{address}/healthz")).await;
    assert_eq!(status, 200, "{health}");
    assert!(health.contains("source eu-west-1: ok"), "{health}");
    assert!(
        health.contains("source 222233334444/us-east-1: unhealthy"),
        "{health}"
    );
    let (_, metrics) = get(&format!("http://{address}/metrics")).await;
    assert!(
        metrics
            .lines()
            .any(|l| l == "pipeline_publisher_source_up{source=\"222233334444/us-east-1\"} 0"),
        "{metrics}"
    );
    // Backed off: the own source polls every 50–200 ms, the denied one far less often.
    let own_polls = fleet.poll_calls("111122223333");
    let tries = fleet.assume_role_calls();
    assert!(
        tries * 3 < own_polls,
        "{tries} AssumeRole tries vs {own_polls} polls in {:?}",
        started.elapsed()
    );

    // The role is fixed: the next retry works and the member's job is done.
    fleet.sandbox().fail_assume_role(&fleet.role, false);
    let member = fleet.queue("member-after-fix", Some(MEMBER), Some(MEMBER_REGION));
    fleet.succeeded(&member).await;
    eventually("the member source is healthy again", async || {
        let (_, health) = get(&format!("http://{address}/healthz")).await;
        health.contains("source 222233334444/us-east-1: ok")
    })
    .await;

    // The member account deletes the action type: that source is unhealthy, the other is not.
    fleet.sandbox().set_action_type_missing(
        MEMBER,
        MEMBER_REGION,
        &pipeline_publisher::sandbox::ActionTypeId::default(),
        true,
    );
    eventually("the missing action type shows in /healthz", async || {
        let (status, health) = get(&format!("http://{address}/healthz")).await;
        status == 200
            && health.contains("source eu-west-1: ok")
            && health.lines().any(|line| {
                line.starts_with("source 222233334444/us-east-1: unhealthy")
                    && line.contains("ActionTypeNotFound")
            })
    })
    .await;
    stop(child).await;
}

#[tokio::test]
async fn a_wake_up_message_gets_a_job_polled_at_once_and_junk_is_deleted_and_counted() {
    let fleet = fleet().await;
    let queue = fleet.sandbox().create_queue("pipeline-publisher-wake");
    let address = free_address();
    let mut worker = fleet.worker("wake");
    // The idle pace is far longer than the test may take: only the wake-up can find the job.
    worker
        .args(["--source", "region=eu-west-1"])
        .args(["--source", &fleet.member_source()])
        .args(["--poll-min-interval", "5m", "--poll-max-interval", "10m"])
        .args(["--wake-queue", &queue, "--metrics-listen", &address]);
    let child = worker.spawn().unwrap();
    eventually("the worker polled both sources and listens", async || {
        fleet.poll_calls("111122223333") >= 1
            && fleet.poll_calls(MEMBER) >= 1
            && fleet.sandbox().sqs_receivers_waiting() >= 1
    })
    .await;
    let before = fleet.sandbox().calls().len();

    let member = fleet.queue("member-woken", Some(MEMBER), Some(MEMBER_REGION));
    fleet.succeeded(&member).await;
    // Between queueing and acknowledging: one poll, of the member source, and no other.
    let calls = fleet.sandbox().calls();
    let since: Vec<&RecordedCall> = calls[before..].iter().collect();
    let acknowledged = since
        .iter()
        .position(|call| {
            matches!(call, RecordedCall::JobApi { operation, job_id: Some(id), outcome: CallOutcome::Ok, .. }
                if operation == "AcknowledgeJob" && *id == member)
        })
        .expect("the job was acknowledged");
    let polls: Vec<Option<&str>> = since[..acknowledged]
        .iter()
        .filter_map(|call| match call {
            RecordedCall::JobApi {
                operation, account, ..
            } if operation == "PollForJobs" => Some(account.as_deref()),
            _ => None,
        })
        .collect();
    assert_eq!(polls, [Some(MEMBER)], "{since:#?}");

    fleet
        .sandbox()
        .send_message(&queue, "{\"hello\": \"not an event\"}");
    eventually("every message was deleted", async || {
        fleet.sandbox().queue_bodies(&queue).is_empty()
    })
    .await;
    let (_, metrics) = get(&format!("http://{address}/metrics")).await;
    for line in [
        "pipeline_publisher_wake_messages_total{outcome=\"Woke\"} 1",
        "pipeline_publisher_wake_messages_total{outcome=\"NotCodePipeline\"} 1",
        "pipeline_publisher_wake_queue_up 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line}:\n{metrics}");
    }
    stop(child).await;
}

#[tokio::test]
async fn an_sqs_outage_falls_back_to_polling_and_loses_no_job() {
    let fleet = fleet().await;
    let queue = fleet.sandbox().create_queue("pipeline-publisher-wake");
    let address = free_address();
    let mut worker = fleet.worker("outage");
    worker
        .args(["--poll-min-interval", "100ms"])
        .args(["--wake-queue", &queue, "--metrics-listen", &address])
        .stderr(Stdio::piped());
    let child = worker.spawn().unwrap();
    eventually("the worker listens on the queue", async || {
        fleet.sandbox().sqs_receivers_waiting() >= 1
    })
    .await;
    fleet.sandbox().fail_sqs(SqsFault::Unavailable, None);
    // The long poll in flight answers when a message arrives; the next receive fails.
    let first = fleet.queue("during-outage-1", None, None);
    fleet.succeeded(&first).await;
    eventually("the worker noticed the outage", async || {
        let (_, metrics) = get(&format!("http://{address}/metrics")).await;
        metrics
            .lines()
            .any(|l| l == "pipeline_publisher_wake_queue_up 0")
    })
    .await;
    // Polling alone now: a job queued during the outage is still picked up, once.
    let second = fleet.queue("during-outage-2", None, None);
    fleet.succeeded(&second).await;
    fleet.sandbox().clear_sqs_fault();
    eventually("the queue is used again", async || {
        let (_, metrics) = get(&format!("http://{address}/metrics")).await;
        metrics
            .lines()
            .any(|l| l == "pipeline_publisher_wake_queue_up 1")
    })
    .await;
    let third = fleet.queue("after-outage", None, None);
    fleet.succeeded(&third).await;
    let stderr = stop(child).await;
    assert!(
        stderr.contains("the wake-up queue failed; polling every source at the normal pace"),
        "{stderr}"
    );
}

#[tokio::test]
async fn malformed_sources_are_usage_errors_naming_the_entry_and_the_field() {
    let home = support::aws_home();
    let command = || {
        let mut command = support::command(home.path(), &[("AWS_REGION", "eu-west-1")]);
        command.args(["worker", "--max-jobs", "1"]);
        command
    };
    let output = support::run(command(), &["--source", "region=eu-west-1,versions=1+"]).await;
    let stderr = support::stderr(&output);
    assert_eq!(output.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains("region=eu-west-1,versions=1+") && stderr.contains("field `versions`"),
        "{stderr}"
    );

    let file = home.path().join("sources.json");
    std::fs::write(
        &file,
        r#"{"sources": [{"region": "eu-west-1"}, {"region": "us-east-1", "external-id": "x1"}]}"#,
    )
    .unwrap();
    let output = support::run(command(), &["--sources-file", file.to_str().unwrap()]).await;
    let stderr = support::stderr(&output);
    assert_eq!(output.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains("sources[1]") && stderr.contains("field `external-id`"),
        "{stderr}"
    );
}

#[tokio::test]
async fn check_walks_every_source_and_names_the_one_that_fails() {
    let fleet = fleet().await;
    let (key, secret) = fleet.sandbox().worker_credentials();
    let check = |extra: Vec<String>| {
        let command = support::command(
            fleet.home.path(),
            &[
                ("AWS_REGION", "eu-west-1"),
                ("AWS_ACCESS_KEY_ID", &key),
                ("AWS_SECRET_ACCESS_KEY", &secret),
                ("AWS_ENDPOINT_URL", &fleet.sandbox.endpoint_url),
            ],
        );
        let mut args = vec![
            "check".to_owned(),
            "--source".to_owned(),
            "region=eu-west-1".to_owned(),
            "--source".to_owned(),
            fleet.member_source(),
        ];
        args.extend(extra);
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            support::run(command, &args).await
        }
    };

    let output = check(Vec::new()).await;
    let text = support::stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    for line in [
        "✔ AWS identity: [eu-west-1] ",
        "✔ AWS identity: [222233334444/us-east-1] arn:aws:sts::222233334444:assumed-role/pipeline-publisher-poller/",
        "✔ action type: [222233334444/us-east-1] ",
    ] {
        assert!(text.lines().any(|l| l.starts_with(line)), "{line}:\n{text}");
    }

    fleet.sandbox().fail_assume_role(&fleet.role, true);
    let output = check(Vec::new()).await;
    let text = support::stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("✘ AWS identity: [222233334444/us-east-1] ")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("✔ AWS identity: [eu-west-1] ")),
        "the other source still passes:\n{text}"
    );

    fleet.sandbox().fail_assume_role(&fleet.role, false);
    fleet.sandbox().set_action_type_missing(
        MEMBER,
        MEMBER_REGION,
        &pipeline_publisher::sandbox::ActionTypeId::default(),
        true,
    );
    let output = check(Vec::new()).await;
    let text = support::stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("✘ action type: [222233334444/us-east-1] ")),
        "{text}"
    );
}
