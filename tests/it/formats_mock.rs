//! Debian packages, auto-detection, traceability properties and the file spec's refusals,
//! through the real worker loop against the CodePipeline/S3 stand-in and the mock registry.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use pipeline_publisher::demo::{DEMO_REPO, FIRMWARE_EXAMPLE, LocalEnvironment, camera_agent};
use pipeline_publisher::pipeline::properties;
use pipeline_publisher::publish::PublisherSettings;
use pipeline_publisher::sandbox::JobResult;
use sha2::{Digest, Sha256};

const REVISION: &str = "9c1e5a2f7b3d4e6a8c0b1d2e3f4a5b6c7d8e9f01";

async fn run_job(
    environment: &LocalEnvironment,
    configuration: BTreeMap<String, String>,
    entries: &[(String, Vec<u8>)],
) -> JobResult {
    let borrowed: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|(path, bytes)| (path.as_str(), bytes.as_slice()))
        .collect();
    let artifact = environment
        .upload_artifact("BuildOutput", Some(REVISION), &borrowed)
        .unwrap();
    let job_id = environment.queue_job("nestbox-firmware", configuration, vec![artifact]);
    let publisher = environment.publisher(PublisherSettings::default()).unwrap();
    environment.run_worker(publisher, 1).await.unwrap();
    let record = environment.sandbox.sandbox.job(&job_id).unwrap();
    assert_eq!(record.results.len(), 1, "{:?}", record.results);
    record.results[0].clone()
}

fn configuration(environment: &LocalEnvironment, kind: &str) -> BTreeMap<String, String> {
    let mut configuration = environment.firmware_configuration();
    configuration.insert(properties::TYPE_OF_ARTIFACT.into(), kind.into());
    configuration.insert(
        properties::PROPERTIES.into(),
        "deb.distribution=bookworm;team=cameras".into(),
    );
    configuration
}

fn firmware() -> Vec<(String, Vec<u8>)> {
    FIRMWARE_EXAMPLE
        .iter()
        .map(|(name, bytes)| ((*name).to_owned(), bytes.to_vec()))
        .collect()
}

/// Builds the example package with the real `dpkg-deb` (xz-compressed control member).
fn dpkg_deb_build(work: &Path) -> Vec<u8> {
    let root = work.join("nestbox-camera-agent");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/camera-agent/debian");
    for relative in ["DEBIAN/control", "usr/bin/nestbox-camera-agent"] {
        let target = root.join(relative);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(source.join(relative), &target).unwrap();
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for dir in ["", "DEBIAN", "usr", "usr/bin"] {
            std::fs::set_permissions(root.join(dir), std::fs::Permissions::from_mode(0o755))
                .unwrap();
        }
    }
    let deb = work.join(camera_agent::DEB_FILE);
    let status = Command::new("dpkg-deb")
        .args(["--build", "--root-owner-group"])
        .arg(&root)
        .arg(&deb)
        .output()
        .expect("dpkg-deb is installed");
    assert!(status.status.success(), "{status:?}");
    std::fs::read(deb).unwrap()
}

