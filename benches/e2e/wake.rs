//! Scenarios 9 and 10 (issue 14, one fleet for many accounts): one worker serving two sources —
//! the sandbox's own account in eu-west-1 and a member account in us-east-1 reached through
//! STS `AssumeRole` — with the SQS wake-up queue.
//!
//! - 7: idle job-API requests per source per minute (after the idle backoff has settled), and
//!   pickup latency (queue → `AcknowledgeJob`) with the queue, each beside the same worker
//!   without a queue, run at the same time against its own stand-ins.
//! - 8: fairness: source A queues 200 jobs, then source B queues 5; B's pickup against one
//!   job's duration; every job ends exactly once. Its jobs publish an 8 MiB image read from an
//!   S3 stand-in capped at 90 MB/s per connection, as on a real network: with the tiny artifact
//!   a job lasts less than the loop's fixed round trips (wake-up receive, `PollForJobs`,
//!   `AcknowledgeJob`) on two shared cores, and the ratio would measure those, not the rule.

use std::time::{Duration, Instant};

use pipeline_publisher::demo::zip_entries;
use pipeline_publisher::sandbox::{JobResult, RecordedCall, Sandbox, SandboxConfig};

use crate::report::{Report, Verdict};
use crate::support::{
    Bench, Endpoints, Prng, Stage, WorkerProcess, median_p95, percentile, pickup, pickups,
    spawn_worker,
};

const KEY: &str = "wake/BuildOutput/tiny";
const OWN: &str = "111122223333";
const MEMBER: &str = "222233334444";
const MEMBER_REGION: &str = "us-east-1";
const EXTERNAL_ID: &str = "bench-fleet";

/// What one job publishes.
#[derive(Clone, Copy)]
enum JobSize {
    /// A one-line file.
    Tiny,
    /// An 8 MiB image (stored), read at a real S3 connection's rate.
    Image,
}

/// Per connection, as in scenario 7.
const S3_CONNECTION_RATE: u64 = 90_000_000;

/// A stage with a member account and the artifact every job publishes; the role's ARN.
async fn fleet_stage(size: JobSize) -> (Stage, String) {
    let stage = Stage::start(SandboxConfig {
        extra_regions: vec![MEMBER_REGION.to_owned()],
        s3_connection_rate: matches!(size, JobSize::Image).then_some(S3_CONNECTION_RATE),
        ..SandboxConfig::default()
    })
    .await;
    let role = stage.sandbox.sandbox.add_member_account(
        MEMBER,
        "pipeline-publisher-poller",
        Some(EXTERNAL_ID),
    );
    let archive = match size {
        JobSize::Tiny => zip_entries(&[("agent.tar", b"camera agent 3.0.0\n")]),
        JobSize::Image => {
            let mut image = vec![0; 8 << 20];
            Prng(0x1a6e_0010).fill(&mut image);
            zip_entries(&[("nestbox-cam.img", &image)])
        }
    }
    .expect("zip");
    stage
        .sandbox
        .sandbox
        .put_object(&stage.config().artifact_bucket, KEY, &archive)
        .expect("object stored");
    (stage, role)
}

fn source_args(role: &str, queue: Option<&str>) -> Vec<String> {
    let mut args = vec![
        "--source".to_owned(),
        "region=eu-west-1".to_owned(),
        "--source".to_owned(),
        format!("region={MEMBER_REGION},role={role},external-id={EXTERNAL_ID}"),
    ];
    if let Some(queue) = queue {
        args.extend(["--wake-queue".to_owned(), queue.to_owned()]);
    }
    args
}

fn spawn(bench: &Bench, stage: &Stage, name: &str, args: &[String]) -> WorkerProcess {
    let url = stage.sandbox.endpoint_url.clone();
    spawn_worker(
        bench,
        stage,
        name,
        Endpoints {
            job_api: &url,
            s3: &url,
        },
        args,
    )
}

/// Job-API requests so far, per account (own, member).
fn requests(sandbox: &Sandbox) -> (usize, usize) {
    let calls = sandbox.calls();
    let count = |wanted: &str| {
        calls
            .iter()
            .filter(|call| matches!(call, RecordedCall::JobApi { account: Some(account), .. } if account == wanted))
            .count()
    };
    (count(OWN), count(MEMBER))
}

