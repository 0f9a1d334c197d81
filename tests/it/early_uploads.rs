//! Uploads start while the artifact is still downloading (issue 13, point 2; on by default,
//! `PublisherSettings::early_uploads`): a generic artifact's files are deployed as soon as
//! extraction has placed and hashed them. The S3 stand-in keeps failing a late range, so
//! whatever the registry holds before the job ends, it got while the download was running; the
//! failure then takes those files back, so that a download failure publishes nothing.

use std::io::Write;
use std::time::{Duration, Instant};

use pipeline_publisher::artifacts::DownloadSettings;
use pipeline_publisher::demo::{DEMO_REPO, LocalEnvironment};
use pipeline_publisher::mock_registry::{MockRegistryConfig, StoredArtifact};
use pipeline_publisher::publish::PublisherSettings;
use pipeline_publisher::sandbox::{ArtifactSpec, JobResult};

use crate::support;

const PART: u64 = 64 * 1024;
/// The first read of a zip: its last 128 KiB.
const TAIL: u64 = 128 * 1024;
const KEY: &str = "nestbox-firmware/BuildOutput/Early1";

/// Release notes (deflated), a 600 KiB stored image, then a 300 KiB stored file in which the
/// held range lies; and that range's start and `Range` header.
fn archive() -> (Vec<u8>, u64, String) {
    archive_with(&[])
}

/// [`archive`] with `extra` files first.
fn archive_with(extra: &[(&str, &[u8])]) -> (Vec<u8>, u64, String) {
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, body) in extra {
        writer
            .start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        writer.write_all(body).unwrap();
    }
    writer
        .start_file("NOTES.md", zip::write::SimpleFileOptions::default())
        .unwrap();
    writer.write_all(b"release notes").unwrap();
    writer.start_file("fw/image.bin", stored).unwrap();
    writer.write_all(&support::noise(600 * 1024, 31)).unwrap();
    writer.start_file("z-late.bin", stored).unwrap();
    writer.write_all(&support::noise(300 * 1024, 32)).unwrap();
    let bytes = writer.finish().unwrap().into_inner();

    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.clone())).unwrap();
    let late_data_start = zip.by_name("z-late.bin").unwrap().data_start().unwrap();
    let tail_start = bytes.len() as u64 - TAIL;
    let held = (tail_start - 1) / PART * PART;
    assert!(held > late_data_start, "the held range is the late file's");
    let range = format!("bytes={held}-{}", (held + PART).min(tail_start) - 1);
    (bytes, held, range)
}

struct Fixture {
    environment: LocalEnvironment,
    artifact: ArtifactSpec,
    work: tempfile::TempDir,
}

impl Fixture {
    /// The demo's environment, whose publishing user may deploy and delete.
    async fn new(bytes: &[u8]) -> Self {
        Self::with(bytes, LocalEnvironment::start().await.unwrap())
    }

    /// The demo's environment, with a publishing user that may deploy but not delete.
    async fn deploy_only(bytes: &[u8]) -> Self {
        let environment = LocalEnvironment::start_with(MockRegistryConfig {
            deleters: Vec::new(),
            ..LocalEnvironment::registry_config()
        })
        .await
        .unwrap();
        Self::with(bytes, environment)
    }

    fn with(bytes: &[u8], environment: LocalEnvironment) -> Self {
        let bucket = environment.sandbox.sandbox.config().artifact_bucket.clone();
        environment
            .sandbox
            .sandbox
            .put_object(&bucket, KEY, bytes)
            .unwrap();
        let artifact = ArtifactSpec {
            name: "BuildOutput".into(),
            revision: Some("0123456789abcdef".into()),
            bucket,
            key: KEY.into(),
        };
        Self {
            environment,
            artifact,
            work: tempfile::tempdir().unwrap(),
        }
    }

