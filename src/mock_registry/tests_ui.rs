//! Tests of the web UI against the real server on 127.0.0.1: the tree, build and package pages
//! at Artifactory's UI paths, and names and values made to break HTML shown as text everywhere.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sha2::Digest as _;

use super::MockRegistryConfig;
use super::test_support::{PASSWORD, USER, client, deploy, start};
use crate::registry::paths::encode_segment;

/// The worker's `externalExecutionId` for build `camera pipeline/main`, number `exec-1`,
/// started at 2026-11-26T09:13:04.174Z.
const RUN_PATH: &str = "/ui/builds/camera%20pipeline%2Fmain/exec-1/1795684384174/published?buildRepo=artifactory-build-info";

/// Status, content type, Content-Security-Policy and body of a page.
async fn page(url: &str) -> (u16, String, String, String) {
    let response = client().get(url).send().await.expect("page is fetched");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (content_type, policy) = (header("content-type"), header("content-security-policy"));
    let status = response.status().as_u16();
    let body = response.text().await.expect("body is readable");
    (status, content_type, policy, body)
}

async fn ok_page(url: &str) -> String {
    let (status, content_type, policy, body) = page(url).await;
    assert_eq!(status, 200, "{url}: {body}");
    assert_eq!(content_type, "text/html; charset=utf-8", "{url}");
    assert!(policy.contains("default-src 'none'"), "{url}: {policy}");
    body
}

fn build_info(name: &str, number: &str, artifacts: Value) -> Value {
    json!({
        "version": "1.0.1",
        "name": name,
        "number": number,
        "started": "2026-11-26T09:13:04.174+0000",
        "durationMillis": 2345,
        "agent": { "name": "pipeline-publisher", "version": "0.1.0" },
        "buildAgent": { "name": "AWS CodePipeline", "version": "1" },
        "vcs": [{ "revision": "9c1e5a2f" }],
        "properties": { "codepipeline.stage": "Publish" },
        "modules": [{ "id": "firmware", "type": "generic", "artifacts": artifacts }],
    })
}

async fn put_build(base: &str, document: &Value) {
    let response = client()
        .put(format!("{base}/artifactory/api/build"))
        .basic_auth(USER, Some(PASSWORD))
        .json(document)
        .send()
        .await
        .expect("build info is sent");
    assert_eq!(response.status().as_u16(), 204);
}

/// Publishes `name@version` through the npm API, the way npm does.
async fn npm_publish(base: &str, repo: &str, name: &str, version: &str) {
    let tarball = format!("tarball of {name}@{version}").into_bytes();
    let file = format!("{name}-{version}.tgz");
    let document = json!({
        "_id": name, "name": name,
        "dist-tags": { "latest": version },
        "versions": { version: {
            "name": name, "version": version, "_id": format!("{name}@{version}"),
            "dist": {
                "shasum": hex::encode(sha1::Sha1::digest(&tarball)),
                "integrity": format!("sha512-{}", STANDARD.encode(sha2::Sha512::digest(&tarball))),
                "tarball": format!("http://elsewhere/{name}/-/{file}"),
            },
        }},
        "_attachments": { file: {
            "content_type": "application/octet-stream",
            "data": STANDARD.encode(&tarball),
            "length": tarball.len(),
        }},
    });
    let response = client()
        .put(format!(
            "{base}/artifactory/api/npm/{repo}/{}",
            name.replace('/', "%2f")
        ))
        .basic_auth(USER, Some(PASSWORD))
        .json(&document)
        .send()
        .await
        .expect("npm publish is sent");
    assert_eq!(response.status().as_u16(), 201);
}

/// Uploads a wheel through the PyPI legacy upload API, the way twine does.
async fn pypi_upload(base: &str, repo: &str, name: &str, version: &str) {
    let content = format!("wheel of {name} {version}").into_bytes();
    let file_name = format!("{}-{version}-py3-none-any.whl", name.replace('-', "_"));
    let fields = [
        (":action", "file_upload".to_owned()),
        ("protocol_version", "1".to_owned()),
        ("metadata_version", "2.1".to_owned()),
        ("name", name.to_owned()),
        ("version", version.to_owned()),
        ("filetype", "bdist_wheel".to_owned()),
        ("pyversion", "py3".to_owned()),
        ("sha256_digest", hex::encode(sha2::Sha256::digest(&content))),
    ];
    let boundary = "ui-test-boundary";
    let mut body = Vec::new();
    for (field, value) in &fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"content\"; filename=\"{file_name}\"\r\n\r\n").as_bytes());
    body.extend_from_slice(&content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let response = client()
        .post(format!("{base}/artifactory/api/pypi/{repo}"))
        .basic_auth(USER, Some(PASSWORD))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .expect("upload is sent");
    assert_eq!(response.status().as_u16(), 201);
}

