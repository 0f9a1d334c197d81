//! `pipeline-publisher publish PATH`: one publish of a zip or a directory without CodePipeline,
//! through the job's own configuration parsing, planning and publishing code.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;

use crate::cli::{OutputFormat, PASSWORD_ENV, PublishArgs};
use crate::commands::summary::{self, SummaryFile};
use crate::commands::{local_files, settings};
use crate::pipeline::config::{ActionConfig, ConfigPolicy};
use crate::pipeline::failure::render_chain;
use crate::pipeline::job::{Artifact, PipelineContext};
use crate::pipeline::{JobError, properties};
use crate::progress::{LogProgress, Progress, TerminalProgress};
use crate::publish::{ExtractedArtifact, PublishPlan, receipt};
use crate::registry::{DeployOutcome, RegistryClient, TokenSession};
use crate::secret::{Redactor, SecretString};

/// Exit code: everything was published.
pub const EXIT_PUBLISHED: u8 = 0;
/// Exit code: the publish failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: there were no files to publish.
pub const EXIT_NOTHING_TO_PUBLISH: u8 = 2;

/// Runs the command; returns the exit code. Errors before publishing starts are returned.
pub async fn run(args: PublishArgs) -> anyhow::Result<u8> {
    let overrides = [
        (properties::TYPE_OF_ARTIFACT, args.type_of_artifact.as_ref()),
        (properties::TARGET_PATH, args.target_path.as_ref()),
        (properties::PROPERTIES, args.properties.as_ref()),
        (properties::EMAIL_ADDRESS, args.email_address.as_ref()),
    ];
    let settings = settings::Settings::load(&args.registry, &overrides)?;
    let scratch = private_tempdir()?;
    // Hashing large files hands chunks to hashing threads with blocking sends.
    let files = {
        let (path, scratch) = (args.path.clone(), scratch.path().to_owned());
        tokio::task::spawn_blocking(move || local_files::collect(&path, &scratch))
            .await
            .context("the task reading the files failed")??
    };

    let execution_id = args.execution_id.clone().unwrap_or_else(|| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        format!("local-{now}")
    });
    let pipeline = PipelineContext {
        pipeline_name: args.pipeline_name.clone(),
        stage_name: "local".into(),
        action_name: "publish".into(),
        execution_id,
        ..PipelineContext::default()
    };
    let artifact = Artifact {
        name: artifact_name(&args.path),
        revision: args.revision.clone(),
        bucket: String::new(),
        key: String::new(),
    };
    // Validate before asking for a password, so a typo costs no prompt.
    let placeholder = SecretString::from("not-used-for-validation");
    let data = settings.job_data(&placeholder, pipeline, artifact.clone());
    let policy = ConfigPolicy {
        allow_insecure_http: args.registry.allow_insecure_http,
    };
    let mut config = ActionConfig::from_job(&data, policy).context(
        "the publish configuration is invalid; set the properties in --config FILE or with \
         --artifactory-host, --repo-key, --user-name, --target-path, --properties",
    )?;

    if files.is_empty() {
        eprintln!(
            "nothing to publish: `{}` holds no files",
            args.path.display()
        );
        if args.output == OutputFormat::Json {
            println!("{}", summary::json(&[], 0));
        }
        return Ok(EXIT_NOTHING_TO_PUBLISH);
    }
    // A directory is published in place; a zip was extracted into the scratch directory.
    let root = if args.path.is_dir() {
        args.path.clone()
    } else {
        scratch.path().join("extracted")
    };
    let extracted = [ExtractedArtifact {
        artifact,
        root,
        files,
    }];
    let plan = {
        let (config, data) = (config.clone(), data.clone());
        let pack_dir = scratch.path().join("packed");
        tokio::task::spawn_blocking(move || {
            PublishPlan::build(&config, &data, &extracted, &pack_dir)
        })
        .await
        .context("the planning task failed")?
        .map_err(|(artifact, source)| JobError::Plan { artifact, source })
        .context("could not plan the publish")?
    };
    let client = RegistryClient::new(
        crate::registry::http_client().context("could not set up the HTTP client")?,
        config.host.clone(),
    );
    let format = format!("{:?}", config.artifact_type).to_ascii_lowercase();
    if args.dry_run {
        match args.output {
            OutputFormat::Text => print!("{}", summary::plan_table(&plan, &client, &format)),
            OutputFormat::Json => println!("{}", summary::dry_run_json(&planned(&plan, &client))),
        }
        return Ok(EXIT_PUBLISHED);
    }

    config.password = settings::password(Some(&config.user_name), Some(config.host.as_str()))?
        .with_context(|| {
            format!("no registry password: set {PASSWORD_ENV}, or run in a terminal to be asked")
        })?;
    publish(&args, &config, &client, &plan).await
}

