//! `pipeline-publisher check` and `publish PATH` as a user runs them: the real binary against
//! the CodePipeline/STS stand-in and the mock registry on 127.0.0.1.

use crate::support::{assert_snapshot, command, run, stderr, stdout};
use pipeline_publisher::demo::{DEMO_PASSWORD, DEMO_REPO, DEMO_USER, LocalEnvironment};
use pipeline_publisher::mock_registry::MockRegistryConfig;
use pipeline_publisher::sandbox::SandboxConfig;

async fn environment() -> LocalEnvironment {
    LocalEnvironment::start_with(MockRegistryConfig {
        users: vec![(DEMO_USER.to_owned(), DEMO_PASSWORD.to_owned())],
        repositories: vec![DEMO_REPO.to_owned()],
        ..MockRegistryConfig::default()
    })
    .await
    .unwrap()
}

/// The AWS settings of the worker identity, pointed at the sandbox.
fn aws_env(environment: &LocalEnvironment, region: &str) -> Vec<(String, String)> {
    let (access_key_id, secret) = environment.sandbox.sandbox.worker_credentials();
    vec![
        ("AWS_REGION".into(), region.into()),
        ("AWS_ACCESS_KEY_ID".into(), access_key_id),
        ("AWS_SECRET_ACCESS_KEY".into(), secret),
        (
            "AWS_ENDPOINT_URL".into(),
            environment.sandbox.endpoint_url.clone(),
        ),
    ]
}

fn as_refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Replaces the run-specific parts (ports, keys) so outputs can be snapshotted.
fn normalise(text: &str, environment: &LocalEnvironment) -> String {
    let (access_key_id, _) = environment.sandbox.sandbox.worker_credentials();
    text.replace(&environment.registry.base_url, "http://REGISTRY")
        .replace(&environment.sandbox.endpoint_url, "http://SANDBOX")
        .replace(&access_key_id, "AKIA-WORKER")
}

#[tokio::test]
async fn check_passes_on_a_good_set_up_and_never_polls_for_jobs() {
    let environment = environment().await;
    let home = tempfile::tempdir().unwrap();
    let mut env = aws_env(&environment, &SandboxConfig::default().region);
    env.push(("PIPELINE_PUBLISHER_PASSWORD".into(), DEMO_PASSWORD.into()));
    let output = run(
        command(home.path(), &as_refs(&env)),
        &[
            "check",
            "--artifactory-host",
            &environment.registry.base_url,
            "--repo-key",
            DEMO_REPO,
            "--user-name",
            DEMO_USER,
        ],
    )
    .await;
    let text = normalise(&stdout(&output), &environment);
    assert!(output.status.success(), "{text}\n{}", stderr(&output));
    assert_snapshot("check_passes", &text);
    let operations: Vec<String> = environment
        .sandbox
        .sandbox
        .calls()
        .iter()
        .filter_map(|call| match call {
            pipeline_publisher::sandbox::RecordedCall::JobApi { operation, .. } => {
                Some(operation.clone())
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        operations,
        ["ListActionTypes"],
        "check must never poll for jobs"
    );
    let tokens = environment.registry.registry.tokens();
    assert_eq!(tokens.len(), 1);
    assert!(tokens[0].revoked, "the check's token is revoked");
}

#[tokio::test]
async fn check_says_what_is_wrong_and_how_to_fix_it() {
    let environment = environment().await;
    let home = tempfile::tempdir().unwrap();
    let mut env = aws_env(&environment, &SandboxConfig::default().region);
    env.push((
        "PIPELINE_PUBLISHER_PASSWORD".into(),
        "not-the-password".into(),
    ));
    let output = run(
        command(home.path(), &as_refs(&env)),
        &[
            "check",
            "--action-version",
            "7",
            "--artifactory-host",
            &environment.registry.base_url,
            "--repo-key",
            DEMO_REPO,
            "--user-name",
            DEMO_USER,
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    let text = normalise(&stdout(&output), &environment);
    assert_snapshot("check_failures", &text);
    assert!(!text.contains("not-the-password") && !stderr(&output).contains("not-the-password"));

    // A region other than the endpoint's: the action-type check says so.
    let env = aws_env(&environment, "us-east-2");
    let output = run(command(home.path(), &as_refs(&env)), &["check"]).await;
    assert_eq!(output.status.code(), Some(1));
    assert_snapshot(
        "check_region_mismatch",
        &normalise(&stdout(&output), &environment),
    );
}

#[tokio::test]
async fn publish_dry_run_prints_the_plan_and_contacts_nothing() {
    let environment = environment().await;
    let home = tempfile::tempdir().unwrap();
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/firmware/build-output"
    );
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/firmware/action-config.json"
    );
    let output = run(
        command(home.path(), &[]),
        &[
            "publish",
            example,
            "--config",
            config,
            "--dry-run",
            "--revision",
            "0123456789abcdef",
            "--execution-id",
            "exec-1",
        ],
    )
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_snapshot("publish_dry_run", &stdout(&output));
    assert!(environment.registry.registry.requests().is_empty());
}

#[tokio::test]
async fn publish_uploads_a_directory_and_reports_in_jfrog_cli_json() {
    let environment = environment().await;
    let home = tempfile::tempdir().unwrap();
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/firmware/build-output"
    );
    let password = [("PIPELINE_PUBLISHER_PASSWORD", DEMO_PASSWORD)];
    let args = [
        "publish",
        example,
        "--artifactory-host",
        &environment.registry.base_url,
        "--repo-key",
        DEMO_REPO,
        "--user-name",
        DEMO_USER,
        "--target-path",
        "nestbox-cam/2.4.1",
        "--output",
        "json",
    ];
    let output = run(command(home.path(), &password), &args).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["status"], "success");
    assert_eq!(summary["totals"]["success"], 3);
    assert_eq!(summary["totals"]["failure"], 0);
    let stored = environment.registry.registry.artifacts(DEMO_REPO);
    assert_eq!(stored.len(), 3);
    let first = &summary["files"][0];
    assert_eq!(first["source"], "RELEASE-NOTES.md");
    assert_eq!(
        first["target"],
        format!(
            "{}/artifactory/{DEMO_REPO}/nestbox-cam/2.4.1/RELEASE-NOTES.md",
            environment.registry.base_url
        )
    );
    assert!(
        stored
            .iter()
            .any(|artifact| artifact.sha256 == first["sha256"])
    );

    // Again: everything is already there, which is a success too.
    let output = run(command(home.path(), &password), &args[..args.len() - 2]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_snapshot(
        "publish_again_text",
        &stdout(&output).replace(&environment.registry.base_url, "http://REGISTRY"),
    );
}

#[tokio::test]
async fn publish_exit_codes_tell_failure_from_nothing_to_publish() {
    let environment = environment().await;
    let home = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/firmware/build-output"
    );
    let registry = [
        "--artifactory-host",
        environment.registry.base_url.as_str(),
        "--repo-key",
        DEMO_REPO,
        "--user-name",
        DEMO_USER,
    ];
    let password = [("PIPELINE_PUBLISHER_PASSWORD", "wrong-password-123")];
    let mut args = vec!["publish", empty.path().to_str().unwrap()];
    args.extend(registry);
    let output = run(command(home.path(), &password), &args).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));

    let mut args = vec!["publish", example];
    args.extend(registry);
    let output = run(command(home.path(), &password), &args).await;
    assert_eq!(output.status.code(), Some(1));
    let errors = stderr(&output).replace(&environment.registry.base_url, "http://REGISTRY");
    assert_snapshot("publish_wrong_password", &errors);
    assert!(
        !errors.contains("wrong-password-123") && !stdout(&output).contains("wrong-password-123")
    );

    // Without a password and without a terminal to ask on: a clear error, nothing sent.
    let output = run(command(home.path(), &[]), &args).await;
    assert_eq!(output.status.code(), Some(1));
    assert_snapshot("publish_no_password", &stderr(&output));
}

