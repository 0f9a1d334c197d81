//! At trace level, the passwordless modes leave no secret behind: no signed STS header, no web
//! identity token, no secret's content and no minted token in any log line, result message or
//! file the worker writes (its work directory, the receipts in the output artifacts, the
//! properties and build info it stores in the registry). The worker starts no processes, so no
//! process argument can carry one either.

use pipeline_publisher::demo::{DEMO_PASSWORD, DEMO_USER};
use pipeline_publisher::publish::PublisherSettings;
use pipeline_publisher::sandbox::{ArtifactSpec, JobResult, JobSpec, SandboxConfig};
use pipeline_publisher::telemetry::{self, LogFormat};

use crate::passwordless::{allowing, artifact, environment, map_worker_role, v2_configuration};
use crate::passwordless_secrets::configure_oidc;
use crate::trace_capture::{CapturedLogs, assert_no_secret, assert_no_shape, run_alone};

/// What must never show: exact secrets, and the shapes of a signed header and of a JWT.
const SECRET_SHAPES: [&str; 3] = ["Signature=", "eyJhbGci", "X-Amz-Security-Token:"];

async fn capture_and_check() {
    let logs = CapturedLogs::default();
    let writer = logs.clone();
    let subscriber =
        telemetry::subscriber(LogFormat::Text, "trace", move || writer.clone(), false).unwrap();
    let _guard = tracing::subscriber::set_default(subscriber);

    let environment = environment().await;
    let host = environment.registry.base_url.to_string();
    map_worker_role(&environment, DEMO_USER).await;
    configure_oidc(&environment, host.trim_end_matches('/')).await;
    let secret_content = format!(
        "{{\"username\": \"{DEMO_USER}\", \"password\": \"{DEMO_PASSWORD}\", \"note\": \"kept-apart-8c1f\"}}"
    );
    environment
        .sandbox
        .sandbox
        .put_secret("pipeline-publisher/acme", &secret_content);
    environment
        .sandbox
        .sandbox
        .put_parameter("/pipeline-publisher/acme", &secret_content, true);
    // A malformed secret, whose failure must not quote it.
    environment
        .sandbox
        .sandbox
        .put_secret("pipeline-publisher/broken", "not-json-but-secret-5e2a");
    let modes = [
        "aws-iam",
        "oidc:aws-fleet",
        "secretsmanager:pipeline-publisher/acme",
        "ssm:/pipeline-publisher/acme",
        "secretsmanager:pipeline-publisher/broken",
    ];
    let bucket = SandboxConfig::default().artifact_bucket;
    let jobs: Vec<String> = modes
        .iter()
        .enumerate()
        .map(|(index, mode)| {
            let mut spec = JobSpec::new("nestbox-firmware");
            spec.action_type.version = "2".to_owned();
            spec.configuration = v2_configuration(&host, mode);
            spec.input_artifacts = vec![artifact(&environment, &format!("{index}.img"))];
            spec.output_artifacts = vec![ArtifactSpec::new(
                "PublishReceipt",
                &bucket,
                &format!("receipts/{index}"),
            )];
            environment.sandbox.sandbox.queue_job(spec)
        })
        .collect();
    let work_dir = tempfile::tempdir().unwrap();
    let publisher = environment
        .publisher(PublisherSettings {
            work_dir: Some(work_dir.path().to_owned()),
            ..allowing(&[host.as_str()])
        })
        .unwrap();
    let report = environment
        .run_worker(publisher, jobs.len() as u64)
        .await
        .unwrap();
    assert_eq!((report.succeeded, report.failed), (4, 1));

    let mut secrets = vec![
        DEMO_PASSWORD.to_owned(),
        "kept-apart-8c1f".to_owned(),
        "not-json-but-secret-5e2a".to_owned(),
    ];
    secrets.extend(environment.registry.registry.issued_token_values());
    let web_identity_tokens = environment.sandbox.sandbox.issued_web_identity_tokens();
    assert!(
        !web_identity_tokens.is_empty(),
        "the OIDC job asked STS for a token"
    );
    secrets.extend(web_identity_tokens);
    let mut texts = vec![("the trace logs".to_owned(), logs.text())];
    for job in &jobs {
        for result in environment.sandbox.sandbox.job(job).unwrap().results {
            texts.push((
                format!("the result of {job}"),
                match result {
                    JobResult::Success { summary, .. } => summary.unwrap_or_default(),
                    JobResult::Failure { message, .. } => message,
                },
            ));
        }
    }
    // Every job directory is gone; what is left are the receipts and the registry's records.
    assert_eq!(std::fs::read_dir(work_dir.path()).unwrap().count(), 0);
    let mut written = String::new();
    for index in 0..jobs.len() {
        if let Some(receipt) = environment
            .sandbox
            .sandbox
            .object(&bucket, &format!("receipts/{index}"))
        {
            let mut zip =
                zip::ZipArchive::new(std::fs::File::open(&receipt.content_path).unwrap()).unwrap();
            for entry in 0..zip.len() {
                std::io::Read::read_to_string(&mut zip.by_index(entry).unwrap(), &mut written)
                    .unwrap();
            }
        }
    }
    assert!(
        written.contains("sha256"),
        "the succeeded jobs wrote their receipts"
    );
    for artifact in environment
        .registry
        .registry
        .artifacts(pipeline_publisher::demo::DEMO_REPO)
    {
        written.push_str(&format!("{:?}\n", artifact.properties));
    }
    texts.push(("the files the worker wrote".to_owned(), written));
    assert!(
        texts[0].1.contains("TRACE"),
        "the capture ran at trace level"
    );
    for (what, text) in &texts {
        assert_no_secret(text, &secrets, what);
        assert_no_shape(text, &SECRET_SHAPES, what);
    }
}

/// Set in the child process that does the capture.
const CAPTURE_CHILD: &str = "PIPELINE_PUBLISHER_PASSWORDLESS_CAPTURE_CHILD";

#[test]
fn passwordless_modes_leave_no_secret_in_trace_logs_or_results() {
    run_alone(
        "passwordless_hygiene::passwordless_modes_leave_no_secret_in_trace_logs_or_results",
        CAPTURE_CHILD,
        capture_and_check,
    );
}
