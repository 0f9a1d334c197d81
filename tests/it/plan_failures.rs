//! What a pipeline author is told when a job cannot be planned, through the real worker loop
//! against the CodePipeline/S3 stand-in: their own mistakes (spec, patterns, packages) are
//! `ConfigurationError`s, while the worker's own disk failing mid-job is `JobFailed` and says
//! so. The rendered messages are snapshots.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_credential_types::Credentials;
use axum::extract::Request;
use axum::middleware::{self, Next};
use pipeline_publisher::artifacts::ArtifactStore;
use pipeline_publisher::demo::{FIRMWARE_EXAMPLE, LocalEnvironment, camera_agent};
use pipeline_publisher::pipeline::properties;
use pipeline_publisher::publish::{Publisher, PublisherSettings};
use pipeline_publisher::sandbox::{ArtifactSpec, JobResult, SandboxConfig};

const REVISION: &str = "9c1e5a2f7b3d4e6a8c0b1d2e3f4a5b6c7d8e9f01";

/// The prefix of the per-job directories the publisher creates under its work directory.
const JOB_DIR_PREFIX: &str = "pipeline-publisher-job-";

type Entries = Vec<(String, Vec<u8>)>;

fn upload(environment: &LocalEnvironment, entries: &Entries) -> ArtifactSpec {
    let borrowed: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|(path, bytes)| (path.as_str(), bytes.as_slice()))
        .collect();
    environment
        .upload_artifact("BuildOutput", Some(REVISION), &borrowed)
        .unwrap()
}

/// Runs one job with `publisher` to its end; returns its failure type and message.
async fn run_failing_job(
    environment: &LocalEnvironment,
    publisher: Publisher,
    configuration: BTreeMap<String, String>,
    artifact: ArtifactSpec,
) -> (String, String) {
    let job_id = environment.queue_job("nestbox-firmware", configuration, vec![artifact]);
    environment.run_worker(publisher, 1).await.unwrap();
    let record = environment.sandbox.sandbox.job(&job_id).unwrap();
    match record.results.as_slice() {
        [
            JobResult::Failure {
                failure_type,
                message,
                ..
            },
        ] => (failure_type.clone(), message.clone()),
        other => panic!("expected exactly one failure, got {other:?}"),
    }
}

fn configuration(environment: &LocalEnvironment, kind: &str) -> BTreeMap<String, String> {
    let mut configuration = environment.firmware_configuration();
    configuration.insert(properties::TYPE_OF_ARTIFACT.into(), kind.into());
    configuration
}

fn firmware() -> Entries {
    FIRMWARE_EXAMPLE
        .iter()
        .map(|(name, bytes)| ((*name).to_owned(), bytes.to_vec()))
        .collect()
}

/// The example npm package directory under `agent/npm/`.
fn npm_package() -> Entries {
    camera_agent::NPM_SOURCE
        .iter()
        .map(|(path, bytes, _)| (format!("agent/npm/{path}"), bytes.to_vec()))
        .collect()
}

fn with(mut entries: Entries, path: &str, bytes: &[u8]) -> Entries {
    entries.push((path.to_owned(), bytes.to_vec()));
    entries
}

/// Serves the sandbox's S3 on another port, and as the worker fetches `key` (its job
/// directory exists by then; planning has not started), puts a file where the job's pack
/// directory must go: the workspace stops being usable in the middle of the job, as when
/// another process or a failing disk gets in the way. Returns a publisher whose artifact
/// downloads go through it, with `work_dir` as its work directory.
async fn publisher_whose_workspace_breaks(
    environment: &LocalEnvironment,
    key: &str,
    work_dir: &Path,
) -> Publisher {
    let settings = PublisherSettings {
        work_dir: Some(work_dir.to_owned()),
        ..PublisherSettings::default()
    };
    let (key, work_dir) = (Arc::new(key.to_owned()), Arc::new(work_dir.to_owned()));
    let interfere = middleware::from_fn(move |request: Request, next: Next| {
        let (key, work_dir) = (key.clone(), work_dir.clone());
        async move {
            if request.uri().path().ends_with(key.as_str()) {
                for job_dir in job_dirs(&work_dir) {
                    std::fs::write(job_dir.join("packed"), b"not a directory").unwrap();
                }
            }
            next.run(request).await
        }
    });
    let router = environment.sandbox.sandbox.s3_router().layer(interfere);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });

    let (access_key_id, secret) = environment.sandbox.sandbox.worker_credentials();
    let sdk_config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(SandboxConfig::default().region))
        .credentials_provider(Credentials::new(
            access_key_id,
            secret,
            None,
            None,
            "plan-failures",
        ))
        .endpoint_url(endpoint)
        .load()
        .await;
    Publisher::new(
        settings,
        ArtifactStore::new(sdk_config, true),
        pipeline_publisher::registry::http_client().unwrap(),
    )
}

