//! Scenario 1 (one large firmware image, ours vs the raw tools) and scenario 3 (re-publishing an
//! unchanged large build through a 100 MB/s link).

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use pipeline_publisher::demo::{DEMO_PASSWORD, DEMO_REPO, DEMO_USER};
use pipeline_publisher::sandbox::SandboxConfig;
use zip::CompressionMethod;

use crate::data::{GeneratedZip, IMAGE_NAME, write_firmware_zip};
use crate::proxies::{static_file_server, tcp_rate_limiter};
use crate::report::{Report, Verdict, mib};
use crate::support::{Bench, Endpoints, Stage, secs, spawn_process, spawn_worker};

const SAMPLE_WORKER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/e2e/sample_worker.py");

const JOB_TIMEOUT: Duration = Duration::from_secs(300);

/// The raw-tools pipeline, exactly as run: fetch the zip with curl from a plain HTTP server,
/// unzip it, hash each file with sha256sum, sha1sum and md5sum (three reads), PUT each file
/// with `curl -T` and the three checksum headers (basic auth, one curl process per file).
const RAW_TOOLS_SCRIPT: &str = r#"
set -euo pipefail
cd "$WORK"
step() { printf '%s %s\n' "$1" "$EPOCHREALTIME" >> "$WORK/steps"; }
step start
curl -sSf --noproxy '*' -o artifact.zip "$ZIP_URL"
step curl_get
mkdir out
unzip -q artifact.zip -d out
rm artifact.zip
step unzip
cd out
find . -type f -printf '%P\n' | sort > ../files
while read -r f; do
  sha256=$(sha256sum "$f" | cut -d' ' -f1)
  sha1=$(sha1sum "$f" | cut -d' ' -f1)
  md5=$(md5sum "$f" | cut -d' ' -f1)
  printf '%s %s %s %s\n' "$f" "$sha256" "$sha1" "$md5" >> ../sums
done < ../files
step hash
while read -r f sha256 sha1 md5; do
  curl -sSf --noproxy '*' -o /dev/null -u "$REG_USER:$REG_PASSWORD" \
    -H "X-Checksum-Sha256: $sha256" -H "X-Checksum-Sha1: $sha1" -H "X-Checksum-Md5: $md5" \
    -T "$f" "$REGISTRY/artifactory/$REPO/$TARGET/$f"
done < ../sums
step curl_put
"#;

pub fn image_bytes(bench: &Bench) -> u64 {
    if bench.quick { 64 << 20 } else { 1 << 30 }
}

async fn generate(path: &Path, bytes: u64, method: CompressionMethod, variant: u8) -> GeneratedZip {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || write_firmware_zip(&path, bytes, method, variant))
        .await
        .expect("generator task")
        .expect("zip generated")
}

/// The registry's record of `prefix/IMAGE_NAME`, checked against the generated image.
fn check_published(stage: &Stage, prefix: &str, generated: &GeneratedZip) {
    let path = format!("{prefix}/{IMAGE_NAME}");
    let stored = stage
        .registry
        .registry
        .artifact(DEMO_REPO, &path)
        .unwrap_or_else(|| panic!("{path} was not published"));
    assert_eq!(
        stored.sha256, generated.image_sha256,
        "{path}: content differs"
    );
    assert_eq!(stored.size, generated.image_bytes);
}

