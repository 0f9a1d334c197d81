//! STS stand-in tests: the real `aws-sdk-sts` client, and `GetCallerIdentity` requests signed
//! by hand (`aws-sigv4`) the way a worker signs one for a registry to replay.

use std::time::{Duration, SystemTime};

use aws_sdk_sts::error::ProvideErrorMetadata;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;

use super::tests::sdk_config;
use super::*;

/// The headers of `GET {endpoint}/?Action=GetCallerIdentity&Version=2011-06-15` signed at `time`.
pub(super) fn signed_get_caller_identity(
    endpoint: &str,
    credentials: (&str, &str, Option<&str>),
    region: &str,
    time: SystemTime,
) -> Vec<(String, String)> {
    let (key, secret, token) = credentials;
    let identity =
        aws_credential_types::Credentials::new(key, secret, token.map(str::to_owned), None, "t")
            .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let url = format!("{endpoint}/?Action=GetCallerIdentity&Version=2011-06-15");
    let request =
        SignableRequest::new("GET", url, std::iter::empty(), SignableBody::Bytes(&[])).unwrap();
    let (instructions, _) = sign(request, &params).unwrap().into_parts();
    instructions
        .headers()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

/// Sends the signed GET to `target` (which may differ from what was signed); (status, body).
async fn send_get(target: &str, headers: &[(String, String)]) -> (u16, String) {
    let mut request = reqwest::Client::new().get(format!(
        "{target}/?Action=GetCallerIdentity&Version=2011-06-15"
    ));
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn sts_client(
    running: &RunningSandbox,
    key: &str,
    secret: &str,
    token: Option<&str>,
) -> aws_sdk_sts::Client {
    aws_sdk_sts::Client::new(&sdk_config(running, key, secret, token).await)
}

#[tokio::test]
async fn the_sdk_learns_the_workers_instance_role() {
    let running = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let sandbox = &running.sandbox;
    let (key, secret) = sandbox.worker_credentials();
    let identity = sts_client(&running, &key, &secret, None)
        .await
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(
        identity.arn(),
        Some(
            "arn:aws:sts::111122223333:assumed-role/pipeline-publisher-worker/i-0123456789abcdef0"
        )
    );
    assert_eq!(identity.arn(), Some(sandbox.worker_caller_arn().as_str()));
    assert_eq!(identity.account(), Some("111122223333"));
    assert_eq!(
        sandbox.worker_role_arn(),
        "arn:aws:iam::111122223333:role/pipeline-publisher-worker"
    );
    assert!(identity.user_id().unwrap().starts_with("AROA"));
}

#[tokio::test]
async fn a_hand_signed_get_verifies_and_a_tampered_one_does_not() {
    let running = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let (key, secret) = running.sandbox.worker_credentials();
    let endpoint = &running.endpoint_url;
    let headers = signed_get_caller_identity(
        endpoint,
        (&key, &secret, None),
        "eu-west-1",
        SystemTime::now(),
    );
    let (status, body) = send_get(endpoint, &headers).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("<Arn>arn:aws:sts::111122223333:assumed-role/pipeline-publisher-worker/")
    );

    let tampered: Vec<(String, String)> = headers
        .iter()
        .map(|(name, value)| {
            let value = if name.eq_ignore_ascii_case("authorization") {
                let last = value.chars().last().unwrap();
                let replacement = if last == '0' { '1' } else { '0' };
                format!("{}{replacement}", &value[..value.len() - 1])
            } else {
                value.clone()
            };
            (name.clone(), value)
        })
        .collect();
    let (status, body) = send_get(endpoint, &tampered).await;
    assert_eq!(status, 403);
    assert!(
        body.contains("<Code>SignatureDoesNotMatch</Code>"),
        "{body}"
    );

    // Signed for another host (as for sts.amazonaws.com), replayed here: refused.
    let elsewhere = signed_get_caller_identity(
        "https://sts.eu-west-1.amazonaws.com",
        (&key, &secret, None),
        "eu-west-1",
        SystemTime::now(),
    );
    let (status, body) = send_get(endpoint, &elsewhere).await;
    assert_eq!(status, 403);
    assert!(
        body.contains("<Code>SignatureDoesNotMatch</Code>"),
        "{body}"
    );
    // ... even with the Host it was signed for.
    let mut with_host = elsewhere.clone();
    with_host.push(("host".to_owned(), "sts.eu-west-1.amazonaws.com".to_owned()));
    let (status, body) = send_get(endpoint, &with_host).await;
    assert_eq!(status, 403);
    assert!(
        body.contains("<Code>SignatureDoesNotMatch</Code>"),
        "{body}"
    );
}

#[tokio::test]
async fn a_signature_older_than_15_minutes_is_expired() {
    let running = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let (key, secret) = running.sandbox.worker_credentials();
    let endpoint = &running.endpoint_url;
    let old = SystemTime::now() - Duration::from_secs(16 * 60);
    let headers = signed_get_caller_identity(endpoint, (&key, &secret, None), "eu-west-1", old);
    let (status, body) = send_get(endpoint, &headers).await;
    assert_eq!(status, 403);
    assert!(
        body.contains("<Code>SignatureDoesNotMatch</Code>"),
        "{body}"
    );
    assert!(body.contains("Signature expired: "), "{body}");
    assert!(body.contains(" - 15 min.)"), "{body}");

    // 14 minutes old is still within AWS's window.
    let recent = SystemTime::now() - Duration::from_secs(14 * 60);
    let headers = signed_get_caller_identity(endpoint, (&key, &secret, None), "eu-west-1", recent);
    assert_eq!(send_get(endpoint, &headers).await.0, 200);
}

#[tokio::test]
async fn job_credentials_need_their_session_token_and_expire_when_revoked() {
    let running = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let sandbox = &running.sandbox;
    let job_id = sandbox.queue_job(JobSpec::new("firmware"));
    let (key, secret, token) = sandbox.job(&job_id).unwrap().credentials;
    let endpoint = &running.endpoint_url;

    let headers = signed_get_caller_identity(
        endpoint,
        (&key, &secret, Some(&token)),
        "eu-west-1",
        SystemTime::now(),
    );
    let (status, body) = send_get(endpoint, &headers).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&format!("assumed-role/CodePipelineArtifactAccess/{job_id}")));

    let without_token = signed_get_caller_identity(
        endpoint,
        (&key, &secret, None),
        "eu-west-1",
        SystemTime::now(),
    );
    let (status, body) = send_get(endpoint, &without_token).await;
    assert_eq!(status, 403);
    assert!(body.contains("<Code>InvalidClientTokenId</Code>"), "{body}");

    sandbox.revoke_job_credentials(&job_id);
    let (status, body) = send_get(endpoint, &headers).await;
    assert_eq!(status, 400);
    assert!(body.contains("<Code>ExpiredToken</Code>"), "{body}");
}

