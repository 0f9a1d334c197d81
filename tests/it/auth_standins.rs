//! The passwordless sign-in stand-ins end to end, over real HTTP: a `GetCallerIdentity` signed
//! with the worker's credentials (by hand, as a worker signs one for a registry), forwarded to
//! the mock registry's `/access/api/v1/aws/token`, replayed to the sandbox's STS, and turned
//! into a token for the user the role is mapped to.

use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use pipeline_publisher::mock_registry::{MockRegistry, MockRegistryConfig, RunningMockRegistry};
use pipeline_publisher::sandbox::{RunningSandbox, Sandbox, SandboxConfig};
use serde_json::{Value, json};

/// The headers of `GET {sts}/?Action=GetCallerIdentity&Version=2011-06-15` signed at `time`.
fn signed_headers(
    sts: &str,
    credentials: (&str, &str, Option<&str>),
    time: SystemTime,
) -> Vec<(String, String)> {
    let (key, secret, token) = credentials;
    let identity =
        aws_credential_types::Credentials::new(key, secret, token.map(str::to_owned), None, "t")
            .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("eu-west-1")
        .name("sts")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let url = format!("{sts}/?Action=GetCallerIdentity&Version=2011-06-15");
    let request =
        SignableRequest::new("GET", url, std::iter::empty(), SignableBody::Bytes(&[])).unwrap();
    let (instructions, _) = sign(request, &params).unwrap().into_parts();
    instructions
        .headers()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

async fn start() -> (RunningSandbox, RunningMockRegistry) {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let registry = MockRegistry::start(MockRegistryConfig {
        sts_endpoint: Some(sandbox.endpoint_url.clone()),
        ..MockRegistryConfig::default()
    })
    .await
    .unwrap();
    (sandbox, registry)
}

/// Forwards signed headers to the registry's exchange, as JFrog's Lambda does.
async fn exchange(registry: &RunningMockRegistry, headers: &[(String, String)]) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!(
            "{}/access/api/v1/aws/token?region=eu-west-1",
            registry.base_url
        ))
        .header("content-type", "application/json")
        .header("x-amz-region-set", "eu-west-1");
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = request
        .body(json!({ "expires_in": 900 }).to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn message(body: &Value) -> String {
    body["errors"][0]["message"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

#[tokio::test]
async fn the_workers_role_signs_in_to_the_registry_without_a_password() {
    let (sandbox, registry) = start().await;
    let (key, secret) = sandbox.sandbox.worker_credentials();
    // The JFrog admin's one call.
    let response = reqwest::Client::new()
        .put(format!("{}/access/api/v1/aws/iam_role", registry.base_url))
        .basic_auth("demo", Some("demo-password"))
        .json(&json!({ "username": "demo", "iam_role": sandbox.sandbox.worker_role_arn() }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);

    let headers = signed_headers(
        &sandbox.endpoint_url,
        (&key, &secret, None),
        SystemTime::now(),
    );
    let (status, body) = exchange(&registry, &headers).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["username"], "demo");
    assert_eq!(body["expires_in"], 900);
    let token = body["access_token"].as_str().unwrap();

    // The token is the registry's own: it deploys as the mapped user, and is revocable.
    let response = reqwest::Client::new()
        .put(format!(
            "{}/artifactory/generic-local/hello.txt",
            registry.base_url
        ))
        .bearer_auth(token)
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let artifact = registry
        .registry
        .artifact("generic-local", "hello.txt")
        .unwrap();
    assert_eq!(artifact.created_by, "demo");
    let response = reqwest::Client::new()
        .delete(format!("{}/access/api/v1/tokens/me", registry.base_url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(registry.registry.tokens()[0].revoked);
    // STS saw exactly one GetCallerIdentity, signed with the worker's key.
    let sts_calls: Vec<_> = sandbox
        .sandbox
        .calls()
        .into_iter()
        .filter(|call| {
            matches!(call, pipeline_publisher::sandbox::RecordedCall::Aws { service, .. } if service == "sts")
        })
        .collect();
    assert_eq!(sts_calls.len(), 1, "{sts_calls:?}");
}

#[tokio::test]
async fn a_tampered_or_stale_signature_gets_no_token() {
    let (sandbox, registry) = start().await;
    let (key, secret) = sandbox.sandbox.worker_credentials();
    registry
        .registry
        .map_iam_role("demo", &sandbox.sandbox.worker_role_arn());

    let stale = signed_headers(
        &sandbox.endpoint_url,
        (&key, &secret, None),
        SystemTime::now() - Duration::from_secs(20 * 60),
    );
    let (status, body) = exchange(&registry, &stale).await;
    assert_eq!(status, 401, "{body}");
    assert!(message(&body).contains("SignatureDoesNotMatch"), "{body}");
    assert!(message(&body).contains("Signature expired"), "{body}");

    let wrong_secret = signed_headers(
        &sandbox.endpoint_url,
        (&key, "not-the-secret", None),
        SystemTime::now(),
    );
    let (status, body) = exchange(&registry, &wrong_secret).await;
    assert_eq!(status, 401, "{body}");
    assert!(message(&body).contains("SignatureDoesNotMatch"), "{body}");

    assert!(registry.registry.tokens().is_empty());
}

#[tokio::test]
async fn an_unmapped_role_is_refused_with_its_arn() {
    let (sandbox, registry) = start().await;
    let (key, secret) = sandbox.sandbox.worker_credentials();
    let headers = signed_headers(
        &sandbox.endpoint_url,
        (&key, &secret, None),
        SystemTime::now(),
    );
    let (status, body) = exchange(&registry, &headers).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        message(&body).contains("arn:aws:iam::111122223333:role/pipeline-publisher-worker"),
        "{body}"
    );
}
