//! Files of one job are uploaded several at a time (`--upload-concurrency`), never more.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::response::Response;
use pipeline_publisher::demo::{DEMO_REPO, LocalEnvironment};
use pipeline_publisher::pipeline::properties;
use pipeline_publisher::publish::PublisherSettings;
use pipeline_publisher::sandbox::JobResult;
use tokio::sync::Notify;

/// Counts deploys in flight; each waits (at most 300 ms) for a second one to arrive, so overlap
/// shows whenever the worker sends uploads side by side.
struct OverlapProxy {
    upstream: String,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    arrived: Notify,
    client: reqwest::Client,
}

async fn count_overlap(State(proxy): State<Arc<OverlapProxy>>, request: Request) -> Response {
    let deploy =
        request.method() == Method::PUT && !request.uri().path().starts_with("/artifactory/api/");
    if !deploy {
        return support::forward(&proxy.client, &proxy.upstream, request).await;
    }
    let now = proxy.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    proxy.peak.fetch_max(now, Ordering::SeqCst);
    proxy.arrived.notify_waiters();
    if now < 2 {
        let _ = tokio::time::timeout(Duration::from_millis(300), proxy.arrived.notified()).await;
    }
    let response = support::forward(&proxy.client, &proxy.upstream, request).await;
    proxy.in_flight.fetch_sub(1, Ordering::SeqCst);
    response
}

async fn peak_uploads(concurrency: usize) -> usize {
    let environment = LocalEnvironment::start().await.unwrap();
    let proxy = Arc::new(OverlapProxy {
        upstream: environment.registry.base_url.clone(),
        in_flight: AtomicUsize::new(0),
        peak: AtomicUsize::new(0),
        arrived: Notify::new(),
        client: reqwest::Client::new(),
    });
    let proxy_url = support::serve(
        axum::Router::new()
            .fallback(count_overlap)
            .with_state(proxy.clone()),
    )
    .await;
    let mut configuration = environment.firmware_configuration();
    configuration.insert(properties::ARTIFACTORY_HOST.to_owned(), proxy_url);
    let names: Vec<String> = (0..8).map(|i| format!("tile-{i:02}.bin")).collect();
    let entries: Vec<(&str, &[u8])> = names
        .iter()
        .map(|name| (name.as_str(), name.as_bytes()))
        .collect();
    let artifact = environment
        .upload_artifact("BuildOutput", Some("0123456789abcdef"), &entries)
        .unwrap();
    let job_id = environment.queue_job("nestbox-firmware", configuration, vec![artifact]);
    let publisher = environment
        .publisher(PublisherSettings {
            upload_concurrency: concurrency,
            ..PublisherSettings::default()
        })
        .unwrap();
    environment.run_worker(publisher, 1).await.unwrap();
    let record = environment.sandbox.sandbox.job(&job_id).unwrap();
    assert!(
        matches!(record.results.as_slice(), [JobResult::Success { .. }]),
        "{:?}",
        record.results
    );
    assert_eq!(environment.registry.registry.artifacts(DEMO_REPO).len(), 8);
    proxy.peak.load(Ordering::SeqCst)
}

#[tokio::test]
async fn uploads_run_side_by_side_up_to_the_limit() {
    let peak = peak_uploads(4).await;
    assert!((2..=4).contains(&peak), "peak of {peak} uploads at once");
}

#[tokio::test]
async fn an_upload_concurrency_of_one_sends_one_file_at_a_time() {
    assert_eq!(peak_uploads(1).await, 1);
}
