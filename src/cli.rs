//! The command line: every flag has an environment variable; secrets never come from flags.
//!
//! The flags of the one-shot commands (`publish`, `check`) are in [`oneshot`].

mod multipart;
mod oneshot;
pub mod sources;
mod trust;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::artifacts::ExtractLimits;
use crate::pipeline::ActionTypeId;
use crate::pipeline::config::ConfigPolicy;
use crate::publish::PublisherSettings;
use crate::telemetry::LogFormat;
use crate::worker::WorkerSettings;
pub use multipart::MultipartArgs;
pub use oneshot::{CheckArgs, OutputFormat, PASSWORD_ENV, PublishArgs, RegistryArgs};
pub use trust::TrustArgs;

#[derive(Debug, Parser)]
#[command(
    name = "pipeline-publisher",
    version,
    about = "AWS CodePipeline job worker that publishes build outputs to Artifactory-compatible registries"
)]
pub struct Cli {
    /// Log line format.
    #[arg(long, global = true, env = "PIPELINE_PUBLISHER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter: a level (`info`, `debug`, `trace`) or per-module directives. `publish` and
    /// `check` print their own results and log only warnings unless this is set.
    #[arg(
        long,
        global = true,
        env = "PIPELINE_PUBLISHER_LOG",
        default_value = "info"
    )]
    pub log_level: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Poll CodePipeline for jobs of the custom action and publish them (the production daemon).
    Worker(WorkerArgs),
    /// Serve the Artifactory-compatible mock registry (for local runs and tests).
    #[cfg(feature = "stand-ins")]
    MockRegistry(MockRegistryArgs),
    /// Publish a zip or a directory once, without CodePipeline, exactly as a job would.
    Publish(PublishArgs),
    /// Check the set-up: AWS identity, the action type, the registry, the token, the repository.
    Check(CheckArgs),
    /// Run a complete local demo: CodePipeline, S3 and registry stand-ins plus the real worker.
    #[cfg(feature = "stand-ins")]
    Demo(DemoArgs),
}

/// A flag value that is not a duration. clap shows only this message, so the parser's reason
/// is part of it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("`{value}`: {reason} (e.g. 30s, 5m)")]
pub(crate) struct DurationError {
    value: String,
    reason: humantime::DurationError,
}

pub(crate) fn duration(value: &str) -> Result<Duration, DurationError> {
    humantime::parse_duration(value).map_err(|reason| DurationError {
        value: value.to_owned(),
        reason,
    })
}

