//! Faults a canned response cannot express: a registry that resets the connection in the
//! middle of an upload, and one that stalls without answering. Both are retried under the
//! stated policy and the job still ends with one correct result.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::response::Response;
use pipeline_publisher::artifacts::ArtifactStore;
use pipeline_publisher::demo::{DEMO_REPO, FIRMWARE_EXAMPLE, LocalEnvironment};
use pipeline_publisher::pipeline::properties;
use pipeline_publisher::publish::{Publisher, PublisherSettings};
use pipeline_publisher::sandbox::JobResult;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy that cuts the connection carrying the first deploy (`PUT /artifactory/{repo}`)
/// as soon as its headers pass, before the body is through; everything else is piped.
async fn resetting_proxy(upstream: std::net::SocketAddr) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let resets = Arc::new(AtomicUsize::new(0));
    let counter = resets.clone();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                let server = TcpStream::connect(upstream).await.unwrap();
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let back = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                });
                let mut buffer = vec![0u8; 64 * 1024];
                while let Ok(read) = client_read.read(&mut buffer).await {
                    if read == 0 {
                        break;
                    }
                    let chunk = &buffer[..read];
                    let is_deploy = chunk.windows(25).any(|w| w == b"PUT /artifactory/firmware");
                    if is_deploy && counter.fetch_add(1, Ordering::SeqCst) == 0 {
                        // Forward the headers, then drop both directions mid-request.
                        let _ = server_write.write_all(chunk).await;
                        back.abort();
                        return;
                    }
                    if server_write.write_all(chunk).await.is_err() {
                        break;
                    }
                }
                let _ = back.await;
            });
        }
    });
    (url, resets)
}

/// Holds the first deploy forever (the worker's read timeout must cut it); forwards the rest.
struct StallingOnce {
    upstream: String,
    stalled: AtomicBool,
    client: reqwest::Client,
}

async fn stall_first_deploy(State(proxy): State<Arc<StallingOnce>>, request: Request) -> Response {
    let deploy =
        request.method() == Method::PUT && !request.uri().path().starts_with("/artifactory/api/");
    if deploy && !proxy.stalled.swap(true, Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
    support::forward(&proxy.client, &proxy.upstream, request).await
}

async fn run_job(
    environment: &LocalEnvironment,
    host: String,
    read_timeout: Duration,
) -> JobResult {
    let mut configuration = environment.firmware_configuration();
    configuration.insert(properties::ARTIFACTORY_HOST.to_owned(), host);
    let artifact = environment
        .upload_artifact("BuildOutput", Some("0123456789abcdef"), FIRMWARE_EXAMPLE)
        .unwrap();
    let job_id = environment.queue_job("nestbox-firmware", configuration, vec![artifact]);
    let publisher = Publisher::new(
        PublisherSettings::default(),
        ArtifactStore::new(environment.sdk_config.clone(), true),
        pipeline_publisher::registry::http_client_with_timeout(read_timeout).unwrap(),
    );
    environment.run_worker(publisher, 1).await.unwrap();
    let record = environment.sandbox.sandbox.job(&job_id).unwrap();
    assert_eq!(record.results.len(), 1, "{:?}", record.results);
    record.results[0].clone()
}

#[tokio::test]
async fn a_connection_reset_mid_upload_is_retried() {
    let environment = LocalEnvironment::start().await.unwrap();
    let upstream: std::net::SocketAddr = environment
        .registry
        .base_url
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let (proxy_url, resets) = resetting_proxy(upstream).await;
    let result = run_job(&environment, proxy_url, Duration::from_secs(30)).await;
    assert!(matches!(result, JobResult::Success { .. }), "{result:?}");
    assert!(
        resets.load(Ordering::SeqCst) >= 2,
        "the first deploy was cut, a later one went through"
    );
    assert_eq!(environment.registry.registry.artifacts(DEMO_REPO).len(), 3);
}

#[tokio::test]
async fn a_stalled_registry_is_timed_out_and_retried() {
    let environment = LocalEnvironment::start().await.unwrap();
    let proxy = Arc::new(StallingOnce {
        upstream: environment.registry.base_url.clone(),
        stalled: AtomicBool::new(false),
        client: reqwest::Client::new(),
    });
    let proxy_url = support::serve(
        axum::Router::new()
            .fallback(stall_first_deploy)
            .with_state(proxy.clone()),
    )
    .await;
    let result = run_job(&environment, proxy_url, Duration::from_secs(1)).await;
    assert!(matches!(result, JobResult::Success { .. }), "{result:?}");
    assert!(proxy.stalled.load(Ordering::SeqCst));
    assert_eq!(environment.registry.registry.artifacts(DEMO_REPO).len(), 3);
}
