//! Where a job's registry token comes from ([`TokenSource`]), and the two passwordless
//! exchanges of JFrog's Access API.
//!
//! - AWS IAM (Artifactory 7.90.10+): `POST /access/api/v1/aws/token?region=R` with the headers of
//!   a signed STS `GetCallerIdentity` and `{"expires_in": N}`; the registry replays the request
//!   to STS, maps the caller's role to a user and answers `{"access_token", "username", ...}`.
//! - OIDC (7.73+): `POST /access/api/v1/oidc/token` with a token-exchange grant carrying the
//!   web identity token and the provider's name.
//!
//! Both tokens are ordinary access tokens, revoked like a minted one (best effort).

use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;

use crate::aws_identity::{AwsIdentity, IdentityError, SigningAlgorithm};
use crate::registry::token::TokenApi;
use crate::registry::{AccessToken, RegistryClient, RegistryError};
use crate::secret::{ExposeSecret, Redactor, SecretString};

/// How a session gets each of its tokens.
#[derive(Clone)]
pub enum TokenSource {
    /// A user and password, exchanged at `/access/api/v1/tokens`.
    Password {
        user_name: String,
        password: SecretString,
    },
    /// The worker's AWS identity, exchanged at `/access/api/v1/aws/token`.
    AwsIam { identity: AwsIdentity },
    /// A web identity token of the worker's role, exchanged at `/access/api/v1/oidc/token`.
    Oidc {
        provider: String,
        identity: AwsIdentity,
        /// `aud` of the web identity token (the provider's configured audience).
        audience: String,
        algorithm: SigningAlgorithm,
    },
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.mode())
    }
}

impl TokenSource {
    /// The mode's name, for logs.
    pub fn mode(&self) -> &'static str {
        match self {
            Self::Password { .. } => "password",
            Self::AwsIam { .. } => "aws-iam",
            Self::Oidc { .. } => "oidc",
        }
    }
}

/// The Access API's answer to an exchange.
#[derive(Deserialize)]
struct ExchangeResponse {
    access_token: String,
    token_id: Option<String>,
    expires_in: Option<u64>,
    username: Option<String>,
}

const AWS_TOKEN_PATH: &str = "access/api/v1/aws/token";
const OIDC_TOKEN_PATH: &str = "access/api/v1/oidc/token";

impl RegistryClient {
    /// A token from `source`, lasting `lifetime`; every secret handled on the way (signed
    /// headers, web identity token, the token itself) is added to `redactor` first.
    pub async fn token_from(
        &self,
        source: &TokenSource,
        lifetime: Duration,
        description: &str,
        redactor: &Redactor,
    ) -> Result<AccessToken, RegistryError> {
        let token = match source {
            TokenSource::Password {
                user_name,
                password,
            } => {
                self.mint_token(user_name, password, lifetime, description)
                    .await?
            }
            TokenSource::AwsIam { identity } => {
                self.exchange_aws_identity(identity, lifetime, redactor)
                    .await?
            }
            TokenSource::Oidc {
                provider,
                identity,
                audience,
                algorithm,
            } => {
                self.exchange_web_identity(identity, provider, audience, *algorithm, redactor)
                    .await?
            }
        };
        redactor.add(&token.token);
        Ok(token)
    }

