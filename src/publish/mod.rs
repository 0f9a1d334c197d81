//! The work of one job: configuration → download → extract → plan → token → publish → build
//! info → revoke → receipt artifact → result.
//!
//! [`Publisher`] is the worker's [`JobHandler`]. Everything a job writes lives in a private
//! temporary directory (mode 0700) that is removed when the job ends, however it ends.
//!
//! Map: `run` (the one publish run, shared with `publish PATH`) · `error` (why a job failed, and
//! its failure type) · `plan` (what goes where) · `placement` (one file's repository, path, properties) · `detect` (what each file is) · `spec` (the file spec) ·
//! `pattern` (wildcards) · `formats` (npm, Debian, Python metadata; npm packing) · `receipt`
//! (carrying the plan out) · `early` (uploads that start while the artifact downloads) ·
//! `streamed` (a large file uploaded while it is extracted) ·
//! `build_info` · `output` (`publish-receipt.json`) · `summary` (the
//! success result).

pub mod build_info;
pub mod credentials;
pub mod detect;
pub mod early;
pub mod error;
pub mod formats;
pub mod login;
pub mod output;
pub mod pattern;
mod placement;
pub mod plan;
pub mod receipt;
pub mod run;
pub mod spec;
mod streamed;
pub mod summary;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tracing::info;

use crate::artifacts::{
    Arrivals, ArtifactStore, DownloadSettings, ExtractError, ExtractLimits, FetchedZip,
    FollowError, extract_zip_reporting,
};
use crate::metrics::Metrics;
use crate::pipeline::JobSuccess;
use crate::pipeline::config::{ActionConfig, ConfigError, ConfigPolicy, ConfigProblem};
use crate::progress::{JobStats, LogProgress};
use crate::registry::{MultipartSettings, RegistryClient};
use crate::worker::{ClaimedJob, JobContext, JobHandler};
use credentials::JobCredentials;
pub use error::JobError;
pub use plan::{ExtractedArtifact, PublishItem, PublishPlan};
pub use receipt::{PublishedFile, Receipt};
pub use run::{PublishRun, Published};

/// Files uploaded at once by default: enough to hide per-request latency, few enough not to
/// crowd a registry shared with other pipelines (JFrog CLI uses 3).
pub const DEFAULT_UPLOAD_CONCURRENCY: u16 = 4;

/// How jobs are carried out; every field is a `worker` flag.
#[derive(Debug, Clone)]
pub struct PublisherSettings {
    pub config_policy: ConfigPolicy,
    pub extract_limits: ExtractLimits,
    /// Lifetime asked for each job's registry token.
    pub token_lifetime: Duration,
    /// Files of one job uploaded at once.
    pub upload_concurrency: usize,
    /// Parent of the per-job temporary directories; the system's temp dir when unset.
    pub work_dir: Option<PathBuf>,
    /// Files at least this large log upload progress every 10 % or 30 s.
    pub progress_log_min_bytes: u64,
    /// Where published files and bytes and registry retries are counted.
    pub metrics: Arc<Metrics>,
    /// The fleet's trust and AWS identity for passwordless `Authentication` modes.
    pub login: login::LoginSettings,
    /// Ranged downloads of input artifacts: ranges at once, bytes per range.
    pub download: DownloadSettings,
    /// When large files are deployed in parts (`--multipart-*`).
    pub multipart: MultipartSettings,
    /// Upload a generic artifact's files as soon as each is extracted, while later entries
    /// are still downloading; a failure before the whole artifact was read takes them back
    /// (see [`early`]). Off: no upload begins before the whole artifact was downloaded and
    /// extracted.
    pub early_uploads: bool,
}

impl Default for PublisherSettings {
    fn default() -> Self {
        Self {
            config_policy: ConfigPolicy::default(),
            extract_limits: ExtractLimits::default(),
            token_lifetime: Duration::from_secs(15 * 60),
            upload_concurrency: usize::from(DEFAULT_UPLOAD_CONCURRENCY),
            work_dir: None,
            progress_log_min_bytes: crate::progress::DEFAULT_MIN_BYTES,
            metrics: Arc::new(Metrics::new()),
            login: login::LoginSettings::default(),
            download: DownloadSettings::default(),
            multipart: MultipartSettings::default(),
            early_uploads: true,
        }
    }
}

/// What downloading and extracting a job's artifacts ended with.
enum Extraction {
    /// Every artifact's files, for the usual path.
    Extracted(Vec<ExtractedArtifact>),
    /// The files were uploaded as they were extracted (see [`early`]), and the build info
    /// published.
    Published(PublishPlan, Published),
}

/// Publishes a job's input artifacts to the registry its configuration names.
#[derive(Debug, Clone)]
pub struct Publisher {
    settings: Arc<PublisherSettings>,
    store: ArtifactStore,
    http: reqwest::Client,
}

impl Publisher {
    pub fn new(settings: PublisherSettings, store: ArtifactStore, http: reqwest::Client) -> Self {
        Self {
            settings: Arc::new(settings),
            store,
            http,
        }
    }

