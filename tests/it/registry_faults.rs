//! Registry faults through the real loop: transient statuses are retried under the stated
//! policy (and the job still ends with one correct result), permanent ones are not.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use pipeline_publisher::demo::{DEMO_REPO, FIRMWARE_EXAMPLE, LocalEnvironment};
use pipeline_publisher::pipeline::properties;
use pipeline_publisher::publish::PublisherSettings;
use pipeline_publisher::registry::retry::MAX_ATTEMPTS;
use pipeline_publisher::sandbox::JobResult;

/// Forwards to the registry after answering the first `failures` requests with `status`.
struct FlakyProxy {
    upstream: String,
    status: StatusCode,
    failures: usize,
    seen: AtomicUsize,
    client: reqwest::Client,
}

async fn flaky(State(proxy): State<Arc<FlakyProxy>>, request: Request) -> Response {
    if proxy.seen.fetch_add(1, Ordering::SeqCst) < proxy.failures {
        return Response::builder()
            .status(proxy.status)
            .header("Retry-After", "0")
            .body(Body::from(
                r#"{"errors":[{"status":503,"message":"maintenance"}]}"#,
            ))
            .unwrap();
    }
    support::forward(&proxy.client, &proxy.upstream, request).await
}

async fn run_through_proxy(
    status: StatusCode,
    failures: usize,
) -> (LocalEnvironment, JobResult, usize) {
    let environment = LocalEnvironment::start().await.unwrap();
    let proxy = Arc::new(FlakyProxy {
        upstream: environment.registry.base_url.clone(),
        status,
        failures,
        seen: AtomicUsize::new(0),
        client: reqwest::Client::new(),
    });
    let proxy_url = support::serve(
        axum::Router::new()
            .fallback(flaky)
            .with_state(proxy.clone()),
    )
    .await;

    let mut configuration = environment.firmware_configuration();
    configuration.insert(properties::ARTIFACTORY_HOST.to_owned(), proxy_url);
    let artifact = environment
        .upload_artifact("BuildOutput", Some("0123456789abcdef"), FIRMWARE_EXAMPLE)
        .unwrap();
    let job_id = environment.queue_job("nestbox-firmware", configuration, vec![artifact]);
    let publisher = environment.publisher(PublisherSettings::default()).unwrap();
    environment.run_worker(publisher, 1).await.unwrap();
    let record = environment.sandbox.sandbox.job(&job_id).unwrap();
    assert_eq!(record.results.len(), 1, "{:?}", record.results);
    let result = record.results[0].clone();
    let seen = proxy.seen.load(Ordering::SeqCst);
    (environment, result, seen)
}

#[tokio::test]
async fn transient_statuses_are_retried_and_the_release_is_published() {
    for status in [
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::BAD_GATEWAY,
        StatusCode::INTERNAL_SERVER_ERROR,
        StatusCode::TOO_MANY_REQUESTS,
    ] {
        let failures = (MAX_ATTEMPTS - 1) as usize;
        let (environment, result, _) = run_through_proxy(status, failures).await;
        assert!(
            matches!(result, JobResult::Success { .. }),
            "{status}: {result:?}"
        );
        assert_eq!(
            environment.registry.registry.artifacts(DEMO_REPO).len(),
            3,
            "{status}"
        );
    }
}

#[tokio::test]
async fn a_registry_that_stays_down_fails_the_job_after_the_stated_attempts() {
    let (_, result, seen) = run_through_proxy(StatusCode::SERVICE_UNAVAILABLE, usize::MAX).await;
    let JobResult::Failure {
        failure_type,
        message,
        ..
    } = result
    else {
        panic!("expected a failure: {result:?}");
    };
    assert_eq!(failure_type, "JobFailed");
    assert!(
        message.contains("503") && message.contains("maintenance"),
        "{message}"
    );
    assert_eq!(
        seen, MAX_ATTEMPTS as usize,
        "the token request was tried exactly {MAX_ATTEMPTS} times"
    );
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let (_, result, seen) = run_through_proxy(StatusCode::NOT_FOUND, usize::MAX).await;
    let JobResult::Failure {
        failure_type,
        message,
        ..
    } = result
    else {
        panic!("expected a failure: {result:?}");
    };
    assert_eq!(failure_type, "JobFailed");
    assert!(message.contains("404"), "{message}");
    // 404 on the Access API means "older server": one try there, one on the legacy API.
    assert_eq!(seen, 2);
}
