//! A token that expires mid-job: the worker mints a new one once and carries on; a second 401
//! is a `PermissionError` that lists what was and was not published, and a re-run publishes
//! only what is missing. Expiry is real: a proxy moves the mock registry's clock forward.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::response::Response;
use pipeline_publisher::demo::{DEMO_REPO, FIRMWARE_EXAMPLE, LocalEnvironment};
use pipeline_publisher::mock_registry::MockRegistry;
use pipeline_publisher::pipeline::properties;
use pipeline_publisher::publish::PublisherSettings;
use pipeline_publisher::sandbox::JobResult;

/// After each of the next `expirations` deploys, moves the registry's clock two hours on.
struct ExpiringProxy {
    upstream: String,
    registry: MockRegistry,
    expirations: AtomicUsize,
    client: reqwest::Client,
}

async fn expire_after_deploys(
    State(proxy): State<Arc<ExpiringProxy>>,
    request: Request,
) -> Response {
    let deploy =
        request.method() == Method::PUT && !request.uri().path().starts_with("/artifactory/api/");
    let response = support::forward(&proxy.client, &proxy.upstream, request).await;
    if deploy
        && proxy
            .expirations
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .is_ok()
    {
        proxy.registry.advance_clock(Duration::from_secs(2 * 3600));
    }
    response
}

async fn run_job(environment: &LocalEnvironment, expirations: usize) -> JobResult {
    let proxy = Arc::new(ExpiringProxy {
        upstream: environment.registry.base_url.clone(),
        registry: environment.registry.registry.clone(),
        expirations: AtomicUsize::new(expirations),
        client: reqwest::Client::new(),
    });
    let proxy_url = support::serve(
        axum::Router::new()
            .fallback(expire_after_deploys)
            .with_state(proxy),
    )
    .await;
    let mut configuration = environment.firmware_configuration();
    configuration.insert(properties::ARTIFACTORY_HOST.to_owned(), proxy_url);
    configuration.insert(
        properties::TARGET_PATH.to_owned(),
        "nestbox-cam/2.4.1".to_owned(),
    );
    let artifact = environment
        .upload_artifact("BuildOutput", Some("0123456789abcdef"), FIRMWARE_EXAMPLE)
        .unwrap();
    let job_id = environment.queue_job("nestbox-firmware", configuration, vec![artifact]);
    // One upload at a time, in plan order (not as extraction places the files), so "after the
    // first deploy" means the same file in every run.
    let publisher = environment
        .publisher(PublisherSettings {
            upload_concurrency: 1,
            early_uploads: false,
            ..PublisherSettings::default()
        })
        .unwrap();
    environment.run_worker(publisher, 1).await.unwrap();
    let record = environment.sandbox.sandbox.job(&job_id).unwrap();
    assert_eq!(record.results.len(), 1, "{:?}", record.results);
    record.results[0].clone()
}

#[tokio::test]
async fn an_expired_token_is_renewed_once_and_the_publish_completes() {
    let environment = LocalEnvironment::start().await.unwrap();
    let result = run_job(&environment, 1).await;
    assert!(matches!(result, JobResult::Success { .. }), "{result:?}");
    assert_eq!(environment.registry.registry.artifacts(DEMO_REPO).len(), 3);
    let tokens = environment.registry.registry.tokens();
    assert_eq!(tokens.len(), 2, "one renewal: {tokens:?}");
}

#[tokio::test]
async fn a_second_refusal_is_a_permission_error_listing_the_partial_publish_and_a_rerun_completes_it()
 {
    let environment = LocalEnvironment::start().await.unwrap();
    let result = run_job(&environment, 2).await;
    let JobResult::Failure {
        failure_type,
        message,
        ..
    } = result
    else {
        panic!("expected a failure: {result:?}");
    };
    assert_eq!(failure_type, "PermissionError", "{message}");
    assert!(
        message.contains("2 files were published, 1 not"),
        "{message}"
    );
    assert!(
        message.contains("not published:\n    nestbox-cam-2.4.1.img"),
        "{message}"
    );
    assert!(
        message.contains("Token failed verification: expired"),
        "{message}"
    );
    assert_eq!(environment.registry.registry.artifacts(DEMO_REPO).len(), 2);

    // The re-run sends only what is missing.
    let rerun = run_job(&environment, 0).await;
    let JobResult::Success { summary, .. } = &rerun else {
        panic!("the re-run succeeds: {rerun:?}");
    };
    assert!(
        summary.as_deref().unwrap().contains("2 already published"),
        "{summary:?}"
    );
    assert_eq!(environment.registry.registry.artifacts(DEMO_REPO).len(), 3);
}
