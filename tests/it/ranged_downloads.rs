//! Input artifacts larger than one part are downloaded with concurrent ranged GETs carrying
//! `If-Match`, through the real worker loop against the S3 stand-in; the faults a ranged reader
//! meets (an object replaced mid-download, a range answered short, a range that keeps failing,
//! the worker killed mid-download) each end the way a user would want.

use std::time::Duration;

use crate::support;
use pipeline_publisher::artifacts::DownloadSettings;
use pipeline_publisher::demo::{DEMO_PASSWORD, DEMO_REPO, DEMO_USER, LocalEnvironment};
use pipeline_publisher::mock_registry::{MockRegistry, MockRegistryConfig};
use pipeline_publisher::publish::PublisherSettings;
use pipeline_publisher::sandbox::{ArtifactSpec, JobResult, Sandbox, SandboxConfig};
use sha2::{Digest, Sha256};

const PART: u64 = 64 * 1024;
/// The first read of a zip: its last 128 KiB, where the central directory is.
const TAIL: u64 = 128 * 1024;

struct Fixture {
    environment: LocalEnvironment,
    artifact: ArtifactSpec,
    job_id: String,
    image: Vec<u8>,
}

/// A job publishing a zip of about 600 KiB (ten 64 KiB parts): a firmware image and notes.
async fn fixture() -> Fixture {
    let environment = LocalEnvironment::start().await.unwrap();
    let image = support::noise(600 * 1024, 7);
    let artifact = environment
        .upload_artifact(
            "BuildOutput",
            Some("0123456789abcdef"),
            &[("fw/image.bin", &image), ("NOTES.md", b"release notes")],
        )
        .unwrap();
    let job_id = environment.queue_job(
        "nestbox-firmware",
        environment.firmware_configuration(),
        vec![artifact.clone()],
    );
    Fixture {
        environment,
        artifact,
        job_id,
        image,
    }
}

impl Fixture {
    async fn run(&self, concurrency: usize) -> JobResult {
        let publisher = self
            .environment
            .publisher(PublisherSettings {
                download: DownloadSettings {
                    concurrency,
                    part_size: PART,
                },
                ..PublisherSettings::default()
            })
            .unwrap();
        self.environment.run_worker(publisher, 1).await.unwrap();
        let record = self.environment.sandbox.sandbox.job(&self.job_id).unwrap();
        let [result] = record.results.as_slice() else {
            panic!("one result: {:?}", record.results);
        };
        result.clone()
    }

    fn archive_size(&self) -> u64 {
        self.environment
            .sandbox
            .sandbox
            .object(&self.artifact.bucket, &self.artifact.key)
            .unwrap()
            .size
    }

    fn published(&self) -> usize {
        self.environment
            .registry
            .registry
            .artifacts(DEMO_REPO)
            .len()
    }

