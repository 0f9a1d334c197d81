//! Scenario 11 (issue 14): 4 worker processes, each serving the same 3 sources (the sandbox's
//! own account in eu-west-1 and two member accounts reached through STS `AssumeRole`, in
//! us-east-1 and us-west-2), drain 300 queued jobs per source while the job API throttles each
//! account/region on its own. Measured against the ideal each source's rate allows (the sources
//! drain in parallel), with proof that every job was acknowledged once and ended once.

use std::time::{Duration, Instant};

use pipeline_publisher::demo::zip_entries;
use pipeline_publisher::sandbox::{JobResult, RecordedCall, SandboxConfig};

use crate::proxies::{Policy, http_proxy};
use crate::report::{Report, Verdict};
use crate::support::{Bench, Endpoints, Stage, secs, spawn_worker};

const WORKERS: usize = 4;
const CONCURRENCY: usize = 4;
const KEY: &str = "accounts/BuildOutput/tiny";
/// (account, region); the first is the sandbox's own account (no role).
const SOURCES: [(&str, &str); 3] = [
    ("111122223333", "eu-west-1"),
    ("222233334444", "us-east-1"),
    ("333344445555", "us-west-2"),
];
const EXTERNAL_ID: &str = "bench-accounts";

pub async fn scenario_11(bench: &Bench, report: &mut Report) {
    let per_source = if bench.quick { 60 } else { 300 };
    let rate: f64 = std::env::var("BENCH_ACCOUNT_RATE")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(30.0);
    let burst = (rate / 5.0).max(1.0);
    eprintln!(
        "[11] {WORKERS} workers × {} sources × {per_source} jobs, job API ≤ {rate} req/s per account/region",
        SOURCES.len()
    );
    let stage = Stage::start(SandboxConfig {
        extra_regions: SOURCES[1..]
            .iter()
            .map(|(_, region)| (*region).to_owned())
            .collect(),
        ..SandboxConfig::default()
    })
    .await;
    let sandbox = &stage.sandbox.sandbox;
    let mut source_args = vec!["--source".to_owned(), format!("region={}", SOURCES[0].1)];
    for (account, region) in &SOURCES[1..] {
        let role =
            sandbox.add_member_account(account, "pipeline-publisher-poller", Some(EXTERNAL_ID));
        source_args.extend([
            "--source".to_owned(),
            format!("region={region},role={role},external-id={EXTERNAL_ID}"),
        ]);
    }
    source_args.extend(["--concurrency".to_owned(), CONCURRENCY.to_string()]);
    let archive = zip_entries(&[("image.img", b"firmware\n")]).expect("zip");
    sandbox
        .put_object(&stage.config().artifact_bucket, KEY, &archive)
        .expect("object stored");
    let mut job_ids = Vec::with_capacity(per_source * SOURCES.len());
    for index in 0..per_source {
        for (source, (account, region)) in SOURCES.iter().enumerate() {
            let mut spec = stage.job(KEY, None, Some(&format!("accounts/{source}/{index:04}")));
            if source > 0 {
                spec.account = Some((*account).to_owned());
                spec.region = Some((*region).to_owned());
            }
            job_ids.push(sandbox.queue_job(spec));
        }
    }
    let proxy = http_proxy(
        &stage.sandbox.endpoint_url,
        Policy::ThrottlePerRegion { rate, burst },
    )
    .await;

    let started = Instant::now();
    let mut workers = Vec::new();
    for index in 0..WORKERS {
        workers.push(spawn_worker(
            bench,
            &stage,
            &format!("s9-{index}"),
            Endpoints {
                job_api: &proxy.url,
                s3: &stage.sandbox.endpoint_url,
            },
            &source_args,
        ));
    }
    let idle = sandbox
        .wait_until_idle(Duration::from_secs(if bench.quick { 120 } else { 600 }))
        .await;
    let elapsed = started.elapsed();
    let mut clean_exits = 0;
    for worker in workers {
        clean_exits += usize::from(worker.stop().await);
    }
    let (mut acknowledged_once, mut one_result, mut succeeded) = (0, 0, 0);
    for job_id in &job_ids {
        let record = sandbox.job(job_id).expect("job exists");
        acknowledged_once += usize::from(record.acknowledgements == 1);
        one_result += usize::from(record.results.len() == 1);
        succeeded += usize::from(matches!(
            record.results.as_slice(),
            [JobResult::Success { .. }]
        ));
    }
    let jobs = job_ids.len();
    // Per source, the least its job API must accept: AcknowledgeJob + PutJobSuccessResult per
    // job and one PollForJobs per batch of up to `--concurrency` jobs; the sources' rates are
    // separate, so they drain in parallel.
    let minimum = 2 * per_source + per_source.div_ceil(CONCURRENCY);
    let ideal = minimum as f64 / rate;
    let ratio = secs(elapsed) / ideal;
    report.row(
        "11",
        &format!(
            "{WORKERS} workers × {} sources × {per_source} jobs, job API ≤ {rate} req/s per account/region: total time",
            SOURCES.len()
        ),
        format!("{:.1} s", secs(elapsed)),
        format!("{ideal:.1} s ideal ({minimum} requests per source at {rate}/s)"),
        format!("{ratio:.2}× ideal"),
        "≤ 1.15×",
        Verdict::from(idle && ratio <= 1.15),
    );
    report.row(
        "11",
        "each job ended exactly once",
        format!(
            "{acknowledged_once}/{jobs} acknowledged once, {one_result}/{jobs} one result, {succeeded} succeeded, {clean_exits}/{WORKERS} workers exited 0"
        ),
        "—".into(),
        "—".into(),
        "all",
        Verdict::from(idle && acknowledged_once == jobs && one_result == jobs && succeeded == jobs),
    );
    let total = proxy
        .counts
        .requests
        .load(std::sync::atomic::Ordering::Relaxed);
    let throttled = proxy
        .counts
        .throttled
        .load(std::sync::atomic::Ordering::Relaxed);
    let by_operation = proxy.counts.by_operation.lock().expect("counts").clone();
    let breakdown: Vec<String> = by_operation
        .iter()
        .map(|(operation, (ok, refused))| format!("{operation} {ok}+{refused} throttled"))
        .collect();
    report.note(format!(
        "scenario 11 traffic through the proxy (job API, STS): {total} requests, {throttled} throttled ({})",
        breakdown.join(", ")
    ));
    // Where each source's rate went unused: its first and last admitted request, and the
    // seconds its admitted requests alone would take at the rate.
    let admitted_at = proxy.counts.admitted_at.lock().expect("times").clone();
    let timelines: Vec<String> = SOURCES
        .iter()
        .filter_map(|(_, region)| {
            let times = admitted_at.get(*region)?;
            let (first, last) = (times.first()?, times.last()?);
            Some(format!(
                "{region}: {} admitted, first at {:.2} s, last at {:.2} s, {:.1} s of them at the rate",
                times.len(),
                secs(first.saturating_duration_since(started)),
                secs(last.saturating_duration_since(started)),
                (times.len() as f64 - burst).max(0.0) / rate,
            ))
        })
        .collect();
    report.note(format!(
        "scenario 11 job API per source: {}",
        timelines.join("; ")
    ));
    // `BENCH_TIMELINE=1`: each source's admitted requests per half second, to see where its
    // rate went unused.
    if std::env::var_os("BENCH_TIMELINE").is_some() {
        for (_, region) in SOURCES {
            let Some(times) = admitted_at.get(region) else {
                continue;
            };
            let mut buckets = vec![0usize; (secs(elapsed) * 2.0).ceil() as usize + 1];
            for time in times {
                let bucket = (secs(time.saturating_duration_since(started)) * 2.0) as usize;
                if let Some(count) = buckets.get_mut(bucket) {
                    *count += 1;
                }
            }
            let counts: Vec<String> = buckets.iter().map(ToString::to_string).collect();
            report.note(format!(
                "scenario 11 {region} admitted per 0.5 s: {}",
                counts.join(" ")
            ));
        }
    }
    // What the job API accepted, by operation: where requests beyond the ideal went.
    let mut accepted = std::collections::BTreeMap::<String, usize>::new();
    for call in sandbox.calls() {
        match call {
            RecordedCall::JobApi { operation, .. } => *accepted.entry(operation).or_default() += 1,
            RecordedCall::Sts { operation, .. } => {
                *accepted.entry(format!("STS {operation}")).or_default() += 1
            }
            _ => {}
        }
    }
    let accepted: Vec<String> = accepted
        .iter()
        .map(|(operation, count)| format!("{operation} {count}"))
        .collect();
    report.note(format!(
        "scenario 11 job-API requests accepted, all sources: {}",
        accepted.join(", ")
    ));
}