/// Flags of `pipeline-publisher worker`. AWS region, credentials and endpoints come from the
/// standard AWS configuration (`AWS_REGION`, `AWS_PROFILE`, instance profile,
/// `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_CODEPIPELINE`, `AWS_ENDPOINT_URL_S3`, ...).
#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub action: ActionTypeArgs,

    /// Jobs processed at once.
    #[arg(long, env = "PIPELINE_PUBLISHER_CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// Wait after an empty poll; doubles while idle up to --poll-max-interval.
    #[arg(long, env = "PIPELINE_PUBLISHER_POLL_MIN_INTERVAL", default_value = "1s", value_parser = duration)]
    pub poll_min_interval: Duration,
    /// Longest wait between polls while idle [default: 10s]; with --wake-queue, the safety net
    /// instead [default: 60s]: idle polls come this far apart or up to 20 % further, never closer.
    #[arg(long, env = "PIPELINE_PUBLISHER_POLL_MAX_INTERVAL", value_parser = duration)]
    pub poll_max_interval: Option<Duration>,
    /// On SIGTERM/SIGINT, how long in-flight jobs may run before they are reported as failed.
    #[arg(long, env = "PIPELINE_PUBLISHER_DRAIN_TIMEOUT", default_value = "60s", value_parser = duration)]
    pub drain_timeout: Duration,
    /// Exit 0 after this many jobs have ended with a result (smoke tests).
    #[arg(long, env = "PIPELINE_PUBLISHER_MAX_JOBS")]
    pub max_jobs: Option<u64>,

    /// How long the registry may stay silent before a request counts as stalled (and is retried).
    #[arg(long, env = "PIPELINE_PUBLISHER_REGISTRY_TIMEOUT", default_value = "120s", value_parser = duration)]
    pub registry_timeout: Duration,
    /// Files of one job uploaded at once.
    #[arg(long, env = "PIPELINE_PUBLISHER_UPLOAD_CONCURRENCY", default_value_t = crate::publish::DEFAULT_UPLOAD_CONCURRENCY, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub upload_concurrency: u16,
    /// Extra CA certificates (PEM bundle) to trust for registries, besides the system's.
    #[arg(long, env = "PIPELINE_PUBLISHER_CA_BUNDLE")]
    pub ca_bundle: Option<PathBuf>,
    /// Lifetime of the registry token minted for each job.
    #[arg(long, env = "PIPELINE_PUBLISHER_TOKEN_LIFETIME", default_value = "15m", value_parser = duration)]
    pub token_lifetime: Duration,
    /// Directory for the journal of acknowledged jobs, which lets a restarted worker end jobs a
    /// crashed one left behind (default: $STATE_DIRECTORY, else ~/.local/state/pipeline-publisher).
    #[arg(long, env = "PIPELINE_PUBLISHER_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Directory for per-job temporary files (default: the system temp dir).
    #[arg(long, env = "PIPELINE_PUBLISHER_WORK_DIR")]
    pub work_dir: Option<PathBuf>,
    /// Use path-style S3 addressing (for S3 stand-ins on 127.0.0.1).
    #[arg(long, env = "PIPELINE_PUBLISHER_S3_FORCE_PATH_STYLE")]
    pub s3_force_path_style: bool,
    /// Allow plain http:// registries on hosts other than loopback (sends passwords unencrypted).
    #[arg(long, env = "PIPELINE_PUBLISHER_ALLOW_INSECURE_HTTP")]
    pub allow_insecure_http: bool,

    /// Most entries an input artifact zip may hold.
    #[arg(long, env = "PIPELINE_PUBLISHER_MAX_ARCHIVE_ENTRIES", default_value_t = ExtractLimits::default().max_entries)]
    pub max_archive_entries: usize,
    /// Most bytes one input artifact may expand to.
    #[arg(long, env = "PIPELINE_PUBLISHER_MAX_EXTRACTED_BYTES", default_value_t = ExtractLimits::default().max_total_bytes)]
    pub max_extracted_bytes: u64,
    /// Highest expansion ratio of a zip entry over 1 MiB.
    #[arg(long, env = "PIPELINE_PUBLISHER_MAX_COMPRESSION_RATIO", default_value_t = ExtractLimits::default().max_ratio)]
    pub max_compression_ratio: u64,

    /// Serve Prometheus metrics at /metrics and liveness at /healthz on this address
    /// (e.g. 0.0.0.0:9464); off when unset.
    #[arg(long, env = "PIPELINE_PUBLISHER_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// /healthz answers 503 when no PollForJobs succeeded for this long (unless all slots are busy).
    #[arg(long, env = "PIPELINE_PUBLISHER_HEALTH_MAX_POLL_AGE", default_value = "3m", value_parser = duration)]
    pub health_max_poll_age: Duration,
    /// While idle, log one info line per interval; 0 turns it off.
    #[arg(long, env = "PIPELINE_PUBLISHER_HEARTBEAT_INTERVAL", default_value = "5m", value_parser = duration)]
    pub heartbeat_interval: Duration,
    /// Files at least this large log upload progress every 10 % or 30 s (e.g. 64MiB).
    #[arg(long, env = "PIPELINE_PUBLISHER_PROGRESS_MIN_SIZE", default_value = "64MiB", value_parser = crate::progress::parse_size)]
    pub progress_min_size: u64,

    #[command(flatten)]
    pub trust: TrustArgs,
    /// Byte ranges of one input artifact downloaded at once (1: one GET after the other).
    #[arg(long, env = "PIPELINE_PUBLISHER_DOWNLOAD_CONCURRENCY", default_value_t = crate::artifacts::ranged::DEFAULT_DOWNLOAD_CONCURRENCY, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub download_concurrency: u16,
    /// Bytes per ranged GET of an input artifact (e.g. 16MiB); larger artifacts are split.
    #[arg(long, env = "PIPELINE_PUBLISHER_DOWNLOAD_PART_SIZE", default_value = "16MiB", value_parser = crate::progress::parse_size)]
    pub download_part_size: u64,
    /// Upload a generic artifact's files as each is extracted, while later ones still download
    /// (a later failure deletes them again: the token needs Delete permission); off: upload
    /// only once the whole artifact is extracted.
    #[arg(long, env = "PIPELINE_PUBLISHER_EARLY_UPLOADS", default_value = "on", value_name = "on|off", action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new(), hide_possible_values = true)]
    pub early_uploads: bool,
    #[command(flatten)]
    pub multipart: MultipartArgs,
    #[command(flatten)]
    pub sources: sources::SourcesArgs,
    /// SQS queue URL receiving CodePipeline's "Action Execution State Change" events: a queued
    /// job is picked up at once, and idle polling slows to --poll-max-interval.
    #[arg(long, env = "PIPELINE_PUBLISHER_WAKE_QUEUE")]
    pub wake_queue: Option<url::Url>,
}

