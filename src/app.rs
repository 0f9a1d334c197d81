//! Wiring for the long-running commands: build the real clients, then hand them to the library.

use std::sync::Arc;

use anyhow::Context;

use crate::artifacts::ArtifactStore;
#[cfg(feature = "stand-ins")]
use crate::cli::MockRegistryArgs;
use crate::cli::WorkerArgs;
use crate::cli::sources::Source;
use crate::health::HealthState;
#[cfg(feature = "stand-ins")]
use crate::mock_registry::{MockRegistry, MockRegistryConfig};
use crate::pipeline::ActionTypeId;
use crate::pipeline::aws::AwsJobApi;
use crate::pipeline::sources::source_config;
use crate::pipeline::wake::SqsWakeQueue;
use crate::publish::{Publisher, PublisherSettings};
use crate::worker::journal::Journal;
use crate::worker::wake::{SourceAddress, SourceMatcher};
use crate::worker::{self, WorkerReport, WorkerSettings};

/// No AWS region is configured, so no CodePipeline endpoint can be chosen.
#[derive(Debug, thiserror::Error)]
#[error(
    "no AWS region is configured; set AWS_REGION to the region of your pipelines (CodePipeline \
     hands out jobs per region)"
)]
pub struct MissingRegion;

impl crate::error::Hint for MissingRegion {
    fn hint(&self) -> Option<std::borrow::Cow<'static, str>> {
        Some("set AWS_REGION (or a region in the AWS_PROFILE's config)".into())
    }
}

/// Loads the standard AWS configuration: region, credentials chain, endpoint overrides.
pub async fn load_aws_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await
}

/// The job API of every configured source (the worker's own account and region by default).
async fn source_apis(
    sdk_config: &aws_config::SdkConfig,
    sources: &[Source],
    action_type: &ActionTypeId,
) -> anyhow::Result<Vec<worker::Source<AwsJobApi>>> {
    let mut apis = Vec::with_capacity(sources.len());
    for source in sources {
        let config = source_config(sdk_config, &source.access("pipeline-publisher")).await;
        let versions = source.action_types(action_type);
        let api = AwsJobApi::for_versions(&config, &versions)
            .with_context(|| format!("the action type {action_type} is not valid"))?;
        tracing::info!(
            source = %source.name,
            region = %source.region,
            role = source.role.as_deref().unwrap_or("(the worker's own credentials)"),
            versions = %source.versions.join("+"),
            "serving source"
        );
        apis.push(worker::Source::new(source.name.clone(), Arc::new(api)));
    }
    Ok(apis)
}

/// Starts the wake-up queue's receiver; its events go to the loop.
fn start_wake_queue(
    sdk_config: &aws_config::SdkConfig,
    url: &url::Url,
    sources: &[Source],
    action_type: &ActionTypeId,
    metrics: Arc<crate::metrics::Metrics>,
) -> (
    tokio::sync::mpsc::Receiver<worker::WakeEvent>,
    tokio::task::JoinHandle<()>,
) {
    let queue = Arc::new(SqsWakeQueue::new(sdk_config, url));
    let matcher = SourceMatcher {
        action_type: action_type.clone(),
        sources: sources
            .iter()
            .map(|source| SourceAddress {
                account: source.account.clone(),
                region: source.region.clone(),
                versions: source.versions.clone(),
            })
            .collect(),
    };
    let (sender, receiver) = tokio::sync::mpsc::channel(256);
    let task = tokio::spawn(worker::wake::run(queue, matcher, metrics, sender));
    (receiver, task)
}

