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

/// A web identity token from the sandbox's STS for the worker's role.
async fn web_identity_token(sandbox: &RunningSandbox, audience: &str, seconds: i32) -> String {
    let (key, secret) = sandbox.sandbox.worker_credentials();
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-west-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            key, secret, None, None, "test",
        ))
        .endpoint_url(&sandbox.endpoint_url)
        .load()
        .await;
    aws_sdk_sts::Client::new(&config)
        .get_web_identity_token()
        .audience(audience)
        .signing_algorithm("ES384")
        .duration_seconds(seconds)
        .send()
        .await
        .unwrap()
        .web_identity_token()
        .unwrap()
        .to_owned()
}

/// The provider `aws-fleet` trusting the sandbox's issuer for `audience`, mapping the worker's
/// role to `demo` (set up through the REST API, as an admin would).
async fn configure_oidc(sandbox: &RunningSandbox, registry: &RunningMockRegistry, audience: &str) {
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{}/access/api/v1/oidc", registry.base_url))
        .basic_auth("demo", Some("demo-password"))
        .json(&json!({
            "name": "aws-fleet",
            "issuer_url": sandbox.sandbox.oidc_issuer_url(),
            "audience": audience,
            "provider_type": "Generic OpenID Connect",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let response = client
        .post(format!(
            "{}/access/api/v1/oidc/aws-fleet/identity_mappings",
            registry.base_url
        ))
        .basic_auth("demo", Some("demo-password"))
        .json(&json!({
            "name": "publisher-role",
            "priority": 1,
            "claims": { "sub": sandbox.sandbox.worker_role_arn() },
            "token_spec": { "username": "demo", "scope": "applied-permissions/user", "expires_in": 900 },
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
}

async fn oidc_exchange(registry: &RunningMockRegistry, token: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/access/api/v1/oidc/token", registry.base_url))
        .json(&json!({
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
            "subject_token": token,
            "provider_name": "aws-fleet",
        }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_web_identity_token_of_the_workers_role_is_exchanged_for_a_registry_token() {
    let (sandbox, registry) = start().await;
    configure_oidc(&sandbox, &registry, &registry.base_url).await;
    let token = web_identity_token(&sandbox, &registry.base_url, 300).await;
    let (status, body) = oidc_exchange(&registry, &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["username"], "demo");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(registry.registry.tokens().len(), 1);
}

#[tokio::test]
async fn expired_wrongly_signed_misaddressed_or_unmapped_oidc_tokens_are_refused() {
    let (sandbox, registry) = start().await;
    configure_oidc(&sandbox, &registry, &registry.base_url).await;

    let other_audience = web_identity_token(&sandbox, "https://elsewhere.example", 300).await;
    let (status, body) = oidc_exchange(&registry, &other_audience).await;
    assert_eq!(status, 401, "{body}");
    assert!(message(&body).contains("audience"), "{body}");

    let token = web_identity_token(&sandbox, &registry.base_url, 300).await;
    let (payload_end, _) = token.rsplit_once('.').unwrap();
    let signature = &token[payload_end.len() + 1..];
    let middle = signature.len() / 2;
    let flipped = if &signature[middle..=middle] == "A" {
        "B"
    } else {
        "A"
    };
    let tampered = format!(
        "{payload_end}.{}{flipped}{}",
        &signature[..middle],
        &signature[middle + 1..]
    );
    let (status, body) = oidc_exchange(&registry, &tampered).await;
    assert_eq!(status, 401, "{body}");
    assert!(message(&body).contains("invalid signature"), "{body}");

    let short = web_identity_token(&sandbox, &registry.base_url, 60).await;
    registry.registry.advance_clock(Duration::from_secs(120));
    let (status, body) = oidc_exchange(&registry, &short).await;
    assert_eq!(status, 401, "{body}");
    assert!(message(&body).contains("expired"), "{body}");

    // A provider mapping only another role: the worker's token matches nothing.
    registry
        .registry
        .add_oidc_provider(pipeline_publisher::mock_registry::OidcProvider::new(
            "strict",
            &sandbox.sandbox.oidc_issuer_url(),
            None,
        ));
    registry.registry.add_identity_mapping(
        "strict",
        pipeline_publisher::mock_registry::IdentityMapping::for_subject(
            "other-role",
            "arn:aws:iam::111122223333:role/other",
            "demo",
            60,
        ),
    );
    let fresh = web_identity_token(&sandbox, &registry.base_url, 3600).await;
    let response = reqwest::Client::new()
        .post(format!("{}/access/api/v1/oidc/token", registry.base_url))
        .json(&json!({
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
            "subject_token": fresh,
            "provider_name": "strict",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let body: Value = response.json().await.unwrap();
    assert!(message(&body).contains("no identity mapping"), "{body}");
    assert!(
        message(&body).contains("arn:aws:iam::111122223333:role/pipeline-publisher-worker"),
        "{body}"
    );
    assert!(registry.registry.tokens().is_empty());
}
