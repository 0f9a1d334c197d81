//! `pipeline-publisher demo`: the whole loop on one machine, with no AWS account and no JFrog
//! licence.
//!
//! [`LocalEnvironment`] starts the CodePipeline and S3 stand-ins and the mock registry on
//! 127.0.0.1 and builds the real AWS SDK clients against them; the demo and the integration
//! tests share it. The demo queues the firmware example as a job, the combined camera-agent
//! build (firmware + npm + Debian + Python, published by its file spec), and one with a broken
//! configuration, lets the real worker process them, and prints what landed where: a short
//! summary (`short_report`), or everything with `--verbose` (`full_report`); `--serve` keeps
//! the stand-ins up for a browser (`serve`). The jobs themselves are in `scenario`; `fleet`
//! then runs one worker on two accounts and shows jobs picked up by the wake-up queue.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use aws_credential_types::Credentials;

pub mod camera_agent;
pub mod fleet;
mod full_report;
pub mod passwordless;
pub mod scenario;
pub mod serve;
mod short_report;

use crate::artifacts::ArtifactStore;
use crate::cli::DemoArgs;
use crate::mock_registry::{MockRegistryConfig, RunningMockRegistry};
use crate::pipeline::aws::AwsJobApi;
use crate::pipeline::{ActionTypeId, properties};
use crate::publish::{Publisher, PublisherSettings};
use crate::sandbox::{ArtifactSpec, JobSpec, RunningSandbox, SandboxConfig};
use crate::worker::{self, JobHandler, WorkerReport, WorkerSettings};

/// The registry user the local environment creates.
pub const DEMO_USER: &str = "ci-publisher";
/// Its password: only ever valid on this process's mock registry.
pub const DEMO_PASSWORD: &str = "local-demo-password-7f3a";
/// The repository the demo publishes to.
pub const DEMO_REPO: &str = "firmware-releases";
/// The mock registry's admin, who maps the worker's role for the passwordless job.
pub const DEMO_ADMIN: (&str, &str) = ("demo-admin", "local-admin-password-2b9e");

/// The firmware example, embedded so the demo runs from any directory.
pub const FIRMWARE_EXAMPLE: &[(&str, &[u8])] = &[
    (
        "nestbox-cam-2.4.1.img",
        include_bytes!("../../examples/firmware/build-output/nestbox-cam-2.4.1.img"),
    ),
    (
        "manifest.json",
        include_bytes!("../../examples/firmware/build-output/manifest.json"),
    ),
    (
        "RELEASE-NOTES.md",
        include_bytes!("../../examples/firmware/build-output/RELEASE-NOTES.md"),
    ),
];

/// CodePipeline + S3 stand-ins and the mock registry, running on loopback.
pub struct LocalEnvironment {
    pub sandbox: RunningSandbox,
    pub registry: RunningMockRegistry,
    /// The worker's own AWS configuration: endpoints pointed at the sandbox, credentials that
    /// the job API accepts and S3 refuses (so only job credentials can read artifacts).
    pub sdk_config: aws_config::SdkConfig,
}

