//! Delivering a job's one result: the success or failure call, retried on its own budget
//! ([`RESULT_CALL`]), and what it means for the job when CodePipeline will not take it.

use std::time::Duration;

use tracing::{error, info, warn};

use crate::pipeline::{FailureType, JobApi, JobApiError, JobFailure, JobSuccess};
use crate::retry::RESULT_CALL;
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
    let result = deliver(|| api.put_job_success_result(job_id, &success)).await;
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
    match deliver(|| api.put_job_failure_result(job_id, &failure)).await {
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

/// Makes a result call, retrying while the job API is throttling or unreachable: a finished
/// job whose result is lost would hang its pipeline until the action times out. The budget is
/// [`RESULT_CALL`]; the SDK does not retry these calls itself, so this loop is the one layer.
async fn deliver<F, Fut>(mut call: F) -> Result<(), JobApiError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), JobApiError>>,
{
    let mut errors = RESULT_CALL.errors.backoff();
    let mut throttles = RESULT_CALL.throttle_pace().backoff();
    let started = tokio::time::Instant::now();
    // Every attempt, for the log; and those that failed other than throttled, for the budget.
    let (mut attempt, mut failed) = (1, 0);
    loop {
        let error = match call().await {
            Err(error) if error.is_transient() => error,
            other => return other,
        };
        let throttled = matches!(error, JobApiError::Throttled { .. });
        failed += u32::from(!throttled);
        let another = if throttled {
            RESULT_CALL.allows_another_throttled(failed, started.elapsed())
        } else {
            RESULT_CALL.allows_another(failed, started.elapsed())
        };
        if !another {
            return Err(error);
        }
        let delay = if throttled {
            throttles.next_delay()
        } else {
            errors.next_delay()
        };
        warn!(%error, attempt, retry_in_ms = delay.as_millis() as u64, "result call failed; retrying");
        tokio::time::sleep(delay).await;
        attempt += 1;
    }
}
