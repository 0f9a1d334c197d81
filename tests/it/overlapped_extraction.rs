//! Extraction follows the ranged download (issue 13, point 2): once the central directory is
//! known, each entry is checked, hashed and placed as soon as its bytes have arrived, while
//! later ranges are still downloading. The S3 stand-in holds the download open with a range
//! that keeps failing, so anything extraction does before the job ends, it did while the
//! download was still running.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pipeline_publisher::artifacts::{DownloadSettings, ExtractLimits, extract_zip};
use pipeline_publisher::demo::{DEMO_REPO, LocalEnvironment};
use pipeline_publisher::publish::PublisherSettings;
use pipeline_publisher::sandbox::{ArtifactSpec, JobResult};

use crate::support;

const PART: u64 = 64 * 1024;
/// The first read of a zip: its last 128 KiB.
const TAIL: u64 = 128 * 1024;

/// Release notes and a 200 KiB root filesystem (both deflated), a 600 KiB stored image, then
/// a 300 KiB stored file that the held range falls in.
struct Archive {
    bytes: Vec<u8>,
    rootfs: Vec<u8>,
    image: Vec<u8>,
    image_data_start: u64,
    /// The start of the range the stand-in keeps failing: the last part before the tail,
    /// inside the late file, after the image.
    held_range_start: u64,
    /// Its `Range` header.
    held_range: String,
}

fn archive() -> Archive {
    let rootfs: Vec<u8> = support::noise(100 * 1024, 20).repeat(2);
    let image = support::noise(600 * 1024, 21);
    let late = support::noise(300 * 1024, 22);
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    writer
        .start_file("NOTES.md", zip::write::SimpleFileOptions::default())
        .unwrap();
    writer.write_all(b"release notes").unwrap();
    writer
        .start_file("fw/rootfs.bin", zip::write::SimpleFileOptions::default())
        .unwrap();
    writer.write_all(&rootfs).unwrap();
    writer.start_file("fw/image.bin", stored).unwrap();
    writer.write_all(&image).unwrap();
    writer.start_file("z-late.bin", stored).unwrap();
    writer.write_all(&late).unwrap();
    let bytes = writer.finish().unwrap().into_inner();

    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.clone())).unwrap();
    let image_data_start = zip.by_name("fw/image.bin").unwrap().data_start().unwrap();
    let late_data_start = zip.by_name("z-late.bin").unwrap().data_start().unwrap();
    let tail_start = bytes.len() as u64 - TAIL;
    let held_range_start = (tail_start - 1) / PART * PART;
    assert!(
        held_range_start > late_data_start,
        "the held range is the late file's"
    );
    let held_range = format!(
        "bytes={held_range_start}-{}",
        (held_range_start + PART).min(tail_start) - 1
    );
    Archive {
        bytes,
        rootfs,
        image,
        image_data_start,
        held_range_start,
        held_range,
    }
}

struct Run {
    environment: LocalEnvironment,
    artifact: ArtifactSpec,
    job_id: String,
    work: tempfile::TempDir,
}

/// A job publishing `bytes`, with the range at `held` failing on every attempt.
async fn job(bytes: &[u8], held: u64) -> Run {
    let environment = LocalEnvironment::start().await.unwrap();
    let bucket = environment.sandbox.sandbox.config().artifact_bucket.clone();
    let key = "nestbox-firmware/BuildOutput/Overlap1";
    environment
        .sandbox
        .sandbox
        .put_object(&bucket, key, bytes)
        .unwrap();
    environment.sandbox.sandbox.fail_ranges_starting_at(held);
    let artifact = ArtifactSpec {
        name: "BuildOutput".into(),
        revision: Some("0123456789abcdef".into()),
        bucket,
        key: key.into(),
    };
    let job_id = environment.queue_job(
        "nestbox-firmware",
        environment.firmware_configuration(),
        vec![artifact.clone()],
    );
    Run {
        environment,
        artifact,
        job_id,
        work: tempfile::tempdir().unwrap(),
    }
}

impl Run {
    fn publisher_settings(&self) -> PublisherSettings {
        PublisherSettings {
            work_dir: Some(self.work.path().to_owned()),
            download: DownloadSettings {
                concurrency: 4,
                part_size: PART,
            },
            ..PublisherSettings::default()
        }
    }

