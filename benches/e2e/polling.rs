//! Scenario 4 (job pickup latency with jobs arriving at random intervals) and scenario 6 (an
//! idle worker over 60 s). The baseline for both is our own worker configured the way the
//! well-known Python sample behaves (fixed 10 s poll, one job at a time), run at the same time
//! against its own stand-ins with the same arrivals.

use std::time::{Duration, Instant};

use pipeline_publisher::demo::zip_entries;
use pipeline_publisher::sandbox::{CallOutcome, RecordedCall, Sandbox, SandboxConfig};

use crate::report::{Report, Verdict};
use crate::support::{
    Bench, Endpoints, Prng, ProcStats, Stage, median_p95, pickup, pickups, spawn_worker,
};

const KEY: &str = "agent/BuildOutput/tiny";

fn sample_style_args() -> Vec<String> {
    [
        "--poll-min-interval",
        "10s",
        "--poll-max-interval",
        "10s",
        "--concurrency",
        "1",
    ]
    .map(String::from)
    .to_vec()
}

async fn tiny_stage() -> Stage {
    let stage = Stage::start(SandboxConfig::default()).await;
    let archive = zip_entries(&[("agent.tar", b"camera agent 3.0.0\n")]).expect("zip");
    stage
        .sandbox
        .sandbox
        .put_object(&stage.config().artifact_bucket, KEY, &archive)
        .expect("object stored");
    stage
}

/// Polls the job's acknowledgement count every 5 ms (at most 120 s); the seconds from `queued`
/// to the first acknowledgement seen.
pub async fn scenario_4(bench: &Bench, report: &mut Report) {
    let jobs = if bench.quick { 6 } else { 24 };
    eprintln!("[4] pickup latency, {jobs} jobs at random intervals (0.2–4 s)");
    let ours = tiny_stage().await;
    let sample = tiny_stage().await;
    let endpoints = |stage: &Stage| stage.sandbox.endpoint_url.clone();
    let (ours_url, sample_url) = (endpoints(&ours), endpoints(&sample));
    let ours_worker = spawn_worker(
        bench,
        &ours,
        "s4-ours",
        Endpoints {
            job_api: &ours_url,
            s3: &ours_url,
        },
        &[],
    );
    let sample_worker = spawn_worker(
        bench,
        &sample,
        "s4-sample",
        Endpoints {
            job_api: &sample_url,
            s3: &sample_url,
        },
        &sample_style_args(),
    );
    // Let both settle into their idle polling before the first arrival.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut arrivals = Prng(0x04a1_17e5);
    let mut watchers = Vec::new();
    for _ in 0..jobs {
        let gap = 0.2 + 3.8 * arrivals.unit();
        tokio::time::sleep(Duration::from_secs_f64(gap)).await;
        for (side, stage) in [(0, &ours), (1, &sample)] {
            let queued = Instant::now();
            let job_id = stage.sandbox.sandbox.queue_job(stage.job(KEY, None, None));
            watchers.push((
                side,
                tokio::spawn(pickup(stage.sandbox.sandbox.clone(), job_id, queued)),
            ));
        }
    }
    let latencies = pickups(watchers, [&ours, &sample]).await;
    ours_worker.stop().await;
    sample_worker.stop().await;
    let (median, p95) = median_p95(&latencies[0]);
    let (sample_median, sample_p95) = median_p95(&latencies[1]);
    report.row(
        "4",
        &format!("pickup latency (queue → AcknowledgeJob), {jobs} jobs, gaps 0.2–4 s: median"),
        format!("{median:.2} s"),
        format!("{sample_median:.2} s sample-style (fixed 10 s poll)"),
        format!("{:.1}× sooner", sample_median / median),
        "≤ 1 s",
        Verdict::from(median <= 1.0),
    );
    report.row(
        "4",
        "pickup latency: p95 (max)",
        format!(
            "{p95:.2} s ({:.2} s)",
            latencies[0].last().copied().unwrap_or(f64::NAN)
        ),
        format!("{sample_p95:.2} s sample-style"),
        format!("{:.1}×", sample_p95 / p95),
        "—",
        Verdict::Info,
    );
}

fn polls(sandbox: &Sandbox) -> (usize, usize) {
    let calls = sandbox.calls();
    let total = calls
        .iter()
        .filter(|call| matches!(call, RecordedCall::JobApi { .. }))
        .count();
    let ok_polls = calls
        .iter()
        .filter(|call| matches!(call, RecordedCall::JobApi { operation, outcome: CallOutcome::Ok, .. } if operation == "PollForJobs"))
        .count();
    (total, ok_polls)
}

pub async fn scenario_6(bench: &Bench, report: &mut Report) {
    let seconds = if bench.quick { 10 } else { 60 };
    eprintln!("[6] idle worker over {seconds} s (runs alongside the other scenarios)");
    let ours = tiny_stage().await;
    let sample = tiny_stage().await;
    let (ours_url, sample_url) = (
        ours.sandbox.endpoint_url.clone(),
        sample.sandbox.endpoint_url.clone(),
    );
    let ours_worker = spawn_worker(
        bench,
        &ours,
        "s6-ours",
        Endpoints {
            job_api: &ours_url,
            s3: &ours_url,
        },
        &[],
    );
    let sample_worker = spawn_worker(
        bench,
        &sample,
        "s6-sample",
        Endpoints {
            job_api: &sample_url,
            s3: &sample_url,
        },
        &sample_style_args(),
    );
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let stats: ProcStats = ours_worker.stats(bench);
    let sample_stats = sample_worker.stats(bench);
    let (requests, _) = polls(&ours.sandbox.sandbox);
    let (sample_requests, _) = polls(&sample.sandbox.sandbox);
    ours_worker.stop().await;
    sample_worker.stop().await;
    let cpu_share = stats.cpu.as_secs_f64() / seconds as f64;
    report.row(
        "6",
        &format!("idle {seconds} s: RSS now (peak)"),
        format!(
            "{:.1} MiB ({:.1} MiB); anon {:.1} + file-backed {:.1}",
            stats.rss_mib(),
            stats.peak_mib(),
            stats.rss_anon_kib as f64 / 1024.0,
            stats.rss_file_kib as f64 / 1024.0
        ),
        format!(
            "{:.1} MiB ({:.1} MiB) sample-style config of ours",
            sample_stats.rss_mib(),
            sample_stats.peak_mib()
        ),
        "—".into(),
        "≤ 15 MiB",
        Verdict::from(stats.rss_mib() <= 15.0 && stats.peak_mib() <= 15.0),
    );
    report.row(
        "6",
        &format!("idle {seconds} s: CPU time (incl. start-up)"),
        format!(
            "{:.0} ms ({:.2} % of one core)",
            1000.0 * stats.cpu.as_secs_f64(),
            100.0 * cpu_share
        ),
        format!(
            "{:.0} ms sample-style",
            1000.0 * sample_stats.cpu.as_secs_f64()
        ),
        "—".into(),
        "no busy CPU (< 1 %)",
        Verdict::from(cpu_share < 0.01),
    );
    report.row(
        "6",
        &format!("idle {seconds} s: job-API requests"),
        format!(
            "{requests} ({:.1}/min)",
            requests as f64 * 60.0 / seconds as f64
        ),
        format!("{sample_requests} sample-style (10 s poll)"),
        format!("{:.2}×", requests as f64 / sample_requests.max(1) as f64),
        "bounded by --poll-max-interval",
        Verdict::Info,
    );
}
