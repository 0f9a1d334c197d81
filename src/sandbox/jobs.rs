//! Creating jobs (ids, credentials) and rendering them as CodePipeline's `Job` / `JobData`
//! JSON.

use serde_json::{Value, json};

use super::Sandbox;
use super::fleet::{job_account, job_region};
use super::ids;
use super::model::{ArtifactSpec, CredentialsSpec, JobSpec, JobStatus};
use super::state::{Credential, CredentialScope, Job, State};

/// Queues a job built from `spec`, issuing its temporary credentials; returns its id.
pub(crate) fn queue(
    state: &mut State,
    spec: JobSpec,
    continuation_token: Option<String>,
) -> String {
    let id = ids::uuid();
    let credentials = (
        ids::access_key_id("ASIA"),
        ids::secret_access_key(),
        ids::session_token(),
    );
    if spec.credentials == CredentialsSpec::Fresh {
        state.credentials.insert(
            credentials.0.clone(),
            Credential {
                secret: credentials.1.clone(),
                session_token: Some(credentials.2.clone()),
                scope: CredentialScope::Job(id.clone()),
                revoked: false,
            },
        );
    }
    state.action_types.insert(spec.action_type.clone());
    let pipeline_execution_id = spec.execution_id.clone().unwrap_or_else(ids::uuid);
    state.jobs.push(Job {
        id: id.clone(),
        spec,
        pipeline_execution_id,
        action_execution_id: ids::uuid(),
        status: JobStatus::Queued,
        nonce: None,
        dispatched_at: None,
        acknowledgements: 0,
        results: Vec::new(),
        rejected_results: Vec::new(),
        credentials,
        continuation_token,
        claimed_elsewhere: false,
    });
    id
}

/// `Job` as PollForJobs returns it: `{id, nonce, accountId, data}`.
pub(crate) fn job_json(job: &Job, nonce: &str, sandbox: &Sandbox) -> Value {
    json!({
        "id": job.id,
        "nonce": nonce,
        "accountId": job_account(&job.spec, sandbox),
        "data": job_data(job, sandbox),
    })
}

/// `JobDetails` as GetJobDetails returns it: `{id, data, accountId}`.
pub(crate) fn job_details_json(job: &Job, sandbox: &Sandbox) -> Value {
    json!({
        "id": job.id,
        "data": job_data(job, sandbox),
        "accountId": job_account(&job.spec, sandbox),
    })
}

/// `JobData`: everything the worker needs, including the job's credentials in plain text.
fn job_data(job: &Job, sandbox: &Sandbox) -> Value {
    let spec = &job.spec;
    let mut data = json!({
        "actionTypeId": {
            "category": spec.action_type.category,
            "owner": spec.action_type.owner,
            "provider": spec.action_type.provider,
            "version": spec.action_type.version,
        },
        "actionConfiguration": { "configuration": spec.configuration },
        "pipelineContext": {
            "pipelineName": spec.pipeline_name,
            "stage": { "name": spec.stage_name },
            "action": {
                "name": spec.action_name,
                "actionExecutionId": job.action_execution_id,
            },
            "pipelineArn": format!(
                "arn:aws:codepipeline:{}:{}:{}",
                job_region(spec, sandbox),
                job_account(spec, sandbox),
                spec.pipeline_name
            ),
            "pipelineExecutionId": job.pipeline_execution_id,
        },
        "inputArtifacts": spec.input_artifacts.iter().map(artifact_json).collect::<Vec<_>>(),
        "outputArtifacts": spec.output_artifacts.iter().map(artifact_json).collect::<Vec<_>>(),
        "artifactCredentials": {
            "accessKeyId": job.credentials.0,
            "secretAccessKey": job.credentials.1,
            "sessionToken": job.credentials.2,
        },
    });
    if let Some(object) = data.as_object_mut() {
        if let Some(token) = &job.continuation_token {
            object.insert("continuationToken".to_owned(), json!(token));
        }
        if let Some(key_id) = &spec.encryption_key_id {
            object.insert(
                "encryptionKey".to_owned(),
                json!({ "id": key_id, "type": "KMS" }),
            );
        }
    }
    data
}

/// `Artifact`: `{name, revision?, location{type: "S3", s3Location{bucketName, objectKey}}}`.
fn artifact_json(artifact: &ArtifactSpec) -> Value {
    let mut value = json!({
        "name": artifact.name,
        "location": {
            "type": "S3",
            "s3Location": { "bucketName": artifact.bucket, "objectKey": artifact.key },
        },
    });
    if let (Some(revision), Some(object)) = (&artifact.revision, value.as_object_mut()) {
        object.insert("revision".to_owned(), json!(revision));
    }
    value
}
