//! Secrets Manager and SSM stand-in tests: JSON 1.1 requests signed by hand (`aws-sigv4`), as
//! the SDK clients send them.

use std::time::SystemTime;

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use serde_json::{Value, json};

use super::*;

/// Sends a signed JSON 1.1 call; (status, parsed body).
async fn call(
    running: &RunningSandbox,
    credentials: (&str, &str, Option<&str>),
    service: &str,
    target: &str,
    body: Value,
) -> (u16, Value) {
    let (key, secret, token) = credentials;
    let body = body.to_string();
    let identity =
        aws_credential_types::Credentials::new(key, secret, token.map(str::to_owned), None, "t")
            .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("eu-west-1")
        .name(service)
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let url = format!("{}/", running.endpoint_url);
    let headers = [
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-target", target),
    ];
    let request = SignableRequest::new(
        "POST",
        url.clone(),
        headers.iter().copied(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .unwrap();
    let (instructions, _) = sign(request, &params).unwrap().into_parts();
    let mut request = reqwest::Client::new().post(url).body(body);
    for (name, value) in headers.iter().copied().chain(instructions.headers()) {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get_secret(
    running: &RunningSandbox,
    credentials: (&str, &str, Option<&str>),
    id: &str,
) -> (u16, Value) {
    call(
        running,
        credentials,
        "secretsmanager",
        "secretsmanager.GetSecretValue",
        json!({ "SecretId": id }),
    )
    .await
}

async fn get_parameter(
    running: &RunningSandbox,
    credentials: (&str, &str, Option<&str>),
    name: &str,
    decrypt: bool,
) -> (u16, Value) {
    call(
        running,
        credentials,
        "ssm",
        "AmazonSSM.GetParameter",
        json!({ "Name": name, "WithDecryption": decrypt }),
    )
    .await
}

const CONTENT: &str = r#"{"username":"ci","password":"s3cret"}"#;

#[tokio::test]
async fn the_worker_reads_its_secrets_by_name_and_arn() {
    let running = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let sandbox = &running.sandbox;
    let arn = sandbox.put_secret("pipeline-publisher/registry", CONTENT);
    assert!(
        arn.starts_with(
            "arn:aws:secretsmanager:eu-west-1:111122223333:secret:pipeline-publisher/registry-"
        ),
        "{arn}"
    );
    let (key, secret) = sandbox.worker_credentials();
    for id in ["pipeline-publisher/registry", arn.as_str()] {
        let (status, body) = get_secret(&running, (&key, &secret, None), id).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["SecretString"], CONTENT);
        assert_eq!(body["ARN"], arn);
        assert_eq!(body["Name"], "pipeline-publisher/registry");
        assert_eq!(body["VersionStages"], json!(["AWSCURRENT"]));
        assert!(body["CreatedDate"].is_f64());
    }
}

#[tokio::test]
async fn secrets_outside_the_policy_or_denied_are_access_denied_with_the_arn_and_action() {
    let running = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let sandbox = &running.sandbox;
    let (key, secret) = sandbox.worker_credentials();
    let other = sandbox.put_secret("team-x/registry", CONTENT);
    let (status, body) = get_secret(&running, (&key, &secret, None), "team-x/registry").await;
    assert_eq!(status, 400);
    assert_eq!(body["__type"], "AccessDeniedException");
    assert_eq!(
        body["Message"],
        format!(
            "User: {} is not authorized to perform: secretsmanager:GetSecretValue on resource: \
             {other} because no identity-based policy allows the secretsmanager:GetSecretValue \
             action",
            sandbox.worker_caller_arn()
        )
    );

    let denied = sandbox.put_secret("pipeline-publisher/locked", CONTENT);
    sandbox.deny_worker("pipeline-publisher/locked");
    let (_, body) = get_secret(&running, (&key, &secret, None), &denied).await;
    assert_eq!(body["__type"], "AccessDeniedException");
    assert!(body["Message"].as_str().unwrap().contains(&denied));
}

#[tokio::test]
async fn a_missing_secret_is_not_found_and_job_credentials_are_refused() {
    let running = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let sandbox = &running.sandbox;
    let (key, secret) = sandbox.worker_credentials();
    let (status, body) =
        get_secret(&running, (&key, &secret, None), "pipeline-publisher/none").await;
    assert_eq!(status, 400);
    assert_eq!(body["__type"], "ResourceNotFoundException");
    assert_eq!(
        body["Message"],
        "Secrets Manager can't find the specified secret."
    );

    let arn = sandbox.put_secret("pipeline-publisher/registry", CONTENT);
    let job_id = sandbox.queue_job(JobSpec::new("firmware"));
    let (job_key, job_secret, token) = sandbox.job(&job_id).unwrap().credentials;
    let (status, body) = get_secret(&running, (&job_key, &job_secret, Some(&token)), &arn).await;
    assert_eq!(status, 400);
    assert_eq!(body["__type"], "AccessDeniedException");
    let message = body["Message"].as_str().unwrap();
    assert!(
        message.contains(&format!("assumed-role/CodePipelineArtifactAccess/{job_id}")),
        "{message}"
    );
    assert!(!message.contains(CONTENT));

    let (status, body) = get_secret(&running, (&key, "wrong-secret", None), &arn).await;
    assert_eq!(status, 400);
    assert_eq!(body["__type"], "InvalidSignatureException");
}

#[tokio::test]
async fn secure_parameters_decrypt_only_when_asked() {
    let running = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let sandbox = &running.sandbox;
    let (key, secret) = sandbox.worker_credentials();
    sandbox.put_parameter("/pipeline-publisher/registry", CONTENT, true);
    let worker = (key.as_str(), secret.as_str(), None);

    let (status, body) =
        get_parameter(&running, worker, "/pipeline-publisher/registry", true).await;
    assert_eq!(status, 200, "{body}");
    let parameter = &body["Parameter"];
    assert_eq!(parameter["Value"], CONTENT);
    assert_eq!(parameter["Type"], "SecureString");
    assert_eq!(parameter["Version"], 1);
    assert_eq!(
        parameter["ARN"],
        "arn:aws:ssm:eu-west-1:111122223333:parameter/pipeline-publisher/registry"
    );

    let (_, body) = get_parameter(&running, worker, "/pipeline-publisher/registry", false).await;
    let ciphertext = body["Parameter"]["Value"].as_str().unwrap();
    assert_ne!(ciphertext, CONTENT);
    assert!(ciphertext.starts_with("AQICAH"), "{ciphertext}");

    sandbox.put_parameter("/pipeline-publisher/plain", "text", false);
    let (_, body) = get_parameter(&running, worker, "/pipeline-publisher/plain", false).await;
    assert_eq!(body["Parameter"]["Type"], "String");
    assert_eq!(body["Parameter"]["Value"], "text");
}

#[tokio::test]
async fn parameters_missing_denied_misnamed_or_read_by_a_job() {
    let running = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let sandbox = &running.sandbox;
    let (key, secret) = sandbox.worker_credentials();
    let worker = (key.as_str(), secret.as_str(), None);

    let (status, body) = get_parameter(&running, worker, "/pipeline-publisher/none", true).await;
    assert_eq!(status, 400);
    assert_eq!(body["__type"], "ParameterNotFound");

    sandbox.put_parameter("/other/registry", CONTENT, true);
    let (_, body) = get_parameter(&running, worker, "/other/registry", true).await;
    assert_eq!(body["__type"], "AccessDeniedException");
    assert_eq!(
        body["message"],
        format!(
            "User: {} is not authorized to perform: ssm:GetParameter on resource: \
             arn:aws:ssm:eu-west-1:111122223333:parameter/other/registry because no \
             identity-based policy allows the ssm:GetParameter action",
            sandbox.worker_caller_arn()
        )
    );

    sandbox.put_parameter("/pipeline-publisher/locked", CONTENT, true);
    sandbox.deny_worker("/pipeline-publisher/locked");
    let (_, body) = get_parameter(&running, worker, "/pipeline-publisher/locked", true).await;
    assert_eq!(body["__type"], "AccessDeniedException");

    let (_, body) = get_parameter(&running, worker, "pipeline-publisher/registry", true).await;
    assert_eq!(body["__type"], "ValidationException");

    sandbox.put_parameter("/pipeline-publisher/registry", CONTENT, true);
    let job_id = sandbox.queue_job(JobSpec::new("firmware"));
    let (job_key, job_secret, token) = sandbox.job(&job_id).unwrap().credentials;
    let (_, body) = get_parameter(
        &running,
        (&job_key, &job_secret, Some(&token)),
        "/pipeline-publisher/registry",
        true,
    )
    .await;
    assert_eq!(body["__type"], "AccessDeniedException");
    assert!(!body.to_string().contains(CONTENT));

    let recorded: Vec<_> = sandbox
        .calls()
        .into_iter()
        .filter(|call| matches!(call, RecordedCall::Aws { service, .. } if service == "ssm"))
        .collect();
    assert_eq!(recorded.len(), 5);
}
