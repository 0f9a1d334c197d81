//! Tests of the token endpoints and of authentication, against the real server on 127.0.0.1.

use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use serde_json::json;

use super::test_support::{
    PASSWORD, USER, client, deploy, error_message, json_of, mint_token, start,
};
use super::{MockRegistryConfig, RequestAuth};

const FORM: &str = "application/x-www-form-urlencoded";

#[tokio::test]
async fn json_token_is_minted_used_and_revoked() {
    let server = start(MockRegistryConfig::default()).await;
    let base = &server.base_url;
    let response = client()
        .post(format!("{base}/access/api/v1/tokens"))
        .basic_auth(USER, Some(PASSWORD))
        .json(&json!({ "username": USER, "scope": "applied-permissions/user", "expires_in": 600 }))
        .send()
        .await
        .expect("sent");
    let (status, body) = json_of(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["expires_in"], 600);
    assert_eq!(body["scope"], "applied-permissions/user");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body.get("refresh_token").is_none(), "{body}");
    let token = body["access_token"].as_str().expect("token").to_string();
    let token_id = body["token_id"].as_str().expect("id").to_string();

    // Bearer and basic user:token both authenticate, and are recorded as the token.
    let bearer = client()
        .put(format!("{base}/artifactory/generic-local/a.txt"))
        .bearer_auth(&token)
        .body("a")
        .send()
        .await
        .expect("sent");
    assert_eq!(bearer.status(), 201);
    let basic = client()
        .put(format!("{base}/artifactory/generic-local/b.txt"))
        .basic_auth(USER, Some(&token))
        .body("b")
        .send()
        .await
        .expect("sent");
    assert_eq!(basic.status(), 201);
    let recorded = server.registry.requests();
    let expected = RequestAuth::Bearer {
        token_id: token_id.clone(),
    };
    assert_eq!(recorded[1].auth, expected);
    assert_eq!(recorded[2].auth, expected);
    assert_eq!(recorded[1].header("authorization"), Some("****"));
    assert_eq!(
        server
            .registry
            .artifact("generic-local", "a.txt")
            .expect("stored")
            .created_by,
        USER
    );

    // A token may revoke itself; afterwards it is refused and revoking again is a 204.
    let revoke = client()
        .delete(format!("{base}/access/api/v1/tokens/{token_id}"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    assert_eq!(revoke.status(), 200);
    let (status, body) = json_of(
        client()
            .put(format!("{base}/artifactory/generic-local/c.txt"))
            .bearer_auth(&token)
            .body("c")
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(
        (status, error_message(status, &body).as_str()),
        (401, "Token failed verification: revoked")
    );
    assert_eq!(
        server.registry.requests().last().map(|r| r.auth.clone()),
        Some(RequestAuth::Rejected)
    );
    for id in [token_id.as_str(), "no-such-token"] {
        let again = client()
            .delete(format!("{base}/access/api/v1/tokens/{id}"))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await
            .expect("sent");
        assert_eq!(again.status(), 204, "{id}");
    }
    let tokens = server.registry.tokens();
    assert_eq!(tokens.len(), 1);
    assert!(tokens[0].revoked && !tokens[0].legacy);
    server.shutdown().await;
}

#[tokio::test]
async fn form_token_is_capped_and_refreshable() {
    let config = MockRegistryConfig {
        max_token_lifetime: Duration::from_secs(60),
        ..MockRegistryConfig::default()
    };
    let server = start(config).await;
    let response = client()
        .post(format!("{}/access/api/v1/tokens", server.base_url))
        .basic_auth(USER, Some(PASSWORD))
        .header(CONTENT_TYPE, FORM)
        .body("username=demo&scope=applied-permissions%2Fuser&expires_in=99999&refreshable=true&description=ci")
        .send()
        .await
        .expect("sent");
    let (status, body) = json_of(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["expires_in"], 60);
    assert_eq!(body["scope"], "applied-permissions/user");
    assert!(body["refresh_token"].is_string(), "{body}");
    let record = &server.registry.tokens()[0];
    assert_eq!(record.username, USER);
    let lifetime = record.expires_at - time::OffsetDateTime::now_utc();
    assert!(lifetime <= time::Duration::seconds(60), "{lifetime}");
}

#[tokio::test]
async fn minting_requires_the_users_own_password() {
    let server = start(MockRegistryConfig::default()).await;
    let url = format!("{}/access/api/v1/tokens", server.base_url);
    let body = json!({ "username": USER, "expires_in": 60 });
    let anonymous = client().post(&url).json(&body).send().await.expect("sent");
    assert_eq!(anonymous.status(), 401);
    let (status, wrong) = json_of(
        client()
            .post(&url)
            .basic_auth(USER, Some("nope"))
            .json(&body)
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(
        (status, error_message(status, &wrong).as_str()),
        (401, "Bad credentials")
    );
    let other_user = client()
        .post(&url)
        .basic_auth(USER, Some(PASSWORD))
        .json(&json!({ "username": "admin" }))
        .send()
        .await
        .expect("sent");
    assert_eq!(other_user.status(), 403);
    let (token, _) = mint_token(&server.base_url, 60).await;
    let with_token = client()
        .post(&url)
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .expect("sent");
    assert_eq!(with_token.status(), 401);
    let garbage = client()
        .get(format!(
            "{}/artifactory/api/storage/generic-local",
            server.base_url
        ))
        .bearer_auth("not-a-token")
        .send()
        .await
        .expect("sent");
    let (status, body) = json_of(garbage).await;
    assert_eq!(status, 401);
    assert!(error_message(status, &body).starts_with("Token failed verification: "));
}

#[tokio::test]
async fn tokens_expire_on_the_registry_clock() {
    let config = MockRegistryConfig {
        max_token_lifetime: Duration::from_secs(1),
        ..MockRegistryConfig::default()
    };
    let server = start(config).await;
    let (token, _) = mint_token(&server.base_url, 0).await;
    let lifetime = server.registry.tokens()[0].expires_at - time::OffsetDateTime::now_utc();
    assert!(
        lifetime <= time::Duration::seconds(1),
        "capped to 1 s: {lifetime}"
    );
    let url = format!("{}/artifactory/generic-local/x.bin", server.base_url);
    let fresh = client()
        .put(&url)
        .bearer_auth(&token)
        .body("x")
        .send()
        .await
        .expect("sent");
    assert_eq!(fresh.status(), 201);
    server.registry.advance_clock(Duration::from_secs(2));
    let response = client()
        .put(&url)
        .bearer_auth(&token)
        .body("x")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 401);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(
        body,
        json!({"errors":[{"status":401,"message":"Token failed verification: expired"}]})
    );
}

#[tokio::test]
async fn legacy_tokens_work_when_the_access_api_is_missing() {
    let config = MockRegistryConfig {
        access_api: false,
        ..MockRegistryConfig::default()
    };
    let server = start(config).await;
    let base = &server.base_url;
    let access = client()
        .post(format!("{base}/access/api/v1/tokens"))
        .basic_auth(USER, Some(PASSWORD))
        .json(&json!({ "username": USER }))
        .send()
        .await
        .expect("sent");
    assert_eq!(access.status(), 404);
    let (status, body) = json_of(
        client()
            .post(format!("{base}/artifactory/api/security/token"))
            .basic_auth(USER, Some(PASSWORD))
            .header(CONTENT_TYPE, FORM)
            .body("username=demo&scope=member-of-groups%3Areaders&expires_in=300")
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["scope"], "member-of-groups:readers");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body.get("token_id").is_none(), "{body}");
    let token = body["access_token"].as_str().expect("token");
    let (status, _) = deploy_with_bearer(base, token).await;
    assert_eq!(status, 201);
    assert!(server.registry.tokens()[0].legacy);

    let revoke = client()
        .post(format!("{base}/artifactory/api/security/token/revoke"))
        .basic_auth(USER, Some(PASSWORD))
        .header(CONTENT_TYPE, FORM)
        .body(format!("token={token}"))
        .send()
        .await
        .expect("sent");
    assert_eq!(revoke.status(), 200);
    assert_eq!(deploy_with_bearer(base, token).await.0, 401);
    let unknown = client()
        .post(format!("{base}/artifactory/api/security/token/revoke"))
        .basic_auth(USER, Some(PASSWORD))
        .header(CONTENT_TYPE, FORM)
        .body("token_id=unknown")
        .send()
        .await
        .expect("sent");
    assert_eq!(unknown.status(), 200);
}

async fn deploy_with_bearer(base: &str, token: &str) -> (u16, serde_json::Value) {
    json_of(
        client()
            .put(format!("{base}/artifactory/generic-local/legacy.txt"))
            .bearer_auth(token)
            .body("legacy")
            .send()
            .await
            .expect("sent"),
    )
    .await
}

#[tokio::test]
async fn unavailable_registry_answers_503_and_secrets_stay_out_of_debug() {
    let server = start(MockRegistryConfig::default()).await;
    server.registry.set_unavailable(true);
    let ping = client()
        .get(format!("{}/artifactory/api/system/ping", server.base_url))
        .send()
        .await
        .expect("sent");
    let (status, body) = json_of(ping).await;
    assert_eq!(status, 503);
    error_message(status, &body);
    server.registry.set_unavailable(false);
    let ping = client()
        .get(format!("{}/artifactory/api/system/ping", server.base_url))
        .send()
        .await
        .expect("sent");
    assert_eq!(ping.status(), 200);
    assert_eq!(ping.text().await.expect("text"), "OK");
    let (token, _) = mint_token(&server.base_url, 60).await;
    let (status, _) = deploy(&server.base_url, "generic-local/d.txt", b"d").await;
    assert_eq!(status, 201);
    let debug = format!(
        "{:?} {:?} {:?}",
        MockRegistryConfig::default(),
        server,
        server.registry.requests()
    );
    assert!(!debug.contains(PASSWORD), "{debug}");
    assert!(!debug.contains(&token), "{debug}");
}