/// `pipeline-publisher worker`: runs until SIGINT/SIGTERM or `--max-jobs`.
pub async fn run_worker(args: WorkerArgs) -> anyhow::Result<WorkerReport> {
    let sdk_config = load_aws_config().await;
    let configured = !args.sources.sources.is_empty() || args.sources.sources_file.is_some();
    if sdk_config.region().is_none() && !configured {
        return Err(MissingRegion.into());
    }
    let action_type = args.action_type();
    let sources = args.sources.resolve(
        sdk_config.region().map(|r| r.as_ref()),
        &args.action.versions(),
    )?;
    let apis = source_apis(&sdk_config, &sources, &action_type).await?;
    let login = args
        .trust
        .login_settings(Some(crate::aws_identity::AwsIdentity::new(&sdk_config)))?;
    let store = ArtifactStore::new(sdk_config.clone(), args.s3_force_path_style);
    let http = crate::registry::http_client_with(&crate::registry::HttpOptions {
        read_timeout: args.registry_timeout,
        ca_bundle: args.ca_bundle.clone(),
    })
    .context("could not set up the HTTP client")?;
    let state_dir = args.state_dir();
    let journal = Journal::open(&state_dir).context("could not open the job journal")?;
    let settings = WorkerSettings {
        journal: Some(Arc::new(journal)),
        ..args.worker_settings()
    };
    let publisher = Publisher::new(
        PublisherSettings {
            metrics: settings.metrics.clone(),
            login,
            ..args.publisher_settings()
        },
        store,
        http,
    );
    if let Some(address) = args.metrics_listen {
        let state = HealthState {
            metrics: settings.metrics.clone(),
            max_poll_age: args.health_max_poll_age,
        };
        let bound = crate::health::spawn(address, state).await?;
        tracing::info!(%bound, "serving /metrics and /healthz");
    }
    let wake = args.wake_queue.as_ref().map(|url| {
        tracing::info!(queue = %url, "waking up on the queue's CodePipeline events");
        start_wake_queue(
            &sdk_config,
            url,
            &sources,
            &action_type,
            settings.metrics.clone(),
        )
    });
    let (wake_events, wake_task) = wake.unzip();
    tracing::info!(action_type = %action_type, state_dir = %state_dir.display(), sources = sources.len(), "starting worker");
    let report = worker::run_sources(
        apis,
        Arc::new(publisher),
        settings,
        wake_events,
        shutdown_signal(),
    )
    .await;
    if let Some(task) = wake_task {
        task.abort();
    }
    Ok(report)
}

/// `pipeline-publisher mock-registry`: serves until SIGINT/SIGTERM.
#[cfg(feature = "stand-ins")]
pub async fn run_mock_registry(args: MockRegistryArgs) -> anyhow::Result<()> {
    let mut config = MockRegistryConfig {
        data_dir: args.data_dir,
        repositories: args.repos,
        ..MockRegistryConfig::default()
    };
    if !args.users.is_empty() {
        config.users = args
            .users
            .iter()
            .map(|user| {
                user.split_once(':')
                    .map(|(name, password)| (name.to_owned(), password.to_owned()))
                    .with_context(|| {
                        format!(
                            "--user `{}` must be name:password",
                            user.split(':').next().unwrap_or("")
                        )
                    })
            })
            .collect::<anyhow::Result<_>>()?;
    }
    let registry = MockRegistry::new(config).context("could not open the mock registry's data")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| {
            format!(
                "could not listen on {} (is the port in use? try --listen 127.0.0.1:0)",
                args.listen
            )
        })?;
    let address = listener.local_addr()?;
    tracing::info!("mock registry listening on http://{address}/artifactory/");
    eprintln!(
        "Mock registry: http://{address} (ArtifactoryHost), users: {}",
        describe_users(&args.users)
    );
    registry.serve(listener, shutdown_signal()).await?;
    Ok(())
}

#[cfg(feature = "stand-ins")]
fn describe_users(users: &[String]) -> String {
    if users.is_empty() {
        "demo / demo-password".to_owned()
    } else {
        users
            .iter()
            .filter_map(|user| user.split(':').next())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT received; shutting down"),
        () = terminate => tracing::info!("SIGTERM received; shutting down"),
    }
}