/// The custom action type served (worker) or looked for (check).
#[derive(Debug, Args)]
pub struct ActionTypeArgs {
    /// Action category of the custom action type.
    #[arg(long, env = "PIPELINE_PUBLISHER_CATEGORY", default_value = "Deploy")]
    pub category: String,
    /// Action owner (only `Custom` actions can be polled).
    #[arg(long, env = "PIPELINE_PUBLISHER_OWNER", default_value = "Custom")]
    pub owner: String,
    /// Action provider name.
    #[arg(
        long,
        env = "PIPELINE_PUBLISHER_PROVIDER",
        default_value = "Artifactory"
    )]
    pub provider: String,
    /// Action type versions, comma-separated: the worker serves each (1 takes a password, 2
    /// adds Authentication).
    #[arg(long, env = "PIPELINE_PUBLISHER_ACTION_VERSION", default_value = "1,2")]
    pub action_version: String,
}

impl ActionTypeArgs {
    /// The first version's action type.
    pub fn action_type(&self) -> ActionTypeId {
        self.action_types().swap_remove(0)
    }

    /// The versions served, in the order given (never empty).
    pub fn versions(&self) -> Vec<String> {
        self.action_types()
            .into_iter()
            .map(|action_type| action_type.version)
            .collect()
    }

    /// Every version's action type, in the order given (never empty).
    pub fn action_types(&self) -> Vec<ActionTypeId> {
        let mut versions: Vec<&str> = self
            .action_version
            .split(',')
            .map(str::trim)
            .filter(|version| !version.is_empty())
            .collect();
        versions.dedup();
        if versions.is_empty() {
            versions.push("1");
        }
        versions
            .into_iter()
            .map(|version| ActionTypeId {
                category: self.category.clone(),
                owner: self.owner.clone(),
                provider: self.provider.clone(),
                version: version.to_owned(),
            })
            .collect()
    }
}

impl WorkerArgs {
    pub fn action_type(&self) -> ActionTypeId {
        self.action.action_type()
    }

