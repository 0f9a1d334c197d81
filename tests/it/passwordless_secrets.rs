//! Version 2's secret references (`secretsmanager:`, `ssm:`) and OIDC exchange through the real
//! worker loop: each publishes, and each way of going wrong is a typed failure that publishes
//! nothing and never echoes a secret.

use std::time::Duration;

use pipeline_publisher::demo::{DEMO_PASSWORD, DEMO_REPO, DEMO_USER, LocalEnvironment};
use pipeline_publisher::sandbox::JobResult;

use crate::passwordless::{
    ADMIN, allowing, artifact, environment, failure, map_worker_role, only_result, queue,
    v2_configuration,
};

/// A registry login as the worker expects it in a secret.
fn login_json(registry: Option<&str>) -> String {
    let mut login = serde_json::json!({ "username": DEMO_USER, "password": DEMO_PASSWORD });
    if let Some(registry) = registry {
        login["registry"] = registry.into();
    }
    login.to_string()
}

/// Configures the registry's OIDC provider `aws-fleet` for the sandbox's issuer, mapping the
/// worker's role to the publishing user.
pub(crate) async fn configure_oidc(environment: &LocalEnvironment, audience: &str) {
    let client = reqwest::Client::new();
    let base = &environment.registry.base_url;
    let response = client
        .post(format!("{base}/access/api/v1/oidc"))
        .basic_auth(ADMIN.0, Some(ADMIN.1))
        .json(&serde_json::json!({
            "name": "aws-fleet",
            "issuer_url": environment.sandbox.sandbox.oidc_issuer_url(),
            "audience": audience,
            "provider_type": "Generic",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        201,
        "{}",
        response.text().await.unwrap()
    );
    let response = client
        .post(format!(
            "{base}/access/api/v1/oidc/aws-fleet/identity_mappings"
        ))
        .basic_auth(ADMIN.0, Some(ADMIN.1))
        .json(&serde_json::json!({
            "name": "fleet-role",
            "priority": 1,
            "claims": { "sub": environment.sandbox.sandbox.worker_role_arn() },
            "token_spec": {
                "username": DEMO_USER,
                "scope": "applied-permissions/user",
                "expires_in": 900,
            },
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        201,
        "{}",
        response.text().await.unwrap()
    );
}

fn published(environment: &LocalEnvironment, name: &str) -> bool {
    environment
        .registry
        .registry
        .artifact(DEMO_REPO, &format!("nestbox-cam/5d0c9a2/{name}"))
        .is_some()
}

#[tokio::test]
async fn every_version_2_mode_and_a_version_1_job_publish_in_one_worker_run() {
    let environment = environment().await;
    let host = environment.registry.base_url.to_string();
    map_worker_role(&environment, DEMO_USER).await;
    configure_oidc(&environment, host.trim_end_matches('/')).await;
    let secret_arn = environment
        .sandbox
        .sandbox
        .put_secret("pipeline-publisher/acme", &login_json(Some(&host)));
    environment
        .sandbox
        .sandbox
        .put_parameter("/pipeline-publisher/acme", &login_json(None), true);
    let mut password = v2_configuration(&host, "password");
    password.insert("UserName".into(), DEMO_USER.into());
    password.insert("Password".into(), DEMO_PASSWORD.into());
    let jobs = [
        ("password.img", "2", password),
        ("iam.img", "2", v2_configuration(&host, "aws-iam")),
        ("oidc.img", "2", v2_configuration(&host, "oidc:aws-fleet")),
        (
            "secret.img",
            "2",
            v2_configuration(&host, &format!("secretsmanager:{secret_arn}")),
        ),
        (
            "parameter.img",
            "2",
            v2_configuration(&host, "ssm:/pipeline-publisher/acme"),
        ),
        ("v1.img", "1", environment.firmware_configuration()),
    ];
    let ids: Vec<String> = jobs
        .iter()
        .map(|(name, version, configuration)| {
            queue(
                &environment,
                version,
                configuration.clone(),
                vec![artifact(&environment, name)],
            )
        })
        .collect();
    let publisher = environment.publisher(allowing(&[host.as_str()])).unwrap();
    environment
        .run_worker(publisher, ids.len() as u64)
        .await
        .unwrap();

    for ((name, _, _), id) in jobs.iter().zip(&ids) {
        let result = only_result(&environment, id);
        assert!(
            matches!(result, JobResult::Success { .. }),
            "{name}: {result:?}"
        );
        assert!(published(&environment, name), "{name} was published");
    }
    let tokens = environment.registry.registry.tokens();
    assert_eq!(tokens.len(), jobs.len(), "one token per job: {tokens:?}");
    assert!(tokens.iter().all(|token| token.revoked), "{tokens:?}");
    assert!(tokens.iter().all(|token| token.username == DEMO_USER));
}

#[tokio::test]
async fn bad_secrets_fail_typed_without_echoing_them_and_publish_nothing() {
    let environment = environment().await;
    let host = environment.registry.base_url.to_string();
    let sandbox = &environment.sandbox.sandbox;
    sandbox.put_secret("pipeline-publisher/malformed", "hunter2-not-json");
    sandbox.put_secret(
        "pipeline-publisher/other-registry",
        &login_json(Some("https://evil.example.com")),
    );
    sandbox.put_secret("pipeline-publisher/denied", &login_json(None));
    sandbox.deny_worker("pipeline-publisher/denied");
    sandbox.put_parameter(
        "/pipeline-publisher/malformed",
        "{\"username\": \"hunter2\"}",
        true,
    );
    let cases = [
        (
            "secretsmanager:pipeline-publisher/missing",
            "ConfigurationError",
            "does not exist",
        ),
        (
            "secretsmanager:pipeline-publisher/malformed",
            "ConfigurationError",
            "is not a registry login",
        ),
        (
            "secretsmanager:pipeline-publisher/other-registry",
            "ConfigurationError",
            "https://evil.example.com",
        ),
        (
            "secretsmanager:pipeline-publisher/denied",
            "PermissionError",
            "secretsmanager:GetSecretValue",
        ),
        (
            "ssm:/pipeline-publisher/missing",
            "ConfigurationError",
            "does not exist",
        ),
        (
            "ssm:/pipeline-publisher/malformed",
            "ConfigurationError",
            "its `password` is missing",
        ),
    ];
    let ids: Vec<String> = cases
        .iter()
        .enumerate()
        .map(|(index, (mode, _, _))| {
            queue(
                &environment,
                "2",
                v2_configuration(&host, mode),
                vec![artifact(&environment, &format!("{index}.img"))],
            )
        })
        .collect();
    let publisher = environment.publisher(allowing(&[host.as_str()])).unwrap();
    environment
        .run_worker(publisher, ids.len() as u64)
        .await
        .unwrap();
    for ((mode, failure_type, phrase), id) in cases.iter().zip(&ids) {
        let (got, message) = failure(&only_result(&environment, id));
        assert_eq!(&got, failure_type, "{mode}: {message}");
        assert!(message.contains(phrase), "{mode}: {message}");
        assert!(
            !message.contains("hunter2"),
            "{mode} echoed the secret: {message}"
        );
        assert!(!message.contains(DEMO_PASSWORD), "{mode}: {message}");
    }
    // The denied secret's failure names its ARN (AWS's words) and the missing action.
    let (_, denied) = failure(&only_result(&environment, &ids[3]));
    assert!(denied.contains("arn:aws:secretsmanager:"), "{denied}");
    assert!(
        environment
            .registry
            .registry
            .artifacts(DEMO_REPO)
            .is_empty()
    );
    assert!(
        environment.registry.registry.tokens().is_empty(),
        "no login reached the registry"
    );
}

#[tokio::test]
async fn an_expired_or_rejected_web_identity_token_is_a_permission_error() {
    let environment = environment().await;
    let host = environment.registry.base_url.to_string();
    // The provider expects another audience: the registry rejects the worker's token.
    configure_oidc(&environment, "https://registry.other.example").await;
    let rejected = queue(
        &environment,
        "2",
        v2_configuration(&host, "oidc:aws-fleet"),
        vec![artifact(&environment, "rejected.img")],
    );
    let unknown_provider = queue(
        &environment,
        "2",
        v2_configuration(&host, "oidc:nobody"),
        vec![artifact(&environment, "unknown.img")],
    );
    let publisher = environment.publisher(allowing(&[host.as_str()])).unwrap();
    environment.run_worker(publisher, 2).await.unwrap();
    let (failure_type, message) = failure(&only_result(&environment, &rejected));
    assert_eq!(failure_type, "PermissionError", "{message}");
    assert!(
        message.contains("rejected the worker's web identity token"),
        "{message}"
    );
    assert!(message.contains("audience"), "{message}");
    let (failure_type, message) = failure(&only_result(&environment, &unknown_provider));
    assert_eq!(failure_type, "ConfigurationError", "{message}");
    assert!(message.contains("`nobody`"), "{message}");

    // A registry whose clock is past the token's expiry refuses it as expired.
    let environment = crate::passwordless::environment().await;
    let host = environment.registry.base_url.to_string();
    configure_oidc(&environment, host.trim_end_matches('/')).await;
    environment
        .registry
        .registry
        .advance_clock(Duration::from_secs(3600));
    let expired = queue(
        &environment,
        "2",
        v2_configuration(&host, "oidc:aws-fleet"),
        vec![artifact(&environment, "expired.img")],
    );
    let publisher = environment.publisher(allowing(&[host.as_str()])).unwrap();
    environment.run_worker(publisher, 1).await.unwrap();
    let (failure_type, message) = failure(&only_result(&environment, &expired));
    assert_eq!(failure_type, "PermissionError", "{message}");
    assert!(message.contains("expired"), "{message}");
    assert!(
        environment
            .registry
            .registry
            .artifacts(DEMO_REPO)
            .is_empty()
    );
    // No web identity token reached a message.
    for token in environment.sandbox.sandbox.issued_web_identity_tokens() {
        assert!(!message.contains(&token));
    }
}
