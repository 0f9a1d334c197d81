//! The passwordless modes through the real binary, configured only by the environment: every
//! AWS client honours its own `AWS_ENDPOINT_URL_<SERVICE>` (no `AWS_ENDPOINT_URL`), the worker
//! serves versions 1 and 2 by default, and `check` proves the mode end to end.

use std::time::Duration;

use pipeline_publisher::demo::{DEMO_PASSWORD, DEMO_REPO, DEMO_USER, LocalEnvironment};
use pipeline_publisher::sandbox::JobResult;

use crate::passwordless::{
    HostileHost, artifact, environment, map_worker_role, only_result, queue, v2_configuration,
};
use crate::support::{self, command, run, stdout};

/// Each service's own endpoint variable, all pointing at the sandbox.
fn per_service_endpoints(environment: &LocalEnvironment) -> Vec<(&'static str, String)> {
    let url = environment.sandbox.endpoint_url.clone();
    [
        "AWS_ENDPOINT_URL_CODEPIPELINE",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ENDPOINT_URL_STS",
        "AWS_ENDPOINT_URL_SECRETS_MANAGER",
        "AWS_ENDPOINT_URL_SSM",
    ]
    .into_iter()
    .map(|name| (name, url.clone()))
    .collect()
}

fn login() -> String {
    serde_json::json!({ "username": DEMO_USER, "password": DEMO_PASSWORD }).to_string()
}

#[tokio::test]
async fn the_worker_binary_publishes_passwordless_jobs_beside_a_version_1_job() {
    let environment = environment().await;
    let host = environment.registry.base_url.to_string();
    map_worker_role(&environment, DEMO_USER).await;
    environment
        .sandbox
        .sandbox
        .put_secret("pipeline-publisher/acme", &login());
    environment
        .sandbox
        .sandbox
        .put_parameter("/pipeline-publisher/acme", &login(), true);
    let jobs = [
        queue(
            &environment,
            "2",
            v2_configuration(&host, "aws-iam"),
            vec![artifact(&environment, "iam.img")],
        ),
        queue(
            &environment,
            "2",
            v2_configuration(&host, "secretsmanager:pipeline-publisher/acme"),
            vec![artifact(&environment, "secret.img")],
        ),
        queue(
            &environment,
            "2",
            v2_configuration(&host, "ssm:/pipeline-publisher/acme"),
            vec![artifact(&environment, "parameter.img")],
        ),
        queue(
            &environment,
            "1",
            environment.firmware_configuration(),
            vec![artifact(&environment, "v1.img")],
        ),
    ];
    let home = support::aws_home();
    let endpoints = per_service_endpoints(&environment);
    let endpoints: Vec<(&str, &str)> = endpoints.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut worker =
        support::worker_command(&environment.sandbox.sandbox, home.path(), "v2", &endpoints);
    worker
        .args(["--max-jobs", "4", "--poll-min-interval", "50ms"])
        .env("PIPELINE_PUBLISHER_ALLOWED_REGISTRIES", &host);
    let output = tokio::time::timeout(Duration::from_secs(60), worker.output())
        .await
        .expect("the worker exits after --max-jobs 4")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "worker failed:\n{stderr}");
    for job in &jobs {
        let result = only_result(&environment, job);
        assert!(
            matches!(result, JobResult::Success { .. }),
            "{result:?}\n{stderr}"
        );
    }
    assert_eq!(environment.registry.registry.artifacts(DEMO_REPO).len(), 4);
    assert!(
        !stderr.contains(DEMO_PASSWORD),
        "the password stays out of the logs"
    );
    for token in environment.registry.registry.issued_token_values() {
        assert!(!stderr.contains(&token), "a minted token reached the logs");
    }
}

#[tokio::test]
async fn check_names_the_mode_and_proves_it_without_printing_secrets() {
    let environment = environment().await;
    let host = environment.registry.base_url.to_string();
    map_worker_role(&environment, DEMO_USER).await;
    environment
        .sandbox
        .sandbox
        .put_secret("pipeline-publisher/acme", &login());
    let (access_key_id, secret) = environment.sandbox.sandbox.worker_credentials();
    let mut env = vec![
        ("AWS_REGION", "eu-west-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", access_key_id),
        ("AWS_SECRET_ACCESS_KEY", secret),
        ("PIPELINE_PUBLISHER_ALLOWED_REGISTRIES", host.clone()),
    ];
    env.extend(per_service_endpoints(&environment));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let home = support::aws_home();
    let check = |authentication: &'static str| {
        let mut command = command(home.path(), &env);
        command.args([
            "check",
            "--artifactory-host",
            &host,
            "--authentication",
            authentication,
        ]);
        command
    };

    let output = run(check("aws-iam"), &[]).await;
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("✔ authentication: aws-iam"), "{text}");
    assert!(
        text.contains(&format!("for the registry user {DEMO_USER}")),
        "says which user the role maps to: {text}"
    );
    assert!(
        text.contains(&environment.sandbox.sandbox.worker_role_arn()),
        "{text}"
    );

    let output = run(check("secretsmanager:pipeline-publisher/acme"), &[]).await;
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("the secret is readable"), "{text}");
    assert!(!text.contains(DEMO_PASSWORD), "the secret is never printed");
    assert!(!support::stderr(&output).contains(DEMO_PASSWORD));

    // A registry the fleet does not trust is refused before check contacts it at all.
    let hostile = HostileHost::start().await;
    for authentication in ["aws-iam", "secretsmanager:pipeline-publisher/acme"] {
        let mut command = command(home.path(), &env);
        command.args([
            "check",
            "--artifactory-host",
            &hostile.url,
            "--authentication",
            authentication,
        ]);
        let output = run(command, &[]).await;
        let text = stdout(&output);
        assert_ne!(output.status.code(), Some(0), "{text}");
        assert!(
            text.contains("--allowed-registries"),
            "names the flag: {text}"
        );
        assert!(
            text.contains(hostile.url.as_str()),
            "names the host: {text}"
        );
    }
    assert_eq!(
        hostile.connections(),
        0,
        "the untrusted host was not contacted"
    );
}
