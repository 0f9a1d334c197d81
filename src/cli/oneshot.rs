//! Flags of the one-shot commands, `publish` and `check`.
//!
//! The registry settings use the action's property names in a JSON file (`--config`), each
//! overridable by a flag. The password is never a flag: it comes from
//! `PIPELINE_PUBLISHER_PASSWORD` or an interactive prompt.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{ActionTypeArgs, duration};

/// The environment variable the one-shot commands read the registry password from.
pub const PASSWORD_ENV: &str = "PIPELINE_PUBLISHER_PASSWORD";

/// Where to publish, shared by `publish` and `check`.
#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// JSON file with the action's properties (ArtifactoryHost, RepoKey, UserName, TargetPath,
    /// Properties, ...), as in examples/firmware/action-config.json; flags override it. A
    /// Password in the file is ignored.
    #[arg(long, env = "PIPELINE_PUBLISHER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Registry base URL (ArtifactoryHost), e.g. https://acme.jfrog.io.
    #[arg(long, env = "PIPELINE_PUBLISHER_ARTIFACTORY_HOST", value_name = "URL")]
    pub artifactory_host: Option<String>,
    /// Repository key (RepoKey).
    #[arg(long, env = "PIPELINE_PUBLISHER_REPO_KEY", value_name = "KEY")]
    pub repo_key: Option<String>,
    /// Registry user (UserName); its password comes from PIPELINE_PUBLISHER_PASSWORD or a prompt.
    #[arg(long, env = "PIPELINE_PUBLISHER_USER_NAME", value_name = "NAME")]
    pub user_name: Option<String>,
    /// Allow plain http:// registries on hosts other than loopback (sends passwords unencrypted).
    #[arg(long, env = "PIPELINE_PUBLISHER_ALLOW_INSECURE_HTTP")]
    pub allow_insecure_http: bool,
    /// Lifetime of the registry token minted for the run.
    #[arg(long, env = "PIPELINE_PUBLISHER_TOKEN_LIFETIME", default_value = "15m", value_parser = duration)]
    pub token_lifetime: Duration,
    /// How the registry token is obtained (Authentication): password (default), aws-iam,
    /// oidc:<provider>, secretsmanager:<secret>, ssm:<parameter>.
    #[arg(long, env = "PIPELINE_PUBLISHER_AUTHENTICATION", value_name = "MODE")]
    pub authentication: Option<String>,
    #[command(flatten)]
    pub trust: super::TrustArgs,
}

/// How the final summary is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    /// JFrog CLI's shape: {"status","totals":{"success","failure"},"files":[{"source","target","sha256"}]}.
    Json,
}

/// Flags of `pipeline-publisher publish`.
#[derive(Debug, Args)]
#[command(after_help = "\
The password of --user-name is read from PIPELINE_PUBLISHER_PASSWORD, or asked for when standard
input is a terminal; it is never a flag. --dry-run needs no password and contacts nothing.

Exit codes: 0 everything was published (or is already there with identical content); 1 the
publish failed, or the command line or configuration is invalid; 2 there was nothing to publish
(an empty directory or zip); 64 the flags could not be parsed.")]
pub struct PublishArgs {
    /// A zip archive or a directory of build output.
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Package format (TypeOfArtifact).
    #[arg(long, env = "PIPELINE_PUBLISHER_TYPE_OF_ARTIFACT", value_name = "TYPE")]
    pub type_of_artifact: Option<String>,
    /// Path inside the repository (TargetPath); may use {PipelineName} {ExecutionId} {Revision}
    /// {ShortRevision}. Default {PipelineName}/{ExecutionId}.
    #[arg(long, env = "PIPELINE_PUBLISHER_TARGET_PATH", value_name = "PATH")]
    pub target_path: Option<String>,
    /// Properties for every file (Properties): key=value;key2=a,b.
    #[arg(long, env = "PIPELINE_PUBLISHER_PROPERTIES", value_name = "PAIRS")]
    pub properties: Option<String>,
    /// Contact address recorded with published packages (EmailAddress).
    #[arg(long, env = "PIPELINE_PUBLISHER_EMAIL_ADDRESS", value_name = "ADDRESS")]
    pub email_address: Option<String>,
    /// Pipeline name for {PipelineName} and the codepipeline.pipeline property.
    #[arg(
        long,
        env = "PIPELINE_PUBLISHER_PIPELINE_NAME",
        default_value = "local"
    )]
    pub pipeline_name: String,
    /// Execution id for {ExecutionId} and the codepipeline.execution property
    /// (default: local-<unix time>).
    #[arg(long, env = "PIPELINE_PUBLISHER_EXECUTION_ID")]
    pub execution_id: Option<String>,
    /// Build name of the build info (default: the pipeline name, or the file spec's buildName).
    #[arg(long, env = "PIPELINE_PUBLISHER_BUILD_NAME")]
    pub build_name: Option<String>,
    /// Build number of the build info (default: the execution id).
    #[arg(long, env = "PIPELINE_PUBLISHER_BUILD_NUMBER")]
    pub build_number: Option<String>,
    /// Source revision for {Revision}, {ShortRevision} and the vcs.revision property.
    #[arg(long, env = "PIPELINE_PUBLISHER_REVISION")]
    pub revision: Option<String>,
    /// Print the plan (source → format → target URL, size, sha256, properties); contact nothing.
    #[arg(long, env = "PIPELINE_PUBLISHER_DRY_RUN")]
    pub dry_run: bool,
    /// Summary format on standard output.
    #[arg(long, env = "PIPELINE_PUBLISHER_OUTPUT", value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Files at least this large get their own progress bar (or log lines when not on a terminal).
    #[arg(long, env = "PIPELINE_PUBLISHER_PROGRESS_MIN_SIZE", default_value = "8MiB", value_parser = crate::progress::parse_size)]
    pub progress_min_size: u64,
    /// Files uploaded at once.
    #[arg(long, env = "PIPELINE_PUBLISHER_UPLOAD_CONCURRENCY", default_value_t = crate::publish::DEFAULT_UPLOAD_CONCURRENCY, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub upload_concurrency: u16,
    #[command(flatten)]
    pub multipart: crate::cli::MultipartArgs,
}

/// Flags of `pipeline-publisher check`.
#[derive(Debug, Args)]
#[command(after_help = "\
AWS region, credentials and endpoints come from the standard AWS configuration (AWS_REGION,
AWS_PROFILE, instance profile, AWS_ENDPOINT_URL, ...). The action type is looked up with the
read-only ListActionTypes, never PollForJobs (which would take a real job away from the workers).
Registry checks run when --artifactory-host or --config is given; the password comes from
PIPELINE_PUBLISHER_PASSWORD or a prompt. Exit code 0 when every check passed, 1 otherwise.")]
pub struct CheckArgs {
    #[command(flatten)]
    pub action: ActionTypeArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Skip the AWS checks (identity, action type), e.g. on a laptop without AWS credentials.
    #[arg(long, env = "PIPELINE_PUBLISHER_SKIP_AWS")]
    pub skip_aws: bool,
    /// The worker's sources: each is checked (role assumed, action type present).
    #[command(flatten)]
    pub sources: super::sources::SourcesArgs,
}
