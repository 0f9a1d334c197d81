//! AWS IAM role sign-in: the admin mapping endpoints and `/access/api/v1/aws/token` against a
//! scripted STS (wiremock). The whole chain with the sandbox's real STS is in
//! `tests/it/auth_standins.rs`.

use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::test_support::{PASSWORD, USER, client, json_of, start};
use super::{MockRegistryConfig, RunningMockRegistry};

const ROLE: &str = "arn:aws:iam::111122223333:role/pipeline-publisher-worker";
const CALLER: &str =
    "arn:aws:sts::111122223333:assumed-role/pipeline-publisher-worker/i-0123456789abcdef0";

fn access_error(body: &Value) -> (String, String) {
    (
        body["errors"][0]["code"].as_str().unwrap_or("").to_owned(),
        body["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
    )
}

async fn put_role(base_url: &str, auth: Option<(&str, &str)>, body: Value) -> (u16, Value) {
    let mut request = client()
        .put(format!("{base_url}/access/api/v1/aws/iam_role"))
        .json(&body);
    if let Some((user, password)) = auth {
        request = request.basic_auth(user, Some(password));
    }
    json_of(request.send().await.unwrap()).await
}

async fn exchange(base_url: &str, extra: &[(&str, &str)], body: &str) -> (u16, Value) {
    let mut request = client()
        .post(format!(
            "{base_url}/access/api/v1/aws/token?region=eu-west-1"
        ))
        .header("content-type", "application/json")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/20261202/eu-west-1/sts/aws4_request, \
             SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=abc123",
        )
        .header("x-amz-date", "20261202T031500Z")
        .header("x-amz-security-token", "session-token-value");
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    json_of(request.body(body.to_owned()).send().await.unwrap()).await
}

async fn with_sts(sts: &MockServer) -> RunningMockRegistry {
    start(MockRegistryConfig {
        sts_endpoint: Some(sts.uri()),
        ..MockRegistryConfig::default()
    })
    .await
}

fn caller_identity_xml(arn: &str) -> String {
    format!(
        "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
         <GetCallerIdentityResult><Arn>{arn}</Arn><UserId>AROAEXAMPLE:i-0</UserId>\
         <Account>111122223333</Account></GetCallerIdentityResult>\
         <ResponseMetadata><RequestId>1</RequestId></ResponseMetadata>\
         </GetCallerIdentityResponse>"
    )
}

