//! Why a job failed: the publishing layer's own error, which collects the layers below it and
//! is the one place that maps each failure onto a CodePipeline failure type ([`Classify`]).

use std::error::Error as StdError;

use crate::artifacts::{DownloadError, ExtractError, UploadError};
use crate::pipeline::config::ConfigError;
use crate::pipeline::{Classify, FailureType};
use crate::publish::login::LoginError;
use crate::publish::plan::PlanError;
use crate::registry::RegistryError;

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

    #[error(
        "input artifact `{artifact}` {}",
        if source.is_worker_io() { "could not be extracted" } else { "was refused" }
    )]
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

    #[error(transparent)]
    Login {
        #[from]
        source: LoginError,
    },

    #[error("{}", token_failure(mode, host))]
    Token {
        host: String,
        /// The `Authentication` mode the token was asked with (`password`, `aws-iam`, `oidc`).
        mode: &'static str,
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

    /// A failure met after uploads had begun while the artifact was still being downloaded and
    /// extracted ([`crate::publish::early`]), when the files already uploaded could not all be
    /// taken back: `source` says what failed, `refusal` why they stayed.
    #[error(
        "the job failed after uploads had begun, and {} uploaded file{} could not be taken back \
         ({refusal}): give the publishing user Delete permission on the repository, or run the \
         worker with --early-uploads off, so that a failed run publishes nothing; re-running the \
         stage publishes only what is missing{}",
        published.len(),
        if published.len() == 1 { "" } else { "s" },
        list_files(published, not_published)
    )]
    PartlyPublished {
        /// Where the files that stay published are.
        published: Vec<String>,
        /// Paths (inside the artifact) of the files that are not.
        not_published: Vec<String>,
        /// The registry's answer to taking a file back.
        refusal: String,
        #[source]
        source: Box<JobError>,
    },

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

/// The headline of a token failure, in the words of its mode.
fn token_failure(mode: &str, host: &str) -> String {
    match mode {
        "password" => {
            format!("could not exchange UserName and Password for a registry token at {host}")
        }
        "aws-iam" => {
            format!("could not exchange the worker's AWS identity for a registry token at {host}")
        }
        other => format!("could not get a registry token at {host} (Authentication {other})"),
    }
}

impl Classify for JobError {
    /// The one mapping from a publishing failure to the failure type CodePipeline is told.
    fn failure_type(&self) -> FailureType {
        match self {
            JobError::Extract { source, .. } if source.is_worker_io() => FailureType::JobFailed,
            JobError::Configuration(_) | JobError::Extract { .. } => {
                FailureType::ConfigurationError
            }
            JobError::Plan { source, .. } => source.failure_type(),
            JobError::PartlyPublished { source, .. } => source.failure_type(),
            JobError::Download { source, .. } if source.is_access_denied() => {
                FailureType::PermissionError
            }
            JobError::OutputArtifact { source, .. } if source.is_access_denied() => {
                FailureType::PermissionError
            }
            JobError::Token { source, .. } if source.is_configuration_problem() => {
                FailureType::ConfigurationError
            }
            JobError::Login { source } => source.failure_type(),
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
            | JobError::Internal { .. } => FailureType::JobFailed,
        }
    }
}

impl JobError {
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

#[cfg(test)]
mod tests {
    //! Every failure message a pipeline author can see for a publishing failure, as CodePipeline
    //! shows it (type, then the rendered chain).

    use super::*;
    use crate::artifacts::ExtractError;
    use crate::pipeline::JobFailure;
    use crate::pipeline::config::ConfigProblem;
    use crate::secret::Redactor;

    fn rendered(error: JobError) -> String {
        let failure = JobFailure::from_error(&error, &Redactor::new());
        format!("[{}]\n{}", failure.failure_type, failure.message)
    }

    fn registry_status(status: u16, message: &str, hint: Option<&str>) -> Box<RegistryError> {
        Box::new(RegistryError::Status {
            operation: "deploy",
            url: "https://acme.jfrog.io/artifactory/firmware/nestbox-cam/2.4.1/fw.img".into(),
            status,
            message: message.into(),
            hint: hint.map(str::to_owned),
        })
    }

