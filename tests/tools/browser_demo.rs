//! `demo --serve` opened in a real browser: headless Chromium driven by ChromeDriver (W3C
//! WebDriver, through `fantoccini`). The real binary serves on random ports; the test clicks
//! from the pipeline view into the registry's UI as a person would and checks what the pages
//! show: the entity link lands on the repository's folder, the firmware image's page has its
//! sha256 and properties, the execution link opens the build listing every artifact of the
//! camera-agent job. Screenshots go to `target/browser-screenshots/`.
//!
//! Without Chromium the test is skipped with a loud message, except under CI (`CI` set),
//! where a missing browser is a failure: `.ci/run` installs it.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt as _;
use hyper_util::client::legacy::connect::HttpConnector;
use pipeline_publisher::demo::FIRMWARE_EXAMPLE;
use pipeline_publisher::demo::camera_agent::{DEB_FILE, WHEEL_FILE};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Upper bound for the demo's jobs to end, ChromeDriver to start, and any one page step.
const DEADLINE: Duration = Duration::from_secs(120);

/// Whether this run is CI's, where every test must really run.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| !value.is_empty() && value != "false" && value != "0")
}

fn screenshot_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is `<target>/tmp`; the screenshots sit beside it in `<target>`.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target tmp dir is inside the target dir")
        .to_path_buf();
    target.join("browser-screenshots")
}

