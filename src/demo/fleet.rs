//! The demo's fleet part: one worker serving two accounts — its own and a member account
//! reached through STS `AssumeRole` with an external id — idle, long-polling its wake-up
//! queue. A job queued in either account is picked up as soon as its "Action Execution State
//! Change" event arrives, not at the next poll: idle polling is slowed to 30–60 s here, so a
//! quick pickup can only come from the wake-up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::{FIRMWARE_EXAMPLE, LocalEnvironment};
use crate::pipeline::ActionTypeId;
use crate::pipeline::aws::AwsJobApi;
use crate::pipeline::sources::{SourceAccess, source_config};
use crate::pipeline::wake::SqsWakeQueue;
use crate::publish::PublisherSettings;
use crate::sandbox::{JobResult, JobSpec};
use crate::worker::wake::{SourceAddress, SourceMatcher};
use crate::worker::{self, WorkerSettings};

/// The member account the demo's second pipeline lives in.
pub const MEMBER_ACCOUNT: &str = "222233334444";
/// The role member-account.yaml creates there.
const MEMBER_ROLE: &str = "pipeline-publisher-poller";
/// The external id its trust policy requires (not a secret; half of the trust).
const EXTERNAL_ID: &str = "demo-fleet-7f3a";
/// How long a pickup may take before the demo gives up on it.
const PICKUP_TIMEOUT: Duration = Duration::from_secs(20);

/// One job of the fleet part and how fast it was picked up.
pub struct FleetJob {
    pub label: &'static str,
    pub account: String,
    pub pipeline_name: &'static str,
    pub job_id: String,
    /// From queueing the job to PollForJobs handing it out.
    pub pickup: Duration,
    pub succeeded: bool,
}

/// What the fleet part did.
pub struct FleetOutcome {
    pub jobs: Vec<FleetJob>,
    /// The idle poll pace while the queue answers (the safety net).
    pub safety_net: Duration,
}

/// Runs one worker on both accounts with the wake-up queue, queues a job in each while it is
/// idle, and measures how fast each was picked up.
pub async fn run(environment: &LocalEnvironment) -> anyhow::Result<FleetOutcome> {
    let sandbox = &environment.sandbox.sandbox;
    let own_account = sandbox.config().account_id.clone();
    let region = sandbox.config().region.clone();
    let role_arn = sandbox.add_member_account(MEMBER_ACCOUNT, MEMBER_ROLE, Some(EXTERNAL_ID));
    let queue_url = sandbox.create_queue("pipeline-publisher-wake");

    let action_type = ActionTypeId::default();
    let member_config = source_config(
        &environment.sdk_config,
        &SourceAccess {
            region: &region,
            role: Some(&role_arn),
            external_id: Some(EXTERNAL_ID),
            session_name: "pipeline-publisher-demo",
        },
    )
    .await;
    let sources = vec![
        worker::Source::new(
            format!("{own_account}/{region}"),
            Arc::new(AwsJobApi::new(&environment.sdk_config, &action_type)?),
        ),
        worker::Source::new(
            format!("{MEMBER_ACCOUNT}/{region}"),
            Arc::new(AwsJobApi::new(&member_config, &action_type)?),
        ),
    ];
    let matcher = SourceMatcher {
        action_type: action_type.clone(),
        sources: [own_account.as_str(), MEMBER_ACCOUNT]
            .into_iter()
            .map(|account| SourceAddress {
                account: Some(account.to_owned()),
                region: region.clone(),
                versions: vec![action_type.version.clone()],
            })
            .collect(),
    };
    let safety_net = Duration::from_secs(60);
    let settings = WorkerSettings {
        max_jobs: Some(2),
        poll_min_interval: Duration::from_secs(30),
        poll_max_interval: safety_net,
        error_base_interval: Duration::from_millis(50),
        error_max_interval: Duration::from_millis(500),
        heartbeat_interval: Duration::ZERO,
        ..WorkerSettings::default()
    };
    let queue_url_parsed = url::Url::parse(&queue_url).context("the sandbox's queue URL")?;
    let queue = Arc::new(SqsWakeQueue::new(
        &environment.sdk_config,
        &queue_url_parsed,
    ));
    let (sender, receiver) = tokio::sync::mpsc::channel(64);
    let wake_task = tokio::spawn(worker::wake::run(
        queue,
        matcher,
        settings.metrics.clone(),
        sender,
    ));
    let publisher = environment.publisher(PublisherSettings::default())?;
    let worker_task = tokio::spawn(worker::run_sources(
        sources,
        Arc::new(publisher),
        settings,
        Some(receiver),
        std::future::pending(),
    ));

    let result = queue_and_measure(environment, &own_account).await;
    if result.is_err() {
        worker_task.abort();
    }
    let finished = tokio::time::timeout(PICKUP_TIMEOUT, worker_task).await;
    wake_task.abort();
    let mut jobs = result?;
    finished
        .context("the fleet worker did not end both jobs in time")?
        .context("the fleet worker panicked")?;
    for job in &mut jobs {
        job.succeeded = matches!(
            sandbox
                .job(&job.job_id)
                .and_then(|record| record.results.first().cloned()),
            Some(JobResult::Success { .. })
        );
    }
    Ok(FleetOutcome { jobs, safety_net })
}

