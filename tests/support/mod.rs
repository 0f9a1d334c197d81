//! Shared by the CLI tests: run the real binary with a clean environment, and compare long
//! outputs with snapshot files under `tests/snapshots/` (`UPDATE_SNAPSHOTS=1` rewrites them).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

/// Compares `actual` with `tests/snapshots/NAME.txt`.
pub fn assert_snapshot(name: &str, actual: &str) {
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.txt"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "no snapshot {}; run with UPDATE_SNAPSHOTS=1 to create it. Actual:\n{actual}",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "snapshot {name} differs (UPDATE_SNAPSHOTS=1 to accept)\n--- expected\n{expected}\n--- actual\n{actual}"
    );
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