    /// Runs the worker for one job; meanwhile, `watch` is asked (every 5 ms, for at most
    /// 30 s) whether what it waits for has happened, and what it then returns is kept.
    async fn run_watching<T>(&self, mut watch: impl FnMut(&Path) -> Option<T>) -> (JobResult, T) {
        let publisher = self
            .environment
            .publisher(self.publisher_settings())
            .unwrap();
        let worker = self.environment.run_worker(publisher, 1);
        let watcher = async {
            let started = Instant::now();
            loop {
                if let Some(seen) = watch(self.work.path()) {
                    return seen;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "not seen within 30 s"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        let (ran, seen) = tokio::join!(worker, watcher);
        ran.unwrap();
        let record = self.environment.sandbox.sandbox.job(&self.job_id).unwrap();
        let [result] = record.results.as_slice() else {
            panic!("one result: {:?}", record.results);
        };
        (result.clone(), seen)
    }

    /// Attempts at the `held` range so far.
    fn held_attempts(&self, range: &str) -> usize {
        self.environment
            .sandbox
            .sandbox
            .s3_reads()
            .iter()
            .filter(|read| read.key == self.artifact.key && read.range.as_deref() == Some(range))
            .count()
    }

    fn published(&self) -> usize {
        self.environment
            .registry
            .registry
            .artifacts(DEMO_REPO)
            .len()
    }
}

/// The file extraction places at `relative` in the (only) job directory under `work`.
fn extracted(work: &Path, relative: &str) -> Option<PathBuf> {
    std::fs::read_dir(work)
        .ok()?
        .filter_map(Result::ok)
        .map(|job| job.path().join("artifact-0").join(relative))
        .find(|path| path.exists())
}

fn failure(result: &JobResult) -> (&str, &str) {
    match result {
        JobResult::Failure {
            failure_type,
            message,
            ..
        } => (failure_type, message),
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn entries_are_inflated_checked_hashed_and_placed_while_the_download_is_still_running() {
    let archive = archive();
    let held = archive.held_range_start;
    let run = job(&archive.bytes, held).await;
    let attempts = pipeline_publisher::retry::S3_RANGE.attempts as usize;

    let (result, attempts_when_placed) = run
        .run_watching(|work| {
            // The image is placed only after its CRC and every check passed, hashed in the
            // same pass; it comes after the inflated root filesystem in the archive.
            let rootfs = extracted(work, "fw/rootfs.bin")?;
            let image = extracted(work, "fw/image.bin")?;
            let whole = std::fs::read(image).ok()? == archive.image
                && std::fs::read(rootfs).ok()? == archive.rootfs;
            whole.then(|| run.held_attempts(&archive.held_range))
        })
        .await;
    assert!(
        attempts_when_placed < attempts,
        "the image was placed while the held range was still being retried \
         ({attempts_when_placed} of {attempts} attempts)"
    );

    // The download never completes: its error is the job's, and nothing was published.
    let (failure_type, message) = failure(&result);
    assert_eq!(failure_type, "JobFailed");
    assert!(message.contains("`BuildOutput`"), "{message}");
    let range = &archive.held_range;
    assert!(message.contains(&format!("{range} of s3://")), "{message}");
    assert!(
        message.contains(&format!("after {attempts} attempts")),
        "{message}"
    );
    assert_eq!(run.published(), 0);
}

#[tokio::test]
async fn a_corrupt_entry_met_mid_download_fails_the_job_as_a_full_download_would() {
    let mut archive = archive();
    archive.bytes[archive.image_data_start as usize + 1000] ^= 1;
    // What extraction says of this archive once it is whole.
    let offline = tempfile::tempdir().unwrap();
    let copy = offline.path().join("artifact.zip");
    std::fs::write(&copy, &archive.bytes).unwrap();
    let out = offline.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let expected = extract_zip(&copy, &out, ExtractLimits::default())
        .unwrap_err()
        .to_string();
    assert!(expected.contains("fw/image.bin"), "{expected}");

    let held = archive.held_range_start;
    let run = job(&archive.bytes, held).await;
    let (result, ()) = run.run_watching(|_| Some(())).await;
    // The download could not have finished (its last part is held): the entry was checked
    // while it ran, and the job reports the same refusal as after a full download.
    let (failure_type, message) = failure(&result);
    assert_eq!(failure_type, "ConfigurationError");
    assert!(message.contains("`BuildOutput`"), "{message}");
    assert!(message.contains(&expected), "{message} lacks {expected}");
    assert_eq!(run.published(), 0);
}
