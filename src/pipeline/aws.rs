//! [`JobApi`] over the real AWS SDK client.
//!
//! The client is built from the standard AWS configuration (region, credentials chain,
//! `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_CODEPIPELINE`), so the same code serves production
//! and local stand-ins.
//!
//! Retries. The job API throttles per account and region, so a fleet of workers shares one
//! request rate. Each call is retried by one layer only ([`crate::retry`]): `PollForJobs` by
//! the SDK with a small budget ([`POLL_FOR_JOBS`], full jitter from 100 ms, capped at 1 s)
//! before the loop paces the next poll; `AcknowledgeJob`, `GetJobDetails` and the result calls
//! by the worker's line for the source ([`JOB_CALL`], [`RESULT_CALL`],
//! [`crate::worker::lane`]), which sends a throttled source's calls one at a time, so the SDK
//! makes one attempt each. Throttled retries take no retry quota, so a busy fleet cannot run
//! its quota dry; transport errors and 5xx still spend it. The retry mode is the configured one
//! (`AWS_RETRY_MODE`), so the SDK's client-side rate limiter (`adaptive`) remains available.
//!
//! Sources. One [`AwsJobApi`] serves one source: a region, the credentials of its account (the
//! worker's own, or a role assumed with STS, see [`crate::pipeline::sources`]) and one or more
//! versions of the action type. With several versions, which of them a poll asks is decided by
//! [`crate::pipeline::versions`], so a poll costs one request unless no queue wakes the worker
//! and the version with work has run dry.
//!
//! [`JOB_CALL`]: crate::retry::JOB_CALL
//! [`POLL_FOR_JOBS`]: crate::retry::POLL_FOR_JOBS
//! [`RESULT_CALL`]: crate::retry::RESULT_CALL

use std::time::SystemTime;

use aws_runtime::retries::classifiers::THROTTLING_ERRORS;
use aws_sdk_codepipeline::Client;
use aws_sdk_codepipeline::config::retry::{
    ClientRateLimiter, RetryConfig, RetryMode, RetryPartition, TokenBucket,
};
use aws_sdk_codepipeline::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_codepipeline::types as sdk;

use crate::pipeline::control_plane::{Acknowledgement, JobApi, JobApiError, JobSuccess};
use crate::pipeline::failure::{FailureType, JobFailure};
use crate::pipeline::job::{
    ActionConfiguration, ActionTypeId, Artifact, ArtifactCredentials, EncryptionKey, Job, JobData,
    PipelineContext,
};
use crate::pipeline::versions::{PollVersions, VersionRotation};
use crate::retry::{JOB_CALL, POLL_FOR_JOBS, RESULT_CALL};
use crate::secret::SecretString;

/// The job API of one custom action type (one or more versions) in one source, through the
/// AWS SDK.
#[derive(Debug)]
pub struct AwsJobApi {
    client: Client,
    /// The versions polled, in the order of `rotation`.
    action_types: Vec<sdk::ActionTypeId>,
    rotation: VersionRotation,
    /// The client's region, recorded on each job for its artifact downloads.
    region: Option<String>,
    /// No SDK retries: the worker's line for the source retries every call but the poll.
    single_attempt: RetryConfig,
}

/// The job API client's retry policy, that of its polls (see the module docs): the
/// configured mode, short full-jitter backoff, [`POLL_FOR_JOBS`]' attempts.
fn job_api_retry_config(configured: Option<&RetryConfig>) -> RetryConfig {
    let mode = configured.map_or(RetryMode::Standard, RetryConfig::mode);
    RetryConfig::standard()
        .with_retry_mode(mode)
        .with_initial_backoff(POLL_FOR_JOBS.errors.base)
        .with_max_backoff(POLL_FOR_JOBS.errors.cap)
        .with_max_attempts(POLL_FOR_JOBS.attempts)
}

impl AwsJobApi {
    pub fn new(
        sdk_config: &aws_config::SdkConfig,
        action_type: &ActionTypeId,
    ) -> anyhow::Result<Self> {
        Self::for_versions(sdk_config, std::slice::from_ref(action_type))
    }