#[tokio::test]
async fn publish_path_publishes_build_info_like_a_job() {
    let environment = environment().await;
    let home = tempfile::tempdir().unwrap();
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/firmware/build-output"
    );
    let password = [("PIPELINE_PUBLISHER_PASSWORD", DEMO_PASSWORD)];
    let registry = [
        "--artifactory-host",
        environment.registry.base_url.as_str(),
        "--repo-key",
        DEMO_REPO,
        "--user-name",
        DEMO_USER,
    ];

    // Defaults: the pipeline name and the execution id, as a job has them.
    let mut args = vec![
        "publish",
        example,
        "--target-path",
        "nestbox-cam/2.4.2",
        "--pipeline-name",
        "nestbox-firmware",
        "--execution-id",
        "local-exec-7",
    ];
    args.extend(registry);
    let output = run(command(home.path(), &password), &args).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let build = environment
        .registry
        .registry
        .build_info("nestbox-firmware", "local-exec-7")
        .expect("publish PATH published build info");
    let artifacts = build["modules"][0]["artifacts"].as_array().unwrap();
    assert_eq!(artifacts.len(), 3, "{build:#}");
    let stored = environment.registry.registry.artifacts(DEMO_REPO);
    for artifact in artifacts {
        assert!(
            stored.iter().any(|file| file.sha256 == artifact["sha256"]),
            "{artifact} is not what was deployed"
        );
    }

    // --build-name / --build-number name the build and the files' build properties alike.
    let mut args = vec![
        "publish",
        example,
        "--target-path",
        "nestbox-cam/2.4.3",
        "--build-name",
        "nestbox-cam-release",
        "--build-number",
        "243",
    ];
    args.extend(registry);
    let output = run(command(home.path(), &password), &args).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        environment
            .registry
            .registry
            .build_info("nestbox-cam-release", "243")
            .is_some()
    );
    let released = environment
        .registry
        .registry
        .artifacts(DEMO_REPO)
        .into_iter()
        .filter(|file| file.path.starts_with("nestbox-cam/2.4.3/"))
        .collect::<Vec<_>>();
    assert_eq!(released.len(), 3);
    for file in released {
        assert_eq!(
            file.properties.get("build.name").map(Vec::as_slice),
            Some(&["nestbox-cam-release".to_owned()][..]),
            "{}",
            file.path
        );
        assert_eq!(
            file.properties.get("build.number").map(Vec::as_slice),
            Some(&["243".to_owned()][..])
        );
    }
}
