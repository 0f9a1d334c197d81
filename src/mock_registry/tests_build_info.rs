//! Tests of build info (publish, read one, list runs, validation, persistence) and of Debian
//! properties, against the real server on 127.0.0.1.

use serde_json::{Value, json};

use super::MockRegistryConfig;
use super::test_support::{PASSWORD, USER, client, deploy, error_message, json_of, start};

fn build_info(name: &str, number: &str) -> Value {
    json!({
        "version": "1.0.1",
        "name": name,
        "number": number,
        "started": "2026-11-26T09:13:04.174+0000",
        "agent": { "name": "pipeline-publisher", "version": "0.1.0" },
        "vcs": [{ "revision": "9c1e5a2f", "url": "https://example.invalid/repo.git" }],
        "modules": [{ "id": "firmware", "artifacts": [{ "name": "image.img", "sha256": "ab" }] }],
    })
}

async fn put_build(base: &str, body: &Value) -> (u16, Value) {
    let response = client()
        .put(format!("{base}/artifactory/api/build"))
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

#[tokio::test]
async fn publish_read_and_list_builds() {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let config = MockRegistryConfig {
        data_dir: Some(data_dir.path().to_path_buf()),
        ..MockRegistryConfig::default()
    };
    let server = start(config.clone()).await;
    let base = server.base_url.clone();
    let name = "camera pipeline/main";
    let document = build_info(name, "exec-1");
    assert_eq!(put_build(&base, &document).await.0, 204);
    assert_eq!(put_build(&base, &build_info(name, "exec-2")).await.0, 204);
    assert_eq!(
        server.registry.build_info(name, "exec-1"),
        Some(document.clone())
    );
    server.shutdown().await;

    let server = start(config).await;
    let base = server.base_url.clone();
    let encoded = "camera%20pipeline%2Fmain";
    let (status, body) = get(&format!("{base}/artifactory/api/build/{encoded}/exec-1")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["uri"],
        format!("{base}/artifactory/api/build/{encoded}/exec%2D1")
    );
    assert_eq!(body["buildInfo"], document);

    let (status, body) = get(&format!("{base}/artifactory/api/build/{encoded}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["uri"],
        format!("{base}/artifactory/api/build/{encoded}")
    );
    assert_eq!(
        body["buildsNumbers"],
        json!([
            { "uri": "/exec%2D1", "started": "2026-11-26T09:13:04.174+0000" },
            { "uri": "/exec%2D2", "started": "2026-11-26T09:13:04.174+0000" },
        ])
    );
    let (status, body) = get(&format!("{base}/artifactory/api/build")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["builds"][0]["uri"], format!("/{encoded}"));

    let (status, body) = get(&format!("{base}/artifactory/api/build/{encoded}/exec-9")).await;
    assert_eq!(status, 404);
    assert_eq!(
        error_message(404, &body),
        "No build was found for build name: camera pipeline/main, build number: exec-9"
    );
    let (status, body) = get(&format!("{base}/artifactory/api/build/nothing")).await;
    assert_eq!(status, 404);
    assert_eq!(
        error_message(404, &body),
        "No build was found for build name: nothing"
    );
}

#[tokio::test]
async fn incomplete_build_info_is_rejected() {
    let server = start(MockRegistryConfig::default()).await;
    let base = &server.base_url;
    for field in ["name", "number", "started"] {
        let mut document = build_info("b", "1");
        document.as_object_mut().expect("object").remove(field);
        let (status, body) = put_build(base, &document).await;
        assert_eq!(status, 400, "{field}: {body}");
        assert_eq!(
            error_message(400, &body),
            format!("Build info is missing the required field '{field}'")
        );
    }
    let (status, _) = put_build(base, &json!([1, 2])).await;
    assert_eq!(status, 400);
    let anonymous = client()
        .put(format!("{base}/artifactory/api/build"))
        .json(&build_info("b", "1"))
        .send()
        .await
        .expect("sent");
    assert_eq!(anonymous.status(), 401);
    assert!(server.registry.build_info("b", "1").is_none());
}

#[tokio::test]
async fn debian_properties_are_stored_and_queryable() {
    let server = start(MockRegistryConfig::default()).await;
    let base = &server.base_url;
    let (status, body) = deploy(
        base,
        "debian-local/pool/main/c/camera-agent/camera-agent_1.0_arm64.deb;deb.distribution=bookworm,trixie;deb.component=main;deb.architecture=arm64",
        b"!<arch>\n",
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let url = format!(
        "{base}/artifactory/api/storage/debian-local/pool/main/c/camera-agent/camera-agent_1.0_arm64.deb"
    );
    let (status, body) = get(&format!("{url}?properties")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["properties"],
        json!({
            "deb.architecture": ["arm64"],
            "deb.component": ["main"],
            "deb.distribution": ["bookworm", "trixie"],
        })
    );
    let (status, body) = get(&format!("{url}?properties=deb.distribution")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["properties"],
        json!({ "deb.distribution": ["bookworm", "trixie"] })
    );
}
