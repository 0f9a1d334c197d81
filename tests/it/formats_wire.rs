//! npm, PyPI, Debian, build info and the receipt artifact on the wire: the real worker loop
//! against the CodePipeline/S3 stand-in, with a scripted registry (wiremock) that records the
//! exact requests — method, path, headers and bodies.

use std::collections::BTreeMap;
use std::io::Read;

use base64::Engine;
use pipeline_publisher::demo::{LocalEnvironment, camera_agent};
use pipeline_publisher::pipeline::properties;
use pipeline_publisher::publish::PublisherSettings;
use pipeline_publisher::sandbox::{ArtifactSpec, JobResult, JobSpec, SandboxConfig};
use serde_json::{Value, json};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use wiremock::matchers::{method, path, path_regex, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const REVISION: &str = "9c1e5a2f7b3d4e6a8c0b1d2e3f4a5b6c7d8e9f01";
const KMS_KEY: &str = "arn:aws:kms:eu-west-1:111122223333:key/test-key";
const NPM_PACKUMENT: &str = r"^/artifactory/api/npm/camera-agent-npm/@nestbox%2[fF]camera-agent$";

/// A registry that accepts everything the camera-agent build publishes.
async fn registry() -> MockServer {
    let server = MockServer::start().await;
    let ok = |status: u16, body: Value| ResponseTemplate::new(status).set_body_json(body);
    Mock::given(method("POST"))
        .and(path("/access/api/v1/tokens"))
        .respond_with(ok(
            200,
            json!({"token_id": "t-1", "access_token": "job-token", "expires_in": 900,
            "scope": "applied-permissions/user", "token_type": "Bearer"}),
        ))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path_regex("^/access/api/v1/tokens/"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex("^/artifactory/api/storage/"))
        .respond_with(ok(
            404,
            json!({"errors": [{"status": 404, "message": "Not found"}]}),
        ))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path_regex("^/artifactory/api/storage/"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    for repo in ["firmware-releases", "camera-agent-debian"] {
        Mock::given(method("PUT"))
            .and(path_regex(format!("^/artifactory/{repo}/")))
            .respond_with(ok(201, json!({})))
            .mount(&server)
            .await;
    }
    Mock::given(method("GET"))
        .and(path_regex(NPM_PACKUMENT))
        .respond_with(ok(
            404,
            json!({"errors": [{"status": 404, "message": "not found"}]}),
        ))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path_regex(NPM_PACKUMENT))
        .respond_with(ok(201, json!({"ok": true})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(
            "/artifactory/api/pypi/camera-agent-pypi/simple/nestbox-camera-agent/",
        ))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/artifactory/api/pypi/camera-agent-pypi"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let base = server.uri();
    for (repo, stored) in [
        (
            "camera-agent-npm",
            "@nestbox/camera-agent/-/@nestbox/camera-agent-1.3.0.tgz",
        ),
        (
            "camera-agent-pypi",
            "nestbox-camera-agent/1.3.0/nestbox_camera_agent-1.3.0-py3-none-any.whl",
        ),
    ] {
        Mock::given(method("GET")).and(path("/artifactory/api/search/checksum")).and(query_param("repos", repo))
            .respond_with(ok(200, json!({"results": [{"uri": format!("{base}/artifactory/api/storage/{repo}/{stored}")}]})))
            .mount(&server).await;
    }
    Mock::given(method("PUT"))
        .and(path("/artifactory/api/build"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    server
}

struct Run {
    result: JobResult,
    receipt_key: String,
    execution_id: String,
}

/// Queues one job whose input is `entries` (with an output artifact for the receipt) and runs
/// the real worker until it ends.
async fn run_job(
    environment: &LocalEnvironment,
    configuration: BTreeMap<String, String>,
    entries: &[(String, Vec<u8>)],
) -> Run {
    let borrowed: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice()))
        .collect();
    let input = environment
        .upload_artifact("CameraBuild", Some(REVISION), &borrowed)
        .unwrap();
    let bucket = SandboxConfig::default().artifact_bucket;
    let receipt_key = format!("nestbox-camera/PublishRec/{:08x}", rand::random::<u32>());
    let mut spec = JobSpec::new("nestbox-camera");
    spec.configuration = configuration;
    spec.input_artifacts = vec![input];
    spec.output_artifacts = vec![ArtifactSpec::new("PublishReceipt", &bucket, &receipt_key)];
    spec.encryption_key_id = Some(KMS_KEY.to_owned());
    spec.execution_id = Some(format!("exec-{:08x}", rand::random::<u32>()));
    let execution_id = spec.execution_id.clone().unwrap();
    let job_id = environment.sandbox.sandbox.queue_job(spec);
    let publisher = environment.publisher(PublisherSettings::default()).unwrap();
    environment.run_worker(publisher, 1).await.unwrap();
    let record = environment.sandbox.sandbox.job(&job_id).unwrap();
    assert_eq!(record.results.len(), 1, "{:?}", record.results);
    Run {
        result: record.results[0].clone(),
        receipt_key,
        execution_id,
    }
}

fn configuration(
    environment: &LocalEnvironment,
    host: &str,
    kind: &str,
) -> BTreeMap<String, String> {
    let mut configuration = environment.camera_agent_configuration();
    configuration.insert(properties::ARTIFACTORY_HOST.into(), host.to_owned());
    configuration.insert(properties::TYPE_OF_ARTIFACT.into(), kind.to_owned());
    configuration
}

fn requests<'a>(
    all: &'a [wiremock::Request],
    verb: &str,
    prefix: &str,
) -> Vec<&'a wiremock::Request> {
    all.iter()
        .filter(|r| r.method.as_str() == verb && r.url.path().starts_with(prefix))
        .collect()
}

