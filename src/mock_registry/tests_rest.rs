//! Tests of the REST endpoints other Artifactory clients send (Get Repositories, folder
//! listing, Update Item Properties, AQL), against the real server on 127.0.0.1.

use serde_json::{Value, json};

use super::MockRegistryConfig;
use super::test_support::{PASSWORD, USER, client, deploy, error_message, json_of, start};

async fn get(url: &str) -> (u16, Value) {
    json_of(client().get(url).send().await.expect("sent")).await
}

async fn aql(base: &str, query: &str) -> (u16, Value) {
    json_of(
        client()
            .post(format!("{base}/artifactory/api/search/aql"))
            .basic_auth(USER, Some(PASSWORD))
            .header("content-type", "text/plain")
            .body(query.to_owned())
            .send()
            .await
            .expect("sent"),
    )
    .await
}

async fn patch(base: &str, item: &str, body: &Value) -> (u16, Value) {
    json_of(
        client()
            .patch(format!("{base}/artifactory/api/metadata/{item}"))
            .basic_auth(USER, Some(PASSWORD))
            .json(body)
            .send()
            .await
            .expect("sent"),
    )
    .await
}

/// Deploys the layout the tests search: firmware in a generic repository, a Debian package.
async fn publish_fixture(base: &str) {
    for (path, content) in [
        (
            "firmware-releases/nestbox-cam/abc1234/nestbox-cam-2.4.1.img;board=rpi-zero-2w;channel=stable",
            &b"image 2.4.1"[..],
        ),
        (
            "firmware-releases/nestbox-cam/abc1234/manifest.json;channel=stable",
            b"{}",
        ),
        (
            "firmware-releases/nestbox-cam/def5678/nestbox-cam-2.5.0.img;board=rpi-4;channel=beta",
            b"image 2.5.0, larger",
        ),
        ("firmware-releases/README.md", b"readme"),
        (
            "camera-agent-debian/pool/main/n/nestbox-camera-agent/nestbox-camera-agent_2.4.1_arm64.deb;deb.distribution=bookworm;deb.component=main;deb.architecture=arm64",
            b"deb",
        ),
    ] {
        let (status, body) = deploy(base, path, content).await;
        assert_eq!(status, 201, "{path}: {body}");
    }
}

#[tokio::test]
async fn get_repositories_lists_keys_types_and_package_types() {
    let server = start(MockRegistryConfig {
        repositories: vec![
            "firmware-releases".into(),
            "camera-agent-debian".into(),
            "empty-local".into(),
        ],
        ..MockRegistryConfig::default()
    })
    .await;
    let base = server.base_url.clone();
    publish_fixture(&base).await;
    let (status, body) = get(&format!("{base}/artifactory/api/repositories")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!([
            { "key": "camera-agent-debian", "type": "LOCAL", "description": "",
              "url": format!("{base}/artifactory/camera-agent-debian"), "packageType": "Debian" },
            { "key": "empty-local", "type": "LOCAL", "description": "",
              "url": format!("{base}/artifactory/empty-local"), "packageType": "Generic" },
            { "key": "firmware-releases", "type": "LOCAL", "description": "",
              "url": format!("{base}/artifactory/firmware-releases"), "packageType": "Generic" },
        ])
    );
    let (_, debian) = get(&format!(
        "{base}/artifactory/api/repositories?packageType=debian"
    ))
    .await;
    assert_eq!(debian.as_array().map(Vec::len), Some(1), "{debian}");
    let (_, remote) = get(&format!("{base}/artifactory/api/repositories?type=remote")).await;
    assert_eq!(remote, json!([]));
    let (status, body) = get(&format!("{base}/artifactory/api/repositories?type=nearby")).await;
    assert_eq!(status, 400);
    assert!(error_message(400, &body).contains("nearby"));
}