async fn publish(
    args: &PublishArgs,
    config: &ActionConfig,
    client: &RegistryClient,
    plan: &PublishPlan,
) -> anyhow::Result<u8> {
    let description = format!("pipeline-publisher publish: {}", plan.target_path);
    let mut session = match TokenSession::open(
        client.clone(),
        &config.user_name,
        &config.password,
        args.registry.token_lifetime,
        &description,
        Redactor::new(),
    )
    .await
    {
        Ok(session) => session,
        Err(source) => {
            let error = JobError::Token {
                host: config.host.to_string(),
                source: Box::new(source),
            };
            return Ok(report(args, &[], plan, Some(&error), client));
        }
    };
    let terminal = (std::io::stderr().is_terminal()).then(|| {
        Arc::new(TerminalProgress::new(
            plan.total_bytes(),
            args.progress_min_size,
        ))
    });
    let inner: Arc<dyn Progress> = match &terminal {
        Some(bars) => bars.clone(),
        None => Arc::new(LogProgress::new(args.progress_min_size)),
    };
    let recorder = Arc::new(Recorder {
        inner,
        done: Mutex::new(Vec::new()),
    });
    let progress: Arc<dyn Progress> = recorder.clone();
    let result = receipt::execute(
        &mut session,
        plan,
        &progress,
        usize::from(args.upload_concurrency),
    )
    .await;
    session.close().await;
    if let Some(bars) = &terminal {
        bars.finish();
    }
    let done = recorder
        .done
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    // In plan order: uploads run side by side and finish in any order.
    let files: Vec<SummaryFile> = plan
        .items
        .iter()
        .filter_map(|item| {
            let (target, outcome) = done
                .iter()
                .find(|(target, _)| *target == item.target_path)?;
            Some(SummaryFile {
                source: item.source.relative_path.clone(),
                target: client.artifact_url(&plan.repo_key, target),
                sha256: item.source.checksums.sha256.clone(),
                size: item.source.size,
                outcome: Some(*outcome),
            })
        })
        .collect();
    Ok(report(args, &files, plan, result.as_ref().err(), client))
}

/// Prints the summary (stdout) and the error chain (stderr); returns the exit code.
fn report(
    args: &PublishArgs,
    files: &[SummaryFile],
    plan: &PublishPlan,
    error: Option<&JobError>,
    client: &RegistryClient,
) -> u8 {
    let location = format!(
        "{}/",
        client
            .artifact_url(&plan.repo_key, &plan.target_path)
            .trim_end_matches('/')
    );
    match args.output {
        OutputFormat::Text => print!("{}", summary::text(files, plan.items.len(), &location)),
        OutputFormat::Json => println!("{}", summary::json(files, plan.items.len())),
    }
    match error {
        None => EXIT_PUBLISHED,
        Some(error) => {
            eprintln!("{}", render_chain(error));
            EXIT_FAILED
        }
    }
}

/// The plan as summary rows, for `--dry-run --output json`.
fn planned(plan: &PublishPlan, client: &RegistryClient) -> Vec<SummaryFile> {
    plan.items
        .iter()
        .map(|item| SummaryFile {
            source: item.source.relative_path.clone(),
            target: client.artifact_url(&plan.repo_key, &item.target_path),
            sha256: item.source.checksums.sha256.clone(),
            size: item.source.size,
            outcome: None,
        })
        .collect()
}

fn artifact_name(path: &std::path::Path) -> String {
    path.file_stem()
        .and_then(|name| name.to_str())
        .filter(|name| !name.is_empty())
        .unwrap_or("local")
        .to_owned()
}

fn private_tempdir() -> anyhow::Result<tempfile::TempDir> {
    let mut builder = tempfile::Builder::new();
    builder.prefix("pipeline-publisher-publish-");
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700));
    builder
        .tempdir()
        .context("could not create a temporary directory")
}

/// Remembers which files landed, and passes every callback on.
struct Recorder {
    inner: Arc<dyn Progress>,
    done: Mutex<Vec<(String, DeployOutcome)>>,
}

impl Progress for Recorder {
    fn start(&self, target: &str, size: u64) {
        self.inner.start(target, size);
    }
    fn advance(&self, target: &str, bytes: u64) {
        self.inner.advance(target, bytes);
    }
    fn complete(&self, target: &str, size: u64, outcome: DeployOutcome) {
        self.done
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((target.to_owned(), outcome));
        self.inner.complete(target, size, outcome);
    }
    fn retrying(&self, target: &str, attempt: u32, reason: &str) {
        tracing::warn!(target, attempt, reason, "registry request failed; retrying");
        self.inner.retrying(target, attempt, reason);
    }
}
