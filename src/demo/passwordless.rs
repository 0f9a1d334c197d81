//! The demo's passwordless job: action type version 2 with `Authentication: aws-iam`. The
//! registry admin maps the worker's role once; the job then carries no password at all and the
//! worker signs in with its own AWS identity.

use anyhow::Context;

use super::{DEMO_ADMIN, DEMO_REPO, FIRMWARE_EXAMPLE, LocalEnvironment};
use crate::pipeline::config::FleetTrust;
use crate::pipeline::properties;
use crate::publish::PublisherSettings;
use crate::publish::login::LoginSettings;
use crate::sandbox::JobSpec;

/// What the demo's summary says of the job.
pub const DESCRIPTION: &str = "firmware image with Authentication aws-iam: no password anywhere";

/// Queues the version 2 job; returns its id.
pub fn queue(environment: &LocalEnvironment, revision: &str) -> anyhow::Result<String> {
    let image = &FIRMWARE_EXAMPLE[..1];
    let artifact = environment.upload_artifact("BuildOutput", Some(revision), image)?;
    let mut spec = JobSpec::new("nestbox-firmware-v2");
    spec.action_type.version = "2".to_owned();
    spec.configuration = [
        (
            properties::ARTIFACTORY_HOST,
            environment.registry.base_url.as_str(),
        ),
        (properties::REPO_KEY, DEMO_REPO),
        (properties::TARGET_PATH, "nestbox-cam/{ShortRevision}"),
        (properties::AUTHENTICATION, "aws-iam"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect();
    spec.input_artifacts = vec![artifact];
    Ok(environment.sandbox.sandbox.queue_job(spec))
}

/// The JFrog admin's one call: maps the worker's role to the publishing user.
pub async fn map_worker_role(environment: &LocalEnvironment) -> anyhow::Result<()> {
    let response = reqwest::Client::new()
        .put(format!(
            "{}/access/api/v1/aws/iam_role",
            environment.registry.base_url
        ))
        .basic_auth(DEMO_ADMIN.0, Some(DEMO_ADMIN.1))
        .json(&serde_json::json!({
            "username": super::DEMO_USER,
            "iam_role": environment.sandbox.sandbox.worker_role_arn(),
        }))
        .send()
        .await
        .context("could not map the worker's role in the mock registry")?;
    anyhow::ensure!(
        response.status().is_success(),
        "the mock registry refused the role mapping: {}",
        response.status()
    );
    Ok(())
}

/// The worker's settings: the demo's registry is the one the fleet allows.
pub fn publisher_settings(environment: &LocalEnvironment) -> anyhow::Result<PublisherSettings> {
    Ok(PublisherSettings {
        login: LoginSettings {
            trust: FleetTrust {
                allowed_registries: FleetTrust::parse_registries(std::slice::from_ref(
                    &environment.registry.base_url,
                ))?,
                ..FleetTrust::default()
            },
            ..LoginSettings::default()
        },
        ..PublisherSettings::default()
    })
}
