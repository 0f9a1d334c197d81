//! Multipart deploys (issue 13, point 4): the registry client against the mock registry's
//! multipart API over HTTP, and one job through the real worker loop. Small files and 1 MiB
//! parts keep it quick; the thresholds are the flags' own settings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pipeline_publisher::checksum::{Checksums, MultiHasher};
use pipeline_publisher::demo::{DEMO_REPO, LocalEnvironment};
use pipeline_publisher::error::inline_chain;
use pipeline_publisher::mock_registry::{
    MockRegistry, MockRegistryConfig, MultipartMode, RecordedRequest, RunningMockRegistry,
};
use pipeline_publisher::publish::PublisherSettings;
use pipeline_publisher::registry::{
    AccessToken, DeployOutcome, DeployRequest, MultipartSettings, RegistryClient, RegistryError,
};
use pipeline_publisher::sandbox::JobResult;
use pipeline_publisher::secret::SecretString;

const MIB: u64 = 1024 * 1024;
const REPO: &str = "generic-local";

/// Files of 2 MiB or more in 1 MiB parts, 3 at a time.
const SETTINGS: MultipartSettings = MultipartSettings {
    min_size: 2 * MIB,
    concurrency: 3,
    part_size: MIB,
};

/// A file of `size` bytes that no two parts share a pattern of, and its checksums.
fn write_file(dir: &Path, name: &str, size: u64) -> (PathBuf, Vec<u8>, Checksums) {
    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ size;
    let bytes: Vec<u8> = (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, &bytes).unwrap();
    let mut hasher = MultiHasher::new();
    hasher.update(&bytes);
    (path, bytes, hasher.finish())
}

async fn start(mode: MultipartMode) -> RunningMockRegistry {
    MockRegistry::start(MockRegistryConfig {
        multipart: mode,
        ..MockRegistryConfig::default()
    })
    .await
    .unwrap()
}

async fn client_and_token(registry: &RunningMockRegistry) -> (RegistryClient, AccessToken) {
    let client = RegistryClient::new(
        pipeline_publisher::registry::http_client().unwrap(),
        url::Url::parse(&registry.base_url).unwrap(),
    )
    .with_multipart(SETTINGS);
    let token = client
        .mint_token(
            "demo",
            &SecretString::from("demo-password"),
            Duration::from_secs(900),
            "multipart tests",
        )
        .await
        .unwrap();
    (client, token)
}

fn properties() -> BTreeMap<String, Vec<String>> {
    BTreeMap::from([
        ("board".to_owned(), vec!["rpi-zero-2w".to_owned()]),
        ("build.number".to_owned(), vec!["42".to_owned()]),
    ])
}

async fn deploy(
    client: &RegistryClient,
    token: &AccessToken,
    path: &str,
    file: &Path,
    size: u64,
    checksums: &Checksums,
) -> Result<DeployOutcome, RegistryError> {
    let properties = properties();
    client
        .deploy(
            token,
            DeployRequest {
                repo: REPO,
                path,
                file,
                size,
                checksums,
                properties: &properties,
            },
        )
        .await
}

fn calls<'a>(requests: &'a [RecordedRequest], suffix: &str) -> Vec<&'a RecordedRequest> {
    requests
        .iter()
        .filter(|request| request.path == format!("/artifactory/api/v1/uploads/{suffix}"))
        .collect()
}

fn part_puts(requests: &[RecordedRequest]) -> Vec<&RecordedRequest> {
    requests
        .iter()
        .filter(|request| {
            request.method == "PUT"
                && request
                    .path
                    .starts_with("/artifactory/api/v1/uploads/part/")
        })
        .collect()
}

/// `PUT`s of the artifact's own URL: (with `X-Checksum-Deploy: true`, without).
fn artifact_puts(requests: &[RecordedRequest], path: &str) -> (usize, usize) {
    let puts: Vec<&RecordedRequest> = requests
        .iter()
        .filter(|request| {
            request.method == "PUT"
                && request
                    .path
                    .starts_with(&format!("/artifactory/{REPO}/{path}"))
        })
        .collect();
    let by_checksum = puts
        .iter()
        .filter(|request| request.header("x-checksum-deploy") == Some("true"))
        .count();
    (by_checksum, puts.len() - by_checksum)
}