impl LocalEnvironment {
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(Self::registry_config()).await
    }

    /// The demo's registry: the publishing user, who may deploy and delete (so that a job
    /// failing after early uploads takes them back), and an administrator.
    pub fn registry_config() -> MockRegistryConfig {
        MockRegistryConfig {
            users: vec![
                (DEMO_USER.to_owned(), DEMO_PASSWORD.to_owned()),
                (DEMO_ADMIN.0.to_owned(), DEMO_ADMIN.1.to_owned()),
            ],
            admins: vec![DEMO_ADMIN.0.to_owned()],
            deleters: vec![DEMO_USER.to_owned()],
            ..MockRegistryConfig::default()
        }
    }

    pub async fn start_with(mut registry_config: MockRegistryConfig) -> anyhow::Result<Self> {
        let sandbox = crate::sandbox::Sandbox::start(SandboxConfig::default())
            .await
            .context("could not start the CodePipeline/S3 stand-in")?;
        // The registry verifies AWS identities with the sandbox's STS, as JFrog does with AWS's.
        registry_config
            .sts_endpoint
            .get_or_insert_with(|| sandbox.endpoint_url.clone());
        let registry = crate::mock_registry::MockRegistry::start(registry_config)
            .await
            .context("could not start the mock registry")?;
        let (access_key_id, secret) = sandbox.sandbox.worker_credentials();
        let sdk_config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(SandboxConfig::default().region))
            .credentials_provider(Credentials::new(
                access_key_id,
                secret,
                None,
                None,
                "local-worker",
            ))
            .endpoint_url(&sandbox.endpoint_url)
            .load()
            .await;
        Ok(Self {
            sandbox,
            registry,
            sdk_config,
        })
    }

    /// The configuration of a valid firmware publish to the mock registry.
    pub fn firmware_configuration(&self) -> BTreeMap<String, String> {
        [
            (
                properties::ARTIFACTORY_HOST,
                self.registry.base_url.as_str(),
            ),
            (properties::REPO_KEY, DEMO_REPO),
            (properties::USER_NAME, DEMO_USER),
            (properties::PASSWORD, DEMO_PASSWORD),
            (properties::TYPE_OF_ARTIFACT, "generic"),
            (properties::TARGET_PATH, "nestbox-cam/{ShortRevision}"),
            (properties::PROPERTIES, "board=rpi-zero-2w;channel=stable"),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
    }

    /// The configuration of the camera-agent publish: `auto`, the file spec deciding.
    pub fn camera_agent_configuration(&self) -> BTreeMap<String, String> {
        let mut configuration = self.firmware_configuration();
        configuration.insert(properties::TYPE_OF_ARTIFACT.into(), "auto".into());
        configuration.remove(properties::PROPERTIES);
        configuration
    }

    /// Zips `entries`, stores the zip as an input artifact and returns where it is.
    pub fn upload_artifact(
        &self,
        name: &str,
        revision: Option<&str>,
        entries: &[(&str, &[u8])],
    ) -> anyhow::Result<ArtifactSpec> {
        let bytes = zip_entries(entries)?;
        let bucket = SandboxConfig::default().artifact_bucket;
        // CodePipeline's artifact keys look like this and have no file extension.
        let key = format!("nestbox-firmware/{}/{:08x}", name, rand::random::<u32>());
        self.sandbox.sandbox.put_object(&bucket, &key, &bytes)?;
        Ok(ArtifactSpec {
            name: name.to_owned(),
            revision: revision.map(str::to_owned),
            bucket,
            key,
        })
    }

    /// Queues a job for the default action type with `configuration` and `inputs`.
    pub fn queue_job(
        &self,
        pipeline_name: &str,
        configuration: BTreeMap<String, String>,
        inputs: Vec<ArtifactSpec>,
    ) -> String {
        let mut spec = JobSpec::new(pipeline_name);
        spec.configuration = configuration;
        spec.input_artifacts = inputs;
        self.sandbox.sandbox.queue_job(spec)
    }

    /// The real publisher, with settings suitable for loopback.
    pub fn publisher(&self, mut settings: PublisherSettings) -> anyhow::Result<Publisher> {
        // The worker's AWS identity (for passwordless modes) is the sandbox's worker.
        settings
            .login
            .identity
            .get_or_insert_with(|| crate::aws_identity::AwsIdentity::new(&self.sdk_config));
        let store = ArtifactStore::new(self.sdk_config.clone(), true);
        Ok(Publisher::new(
            settings,
            store,
            crate::registry::http_client()?,
        ))
    }

    /// Runs the real worker loop against the stand-ins until `max_jobs` jobs have ended.
    pub async fn run_worker<H: JobHandler>(
        &self,
        handler: H,
        max_jobs: u64,
    ) -> anyhow::Result<WorkerReport> {
        // Both versions, as the worker serves them by default.
        let v2 = ActionTypeId {
            version: "2".into(),
            ..ActionTypeId::default()
        };
        let api = AwsJobApi::for_versions(&self.sdk_config, &[ActionTypeId::default(), v2])?;
        let settings = WorkerSettings {
            max_jobs: Some(max_jobs),
            poll_min_interval: Duration::from_millis(50),
            poll_max_interval: Duration::from_millis(200),
            error_base_interval: Duration::from_millis(50),
            error_max_interval: Duration::from_millis(500),
            ..WorkerSettings::default()
        };
        Ok(worker::run(
            Arc::new(api),
            Arc::new(handler),
            settings,
            std::future::pending(),
        )
        .await)
    }
}

/// Builds a zip archive in memory from `(path, bytes)` entries.
pub fn zip_entries(entries: &[(&str, &[u8])]) -> anyhow::Result<Vec<u8>> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (path, bytes) in entries {
        writer.start_file(*path, options)?;
        writer.write_all(bytes)?;
    }
    Ok(writer.finish()?.into_inner())
}

/// `pipeline-publisher demo`: the short summary, or with `--verbose` everything; with
/// `--serve` the stand-ins stay up afterwards.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let environment = LocalEnvironment::start().await?;
    let (jobs, receipt_location) = scenario::queue(&environment)?;
    if args.verbose {
        full_report::print_start(&environment, &jobs);
    } else {
        println!("{}", short_report::start_line());
    }
    let outcome = scenario::run(&environment, jobs, &receipt_location).await?;
    if args.verbose {
        full_report::print(&environment, &outcome)?;
    } else {
        print!("{}", short_report::render(&environment, &outcome)?);
    }
    print!("{}", fleet::render(&fleet::run(&environment).await?));
    if args.serve {
        serve::serve_until_signal(environment).await;
    } else {
        println!(
            "\nRun `pipeline-publisher demo --serve` to keep the stand-ins running and click \
             through the registry UI and the pipeline view."
        );
    }
    Ok(())
}
