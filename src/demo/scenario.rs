//! The demo's four jobs: the firmware example, the same with a broken configuration, the
//! firmware image published with `Authentication: aws-iam` (no password), and the
//! combined camera-agent build published by its file spec; queued on the stand-ins and run by
//! the real worker until all of them have ended.

use anyhow::Context;

use super::{FIRMWARE_EXAMPLE, LocalEnvironment, camera_agent};
use crate::pipeline::properties;
use crate::sandbox::{ArtifactSpec, JobRecord, JobSpec, SandboxConfig, StoredObject};

/// The repositories the demo's jobs publish to, in the order the reports list them.
pub const DEMO_REPOSITORIES: &[&str] = &[
    super::DEMO_REPO,
    "camera-agent-debian",
    "camera-agent-npm",
    "camera-agent-pypi",
];

/// One queued job and what it is for.
pub struct DemoJob {
    /// `Job 1`, `Job 2`, ...
    pub label: &'static str,
    /// What the job publishes, for a person.
    pub description: &'static str,
    pub pipeline_name: &'static str,
    pub job_id: String,
    /// Whether the job writes `publish-receipt.json` to an output artifact.
    pub writes_receipt: bool,
}

/// The jobs after the worker has ended them.
pub struct DemoOutcome {
    /// Each job with its record from the CodePipeline stand-in.
    pub jobs: Vec<(DemoJob, JobRecord)>,
    /// The camera-agent job's output artifact (`publish-receipt.json`), if it wrote one.
    pub receipt: Option<StoredObject>,
}

/// Queues the jobs; returns them and where the receipt will be written.
pub fn queue(environment: &LocalEnvironment) -> anyhow::Result<(Vec<DemoJob>, (String, String))> {
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
    let (agent_job, receipt_location) = queue_camera_agent_job(environment, agent_revision)?;
    let jobs = vec![
        DemoJob {
            label: "Job 1",
            description: "firmware 2.4.1",
            pipeline_name: "nestbox-firmware",
            job_id: good_job,
            writes_receipt: false,
        },
        DemoJob {
            label: "Job 2",
            description: "broken configuration, on purpose",
            pipeline_name: "nestbox-firmware",
            job_id: broken_job,
            writes_receipt: false,
        },
        DemoJob {
            label: "Job 3",
            description: "firmware + camera agent as npm, Debian and Python packages, by file spec",
            pipeline_name: "nestbox-camera",
            job_id: agent_job,
            writes_receipt: true,
        },
        DemoJob {
            label: "Job 4",
            description: super::passwordless::DESCRIPTION,
            pipeline_name: "nestbox-firmware-v2",
            job_id: super::passwordless::queue(
                environment,
                "7e3f1a5c9b2d4f6e8a0c1b3d5f7a9c2e4b6d8f01",
            )?,
            writes_receipt: false,
        },
    ];
    Ok((jobs, receipt_location))
}

/// Runs the real worker until every job has ended and collects what the stand-ins recorded.
pub async fn run(
    environment: &LocalEnvironment,
    jobs: Vec<DemoJob>,
    (bucket, key): &(String, String),
) -> anyhow::Result<DemoOutcome> {
    super::passwordless::map_worker_role(environment).await?;
    let publisher = environment.publisher(super::passwordless::publisher_settings(environment)?)?;
    environment.run_worker(publisher, jobs.len() as u64).await?;
    let jobs = jobs
        .into_iter()
        .map(|job| {
            let record = environment
                .sandbox
                .sandbox
                .job(&job.job_id)
                .with_context(|| format!("job {} vanished from the stand-in", job.job_id))?;
            Ok((job, record))
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(DemoOutcome {
        jobs,
        receipt: environment.sandbox.sandbox.object(bucket, key),
    })
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