async fn download(registry: &RunningMockRegistry, path: &str) -> Vec<u8> {
    reqwest::get(format!("{}/artifactory/{REPO}/{path}", registry.base_url))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn a_large_file_goes_in_parts_and_arrives_identical_with_its_properties() {
    let registry = start(MultipartMode::Supported).await;
    let (client, token) = client_and_token(&registry).await;
    let dir = tempfile::tempdir().unwrap();
    let size = 5 * MIB + 1234;
    let (file, bytes, checksums) = write_file(dir.path(), "fw.img", size);

    let outcome = deploy(&client, &token, "cam/1.0/fw.img", &file, size, &checksums)
        .await
        .unwrap();
    assert_eq!(outcome, DeployOutcome::Uploaded);

    let stored = registry.registry.artifact(REPO, "cam/1.0/fw.img").unwrap();
    assert_eq!(stored.sha256, checksums.sha256);
    assert_eq!(stored.size, size);
    assert_eq!(stored.properties, properties());
    assert_eq!(download(&registry, "cam/1.0/fw.img").await, bytes);

    let requests = registry.registry.requests();
    assert_eq!(calls(&requests, "create").len(), 1);
    let create_query = calls(&requests, "create")[0].query.clone().unwrap();
    assert!(
        create_query.contains("repoKey=generic-local")
            && create_query.contains("repoPath=cam%2F1.0%2Ffw.img")
            && create_query.contains("partSizeMB=1"),
        "{create_query}"
    );
    assert_eq!(calls(&requests, "urlPart").len(), 6);
    let parts = part_puts(&requests);
    assert_eq!(parts.len(), 6);
    // The pre-signed URL is the only authorisation a part carries.
    assert!(
        parts
            .iter()
            .all(|part| part.header("authorization").is_none())
    );
    assert_eq!(
        calls(&requests, "complete")[0].query.as_deref(),
        Some(format!("sha1={}", checksums.sha1).as_str())
    );
    assert!(!calls(&requests, "status").is_empty());
    assert!(calls(&requests, "abort").is_empty());
    // The first checksum deploy (content unknown: 404) and the one that ends the upload; no
    // byte went by a plain PUT.
    assert_eq!(artifact_puts(&requests, "cam/1.0/fw.img"), (2, 0));
    let finishing = requests
        .iter()
        .rfind(|request| request.method == "PUT" && request.path.contains("cam/1.0/fw.img"))
        .unwrap();
    assert_eq!(finishing.status, 201);
    assert_eq!(finishing.header("x-checksum-deploy-token"), Some("****"));
    assert_eq!(registry.registry.open_multipart_uploads(), 0);
}

#[tokio::test]
async fn the_registry_is_asked_about_multipart_support_once_per_client() {
    let registry = start(MultipartMode::Supported).await;
    let (client, token) = client_and_token(&registry).await;
    let dir = tempfile::tempdir().unwrap();
    for (index, name) in ["a.img", "b.img"].into_iter().enumerate() {
        let size = 3 * MIB + index as u64;
        let (file, _, checksums) = write_file(dir.path(), name, size);
        deploy(&client, &token, name, &file, size, &checksums)
            .await
            .unwrap();
    }
    let requests = registry.registry.requests();
    assert_eq!(calls(&requests, "config").len(), 1);
    assert_eq!(calls(&requests, "create").len(), 2);
}

#[tokio::test]
async fn a_file_below_the_threshold_goes_in_one_put() {
    let registry = start(MultipartMode::Supported).await;
    let (client, token) = client_and_token(&registry).await;
    let dir = tempfile::tempdir().unwrap();
    let size = 2 * MIB - 1;
    let (file, _, checksums) = write_file(dir.path(), "small.img", size);
    let outcome = deploy(&client, &token, "small.img", &file, size, &checksums)
        .await
        .unwrap();
    assert_eq!(outcome, DeployOutcome::Uploaded);
    let requests = registry.registry.requests();
    assert!(calls(&requests, "config").is_empty());
    assert!(calls(&requests, "create").is_empty());
    assert_eq!(artifact_puts(&requests, "small.img"), (1, 1));
    assert_eq!(
        registry
            .registry
            .artifact(REPO, "small.img")
            .unwrap()
            .sha256,
        checksums.sha256
    );
}

#[tokio::test]
async fn a_registry_without_multipart_support_gets_one_put() {
    let registry = start(MultipartMode::Unsupported).await;
    let (client, token) = client_and_token(&registry).await;
    let dir = tempfile::tempdir().unwrap();
    let size = 4 * MIB;
    let (file, _, checksums) = write_file(dir.path(), "fw.img", size);
    deploy(&client, &token, "fw.img", &file, size, &checksums)
        .await
        .unwrap();
    let requests = registry.registry.requests();
    assert_eq!(calls(&requests, "config").len(), 1);
    assert!(calls(&requests, "create").is_empty());
    assert_eq!(artifact_puts(&requests, "fw.img"), (1, 1));
    assert_eq!(
        registry.registry.artifact(REPO, "fw.img").unwrap().sha256,
        checksums.sha256
    );
}

#[tokio::test]
async fn a_registry_that_claims_support_and_404s_on_create_gets_one_put() {
    let registry = start(MultipartMode::ClaimsSupportButMissing).await;
    let (client, token) = client_and_token(&registry).await;
    let dir = tempfile::tempdir().unwrap();
    let size = 4 * MIB;
    let (file, _, checksums) = write_file(dir.path(), "fw.img", size);
    let outcome = deploy(&client, &token, "fw.img", &file, size, &checksums)
        .await
        .unwrap();
    assert_eq!(outcome, DeployOutcome::Uploaded);
    let requests = registry.registry.requests();
    let creates = calls(&requests, "create");
    assert_eq!(creates.len(), 1);
    assert_eq!(creates[0].status, 404);
    assert!(calls(&requests, "urlPart").is_empty());
    assert_eq!(artifact_puts(&requests, "fw.img"), (1, 1));
    assert_eq!(
        registry.registry.artifact(REPO, "fw.img").unwrap().sha256,
        checksums.sha256
    );
}

/// What a user checks after a failed multipart deploy: abort was called, nothing is at the
/// path, no upload is left open, and the message leaks neither the upload token nor a signature.
fn assert_failed_cleanly(registry: &RunningMockRegistry, path: &str, error: &RegistryError) {
    let requests = registry.registry.requests();
    let aborts = calls(&requests, "abort");
    assert_eq!(aborts.len(), 1, "abort called once");
    assert_eq!(aborts[0].status, 204);
    assert_eq!(registry.registry.aborted_multipart_uploads().len(), 1);
    assert_eq!(registry.registry.open_multipart_uploads(), 0);
    assert!(registry.registry.artifact(REPO, path).is_none());
    let rendered = inline_chain(error);
    assert!(!rendered.contains("signature="), "{rendered}");
    assert!(!rendered.contains("mpu."), "{rendered}");
    assert!(rendered.contains("nothing was published"), "{rendered}");
}

#[tokio::test]
async fn a_rejected_part_aborts_the_upload_and_fails_naming_the_part() {
    let registry = start(MultipartMode::Supported).await;
    registry.registry.reject_multipart_part(Some(3));
    let (client, token) = client_and_token(&registry).await;
    let dir = tempfile::tempdir().unwrap();
    let size = 5 * MIB;
    let (file, _, checksums) = write_file(dir.path(), "fw.img", size);
    let error = deploy(&client, &token, "fw.img", &file, size, &checksums)
        .await
        .unwrap_err();
    let RegistryError::MultipartPart {
        part,
        parts,
        source,
        ..
    } = &error
    else {
        panic!("expected a part failure, got {error:?}");
    };
    assert_eq!((*part, *parts), (3, 5));
    assert!(
        matches!(**source, RegistryError::Status { status: 400, .. }),
        "{source:?}"
    );
    // A rejection is final: the part was not sent again.
    let rejected = part_puts(&registry.registry.requests())
        .into_iter()
        .filter(|request| request.path.ends_with("/3"))
        .count();
    assert_eq!(rejected, 1);
    assert_failed_cleanly(&registry, "fw.img", &error);
    assert!(
        inline_chain(&error).contains("Part 3 was rejected by the storage"),
        "{}",
        inline_chain(&error)
    );
}

#[tokio::test]
async fn a_non_retryable_assembly_error_aborts_the_upload() {
    let registry = start(MultipartMode::Supported).await;
    registry.registry.fail_multipart_assembly(true);
    let (client, token) = client_and_token(&registry).await;
    let dir = tempfile::tempdir().unwrap();
    let size = 3 * MIB;
    let (file, _, checksums) = write_file(dir.path(), "fw.img", size);
    let error = deploy(&client, &token, "fw.img", &file, size, &checksums)
        .await
        .unwrap_err();
    let RegistryError::MultipartFailed {
        status, message, ..
    } = &error
    else {
        panic!("expected an assembly failure, got {error:?}");
    };
    assert_eq!(status, "NON_RETRYABLE_ERROR");
    assert!(message.contains("fault injected"), "{message}");
    assert_failed_cleanly(&registry, "fw.img", &error);
}

#[tokio::test]
async fn an_expired_part_url_is_replaced_by_a_fresh_one() {
    let registry = start(MultipartMode::Supported).await;
    registry.registry.expire_next_part_urls(2);
    let (client, token) = client_and_token(&registry).await;
    let dir = tempfile::tempdir().unwrap();
    let size = 4 * MIB;
    let (file, bytes, checksums) = write_file(dir.path(), "fw.img", size);
    deploy(&client, &token, "fw.img", &file, size, &checksums)
        .await
        .unwrap();
    let requests = registry.registry.requests();
    let refused: Vec<u16> = part_puts(&requests)
        .iter()
        .map(|request| request.status)
        .filter(|status| *status != 200)
        .collect();
    assert_eq!(refused, vec![403, 403]);
    assert_eq!(calls(&requests, "urlPart").len(), 4 + 2);
    assert_eq!(download(&registry, "fw.img").await, bytes);
}

#[tokio::test]
async fn a_tampered_part_url_is_refused_like_a_cloud_store_refuses_it() {
    let registry = start(MultipartMode::Supported).await;
    let http = reqwest::Client::new();
    let (_, token) = client_and_token(&registry).await;
    let created: serde_json::Value = http
        .post(format!(
            "{}/artifactory/api/v1/uploads/create?repoKey={REPO}&repoPath=x.img&partSizeMB=5",
            registry.base_url
        ))
        .bearer_auth(pipeline_publisher::secret::ExposeSecret::expose_secret(
            &token.token,
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let upload_token = created["token"].as_str().unwrap();
    let url: serde_json::Value = http
        .post(format!(
            "{}/artifactory/api/v1/uploads/urlPart?partNumber=1",
            registry.base_url
        ))
        .bearer_auth(upload_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = url["url"].as_str().unwrap();
    let tampered = url.replace("/part/", "/part/0");
    for target in [tampered, url.replace("expires=", "expires=9")] {
        let response = http.put(&target).body("bytes").send().await.unwrap();
        assert_eq!(response.status(), 403, "{target}");
        let body = response.text().await.unwrap();
        assert!(body.contains("<Code>"), "{body}");
    }
    assert_eq!(
        http.put(url).body("bytes").send().await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn a_job_through_the_worker_loop_deploys_its_large_file_in_parts() {
    let environment = LocalEnvironment::start().await.unwrap();
    environment
        .registry
        .registry
        .set_multipart(MultipartMode::Supported);
    let dir = tempfile::tempdir().unwrap();
    let (_, image, checksums) = write_file(dir.path(), "image", 3 * MIB + 77);
    let artifact = environment
        .upload_artifact(
            "BuildOutput",
            Some("0123456789abcdef"),
            &[("fw.img", &image), ("notes.txt", b"release notes")],
        )
        .unwrap();
    let publisher = |settings: MultipartSettings| {
        environment
            .publisher(PublisherSettings {
                multipart: settings,
                ..PublisherSettings::default()
            })
            .unwrap()
    };
    let job = environment.queue_job(
        "nestbox-firmware",
        environment.firmware_configuration(),
        vec![artifact.clone()],
    );
    environment
        .run_worker(publisher(SETTINGS), 1)
        .await
        .unwrap();
    let record = environment.sandbox.sandbox.job(&job).unwrap();
    assert!(
        matches!(record.results.as_slice(), [JobResult::Success { .. }]),
        "{:?}",
        record.results
    );
    let stored = environment
        .registry
        .registry
        .artifact(DEMO_REPO, "nestbox-cam/0123456/fw.img")
        .unwrap();
    assert_eq!(stored.sha256, checksums.sha256);
    assert_eq!(stored.properties["board"], vec!["rpi-zero-2w".to_owned()]);
    let requests = environment.registry.registry.requests();
    assert_eq!(calls(&requests, "create").len(), 1, "only fw.img is large");
    assert_eq!(part_puts(&requests).len(), 4);

    // Another build (new content: known content would be deployed by checksum alone), with a
    // part the storage rejects: the job fails as JobFailed naming the part, and nothing of the
    // large file is published.
    environment.registry.registry.reject_multipart_part(Some(2));
    let (_, image, _) = write_file(dir.path(), "image-2", 3 * MIB + 78);
    let artifact = environment
        .upload_artifact(
            "BuildOutput",
            Some("0123456789abcdef"),
            &[("fw.img", &image)],
        )
        .unwrap();
    let mut configuration = environment.firmware_configuration();
    configuration.insert(
        pipeline_publisher::pipeline::properties::TARGET_PATH.to_owned(),
        "nestbox-cam/rejected".to_owned(),
    );
    let job = environment.queue_job("nestbox-firmware", configuration, vec![artifact]);
    environment
        .run_worker(publisher(SETTINGS), 1)
        .await
        .unwrap();
    let record = environment.sandbox.sandbox.job(&job).unwrap();
    let [
        JobResult::Failure {
            failure_type,
            message,
            ..
        },
    ] = record.results.as_slice()
    else {
        panic!("expected one failure, got {:?}", record.results);
    };
    assert_eq!(failure_type, "JobFailed");
    assert!(message.contains("part 2 of 4"), "{message}");
    assert!(
        environment
            .registry
            .registry
            .artifact(DEMO_REPO, "nestbox-cam/rejected/fw.img")
            .is_none()
    );
    assert_eq!(environment.registry.registry.open_multipart_uploads(), 0);
}

#[tokio::test]
async fn a_capped_registry_link_paces_each_connection() {
    let registry = MockRegistry::start(MockRegistryConfig {
        link: pipeline_publisher::netem::Link::symmetric(Some(16.0 * MIB as f64), None),
        ..MockRegistryConfig::default()
    })
    .await
    .unwrap();
    let (client, token) = client_and_token(&registry).await;
    let dir = tempfile::tempdir().unwrap();
    let size = 8 * MIB;
    let (file, _, checksums) = write_file(dir.path(), "paced.img", size);
    let started = std::time::Instant::now();
    deploy(&client, &token, "paced.img", &file, size, &checksums)
        .await
        .unwrap();
    let elapsed = started.elapsed();
    // 8 MiB at 16 MiB/s takes 500 ms; a slow machine only adds to it. The margin covers the
    // last read, whose pacing debt the server never waits for (one read buffer, well under
    // 1 MiB), so only a cap that does not hold fails.
    assert!(elapsed >= Duration::from_millis(420), "{elapsed:?}");
}

#[tokio::test]
async fn a_deploy_cancelled_midway_still_aborts_its_upload() {
    let registry = MockRegistry::start(MockRegistryConfig {
        multipart: MultipartMode::Supported,
        link: pipeline_publisher::netem::Link::symmetric(Some(2.0 * MIB as f64), None),
        ..MockRegistryConfig::default()
    })
    .await
    .unwrap();
    let (client, token) = client_and_token(&registry).await;
    let dir = tempfile::tempdir().unwrap();
    let size = 6 * MIB;
    let (file, _, checksums) = write_file(dir.path(), "fw.img", size);
    // 3 parts of 1 MiB at a time at 2 MiB/s each: cancelled once the first part URL was handed
    // out, while the parts are on their way.
    let mut running = Box::pin(deploy(&client, &token, "fw.img", &file, size, &checksums));
    let upload_created = async {
        while calls(&registry.registry.requests(), "urlPart").is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::select! {
        outcome = &mut running => panic!("the deploy ended before it was cancelled: {outcome:?}"),
        created = tokio::time::timeout(Duration::from_secs(20), upload_created) => {
            created.expect("an upload was created within 20 s");
        }
    }
    drop(running);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while registry.registry.aborted_multipart_uploads().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no abort within 10 s: {:?}",
            registry
                .registry
                .requests()
                .iter()
                .map(|request| format!("{} {} {}", request.method, request.path, request.status))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(registry.registry.open_multipart_uploads(), 0);
    assert!(registry.registry.artifact(REPO, "fw.img").is_none());
}
