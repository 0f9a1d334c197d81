//! Scenario 7 (issue 13): one large firmware image read from an S3 that serves each connection
//! at 90 MB/s, as real S3 does: `--download-concurrency 1` (one GET at a time, the old path's
//! speed) against the default (8 ranged GETs at once), in one run, for a stored and a deflated
//! zip; the floor; the bytes the worker wrote to its work directory; peak RSS.

use std::io::Read;
use std::time::{Duration, Instant};

use pipeline_publisher::sandbox::SandboxConfig;
use zip::CompressionMethod;

use crate::data::{IMAGE_NAME, write_firmware_zip};
use crate::report::{Report, Verdict, mib};
use crate::support::{Bench, Endpoints, Stage, secs, spawn_worker};

const JOB_TIMEOUT: Duration = Duration::from_secs(600);
/// Bytes per second each S3 connection delivers.
const S3_CONNECTION_RATE: u64 = 90_000_000;
/// What the default `--download-concurrency` multiplies it by.
const DEFAULT_CONCURRENCY: u64 = 8;

/// `/proc/<pid>/io`: bytes the process caused to be written to storage, and bytes it passed
/// to write calls of any kind (files and sockets).
fn io_counters(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0)
    };
    (field("write_bytes:"), field("wchar:"))
}

/// Writes the zip's image entry, inflated when it is deflated, to `image`: the floor's hash
/// pass is over the image the worker hashes, not over the (smaller, when deflated) zip.
fn write_image(zip: &std::path::Path, image: &std::path::Path) {
    let mut archive =
        zip::ZipArchive::new(std::fs::File::open(zip).expect("generated zip")).expect("a zip");
    let mut entry = archive.by_name(IMAGE_NAME).expect("the image entry");
    let mut out = std::io::BufWriter::new(std::fs::File::create(image).expect("image file"));
    std::io::copy(&mut entry, &mut out).expect("image written");
    std::io::Write::flush(&mut out).expect("image flushed");
}

/// One pass of the worker's own hashing (SHA-1, SHA-256, MD5 at once) over `path`.
fn hash_time(path: &std::path::Path) -> Duration {
    let mut file = std::fs::File::open(path).expect("extracted image");
    // Warm the page cache first, so the pass measures hashing, not the disk.
    let mut sink = vec![0u8; 1 << 20];
    while file.read(&mut sink).expect("read") > 0 {}
    let mut file = std::fs::File::open(path).expect("extracted image");
    let started = Instant::now();
    pipeline_publisher::checksum::hash_stream(&mut file, |_| Ok::<(), std::io::Error>(()), |e| e)
        .expect("hash pass");
    started.elapsed()
}

struct Run {
    elapsed: Duration,
    phases: String,
    peak_mib: f64,
    write_bytes: u64,
    wchar: u64,
}

