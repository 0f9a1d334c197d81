//! The job model: what CodePipeline hands a job worker, in our own types.
//!
//! These mirror the `Job` / `JobData` shapes of the job API but are independent of the AWS SDK,
//! so the worker loop can be driven by a fake control plane in tests. A job carries secrets in
//! plain text (the action's secret properties and temporary S3 credentials): `Debug` on every
//! type here masks them, and nothing logs a whole job.

use std::collections::BTreeMap;
use std::fmt;

use crate::pipeline::properties;
use crate::secret::{MASK, Redactor, SecretString};

/// The action type a worker serves: category / owner / provider / version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionTypeId {
    pub category: String,
    pub owner: String,
    pub provider: String,
    pub version: String,
}

impl Default for ActionTypeId {
    fn default() -> Self {
        Self {
            category: "Deploy".into(),
            owner: "Custom".into(),
            provider: "Artifactory".into(),
            version: "1".into(),
        }
    }
}

impl fmt::Display for ActionTypeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}",
            self.owner, self.category, self.provider, self.version
        )
    }
}

/// A job as returned by `PollForJobs`.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    /// Proves to `AcknowledgeJob` that this worker is the one the job was handed to.
    pub nonce: String,
    pub account_id: String,
    pub data: JobData,
}

/// Everything the action needs to do its work.
#[derive(Debug, Clone, Default)]
pub struct JobData {
    pub action_type: ActionTypeId,
    pub configuration: ActionConfiguration,
    pub pipeline: PipelineContext,
    pub input_artifacts: Vec<Artifact>,
    pub output_artifacts: Vec<Artifact>,
    pub artifact_credentials: Option<ArtifactCredentials>,
    pub continuation_token: Option<String>,
    pub encryption_key: Option<EncryptionKey>,
}

impl JobData {
    /// A redactor that knows every secret this job carries.
    pub fn redactor(&self) -> Redactor {
        let redactor = Redactor::new();
        for (name, value) in &self.configuration.0 {
            if self.configuration.is_secret(name) {
                redactor.add(&SecretString::from(value.clone()));
            }
        }
        if let Some(credentials) = &self.artifact_credentials {
            redactor.add(&credentials.secret_access_key);
            redactor.add(&credentials.session_token);
        }
        redactor
    }
}

/// The action's configuration properties, by name. Values of secret properties (and of any
/// property we do not know, which might be secret too) never appear in `Debug` output.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ActionConfiguration(pub BTreeMap<String, String>);

impl ActionConfiguration {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    fn is_secret(&self, name: &str) -> bool {
        properties::property(name).is_none_or(|spec| spec.secret)
    }
}

impl fmt::Debug for ActionConfiguration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (name, value) in &self.0 {
            if self.is_secret(name) {
                map.entry(name, &MASK);
            } else {
                map.entry(name, value);
            }
        }
        map.finish()
    }
}

/// Where in which pipeline the action runs.
#[derive(Debug, Clone, Default)]
pub struct PipelineContext {
    pub pipeline_name: String,
    pub stage_name: String,
    pub action_name: String,
    pub action_execution_id: Option<String>,
    pub pipeline_arn: Option<String>,
    pub execution_id: String,
    /// The region of the job API that handed the job out (the source's region), for jobs
    /// whose context carries no pipeline ARN.
    pub source_region: Option<String>,
}

impl PipelineContext {
    /// The region of the pipeline (and so of its artifact bucket): from its ARN, else the
    /// region of the source the job came from.
    pub fn region(&self) -> Option<&str> {
        // arn:aws:codepipeline:REGION:ACCOUNT:NAME
        let from_arn = self
            .pipeline_arn
            .as_deref()
            .and_then(|arn| arn.split(':').nth(3))
            .filter(|region| !region.is_empty());
        from_arn.or(self.source_region.as_deref())
    }
}

/// An input or output artifact and where it lives in the artifact store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub name: String,
    /// The source revision (e.g. a commit id) the artifact was built from, when known.
    pub revision: Option<String>,
    pub bucket: String,
    pub key: String,
}

/// Temporary credentials scoped to the pipeline's artifact bucket.
#[derive(Clone)]
pub struct ArtifactCredentials {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    pub session_token: SecretString,
}

impl fmt::Debug for ArtifactCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArtifactCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &MASK)
            .field("session_token", &MASK)
            .finish()
    }
}

/// The KMS key that encrypts the artifact store, for uploads to output artifacts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptionKey {
    pub id: String,
    pub kind: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_secrets() {
        let mut configuration = BTreeMap::new();
        configuration.insert("Password".to_owned(), "s3cret-pass".to_owned());
        configuration.insert("SomethingNew".to_owned(), "maybe-secret".to_owned());
        configuration.insert("RepoKey".to_owned(), "firmware".to_owned());
        let data = JobData {
            configuration: ActionConfiguration(configuration),
            artifact_credentials: Some(ArtifactCredentials {
                access_key_id: "ASIAEXAMPLE".into(),
                secret_access_key: SecretString::from("wJalrXUtnFEMI"),
                session_token: SecretString::from("FQoGZXIvYXdzEJr"),
            }),
            ..JobData::default()
        };
        let debug = format!("{data:?}");
        for secret in [
            "s3cret-pass",
            "maybe-secret",
            "wJalrXUtnFEMI",
            "FQoGZXIvYXdzEJr",
        ] {
            assert!(!debug.contains(secret), "{secret} leaked: {debug}");
        }
        assert!(debug.contains("firmware") && debug.contains("ASIAEXAMPLE"));
        let redactor = data.redactor();
        assert_eq!(
            redactor.scrub("s3cret-pass wJalrXUtnFEMI FQoGZXIvYXdzEJr"),
            "**** **** ****"
        );
    }

    #[test]
    fn region_comes_from_the_pipeline_arn() {
        let context = PipelineContext {
            pipeline_arn: Some("arn:aws:codepipeline:eu-west-1:111122223333:nestbox".into()),
            ..PipelineContext::default()
        };
        assert_eq!(context.region(), Some("eu-west-1"));
        assert_eq!(PipelineContext::default().region(), None);
        let polled_elsewhere = PipelineContext {
            source_region: Some("ap-southeast-2".into()),
            ..PipelineContext::default()
        };
        assert_eq!(polled_elsewhere.region(), Some("ap-southeast-2"));
    }
}
