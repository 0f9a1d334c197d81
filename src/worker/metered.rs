//! A [`JobApi`] wrapper that counts job-API errors and throttling per operation and remembers
//! the last successful poll, overall and of its source (for `/healthz`), so the loop itself
//! needs no metric calls.

use std::sync::Arc;

use crate::metrics::{JobApiOperation, Metrics};
use crate::pipeline::{
    Acknowledgement, Job, JobApi, JobApiError, JobData, JobFailure, JobSuccess, PollVersions,
};

pub(crate) struct MeteredJobApi<A> {
    inner: Arc<A>,
    metrics: Arc<Metrics>,
    /// The source's index in the per-source series.
    source: usize,
}

impl<A> MeteredJobApi<A> {
    pub(crate) fn new(inner: Arc<A>, metrics: Arc<Metrics>, source: usize) -> Self {
        Self {
            inner,
            metrics,
            source,
        }
    }

    fn observe<T>(&self, operation: JobApiOperation, result: &Result<T, JobApiError>) {
        match result {
            Ok(_) => {}
            Err(JobApiError::Throttled { .. }) => self.metrics.job_api_throttled(operation),
            // Losing a race for a job is normal in a fleet: counted as a lost claim, not an error.
            Err(JobApiError::InvalidNonce { .. }) => {}
            Err(_) => self.metrics.job_api_error(operation),
        }
    }
}

impl<A: JobApi> JobApi for MeteredJobApi<A> {
    async fn poll_for_jobs(
        &self,
        max_batch_size: usize,
        versions: PollVersions<'_>,
    ) -> Result<Vec<Job>, JobApiError> {
        let result = self.inner.poll_for_jobs(max_batch_size, versions).await;
        self.observe(JobApiOperation::PollForJobs, &result);
        match &result {
            Ok(_) => {
                self.metrics.poll_succeeded();
                self.metrics.source_poll_succeeded(self.source);
            }
            Err(error) => {
                let reason = error.to_string();
                self.metrics.poll_failed(&reason);
                let down = !matches!(error, JobApiError::Throttled { .. });
                self.metrics.source_poll_failed(self.source, &reason, down);
            }
        }
        result
    }

    async fn acknowledge_job(
        &self,
        job_id: &str,
        nonce: &str,
    ) -> Result<Acknowledgement, JobApiError> {
        let result = self.inner.acknowledge_job(job_id, nonce).await;
        self.observe(JobApiOperation::AcknowledgeJob, &result);
        result
    }

    async fn get_job_details(&self, job_id: &str) -> Result<JobData, JobApiError> {
        let result = self.inner.get_job_details(job_id).await;
        self.observe(JobApiOperation::GetJobDetails, &result);
        result
    }

    async fn put_job_success_result(
        &self,
        job_id: &str,
        success: &JobSuccess,
    ) -> Result<(), JobApiError> {
        let result = self.inner.put_job_success_result(job_id, success).await;
        self.observe(JobApiOperation::PutJobSuccessResult, &result);
        result
    }

    async fn put_job_failure_result(
        &self,
        job_id: &str,
        failure: &JobFailure,
    ) -> Result<(), JobApiError> {
        let result = self.inner.put_job_failure_result(job_id, failure).await;
        self.observe(JobApiOperation::PutJobFailureResult, &result);
        result
    }
}