    /// Queues a job and runs the worker for it with early uploads on or off; meanwhile
    /// `watch` is asked (every 5 ms, for at most 30 s) whether what it waits for has
    /// happened, and what it then returns is kept.
    async fn run<T>(&self, early: bool, mut watch: impl FnMut() -> Option<T>) -> (JobResult, T) {
        let job_id = self.environment.queue_job(
            "nestbox-firmware",
            self.environment.firmware_configuration(),
            vec![self.artifact.clone()],
        );
        let publisher = self
            .environment
            .publisher(PublisherSettings {
                work_dir: Some(self.work.path().to_owned()),
                download: DownloadSettings {
                    concurrency: 4,
                    part_size: PART,
                },
                early_uploads: early,
                ..PublisherSettings::default()
            })
            .unwrap();
        let worker = self.environment.run_worker(publisher, 1);
        let watcher = async {
            let started = Instant::now();
            loop {
                if let Some(seen) = watch() {
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
        let record = self.environment.sandbox.sandbox.job(&job_id).unwrap();
        let [result] = record.results.as_slice() else {
            panic!("one result: {:?}", record.results);
        };
        (result.clone(), seen)
    }

    fn published(&self) -> Vec<StoredArtifact> {
        let mut published = self.environment.registry.registry.artifacts(DEMO_REPO);
        published.sort_by(|a, b| a.path.cmp(&b.path));
        published
    }

    fn published_paths(&self) -> Vec<String> {
        self.published().into_iter().map(|file| file.path).collect()
    }

    fn held_attempts(&self, range: &str) -> usize {
        self.environment
            .sandbox
            .sandbox
            .s3_reads()
            .iter()
            .filter(|read| read.key == KEY && read.range.as_deref() == Some(range))
            .count()
    }
}

/// Holds the late range until both earlier files are in the registry; returns how many
/// attempts the held range had had by then, and the job's result.
async fn run_holding_the_late_range(fixture: &Fixture, held: u64, range: &str) -> JobResult {
    fixture
        .environment
        .sandbox
        .sandbox
        .fail_ranges_starting_at(held);
    let attempts = pipeline_publisher::retry::S3_RANGE.attempts as usize;
    let (result, attempts_when_deployed) = fixture
        .run(true, || {
            let paths = fixture.published_paths();
            EARLY_FILES
                .iter()
                .all(|file| paths.iter().any(|path| path == file))
                .then(|| fixture.held_attempts(range))
        })
        .await;
    assert!(
        attempts_when_deployed < attempts,
        "the files were deployed while the held range was still being retried \
         ({attempts_when_deployed} of {attempts} attempts)"
    );
    result
}

const EARLY_FILES: [&str; 2] = [
    "nestbox-cam/0123456/NOTES.md",
    "nestbox-cam/0123456/fw/image.bin",
];

/// Runs the job again with every range answered: it succeeds, and all three files are there.
async fn rerun_answering_every_range(fixture: &Fixture) {
    fixture
        .environment
        .sandbox
        .sandbox
        .fail_ranges_starting_at(u64::MAX);
    let (result, ()) = fixture.run(true, || Some(())).await;
    assert!(matches!(result, JobResult::Success { .. }), "{result:?}");
    assert_eq!(fixture.published().len(), 3);
}

/// The failure's type and message, checked to be the download's.
fn download_failure(result: &JobResult, range: &str) -> String {
    let JobResult::Failure {
        failure_type,
        message,
        ..
    } = result
    else {
        panic!("expected a failure, got {result:?}");
    };
    assert_eq!(failure_type, "JobFailed");
    assert!(message.contains("`BuildOutput`"), "{message}");
    assert!(message.contains(&format!("{range} of s3://")), "{message}");
    message.clone()
}

#[tokio::test]
async fn files_deployed_while_a_later_range_downloads_are_taken_back_when_it_fails() {
    let (bytes, held, range) = archive();
    let fixture = Fixture::new(&bytes).await;
    let result = run_holding_the_late_range(&fixture, held, &range).await;

    // The download never completes: its error is the job's, and nothing stays published.
    let message = download_failure(&result, &range);
    assert!(!message.contains("published"), "{message}");
    assert_eq!(fixture.published_paths(), Vec::<String>::new());
    let deletes = fixture
        .environment
        .registry
        .registry
        .requests()
        .into_iter()
        .filter(|request| request.method == "DELETE" && request.status == 204)
        .count();
    assert_eq!(deletes, EARLY_FILES.len());

    // The same input again, the range answered this time: the job publishes all three.
    rerun_answering_every_range(&fixture).await;
}

#[tokio::test]
async fn a_token_that_may_not_delete_leaves_the_early_files_and_the_failure_says_so() {
    let (bytes, held, range) = archive();
    let fixture = Fixture::deploy_only(&bytes).await;
    let result = run_holding_the_late_range(&fixture, held, &range).await;

    let message = download_failure(&result, &range);
    assert!(
        message.contains("2 uploaded files could not be taken back"),
        "{message}"
    );
    assert!(message.contains("needs DELETE permission"), "{message}");
    assert!(message.contains("--early-uploads off"), "{message}");
    let not_published = message.split("not published:").nth(1).unwrap_or_default();
    assert!(not_published.contains("z-late.bin"), "{message}");
    assert!(!not_published.contains("NOTES.md"), "{message}");
    assert_eq!(fixture.published_paths(), EARLY_FILES);

    // The same input again, the range answered this time: the job succeeds, publishing only
    // what is missing.
    rerun_answering_every_range(&fixture).await;
}

#[tokio::test]
async fn an_early_publish_lands_what_the_usual_path_lands() {
    let (bytes, _, _) = archive();
    let usual = Fixture::new(&bytes).await;
    let early = Fixture::new(&bytes).await;
    let (usual_result, ()) = usual.run(false, || Some(())).await;
    let (early_result, ()) = early.run(true, || Some(())).await;

    // What a user sees, with what differs between two environments (the registry's port, the
    // execution id) written as placeholders.
    let seen = |fixture: &Fixture, result: &JobResult| {
        let JobResult::Success {
            summary,
            output_variables,
            ..
        } = result
        else {
            panic!("expected a success, got {result:?}");
        };
        let execution = output_variables["BuildNumber"].clone();
        let base = fixture.environment.registry.base_url.to_string();
        let base = base.trim_end_matches('/');
        let normal = |text: &str| {
            text.replace(&execution, "{execution}")
                .replace(base, "{registry}")
        };
        let files: Vec<_> = fixture
            .published()
            .into_iter()
            .map(|file| {
                let properties = format!("{:?}", file.properties);
                (file.path, file.size, file.sha256, normal(&properties))
            })
            .collect();
        let build_info = fixture
            .environment
            .registry
            .registry
            .build_info("nestbox-firmware", &execution)
            .expect("build info was published");
        (
            normal(summary.as_deref().unwrap_or_default()),
            normal(&format!("{output_variables:?}")),
            files,
            normal(&build_info["modules"].to_string()),
        )
    };
    let early_seen = seen(&early, &early_result);
    assert_eq!(early_seen, seen(&usual, &usual_result));
    assert_eq!(early_seen.2.len(), 3);
}

#[tokio::test]
async fn an_archive_with_a_publish_spec_is_planned_whole_before_anything_is_uploaded() {
    // The spec decides where every file goes, so no file can go before all are extracted.
    let spec: &[u8] = br#"{"files": [{"pattern": "fw/*.bin", "target": "firmware-releases/"}]}"#;
    let (bytes, held, range) = archive_with(&[("publish-spec.json", spec)]);
    let fixture = Fixture::new(&bytes).await;
    fixture
        .environment
        .sandbox
        .sandbox
        .fail_ranges_starting_at(held);
    let attempts = pipeline_publisher::retry::S3_RANGE.attempts as usize;

    let (result, ()) = fixture.run(true, || Some(())).await;
    let JobResult::Failure { message, .. } = &result else {
        panic!("expected a failure, got {result:?}");
    };
    assert!(message.contains(&format!("{range} of s3://")), "{message}");
    assert_eq!(fixture.held_attempts(&range), attempts);
    assert!(fixture.published().is_empty());
    assert!(!message.contains("files were published"), "{message}");
}