    fn workspace(&self) -> Result<tempfile::TempDir, JobError> {
        let parent = self
            .settings
            .work_dir
            .clone()
            .unwrap_or_else(std::env::temp_dir);
        let mut builder = tempfile::Builder::new();
        builder.prefix("pipeline-publisher-job-");
        // Extracted build output is nobody else's business on a shared host.
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700));
        builder.tempdir_in(&parent).map_err(|error| {
            JobError::internal(
                format!(
                    "could not create a job directory under `{}` (check --work-dir)",
                    parent.display()
                ),
                error,
            )
        })
    }
}

impl JobHandler for Publisher {
    type Error = JobError;

    async fn handle(&self, job: ClaimedJob, context: JobContext) -> Result<JobSuccess, JobError> {
        let stats = Arc::new(JobStats::new(
            Arc::new(LogProgress::new(self.settings.progress_log_min_bytes)),
            Some(self.settings.metrics.clone()),
        ));
        let result = self.publish_job(&job, &context, stats.clone()).await;
        context.tally.record(stats.files(), stats.bytes());
        result
    }
}

impl Publisher {
    async fn publish_job(
        &self,
        job: &ClaimedJob,
        context: &JobContext,
        stats: Arc<JobStats>,
    ) -> Result<JobSuccess, JobError> {
        let started = run::started_now();
        let data = &job.data;
        let config = ActionConfig::from_job(data, self.settings.config_policy)?;
        // Before any network call: a registry the fleet does not allow receives nothing.
        config.check_trust(&self.settings.login.trust)?;
        if data.input_artifacts.is_empty() {
            return Err(ConfigError {
                problems: vec![ConfigProblem {
                    property: "InputArtifacts",
                    problem: "the action has no input artifact; give it the build output".into(),
                    hint: None,
                }],
            }
            .into());
        }

        let workspace = self.workspace()?;
        let credentials = JobCredentials::new(
            data.artifact_credentials.clone(),
            context.details.clone(),
            context.redactor.clone(),
        );
        let client = RegistryClient::new(self.http.clone(), config.host.clone())
            .with_observer(stats.clone())
            .with_multipart(self.settings.multipart);
        let token_description = format!(
            "pipeline-publisher: {} / {}",
            data.pipeline.pipeline_name, data.pipeline.execution_id
        );
        let pack_dir = workspace.path().join("packed");
        let early = early::eligible(self.settings.early_uploads, &config, data).then(|| {
            early::EarlyUploads {
                config: &config,
                data,
                client: client.clone(),
                login: &self.settings.login,
                redactor: context.redactor.clone(),
                token_lifetime: self.settings.token_lifetime,
                token_description: token_description.clone(),
                reporter: stats.clone(),
                upload_concurrency: self.settings.upload_concurrency,
                root: workspace.path().join("artifact-0"),
                pack_dir: pack_dir.clone(),
            }
        });
        let published = match self
            .extract_publishing_early(early, data, &credentials, workspace.path(), started)
            .await
        {
            Ok(Extraction::Published(plan, published)) => Ok((plan, published)),
            Ok(Extraction::Extracted(extracted)) => {
                self.publish_after_extraction(
                    &config,
                    data,
                    context,
                    &stats,
                    &client,
                    token_description,
                    extracted,
                    pack_dir,
                    started,
                )
                .await
            }
            Err(error) => Err(error),
        };
        drop(workspace);
        let (plan, published) = published?;
        if let Some(output) = data.output_artifacts.first() {
            let document = output::receipt_json(&plan, &published.receipt, data, &client);
            let zipped = output::zip_receipt(&document)
                .map_err(|error| JobError::internal("could not zip publish-receipt.json", error))?;
            self.store
                .upload(
                    output,
                    credentials.current().await.as_ref(),
                    data.pipeline.region(),
                    data.encryption_key.as_ref(),
                    zipped,
                )
                .await
                .map_err(|source| JobError::OutputArtifact {
                    artifact: output.name.clone(),
                    source,
                })?;
            info!(artifact = %output.name, "wrote publish-receipt.json to the output artifact");
        }
        let started_millis = started.unix_timestamp_nanos() / 1_000_000;
        let build_info = published.build_info.then_some(started_millis);
        Ok(summary::job_success(
            &published.receipt,
            &client,
            &plan,
            build_info,
        ))
    }

    /// Downloads and extracts the input artifacts; with `early` (see [`early::eligible`]), their
    /// files are uploaded as extraction places them, unless the archive turns out to hold a
    /// publish spec.
    async fn extract_publishing_early(
        &self,
        early: Option<early::EarlyUploads<'_>>,
        data: &crate::pipeline::JobData,
        credentials: &JobCredentials,
        workspace: &std::path::Path,
        started: time::OffsetDateTime,
    ) -> Result<Extraction, JobError> {
        let Some(uploads) = early else {
            let extracted = self
                .fetch_artifacts(data, credentials, workspace, None)
                .await?;
            return Ok(Extraction::Extracted(extracted));
        };
        let (config, pack_dir) = (uploads.config, uploads.pack_dir.clone());
        let (report, events) = early::channel();
        // Extraction never waits for the uploads; they end when extraction has.
        let (extracted, begun) = tokio::join!(
            self.fetch_artifacts(data, credentials, workspace, Some(report)),
            uploads.run(events)
        );
        match (extracted, begun) {
            (Err(error), Ok(Some(begun))) => Err(begun.fail(error).await),
            (Err(error), _) => Err(error),
            // No token: nothing was uploaded.
            (Ok(_), Err(error)) => Err(error),
            (Ok(extracted), Ok(Some(begun))) => {
                let (plan, published) = begun
                    .finish(config, data, extracted, pack_dir, started)
                    .await?;
                Ok(Extraction::Published(plan, published))
            }
            (Ok(extracted), Ok(None)) => Ok(Extraction::Extracted(extracted)),
        }
    }