#[tokio::test]
async fn the_camera_agent_build_is_published_in_every_format_with_build_info_and_a_receipt() {
    let environment = LocalEnvironment::start().await.unwrap();
    let server = registry().await;
    let entries = camera_agent::combined_build().unwrap();
    let run = run_job(
        &environment,
        configuration(&environment, &server.uri(), "auto"),
        &entries,
    )
    .await;
    let JobResult::Success {
        summary,
        external_execution_id,
        output_variables,
        ..
    } = &run.result
    else {
        panic!("expected success: {:?}", run.result);
    };
    let received = server.received_requests().await.unwrap();

    // npm: the document npm sends, with the tarball attached as base64.
    let npm = requests(&received, "PUT", "/artifactory/api/npm/camera-agent-npm/");
    assert_eq!(npm.len(), 1);
    assert_eq!(
        npm[0].url.path(),
        "/artifactory/api/npm/camera-agent-npm/@nestbox%2fcamera-agent"
    );
    assert_eq!(npm[0].headers["content-type"], "application/json");
    assert_eq!(npm[0].headers["authorization"], "Bearer job-token");
    let document: Value = serde_json::from_slice(&npm[0].body).unwrap();
    assert_eq!(document["_id"], "@nestbox/camera-agent");
    assert_eq!(document["name"], "@nestbox/camera-agent");
    assert_eq!(document["dist-tags"], json!({"latest": "1.3.0"}));
    let version = &document["versions"]["1.3.0"];
    assert_eq!(version["_id"], "@nestbox/camera-agent@1.3.0");
    assert_eq!(
        version["bin"]["nestbox-camera-agent"],
        "bin/camera-agent.js"
    );
    let attachment = &document["_attachments"]["@nestbox/camera-agent-1.3.0.tgz"];
    assert_eq!(attachment["content_type"], "application/octet-stream");
    let tarball = base64::engine::general_purpose::STANDARD
        .decode(attachment["data"].as_str().unwrap())
        .unwrap();
    assert_eq!(attachment["length"], tarball.len());
    assert_eq!(
        version["dist"]["shasum"],
        hex::encode(Sha1::digest(&tarball))
    );
    let integrity = base64::engine::general_purpose::STANDARD.encode(Sha512::digest(&tarball));
    assert_eq!(version["dist"]["integrity"], format!("sha512-{integrity}"));
    assert!(
        version["dist"]["tarball"]
            .as_str()
            .unwrap()
            .ends_with("/@nestbox/camera-agent/-/@nestbox/camera-agent-1.3.0.tgz")
    );
    let mut packed = Vec::new();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&tarball[..]));
    for entry in archive.entries().unwrap() {
        packed.push(
            entry
                .unwrap()
                .path()
                .unwrap()
                .to_string_lossy()
                .into_owned(),
        );
    }
    packed.sort();
    assert_eq!(
        packed,
        [
            "package/LICENSE",
            "package/README.md",
            "package/bin/camera-agent.js",
            "package/index.js",
            "package/package.json"
        ]
    );

    // PyPI: twine's multipart form, the file streamed as `content`.
    let wheel = camera_agent::python_wheel().unwrap();
    let uploads = requests(&received, "POST", "/artifactory/api/pypi/camera-agent-pypi");
    assert_eq!(uploads.len(), 1);
    let content_type = uploads[0].headers["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("multipart/form-data; boundary="),
        "{content_type}"
    );
    let body = String::from_utf8_lossy(&uploads[0].body);
    for (field, value) in [
        (":action", "file_upload".to_owned()),
        ("protocol_version", "1".to_owned()),
        ("name", "nestbox-camera-agent".to_owned()),
        ("version", "1.3.0".to_owned()),
        ("filetype", "bdist_wheel".to_owned()),
        ("pyversion", "py3".to_owned()),
        ("metadata_version", "2.1".to_owned()),
        ("sha256_digest", hex::encode(Sha256::digest(&wheel))),
        ("md5_digest", hex::encode(md5::Md5::digest(&wheel))),
    ] {
        let part = format!("Content-Disposition: form-data; name=\"{field}\"\r\n\r\n{value}\r\n");
        assert!(body.contains(&part), "missing {field}={value} in {body}");
    }
    assert!(
        body.contains("name=\"content\"; filename=\"nestbox_camera_agent-1.3.0-py3-none-any.whl\"")
    );
    assert!(
        uploads[0]
            .body
            .windows(wheel.len())
            .any(|window| window == wheel.as_slice())
    );

    // Debian: into the pool, with the deb.* properties and traceability.
    let debs = requests(&received, "PUT", "/artifactory/camera-agent-debian/");
    assert_eq!(debs.len(), 1);
    let deb_path = debs[0].url.path();
    assert!(deb_path.starts_with("/artifactory/camera-agent-debian/pool/main/n/nestbox-camera-agent/nestbox-camera-agent_1.3.0-1_arm64.deb;"), "{deb_path}");
    for property in [
        "deb.distribution=bookworm",
        "deb.component=main",
        "deb.architecture=arm64",
        "build.name=nestbox-camera",
        &format!("build.number={}", run.execution_id),
        &format!("vcs.revision={REVISION}"),
        "codepipeline.pipeline=nestbox-camera",
    ] {
        assert!(
            deb_path.contains(&format!(";{property}")),
            "{property} in {deb_path}"
        );
    }
    // Firmware: by the spec, flat under its target, with the spec's properties.
    let firmware = requests(
        &received,
        "PUT",
        "/artifactory/firmware-releases/nestbox-cam/9c1e5a2/nestbox-cam-2.4.1.img;",
    );
    assert_eq!(firmware.len(), 1);
    assert!(firmware[0].url.path().contains(";board=rpi-zero-2w"));
    assert!(
        firmware[0]
            .url
            .path()
            .contains(";build.name=nestbox-camera")
    );

    // npm and PyPI files get their properties after the fact, where the registry stored them.
    let properties: Vec<String> = requests(&received, "PUT", "/artifactory/api/storage/")
        .iter()
        .map(|request| {
            format!(
                "{}?{}",
                request.url.path(),
                request.url.query().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(properties.len(), 2, "{properties:?}");
    assert!(
        properties
            .iter()
            .all(|request| request.contains("build.name%3Dnestbox-camera")
                || request.contains("build.name=nestbox-camera")),
        "{properties:?}"
    );

    // Build info: one module listing all six files with their checksums.
    let builds = requests(&received, "PUT", "/artifactory/api/build");
    assert_eq!(builds.len(), 1);
    let build: Value = serde_json::from_slice(&builds[0].body).unwrap();
    assert_eq!(build["name"], "nestbox-camera");
    assert_eq!(build["number"], run.execution_id);
    let started = build["started"].as_str().unwrap();
    assert!(
        started.len() == 28 && started.ends_with("+0000") && started.as_bytes()[10] == b'T',
        "{started}"
    );
    assert_eq!(build["agent"]["name"], "pipeline-publisher");
    assert_eq!(build["vcs"], json!([{"revision": REVISION}]));
    let modules = build["modules"].as_array().unwrap();
    assert_eq!(modules.len(), 1);
    assert_eq!(modules[0]["id"], "CameraBuild");
    let artifacts = modules[0]["artifacts"].as_array().unwrap();
    assert_eq!(artifacts.len(), 6, "{artifacts:?}");
    let deb = artifacts.iter().find(|a| a["type"] == "deb").unwrap();
    assert_eq!(
        deb["sha256"],
        hex::encode(Sha256::digest(camera_agent::debian_package().unwrap()))
    );
    assert!(
        artifacts
            .iter()
            .all(|a| a["sha1"].is_string() && a["md5"].is_string())
    );

    // The success result links to the build and tells later stages what was published.
    let external = external_execution_id.as_deref().unwrap();
    assert!(
        external.starts_with(&format!("nestbox-camera/{}/", run.execution_id)),
        "{external}"
    );
    assert!(
        external.ends_with("/published?buildRepo=artifactory-build-info"),
        "{external}"
    );
    assert_eq!(output_variables["BuildName"], "nestbox-camera");
    assert_eq!(output_variables["BuildNumber"], run.execution_id);
    assert_eq!(output_variables["NpmPackage"], "@nestbox/camera-agent");
    assert_eq!(output_variables["NpmVersion"], "1.3.0");
    assert_eq!(output_variables["DebianVersion"], "1.3.0-1");
    assert_eq!(output_variables["PypiVersion"], "1.3.0");
    assert_eq!(
        output_variables["FirmwareSha256"],
        hex::encode(Sha256::digest(
            pipeline_publisher::demo::FIRMWARE_EXAMPLE[0].1
        ))
    );
    assert!(
        output_variables["FirmwareUrl"]
            .ends_with("/artifactory/firmware-releases/nestbox-cam/9c1e5a2/nestbox-cam-2.4.1.img")
    );
    assert!(
        summary.as_deref().unwrap().starts_with("Published 6 files"),
        "{summary:?}"
    );

    // The receipt, zipped into the output artifact with the job's KMS key.
    let bucket = SandboxConfig::default().artifact_bucket;
    let object = environment
        .sandbox
        .sandbox
        .object(&bucket, &run.receipt_key)
        .expect("receipt written");
    assert_eq!(object.sse.as_deref(), Some("aws:kms"));
    assert_eq!(object.kms_key_id.as_deref(), Some(KMS_KEY));
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&object.content_path).unwrap()).unwrap();
    let mut text = String::new();
    zip.by_name("publish-receipt.json")
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    let receipt: Value = serde_json::from_str(&text).unwrap();
    let files = receipt["files"].as_array().unwrap();
    assert_eq!(files.len(), 6);
    let wheel_entry = files.iter().find(|f| f["format"] == "pypi").unwrap();
    assert_eq!(
        wheel_entry["sourcePath"],
        "agent/nestbox_camera_agent-1.3.0-py3-none-any.whl"
    );
    assert_eq!(
        wheel_entry["package"],
        json!({"name": "nestbox-camera-agent", "version": "1.3.0"})
    );
    assert_eq!(wheel_entry["sha256"], hex::encode(Sha256::digest(&wheel)));
    assert_eq!(wheel_entry["size"], wheel.len());
    let npm_entry = files.iter().find(|f| f["format"] == "npm").unwrap();
    assert_eq!(npm_entry["sourcePath"], "agent/npm/");
    assert_eq!(
        npm_entry["targetPath"],
        "@nestbox/camera-agent/-/@nestbox/camera-agent-1.3.0.tgz"
    );
}