pub async fn scenario_1(bench: &Bench, report: &mut Report) {
    let size = image_bytes(bench);
    for (label, method) in [
        ("stored", CompressionMethod::Stored),
        ("deflated", CompressionMethod::Deflated),
    ] {
        eprintln!("[1] {} MiB image, {label} zip", size >> 20);
        let stage = Stage::start(SandboxConfig::default()).await;
        let dir = bench.dir(&format!("s1-{label}"));
        let zip_path = dir.join("build-output.zip");
        let generated = generate(&zip_path, size, method, 0).await;
        let key = format!("nestbox-firmware/BuildOutput/{label}");
        stage.put_object_from_file(&key, &zip_path).await;
        std::fs::remove_file(&zip_path).expect("remove generated zip");
        let object = stage
            .sandbox
            .sandbox
            .object(&stage.config().artifact_bucket, &key)
            .expect("object stored");

        // Ours: the job is queued, then the worker starts; the clock runs from its spawn to
        // the accepted PutJobSuccessResult.
        let target = format!("ours/{label}");
        let job_id = stage
            .sandbox
            .sandbox
            .queue_job(stage.job(&key, None, Some(&target)));
        let mut worker = spawn_worker(
            bench,
            &stage,
            &format!("s1-{label}"),
            Endpoints {
                job_api: &stage.sandbox.endpoint_url,
                s3: &stage.sandbox.endpoint_url,
            },
            &[],
        );
        stage
            .expect_success(&job_id, JOB_TIMEOUT, &mut worker)
            .await;
        let ours = worker.started.elapsed();
        let stats = worker.stats(bench);
        let phases = worker.phases();
        worker.stop().await;
        check_published(&stage, &target, &generated);

        // The raw tools, against the same registry, fetching the same bytes over plain HTTP.
        let server = static_file_server(object.content_path.clone()).await;
        let work = bench.dir(&format!("s1-{label}-raw"));
        let raw_target = format!("raw/{label}");
        let started = Instant::now();
        let output = tokio::process::Command::new("bash")
            .arg("-c")
            .arg(RAW_TOOLS_SCRIPT)
            .env("WORK", &work)
            .env("ZIP_URL", format!("{}/artifact.zip", server.url))
            .env("REGISTRY", &stage.registry.base_url)
            .env("REPO", DEMO_REPO)
            .env("TARGET", &raw_target)
            .env("REG_USER", DEMO_USER)
            .env("REG_PASSWORD", DEMO_PASSWORD)
            .output()
            .await
            .expect("bash runs");
        let raw = started.elapsed();
        assert!(
            output.status.success(),
            "raw tools failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        check_published(&stage, &raw_target, &generated);
        let steps = step_times(&work.join("steps"));
        std::fs::remove_dir_all(&work).ok();

        // The Python worker in the sample's style, when python3 has boto3.
        let python = match &bench.python {
            Some(python) => {
                let python_target = format!("python/{label}");
                let job_id =
                    stage
                        .sandbox
                        .sandbox
                        .queue_job(stage.job(&key, None, Some(&python_target)));
                let mut process = spawn_process(
                    bench,
                    &stage,
                    &format!("s1-{label}-python"),
                    Endpoints {
                        job_api: &stage.sandbox.endpoint_url,
                        s3: &stage.sandbox.endpoint_url,
                    },
                    python,
                    &[SAMPLE_WORKER.to_owned()],
                    false,
                );
                stage
                    .expect_success(&job_id, JOB_TIMEOUT, &mut process)
                    .await;
                let elapsed = process.started.elapsed();
                let python_stats = process.stats(bench);
                process.stop().await;
                check_published(&stage, &python_target, &generated);
                Some((elapsed, python_stats))
            }
            None => None,
        };

        let ratio = secs(ours) / secs(raw);
        report.row(
            "1",
            &format!(
                "{} MiB image, {label} zip ({:.0} MiB): end-to-end time",
                size >> 20,
                mib(generated.zip_bytes)
            ),
            format!(
                "{:.2} s (CPU {:.2} s; {phases})",
                secs(ours),
                secs(stats.cpu)
            ),
            format!("{:.2} s raw tools ({steps})", secs(raw)),
            format!("{ratio:.2}× of raw"),
            "≤ 0.4×",
            Verdict::from(ratio <= 0.4),
        );
        let (python_time, python_rss, python_ratio) = match python {
            Some((elapsed, python_stats)) => (
                format!(
                    "{:.2} s Python sample-style (CPU {:.2} s)",
                    secs(elapsed),
                    secs(python_stats.cpu)
                ),
                format!("{:.0} MiB Python sample-style", python_stats.peak_mib()),
                format!("{:.2}× of Python", secs(ours) / secs(elapsed)),
            ),
            None => (
                "python3 with boto3 not found: skipped".into(),
                "—".into(),
                "—".into(),
            ),
        };
        report.row(
            "1",
            &format!("same, vs the Python worker in the sample's style ({label})"),
            format!("{:.2} s", secs(ours)),
            python_time,
            python_ratio,
            "—",
            Verdict::Info,
        );
        report.row(
            "1",
            &format!("peak RSS, {label}"),
            format!("{:.1} MiB", stats.peak_mib()),
            python_rss,
            "—".into(),
            "≤ 64 MiB",
            Verdict::from(stats.peak_mib() <= 64.0),
        );
    }
}

/// "curl_get 1.2 s, unzip 3.4 s, …" from the script's step stamps.
fn step_times(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let stamps: Vec<(String, f64)> = text
        .lines()
        .filter_map(|line| {
            let (name, at) = line.split_once(' ')?;
            Some((name.to_owned(), at.parse().ok()?))
        })
        .collect();
    stamps
        .windows(2)
        .map(|pair| format!("{} {:.2} s", pair[1].0, pair[1].1 - pair[0].1))
        .collect::<Vec<_>>()
        .join(", ")
}

pub async fn scenario_3(bench: &Bench, report: &mut Report) {
    let size = image_bytes(bench);
    const RATE: f64 = 100e6;
    eprintln!(
        "[3] re-publish of an unchanged {} MiB build, registry link 100 MB/s",
        size >> 20
    );
    let stage = Stage::start(SandboxConfig::default()).await;
    let upstream = stage
        .registry
        .base_url
        .trim_start_matches("http://")
        .parse()
        .expect("registry address");
    let link = tcp_rate_limiter(upstream, RATE).await;
    let dir = bench.dir("s3");
    let mut results = Vec::new();
    for (variant, label) in [
        (0u8, "first publish"),
        (1u8, "re-publish (new zip, same files)"),
    ] {
        let zip_path = dir.join(format!("build-{variant}.zip"));
        let generated = generate(&zip_path, size, CompressionMethod::Stored, variant).await;
        let key = format!("nestbox-firmware/BuildOutput/run-{variant}");
        stage.put_object_from_file(&key, &zip_path).await;
        std::fs::remove_file(&zip_path).expect("remove generated zip");
        // The default TargetPath ({PipelineName}/{ExecutionId}): each run lands at new paths,
        // as a real re-run of the pipeline would.
        let job_id = stage
            .sandbox
            .sandbox
            .queue_job(stage.job(&key, Some(&link.url), None));
        let sent_before = link.counts.sent.load(Ordering::Relaxed);
        let mut worker = spawn_worker(
            bench,
            &stage,
            &format!("s3-{variant}"),
            Endpoints {
                job_api: &stage.sandbox.endpoint_url,
                s3: &stage.sandbox.endpoint_url,
            },
            &[],
        );
        stage
            .expect_success(&job_id, JOB_TIMEOUT, &mut worker)
            .await;
        let elapsed = worker.started.elapsed();
        eprintln!("    phases: {}", worker.phases());
        worker.stop().await;
        let sent = link.counts.sent.load(Ordering::Relaxed) - sent_before;
        // Everything it sent is in the registry; this run's image is among them.
        let images = stage
            .registry
            .registry
            .artifacts(DEMO_REPO)
            .into_iter()
            .filter(|artifact| artifact.path.ends_with(IMAGE_NAME))
            .filter(|artifact| artifact.sha256 == generated.image_sha256)
            .count();
        assert_eq!(
            images,
            usize::from(variant) + 1,
            "image published at a new path"
        );
        eprintln!(
            "    {label}: {:.2} s, {:.3} MiB sent",
            secs(elapsed),
            mib(sent)
        );
        results.push((elapsed, sent));
    }
    let (first_time, first_sent) = results[0];
    let (again_time, again_sent) = results[1];
    let speedup = secs(first_time) / secs(again_time);
    report.row(
        "3",
        "re-publish unchanged build @100 MB/s: bytes sent to registry",
        format!("{:.3} MiB", mib(again_sent)),
        format!("{:.1} MiB first publish", mib(first_sent)),
        "—".into(),
        "< 1 MiB",
        Verdict::from(again_sent < 1 << 20),
    );
    report.row(
        "3",
        "re-publish unchanged build @100 MB/s: time",
        format!("{:.2} s", secs(again_time)),
        format!("{:.2} s first publish", secs(first_time)),
        format!("{speedup:.2}× faster"),
        "≥ 3×",
        Verdict::from(speedup >= 3.0),
    );
}
