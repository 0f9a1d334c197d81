//! `pipeline-publisher demo`: the whole loop on one machine, with no AWS account and no JFrog
//! licence.
//!
//! [`LocalEnvironment`] starts the CodePipeline and S3 stand-ins and the mock registry on
//! 127.0.0.1 and builds the real AWS SDK clients against them; the demo and the integration
//! tests share it. The demo queues the firmware example as a job, the combined camera-agent
//! build (firmware + npm + Debian + Python, published by its file spec), and one with a broken
//! configuration, lets the real worker process them, and prints what landed where.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use aws_credential_types::Credentials;

pub mod camera_agent;

use crate::artifacts::ArtifactStore;
use crate::cli::DemoArgs;
use crate::mock_registry::{MockRegistryConfig, RunningMockRegistry};
use crate::pipeline::aws::AwsJobApi;
use crate::pipeline::{ActionTypeId, properties};
use crate::publish::{Publisher, PublisherSettings};
use crate::sandbox::{ArtifactSpec, JobResult, JobSpec, RunningSandbox, SandboxConfig};
use crate::worker::{self, JobHandler, WorkerReport, WorkerSettings};

/// The registry user the local environment creates.
pub const DEMO_USER: &str = "ci-publisher";
/// Its password: only ever valid on this process's mock registry.
pub const DEMO_PASSWORD: &str = "local-demo-password-7f3a";
/// The repository the demo publishes to.
pub const DEMO_REPO: &str = "firmware-releases";

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
        Self::start_with(MockRegistryConfig {
            users: vec![(DEMO_USER.to_owned(), DEMO_PASSWORD.to_owned())],
            ..MockRegistryConfig::default()
        })
        .await
    }

    pub async fn start_with(registry_config: MockRegistryConfig) -> anyhow::Result<Self> {
        let sandbox = crate::sandbox::Sandbox::start(SandboxConfig::default())
            .await
            .context("could not start the CodePipeline/S3 stand-in")?;
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
    pub fn publisher(&self, settings: PublisherSettings) -> anyhow::Result<Publisher> {
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
        let api = AwsJobApi::new(&self.sdk_config, &ActionTypeId::default())?;
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

/// `pipeline-publisher demo`.
pub async fn run(_args: DemoArgs) -> anyhow::Result<()> {
    let environment = LocalEnvironment::start().await?;
    println!("pipeline-publisher demo");
    println!(
        "  CodePipeline + S3 stand-in: {}",
        environment.sandbox.endpoint_url
    );
    println!(
        "  mock Artifactory registry:  {}",
        environment.registry.base_url
    );
    println!();

    let revision = "9c1e5a2f7b3d4e6a8c0b1d2e3f4a5b6c7d8e9f01";
    let artifact = environment.upload_artifact("BuildOutput", Some(revision), FIRMWARE_EXAMPLE)?;
    let good_job = environment.queue_job(
        "nestbox-firmware",
        environment.firmware_configuration(),
        vec![artifact.clone()],
    );
    let mut broken = environment.firmware_configuration();
    broken.remove(properties::REPO_KEY);
    broken.insert(
        properties::ARTIFACTORY_HOST.into(),
        "ftp://registry.example".into(),
    );
    let broken_job = environment.queue_job("nestbox-firmware", broken, vec![artifact]);
    let agent_revision = "4b7d0c9e2a1f3e5d6c8b9a0f1e2d3c4b5a697887";
    let (agent_job, receipt_location) = queue_camera_agent_job(&environment, agent_revision)?;
    println!(
        "Queued job {good_job} (firmware 2.4.1), job {broken_job} (broken configuration) and job \
         {agent_job} (firmware + camera agent as npm, Debian and Python packages, by file spec)."
    );
    println!("Running the worker until all three jobs have ended...\n");

    let publisher = environment.publisher(PublisherSettings::default())?;
    environment.run_worker(publisher, 3).await?;

    for (label, job_id) in [
        ("Job 1", &good_job),
        ("Job 2", &broken_job),
        ("Job 3", &agent_job),
    ] {
        let record = environment
            .sandbox
            .sandbox
            .job(job_id)
            .with_context(|| format!("job {job_id} vanished from the stand-in"))?;
        println!("{label} ({job_id}):");
        match record.results.first() {
            Some(JobResult::Success {
                summary,
                external_execution_id,
                output_variables,
                ..
            }) => {
                println!(
                    "  PutJobSuccessResult: {}",
                    summary.as_deref().unwrap_or("")
                );
                println!(
                    "  externalExecutionId: {}",
                    external_execution_id.as_deref().unwrap_or("-")
                );
                for (name, value) in output_variables {
                    println!("  output variable {name} = {value}");
                }
            }
            Some(JobResult::Failure {
                failure_type,
                message,
                ..
            }) => {
                println!("  PutJobFailureResult ({failure_type}):");
                for line in message.lines() {
                    println!("    {line}");
                }
            }
            None => println!("  no result was reported"),
        }
        println!();
    }

    print_receipt(&environment, &receipt_location)?;

    println!("Published to {}:", environment.registry.base_url);
    let repositories = [
        DEMO_REPO,
        "camera-agent-debian",
        "camera-agent-npm",
        "camera-agent-pypi",
    ];
    for artifact in repositories
        .iter()
        .flat_map(|repo| environment.registry.registry.artifacts(repo))
    {
        println!(
            "  {}/artifactory/{}/{}",
            environment.registry.base_url, artifact.repo, artifact.path
        );
        println!(
            "    size {} bytes, sha256 {}",
            artifact.size, artifact.sha256
        );
        let properties: Vec<String> = artifact
            .properties
            .iter()
            .map(|(key, values)| format!("{key}={}", values.join(",")))
            .collect();
        println!("    properties: {}", properties.join("; "));
    }
    let tokens = environment.registry.registry.tokens();
    println!(
        "\nRegistry tokens minted: {}, revoked: {} (the password was used only to mint them).",
        tokens.len(),
        tokens.iter().filter(|token| token.revoked).count()
    );
    Ok(())
}

/// Queues the combined camera-agent build with an output artifact for its receipt, encrypted
/// with a (stand-in) KMS key; returns the job id and where the receipt will be written.
fn queue_camera_agent_job(
    environment: &LocalEnvironment,
    revision: &str,
) -> anyhow::Result<(String, (String, String))> {
    let entries = camera_agent::combined_build()?;
    let borrowed: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|(path, bytes)| (path.as_str(), bytes.as_slice()))
        .collect();
    let input = environment.upload_artifact("CameraBuild", Some(revision), &borrowed)?;
    let bucket = SandboxConfig::default().artifact_bucket;
    let receipt_key = format!("nestbox-camera/PublishRec/{:08x}", rand::random::<u32>());
    let mut spec = JobSpec::new("nestbox-camera");
    spec.configuration = environment.camera_agent_configuration();
    spec.input_artifacts = vec![input];
    spec.output_artifacts = vec![ArtifactSpec::new("PublishReceipt", &bucket, &receipt_key)];
    spec.encryption_key_id =
        Some("arn:aws:kms:eu-west-1:111122223333:key/demo-artifact-key".to_owned());
    Ok((
        environment.sandbox.sandbox.queue_job(spec),
        (bucket, receipt_key),
    ))
}

/// Prints what the camera-agent job's `publish-receipt.json` says, one line per file.
fn print_receipt(
    environment: &LocalEnvironment,
    (bucket, key): &(String, String),
) -> anyhow::Result<()> {
    let Some(object) = environment.sandbox.sandbox.object(bucket, key) else {
        println!("Job 3 wrote no publish-receipt.json.\n");
        return Ok(());
    };
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&object.content_path)?)?;
    let receipt: serde_json::Value =
        serde_json::from_reader(zip.by_name(crate::publish::output::RECEIPT_FILE)?)?;
    println!(
        "Job 3's publish-receipt.json (output artifact, {} with key {}):",
        object.sse.as_deref().unwrap_or("no encryption"),
        object.kms_key_id.as_deref().unwrap_or("-")
    );
    for file in receipt["files"].as_array().into_iter().flatten() {
        let package = match &file["package"] {
            serde_json::Value::Object(package) => format!(
                "{} {}",
                package["name"].as_str().unwrap_or(""),
                package["version"].as_str().unwrap_or("")
            ),
            _ => file["sourcePath"].as_str().unwrap_or("").to_owned(),
        };
        println!(
            "  {:<8} {:<40} {} ({})",
            file["format"].as_str().unwrap_or(""),
            package,
            file["targetUrl"].as_str().unwrap_or(""),
            file["outcome"].as_str().unwrap_or("")
        );
    }
    println!();
    Ok(())
}