/// A registry that already holds the npm package (with this shasum) and the wheel (with this
/// sha256).
async fn registry_with_existing(tarball_sha1: &str, wheel_sha256: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path_regex(NPM_PACKUMENT))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "name": "@nestbox/camera-agent",
            "versions": {"1.3.0": {"dist": {"shasum": tarball_sha1}}}})))
        .mount(&server)
        .await;
    Mock::given(method("GET")).and(path("/artifactory/api/pypi/camera-agent-pypi/simple/nestbox-camera-agent/"))
        .respond_with(ResponseTemplate::new(200).set_body_string(format!(
            "<html><body><a href=\"../../nestbox_camera_agent-1.3.0-py3-none-any.whl#sha256={wheel_sha256}\">w</a></body></html>")))
        .mount(&server).await;
    // Everything else accepted; mounted last, so the answers above win.
    Mock::given(wiremock::matchers::any())
        .respond_with(accepting_answer)
        .mount(&server)
        .await;
    server
}

/// Tokens, deploys and build info succeed; nothing else exists; publishing must not happen.
fn accepting_answer(request: &wiremock::Request) -> ResponseTemplate {
    let path = request.url.path();
    match request.method.as_str() {
        "POST" if path == "/access/api/v1/tokens" => ResponseTemplate::new(200).set_body_json(json!({
            "token_id": "t-1", "access_token": "job-token", "expires_in": 900, "token_type": "Bearer"})),
        "GET" if path == "/artifactory/api/search/checksum" => ResponseTemplate::new(200).set_body_json(json!({"results": []})),
        "GET" => ResponseTemplate::new(404),
        "PUT" if path.starts_with("/artifactory/api/npm/") => ResponseTemplate::new(500),
        "POST" if path.starts_with("/artifactory/api/pypi/") => ResponseTemplate::new(500),
        _ => ResponseTemplate::new(201).set_body_json(json!({})),
    }
}

