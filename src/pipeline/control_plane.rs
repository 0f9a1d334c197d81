//! The job API as the worker sees it: five calls, behind a trait.
//!
//! The worker loop is generic over [`JobApi`], so tests can drive the real loop with a fake and
//! production runs it against [`crate::pipeline::aws::AwsJobApi`] unchanged.

use std::collections::BTreeMap;
use std::future::Future;

use crate::pipeline::failure::{JobFailure, trim_to_chars};
use crate::pipeline::job::{Job, JobData};
use crate::pipeline::versions::PollVersions;

/// The answer to `AcknowledgeJob`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acknowledgement {
    /// The job is ours: work on it and report a result.
    InProgress,
    /// Any other status means another worker (or CodePipeline) owns the job.
    NotOurs { status: String },
}

/// What `PutJobSuccessResult` is sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobSuccess {
    /// `executionDetails.summary`, at most 2048 characters.
    pub summary: String,
    /// `executionDetails.externalExecutionId`, at most 1500 characters.
    pub external_execution_id: Option<String>,
    /// Variables downstream actions can use as `#{Namespace.Name}`.
    pub output_variables: BTreeMap<String, String>,
}

impl JobSuccess {
    /// `executionDetails.summary` may hold at most 2048 characters.
    pub const MAX_SUMMARY_CHARS: usize = 2048;
    /// `executionDetails.externalExecutionId` may hold at most 1500 characters.
    pub const MAX_EXTERNAL_ID_CHARS: usize = 1500;

    /// Trims the summary and external id to the API's limits and drops output variables whose
    /// names CodePipeline would reject (`[A-Za-z0-9@\-_]+`), so a long summary never turns a
    /// finished publish into a failed job.
    pub fn fit_to_api_limits(mut self) -> Self {
        self.summary = trim_to_chars(&self.summary, Self::MAX_SUMMARY_CHARS);
        self.external_execution_id = self
            .external_execution_id
            .map(|id| id.chars().take(Self::MAX_EXTERNAL_ID_CHARS).collect());
        self.output_variables.retain(|name, _| {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '@' | '-' | '_'))
        });
        self
    }
}

/// Errors of the job API, classified by what the caller should do about them.
#[derive(Debug, thiserror::Error)]
pub enum JobApiError {
    /// Another worker claimed the job, or the nonce is stale.
    #[error("the job's nonce was not accepted (InvalidNonceException): {message}")]
    InvalidNonce { message: String },
    #[error("the job no longer exists (JobNotFoundException): {message}")]
    JobNotFound { message: String },
    /// A result for a job that already ended (e.g. it timed out).
    #[error("the job has already ended (InvalidJobStateException): {message}")]
    InvalidJobState { message: String },
    #[error("CodePipeline rejected the request ({code}): {message}")]
    Rejected { code: String, message: String },
    #[error("CodePipeline is throttling requests ({code}): {message}")]
    Throttled { code: String, message: String },
    #[error("CodePipeline could not be reached or failed: {message}")]
    Unavailable { message: String },
    /// No credentials for the source, e.g. its role could not be assumed (no request was made).
    #[error(
        "no credentials for the job API (is the source's role assumable by this worker, with \
         this external ID?): {message}"
    )]
    NoCredentials { message: String },
}

impl JobApiError {
    /// Whether the same call may succeed if made again after a pause.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            JobApiError::Throttled { .. } | JobApiError::Unavailable { .. }
        )
    }
}

/// The control plane a worker talks to.
pub trait JobApi: Send + Sync + 'static {
    /// Claims up to `max_batch_size` jobs of the worker's action type, asking the `versions`
    /// the loop chose (a source with one version ignores the choice).
    fn poll_for_jobs(
        &self,
        max_batch_size: usize,
        versions: PollVersions<'_>,
    ) -> impl Future<Output = Result<Vec<Job>, JobApiError>> + Send;

    fn acknowledge_job(
        &self,
        job_id: &str,
        nonce: &str,
    ) -> impl Future<Output = Result<Acknowledgement, JobApiError>> + Send;

    /// Fresh job data, e.g. renewed artifact credentials.
    fn get_job_details(
        &self,
        job_id: &str,
    ) -> impl Future<Output = Result<JobData, JobApiError>> + Send;

    fn put_job_success_result(
        &self,
        job_id: &str,
        success: &JobSuccess,
    ) -> impl Future<Output = Result<(), JobApiError>> + Send;

    fn put_job_failure_result(
        &self,
        job_id: &str,
        failure: &JobFailure,
    ) -> impl Future<Output = Result<(), JobApiError>> + Send;
}