#[tokio::test]
async fn an_unknown_key_is_an_invalid_client_token() {
    let running = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let error = sts_client(&running, "AKIAUNKNOWNUNKNOWN00", "secret", None)
        .await
        .get_caller_identity()
        .send()
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("InvalidClientTokenId"));
}

/// Fetches the issuer's JWKS through its openid-configuration, as a verifier does.
async fn issuer_keys(issuer: &str) -> jsonwebtoken::jwk::JwkSet {
    let configuration: serde_json::Value =
        reqwest::get(format!("{issuer}/.well-known/openid-configuration"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(configuration["issuer"], issuer);
    reqwest::get(configuration["jwks_uri"].as_str().unwrap())
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn web_identity_tokens_verify_against_the_issuers_jwks() {
    let running = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let sandbox = &running.sandbox;
    let issuer = sandbox.oidc_issuer_url();
    assert_eq!(
        issuer,
        format!("{}/_oidc/111122223333", running.endpoint_url)
    );
    let keys = issuer_keys(&issuer).await;
    let (key, secret) = sandbox.worker_credentials();
    let client = sts_client(&running, &key, &secret, None).await;
    for (algorithm, jwt_algorithm) in [
        ("RS256", jsonwebtoken::Algorithm::RS256),
        ("ES384", jsonwebtoken::Algorithm::ES384),
    ] {
        let output = client
            .get_web_identity_token()
            .audience("https://registry.example.com")
            .signing_algorithm(algorithm)
            .duration_seconds(600)
            .send()
            .await
            .unwrap();
        let token = output.web_identity_token().unwrap();
        let header = jsonwebtoken::decode_header(token).unwrap();
        assert_eq!(header.alg, jwt_algorithm);
        let jwk = keys.find(header.kid.as_deref().unwrap()).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jwt_algorithm);
        validation.set_audience(&["https://registry.example.com"]);
        validation.set_issuer(&[&issuer]);
        let claims = jsonwebtoken::decode::<serde_json::Value>(
            token,
            &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
            &validation,
        )
        .unwrap()
        .claims;
        assert_eq!(claims["sub"], sandbox.worker_role_arn());
        let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
        assert_eq!(lifetime, 600);
        assert!(claims["jti"].is_string());
        let expiration = output.expiration().unwrap().secs();
        assert_eq!(expiration, claims["exp"].as_i64().unwrap());
    }
    assert_eq!(sandbox.issued_web_identity_tokens().len(), 2);
}

#[tokio::test]
async fn web_identity_token_requests_are_validated_and_federation_can_be_off() {
    let running = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let sandbox = &running.sandbox;
    let (key, secret) = sandbox.worker_credentials();
    let client = sts_client(&running, &key, &secret, None).await;
    let error = client
        .get_web_identity_token()
        .audience("a")
        .signing_algorithm("HS256")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("ValidationError"));
    let error = client
        .get_web_identity_token()
        .audience("a")
        .signing_algorithm("RS256")
        .duration_seconds(30)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("ValidationError"));

    sandbox.set_outbound_federation_enabled(false);
    let error = client
        .get_web_identity_token()
        .audience("a")
        .signing_algorithm("RS256")
        .send()
        .await
        .unwrap_err();
    assert!(
        error
            .as_service_error()
            .unwrap()
            .is_outbound_web_identity_federation_disabled_exception(),
        "{error:?}"
    );

    // A job's artifact credentials are not the worker's role.
    sandbox.set_outbound_federation_enabled(true);
    let job_id = sandbox.queue_job(JobSpec::new("firmware"));
    let (job_key, job_secret, token) = sandbox.job(&job_id).unwrap().credentials;
    let error = sts_client(&running, &job_key, &job_secret, Some(&token))
        .await
        .get_web_identity_token()
        .audience("a")
        .signing_algorithm("RS256")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("AccessDenied"));
}
