//! Scenario 8 (issue 13): one large firmware image through a registry link capped at 100 MB/s
//! per connection, the registry supporting multipart deploys: the worker's multipart deploy
//! (the default: 5 parts of 20 MiB at a time) against one streamed PUT of the same image
//! (`--multipart-min-size 1TiB`), in one run, each against a registry of its own so neither
//! finds the other's content.

use std::time::Duration;

use pipeline_publisher::demo::{DEMO_PASSWORD, DEMO_REPO, DEMO_USER};
use pipeline_publisher::mock_registry::{
    MockRegistry, MockRegistryConfig, MultipartMode, RunningMockRegistry,
};
use pipeline_publisher::netem::Link;
use pipeline_publisher::sandbox::SandboxConfig;
use zip::CompressionMethod;

use crate::data::{IMAGE_NAME, write_firmware_zip};
use crate::large::image_bytes;
use crate::report::{Report, Verdict};
use crate::support::{Bench, Endpoints, Stage, secs, spawn_worker};

const JOB_TIMEOUT: Duration = Duration::from_secs(300);
/// One connection to the registry moves at most this many bytes a second, each way.
const PER_CONNECTION: f64 = 100e6;
/// The bound on the worker's peak memory.
const PEAK_RSS_LIMIT_MIB: f64 = 64.0;

async fn capped_registry() -> RunningMockRegistry {
    MockRegistry::start(MockRegistryConfig {
        users: vec![(DEMO_USER.to_owned(), DEMO_PASSWORD.to_owned())],
        multipart: MultipartMode::Supported,
        link: Link::symmetric(Some(PER_CONNECTION), None),
        ..MockRegistryConfig::default()
    })
    .await
    .expect("mock registry starts")
}

/// "upload 4.80 s" out of [`crate::support::WorkerProcess::phases`].
fn upload_phase(phases: &str) -> Option<f64> {
    phases
        .split(", ")
        .find_map(|phase| phase.strip_prefix("upload "))
        .and_then(|seconds| seconds.trim_end_matches(" s").parse().ok())
}

struct Run {
    total: Duration,
    upload: Option<f64>,
    peak_rss_mib: f64,
    creates: usize,
    parts: usize,
}

pub async fn scenario_8(bench: &Bench, report: &mut Report) {
    let size = image_bytes(bench);
    eprintln!(
        "[8] {} MiB image, registry link 100 MB/s per connection, multipart supported",
        size >> 20
    );
    let stage = Stage::start(SandboxConfig::default()).await;
    let dir = bench.dir("s8");
    let zip_path = dir.join("build-output.zip");
    let generated = {
        let path = zip_path.clone();
        tokio::task::spawn_blocking(move || {
            write_firmware_zip(&path, size, CompressionMethod::Stored, 0)
        })
        .await
        .expect("generator task")
        .expect("zip generated")
    };
    let key = "nestbox-firmware/BuildOutput/s8";
    stage.put_object_from_file(key, &zip_path).await;
    std::fs::remove_file(&zip_path).expect("remove generated zip");

    let mut runs = Vec::new();
    for (label, extra) in [
        (
            "single PUT",
            vec!["--multipart-min-size".to_owned(), "1TiB".to_owned()],
        ),
        // --quick images are below the default threshold.
        (
            "multipart",
            if bench.quick {
                vec!["--multipart-min-size".to_owned(), "16MiB".to_owned()]
            } else {
                Vec::new()
            },
        ),
    ] {
        let registry = capped_registry().await;
        let target = "s8/firmware";
        let job_id =
            stage
                .sandbox
                .sandbox
                .queue_job(stage.job(key, Some(&registry.base_url), Some(target)));
        let name = format!("s8-{}", label.replace(' ', "-"));
        let mut worker = spawn_worker(
            bench,
            &stage,
            &name,
            Endpoints {
                job_api: &stage.sandbox.endpoint_url,
                s3: &stage.sandbox.endpoint_url,
            },
            &extra,
        );
        stage
            .expect_success(&job_id, JOB_TIMEOUT, &mut worker)
            .await;
        let total = worker.started.elapsed();
        let stats = worker.stats(bench);
        let phases = worker.phases();
        worker.stop().await;
        let path = format!("{target}/{IMAGE_NAME}");
        let stored = registry
            .registry
            .artifact(DEMO_REPO, &path)
            .unwrap_or_else(|| panic!("{label}: {path} was not published"));
        assert_eq!(
            stored.sha256, generated.image_sha256,
            "{label}: content differs"
        );
        assert_eq!(stored.size, generated.image_bytes);
        let requests = registry.registry.requests();
        let creates = requests
            .iter()
            .filter(|request| request.path == "/artifactory/api/v1/uploads/create")
            .count();
        let parts = requests
            .iter()
            .filter(|request| {
                request
                    .path
                    .starts_with("/artifactory/api/v1/uploads/part/")
            })
            .count();
        eprintln!(
            "    {label}: {:.2} s ({phases}); peak RSS {:.1} MiB; {creates} multipart uploads, {parts} parts",
            secs(total),
            stats.peak_mib()
        );
        runs.push(Run {
            total,
            upload: upload_phase(&phases),
            peak_rss_mib: stats.peak_mib(),
            creates,
            parts,
        });
        registry.shutdown().await;
    }
    let (single, multipart) = (&runs[0], &runs[1]);
    assert_eq!(
        single.creates, 0,
        "the single-PUT run made no multipart upload"
    );
    assert_eq!(
        multipart.creates, 1,
        "the multipart run made one multipart upload"
    );

    if let (Some(ours), Some(baseline)) = (multipart.upload, single.upload) {
        let speedup = baseline / ours;
        report.row(
            "8",
            "1 GiB image, registry 100 MB/s per connection: upload phase",
            format!(
                "{ours:.2} s multipart ({} parts, 5 at a time)",
                multipart.parts
            ),
            format!("{baseline:.2} s single PUT"),
            format!("{speedup:.2}× faster"),
            "≥ 3×",
            Verdict::from(speedup >= 3.0),
        );
    }
    let speedup = secs(single.total) / secs(multipart.total);
    report.row(
        "8",
        "1 GiB image, registry 100 MB/s per connection: whole job",
        format!("{:.2} s multipart", secs(multipart.total)),
        format!("{:.2} s single PUT", secs(single.total)),
        format!("{speedup:.2}× faster"),
        "≥ 3×",
        Verdict::from(speedup >= 3.0),
    );
    let peak = multipart.peak_rss_mib.max(single.peak_rss_mib);
    report.row(
        "8",
        "1 GiB image, registry 100 MB/s per connection: worker peak RSS",
        format!("{:.1} MiB multipart", multipart.peak_rss_mib),
        format!("{:.1} MiB single PUT", single.peak_rss_mib),
        "—".into(),
        "≤ 64 MiB",
        Verdict::from(peak <= PEAK_RSS_LIMIT_MIB),
    );
}