    pub fn worker_settings(&self) -> WorkerSettings {
        WorkerSettings {
            concurrency: usize::from(self.concurrency),
            poll_min_interval: self.poll_min_interval,
            poll_max_interval: self
                .poll_max_interval
                .unwrap_or(if self.wake_queue.is_some() {
                    sources::WAKE_QUEUE_POLL_MAX_INTERVAL
                } else {
                    sources::POLL_MAX_INTERVAL
                }),
            fallback_poll_max_interval: self
                .poll_max_interval
                .map_or(sources::POLL_MAX_INTERVAL, |max| {
                    max.min(sources::POLL_MAX_INTERVAL)
                }),
            drain_timeout: self.drain_timeout,
            max_jobs: self.max_jobs,
            heartbeat_interval: self.heartbeat_interval,
            ..WorkerSettings::default()
        }
    }

    /// `--state-dir`, else systemd's `$STATE_DIRECTORY`, else the XDG state directory.
    pub fn state_dir(&self) -> PathBuf {
        if let Some(dir) = &self.state_dir {
            return dir.clone();
        }
        let from_env = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
        if let Some(dir) = from_env("STATE_DIRECTORY") {
            // systemd may list several directories separated by ':'; the first is ours.
            let dir = dir.to_string_lossy();
            return PathBuf::from(dir.split(':').next().unwrap_or_default());
        }
        if let Some(dir) = from_env("XDG_STATE_HOME") {
            return PathBuf::from(dir).join("pipeline-publisher");
        }
        from_env("HOME")
            .map(|home| PathBuf::from(home).join(".local/state/pipeline-publisher"))
            .unwrap_or_else(|| std::env::temp_dir().join("pipeline-publisher-state"))
    }

    pub fn publisher_settings(&self) -> PublisherSettings {
        PublisherSettings {
            config_policy: ConfigPolicy {
                allow_insecure_http: self.allow_insecure_http,
            },
            extract_limits: ExtractLimits {
                max_entries: self.max_archive_entries,
                max_total_bytes: self.max_extracted_bytes,
                max_ratio: self.max_compression_ratio,
            },
            token_lifetime: self.token_lifetime,
            upload_concurrency: usize::from(self.upload_concurrency),
            work_dir: self.work_dir.clone(),
            progress_log_min_bytes: self.progress_min_size,
            // The AWS identity is added by `app::run_worker`, which loads the AWS configuration.
            login: crate::publish::login::LoginSettings {
                trust: self.trust.fleet_trust().unwrap_or_default(),
                ..Default::default()
            },
            download: crate::artifacts::DownloadSettings {
                concurrency: usize::from(self.download_concurrency),
                part_size: self.download_part_size,
            },
            multipart: self.multipart.settings(),
            early_uploads: self.early_uploads,
            ..PublisherSettings::default()
        }
    }
}

/// Flags of `pipeline-publisher mock-registry`.
#[derive(Debug, Args)]
pub struct MockRegistryArgs {
    /// Address to listen on.
    #[arg(long, env = "MOCK_REGISTRY_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    /// Directory that keeps deployed files and metadata across restarts (default: a temp dir).
    #[arg(long, env = "MOCK_REGISTRY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// A user as `name:password`; repeat for several (default: demo:demo-password).
    #[arg(
        long = "user",
        env = "MOCK_REGISTRY_USERS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub users: Vec<String>,
    /// Repository keys to serve; any key is accepted when none are given.
    #[arg(long = "repo", env = "MOCK_REGISTRY_REPOS", value_delimiter = ',')]
    pub repos: Vec<String>,
}

/// Flags of `pipeline-publisher demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory with the firmware example to publish.
    #[arg(long, env = "PIPELINE_PUBLISHER_DEMO_EXAMPLE")]
    pub example_dir: Option<PathBuf>,
    /// After the jobs end, keep the stand-ins running and print the registry UI and pipeline view URLs; Ctrl-C stops.
    #[arg(long, env = "PIPELINE_PUBLISHER_DEMO_SERVE")]
    pub serve: bool,
    /// Log at info and print every detail (output variables, file properties) instead of the short summary.
    #[arg(long, env = "PIPELINE_PUBLISHER_DEMO_VERBOSE")]
    pub verbose: bool,
}
