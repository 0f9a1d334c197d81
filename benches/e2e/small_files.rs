//! Scenario 2: many small files behind a registry that adds 20 ms to every request, current
//! behaviour vs `--upload-concurrency 1` (passed only when the worker lists the flag).

use std::sync::atomic::Ordering;
use std::time::Duration;

use pipeline_publisher::demo::DEMO_REPO;
use pipeline_publisher::sandbox::SandboxConfig;

use crate::data::small_files_zip;
use crate::proxies::{Policy, http_proxy};
use crate::report::{Report, Verdict};
use crate::support::{Bench, Endpoints, Stage, secs, spawn_worker};

const DELAY: Duration = Duration::from_millis(20);

pub async fn scenario_2(bench: &Bench, report: &mut Report) {
    let count = if bench.quick { 50 } else { 500 };
    eprintln!("[2] {count} small files, +20 ms per registry request");
    let stage = Stage::start(SandboxConfig::default()).await;
    let proxy = http_proxy(&stage.registry.base_url, Policy::Delay(DELAY)).await;
    let archive = small_files_zip(count).expect("small files zip");
    stage
        .sandbox
        .sandbox
        .put_object(
            &stage.config().artifact_bucket,
            "agent/BuildOutput/small",
            &archive,
        )
        .expect("object stored");

    let mut runs: Vec<(&str, Vec<String>)> = vec![("current default", Vec::new())];
    if bench.has_upload_concurrency {
        runs.push((
            "--upload-concurrency 1",
            vec!["--upload-concurrency".into(), "1".into()],
        ));
    }
    let mut timings = Vec::new();
    for (index, (label, args)) in runs.iter().enumerate() {
        let before_files = stage.registry.registry.artifacts(DEMO_REPO).len();
        let requests_before = proxy.counts.requests.load(Ordering::Relaxed);
        // Default TargetPath: each run publishes to fresh paths, so every file is uploaded.
        let job_id = stage.sandbox.sandbox.queue_job(stage.job(
            "agent/BuildOutput/small",
            Some(&proxy.url),
            None,
        ));
        let mut worker = spawn_worker(
            bench,
            &stage,
            &format!("s2-{index}"),
            Endpoints {
                job_api: &stage.sandbox.endpoint_url,
                s3: &stage.sandbox.endpoint_url,
            },
            args,
        );
        stage
            .expect_success(&job_id, Duration::from_secs(600), &mut worker)
            .await;
        let elapsed = worker.started.elapsed();
        worker.stop().await;
        let requests = proxy.counts.requests.load(Ordering::Relaxed) - requests_before;
        let published = stage.registry.registry.artifacts(DEMO_REPO).len() - before_files;
        assert_eq!(published, count, "{label}: every file published");
        eprintln!(
            "    {label}: {:.2} s, {requests} registry requests",
            secs(elapsed)
        );
        timings.push((*label, elapsed, requests));
    }

    let (_, current, requests) = timings[0];
    let floor = requests as f64 * secs(DELAY);
    match timings.get(1) {
        Some((_, sequential, _)) => {
            let speedup = secs(*sequential) / secs(current);
            report.row(
                "2",
                &format!("{count} small files, +20 ms/request: time"),
                format!("{:.2} s ({requests} requests)", secs(current)),
                format!("{:.2} s with --upload-concurrency 1", secs(*sequential)),
                format!("{speedup:.2}× faster"),
                "≥ 3.5×",
                Verdict::from(speedup >= 3.5),
            );
        }
        None => {
            report.row(
                "2",
                &format!("{count} small files, +20 ms/request: time"),
                format!(
                    "{:.2} s ({requests} requests; {floor:.1} s of it is the added latency in series)",
                    secs(current)
                ),
                "n/a: worker has no --upload-concurrency yet (current = sequential)".into(),
                "1.00× (sequential)".into(),
                "≥ 3.5×",
                Verdict::Missed,
            );
        }
    }
}