fn only_packages() -> Vec<(String, Vec<u8>)> {
    let mut entries = camera_agent::combined_build().unwrap();
    entries.retain(|(path, _)| path.starts_with("agent/npm/") || path.ends_with(".whl"));
    entries.push((
        "publish-spec.json".into(),
        br#"{"files":[
        {"pattern":"agent/npm/*","type":"npm","target":"camera-agent-npm"},
        {"pattern":"agent/*.whl","type":"pypi","target":"camera-agent-pypi"}]}"#
            .to_vec(),
    ));
    entries
}

/// The tarball the worker packs from the example (deterministic, so its sha1 is known).
fn packed_sha1() -> String {
    let dir = tempfile::tempdir().unwrap();
    for (path, bytes, _) in camera_agent::NPM_SOURCE {
        let file = dir.path().join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, bytes).unwrap();
    }
    let manifest =
        pipeline_publisher::publish::formats::npm_pack::read_directory_manifest(dir.path())
            .unwrap();
    let tarball = dir.path().join("packed.tgz");
    pipeline_publisher::publish::formats::npm_pack::pack_directory(dir.path(), &manifest, &tarball)
        .unwrap();
    hex::encode(Sha1::digest(std::fs::read(tarball).unwrap()))
}

#[tokio::test]
async fn republishing_npm_and_pypi_is_idempotent_and_different_content_is_refused_naming_both_hashes()
 {
    let environment = LocalEnvironment::start().await.unwrap();
    let wheel_sha256 = hex::encode(Sha256::digest(camera_agent::python_wheel().unwrap()));
    let tarball_sha1 = packed_sha1();

    let same = registry_with_existing(&tarball_sha1, &wheel_sha256).await;
    let run = run_job(
        &environment,
        configuration(&environment, &same.uri(), "auto"),
        &only_packages(),
    )
    .await;
    let JobResult::Success { summary, .. } = &run.result else {
        panic!("{:?}", run.result)
    };
    assert!(
        summary.as_deref().unwrap().contains("2 already published"),
        "{summary:?}"
    );
    let received = same.received_requests().await.unwrap();
    assert!(
        requests(&received, "PUT", "/artifactory/api/npm/").is_empty(),
        "no npm publish"
    );
    assert!(
        requests(&received, "POST", "/artifactory/api/pypi/").is_empty(),
        "no upload"
    );

    let other_sha1 = "0".repeat(40);
    let different = registry_with_existing(&other_sha1, &wheel_sha256).await;
    let run = run_job(
        &environment,
        configuration(&environment, &different.uri(), "auto"),
        &only_packages(),
    )
    .await;
    let JobResult::Failure {
        failure_type,
        message,
        ..
    } = &run.result
    else {
        panic!("{:?}", run.result)
    };
    assert_eq!(failure_type, "JobFailed");
    assert!(
        message.contains(&other_sha1) && message.contains(&tarball_sha1),
        "{message}"
    );
    assert!(
        message.contains("npm package @nestbox/camera-agent@1.3.0"),
        "{message}"
    );

    let other_sha256 = "f".repeat(64);
    let different = registry_with_existing(&tarball_sha1, &other_sha256).await;
    let run = run_job(
        &environment,
        configuration(&environment, &different.uri(), "auto"),
        &only_packages(),
    )
    .await;
    let JobResult::Failure { message, .. } = &run.result else {
        panic!("{:?}", run.result)
    };
    assert!(
        message.contains(&other_sha256) && message.contains(&wheel_sha256),
        "{message}"
    );
}
