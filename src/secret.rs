//! Secret values and the scrubber that keeps them out of everything a person can read.
//!
//! Secrets travel as [`secrecy::SecretString`], whose `Debug` never shows the value. Anything
//! that leaves the process as text (a CodePipeline failure message, a rendered error chain) goes
//! through a [`Redactor`] that knows every secret of the job — the registry password, the minted
//! token, the S3 secret key and session token — and replaces them with `****`.

use std::sync::{Arc, Mutex, PoisonError};

pub use secrecy::{ExposeSecret, SecretString};

/// What a secret is replaced with wherever it would otherwise be shown.
pub const MASK: &str = "****";

/// Secrets shorter than this are not scrubbed from free text: replacing every `a` in a message
/// because someone's password is `a` would destroy the message while protecting nothing.
const MIN_SCRUBBED_LEN: usize = 4;

/// The set of secret strings of one job; cheap to clone and shared with the job's task.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Arc<Mutex<Vec<SecretString>>>,
}

impl Redactor {
    pub fn new() -> Self {
        Self::default()
    }

    /// Remembers a secret so that later calls to [`Redactor::scrub`] remove it.
    pub fn add(&self, secret: &SecretString) {
        if secret.expose_secret().len() < MIN_SCRUBBED_LEN {
            return;
        }
        let mut secrets = self.secrets.lock().unwrap_or_else(PoisonError::into_inner);
        if !secrets
            .iter()
            .any(|known| known.expose_secret() == secret.expose_secret())
        {
            secrets.push(secret.clone());
        }
    }

    /// Returns `text` with every known secret replaced by [`MASK`].
    pub fn scrub(&self, text: &str) -> String {
        let secrets = self.secrets.lock().unwrap_or_else(PoisonError::into_inner);
        // Longest first, so a secret that contains another is masked whole.
        let mut values: Vec<&str> = secrets.iter().map(|s| s.expose_secret()).collect();
        values.sort_by_key(|value| std::cmp::Reverse(value.len()));
        let mut scrubbed = text.to_owned();
        for value in values {
            if scrubbed.contains(value) {
                scrubbed = scrubbed.replace(value, MASK);
            }
        }
        scrubbed
    }
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self
            .secrets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        write!(f, "Redactor({count} secrets)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubs_every_known_secret_and_leaves_the_rest() {
        let redactor = Redactor::new();
        redactor.add(&SecretString::from("hunter2-password"));
        redactor.add(&SecretString::from("hunter2"));
        let text = "login with hunter2-password failed; token hunter2 rejected";
        assert_eq!(
            redactor.scrub(text),
            "login with **** failed; token **** rejected"
        );
        assert!(!format!("{redactor:?}").contains("hunter2"));
    }

    #[test]
    fn tiny_secrets_are_not_scrubbed_from_prose() {
        let redactor = Redactor::new();
        redactor.add(&SecretString::from("a"));
        assert_eq!(redactor.scrub("a cat"), "a cat");
    }
}
