//! Shared by the tests that run the real binary: a clean environment, the worker command line an
//! operator would use against the stand-ins, a minimal firmware job, and snapshot comparison of
//! long outputs with insta snapshots under `tests/snapshots/`.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use pipeline_publisher::demo::{
    DEMO_PASSWORD, DEMO_REPO, DEMO_USER, FIRMWARE_EXAMPLE, zip_entries,
};
use pipeline_publisher::pipeline::properties;
use pipeline_publisher::sandbox::{ArtifactSpec, JobSpec, Sandbox};

/// Compares `actual` with the insta snapshot `tests/snapshots/NAME.snap`. A difference fails
/// the test and leaves `NAME.snap.new` beside it: review with `cargo insta review`, or accept
/// every new output with `INSTA_UPDATE=always cargo test --test it`.
pub fn assert_snapshot(name: &str, actual: &str) {
    insta::with_settings!({
        snapshot_path => "../snapshots",
        prepend_module_to_snapshot => false,
        omit_expression => true,
    }, {
        insta::assert_snapshot!(name, actual);
    });
}

/// The binary with an empty environment (no AWS config files, no IMDS), plus `env`.
pub fn command(home: &Path, env: &[(&str, &str)]) -> tokio::process::Command {
    // Empty AWS files, so the SDK neither reads the user's nor warns that they are missing.
    for file in ["config", "credentials"] {
        let path = home.join(file);
        if !path.exists() {
            std::fs::write(path, "").unwrap();
        }
    }
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_pipeline-publisher"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("AWS_CONFIG_FILE", home.join("config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// Runs the command to completion (at most 60 s).
pub async fn run(mut command: tokio::process::Command, args: &[&str]) -> Output {
    command.args(args);
    tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("the command finishes within 60 s")
        .expect("the binary runs")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A home directory with empty AWS config files, so nothing from the machine leaks in.
pub fn aws_home() -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("config"), "").unwrap();
    std::fs::write(home.path().join("credentials"), "").unwrap();
    home
}

/// `pipeline-publisher worker` configured only through the standard AWS environment, with its
/// own journal under `home/state-{name}`. `endpoints` are `(variable, url)` pairs such as
/// `("AWS_ENDPOINT_URL", url)`.
pub fn worker_command(
    sandbox: &Sandbox,
    home: &Path,
    name: &str,
    endpoints: &[(&str, &str)],
) -> tokio::process::Command {
    let (access_key_id, secret_access_key) = sandbox.worker_credentials();
    let mut command = self::command(home, &[]);
    command
        .args(["worker", "--s3-force-path-style"])
        .arg("--state-dir")
        .arg(home.join(format!("state-{name}")))
        .env("AWS_REGION", &sandbox.config().region)
        .env("AWS_ACCESS_KEY_ID", access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", secret_access_key)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    for (variable, url) in endpoints {
        command.env(variable, url);
    }
    command
}

/// Stores `entries` zipped as an input artifact and returns a job publishing it to `host`.
pub fn firmware_job(
    sandbox: &Sandbox,
    key: &str,
    entries: &[(&str, &[u8])],
    host: &str,
    target_path: Option<&str>,
) -> JobSpec {
    let bucket = sandbox.config().artifact_bucket.clone();
    sandbox
        .put_object(&bucket, key, &zip_entries(entries).unwrap())
        .unwrap();
    let mut spec = JobSpec::new("nestbox-firmware");
    spec.input_artifacts = vec![ArtifactSpec {
        name: "BuildOutput".into(),
        revision: Some("0123456789abcdef".into()),
        bucket,
        key: key.to_owned(),
    }];
    spec.configuration = [
        (properties::ARTIFACTORY_HOST, host),
        (properties::REPO_KEY, DEMO_REPO),
        (properties::USER_NAME, DEMO_USER),
        (properties::PASSWORD, DEMO_PASSWORD),
    ]
    .into_iter()
    .chain(target_path.map(|path| (properties::TARGET_PATH, path)))
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect();
    spec
}

/// The firmware example, the usual payload.
pub const FIRMWARE: &[(&str, &[u8])] = FIRMWARE_EXAMPLE;

/// Forwards `request` to `upstream` (a base URL) and returns the answer: the body of test
/// proxies that sit in front of the mock registry to inject faults.
pub async fn forward(
    client: &reqwest::Client,
    upstream: &str,
    request: axum::extract::Request,
) -> axum::response::Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let url = format!("{upstream}{}", parts.uri.path_and_query().unwrap());
    let mut outgoing = client.request(parts.method, url).body(body);
    for (name, value) in &parts.headers {
        if name != axum::http::header::HOST {
            outgoing = outgoing.header(name, value);
        }
    }
    let answer = outgoing.send().await.unwrap();
    let mut response = axum::response::Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        response = response.header(name, value);
    }
    response
        .body(axum::body::Body::from(answer.bytes().await.unwrap()))
        .unwrap()
}

/// Serves `app` on 127.0.0.1 and returns its base URL.
pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// Bytes that do not compress (xorshift from `seed`), so a zip is about as large as its content.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}
