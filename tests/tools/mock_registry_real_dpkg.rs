//! A Debian package built with the real `dpkg-deb`, deployed to the mock registry with `deb.*`
//! properties, read back through `?properties`, downloaded and checked with `dpkg-deb --info`.

use std::path::Path;
use std::time::Duration;

use pipeline_publisher::mock_registry::{MockRegistry, MockRegistryConfig};
use sha2::{Digest as _, Sha256};
use tokio::process::Command;

/// Upper bound on any one `dpkg-deb` run.
const DEADLINE: Duration = Duration::from_secs(60);

async fn run_ok(command: &mut Command) -> String {
    let description = format!("{command:?}");
    let output = tokio::time::timeout(DEADLINE, command.kill_on_drop(true).output())
        .await
        .unwrap_or_else(|_| panic!("{description} did not finish within {DEADLINE:?}"))
        .unwrap_or_else(|error| panic!("{description} could not start: {error}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{description} failed:\n{text}");
    text
}

fn write(path: &Path, content: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("creates directories");
    }
    std::fs::write(path, content).expect("writes file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpkg_reads_a_deb_downloaded_back() {
    let server = MockRegistry::start(MockRegistryConfig::default())
        .await
        .expect("mock registry starts");
    let base = &server.base_url;
    let work = tempfile::tempdir().expect("temp dir");
    let root = work.path().join("camera-agent");
    write(
        &root.join("DEBIAN/control"),
        "Package: camera-agent\nVersion: 1.0.0\nArchitecture: arm64\nMaintainer: Camera Team <camera@example.invalid>\nDescription: Camera agent probe\n",
    );
    write(
        &root.join("usr/bin/camera-agent"),
        "#!/bin/sh\necho camera\n",
    );
    let deb = work.path().join("camera-agent_1.0.0_arm64.deb");
    run_ok(
        Command::new("dpkg-deb")
            .args(["--build", "--root-owner-group"])
            .arg(&root)
            .arg(&deb),
    )
    .await;
    let content = std::fs::read(&deb).expect("reads deb");

    let item = "debian-local/pool/main/c/camera-agent/camera-agent_1.0.0_arm64.deb";
    let client = reqwest::Client::new();
    let response = client
        .put(format!("{base}/artifactory/{item};deb.distribution=bookworm;deb.component=main;deb.architecture=arm64"))
        .basic_auth("demo", Some("demo-password"))
        .header("X-Checksum-Sha256", hex::encode(Sha256::digest(&content)))
        .body(content.clone())
        .send()
        .await
        .expect("deploy is sent");
    assert_eq!(response.status(), 201);
    let properties: serde_json::Value = client
        .get(format!("{base}/artifactory/api/storage/{item}?properties"))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        properties["properties"],
        serde_json::json!({
            "deb.architecture": ["arm64"], "deb.component": ["main"], "deb.distribution": ["bookworm"]
        })
    );
    let downloaded = client
        .get(format!("{base}/artifactory/{item}"))
        .send()
        .await
        .expect("sent")
        .bytes()
        .await
        .expect("body");
    let copy = work.path().join("downloaded.deb");
    std::fs::write(&copy, &downloaded).expect("writes copy");
    let info = run_ok(Command::new("dpkg-deb").arg("--info").arg(&copy)).await;
    assert!(info.contains("Package: camera-agent"), "{info}");
    assert!(info.contains("Architecture: arm64"), "{info}");
}
