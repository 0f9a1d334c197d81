//! Scenario 5: 8 worker processes drain 2,000 queued jobs through a job API that throttles
//! above a fixed request rate. Measured against the ideal that rate allows, with proof that
//! every job was acknowledged once and ended with exactly one result.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use pipeline_publisher::demo::zip_entries;
use pipeline_publisher::sandbox::{JobResult, SandboxConfig};

use crate::proxies::{Policy, http_proxy};
use crate::report::{Report, Verdict};
use crate::support::{Bench, Endpoints, Stage, secs, spawn_worker};

const WORKERS: usize = 8;
/// Jobs one `PollForJobs` may return to a worker: its free slots, at most `--concurrency`.
const DEFAULT_CONCURRENCY: usize = 4;

pub async fn scenario_5(bench: &Bench, report: &mut Report) {
    let jobs = if bench.quick { 200 } else { 2000 };
    let rate: f64 = std::env::var("BENCH_FLEET_RATE")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(100.0);
    let burst = (rate / 5.0).max(1.0);
    eprintln!(
        "[5] {WORKERS} workers, {jobs} jobs, job API throttled above {rate} req/s (burst {burst})"
    );
    let stage = Stage::start(SandboxConfig::default()).await;
    let proxy = http_proxy(
        &stage.sandbox.endpoint_url,
        Policy::Throttle { rate, burst },
    )
    .await;
    let mut job_ids = Vec::with_capacity(jobs);
    for index in 0..jobs {
        let key = format!("fleet/BuildOutput/{index:05}");
        let body = format!("firmware build {index}\n");
        let archive = zip_entries(&[("image.img", body.as_bytes())]).expect("zip");
        stage
            .sandbox
            .sandbox
            .put_object(&stage.config().artifact_bucket, &key, &archive)
            .expect("object stored");
        job_ids.push(stage.sandbox.sandbox.queue_job(stage.job(
            &key,
            None,
            Some(&format!("fleet/{index:05}")),
        )));
    }

    let started = Instant::now();
    let mut workers = Vec::new();
    for index in 0..WORKERS {
        workers.push(spawn_worker(
            bench,
            &stage,
            &format!("s5-{index}"),
            Endpoints {
                job_api: &proxy.url,
                s3: &stage.sandbox.endpoint_url,
            },
            &[],
        ));
    }
    let idle = stage
        .sandbox
        .sandbox
        .wait_until_idle(Duration::from_secs(if bench.quick { 120 } else { 600 }))
        .await;
    let elapsed = started.elapsed();
    let mut clean_exits = 0;
    for worker in workers {
        clean_exits += usize::from(worker.stop().await);
    }

    // Proof: each job acknowledged once, one accepted result, a success, nothing rejected.
    let (mut acknowledged_once, mut one_result, mut succeeded, mut rejected) = (0, 0, 0, 0);
    for job_id in &job_ids {
        let record = stage.sandbox.sandbox.job(job_id).expect("job exists");
        acknowledged_once += usize::from(record.acknowledgements == 1);
        one_result += usize::from(record.results.len() == 1);
        succeeded += usize::from(matches!(
            record.results.as_slice(),
            [JobResult::Success { .. }]
        ));
        rejected += record.rejected_results.len();
    }
    let total = proxy.counts.requests.load(Ordering::Relaxed);
    let throttled = proxy.counts.throttled.load(Ordering::Relaxed);
    let by_operation = proxy.counts.by_operation.lock().expect("counts").clone();
    let breakdown = by_operation
        .iter()
        .map(|(operation, (ok, refused))| format!("{operation} {ok}+{refused} throttled"))
        .collect::<Vec<_>>()
        .join(", ");

    // The least the job API must accept: AcknowledgeJob + PutJobSuccessResult per job, and one
    // PollForJobs per batch of up to `--concurrency` jobs.
    let minimum = 2 * jobs + jobs.div_ceil(DEFAULT_CONCURRENCY);
    let ideal = minimum as f64 / rate;
    let ratio = secs(elapsed) / ideal;
    report.row(
        "5",
        &format!("{WORKERS} workers, {jobs} jobs, job API ≤ {rate} req/s: total time"),
        format!("{:.1} s", secs(elapsed)),
        format!("{ideal:.1} s ideal ({minimum} requests at {rate}/s)"),
        format!("{ratio:.2}× ideal"),
        "≤ 1.10×",
        Verdict::from(idle && ratio <= 1.10),
    );
    report.row(
        "5",
        "each job ended exactly once",
        format!(
            "{acknowledged_once}/{jobs} acknowledged once, {one_result}/{jobs} one result, {succeeded} succeeded, {rejected} rejected result calls, {clean_exits}/{WORKERS} workers exited 0"
        ),
        "—".into(),
        "—".into(),
        "all",
        Verdict::from(idle && acknowledged_once == jobs && one_result == jobs && succeeded == jobs && rejected == 0),
    );
    let accepted = total - throttled;
    report.note(format!(
        "scenario 5 job-API traffic: {total} requests, {throttled} throttled ({breakdown}); \
         the {accepted} accepted requests alone need {:.1} s at {rate}/s, so {:.1} s of the run \
         was spent below the allowed rate",
        accepted as f64 / rate,
        secs(elapsed) - accepted as f64 / rate
    ));
}
