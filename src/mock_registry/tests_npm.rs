//! Tests of the npm API (publish, packument, tarballs, validation, persistence) against the
//! real server on 127.0.0.1, with documents shaped like the ones npm sends.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sha1::Digest as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::MockRegistryConfig;
use super::test_support::{PASSWORD, USER, client, json_of, start};

const REPO: &str = "npm-local";

/// A publish document as npm 11 builds it for `name@version` with `tarball` as the attachment.
fn document(name: &str, version: &str, tarball: &[u8], tag: &str) -> Value {
    let file = format!("{name}-{version}.tgz");
    json!({
        "_id": name,
        "name": name,
        "description": "camera agent",
        "dist-tags": { tag: version },
        "versions": { version: {
            "name": name,
            "version": version,
            "description": "camera agent",
            "main": "index.js",
            "_id": format!("{name}@{version}"),
            "dist": {
                "shasum": hex::encode(sha1::Sha1::digest(tarball)),
                "integrity": format!("sha512-{}", STANDARD.encode(sha2::Sha512::digest(tarball))),
                "tarball": format!("http://elsewhere/{name}/-/{file}"),
            },
        }},
        "access": null,
        "_attachments": { file: {
            "content_type": "application/octet-stream",
            "data": STANDARD.encode(tarball),
            "length": tarball.len(),
        }},
    })
}

async fn put(base: &str, escaped_name: &str, body: &Value) -> (u16, Value) {
    let response = client()
        .put(format!("{base}/artifactory/api/npm/{REPO}/{escaped_name}"))
        .basic_auth(USER, Some(PASSWORD))
        .json(body)
        .send()
        .await
        .expect("sent");
    json_of(response).await
}

async fn get(url: &str) -> (u16, Value) {
    json_of(client().get(url).send().await.expect("sent")).await
}

/// npm shows a registry's `error` field; the Artifactory envelope is there too.
fn npm_error(status: u16, body: &Value) -> String {
    assert_eq!(body["errors"][0]["status"], status, "{body}");
    body["error"].as_str().expect("error text").to_string()
}