/// Once the worker is idle and listening, queues a job in the member account, then one in
/// its own, each after the previous was picked up.
async fn queue_and_measure(
    environment: &LocalEnvironment,
    own_account: &str,
) -> anyhow::Result<Vec<FleetJob>> {
    let sandbox = &environment.sandbox.sandbox;
    wait_until_idle_and_listening(environment, own_account).await?;
    let mut jobs = Vec::new();
    for (label, account, revision) in [
        (
            "Job 5",
            MEMBER_ACCOUNT,
            "5d2e8f1a3c4b6d7e9f0a1b2c3d4e5f6a7b8c9d0e",
        ),
        (
            "Job 6",
            own_account,
            "7a9c1e3f5b2d4f6a8c0e2b4d6f8a0c2e4b6d8f0a",
        ),
    ] {
        let artifact =
            environment.upload_artifact("BuildOutput", Some(revision), FIRMWARE_EXAMPLE)?;
        let mut spec = JobSpec::new("nestbox-firmware");
        spec.account = Some(account.to_owned());
        spec.configuration = environment.firmware_configuration();
        spec.input_artifacts = vec![artifact];
        let queued = Instant::now();
        let job_id = sandbox.queue_job(spec);
        if !sandbox.wait_until_dispatched(&job_id, PICKUP_TIMEOUT).await {
            anyhow::bail!("the fleet worker did not pick up {label} within {PICKUP_TIMEOUT:?}");
        }
        let pickup = queued.elapsed();
        sandbox.wait_for_result(&job_id, PICKUP_TIMEOUT).await;
        jobs.push(FleetJob {
            label,
            account: account.to_owned(),
            pipeline_name: "nestbox-firmware",
            job_id,
            pickup,
            succeeded: false,
        });
    }
    Ok(jobs)
}

/// Waits (at most 10 s) until both sources had their first, empty poll and the wake-up
/// queue is being long-polled, so the next pickup can only come from a wake-up.
async fn wait_until_idle_and_listening(
    environment: &LocalEnvironment,
    own_account: &str,
) -> anyhow::Result<()> {
    let sandbox = &environment.sandbox.sandbox;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let calls = sandbox.calls();
        let polled = |account: &str| {
            calls.iter().any(|call| {
                matches!(call, crate::sandbox::RecordedCall::JobApi {
                    operation, account: Some(caller), ..
                } if operation == "PollForJobs" && caller == account)
            })
        };
        if polled(own_account) && polled(MEMBER_ACCOUNT) && sandbox.sqs_receivers_waiting() > 0 {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the fleet worker did not start polling both accounts and its queue"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The fleet part as printed: one line per job, each saying which account it came from and
/// how soon the queue woke the worker (whose idle polling is only a safety net).
pub fn render(outcome: &FleetOutcome) -> String {
    let mut out = String::from("\n");
    for job in &outcome.jobs {
        let status = if job.succeeded { "Succeeded" } else { "Failed" };
        let via = if job.account == MEMBER_ACCOUNT {
            " through AssumeRole"
        } else {
            ""
        };
        out.push_str(&format!(
            "{}  {}  {}  account {}{via}: woken by SQS, picked up {:.2} s after queueing \
             (idle polling every {} s)\n",
            job.label,
            job.pipeline_name,
            status,
            job.account,
            job.pickup.as_secs_f64(),
            outcome.safety_net.as_secs()
        ));
    }
    out
}