pub async fn scenario_7(bench: &Bench, report: &mut Report) {
    let size = crate::large::image_bytes(bench);
    let tmpfs = crate::shell(&format!("stat -f -c %T '{}'", bench.root.display()))
        .trim()
        .to_owned();
    for (label, method) in [
        ("stored", CompressionMethod::Stored),
        ("deflated", CompressionMethod::Deflated),
    ] {
        eprintln!(
            "[7] {} MiB image, {label} zip, S3 at {} MB/s per connection",
            size >> 20,
            S3_CONNECTION_RATE / 1_000_000
        );
        let dir = bench.dir(&format!("s7-{label}"));
        let zip_path = dir.join("build-output.zip");
        let path = zip_path.clone();
        let generated =
            tokio::task::spawn_blocking(move || write_firmware_zip(&path, size, method, 0))
                .await
                .expect("generator task")
                .expect("zip generated");
        let (path, image_path) = (zip_path.clone(), dir.join("image-for-hash-pass.img"));
        let hashing = tokio::task::spawn_blocking(move || {
            write_image(&path, &image_path);
            let hashing = hash_time(&image_path);
            std::fs::remove_file(&image_path).expect("remove the extracted image");
            hashing
        })
        .await
        .expect("hash task");
        let key = format!("nestbox-firmware/BuildOutput/s7-{label}");

        let mut runs = Vec::new();
        for concurrency in [1u64, DEFAULT_CONCURRENCY] {
            // A fresh registry for each run: a second publish of the same image would be a
            // checksum deploy, which sends no bytes.
            let stage = Stage::start(SandboxConfig {
                s3_connection_rate: Some(S3_CONNECTION_RATE),
                ..SandboxConfig::default()
            })
            .await;
            stage.put_object_from_file(&key, &zip_path).await;
            let target = format!("c{concurrency}/{label}");
            let job_id = stage
                .sandbox
                .sandbox
                .queue_job(stage.job(&key, None, Some(&target)));
            let mut worker = spawn_worker(
                bench,
                &stage,
                &format!("s7-{label}-c{concurrency}"),
                Endpoints {
                    job_api: &stage.sandbox.endpoint_url,
                    s3: &stage.sandbox.endpoint_url,
                },
                &["--download-concurrency".into(), concurrency.to_string()],
            );
            stage
                .expect_success(&job_id, JOB_TIMEOUT, &mut worker)
                .await;
            let elapsed = worker.started.elapsed();
            let stats = worker.stats(bench);
            let (write_bytes, wchar) = io_counters(worker.pid);
            let phases = worker.phases();
            worker.stop().await;
            let stored = stage
                .registry
                .registry
                .artifact(
                    pipeline_publisher::demo::DEMO_REPO,
                    &format!("{target}/{IMAGE_NAME}"),
                )
                .expect("image published");
            assert_eq!(stored.sha256, generated.image_sha256, "{target}: content");
            eprintln!(
                "    concurrency {concurrency}: {:.2} s ({phases}); peak RSS {:.1} MiB; \
                 write_bytes {:.0} MiB, wchar {:.0} MiB",
                secs(elapsed),
                stats.peak_mib(),
                mib(write_bytes),
                mib(wchar)
            );
            runs.push(Run {
                elapsed,
                phases,
                peak_mib: stats.peak_mib(),
                write_bytes,
                wchar,
            });
        }
        std::fs::remove_file(&zip_path).expect("remove generated zip");
        let (single, ranged) = (&runs[0], &runs[1]);
        let speedup = secs(single.elapsed) / secs(ranged.elapsed);
        let download_floor =
            generated.zip_bytes as f64 / (DEFAULT_CONCURRENCY * S3_CONNECTION_RATE) as f64;
        // The registry term (bytes ÷ 1 GB/s); the link itself is loopback, uncapped.
        let registry_floor = generated.image_bytes as f64 / 1e9;
        let floor = download_floor.max(registry_floor).max(secs(hashing));
        let of_floor = secs(ranged.elapsed) / floor;
        let zip = format!("{label} zip ({:.0} MiB)", mib(generated.zip_bytes));
        report.row(
            "7",
            &format!("S3 @90 MB/s per connection, {zip}: end-to-end time"),
            format!("{:.2} s default ({})", secs(ranged.elapsed), ranged.phases),
            format!(
                "{:.2} s --download-concurrency 1 ({})",
                secs(single.elapsed),
                single.phases
            ),
            format!("{speedup:.2}× faster"),
            "≥ 4×",
            Verdict::from(speedup >= 4.0),
        );
        report.row(
            "7",
            &format!("same, against the floor ({label})"),
            format!("{:.2} s", secs(ranged.elapsed)),
            format!(
                "floor {floor:.2} s = max(download {download_floor:.2} s, registry \
                 {registry_floor:.2} s, hash pass {:.2} s)",
                secs(hashing)
            ),
            format!("{of_floor:.2}× of floor"),
            "≤ 1.5×",
            Verdict::from(of_floor <= 1.5),
        );
        // Archive bytes plus, for deflated entries, what they expand to (the image; the two
        // small files are noise).
        let budget = generated.zip_bytes
            + if method == CompressionMethod::Stored {
                0
            } else {
                generated.image_bytes
            };
        let written = ranged.write_bytes;
        let measured = if written > 0 { written } else { ranged.wchar };
        let what = if written > 0 {
            "write_bytes"
        } else {
            "wchar (write_bytes is 0 on tmpfs; wchar also counts socket writes, i.e. the upload)"
        };
        let ratio = measured as f64 / budget as f64;
        report.row(
            "7",
            &format!("bytes written to the work dir, {label} (default)"),
            format!("{:.0} MiB {what}", mib(measured)),
            format!(
                "{:.0} MiB budget (archive{}); concurrency 1 wrote {:.0} MiB",
                mib(budget),
                if method == CompressionMethod::Stored {
                    ""
                } else {
                    " + extracted image"
                },
                mib(if written > 0 {
                    single.write_bytes
                } else {
                    single.wchar
                })
            ),
            format!("{ratio:.2}× of budget"),
            "≤ 1.05×",
            if written > 0 {
                Verdict::from(ratio <= 1.05)
            } else {
                Verdict::Info
            },
        );
        let peak = ranged.peak_mib.max(single.peak_mib);
        report.row(
            "7",
            &format!("peak RSS, {label}"),
            format!("{:.1} MiB default", ranged.peak_mib),
            format!("{:.1} MiB --download-concurrency 1", single.peak_mib),
            "—".into(),
            "≤ 64 MiB",
            Verdict::from(peak <= 64.0),
        );
    }
    report.note(format!(
        "scenario 7: work dir on {tmpfs}; S3 stand-in capped at {} MB/s per connection; \
         registry on loopback, uncapped",
        S3_CONNECTION_RATE / 1_000_000
    ));
}
