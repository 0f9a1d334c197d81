//! PutJobSuccessResult and PutJobFailureResult: request shapes, validation against the
//! service model's constraints, and ending a job (at most one accepted result per job).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use super::Sandbox;
use super::fleet::Caller;
use super::job_api::ApiError;
use super::job_ops::job_not_found;
use super::jobs;
use super::model::{JobResult, JobStatus};
use super::validate::{Violations, is_variable_char};

/// `FailureType` values.
const FAILURE_TYPES: &[&str] = &[
    "JobFailed",
    "ConfigurationError",
    "PermissionError",
    "RevisionOutOfSync",
    "RevisionUnavailable",
    "SystemUnavailable",
];
/// Total size of one action's output variables (CodePipeline quotas: 122,880 bytes).
const MAX_OUTPUT_VARIABLES_BYTES: usize = 122_880;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CurrentRevisionInput {
    revision: Option<String>,
    change_identifier: Option<String>,
    revision_summary: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExecutionDetailsInput {
    summary: Option<String>,
    external_execution_id: Option<String>,
    percent_complete: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PutJobSuccessResultInput {
    job_id: Option<String>,
    current_revision: Option<Value>,
    continuation_token: Option<String>,
    execution_details: Option<ExecutionDetailsInput>,
    output_variables: Option<BTreeMap<String, String>>,
}

pub(crate) fn put_job_success_result(
    sandbox: &Sandbox,
    caller: &Caller,
    input: PutJobSuccessResultInput,
) -> Result<Value, ApiError> {
    let mut violations = Violations::default();
    violations.job_id(input.job_id.as_ref());
    if let Some(revision) = &input.current_revision {
        let revision: CurrentRevisionInput = serde_json::from_value(revision.clone())
            .map_err(|error| ApiError::new("SerializationException", error.to_string()))?;
        let path = "currentRevision";
        violations.required(&format!("{path}.revision"), revision.revision.as_ref());
        violations.length(
            &format!("{path}.revision"),
            revision.revision.as_ref(),
            1,
            1500,
        );
        let change = revision.change_identifier.as_ref();
        violations.required(&format!("{path}.changeIdentifier"), change);
        violations.length(&format!("{path}.changeIdentifier"), change, 1, 100);
        let summary = revision.revision_summary.as_ref();
        violations.length(&format!("{path}.revisionSummary"), summary, 1, 2048);
    }
    let token = input.continuation_token.as_ref();
    violations.length("continuationToken", token, 1, 2048);
    if let Some(details) = &input.execution_details {
        let path = "executionDetails";
        violations.length(
            &format!("{path}.summary"),
            details.summary.as_ref(),
            1,
            2048,
        );
        let external = details.external_execution_id.as_ref();
        violations.length(&format!("{path}.externalExecutionId"), external, 1, 1500);
        let percent = details.percent_complete;
        violations.range(&format!("{path}.percentComplete"), percent, 0, Some(100));
    }
    let variables = input.output_variables.unwrap_or_default();
    for name in variables.keys() {
        let pattern = "[A-Za-z0-9@\\-_]+";
        violations.pattern("outputVariables.key", Some(name), pattern, is_variable_char);
    }
    violations.finish()?;
    if token.is_some() && !variables.is_empty() {
        return Err(ApiError::validation(
            "Output variables can only be set when the job has no continuation token".to_owned(),
        ));
    }
    let size: usize = variables
        .iter()
        .map(|(name, value)| name.len() + value.len())
        .sum();
    if size > MAX_OUTPUT_VARIABLES_BYTES {
        return Err(ApiError::new(
            "OutputVariablesSizeExceededException",
            format!("Output variables total {size} bytes, more than {MAX_OUTPUT_VARIABLES_BYTES}"),
        ));
    }
    let details = input.execution_details;
    let result = JobResult::Success {
        summary: details.as_ref().and_then(|d| d.summary.clone()),
        external_execution_id: details
            .as_ref()
            .and_then(|d| d.external_execution_id.clone()),
        percent_complete: details
            .as_ref()
            .and_then(|d| d.percent_complete)
            .and_then(|percent| i32::try_from(percent).ok()),
        output_variables: variables,
        continuation_token: input.continuation_token.clone(),
        current_revision: input.current_revision,
    };
    let job_id = input.job_id.unwrap_or_default();
    let follow_up = input.continuation_token;
    settle(
        sandbox,
        caller,
        &job_id,
        result,
        JobStatus::Succeeded,
        follow_up,
    )?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FailureDetailsInput {
    #[serde(rename = "type")]
    failure_type: Option<String>,
    message: Option<String>,
    external_execution_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PutJobFailureResultInput {
    job_id: Option<String>,
    failure_details: Option<FailureDetailsInput>,
}

pub(crate) fn put_job_failure_result(
    sandbox: &Sandbox,
    caller: &Caller,
    input: PutJobFailureResultInput,
) -> Result<Value, ApiError> {
    let mut violations = Violations::default();
    violations.job_id(input.job_id.as_ref());
    violations.required("failureDetails", input.failure_details.as_ref());
    if let Some(details) = &input.failure_details {
        let kind = details.failure_type.as_ref();
        violations.required("failureDetails.type", kind);
        violations.one_of("failureDetails.type", kind, FAILURE_TYPES);
        let message = details.message.as_ref();
        violations.required("failureDetails.message", message);
        violations.length("failureDetails.message", message, 1, 5000);
        let external = details.external_execution_id.as_ref();
        violations.length("failureDetails.externalExecutionId", external, 1, 1500);
    }
    violations.finish()?;
    let Some(details) = input.failure_details else {
        return Err(ApiError::validation(
            "failureDetails is required".to_owned(),
        ));
    };
    let result = JobResult::Failure {
        failure_type: details.failure_type.unwrap_or_default(),
        message: details.message.unwrap_or_default(),
        external_execution_id: details.external_execution_id,
    };
    let job_id = input.job_id.unwrap_or_default();
    settle(sandbox, caller, &job_id, result, JobStatus::Failed, None)?;
    Ok(json!({}))
}

/// Ends an in-progress job with `result` and wakes `wait_for_result`. A continuation token
/// makes CodePipeline create a new job carrying it; it is queued before waiters wake so
/// `wait_until_idle` never sees a gap.
fn settle(
    sandbox: &Sandbox,
    caller: &Caller,
    job_id: &str,
    result: JobResult,
    status: JobStatus,
    continuation_token: Option<String>,
) -> Result<(), ApiError> {
    let mut state = sandbox.inner.state();
    let job = state
        .job_mut(job_id)
        .filter(|job| caller.sees(&job.spec, sandbox))
        .ok_or_else(|| job_not_found(job_id))?;
    if job.status != JobStatus::InProgress {
        return Err(ApiError::new(
            "InvalidJobStateException",
            format!(
                "Job {job_id} is in state {}, not InProgress",
                job.status.as_str()
            ),
        ));
    }
    job.status = status;
    job.results.push(result);
    if let Some(token) = continuation_token {
        let spec = job.spec.clone();
        jobs::queue(&mut state, spec, Some(token));
    }
    drop(state);
    sandbox.inner.job_settled.notify_waiters();
    Ok(())
}
