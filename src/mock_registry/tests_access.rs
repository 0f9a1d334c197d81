//! Tests of access rules, persistence, path validation and large uploads, against the real
//! server on 127.0.0.1.

use serde_json::json;
use sha2::Digest as _;

use super::test_support::{PASSWORD, USER, client, deploy, json_of, raw_status, start};
use super::{MockRegistry, MockRegistryConfig};

const CONTENT: &[u8] = b"camera agent package\n";

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

#[tokio::test]
async fn anonymous_writes_unknown_repositories_and_closed_reads_are_refused() {
    let config = MockRegistryConfig {
        repositories: vec!["generic-local".to_string()],
        anonymous_read: false,
        ..MockRegistryConfig::default()
    };
    let server = start(config).await;
    let base = &server.base_url;
    let anonymous = client()
        .put(format!("{base}/artifactory/generic-local/a.bin"))
        .body(CONTENT)
        .send()
        .await
        .expect("sent");
    assert_eq!(anonymous.status(), 401);
    let (status, body) = deploy(base, "elsewhere-local/a.bin", CONTENT).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(deploy(base, "generic-local/a.bin", CONTENT).await.0, 201);
    let read = client()
        .get(format!("{base}/artifactory/generic-local/a.bin"))
        .send()
        .await
        .expect("sent");
    assert_eq!(read.status(), 401);
    let (status, listing) = json_of(
        client()
            .get(format!("{base}/artifactory/api/storage/generic-local"))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        listing["children"],
        json!([{ "uri": "/a.bin", "folder": false }])
    );
}

#[tokio::test]
async fn artifacts_survive_a_restart_on_the_same_data_dir() {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let config = MockRegistryConfig {
        data_dir: Some(data_dir.path().to_path_buf()),
        ..MockRegistryConfig::default()
    };
    let first = start(config.clone()).await;
    assert_eq!(
        deploy(&first.base_url, "generic-local/keep/me.bin;k=v", CONTENT)
            .await
            .0,
        201
    );
    first.shutdown().await;

    let reloaded = MockRegistry::new(config.clone()).expect("reloads");
    let stored = reloaded
        .artifact("generic-local", "keep/me.bin")
        .expect("persisted");
    assert_eq!(
        (stored.sha256.as_str(), stored.properties["k"][0].as_str()),
        (sha256_hex(CONTENT).as_str(), "v")
    );
    assert!(stored.content_path.starts_with(data_dir.path()));
    let second = start(config).await;
    let download = client()
        .get(format!(
            "{}/artifactory/generic-local/keep/me.bin",
            second.base_url
        ))
        .send()
        .await
        .expect("sent");
    assert_eq!(download.bytes().await.expect("bytes").as_ref(), CONTENT);
    assert!(
        std::fs::read_dir(data_dir.path().join("uploads"))
            .expect("uploads")
            .next()
            .is_none()
    );
}

#[tokio::test]
async fn traversal_and_malformed_paths_are_400() {
    let server = start(MockRegistryConfig::default()).await;
    for target in [
        "/artifactory/generic-local/../secret",
        "/artifactory/generic-local/a/%2e%2e/b",
        "/artifactory/generic-local/a%2F..%2Fb",
        "/artifactory/generic-local/a//b",
        "/artifactory/generic-local/a\\b",
        "/artifactory/../generic-local/a",
    ] {
        assert_eq!(
            raw_status(&server.base_url, "PUT", target).await,
            400,
            "PUT {target}"
        );
    }
    let storage = "/artifactory/api/storage/generic-local/..";
    assert_eq!(raw_status(&server.base_url, "GET", storage).await, 400);
    assert!(server.registry.artifacts("generic-local").is_empty());
}

#[tokio::test]
async fn large_uploads_stream_past_the_default_body_limit() {
    let server = start(MockRegistryConfig::default()).await;
    let content: Vec<u8> = (0..(5 << 20))
        .map(|index: u32| (index % 251) as u8)
        .collect();
    let (status, body) = deploy(&server.base_url, "generic-local/big.bin", &content).await;
    assert_eq!(status, 201, "{body}");
    let stored = server
        .registry
        .artifact("generic-local", "big.bin")
        .expect("stored");
    assert_eq!(
        (stored.size, stored.sha256.clone()),
        (content.len() as u64, sha256_hex(&content))
    );
}