    /// A job API polling each of `action_types` (the versions of one action type) in turn.
    pub fn for_versions(
        sdk_config: &aws_config::SdkConfig,
        action_types: &[ActionTypeId],
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(!action_types.is_empty(), "no action type version to poll");
        let action_types = action_types
            .iter()
            .map(|action_type| {
                sdk::ActionTypeId::builder()
                    .category(sdk::ActionCategory::from(action_type.category.as_str()))
                    .owner(sdk::ActionOwner::from(action_type.owner.as_str()))
                    .provider(&action_type.provider)
                    .version(&action_type.version)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let rotation = VersionRotation::new(
            action_types
                .iter()
                .map(|action_type| action_type.version.clone())
                .collect(),
        );
        let retry = job_api_retry_config(sdk_config.retry_config());
        // Throttled retries are free; transport-error and 5xx retries keep the SDK's costs.
        let retry_quota = TokenBucket::builder().throttling_retry_cost(0).build();
        // Only used in `adaptive` mode; started as the SDK starts its default partition's.
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let config = aws_sdk_codepipeline::config::Builder::from(sdk_config)
            .retry_config(retry.clone())
            .retry_partition(
                RetryPartition::custom("codepipeline-job-api")
                    .token_bucket(retry_quota)
                    .client_rate_limiter(ClientRateLimiter::new(now))
                    .build(),
            )
            .build();
        Ok(Self {
            client: Client::from_conf(config),
            action_types,
            rotation,
            region: sdk_config.region().map(ToString::to_string),
            single_attempt: retry.with_max_attempts(1),
        })
    }
}

impl AwsJobApi {
    async fn poll_version(
        &self,
        version: usize,
        max_batch_size: usize,
    ) -> Result<Vec<Job>, JobApiError> {
        let output = self
            .client
            .poll_for_jobs()
            .action_type_id(self.action_types[version].clone())
            .max_batch_size(i32::try_from(max_batch_size.max(1)).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(classify)?;
        Ok(output
            .jobs
            .unwrap_or_default()
            .into_iter()
            .filter_map(job_from_sdk)
            .collect())
    }

    fn single_attempt(&self) -> aws_sdk_codepipeline::config::Builder {
        aws_sdk_codepipeline::config::Builder::default().retry_config(self.single_attempt.clone())
    }
}

const _: () = assert!(
    RESULT_CALL.attempts > 1 && JOB_CALL.attempts > 1,
    "the source's line must retry the calls the SDK makes once"
);

impl JobApi for AwsJobApi {
    async fn poll_for_jobs(
        &self,
        max_batch_size: usize,
        versions: PollVersions<'_>,
    ) -> Result<Vec<Job>, JobApiError> {
        let now = tokio::time::Instant::now();
        for version in self.rotation.plan(versions, now) {
            // A failed poll says nothing about the version's work: the next one asks it again.
            let mut jobs = self.poll_version(version, max_batch_size).await?;
            self.rotation.asked(version, !jobs.is_empty(), now);
            if !jobs.is_empty() {
                for job in &mut jobs {
                    job.data.pipeline.source_region = self.region.clone();
                }
                return Ok(jobs);
            }
        }
        Ok(Vec::new())
    }

    async fn acknowledge_job(
        &self,
        job_id: &str,
        nonce: &str,
    ) -> Result<Acknowledgement, JobApiError> {
        let output = self
            .client
            .acknowledge_job()
            .job_id(job_id)
            .nonce(nonce)
            .customize()
            .config_override(self.single_attempt())
            .send()
            .await
            .map_err(classify)?;
        Ok(match output.status {
            Some(sdk::JobStatus::InProgress) => Acknowledgement::InProgress,
            other => Acknowledgement::NotOurs {
                status: other.map_or_else(|| "unknown".to_owned(), |s| s.as_str().to_owned()),
            },
        })
    }

    async fn get_job_details(&self, job_id: &str) -> Result<JobData, JobApiError> {
        let output = self
            .client
            .get_job_details()
            .job_id(job_id)
            .customize()
            .config_override(self.single_attempt())
            .send()
            .await
            .map_err(classify)?;
        let data = output
            .job_details
            .and_then(|details| details.data)
            .ok_or_else(|| JobApiError::Rejected {
                code: "MissingJobData".into(),
                message: format!("GetJobDetails returned no data for job {job_id}"),
            })?;
        let mut data = job_data_from_sdk(data);
        data.pipeline.source_region = self.region.clone();
        Ok(data)
    }

    async fn put_job_success_result(
        &self,
        job_id: &str,
        success: &JobSuccess,
    ) -> Result<(), JobApiError> {
        let details = sdk::ExecutionDetails::builder()
            .summary(&success.summary)
            .set_external_execution_id(success.external_execution_id.clone())
            .percent_complete(100)
            .build();
        let mut request = self
            .client
            .put_job_success_result()
            .job_id(job_id)
            .execution_details(details);
        if !success.output_variables.is_empty() {
            request = request
                .set_output_variables(Some(success.output_variables.clone().into_iter().collect()));
        }
        request
            .customize()
            .config_override(self.single_attempt())
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn put_job_failure_result(
        &self,
        job_id: &str,
        failure: &JobFailure,
    ) -> Result<(), JobApiError> {
        let details = sdk::FailureDetails::builder()
            .r#type(failure_type_to_sdk(failure.failure_type))
            .message(&failure.message)
            .set_external_execution_id(failure.external_execution_id.clone())
            .build()
            .map_err(|error| JobApiError::Rejected {
                code: "InvalidFailureDetails".into(),
                message: error.to_string(),
            })?;
        self.client
            .put_job_failure_result()
            .job_id(job_id)
            .failure_details(details)
            .customize()
            .config_override(self.single_attempt())
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }
}

fn failure_type_to_sdk(failure_type: FailureType) -> sdk::FailureType {
    sdk::FailureType::from(failure_type.as_str())
}

/// Maps an SDK error onto what the worker must decide: drop the job, retry later, or give up.
fn classify<E, R>(error: SdkError<E, R>) -> JobApiError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let message = |meta: &dyn ProvideErrorMetadata| meta.message().unwrap_or("").to_owned();
    match &error {
        SdkError::ServiceError(context) => {
            let service_error = context.err();
            let code = service_error.code().unwrap_or("Unknown").to_owned();
            let message = message(service_error);
            match code.as_str() {
                "InvalidNonceException" => JobApiError::InvalidNonce { message },
                "JobNotFoundException" => JobApiError::JobNotFound { message },
                "InvalidJobStateException" => JobApiError::InvalidJobState { message },
                // The SDK's own list, so the worker and the SDK's retry classifier agree.
                throttled if THROTTLING_ERRORS.contains(&throttled) => JobApiError::Throttled {
                    code: throttled.to_owned(),
                    message,
                },
                "ServiceUnavailableException" | "InternalFailure" | "InternalServerError" => {
                    JobApiError::Unavailable {
                        message: format!("{code}: {message}"),
                    }
                }
                _ => JobApiError::Rejected { code, message },
            }
        }
        // The source's credentials could not be had (e.g. its role cannot be assumed): no
        // request was sent.
        _ if is_credentials_error(&error) => JobApiError::NoCredentials {
            message: crate::error::inline_chain(&error),
        },
        // Timeouts, connection failures and unparseable (e.g. 5xx HTML) answers are transient.
        _ => JobApiError::Unavailable {
            message: crate::error::inline_chain(&error),
        },
    }
}

/// Whether the SDK error is the credentials provider's (found by type in its source chain).
fn is_credentials_error(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error
            .downcast_ref::<aws_credential_types::provider::error::CredentialsError>()
            .is_some()
        {
            return true;
        }
        current = error.source();
    }
    false
}

fn job_from_sdk(job: sdk::Job) -> Option<Job> {
    // A job without an id or nonce cannot be acknowledged or answered: nothing to do with it.
    let (Some(id), Some(nonce)) = (job.id, job.nonce) else {
        tracing::warn!("PollForJobs returned a job without an id or nonce; ignoring it");
        return None;
    };
    Some(Job {
        id,
        nonce,
        account_id: job.account_id.unwrap_or_default(),
        data: job.data.map(job_data_from_sdk).unwrap_or_default(),
    })
}

fn job_data_from_sdk(data: sdk::JobData) -> JobData {
    let action_type = data
        .action_type_id
        .map(|id| ActionTypeId {
            category: id.category.as_str().to_owned(),
            owner: id.owner.as_str().to_owned(),
            provider: id.provider,
            version: id.version,
        })
        .unwrap_or_default();
    let configuration = ActionConfiguration(
        data.action_configuration
            .and_then(|c| c.configuration)
            .unwrap_or_default()
            .into_iter()
            .collect(),
    );
    let pipeline = data
        .pipeline_context
        .map(|context| PipelineContext {
            pipeline_name: context.pipeline_name.unwrap_or_default(),
            stage_name: context.stage.and_then(|s| s.name).unwrap_or_default(),
            action_execution_id: context
                .action
                .as_ref()
                .and_then(|a| a.action_execution_id.clone()),
            action_name: context.action.and_then(|a| a.name).unwrap_or_default(),
            pipeline_arn: context.pipeline_arn,
            execution_id: context.pipeline_execution_id.unwrap_or_default(),
            source_region: None,
        })
        .unwrap_or_default();
    JobData {
        action_type,
        configuration,
        pipeline,
        input_artifacts: artifacts_from_sdk(data.input_artifacts),
        output_artifacts: artifacts_from_sdk(data.output_artifacts),
        artifact_credentials: data.artifact_credentials.map(|c| ArtifactCredentials {
            access_key_id: c.access_key_id,
            secret_access_key: SecretString::from(c.secret_access_key),
            session_token: SecretString::from(c.session_token),
        }),
        continuation_token: data.continuation_token,
        encryption_key: data.encryption_key.map(|key| EncryptionKey {
            id: key.id,
            kind: key.r#type.as_str().to_owned(),
        }),
    }
}

fn artifacts_from_sdk(artifacts: Option<Vec<sdk::Artifact>>) -> Vec<Artifact> {
    artifacts
        .unwrap_or_default()
        .into_iter()
        .filter_map(|artifact| {
            let location = artifact.location?.s3_location?;
            Some(Artifact {
                name: artifact.name.unwrap_or_default(),
                revision: artifact.revision,
                bucket: location.bucket_name,
                key: location.object_key,
            })
        })
        .collect()
}
