//! Delivering a job's one result: the success or failure call, and what it means for the job
//! when CodePipeline will not take it. The calls are retried by the source's line
//! ([`crate::worker::lane`], on the [`RESULT_CALL`] budget) before they return here.
//!
//! [`RESULT_CALL`]: crate::retry::RESULT_CALL

use std::time::Duration;

use tracing::{error, info, warn};

use crate::pipeline::{FailureType, JobApi, JobApiError, JobFailure, JobSuccess};
use crate::secret::Redactor;
use crate::worker::job_task::{JobEnd, JobTally};

pub(super) async fn report_success<A: JobApi>(
    api: &A,
    job_id: &str,
    success: JobSuccess,
    redactor: &Redactor,
    elapsed: Duration,
    tally: &JobTally,
) -> JobEnd {
    let success = JobSuccess {
        summary: redactor.scrub(&success.summary),
        ..success
    }
    .fit_to_api_limits();
    let result = api.put_job_success_result(job_id, &success).await;
    match result {
        Ok(()) => {
            info!(
                result = "Succeeded",
                duration_ms = elapsed.as_millis() as u64,
                files = tally.files(),
                bytes = tally.bytes(),
                summary = %success.summary,
                "job succeeded"
            );
            JobEnd::Succeeded
        }
        // The work is done but CodePipeline refused the success (e.g. a malformed output
        // variable): the job must still end, so tell it why as a failure.
        Err(JobApiError::Rejected { code, message }) => {
            let failure = JobFailure::new(
                FailureType::JobFailed,
                &format!(
                    "error: the publish finished but CodePipeline rejected its success result\n\
                     Caused by: {code}: {message}\n\n{}",
                    success.summary
                ),
                redactor,
            );
            report_failure(api, job_id, failure).await
        }
        Err(error) => undelivered(&error, "success"),
    }
}

pub(super) async fn report_failure<A: JobApi>(
    api: &A,
    job_id: &str,
    failure: JobFailure,
) -> JobEnd {
    match api.put_job_failure_result(job_id, &failure).await {
        Ok(()) => JobEnd::Failed(failure.failure_type),
        Err(error) => undelivered(&error, "failure"),
    }
}

fn undelivered(error: &JobApiError, what: &str) -> JobEnd {
    match error {
        JobApiError::InvalidJobState { .. } | JobApiError::JobNotFound { .. } => {
            warn!(%error, "the job had already ended before its {what} could be reported");
            JobEnd::AlreadyEnded
        }
        _ => {
            error!(%error, "could not report the job's {what}");
            JobEnd::ResultNotDelivered
        }
    }
}
