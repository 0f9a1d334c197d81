//! Nothing the worker writes — the job directory, the receipt in the output artifact, the
//! properties and build info it stores in the registry — holds a secret. (Kept apart from the
//! log-capture tests, whose thread-local subscribers must have their process to themselves.)

use pipeline_publisher::demo::{DEMO_PASSWORD, LocalEnvironment};
use pipeline_publisher::publish::PublisherSettings;
use pipeline_publisher::sandbox::JobResult;

fn assert_no_secret(haystack: &str, secrets: &[String], what: &str) {
    for (index, secret) in secrets.iter().enumerate() {
        assert!(secret.len() >= 8);
        assert!(
            !haystack.contains(secret.as_str()),
            "secret #{index} leaked into {what}"
        );
    }
}

#[tokio::test]
async fn nothing_the_worker_writes_holds_a_secret() {
    use pipeline_publisher::demo::camera_agent;
    use pipeline_publisher::sandbox::{ArtifactSpec, JobSpec, SandboxConfig};
    use std::io::Read;

    let environment = LocalEnvironment::start().await.unwrap();
    let entries = camera_agent::combined_build().unwrap();
    let borrowed: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|(path, bytes)| (path.as_str(), bytes.as_slice()))
        .collect();
    let input = environment
        .upload_artifact("CameraBuild", Some("4b7d0c9e2a1f3e5d"), &borrowed)
        .unwrap();
    let bucket = SandboxConfig::default().artifact_bucket;
    let mut spec = JobSpec::new("nestbox-camera");
    spec.configuration = environment.camera_agent_configuration();
    spec.input_artifacts = vec![input];
    spec.output_artifacts = vec![ArtifactSpec::new("PublishReceipt", &bucket, "receipts/r1")];
    let job_id = environment.sandbox.sandbox.queue_job(spec);
    let work_dir = tempfile::tempdir().unwrap();
    let publisher = environment
        .publisher(PublisherSettings {
            work_dir: Some(work_dir.path().to_owned()),
            ..PublisherSettings::default()
        })
        .unwrap();
    let report = environment.run_worker(publisher, 1).await.unwrap();
    assert_eq!(report.succeeded, 1);

    let record = environment.sandbox.sandbox.job(&job_id).unwrap();
    let mut secrets = vec![
        DEMO_PASSWORD.to_owned(),
        record.credentials.1.clone(),
        record.credentials.2.clone(),
    ];
    secrets.extend(environment.registry.registry.issued_token_values());

    // The job directory is gone; the receipt in the output artifact is the only file left.
    assert_eq!(std::fs::read_dir(work_dir.path()).unwrap().count(), 0);
    let receipt = environment
        .sandbox
        .sandbox
        .object(&bucket, "receipts/r1")
        .unwrap();
    let mut zip =
        zip::ZipArchive::new(std::fs::File::open(&receipt.content_path).unwrap()).unwrap();
    let mut written = String::new();
    for index in 0..zip.len() {
        zip.by_index(index)
            .unwrap()
            .read_to_string(&mut written)
            .unwrap();
    }
    assert!(written.contains("publish-receipt") || written.contains("sha256"));
    // What the worker stored in the registry: every property and the build info.
    for repo in [
        "firmware-releases",
        "camera-agent-npm",
        "camera-agent-debian",
        "camera-agent-pypi",
    ] {
        for artifact in environment.registry.registry.artifacts(repo) {
            written.push_str(&format!("{:?}", artifact.properties));
        }
    }
    let build = environment
        .registry
        .registry
        .build_info("nestbox-camera", &record_execution_id(&record))
        .unwrap();
    written.push_str(&build.to_string());
    assert_no_secret(&written, &secrets, "what the worker wrote");
}

fn record_execution_id(record: &pipeline_publisher::sandbox::JobRecord) -> String {
    match &record.results[0] {
        JobResult::Success {
            output_variables, ..
        } => output_variables["BuildNumber"].clone(),
        other => panic!("expected success: {other:?}"),
    }
}