    /// The usual path, once every artifact is extracted: plan, token, publish, build info.
    #[allow(clippy::too_many_arguments)]
    async fn publish_after_extraction(
        &self,
        config: &ActionConfig,
        data: &crate::pipeline::JobData,
        context: &JobContext,
        stats: &Arc<JobStats>,
        client: &RegistryClient,
        token_description: String,
        extracted: Vec<ExtractedArtifact>,
        pack_dir: PathBuf,
        started: time::OffsetDateTime,
    ) -> Result<(PublishPlan, Published), JobError> {
        let plan = run::plan(config, data, extracted, pack_dir).await?;
        let token_source =
            login::token_source(config, &self.settings.login, &context.redactor).await?;
        let published = PublishRun {
            client: client.clone(),
            config,
            data,
            plan: &plan,
            token_source,
            token_lifetime: self.settings.token_lifetime,
            token_description,
            redactor: context.redactor.clone(),
            reporter: stats.clone(),
            upload_concurrency: self.settings.upload_concurrency,
            started,
        }
        .execute()
        .await?;
        Ok((plan, published))
    }

    /// Downloads each input artifact with the job's credentials and extracts it safely, the
    /// extraction following the download: once the central directory is known, each entry is
    /// checked, inflated and hashed as soon as its bytes have arrived (see
    /// [`crate::artifacts::follow`] for which failure a job reports when both go wrong).
    async fn fetch_artifacts(
        &self,
        data: &crate::pipeline::JobData,
        credentials: &JobCredentials,
        workspace: &std::path::Path,
        mut report: Option<early::ExtractionReport>,
    ) -> Result<Vec<ExtractedArtifact>, JobError> {
        let mut extracted = Vec::with_capacity(data.input_artifacts.len());
        for (index, artifact) in data.input_artifacts.iter().enumerate() {
            let archive = workspace.join(format!("artifact-{index}.zip"));
            let root = workspace.join(format!("artifact-{index}"));
            let limits = self.settings.extract_limits;
            // Only the first artifact's files go early (see `early::eligible`).
            let report = report.take();
            let extraction = |fetched: &FetchedZip, arrivals: Arc<Arrivals>| {
                let (archive, destination) = (archive.clone(), root.clone());
                let routed = fetched.routed.clone();
                async move {
                    tokio::task::spawn_blocking(move || {
                        std::fs::create_dir(&destination)
                            .map_err(|source| ExtractError::Write {
                                path: destination.clone(),
                                source,
                            })
                            .and_then(|()| {
                                extract_zip_reporting(
                                    &archive,
                                    &destination,
                                    limits,
                                    &routed,
                                    arrivals,
                                    &mut |event| {
                                        if let Some(report) = &report {
                                            report.report(event);
                                        }
                                    },
                                )
                            })
                    })
                    .await
                    .map_err(|error| JobError::internal("the extraction task failed", error))?
                    .map_err(|source| JobError::Extract {
                        artifact: artifact.name.clone(),
                        source,
                    })
                }
            };
            let (_, files) = self
                .store
                .download_zip(
                    artifact,
                    credentials,
                    data.pipeline.region(),
                    &archive,
                    self.settings.download,
                    limits,
                    extraction,
                )
                .await
                .map_err(|error| match error {
                    FollowError::Download(source) => JobError::Download {
                        artifact: artifact.name.clone(),
                        source,
                    },
                    FollowError::Reader(error) => error,
                })?;
            // The archive is no longer needed; free its disk space early.
            let _ = std::fs::remove_file(&archive);
            info!(artifact = %artifact.name, files = files.len(), "extracted input artifact");
            extracted.push(ExtractedArtifact {
                artifact: artifact.clone(),
                root,
                files,
            });
        }
        Ok(extracted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[tokio::test]
    async fn job_directories_are_private_to_the_worker_user() {
        use std::os::unix::fs::PermissionsExt;
        let parent = tempfile::tempdir().unwrap();
        let sdk_config = aws_config::SdkConfig::builder().build();
        let publisher = Publisher::new(
            PublisherSettings {
                work_dir: Some(parent.path().to_owned()),
                ..PublisherSettings::default()
            },
            ArtifactStore::new(sdk_config, true),
            reqwest::Client::new(),
        );
        let workspace = publisher.workspace().unwrap();
        let mode = std::fs::metadata(workspace.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