fn queue_job(stage: &Stage, member: bool, target: &str) -> String {
    let mut spec = stage.job(KEY, None, Some(target));
    if member {
        spec.account = Some(MEMBER.to_owned());
        spec.region = Some(MEMBER_REGION.to_owned());
    }
    stage.sandbox.sandbox.queue_job(spec)
}

pub async fn scenario_9(bench: &Bench, report: &mut Report) {
    let (settle, window) = if bench.quick { (10, 20) } else { (70, 120) };
    let jobs = if bench.quick { 6 } else { 24 };
    eprintln!(
        "[9] wake-up queue, 2 sources: idle requests over {window} s after {settle} s, then pickup of {jobs} jobs"
    );
    let (ours, ours_role) = fleet_stage(JobSize::Tiny).await;
    let (plain, plain_role) = fleet_stage(JobSize::Tiny).await;
    let queue = ours.sandbox.sandbox.create_queue("pipeline-publisher-wake");
    let ours_worker = spawn(
        bench,
        &ours,
        "s7-queue",
        &source_args(&ours_role, Some(&queue)),
    );
    let plain_worker = spawn(bench, &plain, "s7-plain", &source_args(&plain_role, None));

    tokio::time::sleep(Duration::from_secs(settle)).await;
    let (ours_start, plain_start) = (
        requests(&ours.sandbox.sandbox),
        requests(&plain.sandbox.sandbox),
    );
    tokio::time::sleep(Duration::from_secs(window)).await;
    let (ours_end, plain_end) = (
        requests(&ours.sandbox.sandbox),
        requests(&plain.sandbox.sandbox),
    );
    let per_minute = |start: usize, end: usize| (end - start) as f64 * 60.0 / window as f64;
    let ours_rates = (
        per_minute(ours_start.0, ours_end.0),
        per_minute(ours_start.1, ours_end.1),
    );
    let plain_rates = (
        per_minute(plain_start.0, plain_end.0),
        per_minute(plain_start.1, plain_end.1),
    );
    let worst = ours_rates.0.max(ours_rates.1);
    report.row(
        "9",
        &format!("idle, wake queue, 2 sources: job-API requests per source per minute ({window} s after {settle} s)"),
        format!("{:.1} own, {:.1} member", ours_rates.0, ours_rates.1),
        format!(
            "{:.1} own, {:.1} member without a queue",
            plain_rates.0, plain_rates.1
        ),
        format!("{:.1}× fewer", plain_rates.0.max(plain_rates.1) / worst.max(0.01)),
        "≤ 1",
        Verdict::from(worst <= 1.0),
    );

    // Pickup: the first job of each source arrives into a fully idle worker; later ones while
    // it is still in the busy window of the previous job.
    let mut arrivals = Prng(0x0714_a4e5);
    let mut watchers = Vec::new();
    for index in 0..jobs {
        if index > 0 {
            let gap = 0.5 + 2.5 * arrivals.unit();
            tokio::time::sleep(Duration::from_secs_f64(gap)).await;
        }
        let member = index % 2 == 1;
        for (side, stage) in [(0, &ours), (1, &plain)] {
            let queued = Instant::now();
            let job_id = queue_job(stage, member, &format!("wake/{index:03}"));
            watchers.push((
                side,
                tokio::spawn(pickup(stage.sandbox.sandbox.clone(), job_id, queued)),
            ));
        }
    }
    let latencies = pickups(watchers, [&ours, &plain]).await;
    ours_worker.stop().await;
    plain_worker.stop().await;
    // The first job of each source (one each side) came into a fully idle worker.
    let first = [&latencies[0][..2], &latencies[1][..2]];
    let (median, p95) = median_p95(&latencies[0]);
    let (plain_median, plain_p95) = median_p95(&latencies[1]);
    report.row(
        "9",
        &format!(
            "pickup latency with the wake queue, {jobs} jobs over 2 sources, gaps 0.5–3 s: median"
        ),
        format!("{median:.3} s"),
        format!("{plain_median:.3} s without a queue"),
        format!("{:.1}× sooner", plain_median / median.max(0.001)),
        "≤ 0.3 s",
        Verdict::from(median <= 0.3),
    );
    report.row(
        "9",
        "pickup latency with the wake queue: p95",
        format!("{p95:.3} s"),
        format!("{plain_p95:.3} s without a queue"),
        format!("{:.1}×", plain_p95 / p95.max(0.001)),
        "≤ 1 s",
        Verdict::from(p95 <= 1.0),
    );
    report.row(
        "9",
        "pickup latency of the first job of each source (worker fully idle)",
        first[0]
            .iter()
            .map(|s| format!("{s:.3} s"))
            .collect::<Vec<_>>()
            .join(", "),
        first[1]
            .iter()
            .map(|s| format!("{s:.3} s"))
            .collect::<Vec<_>>()
            .join(", ")
            + " without a queue",
        "—".into(),
        "—",
        Verdict::Info,
    );
}

