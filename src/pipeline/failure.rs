//! How a failure is told to CodePipeline.
//!
//! Each layer owns its errors; the error a job handler returns implements [`Classify`], the one
//! decision of which `failureDetails.type` it gets. [`JobFailure::from_error`] renders its chain
//! (with [`crate::error::render_chain`], the renderer every output uses) into the message
//! CodePipeline shows: secrets scrubbed, trimmed to the API's limit without splitting a
//! character.

use std::fmt;

use crate::error::{no_hints, render_chain};
use crate::secret::Redactor;

/// `failureDetails.message` must be 1–5000 characters.
pub const MAX_FAILURE_MESSAGE_CHARS: usize = 5000;

/// The failure types `PutJobFailureResult` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureType {
    JobFailed,
    ConfigurationError,
    PermissionError,
    RevisionOutOfSync,
    RevisionUnavailable,
    SystemUnavailable,
}

impl FailureType {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureType::JobFailed => "JobFailed",
            FailureType::ConfigurationError => "ConfigurationError",
            FailureType::PermissionError => "PermissionError",
            FailureType::RevisionOutOfSync => "RevisionOutOfSync",
            FailureType::RevisionUnavailable => "RevisionUnavailable",
            FailureType::SystemUnavailable => "SystemUnavailable",
        }
    }
}

impl fmt::Display for FailureType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Trims `text` to at most `max_chars` characters, never splitting a UTF-8 character, and says
/// that it did.
pub fn trim_to_chars(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    const ELLIPSIS: &str = "\n… (truncated)";
    let keep = max_chars.saturating_sub(ELLIPSIS.chars().count());
    let mut trimmed: String = text.chars().take(keep).collect();
    trimmed.push_str(ELLIPSIS);
    trimmed
}

/// An error that knows which CodePipeline failure type it is.
pub trait Classify: std::error::Error + 'static {
    fn failure_type(&self) -> FailureType;
}

/// What `PutJobFailureResult` is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFailure {
    pub failure_type: FailureType,
    /// The rendered error chain, secrets scrubbed, 1–5000 characters.
    pub message: String,
    pub external_execution_id: Option<String>,
}

impl JobFailure {
    pub fn from_error(error: &dyn Classify, redactor: &Redactor) -> Self {
        // Trait upcasting: a `Classify` is an `Error`.
        let chain: &dyn std::error::Error = error;
        Self::new(
            error.failure_type(),
            &render_chain(chain, no_hints),
            redactor,
        )
    }

    /// Builds a failure from free text, scrubbing and trimming it like any other message.
    pub fn new(failure_type: FailureType, message: &str, redactor: &Redactor) -> Self {
        let mut message = trim_to_chars(&redactor.scrub(message), MAX_FAILURE_MESSAGE_CHARS);
        if message.trim().is_empty() {
            message = format!("the job failed ({failure_type})");
        }
        Self {
            failure_type,
            message,
            external_execution_id: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretString;

    #[test]
    fn trimming_respects_the_limit_and_character_boundaries() {
        let text = "é".repeat(6000);
        let trimmed = trim_to_chars(&text, MAX_FAILURE_MESSAGE_CHARS);
        assert!(trimmed.chars().count() <= MAX_FAILURE_MESSAGE_CHARS);
        assert!(trimmed.ends_with("(truncated)"));
        assert_eq!(trim_to_chars("short", 10), "short");
    }

    #[test]
    fn failure_messages_render_the_chain_and_scrub_secrets() {
        let redactor = Redactor::new();
        redactor.add(&SecretString::from("p4ssw0rd!"));
        #[derive(Debug, thiserror::Error)]
        #[error("could not prepare the workspace")]
        struct Workspace(#[source] std::io::Error);
        impl Classify for Workspace {
            fn failure_type(&self) -> FailureType {
                FailureType::JobFailed
            }
        }
        let error = Workspace(std::io::Error::other("disk full while writing p4ssw0rd!"));
        let failure = JobFailure::from_error(&error, &redactor);
        assert_eq!(failure.failure_type, FailureType::JobFailed);
        assert_eq!(
            failure.message,
            "error: could not prepare the workspace\nCaused by: disk full while writing ****"
        );
    }
}