#[tokio::test]
async fn publish_read_download_and_republish() {
    let server = start(MockRegistryConfig::default()).await;
    let base = &server.base_url;
    let tarball = b"pretend gzip of package/index.js".to_vec();
    let (status, body) = put(
        base,
        "camera-agent",
        &document("camera-agent", "1.0.0", &tarball, "latest"),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    let stored = server
        .registry
        .artifact(REPO, "camera-agent/-/camera-agent-1.0.0.tgz")
        .expect("tarball stored as an artifact");
    assert_eq!(stored.properties["npm.name"], vec!["camera-agent"]);
    assert_eq!(stored.properties["npm.version"], vec!["1.0.0"]);
    assert_eq!(std::fs::read(&stored.content_path).expect("blob"), tarball);

    let (status, packument) = get(&format!("{base}/artifactory/api/npm/{REPO}/camera-agent")).await;
    assert_eq!(status, 200, "{packument}");
    assert_eq!(packument["name"], "camera-agent");
    assert_eq!(packument["dist-tags"], json!({ "latest": "1.0.0" }));
    let tarball_url =
        format!("{base}/artifactory/api/npm/{REPO}/camera-agent/-/camera-agent-1.0.0.tgz");
    assert_eq!(
        packument["versions"]["1.0.0"]["dist"]["tarball"],
        tarball_url.as_str()
    );
    assert_eq!(packument["versions"]["1.0.0"]["main"], "index.js");
    assert!(packument["time"]["1.0.0"].is_string(), "{packument}");
    assert_eq!(
        server
            .registry
            .npm_package(REPO, "camera-agent")
            .expect("helper")["versions"]["1.0.0"]["dist"]["tarball"],
        format!("/artifactory/api/npm/{REPO}/camera-agent/-/camera-agent-1.0.0.tgz")
    );

    let download = client().get(&tarball_url).send().await.expect("sent");
    assert_eq!(download.status(), 200);
    assert_eq!(
        download.bytes().await.expect("body").as_ref(),
        tarball.as_slice()
    );

    let (status, body) = put(
        base,
        "camera-agent",
        &document("camera-agent", "1.0.0", &tarball, "latest"),
    )
    .await;
    assert_eq!(status, 200, "identical republish is a success: {body}");
    let (status, body) = put(
        base,
        "camera-agent",
        &document("camera-agent", "1.0.0", b"other", "latest"),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        npm_error(403, &body),
        "You cannot publish over the previously published versions: 1.0.0."
    );

    let (status, body) = get(&format!(
        "{base}/artifactory/api/npm/{REPO}/unknown-package"
    ))
    .await;
    assert_eq!(status, 404, "{body}");
    assert!(npm_error(404, &body).contains("unknown-package"), "{body}");
}

#[tokio::test]
async fn scoped_packages_either_escaping_and_dist_tags_merge() {
    let server = start(MockRegistryConfig::default()).await;
    let base = &server.base_url;
    let name = "@acme/camera-agent";
    let (status, body) = put(
        base,
        "@acme%2fcamera-agent",
        &document(name, "1.0.0", b"one", "latest"),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = put(
        base,
        "@acme/camera-agent",
        &document(name, "1.1.0-rc.1", b"two", "next"),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert!(
        server
            .registry
            .artifact(
                REPO,
                "@acme/camera-agent/-/@acme/camera-agent-1.1.0-rc.1.tgz"
            )
            .is_some()
    );
    let (status, packument) = get(&format!(
        "{base}/artifactory/api/npm/{REPO}/@acme%2Fcamera-agent"
    ))
    .await;
    assert_eq!(status, 200, "{packument}");
    assert_eq!(
        packument["dist-tags"],
        json!({ "latest": "1.0.0", "next": "1.1.0-rc.1" })
    );
    let tarball_url = packument["versions"]["1.1.0-rc.1"]["dist"]["tarball"]
        .as_str()
        .expect("tarball url");
    assert_eq!(
        tarball_url,
        format!(
            "{base}/artifactory/api/npm/{REPO}/@acme/camera-agent/-/@acme/camera-agent-1.1.0-rc.1.tgz"
        )
    );
    for url in [
        tarball_url.to_string(),
        format!(
            "{base}/artifactory/api/npm/{REPO}/@acme/camera-agent/-/camera-agent-1.1.0-rc.1.tgz"
        ),
    ] {
        let download = client().get(&url).send().await.expect("sent");
        assert_eq!(download.status(), 200, "{url}");
        assert_eq!(download.bytes().await.expect("body").as_ref(), b"two");
    }
}

#[tokio::test]
async fn documents_that_do_not_match_their_tarball_are_rejected() {
    let server = start(MockRegistryConfig::default()).await;
    let base = &server.base_url;
    let good = document("agent", "1.0.0", b"tarball", "latest");
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "length",
            patched(&good, "/_attachments/agent-1.0.0.tgz/length", json!(3)),
            "declares length 3",
        ),
        (
            "shasum",
            patched(&good, "/versions/1.0.0/dist/shasum", json!("00".repeat(20))),
            "Shasum check failed",
        ),
        (
            "integrity",
            patched(
                &good,
                "/versions/1.0.0/dist/integrity",
                json!("sha512-AAAA"),
            ),
            "Integrity check failed",
        ),
        (
            "no attachment",
            patched(&good, "/_attachments", json!({})),
            "No attachment for agent@1.0.0",
        ),
        (
            "other name",
            patched(&good, "/name", json!("someone-else")),
            "someone-else",
        ),
        (
            "bad tag",
            patched(&good, "/dist-tags", json!({ "latest": "9.9.9" })),
            "unknown version",
        ),
        (
            "base64",
            patched(&good, "/_attachments/agent-1.0.0.tgz/data", json!("***")),
            "not valid base64",
        ),
    ];
    for (case, body, expected) in cases {
        let (status, answer) = put(base, "agent", &body).await;
        assert_eq!(status, 400, "{case}: {answer}");
        assert!(
            npm_error(400, &answer).contains(expected),
            "{case}: {answer}"
        );
    }
    assert!(server.registry.npm_package(REPO, "agent").is_none());
    assert!(server.registry.artifacts(REPO).is_empty());

    let anonymous = client()
        .put(format!("{base}/artifactory/api/npm/{REPO}/agent"))
        .json(&good)
        .send()
        .await
        .expect("sent");
    assert_eq!(anonymous.status(), 401);

    let address = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connects");
    let request = format!(
        "PUT /artifactory/api/npm/{REPO}/agent HTTP/1.1\r\nHost: {address}\r\nAuthorization: Basic ZGVtbzpkZW1vLXBhc3N3b3Jk\r\nContent-Type: application/json\r\nContent-Length: 600000000\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("writes");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("reads");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

fn patched(document: &Value, pointer: &str, value: Value) -> Value {
    let mut document = document.clone();
    *document.pointer_mut(pointer).expect("pointer exists") = value;
    document
}

#[tokio::test]
async fn packages_survive_a_restart() {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let config = MockRegistryConfig {
        data_dir: Some(data_dir.path().to_path_buf()),
        ..MockRegistryConfig::default()
    };
    let server = start(config.clone()).await;
    let (status, body) = put(
        &server.base_url,
        "agent",
        &document("agent", "2.0.0", b"bytes", "latest"),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    server.shutdown().await;

    let server = start(config).await;
    let (status, packument) = get(&format!(
        "{}/artifactory/api/npm/{REPO}/agent",
        server.base_url
    ))
    .await;
    assert_eq!(status, 200, "{packument}");
    assert_eq!(packument["dist-tags"]["latest"], "2.0.0");
    let (status, body) = put(
        &server.base_url,
        "agent",
        &document("agent", "2.0.0", b"changed", "latest"),
    )
    .await;
    assert_eq!(status, 403, "{body}");
}
