//! What the tests that run the worker *binary* share: an isolated AWS home, the command line an
//! operator would use against the stand-ins, and a minimal firmware job.

// Each test binary compiles this module and uses a different part of it.
#![allow(dead_code)]

use std::path::Path;

use pipeline_publisher::demo::{
    DEMO_PASSWORD, DEMO_REPO, DEMO_USER, FIRMWARE_EXAMPLE, zip_entries,
};
use pipeline_publisher::pipeline::properties;
use pipeline_publisher::sandbox::{ArtifactSpec, JobSpec, Sandbox};

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
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_pipeline-publisher"));
    command
        .args(["worker", "--s3-force-path-style"])
        .arg("--state-dir")
        .arg(home.join(format!("state-{name}")))
        .env_clear()
        .env("HOME", home)
        .env("AWS_CONFIG_FILE", home.join("config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_REGION", &sandbox.config().region)
        .env("AWS_ACCESS_KEY_ID", access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", secret_access_key)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
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