#[tokio::test]
async fn the_tree_shows_folders_and_files_with_checksums_properties_and_a_download() {
    let server = start(MockRegistryConfig::default()).await;
    let base = server.base_url.clone();
    let content = b"firmware image bytes";
    let (status, body) = deploy(
        &base,
        "firmware-releases/nestbox-cam/abc1234/nestbox-cam-2.4.1.img;board=rpi-zero-2w;channel=stable",
        content,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let stored = server
        .registry
        .artifact(
            "firmware-releases",
            "nestbox-cam/abc1234/nestbox-cam-2.4.1.img",
        )
        .expect("stored");

    // `/` and `/ui` lead to the start page, which lists the repository.
    let response = client().get(format!("{base}/")).send().await.expect("sent");
    assert_eq!(response.url().path(), "/ui/");
    let home = ok_page(&format!("{base}/ui")).await;
    assert!(
        home.contains(r#"href="/ui/repos/tree/General/firmware-releases""#),
        "{home}"
    );

    // The entity link of the action: repository root, then the folder the job published to.
    let root = ok_page(&format!("{base}/ui/repos/tree/General/firmware-releases")).await;
    assert!(
        root.contains(r#"href="/ui/repos/tree/General/firmware-releases/nestbox-cam""#),
        "{root}"
    );
    let folder = ok_page(&format!(
        "{base}/ui/repos/tree/General/firmware-releases/nestbox-cam/abc1234"
    ))
    .await;
    assert!(folder.contains("nestbox-cam-2.4.1.img"), "{folder}");
    assert!(folder.contains("20 B"), "{folder}");

    let file = ok_page(&format!(
        "{base}/ui/repos/tree/General/firmware-releases/nestbox-cam/abc1234/nestbox-cam-2.4.1.img"
    ))
    .await;
    for expected in [
        stored.sha256.as_str(),
        stored.sha1.as_str(),
        stored.md5.as_str(),
        "20 bytes",
        "board",
        "rpi-zero-2w",
        "channel",
        "stable",
        "demo",
    ] {
        assert!(file.contains(expected), "missing {expected} in {file}");
    }
    let download = "/artifactory/firmware-releases/nestbox-cam/abc1234/nestbox-cam-2.4.1.img";
    assert!(file.contains(&format!(r#"href="{download}""#)), "{file}");
    let bytes = client()
        .get(format!("{base}{download}"))
        .send()
        .await
        .expect("download")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(&bytes[..], content);

    // The stylesheet the pages link to is served.
    let css = client()
        .get(format!("{base}/ui/static/style.css"))
        .send()
        .await
        .expect("css");
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");

    // Things that are not there are an HTML 404 that says what is missing.
    let (status, _, _, body) = page(&format!(
        "{base}/ui/repos/tree/General/firmware-releases/nope"
    ))
    .await;
    assert_eq!(status, 404);
    assert!(body.contains("Nothing is stored at"), "{body}");
    let (status, _, _, _) = page(&format!("{base}/ui/repos/tree/General/no-such-repo")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_build_page_is_where_the_execution_link_points_and_links_every_artifact() {
    let server = start(MockRegistryConfig::default()).await;
    let base = server.base_url.clone();
    let mut artifacts = Vec::new();
    for name in ["nestbox-cam-2.4.1.img", "manifest.json"] {
        let path = format!("nestbox-cam/abc1234/{name}");
        deploy(&base, &format!("firmware-releases/{path}"), name.as_bytes()).await;
        let stored = server
            .registry
            .artifact("firmware-releases", &path)
            .expect("stored");
        artifacts.push(json!({
            "type": name.rsplit('.').next(), "name": name, "path": path,
            "originalDeploymentRepo": "firmware-releases",
            "sha1": stored.sha1, "sha256": stored.sha256, "md5": stored.md5,
        }));
    }
    put_build(
        &base,
        &build_info(
            "camera pipeline/main",
            "exec-1",
            Value::Array(artifacts.clone()),
        ),
    )
    .await;

    let run = ok_page(&format!("{base}{RUN_PATH}")).await;
    for artifact in &artifacts {
        let sha256 = artifact["sha256"].as_str().expect("sha256");
        assert!(run.contains(sha256), "missing {sha256} in {run}");
        let href = format!(
            r#"href="/ui/repos/tree/General/firmware-releases/{}""#,
            artifact["path"].as_str().expect("path")
        );
        assert!(run.contains(&href), "missing {href} in {run}");
    }
    for expected in [
        "camera pipeline/main #exec-1",
        "9c1e5a2f",
        "codepipeline.stage",
        "2.3 s",
    ] {
        assert!(run.contains(expected), "missing {expected} in {run}");
    }

    // The lists link to the run at the same path the worker reports.
    let listed = ok_page(&format!("{base}/ui/builds/")).await;
    let href = RUN_PATH.replace('&', "&amp;");
    assert!(listed.contains(&href), "{listed}");
    let runs = ok_page(&format!("{base}/ui/builds/camera%20pipeline%2Fmain")).await;
    assert!(runs.contains(&href), "{runs}");
    let (status, _, _, _) =
        page(&format!("{base}/ui/builds/camera%20pipeline%2Fmain/exec-9")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn npm_pypi_and_debian_packages_are_shown_as_packages_with_their_versions() {
    let server = start(MockRegistryConfig::default()).await;
    let base = server.base_url.clone();
    npm_publish(&base, "camera-agent-npm", "@nestbox/camera-agent", "1.9.0").await;
    npm_publish(&base, "camera-agent-npm", "@nestbox/camera-agent", "1.10.0").await;
    pypi_upload(&base, "camera-agent-pypi", "camera-agent", "0.1.0").await;
    let (status, body) = deploy(
        &base,
        "camera-agent-debian/pool/main/n/nestbox-camera-agent/nestbox-camera-agent_2.4.1_arm64.deb;deb.distribution=bookworm;deb.component=main;deb.architecture=arm64",
        b"deb",
    )
    .await;
    assert_eq!(status, 201, "{body}");

    let listed = ok_page(&format!("{base}/ui/packages")).await;
    for expected in [
        "@nestbox/camera-agent",
        "1.9.0, 1.10.0",
        "camera-agent",
        "0.1.0",
        "nestbox-camera-agent",
        "2.4.1",
        "npm",
        "PyPI",
        "Debian",
    ] {
        assert!(listed.contains(expected), "missing {expected} in {listed}");
    }
    let npm = ok_page(&format!(
        "{base}/ui/packages/npm:%2F%2F%40nestbox%2Fcamera-agent"
    ))
    .await;
    assert!(npm.contains("1.10.0") && npm.contains("1.9.0"), "{npm}");
    assert!(
        npm.contains(r#"href="/ui/repos/tree/General/camera-agent-npm/@nestbox/camera-agent/-/@nestbox/camera-agent-1.10.0.tgz""#),
        "{npm}"
    );
    let debian = ok_page(&format!(
        "{base}/ui/packages/debian:%2F%2Fnestbox-camera-agent"
    ))
    .await;
    assert!(
        debian.contains("nestbox-camera-agent_2.4.1_arm64.deb"),
        "{debian}"
    );
    let pypi = ok_page(&format!("{base}/ui/packages/pypi:%2F%2Fcamera-agent")).await;
    assert!(
        pypi.contains("camera_agent-0.1.0-py3-none-any.whl"),
        "{pypi}"
    );

    // Each repository's root lists its packages, and the start page its package type.
    let root = ok_page(&format!("{base}/ui/repos/tree/General/camera-agent-debian")).await;
    assert!(root.contains("nestbox-camera-agent"), "{root}");
    let home = ok_page(&format!("{base}/ui/")).await;
    for package_type in ["npm", "pypi", "debian"] {
        assert!(
            home.contains(&format!(r#"<span class="tag">{package_type}</span>"#)),
            "{home}"
        );
    }
    let (status, _, _, _) = page(&format!("{base}/ui/packages/npm:%2F%2Fnothing")).await;
    assert_eq!(status, 404);
}

/// How the pages must show `text`: with `&`, `<`, `>` and `"` escaped.
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn assert_shown_as_text(url: &str, page: &str, values: &[&str]) {
    for tag in ["<script", "<img", "<iframe", "<svg"] {
        assert!(!page.contains(tag), "{url} contains a raw {tag}:\n{page}");
    }
    assert!(
        !page.contains("href=\"javascript:"),
        "{url} links a javascript: URL"
    );
    for value in values {
        assert!(
            page.contains(&escaped(value)),
            "{url} does not show {value:?} as text:\n{page}"
        );
    }
}

#[tokio::test]
async fn names_and_values_made_to_break_html_are_shown_as_text_on_every_page() {
    let server = start(MockRegistryConfig::default()).await;
    let base = server.base_url.clone();
    let repo = "evil\"<repo>";
    let folder = "<script>alert('folder')";
    let file = "\"><img src=x onerror=alert(1)>.img";
    let key = "k\"><script>alert('key')";
    let value = "</td><script>alert(\"value\")</script> & more";
    let deb = "<svg onload=alert(2)>_1.0_all.deb";
    let deploy_path = format!(
        "{}/{}/{};{}={}",
        encode_segment(repo),
        encode_segment(folder),
        encode_segment(file),
        encode_segment(key),
        encode_segment(value)
    );
    let (status, body) = deploy(&base, &deploy_path, b"payload").await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = deploy(
        &base,
        &format!(
            "{}/{};deb.distribution=bookworm;deb.component=main;deb.architecture=all",
            encode_segment(repo),
            encode_segment(deb)
        ),
        b"deb",
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let stored = server
        .registry
        .artifact(repo, &format!("{folder}/{file}"))
        .expect("stored");
    let build_name = "<script>alert('build')</script>/\"quoted\"";
    let build_number = "<img src=x onerror=alert(3)>";
    let mut document = build_info(
        build_name,
        build_number,
        json!([{
            "type": "img", "name": file, "path": format!("{folder}/{file}"),
            "originalDeploymentRepo": repo,
            "sha1": stored.sha1, "sha256": stored.sha256, "md5": "<b>md5</b>",
        }]),
    );
    document["url"] = json!("javascript:alert('url')");
    document["properties"] = json!({ key: value });
    document["modules"][0]["id"] = json!("<iframe src=x>");
    put_build(&base, &document).await;

    let tree = |path: &str| format!("{base}/ui/repos/tree/General/{path}");
    let encoded_folder = format!("{}/{}", encode_segment(repo), encode_segment(folder));
    let run = format!(
        "{base}/ui/builds/{}/{}/1795684384174/published?buildRepo=artifactory-build-info",
        encode_segment(build_name),
        encode_segment(build_number)
    );
    let pages: Vec<(String, Vec<&str>)> = vec![
        (format!("{base}/ui/"), vec![repo, build_name, build_number]),
        (
            tree(&encode_segment(repo)),
            vec![repo, folder, "<svg onload=alert(2)>", deb],
        ),
        (tree(&encoded_folder), vec![repo, folder, file]),
        (
            tree(&format!("{encoded_folder}/{}", encode_segment(file))),
            vec![repo, folder, file, key, value],
        ),
        (format!("{base}/ui/builds/"), vec![build_name, build_number]),
        (
            format!("{base}/ui/builds/{}", encode_segment(build_name)),
            vec![build_name, build_number],
        ),
        (
            run,
            vec![
                build_name,
                build_number,
                file,
                key,
                value,
                "<iframe src=x>",
                "<b>md5</b>",
                "javascript:alert('url')",
            ],
        ),
        (
            format!("{base}/ui/packages"),
            vec![repo, "<svg onload=alert(2)>"],
        ),
        (
            format!(
                "{base}/ui/packages/{}",
                encode_segment("debian://<svg onload=alert(2)>")
            ),
            vec![repo, "<svg onload=alert(2)>", deb],
        ),
    ];
    for (url, values) in &pages {
        let body = ok_page(url).await;
        assert_shown_as_text(url, &body, values);
    }
    // A 404 page repeats what was asked for; that is escaped too.
    let (status, _, _, body) = page(&tree(&format!(
        "{}/{}",
        encode_segment(repo),
        encode_segment("<script>x")
    )))
    .await;
    assert_eq!(status, 404);
    assert_shown_as_text("404", &body, &["<script>x"]);
}
