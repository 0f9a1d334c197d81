//! A job's registry session: one short-lived token, renewed once if it expires mid-job.
//!
//! The token comes from a [`TokenSource`] (a password or the worker's AWS identity); renewal
//! asks the same source again (a fresh signature, a fresh web identity token).
//!
//! A long publish can outlive its token (the lifetime is short on purpose). When the registry
//! answers 401 the session mints a new token — once per job: a second 401 means the
//! credentials or permissions are wrong, not the clock, and becomes a `PermissionError`.

use std::time::Duration;

use tracing::{info, warn};

use crate::error::inline_chain;
use crate::registry::{AccessToken, RegistryClient, RegistryError, TokenSource};
use crate::secret::Redactor;

/// The token in use and how to get another.
pub struct TokenSession {
    client: RegistryClient,
    source: TokenSource,
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
        source: TokenSource,
        lifetime: Duration,
        description: &str,
        redactor: Redactor,
    ) -> Result<Self, RegistryError> {
        let token = client
            .token_from(&source, lifetime, description, &redactor)
            .await?;
        Ok(Self {
            client,
            source,
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
            .token_from(
                &self.source,
                self.lifetime,
                &self.description,
                &self.redactor,
            )
            .await?;
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
