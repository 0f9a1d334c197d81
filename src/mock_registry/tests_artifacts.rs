//! Tests of deploy, download, storage info, properties, checksum search and persistence,
//! against the real server on 127.0.0.1.

use serde_json::json;
use sha2::Digest as _;

use super::MockRegistryConfig;
use super::test_support::{PASSWORD, USER, client, deploy, error_message, json_of, start};

const CONTENT: &[u8] = b"firmware image bytes\n";

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

fn sha1_hex(bytes: &[u8]) -> String {
    hex::encode(sha1::Sha1::digest(bytes))
}

fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(md5::Md5::digest(bytes))
}

#[tokio::test]
async fn deploy_then_read_back_files_folders_properties_and_search() {
    let server = start(MockRegistryConfig::default()).await;
    let base = &server.base_url;
    let response = client()
        .put(format!("{base}/artifactory/generic-local/fw/1.0/image.img;build.name=fw;os=linux,rtos;note=a%20b"))
        .basic_auth(USER, Some(PASSWORD))
        .header("X-Checksum-Sha256", sha256_hex(CONTENT))
        .header("X-Checksum-Sha1", sha1_hex(CONTENT))
        .header("X-Checksum-Md5", md5_hex(CONTENT))
        .body(CONTENT)
        .send()
        .await
        .expect("sent");
    let (status, body) = json_of(response).await;
    assert_eq!(status, 201, "{body}");
    let download_uri = format!("{base}/artifactory/generic-local/fw/1.0/image.img");
    assert_eq!(body["repo"], "generic-local");
    assert_eq!(body["path"], "/fw/1.0/image.img");
    assert_eq!(body["createdBy"], USER);
    assert_eq!(body["size"], CONTENT.len().to_string());
    assert_eq!(body["downloadUri"], download_uri.as_str());
    assert_eq!(body["uri"], download_uri.as_str());
    assert_eq!(body["mimeType"], "application/octet-stream");
    let checksums = json!({ "sha1": sha1_hex(CONTENT), "md5": md5_hex(CONTENT), "sha256": sha256_hex(CONTENT) });
    assert_eq!(body["checksums"], checksums);
    assert_eq!(body["originalChecksums"], checksums);
    let created = body["created"].as_str().expect("created");
    assert!(
        created.len() == 24 && created.ends_with('Z') && created.as_bytes()[19] == b'.',
        "{created}"
    );

    let stored = server
        .registry
        .artifact("generic-local", "fw/1.0/image.img")
        .expect("stored");
    assert_eq!(stored.sha256, sha256_hex(CONTENT));
    assert_eq!(stored.properties["os"], vec!["linux", "rtos"]);
    assert_eq!(stored.properties["note"], vec!["a b"]);
    assert_eq!(
        std::fs::read(&stored.content_path).expect("blob on disk"),
        CONTENT
    );

    let download = client().get(&download_uri).send().await.expect("sent");
    assert_eq!(download.status(), 200);
    assert_eq!(
        download.headers()["x-checksum-sha256"],
        sha256_hex(CONTENT).as_str()
    );
    assert_eq!(
        download.headers()["x-checksum-sha1"],
        sha1_hex(CONTENT).as_str()
    );
    assert_eq!(
        download.headers()["x-checksum-md5"],
        md5_hex(CONTENT).as_str()
    );
    assert_eq!(
        download.headers()["content-length"],
        CONTENT.len().to_string().as_str()
    );
    assert_eq!(download.bytes().await.expect("bytes").as_ref(), CONTENT);
    let head = client().head(&download_uri).send().await.expect("sent");
    assert_eq!(
        head.headers()["content-length"],
        CONTENT.len().to_string().as_str()
    );
    assert!(head.bytes().await.expect("empty").is_empty());

    let storage = format!("{base}/artifactory/api/storage/generic-local");
    let (status, info) = json_of(
        client()
            .get(format!("{storage}/fw/1.0/image.img"))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["path"], "/fw/1.0/image.img");
    assert_eq!(info["downloadUri"], download_uri.as_str());
    assert_eq!(info["uri"], format!("{storage}/fw/1.0/image.img").as_str());
    assert_eq!(info["checksums"], checksums);
    assert_eq!(info["size"], CONTENT.len().to_string());
    for key in [
        "created",
        "createdBy",
        "lastModified",
        "lastUpdated",
        "mimeType",
        "originalChecksums",
    ] {
        assert!(!info[key].is_null(), "{key} missing in {info}");
    }
    let (_, root) = json_of(client().get(&storage).send().await.expect("sent")).await;
    assert_eq!(root["path"], "/");
    assert_eq!(root["children"], json!([{ "uri": "/fw", "folder": true }]));
    let (_, folder) = json_of(
        client()
            .get(format!("{storage}/fw/1.0"))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(
        folder["children"],
        json!([{ "uri": "/image.img", "folder": false }])
    );

    let (status, properties) = json_of(
        client()
            .get(format!("{storage}/fw/1.0/image.img?properties"))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        properties,
        json!({ "properties": { "build.name": ["fw"], "note": ["a b"], "os": ["linux", "rtos"] },
                "uri": format!("{storage}/fw/1.0/image.img") })
    );
    let (status, none) = json_of(
        client()
            .get(format!("{storage}/fw/1.0?properties"))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(
        (status, error_message(status, &none).as_str()),
        (404, "No properties could be found.")
    );
    let (status, missing) = json_of(
        client()
            .get(format!("{storage}/nope"))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(
        (status, error_message(status, &missing).as_str()),
        (404, "Unable to find item")
    );
    let missing_file = client()
        .get(format!("{base}/artifactory/generic-local/nope"))
        .send()
        .await
        .expect("sent");
    assert_eq!(missing_file.status(), 404);

    let (status, search) = json_of(
        client()
            .get(format!(
                "{base}/artifactory/api/search/checksum?sha256={}",
                sha256_hex(CONTENT)
            ))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        search,
        json!({ "results": [{ "uri": format!("{storage}/fw/1.0/image.img") }] })
    );
    server.shutdown().await;
}

#[tokio::test]
async fn checksum_mismatch_is_409_and_stores_nothing() {
    let server = start(MockRegistryConfig::default()).await;
    for (header, value) in [
        ("X-Checksum-Sha256", sha256_hex(b"other")),
        ("X-Checksum", sha1_hex(b"other")),
    ] {
        let response = client()
            .put(format!(
                "{}/artifactory/generic-local/bad.bin",
                server.base_url
            ))
            .basic_auth(USER, Some(PASSWORD))
            .header(header, value)
            .body(CONTENT)
            .send()
            .await
            .expect("sent");
        let (status, body) = json_of(response).await;
        assert_eq!(status, 409, "{header}: {body}");
        let message = error_message(status, &body);
        assert!(
            message.starts_with("Checksum policy 'LocalRepoChecksumPolicy: CLIENT' rejected the artifact 'generic-local:bad.bin'"),
            "{message}"
        );
    }
    assert!(server.registry.artifacts("generic-local").is_empty());
}

#[tokio::test]
async fn checksum_deploy_copies_known_content_and_404s_otherwise() {
    let server = start(MockRegistryConfig::default()).await;
    assert_eq!(
        deploy(&server.base_url, "generic-local/first.bin", CONTENT)
            .await
            .0,
        201
    );
    let checksum_deploy = |path: &str, sha256: String| {
        client()
            .put(format!(
                "{}/artifactory/other-local/{path}",
                server.base_url
            ))
            .basic_auth(USER, Some(PASSWORD))
            .header("X-Checksum-Deploy", "true")
            .header("X-Checksum-Sha256", sha256)
            .header("X-Checksum-Sha1", sha1_hex(CONTENT))
            .send()
    };
    let (status, body) = json_of(
        checksum_deploy("copy.bin;k=v", sha256_hex(CONTENT))
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["size"], CONTENT.len().to_string());
    let copy = server
        .registry
        .artifact("other-local", "copy.bin")
        .expect("deployed");
    assert_eq!(
        (copy.sha256.as_str(), copy.properties["k"][0].as_str()),
        (sha256_hex(CONTENT).as_str(), "v")
    );
    let unknown = sha256_hex(b"never uploaded");
    let (status, body) = json_of(
        checksum_deploy("missing.bin", unknown.clone())
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, 404);
    let message = error_message(status, &body);
    assert!(
        message.starts_with("Checksum deploy failed: no artifact with checksum"),
        "{message}"
    );
    assert!(message.contains(&unknown), "{message}");
    assert!(
        server
            .registry
            .artifact("other-local", "missing.bin")
            .is_none()
    );
}

#[tokio::test]
async fn redeploy_identical_is_201_and_different_is_403() {
    let server = start(MockRegistryConfig::default()).await;
    let base = &server.base_url;
    assert_eq!(
        deploy(base, "generic-local/r/app.tgz;a=1", CONTENT).await.0,
        201
    );
    let (status, body) = deploy(base, "generic-local/r/app.tgz;b=2", CONTENT).await;
    assert_eq!(status, 201, "{body}");
    let stored = server
        .registry
        .artifact("generic-local", "r/app.tgz")
        .expect("stored");
    assert_eq!(
        (
            stored.properties["a"][0].as_str(),
            stored.properties["b"][0].as_str()
        ),
        ("1", "2")
    );
    let (status, body) = deploy(base, "generic-local/r/app.tgz", b"different").await;
    assert_eq!(status, 403);
    assert_eq!(
        error_message(status, &body),
        "Not enough permissions to delete/overwrite artifact 'generic-local:r/app.tgz' (user: 'demo' needs DELETE permission)."
    );
    let after = server
        .registry
        .artifact("generic-local", "r/app.tgz")
        .expect("kept");
    assert_eq!(after.sha256, sha256_hex(CONTENT));
    assert_eq!(
        deploy(base, "generic-local/r/app.tgz/inner", b"x").await.0,
        400
    );
}

#[tokio::test]
async fn delete_needs_the_permission_and_removes_the_file_or_the_folder() {
    let delete = |base: String, target: &'static str| async move {
        let response = client()
            .delete(format!("{base}/artifactory/{target}"))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await
            .expect("delete is sent");
        json_of(response).await
    };

    let refusing = start(MockRegistryConfig::default()).await;
    let base = refusing.base_url.clone();
    assert_eq!(
        deploy(&base, "generic-local/r/app.tgz", CONTENT).await.0,
        201
    );
    let (status, body) = delete(base.clone(), "generic-local/r/app.tgz").await;
    assert_eq!(
        error_message(status, &body),
        "Not enough permissions to delete/overwrite artifact 'generic-local:r/app.tgz' (user: 'demo' needs DELETE permission)."
    );
    assert_eq!(status, 403);
    assert!(
        refusing
            .registry
            .artifact("generic-local", "r/app.tgz")
            .is_some()
    );

    let server = start(MockRegistryConfig {
        deleters: vec![USER.to_owned()],
        ..MockRegistryConfig::default()
    })
    .await;
    let base = server.base_url.clone();
    for path in [
        "generic-local/r/app.tgz",
        "generic-local/r/1/a",
        "generic-local/r/1/b",
    ] {
        assert_eq!(deploy(&base, path, CONTENT).await.0, 201);
    }
    assert_eq!(delete(base.clone(), "generic-local/r/app.tgz").await.0, 204);
    assert!(
        server
            .registry
            .artifact("generic-local", "r/app.tgz")
            .is_none()
    );
    assert_eq!(delete(base.clone(), "generic-local/r/1").await.0, 204);
    assert!(server.registry.artifacts("generic-local").is_empty());
    let (status, body) = delete(base, "generic-local/r/app.tgz").await;
    assert_eq!(
        (status, error_message(status, &body)),
        (
            404,
            "Could not locate artifact 'generic-local:r/app.tgz' (Nothing to delete).".to_owned()
        )
    );
}