fn failure(result: &JobResult) -> (&str, &str) {
    match result {
        JobResult::Failure {
            failure_type,
            message,
            ..
        } => (failure_type, message),
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn auto_publishes_a_dpkg_deb_package_to_the_pool_and_the_rest_as_generic_files() {
    let environment = LocalEnvironment::start().await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let deb = dpkg_deb_build(work.path());
    let mut entries = firmware();
    entries.push((format!("agent/{}", camera_agent::DEB_FILE), deb.clone()));
    let result = run_job(&environment, configuration(&environment, "auto"), &entries).await;
    let JobResult::Success {
        output_variables, ..
    } = &result
    else {
        panic!("{result:?}");
    };
    assert_eq!(output_variables["DebianPackage"], "nestbox-camera-agent");
    assert_eq!(output_variables["DebianVersion"], "1.3.0-1");

    let registry = &environment.registry.registry;
    let pool = format!(
        "pool/main/n/nestbox-camera-agent/{}",
        camera_agent::DEB_FILE
    );
    let stored = registry
        .artifact(DEMO_REPO, &pool)
        .expect("the .deb is in the pool");
    assert_eq!(stored.sha256, hex::encode(Sha256::digest(&deb)));
    let property = |key: &str| stored.properties.get(key).cloned().unwrap_or_default();
    assert_eq!(property("deb.distribution"), ["bookworm"]);
    assert_eq!(property("deb.component"), ["main"]);
    assert_eq!(property("deb.architecture"), ["arm64"]);
    assert_eq!(property("build.name"), ["nestbox-firmware"]);
    assert_eq!(property("vcs.revision"), [REVISION]);
    assert_eq!(property("team"), ["cameras"]);
    assert_eq!(property("build.number").len(), 1);

    // The firmware stays generic, under TargetPath, with the same traceability.
    let image = registry
        .artifact(DEMO_REPO, "nestbox-cam/9c1e5a2/nestbox-cam-2.4.1.img")
        .expect("the image is generic");
    assert_eq!(image.properties["build.name"], ["nestbox-firmware"]);
    assert_eq!(image.properties["build.number"], property("build.number"));
    assert!(!image.properties.contains_key("deb.architecture"));

    // The downloaded package is still a valid .deb.
    let check = Command::new("dpkg-deb")
        .arg("--info")
        .arg(&stored.content_path)
        .output()
        .unwrap();
    assert!(check.status.success());
    assert!(String::from_utf8_lossy(&check.stdout).contains("Package: nestbox-camera-agent"));

    // Republishing the same package is idempotent.
    let again = run_job(&environment, configuration(&environment, "auto"), &entries).await;
    let JobResult::Success { summary, .. } = &again else {
        panic!("{again:?}")
    };
    assert!(
        summary.as_deref().unwrap().contains("4 already published"),
        "{summary:?}"
    );
}

#[tokio::test]
async fn an_unreadable_deb_is_a_configuration_error_naming_the_file() {
    let environment = LocalEnvironment::start().await.unwrap();
    let entries = vec![(
        "agent/broken_1.0_arm64.deb".to_owned(),
        b"!<arch>\nnot really".to_vec(),
    )];
    let result = run_job(
        &environment,
        configuration(&environment, "debian"),
        &entries,
    )
    .await;
    let (failure_type, message) = failure(&result);
    assert_eq!(failure_type, "ConfigurationError");
    assert!(
        message.contains("`agent/broken_1.0_arm64.deb`"),
        "{message}"
    );
    assert!(message.contains("control file cannot be read"), "{message}");
    assert!(
        environment.registry.registry.tokens().is_empty(),
        "nothing was attempted"
    );
}

#[tokio::test]
async fn an_explicit_type_refuses_files_of_another_kind() {
    let environment = LocalEnvironment::start().await.unwrap();
    let result = run_job(
        &environment,
        configuration(&environment, "pypi"),
        &firmware(),
    )
    .await;
    let (failure_type, message) = failure(&result);
    assert_eq!(failure_type, "ConfigurationError");
    assert!(message.contains("TypeOfArtifact is pypi"), "{message}");
}

#[tokio::test]
async fn file_spec_mistakes_are_configuration_errors_that_say_what_to_fix() {
    let environment = LocalEnvironment::start().await.unwrap();
    let cases: [(&[u8], &str); 4] = [
        (
            br#"{"files":[{"pattern":"*.img","tagret":"firmware-releases/x/"}]}"#,
            "unknown field `tagret`",
        ),
        (
            br#"{"files":[{"pattern":"../../etc/*"}]}"#,
            "would reach outside the artifact",
        ),
        (
            br#"{"files":[{"pattern":"*.iso"}]}"#,
            "pattern `*.iso` matches no file",
        ),
        (
            br#"{"files":[{"pattern":"*.img","target":"firmware-releases/../../x/"}]}"#,
            "must stay inside the repository",
        ),
    ];
    for (spec, expected) in cases {
        let mut entries = firmware();
        entries.push(("publish-spec.json".into(), spec.to_vec()));
        let result = run_job(&environment, configuration(&environment, "auto"), &entries).await;
        let (failure_type, message) = failure(&result);
        assert_eq!(failure_type, "ConfigurationError", "{message}");
        assert!(message.contains(expected), "{expected}: {message}");
        assert!(
            message.contains("publish-spec.json") || message.contains("nestbox-cam-2.4.1.img"),
            "{message}"
        );
    }
    assert!(
        environment
            .registry
            .registry
            .artifacts(DEMO_REPO)
            .is_empty()
    );
}

#[tokio::test]
async fn a_file_spec_decides_targets_properties_and_what_is_left_out() {
    let environment = LocalEnvironment::start().await.unwrap();
    let mut entries = firmware();
    entries.push((
        "ci/spec.json".into(),
        br#"{"settings":{"buildName":"nestbox-fw"},"files":[{"pattern":"nestbox-cam-(*).img",
            "target":"firmware-releases/images/{1}/","props":"channel=beta","flat":true}]}"#
            .to_vec(),
    ));
    let mut configuration = configuration(&environment, "generic");
    configuration.insert(properties::PUBLISH_SPEC.into(), "ci/spec.json".into());
    let result = run_job(&environment, configuration, &entries).await;
    let JobResult::Success {
        output_variables, ..
    } = &result
    else {
        panic!("{result:?}")
    };
    assert_eq!(output_variables["PublishedCount"], "1");
    assert_eq!(output_variables["BuildName"], "nestbox-fw");
    let stored = environment.registry.registry.artifacts(DEMO_REPO);
    assert_eq!(stored.len(), 1, "only what the spec selects: {stored:?}");
    assert_eq!(stored[0].path, "images/2.4.1/nestbox-cam-2.4.1.img");
    assert_eq!(stored[0].properties["channel"], ["beta"]);
    assert_eq!(stored[0].properties["build.name"], ["nestbox-fw"]);
}

#[tokio::test]
async fn a_prerelease_npm_package_without_a_dist_tag_is_a_configuration_error() {
    let environment = LocalEnvironment::start().await.unwrap();
    let entries = vec![
        (
            "agent/package.json".to_owned(),
            br#"{"name":"@nestbox/camera-agent","version":"1.4.0-beta.1"}"#.to_vec(),
        ),
        (
            "agent/index.js".to_owned(),
            b"module.exports = {};".to_vec(),
        ),
    ];
    let result = run_job(&environment, configuration(&environment, "npm"), &entries).await;
    let (failure_type, message) = failure(&result);
    assert_eq!(failure_type, "ConfigurationError");
    assert!(
        message.contains("1.4.0-beta.1 is a prerelease"),
        "{message}"
    );
    assert!(message.contains("npmTag"), "{message}");
}
