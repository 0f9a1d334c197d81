//! The combined camera-agent build published by the real worker loop, then consumed by the
//! real clients a device team uses: `npm install` and `node`, `pip install` into a fresh venv
//! and `python`, and `dpkg-deb --info` on the downloaded `.deb`.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use pipeline_publisher::demo::LocalEnvironment;
use pipeline_publisher::demo::camera_agent::{
    self, AGENT_VERSION, DEB_FILE, DEB_NAME, DEB_VERSION, NPM_NAME, PYPI_NAME,
};
use pipeline_publisher::publish::PublisherSettings;
use pipeline_publisher::sandbox::JobResult;
use tokio::process::Command;

async fn run_ok(command: &mut Command) -> Output {
    let output = tokio::time::timeout(Duration::from_secs(180), command.output())
        .await
        .expect("the client finished within 3 minutes")
        .expect("the client could be started");
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// npm with a private cache and config, so nothing from the machine is used or changed.
fn npm(work: &Path) -> Command {
    std::fs::write(work.join(".npmrc"), "").unwrap();
    let mut command = Command::new("npm");
    command
        .current_dir(work)
        .env("npm_config_userconfig", work.join(".npmrc"))
        .env("npm_config_cache", work.join("npm-cache"))
        .env("npm_config_logs_dir", work.join("npm-logs"))
        .env("npm_config_update_notifier", "false")
        .env("npm_config_fund", "false")
        .env("npm_config_audit", "false");
    command
}

#[tokio::test]
async fn published_agent_packages_install_and_run_with_the_real_clients() {
    let environment = LocalEnvironment::start().await.unwrap();
    let entries = camera_agent::combined_build().unwrap();
    let borrowed: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|(path, bytes)| (path.as_str(), bytes.as_slice()))
        .collect();
    let artifact = environment
        .upload_artifact(
            "CameraBuild",
            Some("4b7d0c9e2a1f3e5d6c8b9a0f1e2d"),
            &borrowed,
        )
        .unwrap();
    let job_id = environment.queue_job(
        "nestbox-camera",
        environment.camera_agent_configuration(),
        vec![artifact],
    );
    let publisher = environment.publisher(PublisherSettings::default()).unwrap();
    environment.run_worker(publisher, 1).await.unwrap();
    let record = environment.sandbox.sandbox.job(&job_id).unwrap();
    assert!(
        matches!(record.results.as_slice(), [JobResult::Success { .. }]),
        "{:?}",
        record.results
    );
    let base = &environment.registry.base_url;
    let work = tempfile::tempdir().unwrap();

    // npm: install the package from the registry the worker published to, then run it.
    let consumer = work.path().join("npm-consumer");
    std::fs::create_dir(&consumer).unwrap();
    let registry = format!("{base}/artifactory/api/npm/camera-agent-npm/");
    run_ok(npm(&consumer).args(["install", "--registry", &registry, NPM_NAME])).await;
    let status = run_ok(Command::new("node").current_dir(&consumer).args([
        "-e",
        "process.stdout.write(JSON.stringify(require('@nestbox/camera-agent').status()))",
    ]))
    .await;
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["version"], AGENT_VERSION);
    assert_eq!(status["agent"], NPM_NAME);
    assert!(
        consumer
            .join("node_modules/.bin/nestbox-camera-agent")
            .exists()
    );

    // pip: install the wheel from the PEP 503 index into a fresh venv, then import it.
    let venv = work.path().join("venv");
    run_ok(Command::new("python3").args(["-m", "venv"]).arg(&venv)).await;
    let index = format!("{base}/artifactory/api/pypi/camera-agent-pypi/simple/");
    run_ok(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--no-cache-dir", "--disable-pip-version-check"])
            .args(["--index-url", &index])
            .arg(format!("{PYPI_NAME}=={AGENT_VERSION}")),
    )
    .await;
    let imported = run_ok(Command::new(venv.join("bin/python")).args([
        "-c",
        "import nestbox_camera_agent as agent; print(agent.__version__)",
    ]))
    .await;
    assert_eq!(
        String::from_utf8_lossy(&imported.stdout).trim(),
        AGENT_VERSION
    );

    // Debian: download the .deb from its pool path and read it with dpkg-deb.
    let url = format!("{base}/artifactory/camera-agent-debian/pool/main/n/{DEB_NAME}/{DEB_FILE}");
    let bytes = reqwest::get(&url)
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let deb = work.path().join(DEB_FILE);
    std::fs::write(&deb, &bytes).unwrap();
    let info = run_ok(Command::new("dpkg-deb").arg("--info").arg(&deb)).await;
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(info.contains(&format!("Package: {DEB_NAME}")), "{info}");
    assert!(info.contains(&format!("Version: {DEB_VERSION}")), "{info}");
    assert!(info.contains("Architecture: arm64"), "{info}");
    let stored = environment
        .registry
        .registry
        .artifact(
            "camera-agent-debian",
            &format!("pool/main/n/{DEB_NAME}/{DEB_FILE}"),
        )
        .unwrap();
    assert_eq!(stored.properties["deb.distribution"], ["bookworm"]);
    assert_eq!(stored.properties["deb.component"], ["main"]);
    assert_eq!(stored.properties["deb.architecture"], ["arm64"]);
    assert_eq!(stored.properties["build.name"], ["nestbox-camera"]);
}