#[tokio::test]
async fn admins_map_roles_and_sessions_are_refused() {
    let server = start(MockRegistryConfig::default()).await;
    let base = &server.base_url;
    let admin = Some((USER, PASSWORD));
    let (status, _) = put_role(base, admin, json!({ "username": USER, "iam_role": ROLE })).await;
    assert_eq!(status, 200);

    let response = client()
        .get(format!("{base}/access/api/v1/aws/iam_role/{USER}"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({ "username": USER, "iam_role": ROLE }));
    assert_eq!(
        server.registry.iam_role_mappings(),
        [(USER.to_owned(), ROLE.to_owned())]
    );

    let (status, body) =
        put_role(base, admin, json!({ "username": USER, "iam_role": CALLER })).await;
    assert_eq!(status, 400);
    let (code, message) = access_error(&body);
    assert_eq!(code, "BAD_REQUEST");
    assert!(message.contains("not an assumed-role session"), "{message}");

    let (status, body) = put_role(base, None, json!({ "username": USER, "iam_role": ROLE })).await;
    assert_eq!(status, 401, "{body}");

    let response = client()
        .delete(format!("{base}/access/api/v1/aws/iam_role/{USER}"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
    let response = client()
        .get(format!("{base}/access/api/v1/aws/iam_role/{USER}"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
}

#[tokio::test]
async fn only_admins_may_map_roles() {
    let server = start(MockRegistryConfig {
        users: vec![
            (USER.to_owned(), PASSWORD.to_owned()),
            ("ci".to_owned(), "ci-password".to_owned()),
        ],
        ..MockRegistryConfig::default()
    })
    .await;
    let (status, body) = put_role(
        &server.base_url,
        Some(("ci", "ci-password")),
        json!({ "username": "ci", "iam_role": ROLE }),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(access_error(&body).0, "FORBIDDEN");
}

#[tokio::test]
async fn the_signed_request_is_replayed_to_sts_and_the_mapped_user_gets_a_token() {
    let sts = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/"))
        .and(query_param("Action", "GetCallerIdentity"))
        .and(query_param("Version", "2011-06-15"))
        .and(header("x-amz-date", "20261202T031500Z"))
        .and(header("x-amz-security-token", "session-token-value"))
        .respond_with(ResponseTemplate::new(200).set_body_string(caller_identity_xml(CALLER)))
        .expect(1)
        .mount(&sts)
        .await;
    let server = with_sts(&sts).await;
    server.registry.map_iam_role(USER, ROLE);

    // JFrog's Lambda sends `expires_in` as a string.
    let (status, body) = exchange(&server.base_url, &[], r#"{"expires_in": "600"}"#).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["username"], USER);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 600);
    assert_eq!(body["scope"], "applied-permissions/user");
    let token = body["access_token"].as_str().unwrap();

    let tokens = server.registry.tokens();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].username, USER);
    assert_eq!(Some(tokens[0].token_id.as_str()), body["token_id"].as_str());

    // The signature was replayed as it came (wiremock's header matcher splits on commas).
    let replayed = sts.received_requests().await.unwrap();
    assert_eq!(
        replayed[0].headers.get("authorization").unwrap(),
        "AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/20261202/eu-west-1/sts/aws4_request, \
         SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=abc123"
    );

    // The token works, and is revocable.
    let response = client()
        .delete(format!("{}/access/api/v1/tokens/me", server.base_url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(server.registry.tokens()[0].revoked);

    // The recorded request never holds the signature or the session token.
    let recorded = server.registry.requests();
    let exchange = recorded
        .iter()
        .find(|request| request.path == "/access/api/v1/aws/token")
        .unwrap();
    for (name, value) in &exchange.headers {
        if name == "authorization" || name == "x-amz-security-token" {
            assert_eq!(value, "****");
        }
    }
}

#[tokio::test]
async fn an_unmapped_role_is_named_in_the_refusal() {
    let sts = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string(caller_identity_xml(CALLER)))
        .mount(&sts)
        .await;
    let server = with_sts(&sts).await;
    let (status, body) = exchange(&server.base_url, &[], r#"{"expires_in": 600}"#).await;
    assert_eq!(status, 403, "{body}");
    let (code, message) = access_error(&body);
    assert_eq!(code, "FORBIDDEN");
    assert!(message.contains(ROLE), "{message}");
    assert!(
        message.contains("PUT /access/api/v1/aws/iam_role"),
        "{message}"
    );
    assert!(server.registry.tokens().is_empty());
}

#[tokio::test]
async fn an_sts_refusal_is_unauthorized_with_stss_words() {
    let sts = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(403).set_body_string(
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>\
             <Type>Sender</Type><Code>SignatureDoesNotMatch</Code><Message>Signature expired: \
             20261202T031500Z is now earlier than 20261202T033000Z (20261202T034500Z - 15 min.)\
             </Message></Error><RequestId>1</RequestId></ErrorResponse>",
        ))
        .mount(&sts)
        .await;
    let server = with_sts(&sts).await;
    server.registry.map_iam_role(USER, ROLE);
    let (status, body) = exchange(&server.base_url, &[], r#"{"expires_in": 600}"#).await;
    assert_eq!(status, 401, "{body}");
    let (code, message) = access_error(&body);
    assert_eq!(code, "UNAUTHORIZED");
    assert!(message.contains("SignatureDoesNotMatch"), "{message}");
    assert!(message.contains("Signature expired"), "{message}");
    assert!(server.registry.tokens().is_empty());
}

#[tokio::test]
async fn a_request_without_a_signature_never_reaches_sts() {
    let sts = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&sts)
        .await;
    let server = with_sts(&sts).await;
    let response = client()
        .post(format!("{}/access/api/v1/aws/token", server.base_url))
        .json(&json!({ "expires_in": 600 }))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, 401, "{body}");
}

#[tokio::test]
async fn an_older_artifactory_has_no_aws_endpoints() {
    let server = start(MockRegistryConfig {
        aws_token_supported: false,
        ..MockRegistryConfig::default()
    })
    .await;
    let (status, _) = exchange(&server.base_url, &[], r#"{"expires_in": 600}"#).await;
    assert_eq!(status, 404);
    let (status, _) = put_role(
        &server.base_url,
        Some((USER, PASSWORD)),
        json!({ "username": USER, "iam_role": ROLE }),
    )
    .await;
    assert_eq!(status, 404);
}
