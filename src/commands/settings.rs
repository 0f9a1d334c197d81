//! The action configuration of a one-shot command: the `--config` JSON file (the action's
//! property names), overridden by flags, plus the password from the environment or a prompt.
//!
//! The result is the same string map a CodePipeline job carries, so `publish` parses it with
//! the job's own [`ActionConfig::from_job`] and plans with the job's own code.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::Path;

use anyhow::Context;

use crate::cli::{PASSWORD_ENV, RegistryArgs};
use crate::pipeline::job::{ActionConfiguration, Artifact, JobData, PipelineContext};
use crate::pipeline::properties::{self, PASSWORD};
use crate::secret::{ExposeSecret, SecretString};

/// The properties of one run, without the password.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub properties: BTreeMap<String, String>,
}

impl Settings {
    /// Reads `--config` (if any) and applies the flags of `registry` and `overrides` over it.
    pub fn load(
        registry: &RegistryArgs,
        overrides: &[(&'static str, Option<&String>)],
    ) -> anyhow::Result<Self> {
        let mut settings = match &registry.config {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        let flags = [
            (
                properties::ARTIFACTORY_HOST,
                registry.artifactory_host.as_ref(),
            ),
            (properties::REPO_KEY, registry.repo_key.as_ref()),
            (properties::USER_NAME, registry.user_name.as_ref()),
            (properties::AUTHENTICATION, registry.authentication.as_ref()),
        ];
        for (name, value) in flags.into_iter().chain(overrides.iter().copied()) {
            if let Some(value) = value {
                settings.properties.insert(name.to_owned(), value.clone());
            }
        }
        Ok(settings)
    }

    fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!("could not read the configuration file `{}`", path.display())
        })?;
        let json: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text)
            .with_context(|| {
                format!(
                    "`{}` is not a JSON object of action properties \
                     (see examples/firmware/action-config.json)",
                    path.display()
                )
            })?;
        let mut properties = BTreeMap::new();
        for (name, value) in json {
            if name == PASSWORD {
                // Passwords do not belong in files; the placeholder in the example is ignored.
                eprintln!(
                    "note: the Password in `{}` is ignored; the password comes from {PASSWORD_ENV} \
                     or the prompt",
                    path.display()
                );
                continue;
            }
            if properties::property(&name).is_none() {
                let known: Vec<&str> = properties::ACTION_PROPERTIES_V2
                    .iter()
                    .map(|spec| spec.name)
                    .collect();
                anyhow::bail!(
                    "`{}` has an unknown property `{name}` (known: {})",
                    path.display(),
                    known.join(", ")
                );
            }
            let value = match value {
                serde_json::Value::String(text) => text,
                serde_json::Value::Null => continue,
                other => other.to_string(),
            };
            properties.insert(name, value);
        }
        Ok(Self { properties })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.properties
            .get(name)
            .map(String::as_str)
            .filter(|value| !value.trim().is_empty())
    }

    /// The job data a CodePipeline job with these properties would carry.
    pub fn job_data(
        &self,
        password: &SecretString,
        pipeline: PipelineContext,
        artifact: Artifact,
    ) -> JobData {
        let mut configuration = self.properties.clone();
        // Only the password mode takes a password; the others refuse one.
        let password_mode = self
            .get(properties::AUTHENTICATION)
            .is_none_or(|mode| mode.trim().eq_ignore_ascii_case("password"));
        if password_mode {
            configuration.insert(PASSWORD.to_owned(), password.expose_secret().to_owned());
        }
        JobData {
            configuration: ActionConfiguration(configuration),
            pipeline,
            input_artifacts: vec![artifact],
            ..JobData::default()
        }
    }
}

/// A registry password, kept secret.
pub type Password = SecretString;

/// The registry password: `PIPELINE_PUBLISHER_PASSWORD`, else a prompt when standard input is
/// a terminal, else `None`.
pub fn password(user_name: Option<&str>, host: Option<&str>) -> anyhow::Result<Option<Password>> {
    if let Some(value) = std::env::var_os(PASSWORD_ENV) {
        let value = value
            .into_string()
            .map_err(|_| anyhow::anyhow!("{PASSWORD_ENV} is not valid UTF-8"))?;
        if !value.is_empty() {
            return Ok(Some(SecretString::from(value)));
        }
    }
    if !std::io::stdin().is_terminal() {
        return Ok(None);
    }
    let prompt = format!(
        "Password for {} at {}: ",
        user_name.unwrap_or("the user"),
        host.unwrap_or("the registry")
    );
    let entered = rpassword::prompt_password(prompt).context("could not read the password")?;
    Ok((!entered.is_empty()).then(|| SecretString::from(entered)))
}
