//! The `pipeline-publisher worker` binary as an operator runs it: configured only through the
//! standard AWS environment variables, with the job API and S3 on *different* endpoints, so
//! the test proves that every client the worker builds — including the S3 client made from a
//! job's temporary credentials — honours `AWS_ENDPOINT_URL_CODEPIPELINE` / `AWS_ENDPOINT_URL_S3`.

use std::time::Duration;

use crate::support;

use pipeline_publisher::demo::{DEMO_PASSWORD, DEMO_REPO, DEMO_USER};
use pipeline_publisher::mock_registry::{MockRegistry, MockRegistryConfig};
use pipeline_publisher::sandbox::{JobResult, Sandbox, SandboxConfig};

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

    let job_id = sandbox.queue_job(support::firmware_job(
        &sandbox,
        "nestbox-firmware/BuildOutput/Xy12Ab3",
        support::FIRMWARE,
        &registry.base_url,
        None,
    ));

    let home = support::aws_home();
    let mut worker = support::worker_command(
        &sandbox,
        home.path(),
        "only",
        &[
            ("AWS_ENDPOINT_URL_CODEPIPELINE", &job_api_url),
            ("AWS_ENDPOINT_URL_S3", &s3_url),
        ],
    );
    worker.args(["--max-jobs", "1", "--poll-min-interval", "50ms"]);
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
