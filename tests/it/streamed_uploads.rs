//! A large file's upload begins while it is still downloading or inflating (issue 13, point 2):
//! the registry receives its first bytes before the last have arrived from S3, and the body's
//! last chunk waits for extraction's checks. Whatever then goes wrong (a range that keeps
//! failing, a CRC that does not match), the `PUT` breaks off and nothing is published, with
//! nothing to take back.

use std::io::Write;

use pipeline_publisher::artifacts::DownloadSettings;
use pipeline_publisher::demo::{DEMO_REPO, LocalEnvironment};
use pipeline_publisher::mock_registry::RecordedRequest;
use pipeline_publisher::publish::PublisherSettings;
use pipeline_publisher::sandbox::{ArtifactSpec, JobResult};
use sha2::{Digest, Sha256};

use crate::support;

const MIB: usize = 1024 * 1024;
/// Ranges of 1 MiB, so that the 17 MiB image arrives in many.
const PART: u64 = MIB as u64;
const KEY: &str = "nestbox-firmware/BuildOutput/Streamed1";
const IMAGE: &str = "nestbox-cam/0123456/fw/image.bin";
const ROOTFS: &str = "nestbox-cam/0123456/fw/rootfs.bin";

/// Release notes, a 17 MiB stored image (above the size that is streamed) and a 17 MiB
/// deflated root filesystem; the image's data start.
fn archive() -> (Vec<u8>, Vec<u8>, Vec<u8>, u64) {
    let image = support::noise(17 * MIB, 41);
    // Compressible, as a file system image is.
    let rootfs = support::noise(16 * 1024, 42).repeat(17 * 64);
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    writer
        .start_file("NOTES.md", zip::write::SimpleFileOptions::default())
        .unwrap();
    writer.write_all(b"release notes").unwrap();
    writer.start_file("fw/image.bin", stored).unwrap();
    writer.write_all(&image).unwrap();
    writer
        .start_file("fw/rootfs.bin", zip::write::SimpleFileOptions::default())
        .unwrap();
    writer.write_all(&rootfs).unwrap();
    let bytes = writer.finish().unwrap().into_inner();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.clone())).unwrap();
    let data_start = zip.by_name("fw/image.bin").unwrap().data_start().unwrap();
    (bytes, image, rootfs, data_start)
}

struct Fixture {
    environment: LocalEnvironment,
    artifact: ArtifactSpec,
    work: tempfile::TempDir,
}

impl Fixture {
    async fn new(bytes: &[u8]) -> Self {
        let environment = LocalEnvironment::start().await.unwrap();
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

    async fn run(&self) -> JobResult {
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
                ..PublisherSettings::default()
            })
            .unwrap();
        self.environment.run_worker(publisher, 1).await.unwrap();
        let record = self.environment.sandbox.sandbox.job(&job_id).unwrap();
        let [result] = record.results.as_slice() else {
            panic!("one result: {:?}", record.results);
        };
        result.clone()
    }

    fn published_paths(&self) -> Vec<String> {
        let mut paths: Vec<_> = self
            .environment
            .registry
            .registry
            .artifacts(DEMO_REPO)
            .into_iter()
            .map(|file| file.path)
            .collect();
        paths.sort();
        paths
    }

    /// The registry's requests for `path` with `method`.
    fn requests(&self, method: &str, path: &str) -> Vec<RecordedRequest> {
        self.environment
            .registry
            .registry
            .requests()
            .into_iter()
            .filter(|request| request.method == method && request.path.contains(path))
            .collect()
    }

    /// The `PUT`s of `path` that carried a body: a checksum deploy sends none.
    fn uploads(&self, path: &str) -> Vec<RecordedRequest> {
        self.requests("PUT", path)
            .into_iter()
            .filter(|request| header(request, "x-checksum-deploy").is_none())
            .collect()
    }
}

fn header<'a>(request: &'a RecordedRequest, name: &str) -> Option<&'a str> {
    request
        .headers
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The failure's type and message.
fn failure(result: &JobResult) -> (String, String) {
    let JobResult::Failure {
        failure_type,
        message,
        ..
    } = result
    else {
        panic!("expected a failure, got {result:?}");
    };
    (failure_type.clone(), message.clone())
}

