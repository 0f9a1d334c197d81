//! Short-lived registry tokens: the password is exchanged once per job and used for nothing else.
//!
//! The Access API (`POST /access/api/v1/tokens`, Artifactory 7.21+) is tried first; a 404 means
//! an older server, which gets the deprecated `POST /artifactory/api/security/token`. Revocation
//! authenticates with the token itself and is best effort: servers may refuse to revoke tokens
//! shorter-lived than their revocable threshold, and the token expires soon anyway.

use std::fmt;
use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;

use crate::registry::{RegistryClient, RegistryError};
use crate::secret::{ExposeSecret, MASK, SecretString};

/// Which API minted a token, and so which one revokes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenApi {
    Access,
    Legacy,
}

/// A minted token. `Debug` never shows it.
#[derive(Clone)]
pub struct AccessToken {
    pub token: SecretString,
    pub token_id: Option<String>,
    pub expires_in: Option<u64>,
    pub api: TokenApi,
    /// The registry user the token acts as, when the registry said (identity exchanges do).
    pub user_name: Option<String>,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &MASK)
            .field("token_id", &self.token_id)
            .field("expires_in", &self.expires_in)
            .field("api", &self.api)
            .field("user_name", &self.user_name)
            .finish()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    token_id: Option<String>,
    expires_in: Option<u64>,
}

impl RegistryClient {
    /// Exchanges `user_name` / `password` for a token that expires after `lifetime`.
    pub async fn mint_token(
        &self,
        user_name: &str,
        password: &SecretString,
        lifetime: Duration,
        description: &str,
    ) -> Result<AccessToken, RegistryError> {
        let expires_in = lifetime.as_secs().max(60);
        let url = self.url("access/api/v1/tokens");
        // JSON, as JFrog CLI sends it; always with expires_in, since a server's default
        // lifetime may be a year.
        let body = serde_json::json!({
            "username": user_name,
            "scope": "applied-permissions/user",
            "expires_in": expires_in,
            "refreshable": false,
            "description": description,
        });
        let response = self
            .send_with_retries("create access token", &url, || async {
                Ok(self
                    .http()
                    .post(&url)
                    .basic_auth(user_name, Some(password.expose_secret()))
                    .json(&body))
            })
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            tracing::info!("the registry has no Access token API; using the legacy token API");
            return self
                .mint_legacy_token(user_name, password, &expires_in.to_string())
                .await;
        }
        self.parse_token("create access token", response, TokenApi::Access)
            .await
    }

    async fn mint_legacy_token(
        &self,
        user_name: &str,
        password: &SecretString,
        expires_in: &str,
    ) -> Result<AccessToken, RegistryError> {
        let url = self.url("artifactory/api/security/token");
        // No scope: the legacy API then grants the user's own permissions.
        let form = [("username", user_name), ("expires_in", expires_in)];
        let response = self
            .send_with_retries("create legacy token", &url, || async {
                Ok(self
                    .http()
                    .post(&url)
                    .basic_auth(user_name, Some(password.expose_secret()))
                    .form(&form))
            })
            .await?;
        self.parse_token("create legacy token", response, TokenApi::Legacy)
            .await
    }

    async fn parse_token(
        &self,
        operation: &'static str,
        response: reqwest::Response,
        api: TokenApi,
    ) -> Result<AccessToken, RegistryError> {
        if !response.status().is_success() {
            return Err(RegistryError::from_response(operation, response).await);
        }
        let url = response.url().to_string();
        let parsed: TokenResponse =
            response
                .json()
                .await
                .map_err(|error| RegistryError::InvalidResponse {
                    operation,
                    url,
                    // The body may hold the token: say only what was wrong with its shape.
                    message: format!("not a token response ({})", error.without_url()),
                })?;
        Ok(AccessToken {
            token: SecretString::from(parsed.access_token),
            token_id: parsed.token_id,
            expires_in: parsed.expires_in,
            api,
            user_name: None,
        })
    }

    /// Revokes `token`, authenticating with the token itself.
    pub async fn revoke_token(&self, token: &AccessToken) -> Result<(), RegistryError> {
        let (operation, request) = match (token.api, &token.token_id) {
            (TokenApi::Access, Some(id)) => (
                "revoke access token",
                self.http().delete(self.url(&format!(
                    "access/api/v1/tokens/{}",
                    super::paths::encode_segment(id)
                ))),
            ),
            (TokenApi::Access, None) => (
                "revoke access token",
                self.http().delete(self.url("access/api/v1/tokens/me")),
            ),
            (TokenApi::Legacy, _) => (
                "revoke legacy token",
                self.http()
                    .post(self.url("artifactory/api/security/token/revoke"))
                    .form(&[("token", token.token.expose_secret())]),
            ),
        };
        let response = request
            .bearer_auth(token.token.expose_secret())
            .send()
            .await
            .map_err(|source| RegistryError::Transport {
                url: self.base().to_string(),
                source,
            })?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(RegistryError::from_response(operation, response).await)
        }
    }
}