    /// The GETs of the artifact: (range, if-match, status).
    fn reads(&self) -> Vec<(Option<String>, Option<String>, u16)> {
        self.environment
            .sandbox
            .sandbox
            .s3_reads()
            .into_iter()
            .filter(|read| read.method == "GET" && read.key == self.artifact.key)
            .map(|read| (read.range, read.if_match, read.status))
            .collect()
    }
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
async fn a_large_artifact_is_read_in_ranges_with_if_match_and_published_intact() {
    let fixture = fixture().await;
    let result = fixture.run(4).await;
    assert!(matches!(result, JobResult::Success { .. }), "{result:?}");

    let size = fixture.archive_size();
    let reads = fixture.reads();
    assert_eq!(
        reads.len() as u64,
        1 + (size - TAIL).div_ceil(PART),
        "{reads:?}"
    );
    let etag = fixture
        .environment
        .sandbox
        .sandbox
        .object(&fixture.artifact.bucket, &fixture.artifact.key)
        .unwrap()
        .etag;
    assert_eq!(reads[0], (Some(format!("bytes=-{TAIL}")), None, 206));
    let mut ranges: Vec<String> = Vec::new();
    for (range, if_match, status) in &reads[1..] {
        assert_eq!(if_match.as_deref(), Some(etag.as_str()), "{range:?}");
        assert_eq!(*status, 206);
        ranges.push(range.clone().unwrap());
    }
    let last = format!(
        "bytes={}-{}",
        (size - TAIL - 1) / PART * PART,
        size - TAIL - 1
    );
    assert!(ranges.contains(&last), "{ranges:?} lacks {last}");

    let image = fixture
        .environment
        .registry
        .registry
        .artifacts(DEMO_REPO)
        .into_iter()
        .find(|artifact| artifact.path.ends_with("fw/image.bin"))
        .expect("the image was published");
    assert_eq!(image.size, fixture.image.len() as u64);
    assert_eq!(image.sha256, hex::encode(Sha256::digest(&fixture.image)));
    assert_eq!(fixture.published(), 2);
}

#[tokio::test]
async fn a_stored_image_goes_straight_to_its_own_file_and_is_published_intact() {
    use std::io::Write;
    let environment = LocalEnvironment::start().await.unwrap();
    let image = support::noise(700 * 1024, 5);
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    writer
        .start_file("NOTES.md", zip::write::SimpleFileOptions::default())
        .unwrap();
    writer.write_all(b"release notes").unwrap();
    writer.start_file("fw/image.bin", stored).unwrap();
    writer.write_all(&image).unwrap();
    let bytes = writer.finish().unwrap().into_inner();
    let bucket = environment.sandbox.sandbox.config().artifact_bucket.clone();
    let key = "nestbox-firmware/BuildOutput/Stored01";
    environment
        .sandbox
        .sandbox
        .put_object(&bucket, key, &bytes)
        .unwrap();
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
    let fixture = Fixture {
        environment,
        artifact,
        job_id,
        image,
    };
    let result = fixture.run(4).await;
    assert!(matches!(result, JobResult::Success { .. }), "{result:?}");
    let image = fixture
        .environment
        .registry
        .registry
        .artifacts(DEMO_REPO)
        .into_iter()
        .find(|artifact| artifact.path.ends_with("fw/image.bin"))
        .expect("the image was published");
    assert_eq!(image.sha256, hex::encode(Sha256::digest(&fixture.image)));
    assert_eq!(fixture.published(), 2);
    // The tail, the image's local header, then the rest in parts.
    let reads = fixture.reads();
    assert_eq!(reads[0].0, Some(format!("bytes=-{TAIL}")));
    let header_read = reads[1].0.clone().unwrap();
    let (first, last) = header_read
        .trim_start_matches("bytes=")
        .split_once('-')
        .unwrap();
    let span = last.parse::<u64>().unwrap() - first.parse::<u64>().unwrap() + 1;
    assert!(span <= 30 + 4096, "{header_read}");
}

#[tokio::test]
async fn one_range_at_a_time_publishes_the_same_files() {
    let fixture = fixture().await;
    let result = fixture.run(1).await;
    assert!(matches!(result, JobResult::Success { .. }), "{result:?}");
    let after_tail = fixture.archive_size() - TAIL;
    assert_eq!(fixture.reads().len() as u64, 1 + after_tail.div_ceil(PART));
    assert_eq!(fixture.published(), 2);
}

#[tokio::test]
async fn an_artifact_replaced_mid_download_fails_the_job_and_publishes_nothing() {
    let fixture = fixture().await;
    fixture
        .environment
        .sandbox
        .sandbox
        .replace_object_after_gets(
            &fixture.artifact.bucket,
            &fixture.artifact.key,
            1,
            &pipeline_publisher::demo::zip_entries(&[("fw/image.bin", b"another build")]).unwrap(),
        );
    let result = fixture.run(2).await;
    let (failure_type, message) = failure(&result);
    assert_eq!(failure_type, "JobFailed");
    assert!(message.contains("`BuildOutput`"), "{message}");
    assert!(
        message.contains("changed while it was being downloaded"),
        "{message}"
    );
    assert!(message.contains("412 PreconditionFailed"), "{message}");
    assert!(
        fixture.reads().iter().any(|(_, _, status)| *status == 412),
        "{:?}",
        fixture.reads()
    );
    assert_eq!(fixture.published(), 0);
}

#[tokio::test]
async fn a_range_answered_short_fails_the_job_and_publishes_nothing() {
    let fixture = fixture().await;
    fixture.environment.sandbox.sandbox.short_range_next(1);
    let result = fixture.run(4).await;
    let (failure_type, message) = failure(&result);
    assert_eq!(failure_type, "JobFailed");
    assert!(message.contains("`BuildOutput`"), "{message}");
    assert!(
        message.contains(&format!("with {} bytes instead of {TAIL}", TAIL / 2)),
        "{message}"
    );
    assert_eq!(fixture.published(), 0);
}

#[tokio::test]
async fn a_range_that_keeps_failing_fails_the_job_after_the_retry_budget_naming_it() {
    let fixture = fixture().await;
    fixture
        .environment
        .sandbox
        .sandbox
        .fail_ranges_starting_at(3 * PART);
    let result = fixture.run(4).await;
    let (failure_type, message) = failure(&result);
    let range = format!("bytes={}-{}", 3 * PART, 4 * PART - 1);
    let attempts = pipeline_publisher::retry::S3_RANGE.attempts;
    assert_eq!(failure_type, "JobFailed");
    assert!(message.contains("`BuildOutput`"), "{message}");
    assert!(message.contains(&format!("{range} of s3://")), "{message}");
    assert!(
        message.contains(&format!("after {attempts} attempts")),
        "{message}"
    );
    let tries = fixture
        .reads()
        .iter()
        .filter(|(asked, _, _)| asked.as_deref() == Some(range.as_str()))
        .count();
    assert_eq!(tries, attempts as usize);
    assert_eq!(fixture.published(), 0);
}

#[tokio::test]
async fn a_worker_killed_mid_download_leaves_the_job_to_the_next_worker_process() {
    // 2 MiB at 1 MiB/s per connection: the download is still running when the worker dies.
    let sandbox = Sandbox::start(SandboxConfig {
        s3_connection_rate: Some(1024 * 1024),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let registry = MockRegistry::start(MockRegistryConfig {
        users: vec![(DEMO_USER.to_owned(), DEMO_PASSWORD.to_owned())],
        ..MockRegistryConfig::default()
    })
    .await
    .unwrap();
    let image = support::noise(2 * 1024 * 1024, 11);
    let key = "nestbox-firmware/BuildOutput/Kill9";
    let job_id = sandbox.sandbox.queue_job(support::firmware_job(
        &sandbox.sandbox,
        key,
        &[("fw/image.bin", &image)],
        &registry.base_url,
        None,
    ));
    let home = support::aws_home();
    let worker = |extra: &[&str]| {
        support::worker_command(
            &sandbox.sandbox,
            home.path(),
            "ranged",
            &[("AWS_ENDPOINT_URL", &sandbox.endpoint_url)],
        )
        .args([
            "--poll-min-interval",
            "50ms",
            "--download-part-size",
            "256KiB",
        ])
        .args(extra)
        .spawn()
        .unwrap()
    };
    let ranged_gets = || {
        sandbox
            .sandbox
            .s3_reads()
            .iter()
            .filter(|read| read.key == key && read.range.is_some())
            .count()
    };

    let mut first = worker(&[]);
    tokio::time::timeout(Duration::from_secs(30), async {
        while ranged_gets() < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the first worker starts downloading in ranges");
    let journaled =
        std::fs::read_dir(home.path().join("state-ranged/jobs")).map_or(0, |dir| dir.count());
    assert_eq!(journaled, 1, "the acknowledged job is journaled");
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    let record = sandbox.sandbox.job(&job_id).unwrap();
    assert!(record.results.is_empty(), "killed mid-download");
    assert!(registry.registry.artifacts(DEMO_REPO).is_empty());

    let second = worker(&["--max-jobs", "1"]);
    let output = tokio::time::timeout(Duration::from_secs(60), second.wait_with_output())
        .await
        .expect("the restarted worker finishes the journaled job")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("resuming"), "{stderr}");
    let record = sandbox.sandbox.job(&job_id).unwrap();
    assert!(
        matches!(record.results.as_slice(), [JobResult::Success { .. }]),
        "{:?}",
        record.results
    );
    assert_eq!(record.acknowledgements, 1);
    let published = registry.registry.artifacts(DEMO_REPO);
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].sha256, hex::encode(Sha256::digest(&image)));
}

/// A zip whose entries are all stored (uncompressed), so large ones are routed.
fn stored_zip(entries: &[(&str, &[u8])], symlink: bool) -> Vec<u8> {
    use std::io::Write;
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, body) in entries {
        writer.start_file(*name, options).unwrap();
        writer.write_all(body).unwrap();
    }
    if symlink {
        writer
            .add_symlink("config", "/etc/shadow", options)
            .unwrap();
    }
    writer.finish().unwrap().into_inner()
}

/// Runs a job on `zip` and returns its failure.
async fn refused(zip: Vec<u8>) -> (String, String) {
    let environment = LocalEnvironment::start().await.unwrap();
    let bucket = environment.sandbox.sandbox.config().artifact_bucket.clone();
    let key = "nestbox-firmware/BuildOutput/Bad";
    environment
        .sandbox
        .sandbox
        .put_object(&bucket, key, &zip)
        .unwrap();
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
    let fixture = Fixture {
        environment,
        artifact,
        job_id,
        image: Vec::new(),
    };
    let result = fixture.run(4).await;
    assert_eq!(fixture.published(), 0);
    let (failure_type, message) = failure(&result);
    (failure_type.to_owned(), message.to_owned())
}

#[tokio::test]
async fn large_stored_entries_are_refused_exactly_as_before() {
    let image = support::noise(300 * 1024, 3);

    let (kind, message) = refused(stored_zip(
        &[("good.img", &image), ("../evil.img", &image)],
        false,
    ))
    .await;
    assert_eq!(kind, "ConfigurationError");
    assert!(message.contains("contains `..`"), "{message}");

    let (kind, message) = refused(stored_zip(&[("image.img", &image)], true)).await;
    assert_eq!(kind, "ConfigurationError");
    assert!(message.contains("symbolic link"), "{message}");

    // The second central-directory entry points at the first entry's local header and data.
    let mut overlapping = stored_zip(&[("a.img", &image), ("b.img", &image)], false);
    let central: Vec<usize> = (0..overlapping.len() - 4)
        .filter(|&offset| overlapping[offset..offset + 4] == [0x50, 0x4b, 0x01, 0x02])
        .collect();
    assert_eq!(central.len(), 2);
    let first_local = overlapping[central[0] + 42..central[0] + 46].to_vec();
    overlapping[central[1] + 42..central[1] + 46].copy_from_slice(&first_local);
    let (kind, message) = refused(overlapping).await;
    assert_eq!(kind, "ConfigurationError");
    assert!(message.contains("share their compressed data"), "{message}");
}