#[tokio::test]
async fn folder_listing_names_children_with_their_folder_flag() {
    let server = start(MockRegistryConfig::default()).await;
    let base = server.base_url.clone();
    publish_fixture(&base).await;
    let (status, body) = get(&format!(
        "{base}/artifactory/api/storage/firmware-releases/nestbox-cam"
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["repo"], "firmware-releases");
    assert_eq!(body["path"], "/nestbox-cam");
    assert_eq!(
        body["children"],
        json!([{ "uri": "/abc1234", "folder": true }, { "uri": "/def5678", "folder": true }])
    );
    assert_eq!(
        body["uri"],
        format!("{base}/artifactory/api/storage/firmware-releases/nestbox-cam")
    );
    assert!(body["created"].is_string(), "{body}");
    let (_, root) = get(&format!("{base}/artifactory/api/storage/firmware-releases")).await;
    assert_eq!(
        root["children"],
        json!([{ "uri": "/README.md", "folder": false }, { "uri": "/nestbox-cam", "folder": true }])
    );
    let (status, _) = get(&format!(
        "{base}/artifactory/api/storage/firmware-releases/nope"
    ))
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn patch_metadata_sets_replaces_and_removes_properties() {
    let server = start(MockRegistryConfig::default()).await;
    let base = server.base_url.clone();
    publish_fixture(&base).await;
    let image = "nestbox-cam/abc1234/nestbox-cam-2.4.1.img";
    let (status, body) = patch(
        &base,
        &format!("firmware-releases/{image}"),
        &json!({ "props": { "qa": "passed", "channel": "stable-2", "board": null, "tags": ["a", "b"] } }),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let properties = server
        .registry
        .artifact("firmware-releases", image)
        .expect("stored")
        .properties;
    assert_eq!(properties.get("qa"), Some(&vec!["passed".to_owned()]));
    assert_eq!(
        properties.get("channel"),
        Some(&vec!["stable-2".to_owned()])
    );
    assert_eq!(
        properties.get("tags"),
        Some(&vec!["a".to_owned(), "b".to_owned()])
    );
    assert_eq!(properties.get("board"), None);

    // On a folder the change reaches every file under it (recursive is the default).
    let (status, _) = patch(
        &base,
        "firmware-releases/nestbox-cam/abc1234",
        &json!({ "props": { "release": "2.4.1" } }),
    )
    .await;
    assert_eq!(status, 204);
    for path in [image, "nestbox-cam/abc1234/manifest.json"] {
        let stored = server
            .registry
            .artifact("firmware-releases", path)
            .expect("stored");
        assert_eq!(stored.properties["release"], ["2.4.1"], "{path}");
    }
    let untouched = server
        .registry
        .artifact(
            "firmware-releases",
            "nestbox-cam/def5678/nestbox-cam-2.5.0.img",
        )
        .expect("stored");
    assert!(!untouched.properties.contains_key("release"));

    // Errors: unknown item, bad body, a folder without recursion, no credentials.
    let (status, body) = patch(
        &base,
        "firmware-releases/nope",
        &json!({ "props": { "a": "b" } }),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(error_message(404, &body), "Unable to find item");
    let (status, body) = patch(
        &base,
        &format!("firmware-releases/{image}"),
        &json!({ "qa": "x" }),
    )
    .await;
    assert_eq!(status, 400);
    assert!(error_message(400, &body).contains("props"));
    let (status, _) = patch(
        &base,
        "firmware-releases/nestbox-cam?recursiveProperties=0",
        &json!({ "props": { "a": "b" } }),
    )
    .await;
    assert_eq!(status, 400);
    let anonymous = client()
        .patch(format!(
            "{base}/artifactory/api/metadata/firmware-releases/{image}"
        ))
        .json(&json!({ "props": { "a": "b" } }))
        .send()
        .await
        .expect("sent");
    assert_eq!(anonymous.status().as_u16(), 401);
}

fn names(body: &Value) -> Vec<String> {
    body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|item| item["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn aql_finds_items_by_fields_properties_and_wildcards() {
    let server = start(MockRegistryConfig::default()).await;
    let base = server.base_url.clone();
    publish_fixture(&base).await;

    let (status, body) = aql(
        &base,
        r#"items.find({"repo":{"$eq":"firmware-releases"},"name":{"$match":"*.img"}})"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["range"],
        json!({ "start_pos": 0, "end_pos": 2, "total": 2 })
    );
    let first = &body["results"][0];
    assert_eq!(first["repo"], "firmware-releases");
    assert_eq!(first["path"], "nestbox-cam/abc1234");
    assert_eq!(first["name"], "nestbox-cam-2.4.1.img");
    assert_eq!(first["type"], "file");
    assert_eq!(first["size"], 11);
    assert_eq!(first["created_by"], USER);
    for field in ["created", "modified", "updated", "modified_by"] {
        assert!(first[field].is_string(), "{field}: {first}");
    }
    assert!(first.get("properties").is_none(), "{first}");

    // Properties, $or, ?-wildcards, include, sort and limit.
    let (_, body) = aql(
        &base,
        r#"items.find({"$or":[{"@board":"rpi-4"},{"@channel":{"$match":"sta?le"}}]})
             .include("name","path","sha256","property").sort({"$desc":["name"]}).limit(2)"#,
    )
    .await;
    assert_eq!(
        names(&body),
        ["nestbox-cam-2.5.0.img", "nestbox-cam-2.4.1.img"]
    );
    assert_eq!(
        body["range"],
        json!({ "start_pos": 0, "end_pos": 2, "total": 2, "limit": 2 })
    );
    let item = &body["results"][1];
    let expected_keys: Vec<&str> = vec!["name", "path", "properties", "sha256"];
    let mut keys: Vec<&str> = item
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, expected_keys, "{item}");
    let stored = server
        .registry
        .artifact(
            "firmware-releases",
            "nestbox-cam/abc1234/nestbox-cam-2.4.1.img",
        )
        .expect("stored");
    assert_eq!(item["sha256"], stored.sha256);
    assert_eq!(
        item["properties"],
        json!([{ "key": "board", "value": "rpi-zero-2w" }, { "key": "channel", "value": "stable" }])
    );

    // $and with $ne and a number comparison; the root path is "."; offset.
    let (_, body) = aql(
        &base,
        r#"items.find({"$and":[{"repo":"firmware-releases"},{"name":{"$ne":"manifest.json"}},{"size":{"$lt":12}}]}).sort({"$asc":["name"]})"#,
    )
    .await;
    assert_eq!(names(&body), ["README.md", "nestbox-cam-2.4.1.img"]);
    assert_eq!(body["results"][0]["path"], ".");
    let (_, body) = aql(
        &base,
        r#"items.find({"repo":"firmware-releases"}).sort({"$asc":["name"]}).offset(1).limit(2)"#,
    )
    .await;
    assert_eq!(names(&body), ["manifest.json", "nestbox-cam-2.4.1.img"]);
    assert_eq!(
        body["range"],
        json!({ "start_pos": 1, "end_pos": 3, "total": 2, "limit": 2 })
    );

    // Folders only when asked for by type.
    let (_, body) = aql(
        &base,
        r#"items.find({"repo":"firmware-releases","type":"folder","path":"nestbox-cam"})"#,
    )
    .await;
    assert_eq!(names(&body), ["abc1234", "def5678"]);
    let (_, body) = aql(&base, r#"items.find({"@deb.distribution":"bookworm"})"#).await;
    assert_eq!(names(&body), ["nestbox-camera-agent_2.4.1_arm64.deb"]);
}

#[tokio::test]
async fn aql_refuses_other_domains_bad_syntax_and_anonymous_callers() {
    let server = start(MockRegistryConfig::default()).await;
    let base = server.base_url.clone();
    for (query, words) in [
        (r#"builds.find({"name":"x"})"#, "builds"),
        (r#"items.find({"repo":"x"}"#, "syntax error"),
        (r#"items.find({"colour":"red"})"#, "colour"),
        (r#"items.find({"name":{"$like":"x"}})"#, "$like"),
        (r#"items.find({}).limit(many)"#, "many"),
        ("select * from items", "syntax error"),
    ] {
        let (status, body) = aql(&base, query).await;
        assert_eq!(status, 400, "{query}: {body}");
        let message = error_message(400, &body);
        assert!(message.contains("Failed to parse query"), "{message}");
        assert!(message.contains(words), "{query}: {message}");
    }
    let anonymous = client()
        .post(format!("{base}/artifactory/api/search/aql"))
        .body("items.find()")
        .send()
        .await
        .expect("sent");
    assert_eq!(anonymous.status().as_u16(), 401);
}