    #[test]
    fn a_failure_after_early_uploads_keeps_its_type_and_says_what_stayed_and_the_fix() {
        let error = JobError::PartlyPublished {
            published: vec!["https://acme.jfrog.io/artifactory/fw/nestbox-cam/NOTES.md".into()],
            not_published: vec!["fw/image.bin".into()],
            refusal:
                "delete https://acme.jfrog.io/artifactory/fw/nestbox-cam/NOTES.md answered 403: \
                      Not enough permissions"
                    .into(),
            source: Box::new(JobError::Extract {
                artifact: "BuildOutput".into(),
                source: ExtractError::Symlink {
                    entry: "fw/image.bin".into(),
                },
            }),
        };
        let text = rendered(error);
        assert!(text.starts_with("[ConfigurationError]\n"), "{text}");
        assert!(
            text.contains("1 uploaded file could not be taken back (delete https://"),
            "{text}"
        );
        assert!(
            text.contains("give the publishing user Delete permission on the repository, or run the worker with --early-uploads off"),
            "{text}"
        );
        let not_published = text.split("not published:").nth(1).unwrap_or_default();
        assert!(not_published.contains("fw/image.bin"), "{text}");
        assert!(
            text.contains("Caused by: input artifact `BuildOutput` was refused"),
            "{text}"
        );
    }

    #[test]
    fn failure_messages_a_pipeline_author_sees() {
        let cases = [
            JobError::Configuration(ConfigError {
                problems: vec![
                    ConfigProblem {
                        property: "RepoKey",
                        problem: "is required but missing".into(),
                        hint: None,
                    },
                    ConfigProblem {
                        property: "TargetPath",
                        problem: "`../x` leaves the repository".into(),
                        hint: None,
                    },
                ],
            }),
            JobError::Download {
                artifact: "BuildOutput".into(),
                source: DownloadError::NotFound {
                    bucket: "artifacts".into(),
                    key: "nestbox/BuildOutpu/abc.zip".into(),
                },
            },
            JobError::Download {
                artifact: "BuildOutput".into(),
                source: DownloadError::AccessDenied {
                    bucket: "artifacts".into(),
                    key: "nestbox/BuildOutpu/abc.zip".into(),
                    code: "AccessDenied".into(),
                    message: "Access Denied".into(),
                },
            },
            JobError::Extract {
                artifact: "BuildOutput".into(),
                source: ExtractError::Symlink {
                    entry: "firmware/latest.img".into(),
                },
            },
            JobError::Extract {
                artifact: "BuildOutput".into(),
                source: ExtractError::Write {
                    path: "/var/lib/pipeline-publisher/work/job-1/artifact-0/fw.img".into(),
                    source: std::io::Error::other("No space left on device (os error 28)"),
                },
            },
            JobError::Token {
                host: "https://acme.jfrog.io/".into(),
                mode: "password",
                source: registry_status(
                    401,
                    "Bad credentials",
                    Some("check the action's UserName and Password"),
                ),
            },
            JobError::Publish {
                path: "nestbox-cam/2.4.1/fw.img".into(),
                published: vec!["nestbox-cam/2.4.1/RELEASE-NOTES.md".into()],
                not_published: vec!["fw.img".into(), "fw.img.sha256".into()],
                source: registry_status(
                    403,
                    "Not enough permissions",
                    Some("the user lacks deploy permission on this repository path"),
                ),
            },
            JobError::Publish {
                path: "nestbox-cam/2.4.1/fw.img".into(),
                published: vec![],
                not_published: vec!["fw.img".into()],
                source: Box::new(RegistryError::Conflict {
                    url: "https://acme.jfrog.io/artifactory/firmware/nestbox-cam/2.4.1/fw.img"
                        .into(),
                    local_sha256: "aa".repeat(32),
                    remote_sha256: "bb".repeat(32),
                }),
            },
            JobError::BuildInfo {
                name: "nestbox-firmware".into(),
                number: "exec-1".into(),
                source: registry_status(500, "Internal Server Error", None),
            },
            JobError::internal(
                "could not create a job directory under `/var/lib/pipeline-publisher/work` \
                 (check --work-dir)",
                std::io::Error::other("Read-only file system (os error 30)"),
            ),
        ];
        let all: Vec<String> = cases.into_iter().map(rendered).collect();
        insta::assert_snapshot!(all.join("\n\n"));
    }
}