    async fn exchange_aws_identity(
        &self,
        identity: &AwsIdentity,
        lifetime: Duration,
        redactor: &Redactor,
    ) -> Result<AccessToken, RegistryError> {
        let signed = identity
            .sign_get_caller_identity()
            .await
            .map_err(identity_error)?;
        for (name, value) in &signed.headers {
            if !name.eq_ignore_ascii_case("x-amz-date") {
                redactor.add(value);
            }
        }
        let url = self.url(AWS_TOKEN_PATH);
        let body = serde_json::json!({ "expires_in": lifetime.as_secs().max(60) });
        // Not retried on 4xx (the policy never does); a transport retry resends the same
        // signature, which STS accepts for several minutes.
        let response = self
            .send_with_retries("exchange the AWS identity for a token", &url, || async {
                let mut request = self
                    .http()
                    .post(&url)
                    .query(&[("region", signed.region.as_str())])
                    .header("x-amz-region-set", &signed.region)
                    .json(&body);
                for (name, value) in &signed.headers {
                    let mut value = reqwest::header::HeaderValue::from_str(value.expose_secret())
                        .map_err(|_| RegistryError::InvalidResponse {
                        operation: "exchange the AWS identity for a token",
                        url: url.clone(),
                        message: format!("the signed {name} header is not a header value"),
                    })?;
                    value.set_sensitive(true);
                    request = request.header(*name, value);
                }
                Ok(request)
            })
            .await?;
        let status = response.status();
        if status.is_success() {
            return parse_exchange("exchange the AWS identity for a token", response).await;
        }
        let error =
            RegistryError::from_response("exchange the AWS identity for a token", response).await;
        let RegistryError::Status { message, .. } = &error else {
            return Err(error);
        };
        Err(match status {
            StatusCode::NOT_FOUND if !mentions_mapping(message) => {
                RegistryError::AwsTokenApiMissing { url }
            }
            // 403: the signature was good, but the role is not mapped (or not a role).
            StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => {
                // Ask STS who we are, so the message names the ARN the admin must map.
                let role_arn = identity.role_arn().await.ok();
                RegistryError::RoleNotMapped {
                    url,
                    status: status.as_u16(),
                    role_arn,
                    message: message.clone(),
                }
            }
            _ => error,
        })
    }

    async fn exchange_web_identity(
        &self,
        identity: &AwsIdentity,
        provider: &str,
        audience: &str,
        algorithm: SigningAlgorithm,
        redactor: &Redactor,
    ) -> Result<AccessToken, RegistryError> {
        let jwt = identity
            .web_identity_token(audience, algorithm)
            .await
            .map_err(identity_error)?;
        redactor.add(&jwt);
        let url = self.url(OIDC_TOKEN_PATH);
        let operation = "exchange the web identity token";
        let response = self
            .send_with_retries(operation, &url, || async {
                Ok(self.http().post(&url).json(&serde_json::json!({
                    "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                    "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
                    "subject_token": jwt.expose_secret(),
                    "provider_name": provider,
                })))
            })
            .await?;
        let status = response.status();
        if status.is_success() {
            return parse_exchange(operation, response).await;
        }
        let error = RegistryError::from_response(operation, response).await;
        let RegistryError::Status { message, .. } = &error else {
            return Err(error);
        };
        Err(match status {
            StatusCode::NOT_FOUND if !message.to_ascii_lowercase().contains("provider") => {
                RegistryError::OidcTokenApiMissing { url }
            }
            status if status.is_client_error() => RegistryError::OidcRejected {
                url,
                provider: provider.to_owned(),
                status: status.as_u16(),
                message: message.clone(),
            },
            _ => error,
        })
    }
}

/// Whether a 404's text is about a missing user or role mapping rather than a missing API.
fn mentions_mapping(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    ["role", "mapping", "mapped", "user"]
        .iter()
        .any(|word| message.contains(word))
}

fn identity_error(source: IdentityError) -> RegistryError {
    RegistryError::Identity {
        source: Box::new(source),
    }
}

async fn parse_exchange(
    operation: &'static str,
    response: reqwest::Response,
) -> Result<AccessToken, RegistryError> {
    let url = response.url().to_string();
    let parsed: ExchangeResponse =
        response
            .json()
            .await
            .map_err(|error| RegistryError::InvalidResponse {
                operation,
                url,
                // The body may hold the token: say only what was wrong with its shape.
                message: format!("not a token response ({})", error.without_url()),
            })?;
    if let Some(user) = &parsed.username {
        tracing::info!(registry_user = %user, "the registry exchanged the worker's identity for a token");
    }
    Ok(AccessToken {
        token: SecretString::from(parsed.access_token),
        token_id: parsed.token_id,
        expires_in: parsed.expires_in,
        api: TokenApi::Access,
        user_name: parsed.username,
    })
}
