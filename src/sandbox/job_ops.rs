//! Dispatch of the job-worker operations, and the first three (PollForJobs, AcknowledgeJob,
//! GetJobDetails): request shapes, validation against the service model's constraints, and
//! the dispatch/acknowledge half of the job state machine.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::Sandbox;
use super::fleet::Caller;
use super::job_api::ApiError;
use super::job_results;
use super::jobs;
use super::model::{ActionTypeId, JobStatus};
use super::validate::{Violations, is_name_char};

/// Runs `operation` on the JSON `body`.
pub(crate) fn dispatch(
    sandbox: &Sandbox,
    caller: &Caller,
    operation: &str,
    body: &[u8],
) -> Result<Value, ApiError> {
    match operation {
        "PollForJobs" => poll_for_jobs(sandbox, caller, parse(body)?),
        "AcknowledgeJob" => acknowledge_job(sandbox, caller, parse(body)?),
        "GetJobDetails" => get_job_details(sandbox, caller, parse(body)?),
        "PutJobSuccessResult" => job_results::put_job_success_result(sandbox, caller, parse(body)?),
        "PutJobFailureResult" => job_results::put_job_failure_result(sandbox, caller, parse(body)?),
        other => Err(ApiError::new(
            "UnknownOperationException",
            format!("The sandbox does not implement operation '{other}'"),
        )),
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|error| {
        ApiError::new(
            "SerializationException",
            format!("Malformed request: {error}"),
        )
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ActionTypeIdInput {
    category: Option<String>,
    owner: Option<String>,
    provider: Option<String>,
    version: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PollForJobsInput {
    action_type_id: Option<ActionTypeIdInput>,
    max_batch_size: Option<i64>,
    query_param: Option<BTreeMap<String, String>>,
}

fn poll_for_jobs(
    sandbox: &Sandbox,
    caller: &Caller,
    input: PollForJobsInput,
) -> Result<Value, ApiError> {
    let mut violations = Violations::default();
    violations.required("actionTypeId", input.action_type_id.as_ref());
    if let Some(id) = &input.action_type_id {
        let categories = [
            "Source", "Build", "Deploy", "Test", "Invoke", "Approval", "Compute",
        ];
        for (name, value) in [
            ("category", &id.category),
            ("owner", &id.owner),
            ("provider", &id.provider),
            ("version", &id.version),
        ] {
            violations.required(&format!("actionTypeId.{name}"), value.as_ref());
        }
        violations.one_of("actionTypeId.category", id.category.as_ref(), &categories);
        let owners = ["AWS", "ThirdParty", "Custom"];
        violations.one_of("actionTypeId.owner", id.owner.as_ref(), &owners);
        violations.length("actionTypeId.provider", id.provider.as_ref(), 1, 35);
        let pattern = "[0-9A-Za-z_-]+";
        violations.pattern(
            "actionTypeId.provider",
            id.provider.as_ref(),
            pattern,
            is_name_char,
        );
        violations.length("actionTypeId.version", id.version.as_ref(), 1, 9);
        violations.pattern(
            "actionTypeId.version",
            id.version.as_ref(),
            pattern,
            is_name_char,
        );
    }
    violations.range("maxBatchSize", input.max_batch_size, 1, None);
    let query = input.query_param.unwrap_or_default();
    if query.len() > 1 {
        let constraint = "Member must have length less than or equal to 1";
        violations.constraint("queryParam", &format!("'{query:?}'"), constraint);
    }
    for (key, value) in &query {
        violations.length("queryParam.key", Some(key), 1, 50);
        violations.length("queryParam.value", Some(value), 1, 50);
        violations.pattern(
            "queryParam.value",
            Some(value),
            "[a-zA-Z0-9_-]+",
            is_name_char,
        );
    }
    violations.finish()?;
    let Some(id) = input.action_type_id else {
        return Err(ApiError::validation("actionTypeId is required".to_owned()));
    };
    // The model sets no maximum; CodePipeline hands out at most what it has.
    let max_batch_size = usize::try_from(input.max_batch_size.unwrap_or(1)).unwrap_or(usize::MAX);
    let action_type = ActionTypeId {
        category: id.category.unwrap_or_default(),
        owner: id.owner.unwrap_or_default(),
        provider: id.provider.unwrap_or_default(),
        version: id.version.unwrap_or_default(),
    };

    let config = &sandbox.inner.config;
    let mut state = sandbox.inner.state();
    if !state.action_type_exists(&caller.account_id, &caller.region, &action_type) {
        return Err(ApiError::new(
            "ActionTypeNotFoundException",
            format!(
                "ActionType (Category: '{}', Provider: '{}', Version: '{}', Owner: '{}') does \
                 not exist",
                action_type.category, action_type.provider, action_type.version, action_type.owner
            ),
        ));
    }
    let now = Instant::now();
    let mut handed_out = Vec::new();
    for job in state.jobs.iter_mut() {
        if handed_out.len() >= max_batch_size {
            break;
        }
        let ack_overdue = job.status == JobStatus::Dispatched
            && job
                .dispatched_at
                .is_some_and(|at| now.duration_since(at) >= config.ack_timeout);
        // A job claimed elsewhere is still handed out while queued: that is the race in which
        // two workers poll the same job and the other one acknowledges first.
        let available = (job.status == JobStatus::Queued || ack_overdue)
            && job.spec.action_type == action_type
            && caller.sees(&job.spec, sandbox)
            && query
                .iter()
                .all(|(key, value)| job.spec.configuration.get(key) == Some(value));
        if available {
            let nonce = super::ids::nonce();
            job.status = JobStatus::Dispatched;
            job.dispatched_at = Some(now);
            handed_out.push(jobs::job_json(job, &nonce, sandbox));
            job.nonce = Some(nonce);
        }
    }
    if !handed_out.is_empty() {
        let dispatched = std::sync::Arc::clone(&state.fleet.job_dispatched);
        drop(state);
        dispatched.notify_waiters();
    }
    Ok(json!({ "jobs": handed_out }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AcknowledgeJobInput {
    job_id: Option<String>,
    nonce: Option<String>,
}

fn acknowledge_job(
    sandbox: &Sandbox,
    caller: &Caller,
    input: AcknowledgeJobInput,
) -> Result<Value, ApiError> {
    let mut violations = Violations::default();
    violations.job_id(input.job_id.as_ref());
    violations.required("nonce", input.nonce.as_ref());
    violations.length("nonce", input.nonce.as_ref(), 1, 50);
    violations.finish()?;
    let (Some(job_id), Some(nonce)) = (input.job_id, input.nonce) else {
        return Err(ApiError::validation(
            "jobId and nonce are required".to_owned(),
        ));
    };
    let mut state = sandbox.inner.state();
    let job = state
        .job_mut(&job_id)
        .filter(|job| caller.sees(&job.spec, sandbox))
        .ok_or_else(|| job_not_found(&job_id))?;
    let current = job.status == JobStatus::Dispatched
        && !job.claimed_elsewhere
        && job.nonce.as_deref() == Some(nonce.as_str());
    if job.claimed_elsewhere {
        // The other worker's acknowledgement won; the job is now in progress there.
        job.status = JobStatus::InProgress;
    }
    if !current {
        return Err(ApiError::new(
            "InvalidNonceException",
            format!("Nonce '{nonce}' is not valid for job {job_id}"),
        ));
    }
    job.status = JobStatus::InProgress;
    job.acknowledgements += 1;
    Ok(json!({ "status": "InProgress" }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetJobDetailsInput {
    job_id: Option<String>,
}

fn get_job_details(
    sandbox: &Sandbox,
    caller: &Caller,
    input: GetJobDetailsInput,
) -> Result<Value, ApiError> {
    let mut violations = Violations::default();
    violations.job_id(input.job_id.as_ref());
    violations.finish()?;
    let job_id = input.job_id.unwrap_or_default();
    let state = sandbox.inner.state();
    let job = state
        .job(&job_id)
        .filter(|job| caller.sees(&job.spec, sandbox))
        .ok_or_else(|| job_not_found(&job_id))?;
    Ok(json!({ "jobDetails": jobs::job_details_json(job, sandbox) }))
}

pub(crate) fn job_not_found(job_id: &str) -> ApiError {
    ApiError::new("JobNotFoundException", format!("Job {job_id} not found"))
}