/// Reads lines until one contains `marker`; returns that line. Bounded by [`DEADLINE`].
async fn line_with<R: AsyncRead + Unpin>(lines: &mut Lines<BufReader<R>>, marker: &str) -> String {
    let mut seen = String::new();
    let found = tokio::time::timeout(DEADLINE, async {
        while let Some(line) = lines.next_line().await.expect("reads the child's output") {
            seen.push_str(&line);
            seen.push('\n');
            if line.contains(marker) {
                return Some(line);
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(line)) => line,
        Ok(None) => panic!("the output ended without `{marker}`:\n{seen}"),
        Err(_) => panic!("no `{marker}` within {DEADLINE:?}; so far:\n{seen}"),
    }
}

/// `pipeline-publisher demo --serve` with a clean environment; returns it with its stdout.
fn start_demo(home: &Path) -> (Child, Lines<BufReader<ChildStdout>>) {
    for file in ["config", "credentials"] {
        std::fs::write(home.join(file), "").unwrap();
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_pipeline-publisher"))
        .args(["demo", "--serve"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("AWS_CONFIG_FILE", home.join("config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the demo binary starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    (child, BufReader::new(stdout).lines())
}

/// ChromeDriver on a port it picks; returns it and its base URL once it says it listens.
async fn start_chromedriver() -> (Child, String) {
    let mut child = Command::new(CHROMEDRIVER)
        .arg("--port=0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
    let line = line_with(&mut lines, "started successfully on port").await;
    let port: u16 = line
        .rsplit(' ')
        .next()
        .and_then(|port| port.trim_end_matches('.').parse().ok())
        .unwrap_or_else(|| panic!("no port in `{line}`"));
    // Keep reading so ChromeDriver never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, format!("http://127.0.0.1:{port}"))
}

async fn browser(webdriver: &str, profile: &Path) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1280,1400",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(webdriver)
        .await
        .expect("ChromeDriver starts a Chromium session")
}

async fn body_text(client: &Client) -> String {
    client
        .find(Locator::Css("body"))
        .await
        .expect("the page has a body")
        .text()
        .await
        .expect("the body has text")
}

async fn screenshot(client: &Client, name: &str) -> PathBuf {
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.png"));
    let png = client
        .screenshot()
        .await
        .expect("Chromium takes a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
    std::fs::write(&path, png).unwrap();
    path
}

/// Clicks the link `css` and waits (bounded) until the browser is on a page whose path starts
/// with `path_prefix`; returns that URL.
async fn click_to(client: &Client, css: &str, path_prefix: &str) -> url::Url {
    let link = client
        .wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|error| panic!("no link {css}: {error}"));
    link.click()
        .await
        .unwrap_or_else(|error| panic!("cannot click {css}: {error}"));
    // WebDriver's click waits for the navigation it starts; the loop only covers a browser
    // that reports the new URL a moment later.
    let arrived = tokio::time::timeout(DEADLINE, async {
        loop {
            let url = client.current_url().await.expect("the browser has a URL");
            if url.path().starts_with(path_prefix) {
                return url;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    arrived.unwrap_or_else(|_| panic!("clicking {css} never reached {path_prefix}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_pages_in_chromium_from_the_pipeline_view_to_the_registry() {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|tool| !Path::new(tool).exists())
        .collect();
    if !missing.is_empty() {
        assert!(
            !in_ci(),
            "CI is set but {missing:?} is not installed; .ci/run installs Debian's chromium and \
             chromium-driver"
        );
        eprintln!(
            "\n{bar}\nSKIPPED the browser test: {missing:?} not installed.\nInstall them with \
             `apt-get install -y chromium chromium-driver` (CI installs them and never skips).\n{bar}\n",
            bar = "!".repeat(78)
        );
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let (mut demo, mut demo_out) = start_demo(home.path());
    let registry_ui = url_after(&line_with(&mut demo_out, "registry UI").await);
    let pipeline_view = url_after(&line_with(&mut demo_out, "pipeline view").await);
    let (_chromedriver, webdriver) = start_chromedriver().await;
    let profile = tempfile::tempdir().unwrap();
    let client = browser(&webdriver, profile.path()).await;

    let walk = AssertUnwindSafe(walk_through(&client, &registry_ui, &pipeline_view))
        .catch_unwind()
        .await;
    // Close the session (and Chromium with it) whatever happened.
    let _ = client.close().await;
    if let Err(panic) = walk {
        std::panic::resume_unwind(panic);
    }

    // SIGTERM stops the stand-ins and the demo ends cleanly.
    let pid = demo.id().expect("the demo is running").to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(status.success(), "kill -TERM {pid} failed");
    line_with(&mut demo_out, "Stopped the stand-ins.").await;
    let exit = tokio::time::timeout(DEADLINE, demo.wait())
        .await
        .expect("the demo exits after SIGTERM")
        .unwrap();
    assert!(exit.success(), "demo --serve exited with {exit}");
}

/// The URL at the end of a `  label  http://…` line.
fn url_after(line: &str) -> String {
    let url = line.split_whitespace().last().unwrap_or_default();
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "not a loopback URL: {line}"
    );
    url.to_owned()
}

async fn walk_through(client: &Client, registry_ui: &str, pipeline_view: &str) {
    let firmware_sha256 = hex::encode(Sha256::digest(FIRMWARE_EXAMPLE[0].1));
    let (image, image_bytes) = FIRMWARE_EXAMPLE[0];
    assert_eq!(image, "nestbox-cam-2.4.1.img");

    // The registry's home lists the repositories the demo published to.
    client.goto(registry_ui).await.unwrap();
    let home = body_text(client).await;
    for repo in [
        "firmware-releases",
        "camera-agent-npm",
        "camera-agent-debian",
        "camera-agent-pypi",
    ] {
        assert!(
            home.contains(repo),
            "the registry home lacks {repo}:\n{home}"
        );
    }

    // The pipeline view: job 1's entity link (the provider name, from entityUrlTemplate).
    client.goto(pipeline_view).await.unwrap();
    let view = body_text(client).await;
    assert!(
        view.contains("Succeeded") && view.contains("Failed"),
        "{view}"
    );
    assert!(view.contains("ConfigurationError"), "{view}");
    screenshot(client, "pipeline-view").await;
    let folder = click_to(
        client,
        "#pipeline-nestbox-firmware article.succeeded a.entity-link",
        "/ui/repos/tree/General/firmware-releases",
    )
    .await;
    assert_eq!(folder.path(), "/ui/repos/tree/General/firmware-releases");
    let listing = body_text(client).await;
    assert!(
        listing.contains("nestbox-cam/"),
        "the repository folder lists nestbox-cam/:\n{listing}"
    );
    screenshot(client, "entity-link-folder").await;

    // Down the tree to the firmware image of job 1 (revision 9c1e5a2).
    click_to(
        client,
        "a[href$='/firmware-releases/nestbox-cam']",
        "/ui/repos/tree/General/firmware-releases/nestbox-cam",
    )
    .await;
    click_to(
        client,
        "a[href$='/nestbox-cam/9c1e5a2']",
        "/ui/repos/tree/General/firmware-releases/nestbox-cam/9c1e5a2",
    )
    .await;
    let file = click_to(
        client,
        &format!("a[href$='/nestbox-cam/9c1e5a2/{image}']"),
        "/ui/repos/tree/General/firmware-releases/nestbox-cam/9c1e5a2/",
    )
    .await;
    assert!(file.path().ends_with(image), "{file}");
    let page = body_text(client).await;
    assert!(
        page.contains(&firmware_sha256),
        "the image's sha256 is shown:\n{page}"
    );
    assert!(
        page.contains(&image_bytes.len().to_string()),
        "its size in bytes:\n{page}"
    );
    for property in [
        "board",
        "rpi-zero-2w",
        "channel",
        "stable",
        "vcs.revision",
        "9c1e5a2f7b3d4e6a8c0b1d2e3f4a5b6c7d8e9f01",
        "codepipeline.pipeline",
        "nestbox-firmware",
    ] {
        assert!(
            page.contains(property),
            "the properties show {property}:\n{page}"
        );
    }
    screenshot(client, "firmware-image").await;

    // Job 3's execution link (executionUrlTemplate + externalExecutionId): its build.
    client.goto(pipeline_view).await.unwrap();
    click_to(
        client,
        "#pipeline-nestbox-camera article.succeeded a.execution-link",
        "/ui/builds/nestbox-camera/",
    )
    .await;
    let build = body_text(client).await;
    for artifact in [
        "RELEASE-NOTES.md",
        "manifest.json",
        image,
        DEB_FILE,
        "camera-agent-1.3.0.tgz",
        WHEEL_FILE,
    ] {
        assert!(
            build.contains(artifact),
            "the build lists {artifact}:\n{build}"
        );
    }
    assert!(build.contains(&firmware_sha256), "with checksums:\n{build}");
    let rows = client
        .find_all(Locator::Css("table.artifacts tbody tr"))
        .await
        .unwrap();
    assert_eq!(
        rows.len(),
        6,
        "every artifact of the camera-agent job, once:\n{build}"
    );
    // A taller window, so the screenshot shows all six artifacts below the build's facts.
    client.set_window_size(1280, 2900).await.unwrap();
    screenshot(client, "camera-agent-build").await;
}
