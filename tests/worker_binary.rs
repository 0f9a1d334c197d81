//! The `pipeline-publisher worker` binary as an operator runs it: configured only through the
//! standard AWS environment variables, with the job API and S3 on *different* endpoints, so
//! the test proves that every client the worker builds — including the S3 client made from a
//! job's temporary credentials — honours `AWS_ENDPOINT_URL_CODEPIPELINE` / `AWS_ENDPOINT_URL_S3`.

use std::time::Duration;

use pipeline_publisher::demo::{
    DEMO_PASSWORD, DEMO_REPO, DEMO_USER, FIRMWARE_EXAMPLE, zip_entries,
};
use pipeline_publisher::mock_registry::{MockRegistry, MockRegistryConfig};
use pipeline_publisher::pipeline::properties;
use pipeline_publisher::sandbox::{ArtifactSpec, JobResult, JobSpec, Sandbox, SandboxConfig};

async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{address}")
}

#[tokio::test]
async fn the_worker_binary_uses_the_service_specific_endpoints_for_every_client() {
    let config = SandboxConfig::default();
    let sandbox = Sandbox::new(config.clone()).unwrap();
    let job_api_url = serve(sandbox.job_api_router()).await;
    let s3_url = serve(sandbox.s3_router()).await;
    let registry = MockRegistry::start(MockRegistryConfig {
        users: vec![(DEMO_USER.to_owned(), DEMO_PASSWORD.to_owned())],
        ..MockRegistryConfig::default()
    })
    .await
    .unwrap();

    let key = "nestbox-firmware/BuildOutput/Xy12Ab3".to_owned();
    sandbox
        .put_object(
            &config.artifact_bucket,
            &key,
            &zip_entries(FIRMWARE_EXAMPLE).unwrap(),
        )
        .unwrap();
    let mut spec = JobSpec::new("nestbox-firmware");
    spec.input_artifacts = vec![ArtifactSpec {
        name: "BuildOutput".into(),
        revision: Some("0123456789abcdef".into()),
        bucket: config.artifact_bucket.clone(),
        key,
    }];
    spec.configuration = [
        (properties::ARTIFACTORY_HOST, registry.base_url.as_str()),
        (properties::REPO_KEY, DEMO_REPO),
        (properties::USER_NAME, DEMO_USER),
        (properties::PASSWORD, DEMO_PASSWORD),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect();
    let job_id = sandbox.queue_job(spec);

    let (access_key_id, secret_access_key) = sandbox.worker_credentials();
    let aws_home = tempfile::tempdir().unwrap();
    std::fs::write(aws_home.path().join("config"), "").unwrap();
    std::fs::write(aws_home.path().join("credentials"), "").unwrap();
    let mut worker = tokio::process::Command::new(env!("CARGO_BIN_EXE_pipeline-publisher"));
    worker
        .args(["worker", "--max-jobs", "1", "--s3-force-path-style"])
        .args([
            "--poll-min-interval",
            "50ms",
            "--poll-max-interval",
            "200ms",
        ])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", aws_home.path())
        .env("AWS_CONFIG_FILE", aws_home.path().join("config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            aws_home.path().join("credentials"),
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_REGION", &config.region)
        .env("AWS_ACCESS_KEY_ID", access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", secret_access_key)
        .env("AWS_ENDPOINT_URL_CODEPIPELINE", &job_api_url)
        .env("AWS_ENDPOINT_URL_S3", &s3_url)
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(60), worker.output())
        .await
        .expect("the worker exits after --max-jobs 1")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "worker failed:\n{stderr}");

    let record = sandbox.job(&job_id).unwrap();
    assert!(
        matches!(record.results.as_slice(), [JobResult::Success { .. }]),
        "{:?}\n{stderr}",
        record.results
    );
    assert_eq!(registry.registry.artifacts(DEMO_REPO).len(), 3);
    assert!(
        stderr.contains(&job_id),
        "log lines carry the job id:\n{stderr}"
    );
}
