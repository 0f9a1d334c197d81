//! Job API tests: the real `aws-sdk-codepipeline` client against a served sandbox.

use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_sdk_codepipeline::Client;
use aws_sdk_codepipeline::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_codepipeline::types::{
    ActionCategory, ActionOwner, ExecutionDetails, FailureDetails, FailureType,
};

use super::*;

/// An `SdkConfig` for `sandbox` signed with the given credentials and fast retries.
pub(super) async fn sdk_config(
    running: &RunningSandbox,
    access_key_id: &str,
    secret: &str,
    session_token: Option<&str>,
) -> SdkConfig {
    let credentials = Credentials::new(
        access_key_id,
        secret,
        session_token.map(str::to_owned),
        None,
        "sandbox-test",
    );
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(running.sandbox.config().region.clone()))
        .credentials_provider(credentials)
        .endpoint_url(&running.endpoint_url)
        .retry_config(
            aws_config::retry::RetryConfig::standard()
                .with_initial_backoff(Duration::from_millis(1)),
        )
        .load()
        .await
}

/// A running sandbox and a CodePipeline client with the worker's credentials.
pub(super) async fn start_with(config: SandboxConfig) -> (RunningSandbox, Client) {
    let running = Sandbox::start(config).await.unwrap();
    let (key, secret) = running.sandbox.worker_credentials();
    let client = Client::new(&sdk_config(&running, &key, &secret, None).await);
    (running, client)
}

pub(super) async fn start() -> (RunningSandbox, Client) {
    start_with(SandboxConfig::default()).await
}

pub(super) fn action_type() -> aws_sdk_codepipeline::types::ActionTypeId {
    aws_sdk_codepipeline::types::ActionTypeId::builder()
        .category(ActionCategory::Deploy)
        .owner(ActionOwner::Custom)
        .provider("Artifactory")
        .version("1")
        .build()
        .unwrap()
}

