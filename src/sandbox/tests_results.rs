//! Failure-path tests of the job API: exactly one accepted result, AWS-like validation,
//! throttling, and authentication.

use aws_sdk_codepipeline::Client;
use aws_sdk_codepipeline::error::ProvideErrorMetadata;
use aws_sdk_codepipeline::types::{ActionCategory, ActionOwner, ExecutionDetails, FailureType};

use super::tests::{action_type, claim, code, failure, poll, sdk_config, start, start_with};
use super::*;

#[tokio::test]
async fn a_second_result_is_refused_and_recorded() {
    let (running, client) = start_with(SandboxConfig::default()).await;
    let sandbox = &running.sandbox;
    sandbox.queue_job(JobSpec::new("p"));
    let job_id = claim(&client).await;
    let details = failure(FailureType::ConfigurationError, "missing Repository");
    client
        .put_job_failure_result()
        .job_id(&job_id)
        .failure_details(details.clone())
        .send()
        .await
        .unwrap();
    let error = client
        .put_job_success_result()
        .job_id(&job_id)
        .send()
        .await
        .unwrap_err();
    assert!(error.into_service_error().is_invalid_job_state_exception());

    let record = sandbox.job(&job_id).unwrap();
    assert_eq!(record.status, JobStatus::Failed);
    assert_eq!(
        record.results,
        [JobResult::Failure {
            failure_type: "ConfigurationError".to_owned(),
            message: "missing Repository".to_owned(),
            external_execution_id: None,
        }]
    );
    assert_eq!(record.rejected_results.len(), 1);
    assert_eq!(record.rejected_results[0].0, "InvalidJobStateException");
    let result_calls = sandbox
        .calls()
        .into_iter()
        .filter(|call| {
            matches!(call, RecordedCall::JobApi { operation, .. } if operation.starts_with("PutJob"))
        })
        .count();
    assert_eq!(result_calls, 2);
    running.shutdown().await;
}

#[tokio::test]
async fn results_are_validated_like_aws() {
    let (running, client) = start_with(SandboxConfig::default()).await;
    let sandbox = &running.sandbox;
    sandbox.queue_job(JobSpec::new("p"));
    let job_id = claim(&client).await;

    let bad_failures = [
        failure(FailureType::from("Exploded"), "boom"),
        failure(FailureType::JobFailed, ""),
        failure(FailureType::JobFailed, &"x".repeat(5001)),
    ];
    for details in bad_failures {
        let error = client
            .put_job_failure_result()
            .job_id(&job_id)
            .failure_details(details)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&error), "ValidationException");
    }
    let execution = |summary: &str, percent: i32| {
        ExecutionDetails::builder()
            .summary(summary)
            .percent_complete(percent)
            .build()
    };
    let bad_successes = [
        client
            .put_job_success_result()
            .execution_details(execution(&"s".repeat(2049), 100)),
        client
            .put_job_success_result()
            .execution_details(execution("ok", 101)),
        client
            .put_job_success_result()
            .output_variables("not valid", "v"),
        client
            .put_job_success_result()
            .continuation_token("more")
            .output_variables("Name", "v"),
    ];
    for request in bad_successes {
        let error = request.job_id(&job_id).send().await.unwrap_err();
        assert_eq!(code(&error), "ValidationException");
    }
    let error = client
        .put_job_success_result()
        .job_id("not-a-uuid")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&error), "ValidationException");

    // None of that ended the job; a valid result still does.
    let message = "m".repeat(5000);
    client
        .put_job_failure_result()
        .job_id(&job_id)
        .failure_details(failure(FailureType::SystemUnavailable, &message))
        .send()
        .await
        .unwrap();
    let record = sandbox.job(&job_id).unwrap();
    assert_eq!(record.results.len(), 1);
    assert_eq!(record.rejected_results.len(), 7);
    assert!(
        record.rejected_results[2]
            .1
            .contains("Member must have length less than or equal to 5000"),
        "{:?}",
        record.rejected_results[2]
    );
    running.shutdown().await;
}

#[tokio::test]
async fn throttling_is_reported_then_retried() {
    let (running, client) = start_with(SandboxConfig::default()).await;
    let sandbox = &running.sandbox;
    sandbox.throttle_next(2);
    // The SDK's standard retry (3 attempts) rides out two throttled answers.
    assert!(poll(&client, 1).await.is_empty());
    let outcomes: Vec<CallOutcome> = sandbox
        .calls()
        .into_iter()
        .filter_map(|call| match call {
            RecordedCall::JobApi { outcome, .. } => Some(outcome),
            _ => None,
        })
        .collect();
    let throttled = CallOutcome::Error("ThrottlingException".to_owned());
    assert_eq!(outcomes, [throttled.clone(), throttled, CallOutcome::Ok]);

    sandbox.throttle_next(1);
    let error = client
        .poll_for_jobs()
        .action_type_id(action_type())
        .customize()
        .config_override(
            aws_sdk_codepipeline::config::Config::builder()
                .retry_config(aws_config::retry::RetryConfig::disabled()),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&error), "ThrottlingException");
    assert_eq!(
        error.as_service_error().and_then(|e| e.message()),
        Some("Rate exceeded")
    );
    running.shutdown().await;
}

#[tokio::test]
async fn requests_must_be_signed_by_the_worker() {
    let (running, client) = start().await;
    let sandbox = &running.sandbox;
    let job_id = sandbox.queue_job(JobSpec::new("p"));

    let unsigned = reqwest::Client::new()
        .post(&running.endpoint_url)
        .header("x-amz-target", "CodePipeline_20150709.GetJobDetails")
        .header("content-type", "application/x-amz-json-1.1")
        .body(format!(r#"{{"jobId":"{job_id}"}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 400);
    let body: serde_json::Value = unsigned.json().await.unwrap();
    assert_eq!(body["__type"], "MissingAuthenticationTokenException");

    let (key, _) = sandbox.worker_credentials();
    let attempts = [
        (
            key.as_str(),
            "wrong-secret",
            None,
            "InvalidSignatureException",
        ),
        (
            "AKIAIOSFODNN7EXAMPLE",
            "secret",
            None,
            "UnrecognizedClientException",
        ),
    ];
    for (key, secret, token, expected) in attempts {
        let other = Client::new(&sdk_config(&running, key, secret, token).await);
        let error = other
            .get_job_details()
            .job_id(&job_id)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&error), expected);
    }
    let job = sandbox.job(&job_id).unwrap();
    let (key, secret, token) = job.credentials;
    let as_job = Client::new(&sdk_config(&running, &key, &secret, Some(&token)).await);
    let error = as_job
        .get_job_details()
        .job_id(&job_id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&error), "AccessDeniedException");

    let unknown_type = aws_sdk_codepipeline::types::ActionTypeId::builder()
        .category(ActionCategory::Deploy)
        .owner(ActionOwner::Custom)
        .provider("Nexus")
        .version("1")
        .build()
        .unwrap();
    let error = client
        .poll_for_jobs()
        .action_type_id(unknown_type)
        .send()
        .await
        .unwrap_err();
    assert!(
        error
            .into_service_error()
            .is_action_type_not_found_exception()
    );
    running.shutdown().await;
}
