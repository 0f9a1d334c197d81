//! The mock registry consumed by the real clients, as a user would: Node's `npm publish` and
//! `npm install`, `pip install` from the PEP 503 index into a fresh venv, and `twine upload`
//! (`dpkg-deb` is in `mock_registry_real_dpkg.rs`). Every command runs in a temporary
//! directory with a deadline; the access token reaches the clients only through environment
//! variables (npm expands `${MOCK_REGISTRY_TOKEN}` in its temporary `.npmrc`).

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use pipeline_publisher::mock_registry::{MockRegistry, MockRegistryConfig, RunningMockRegistry};
use sha2::{Digest as _, Sha256};
use tokio::process::Command;

/// Upper bound on any one client command (installs from PyPI included).
const DEADLINE: Duration = Duration::from_secs(240);
const USER: &str = "demo";
const PASSWORD: &str = "demo-password";

async fn start() -> RunningMockRegistry {
    MockRegistry::start(MockRegistryConfig::default())
        .await
        .expect("mock registry starts")
}

async fn mint_token(base: &str) -> String {
    let response = reqwest::Client::new()
        .post(format!("{base}/access/api/v1/tokens"))
        .basic_auth(USER, Some(PASSWORD))
        .json(&serde_json::json!({ "username": USER, "expires_in": 3600 }))
        .send()
        .await
        .expect("token request is sent");
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.expect("token JSON");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// Runs a command to completion within [`DEADLINE`]; returns `(success, stdout + stderr)`.
async fn run(command: &mut Command) -> (bool, String) {
    let description = format!("{command:?}");
    let output = tokio::time::timeout(
        DEADLINE,
        command
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{description} did not finish within {DEADLINE:?}"))
    .unwrap_or_else(|error| panic!("{description} could not start: {error}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

async fn run_ok(command: &mut Command) -> String {
    let description = format!("{command:?}");
    let (success, output) = run(command).await;
    assert!(success, "{description} failed:\n{output}");
    output
}

fn write(path: &Path, content: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("creates directories");
    }
    std::fs::write(path, content).expect("writes file");
}

/// `npm` with its configuration, cache and logs inside `work` and the token in the environment.
/// Each directory gets its own cache, so an install cannot be served from what publish packed.
fn npm(work: &Path, directory: &Path, token: &str) -> Command {
    let mut command = Command::new("npm");
    let name = directory
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("npm");
    let cache = work.join(format!("npm-cache-{name}"));
    command
        .current_dir(directory)
        .env("npm_config_userconfig", work.join(".npmrc"))
        .env("npm_config_cache", cache)
        .env("npm_config_logs_dir", work.join("npm-logs"))
        .env("npm_config_update_notifier", "false")
        .env("npm_config_fund", "false")
        .env("npm_config_audit", "false")
        .env("MOCK_REGISTRY_TOKEN", token);
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_publishes_and_installs_a_scoped_package() {
    let server = start().await;
    let base = &server.base_url;
    let token = mint_token(base).await;
    let work = tempfile::tempdir().expect("temp dir");
    let work = work.path();
    let registry = format!("{base}/artifactory/api/npm/npm-local/");
    let authority = registry.trim_start_matches("http:");
    write(
        &work.join(".npmrc"),
        &format!("registry={registry}\n{authority}:_authToken=${{MOCK_REGISTRY_TOKEN}}\n"),
    );
    let package = work.join("package");
    write(
        &package.join("package.json"),
        r#"{ "name": "@acme/hello-camera", "version": "1.0.0", "description": "Camera agent probe", "main": "index.js", "license": "MIT" }"#,
    );
    write(
        &package.join("index.js"),
        "exports.greet = () => 'hello from the camera agent';\n",
    );

    run_ok(npm(work, &package, &token).args(["publish", "--registry", &registry])).await;
    let packument = server
        .registry
        .npm_package("npm-local", "@acme/hello-camera")
        .expect("published");
    assert_eq!(packument["dist-tags"]["latest"], "1.0.0");
    let tarball = server
        .registry
        .artifact(
            "npm-local",
            "@acme/hello-camera/-/@acme/hello-camera-1.0.0.tgz",
        )
        .expect("tarball stored");
    assert_eq!(tarball.properties["npm.name"], vec!["@acme/hello-camera"]);

    // npm reads the packument first and refuses to publish the same version again.
    let (success, output) =
        run(npm(work, &package, &token).args(["publish", "--registry", &registry])).await;
    assert!(!success, "{output}");
    assert!(
        output.contains("You cannot publish over the previously published versions: 1.0.0"),
        "{output}"
    );

    let consumer = work.join("consumer");
    write(
        &consumer.join("package.json"),
        r#"{ "name": "consumer", "version": "1.0.0", "private": true }"#,
    );
    run_ok(npm(work, &consumer, &token).args([
        "install",
        "@acme/hello-camera",
        "--registry",
        &registry,
    ]))
    .await;
    let greeting = run_ok(Command::new("node").current_dir(&consumer).args([
        "-e",
        "process.stdout.write(require('@acme/hello-camera').greet())",
    ]))
    .await;
    assert_eq!(greeting, "hello from the camera agent");
    let tarball_downloads = server
        .registry
        .requests()
        .into_iter()
        .filter(|request| {
            request.method == "GET" && request.path.ends_with("/-/@acme/hello-camera-1.0.0.tgz")
        })
        .map(|request| request.status)
        .collect::<Vec<_>>();
    assert_eq!(
        tarball_downloads,
        vec![200],
        "npm install fetched the tarball"
    );

    for request in server.registry.requests() {
        eprintln!(
            "npm sent: {} {} -> {} (npm-command: {})",
            request.method,
            request.path,
            request.status,
            request.header("npm-command").unwrap_or("-")
        );
    }
}

/// A pure-Python wheel written by hand: one module, METADATA, WHEEL and a correct RECORD.
fn wheel(directory: &Path, version: &str, greeting: &str) -> std::path::PathBuf {
    let dist_info = format!("hello_camera_py-{version}.dist-info");
    let files = [
        (
            "hello_camera_py/__init__.py".to_string(),
            format!("def greet():\n    return {greeting:?}\n"),
        ),
        (
            format!("{dist_info}/METADATA"),
            format!(
                "Metadata-Version: 2.1\nName: hello-camera-py\nVersion: {version}\nSummary: Camera agent probe\nRequires-Python: >=3.8\n"
            ),
        ),
        (
            format!("{dist_info}/WHEEL"),
            "Wheel-Version: 1.0\nGenerator: pipeline-publisher-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n".to_string(),
        ),
    ];
    let mut record = String::new();
    let mut archive = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    for (name, content) in &files {
        archive
            .start_file(name.as_str(), options)
            .expect("zip entry");
        archive.write_all(content.as_bytes()).expect("zip write");
        let digest = URL_SAFE_NO_PAD.encode(Sha256::digest(content.as_bytes()));
        record.push_str(&format!("{name},sha256={digest},{}\n", content.len()));
    }
    record.push_str(&format!("{dist_info}/RECORD,,\n"));
    archive
        .start_file(format!("{dist_info}/RECORD"), options)
        .expect("zip entry");
    archive.write_all(record.as_bytes()).expect("zip write");
    let bytes = archive.finish().expect("zip finishes").into_inner();
    let path = directory.join(format!("hello_camera_py-{version}-py3-none-any.whl"));
    std::fs::write(&path, bytes).expect("writes wheel");
    path
}

/// Uploads like twine does (multipart legacy API), with the token as basic-auth password.
async fn upload_wheel(base: &str, token: &str, path: &Path, version: &str) -> u16 {
    let content = std::fs::read(path).expect("reads wheel");
    let file_name = path
        .file_name()
        .and_then(|name| name.to_str())
        .expect("file name");
    let boundary = "real-clients-boundary";
    let fields = [
        (":action", "file_upload".to_string()),
        ("protocol_version", "1".to_string()),
        ("metadata_version", "2.1".to_string()),
        ("name", "hello-camera-py".to_string()),
        ("version", version.to_string()),
        ("filetype", "bdist_wheel".to_string()),
        ("pyversion", "py3".to_string()),
        ("requires_python", ">=3.8".to_string()),
        ("sha256_digest", hex::encode(Sha256::digest(&content))),
        ("md5_digest", hex::encode(md5::Md5::digest(&content))),
    ];
    let mut body = Vec::new();
    for (name, value) in &fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"content\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(&content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    reqwest::Client::new()
        .post(format!("{base}/artifactory/api/pypi/pypi-local"))
        .basic_auth(USER, Some(token))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .expect("upload is sent")
        .status()
        .as_u16()
}

async fn venv(work: &Path) -> std::path::PathBuf {
    let venv = work.join("venv");
    run_ok(Command::new("python3").args(["-m", "venv"]).arg(&venv)).await;
    venv
}

fn venv_tool(venv: &Path, tool: &str) -> Command {
    let mut command = Command::new(venv.join("bin").join(tool));
    command
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .env("PIP_NO_INPUT", "1")
        .env("PIP_NO_CACHE_DIR", "1");
    command
}

async fn pip_install_and_import(venv: &Path, base: &str, requirement: &str) -> String {
    let index = format!("{base}/artifactory/api/pypi/pypi-local/simple/");
    run_ok(venv_tool(venv, "pip").args(["install", "--index-url", &index, requirement])).await;
    run_ok(venv_tool(venv, "python").args([
        "-c",
        "import hello_camera_py, sys; sys.stdout.write(hello_camera_py.greet())",
    ]))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pip_installs_an_uploaded_wheel_into_a_fresh_venv() {
    let server = start().await;
    let base = &server.base_url;
    let token = mint_token(base).await;
    let work = tempfile::tempdir().expect("temp dir");
    let path = wheel(work.path(), "0.1.0", "hello from the camera agent");
    assert_eq!(upload_wheel(base, &token, &path, "0.1.0").await, 201);
    assert_eq!(
        server
            .registry
            .pypi_files("pypi-local", "Hello_Camera.Py")
            .len(),
        1
    );

    let venv = venv(work.path()).await;
    let greeting = pip_install_and_import(&venv, base, "hello-camera-py==0.1.0").await;
    assert_eq!(greeting, "hello from the camera agent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twine_uploads_and_pip_installs() {
    let server = start().await;
    let base = &server.base_url;
    let token = mint_token(base).await;
    let work = tempfile::tempdir().expect("temp dir");
    let venv = venv(work.path()).await;
    // twine is not on the machine: it comes from PyPI, which CI and developers reach.
    let (installed, output) =
        run(venv_tool(&venv, "pip").args(["install", "--quiet", "twine"])).await;
    if !installed {
        eprintln!("SKIPPED: twine could not be installed from PyPI here:\n{output}");
        return;
    }
    let twine_upload = |file: &Path| {
        let mut command = venv_tool(&venv, "python");
        command
            .args([
                "-m",
                "twine",
                "upload",
                "--non-interactive",
                "--disable-progress-bar",
                "--verbose",
            ])
            .arg("--repository-url")
            .arg(format!("{base}/artifactory/api/pypi/pypi-local"))
            .arg(file)
            .env("TWINE_USERNAME", USER)
            .env("TWINE_PASSWORD", &token);
        command
    };
    let path = wheel(work.path(), "0.2.0", "hello from twine");
    run_ok(&mut twine_upload(&path)).await;
    let files = server.registry.pypi_files("pypi-local", "hello-camera-py");
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(
        files[0].path,
        "hello-camera-py/0.2.0/hello_camera_py-0.2.0-py3-none-any.whl"
    );
    assert_eq!(
        files[0].properties["pypi.summary"],
        vec!["Camera agent probe"]
    );
    assert_eq!(files[0].properties["pypi.requires.python"], vec![">=3.8"]);

    // The same file again is accepted; different bytes under the same name are refused.
    run_ok(&mut twine_upload(&path)).await;
    let other = work.path().join("other");
    std::fs::create_dir_all(&other).expect("creates directory");
    let changed = wheel(&other, "0.2.0", "changed");
    let (success, output) = run(&mut twine_upload(&changed)).await;
    assert!(!success, "{output}");
    assert!(
        output.contains("403") && output.contains("overwrite"),
        "{output}"
    );

    let greeting = pip_install_and_import(&venv, base, "hello-camera-py==0.2.0").await;
    assert_eq!(greeting, "hello from twine");
}