/// Polls once for the default action type; returns (job id, nonce) pairs.
pub(super) async fn poll(client: &Client, max: i32) -> Vec<(String, String)> {
    let output = client
        .poll_for_jobs()
        .action_type_id(action_type())
        .max_batch_size(max)
        .send()
        .await
        .unwrap();
    output
        .jobs()
        .iter()
        .map(|job| {
            (
                job.id().unwrap().to_owned(),
                job.nonce().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Polls and acknowledges exactly one job.
pub(super) async fn claim(client: &Client) -> String {
    let polled = poll(client, 1).await;
    let [(job_id, nonce)] = polled.as_slice() else {
        panic!("expected one job, got {polled:?}")
    };
    client
        .acknowledge_job()
        .job_id(job_id)
        .nonce(nonce)
        .send()
        .await
        .unwrap();
    job_id.clone()
}

pub(super) fn code<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> String {
    error
        .as_service_error()
        .and_then(|error| error.code())
        .unwrap_or("<no service error>")
        .to_owned()
}

pub(super) fn failure(kind: FailureType, message: &str) -> FailureDetails {
    FailureDetails::builder()
        .r#type(kind)
        .message(message)
        .build()
        .unwrap()
}

#[tokio::test]
async fn poll_acknowledge_details_and_succeed() {
    let (running, client) = start().await;
    let sandbox = &running.sandbox;
    let mut spec = JobSpec::new("firmware");
    spec.configuration
        .insert("Repository".to_owned(), "releases".to_owned());
    spec.input_artifacts.push(ArtifactSpec {
        revision: Some("abc123".to_owned()),
        ..ArtifactSpec::new("BuildOutput", "bucket-a", "firmware/BuildOutpu/x1Y2z3")
    });
    spec.encryption_key_id = Some("arn:aws:kms:eu-west-1:111122223333:key/k".to_owned());
    let job_id = sandbox.queue_job(spec);

    let output = client
        .poll_for_jobs()
        .action_type_id(action_type())
        .send()
        .await
        .unwrap();
    let [job] = output.jobs() else {
        panic!("one job expected")
    };
    assert_eq!(job.id(), Some(job_id.as_str()));
    assert_eq!(job.account_id(), Some("111122223333"));
    let data = job.data().unwrap();
    let configuration = data
        .action_configuration()
        .unwrap()
        .configuration()
        .unwrap();
    assert_eq!(configuration["Repository"], "releases");
    let context = data.pipeline_context().unwrap();
    assert_eq!(context.pipeline_name(), Some("firmware"));
    assert_eq!(context.stage().unwrap().name(), Some("Deploy"));
    assert_eq!(
        context.pipeline_arn(),
        Some("arn:aws:codepipeline:eu-west-1:111122223333:firmware")
    );
    assert!(validate::is_uuid(context.pipeline_execution_id().unwrap()));
    let [artifact] = data.input_artifacts() else {
        panic!("one input artifact expected")
    };
    assert_eq!(artifact.revision(), Some("abc123"));
    let location = artifact.location().unwrap().s3_location().unwrap();
    assert_eq!(location.bucket_name(), "bucket-a");
    assert_eq!(location.object_key(), "firmware/BuildOutpu/x1Y2z3");
    let credentials = data.artifact_credentials().unwrap();
    assert!(credentials.access_key_id().starts_with("ASIA"));
    assert_eq!(
        data.encryption_key().unwrap().id(),
        "arn:aws:kms:eu-west-1:111122223333:key/k"
    );
    assert_eq!(sandbox.job(&job_id).unwrap().status, JobStatus::Dispatched);
    assert!(
        poll(&client, 5).await.is_empty(),
        "a dispatched job is not handed out twice"
    );

    let acknowledged = client
        .acknowledge_job()
        .job_id(&job_id)
        .nonce(job.nonce().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(acknowledged.status().unwrap().as_str(), "InProgress");

    let details = client
        .get_job_details()
        .job_id(&job_id)
        .send()
        .await
        .unwrap();
    let details = details.job_details().unwrap();
    let refreshed = details.data().unwrap().artifact_credentials().unwrap();
    assert_eq!(refreshed.access_key_id(), credentials.access_key_id());

    client
        .put_job_success_result()
        .job_id(&job_id)
        .execution_details(
            ExecutionDetails::builder()
                .summary("Published 3 files")
                .external_execution_id("build-42")
                .percent_complete(100)
                .build(),
        )
        .output_variables("PublishedPath", "releases/fw/1.2.3")
        .send()
        .await
        .unwrap();

    let result = sandbox
        .wait_for_result(&job_id, Duration::from_secs(5))
        .await;
    let Some(JobResult::Success {
        summary,
        percent_complete,
        output_variables,
        ..
    }) = result
    else {
        panic!("success expected, got {result:?}")
    };
    assert_eq!(summary.as_deref(), Some("Published 3 files"));
    assert_eq!(percent_complete, Some(100));
    assert_eq!(output_variables["PublishedPath"], "releases/fw/1.2.3");
    let record = sandbox.job(&job_id).unwrap();
    assert_eq!(record.status, JobStatus::Succeeded);
    assert_eq!(record.acknowledgements, 1);
    assert!(sandbox.wait_until_idle(Duration::from_secs(1)).await);
    running.shutdown().await;
}

#[tokio::test]
async fn invalid_nonces_and_unknown_jobs_are_refused() {
    let (running, client) = start().await;
    let sandbox = &running.sandbox;
    let first = sandbox.queue_job(JobSpec::new("p"));
    let second = sandbox.queue_job(JobSpec::new("p"));
    let polled = poll(&client, 2).await;
    assert_eq!(polled.len(), 2);

    let error = client
        .acknowledge_job()
        .job_id(&first)
        .nonce("not-the-nonce")
        .send()
        .await
        .unwrap_err();
    assert!(error.into_service_error().is_invalid_nonce_exception());

    sandbox.claim_elsewhere(&second);
    let nonce = &polled[1].1;
    let error = client
        .acknowledge_job()
        .job_id(&second)
        .nonce(nonce)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&error), "InvalidNonceException");

    // Acknowledging twice: the second is refused.
    let nonce = &polled[0].1;
    client
        .acknowledge_job()
        .job_id(&first)
        .nonce(nonce)
        .send()
        .await
        .unwrap();
    let error = client
        .acknowledge_job()
        .job_id(&first)
        .nonce(nonce)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&error), "InvalidNonceException");

    let unknown = ids::uuid();
    let error = client
        .acknowledge_job()
        .job_id(&unknown)
        .nonce("1")
        .send()
        .await
        .unwrap_err();
    assert!(error.into_service_error().is_job_not_found_exception());
    assert_eq!(sandbox.job(&first).unwrap().acknowledgements, 1);
    running.shutdown().await;
}

#[tokio::test]
async fn an_unacknowledged_job_is_handed_out_again_with_a_new_nonce() {
    let config = SandboxConfig {
        ack_timeout: Duration::ZERO,
        ..SandboxConfig::default()
    };
    let (running, client) = start_with(config).await;
    let job_id = running.sandbox.queue_job(JobSpec::new("p"));
    let first = poll(&client, 1).await;
    let second = poll(&client, 1).await;
    assert_eq!(first[0].0, job_id);
    assert_eq!(second[0].0, job_id);
    assert_ne!(first[0].1, second[0].1);
    let stale = client
        .acknowledge_job()
        .job_id(&job_id)
        .nonce(&first[0].1)
        .send()
        .await;
    assert_eq!(code(&stale.unwrap_err()), "InvalidNonceException");
    client
        .acknowledge_job()
        .job_id(&job_id)
        .nonce(&second[0].1)
        .send()
        .await
        .unwrap();
    running.shutdown().await;
}

#[tokio::test]
async fn continuation_token_queues_a_follow_up_job() {
    let (running, client) = start().await;
    let sandbox = &running.sandbox;
    let first = sandbox.queue_job(JobSpec::new("p"));
    assert_eq!(claim(&client).await, first);
    client
        .put_job_success_result()
        .job_id(&first)
        .continuation_token("part-2")
        .send()
        .await
        .unwrap();
    assert!(!sandbox.wait_until_idle(Duration::from_millis(50)).await);
    let output = client
        .poll_for_jobs()
        .action_type_id(action_type())
        .send()
        .await
        .unwrap();
    let job = &output.jobs()[0];
    assert_ne!(job.id(), Some(first.as_str()));
    assert_eq!(job.data().unwrap().continuation_token(), Some("part-2"));
    running.shutdown().await;
}