pub async fn scenario_10(bench: &Bench, report: &mut Report) {
    let (a_jobs, b_jobs) = if bench.quick { (40, 5) } else { (200, 5) };
    eprintln!("[10] fairness: source A queues {a_jobs} jobs, then source B {b_jobs}");
    let (stage, role) = fleet_stage(JobSize::Image).await;
    let queue = stage
        .sandbox
        .sandbox
        .create_queue("pipeline-publisher-wake");
    let mut worker = spawn(bench, &stage, "s8", &source_args(&role, Some(&queue)));
    // Let the worker start and poll both sources once.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let started = Instant::now();
    let a: Vec<String> = (0..a_jobs)
        .map(|index| queue_job(&stage, false, &format!("fair/a/{index:03}")))
        .collect();
    // B arrives once A's backlog fills every slot.
    while stage
        .sandbox
        .sandbox
        .jobs()
        .iter()
        .filter(|job| job.acknowledgements > 0)
        .count()
        < 8
        && started.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let b_at = Instant::now();
    let mut b_watchers = Vec::new();
    let mut b = Vec::new();
    for index in 0..b_jobs {
        let job_id = queue_job(&stage, true, &format!("fair/b/{index:03}"));
        b.push(job_id.clone());
        b_watchers.push(tokio::spawn(pickup(
            stage.sandbox.sandbox.clone(),
            job_id,
            b_at,
        )));
    }
    let mut waits = Vec::new();
    for watcher in b_watchers {
        waits.push(watcher.await.expect("watcher").expect("B picked up"));
    }
    stage
        .expect_success(a.last().unwrap(), Duration::from_secs(300), &mut worker)
        .await;
    assert!(
        stage
            .sandbox
            .sandbox
            .wait_until_idle(Duration::from_secs(300))
            .await,
        "all jobs ended"
    );
    let elapsed = started.elapsed().as_secs_f64();
    worker.stop().await;
    let sandbox = &stage.sandbox.sandbox;
    let once = a.iter().chain(&b).all(|id| {
        sandbox.job(id).is_some_and(|job| {
            job.acknowledgements == 1
                && matches!(job.results.as_slice(), [JobResult::Success { .. }])
        })
    });
    // One job's duration: A's jobs ran 4 at a time (the default concurrency) over `elapsed`.
    let job_duration = elapsed * 4.0 / (a_jobs + b_jobs) as f64;
    waits.sort_by(f64::total_cmp);
    let median = percentile(&waits, 50.0);
    report.row(
        "10",
        &format!("fairness: A queues {a_jobs}, then B {b_jobs}: B's median pickup"),
        format!(
            "{median:.3} s (max {:.3} s)",
            waits.last().copied().unwrap_or(f64::NAN)
        ),
        format!("one job's duration {job_duration:.3} s (A drained in {elapsed:.1} s)"),
        format!("{:.2}× a job", median / job_duration),
        "≤ 2 × one job's duration",
        Verdict::from(median <= 2.0 * job_duration),
    );
    report.row(
        "10",
        "fairness: every job of A and B acknowledged once, one result",
        (if once { "yes" } else { "NO" }).to_owned(),
        "—".into(),
        "—".into(),
        "nothing lost or doubled",
        Verdict::from(once),
    );
}
