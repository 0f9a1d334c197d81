//! Why a job failed, and how that is told to CodePipeline.
//!
//! [`JobError`] is the one error type a job handler returns. [`JobError::failure_type`] is the
//! single place that decides which `failureDetails.type` a failure gets, and
//! [`JobFailure::from_error`] renders the error chain into the message CodePipeline shows:
//! secrets scrubbed, trimmed to the API's limit without splitting a character.

use std::error::Error as StdError;
use std::fmt;

use crate::artifacts::{DownloadError, ExtractError, UploadError};
use crate::pipeline::config::ConfigError;
use crate::publish::plan::PlanError;
use crate::registry::RegistryError;
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

/// Everything that can make a job fail. Each variant's message describes its own layer only;
/// the cause is kept as `#[source]` and rendered as a chain.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Configuration(#[from] ConfigError),

    #[error("could not download input artifact `{artifact}`")]
    Download {
        artifact: String,
        #[source]
        source: DownloadError,
    },

    #[error("input artifact `{artifact}` was refused")]
    Extract {
        artifact: String,
        #[source]
        source: ExtractError,
    },

    #[error("input artifact `{artifact}` {}", source.outcome())]
    Plan {
        artifact: String,
        #[source]
        source: PlanError,
    },

    #[error(
        "the files were published, but build info {name}/{number} was not; re-running the stage \
         publishes it (files already published are kept)"
    )]
    BuildInfo {
        name: String,
        number: String,
        #[source]
        source: Box<RegistryError>,
    },

    #[error(
        "the files were published, but publish-receipt.json could not be written to output \
         artifact `{artifact}`"
    )]
    OutputArtifact {
        artifact: String,
        #[source]
        source: UploadError,
    },

    #[error("could not exchange UserName and Password for a registry token at {host}")]
    Token {
        host: String,
        #[source]
        source: Box<RegistryError>,
    },

    #[error(
        "publishing `{path}` failed; {} file{} published, {} not: re-running the stage \
         publishes only what is missing{}",
        published.len(),
        if published.len() == 1 { " was" } else { "s were" },
        not_published.len(),
        list_files(published, not_published)
    )]
    Publish {
        path: String,
        /// Where the files that did land are.
        published: Vec<String>,
        /// Paths (inside the artifact) of the files that did not, the failing one first.
        not_published: Vec<String>,
        #[source]
        source: Box<RegistryError>,
    },

    #[error("the job handler panicked: {0}")]
    Panicked(String),

    #[error("the worker stopped before the job finished ({0}); run the pipeline stage again")]
    Interrupted(String),

    #[error("{context}")]
    Internal {
        context: String,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
}

/// At most this many file names of each kind are listed in a failure message.
const LISTED_FILES: usize = 20;

fn list_files(published: &[String], not_published: &[String]) -> String {
    let list = |title: &str, files: &[String]| {
        if files.is_empty() {
            return String::new();
        }
        let mut text = format!("\n  {title}:");
        for file in files.iter().take(LISTED_FILES) {
            text.push_str("\n    ");
            text.push_str(file);
        }
        if files.len() > LISTED_FILES {
            text.push_str(&format!("\n    … and {} more", files.len() - LISTED_FILES));
        }
        text
    };
    format!(
        "{}{}",
        list("published", published),
        list("not published", not_published)
    )
}

impl JobError {
    /// The one mapping from an error to the failure type CodePipeline is told.
    pub fn failure_type(&self) -> FailureType {
        match self {
            JobError::Configuration(_) | JobError::Extract { .. } => {
                FailureType::ConfigurationError
            }
            JobError::Plan { source, .. } => source.failure_type(),
            JobError::Download { source, .. } if source.is_access_denied() => {
                FailureType::PermissionError
            }
            JobError::OutputArtifact { source, .. } if source.is_access_denied() => {
                FailureType::PermissionError
            }
            JobError::Token { source, .. }
            | JobError::Publish { source, .. }
            | JobError::BuildInfo { source, .. }
                if source.is_permission_denied() =>
            {
                FailureType::PermissionError
            }
            JobError::Download { .. }
            | JobError::Token { .. }
            | JobError::Publish { .. }
            | JobError::BuildInfo { .. }
            | JobError::OutputArtifact { .. }
            | JobError::Panicked(_)
            | JobError::Interrupted(_)
            | JobError::Internal { .. } => FailureType::JobFailed,
        }
    }

    /// Wraps an unexpected local failure (temporary directory, file system) with what was being done.
    pub fn internal(
        context: impl Into<String>,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        JobError::Internal {
            context: context.into(),
            source: source.into(),
        }
    }
}

/// Renders an error and its causes, one per line: `error: …` then `Caused by: …`.
pub fn render_chain(error: &(dyn StdError + 'static)) -> String {
    let mut rendered = format!("error: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        rendered.push_str("\nCaused by: ");
        rendered.push_str(&cause.to_string());
        source = cause.source();
    }
    rendered
}

/// Renders an error and its causes on one line, `outer: inner: innermost`, for embedding in
/// another error's message.
pub fn inline_chain(error: &(dyn StdError + 'static)) -> String {
    let mut rendered = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some errors repeat their source's message in their own; say it once.
        if !rendered.contains(&cause_text) {
            rendered.push_str(": ");
            rendered.push_str(&cause_text);
        }
        source = cause.source();
    }
    rendered
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

/// What `PutJobFailureResult` is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFailure {
    pub failure_type: FailureType,
    /// The rendered error chain, secrets scrubbed, 1–5000 characters.
    pub message: String,
    pub external_execution_id: Option<String>,
}

impl JobFailure {
    pub fn from_error(error: &JobError, redactor: &Redactor) -> Self {
        Self::new(error.failure_type(), &render_chain(error), redactor)
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
        let error = JobError::internal(
            "could not prepare the workspace",
            std::io::Error::other("disk full while writing p4ssw0rd!"),
        );
        let failure = JobFailure::from_error(&error, &redactor);
        assert_eq!(failure.failure_type, FailureType::JobFailed);
        assert_eq!(
            failure.message,
            "error: could not prepare the workspace\nCaused by: disk full while writing ****"
        );
    }
}