#[tokio::test]
async fn a_large_image_goes_out_in_one_put_as_it_arrives_and_lands_checked() {
    let (bytes, image, rootfs, _) = archive();
    let fixture = Fixture::new(&bytes).await;
    let result = fixture.run().await;
    assert!(matches!(result, JobResult::Success { .. }), "{result:?}");

    let registry = &fixture.environment.registry.registry;
    for (path, content) in [(IMAGE, &image), (ROOTFS, &rootfs)] {
        let stored = registry.artifact(DEMO_REPO, path).expect("published");
        assert_eq!(stored.sha256, sha256(content), "{path}");
        assert_eq!(stored.size, content.len() as u64, "{path}");
        assert!(
            stored.properties.contains_key("build.name"),
            "{path}: {:?}",
            stored.properties
        );
        // Streamed: one PUT, sent before the checksums were known, and no checksum deploy
        // tried first (that is how the usual path starts a file this large).
        let puts = fixture.requests("PUT", path);
        assert_eq!(puts.len(), 1, "{path}: {puts:?}");
        assert_eq!(puts[0].status, 201, "{path}");
        assert_eq!(header(&puts[0], "x-checksum-sha256"), None, "{path}");
        assert_eq!(
            header(&puts[0], "content-length"),
            Some(content.len().to_string().as_str())
        );
    }
    // The small file takes the usual path, checksums in its headers.
    let notes = fixture.uploads("NOTES.md");
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(header(&notes[0], "x-checksum-sha256").is_some());

    // Run again: the paths hold the same content, so nothing streams and nothing changes.
    let again = fixture.run().await;
    let JobResult::Success { summary, .. } = &again else {
        panic!("expected a success, got {again:?}");
    };
    assert!(
        summary.as_deref().unwrap_or_default().contains("already"),
        "{summary:?}"
    );
    assert_eq!(fixture.requests("PUT", IMAGE).len(), 1);
    assert_eq!(
        registry.artifact(DEMO_REPO, IMAGE).unwrap().sha256,
        sha256(&image)
    );
}

#[tokio::test]
async fn a_download_that_fails_after_the_upload_began_publishes_nothing() {
    let (bytes, image, _, data_start) = archive();
    let fixture = Fixture::new(&bytes).await;
    // The range holding the image's last megabyte keeps failing.
    let held = (data_start + image.len() as u64 - 1) / PART * PART;
    let sandbox = &fixture.environment.sandbox.sandbox;
    sandbox.fail_ranges_starting_at(held);

    let (failure_type, message) = failure(&fixture.run().await);
    assert_eq!(failure_type, "JobFailed");
    assert!(message.contains(&format!("bytes={held}-")), "{message}");
    assert!(!message.contains("published"), "{message}");
    assert_eq!(fixture.published_paths(), Vec::<String>::new());
    // The image's upload had begun, with the download still running, and broke off.
    let puts = fixture.uploads(IMAGE);
    assert_eq!(puts.len(), 1, "{puts:?}");
    assert_ne!(puts[0].status / 100, 2, "{puts:?}");
    assert_eq!(
        fixture.requests("DELETE", IMAGE).len(),
        0,
        "nothing to take back"
    );

    // The same input again, every range answered: it is all published.
    sandbox.fail_ranges_starting_at(u64::MAX);
    let again = fixture.run().await;
    assert!(matches!(again, JobResult::Success { .. }), "{again:?}");
    assert_eq!(
        fixture.published_paths(),
        ["nestbox-cam/0123456/NOTES.md", IMAGE, ROOTFS]
    );
}

#[tokio::test]
async fn an_image_that_fails_its_crc_is_never_published_though_its_upload_may_have_begun() {
    let (mut bytes, image, _, data_start) = archive();
    // One byte in the middle of the image changes; its CRC does not.
    let at = data_start as usize + image.len() / 2;
    bytes[at] ^= 0xff;
    let fixture = Fixture::new(&bytes).await;

    // The build's output is broken: the action's input, not the worker, must change.
    let (failure_type, message) = failure(&fixture.run().await);
    assert_eq!(failure_type, "ConfigurationError");
    assert!(message.contains("`fw/image.bin`"), "{message}");
    assert!(message.contains("corrupt"), "{message}");
    assert_eq!(fixture.published_paths(), Vec::<String>::new());
    // The image's upload may have begun (then its body broke off before the last chunk) or
    // not yet, when extraction found the CRC first; either way the registry stored nothing.
    let puts = fixture.uploads(IMAGE);
    assert!(puts.len() <= 1, "{puts:?}");
    assert!(puts.iter().all(|put| put.status / 100 != 2), "{puts:?}");
    assert_eq!(
        fixture.requests("DELETE", IMAGE).len(),
        0,
        "nothing to take back"
    );
}
