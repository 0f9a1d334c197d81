//! Helpers shared by the mock registry's tests: starting it, minting tokens, raw HTTP.

use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::{MockRegistry, MockRegistryConfig, RunningMockRegistry};

pub(super) const USER: &str = "demo";
pub(super) const PASSWORD: &str = "demo-password";

pub(super) async fn start(config: MockRegistryConfig) -> RunningMockRegistry {
    MockRegistry::start(config)
        .await
        .expect("mock registry starts")
}

pub(super) fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// Status and parsed JSON body (`Value::Null` when the body is not JSON).
pub(super) async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body is readable");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The message of an Artifactory error body, checking its envelope on the way.
pub(super) fn error_message(status: u16, body: &Value) -> String {
    assert_eq!(
        body["errors"][0]["status"], status,
        "error envelope: {body}"
    );
    body["errors"][0]["message"]
        .as_str()
        .expect("message is a string")
        .to_string()
}

/// Mints an Access API token for the demo user; returns `(access_token, token_id)`.
pub(super) async fn mint_token(base_url: &str, expires_in: u64) -> (String, String) {
    let response = client()
        .post(format!("{base_url}/access/api/v1/tokens"))
        .basic_auth(USER, Some(PASSWORD))
        .json(&serde_json::json!({ "username": USER, "expires_in": expires_in }))
        .send()
        .await
        .expect("token request is sent");
    let (status, body) = json_of(response).await;
    assert_eq!(status, 200, "{body}");
    (
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_string(),
        body["token_id"].as_str().expect("token_id").to_string(),
    )
}

/// Deploys `content` with basic auth; returns status and body.
pub(super) async fn deploy(base_url: &str, repo_and_path: &str, content: &[u8]) -> (u16, Value) {
    let response = client()
        .put(format!("{base_url}/artifactory/{repo_and_path}"))
        .basic_auth(USER, Some(PASSWORD))
        .body(content.to_vec())
        .send()
        .await
        .expect("deploy is sent");
    json_of(response).await
}

/// Sends a request line verbatim (no URL normalisation, unlike reqwest) and returns the status.
pub(super) async fn raw_status(base_url: &str, method: &str, target: &str) -> u16 {
    let address = base_url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connects");
    let request = format!(
        "{method} {target} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Basic ZGVtbzpkZW1vLXBhc3N3b3Jk\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("writes");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("reads the answer");
    response
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .expect("status line")
}
