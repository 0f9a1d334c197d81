//! The EventBridge side: when a job is queued, CodePipeline emits a "CodePipeline Action
//! Execution State Change" event with state `STARTED` in the job's account and region; the
//! member account's rule forwards it to the central bus, whose rule puts it on the fleet's
//! queue(s). The sandbox delivers it at once to every subscribed queue, with the event JSON
//! as the message body, as an EventBridge SQS target does.

use serde_json::{Value, json};

use super::Sandbox;
use super::fleet::{job_account, job_region};
use super::ids;
use super::state::{Job, State};

/// The `detail-type` of the event.
pub const ACTION_EXECUTION_STATE_CHANGE: &str = "CodePipeline Action Execution State Change";

/// The event for `job` having started, as EventBridge delivers it.
pub(crate) fn action_started_event(job: &Job, sandbox: &Sandbox) -> Value {
    let spec = &job.spec;
    let account = job_account(spec, sandbox);
    let region = job_region(spec, sandbox);
    let time = time::OffsetDateTime::now_utc();
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    let time = time
        .format(&format)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned());
    json!({
        "version": "0",
        "id": ids::uuid(),
        "detail-type": ACTION_EXECUTION_STATE_CHANGE,
        "source": "aws.codepipeline",
        "account": account,
        "time": time,
        "region": region,
        "resources": [format!("arn:aws:codepipeline:{region}:{account}:{}", spec.pipeline_name)],
        "detail": {
            "pipeline": spec.pipeline_name,
            "execution-id": job.pipeline_execution_id,
            "action-execution-id": job.action_execution_id,
            "stage": spec.stage_name,
            "action": spec.action_name,
            "state": "STARTED",
            "region": region,
            "type": {
                "owner": spec.action_type.owner,
                "category": spec.action_type.category,
                "provider": spec.action_type.provider,
                "version": spec.action_type.version,
            },
            "version": 1.0,
        },
    })
}

/// Puts the STARTED event of job `job_id` on every subscribed queue; true if any got it.
pub(crate) fn deliver_job_started(sandbox: &Sandbox, state: &mut State, job_id: &str) -> bool {
    let Some(event) = state
        .job(job_id)
        .map(|job| action_started_event(job, sandbox).to_string())
    else {
        return false;
    };
    let mut delivered = false;
    for queue in state.fleet.queues.values_mut() {
        if queue.subscribed {
            queue.push(event.clone());
            delivered = true;
        }
    }
    delivered
}