fn job_dirs(work_dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(work_dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with(JOB_DIR_PREFIX))
        })
        .collect()
}

/// Replaces the random parts of a worker-disk message (the work and job directories).
fn stable(message: &str, work_dir: &Path) -> String {
    let message = message.replace(&work_dir.display().to_string(), "[work-dir]");
    let Some(start) = message.find(JOB_DIR_PREFIX) else {
        return message;
    };
    let end = message[start..]
        .find('/')
        .map_or(message.len(), |offset| start + offset);
    format!("{}[job-dir]{}", &message[..start], &message[end..])
}

/// The failure when the worker's disk breaks while it packs an npm directory.
async fn worker_disk_failure(environment: &LocalEnvironment) -> (String, String) {
    let artifact = upload(environment, &with(npm_package(), "fw/a.img", b"image"));
    let work_dir = tempfile::tempdir().unwrap();
    let publisher =
        publisher_whose_workspace_breaks(environment, &artifact.key, work_dir.path()).await;
    let (failure_type, message) = run_failing_job(
        environment,
        publisher,
        configuration(environment, "auto"),
        artifact,
    )
    .await;
    assert!(
        job_dirs(work_dir.path()).is_empty(),
        "the job directory is removed"
    );
    (failure_type, stable(&message, work_dir.path()))
}

#[tokio::test]
async fn a_workspace_that_breaks_mid_job_is_the_workers_failure_not_the_configurations() {
    let environment = LocalEnvironment::start().await.unwrap();
    let (failure_type, message) = worker_disk_failure(&environment).await;
    assert_eq!(failure_type, "JobFailed", "{message}");
    assert!(message.contains("work directory"), "{message}");
    assert!(message.contains("free disk space"), "{message}");
    assert!(message.contains("`agent/npm/`"), "{message}");
    assert!(!message.contains("as configured"), "{message}");
    assert!(!message.contains("ConfigurationError"), "{message}");
    assert!(
        environment.registry.registry.requests().is_empty(),
        "the registry is never contacted: planning comes first"
    );
}

#[tokio::test]
async fn plan_failure_messages_a_pipeline_author_sees() {
    let environment = LocalEnvironment::start().await.unwrap();
    let bad_npm_manifest = {
        let mut entries: Entries = npm_package()
            .into_iter()
            .filter(|(path, _)| path != "agent/npm/package.json")
            .collect();
        entries.push((
            "agent/npm/package.json".into(),
            br#"{"name":"Camera-Agent","version":"1.3.0"}"#.to_vec(),
        ));
        entries
    };
    let cases: [(&str, &str, Entries); 5] = [
        (
            "bad_spec",
            "auto",
            with(
                firmware(),
                "publish-spec.json",
                br#"{"files":[{"pattern":"*.img","tagret":"firmware-releases/x/"}]}"#,
            ),
        ),
        (
            "bad_pattern",
            "auto",
            with(
                firmware(),
                "publish-spec.json",
                br#"{"files":[{"pattern":"firmware/(*.img"}]}"#,
            ),
        ),
        ("bad_npm_manifest", "auto", bad_npm_manifest),
        (
            "bad_deb",
            "debian",
            vec![(
                "agent/broken_1.0_arm64.deb".into(),
                b"!<arch>\nnot really".to_vec(),
            )],
        ),
        (
            "bad_wheel",
            "auto",
            with(
                firmware(),
                "dist/nestbox_camera_agent-1.3.0-py3-none-any.whl",
                b"not a zip",
            ),
        ),
    ];
    for (name, kind, entries) in cases {
        let artifact = upload(&environment, &entries);
        let publisher = environment.publisher(PublisherSettings::default()).unwrap();
        let (failure_type, message) = run_failing_job(
            &environment,
            publisher,
            configuration(&environment, kind),
            artifact,
        )
        .await;
        assert_eq!(failure_type, "ConfigurationError", "{name}: {message}");
        insta::assert_snapshot!(name, message);
    }
    let (failure_type, message) = worker_disk_failure(&environment).await;
    assert_eq!(failure_type, "JobFailed", "{message}");
    insta::assert_snapshot!("worker_disk", message);
}
