//! A job's registry session: one short-lived token, renewed once if it expires mid-job.
//!
//! A long publish can outlive its token (the lifetime is short on purpose). When the registry
//! answers 401 the session mints a new token — once per job: a second 401 means the
//! credentials or permissions are wrong, not the clock, and becomes a `PermissionError`.

use std::time::Duration;

use tracing::{info, warn};

use crate::error::inline_chain;
use crate::registry::{AccessToken, RegistryClient, RegistryError};
use crate::secret::{Redactor, SecretString};

/// The token in use and how to get another.
pub struct TokenSession {
    client: RegistryClient,
    user_name: String,
    password: SecretString,
    lifetime: Duration,
    description: String,
    redactor: Redactor,
    token: AccessToken,
    renewed: bool,
}

impl TokenSession {
    /// Mints the first token; every token minted is added to `redactor`.
    pub async fn open(
        client: RegistryClient,
        user_name: &str,
        password: &SecretString,
        lifetime: Duration,
        description: &str,
        redactor: Redactor,
    ) -> Result<Self, RegistryError> {
        let token = client
            .mint_token(user_name, password, lifetime, description)
            .await?;
        redactor.add(&token.token);
        Ok(Self {
            client,
            user_name: user_name.to_owned(),
            password: password.clone(),
            lifetime,
            description: description.to_owned(),
            redactor,
            token,
            renewed: false,
        })
    }

    pub fn client(&self) -> &RegistryClient {
        &self.client
    }

    pub fn token(&self) -> &AccessToken {
        &self.token
    }

    /// Whether `error` is a refused token that one renewal may cure.
    pub fn should_renew(&self, error: &RegistryError) -> bool {
        !self.renewed && matches!(error, RegistryError::Status { status: 401, .. })
    }

    /// Replaces the token with a fresh one (the old one is revoked, best effort).
    pub async fn renew(&mut self) -> Result<(), RegistryError> {
        info!("the registry refused the job's token (401); minting a new one once");
        let fresh = self
            .client
            .mint_token(
                &self.user_name,
                &self.password,
                self.lifetime,
                &self.description,
            )
            .await?;
        self.redactor.add(&fresh.token);
        let old = std::mem::replace(&mut self.token, fresh);
        self.renewed = true;
        if let Err(error) = self.client.revoke_token(&old).await {
            warn!(error = %inline_chain(&error), "could not revoke the expired token");
        }
        Ok(())
    }

    /// Revokes the current token (best effort: short-lived tokens may be non-revocable by
    /// server policy, and expire on their own).
    pub async fn close(self) {
        if let Err(error) = self.client.revoke_token(&self.token).await {
            warn!(error = %inline_chain(&error), "could not revoke the job's registry token");
        }
    }
}
