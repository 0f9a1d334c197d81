//! `pipeline-publisher publish PATH`: one publish of a zip or a directory without CodePipeline,
//! through the job's own configuration parsing, planning and publish run
//! ([`crate::publish::run`]), build info included.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;

use crate::aws_identity::AwsIdentity;
use crate::cli::{OutputFormat, PASSWORD_ENV, PublishArgs};
use crate::commands::errors;
use crate::commands::summary::{self, SummaryFile};
use crate::commands::{local_files, settings};
use crate::pipeline::config::{ActionConfig, Authentication, ConfigPolicy};
use crate::pipeline::job::{Artifact, JobData, PipelineContext};
use crate::pipeline::properties;
use crate::progress::{LogProgress, TerminalProgress};
use crate::publish::login;
use crate::publish::plan::BuildIdentity;
use crate::publish::run::{self, PublishRun};
use crate::publish::{ExtractedArtifact, JobError, PublishPlan};
use crate::registry::{DeployOutcome, RegistryClient, Reporter, TokenSource};
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
    let started = run::started_now();
    let mut plan = run::plan(
        &config,
        &data,
        extracted.into(),
        scratch.path().join("packed"),
    )
    .await
    .context("could not plan the publish")?;
    if args.build_name.is_some() || args.build_number.is_some() {
        let build = BuildIdentity {
            name: args.build_name.clone().unwrap_or(plan.build.name.clone()),
            number: args
                .build_number
                .clone()
                .unwrap_or(plan.build.number.clone()),
        };
        run::rename_build(&mut plan, build);
    }
    let client = RegistryClient::new(
        crate::registry::http_client().context("could not set up the HTTP client")?,
        config.host.clone(),
    )
    .with_multipart(args.multipart.settings());
    let format = format!("{:?}", config.artifact_type).to_ascii_lowercase();
    if args.dry_run {
        match args.output {
            OutputFormat::Text => print!("{}", summary::plan_table(&plan, &client, &format)),
            OutputFormat::Json => println!("{}", summary::dry_run_json(&planned(&plan, &client))),
        }
        return Ok(EXIT_PUBLISHED);
    }

    let host = config.host.to_string();
    if let Authentication::Password {
        user_name,
        password,
    } = &mut config.authentication
    {
        *password = settings::password(Some(user_name), Some(&host))?.with_context(|| {
            format!("no registry password: set {PASSWORD_ENV}, or run in a terminal to be asked")
        })?;
    }
    let identity = if config.authentication.uses_fleet_identity() {
        Some(AwsIdentity::new(&crate::app::load_aws_config().await))
    } else {
        None
    };
    let login = args.registry.trust.login_settings(identity)?;
    let redactor = Redactor::new();
    let token_source = login::token_source(&config, &login, &redactor)
        .await
        .context("could not prepare the registry login")?;
    let local = LocalPublish {
        config: &config,
        data: &data,
        started,
        token_source,
        redactor,
    };
    publish(&args, local, &client, &plan).await
}

/// What `publish` hands the run besides the plan.
struct LocalPublish<'a> {
    config: &'a ActionConfig,
    data: &'a JobData,
    started: time::OffsetDateTime,
    token_source: TokenSource,
    redactor: Redactor,
}

async fn publish(
    args: &PublishArgs,
    local: LocalPublish<'_>,
    client: &RegistryClient,
    plan: &PublishPlan,
) -> anyhow::Result<u8> {
    let terminal = (std::io::stderr().is_terminal()).then(|| {
        Arc::new(TerminalProgress::new(
            plan.total_bytes(),
            args.progress_min_size,
        ))
    });
    let inner: Arc<dyn Reporter> = match &terminal {
        Some(bars) => bars.clone(),
        None => Arc::new(LogProgress::new(args.progress_min_size)),
    };
    let recorder = Arc::new(Recorder {
        inner,
        done: Mutex::new(Vec::new()),
    });
    let result = PublishRun {
        client: client.clone(),
        config: local.config,
        data: local.data,
        plan,
        token_source: local.token_source,
        token_lifetime: args.registry.token_lifetime,
        token_description: format!("pipeline-publisher publish: {}", plan.target_path),
        redactor: local.redactor,
        reporter: recorder.clone(),
        upload_concurrency: usize::from(args.upload_concurrency),
        started: local.started,
    }
    .execute()
    .await;
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
            eprintln!("{}", errors::render_error(error));
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
    inner: Arc<dyn Reporter>,
    done: Mutex<Vec<(String, DeployOutcome)>>,
}

impl Reporter for Recorder {
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
        self.inner.retrying(target, attempt, reason);
    }
}
