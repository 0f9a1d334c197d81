//! The sandbox's shared state: jobs, issued credentials, stored objects and the call log,
//! behind one mutex that is never held across an `.await`.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;
use tokio::time::Instant;

use super::SandboxConfig;
use super::action_types::ActionTypeDefinition;
use super::model::{
    ActionTypeId, JobRecord, JobResult, JobSpec, JobStatus, RecordedCall, StoredObject,
};

/// Everything a `Sandbox` clone shares.
pub(crate) struct Inner {
    /// The configuration the sandbox was created with.
    pub(crate) config: SandboxConfig,
    /// All mutable state.
    state: Mutex<State>,
    /// Woken whenever a job gets a result or is claimed elsewhere (for `wait_for_result`).
    pub(crate) job_settled: Notify,
    /// Private directory holding object bodies; removed when the last clone is dropped.
    pub(crate) storage: tempfile::TempDir,
    /// The worker's own long-term credentials: (access key id, secret).
    pub(crate) worker: (String, String),
    /// The worker's role, web identity keys, secrets and parameters (`identity`).
    pub(crate) identity: super::identity::Identity,
}

impl Inner {
    pub(crate) fn new(
        config: SandboxConfig,
        storage: tempfile::TempDir,
        worker: (String, String),
        state: State,
    ) -> Self {
        Self {
            config,
            state: Mutex::new(state),
            job_settled: Notify::new(),
            storage,
            worker,
            identity: super::identity::Identity::default(),
        }
    }

    /// Locks the state. A panic while the lock was held (only possible in a test assertion
    /// made under it) leaves plain data behind, so a poisoned lock is still safe to use.
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What an issued access key is allowed to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CredentialScope {
    /// The worker's own identity: the job API only.
    Worker,
    /// A job's `artifactCredentials`: S3 only.
    Job(String),
    /// Temporary credentials from `AssumeRole`: a member account's job API only.
    Assumed(super::fleet::AssumedSession),
}

/// One access key the sandbox issued.
#[derive(Clone, Debug)]
pub(crate) struct Credential {
    /// The secret, for signature checks.
    pub(crate) secret: String,
    /// The session token temporary credentials must send as `X-Amz-Security-Token`.
    pub(crate) session_token: Option<String>,
    /// What the key may call.
    pub(crate) scope: CredentialScope,
    /// Set by `revoke_job_credentials`.
    pub(crate) revoked: bool,
}

/// One job and everything that happened to it.
#[derive(Clone, Debug)]
pub(crate) struct Job {
    pub(crate) id: String,
    pub(crate) spec: JobSpec,
    /// `pipelineContext.pipelineExecutionId`.
    pub(crate) pipeline_execution_id: String,
    /// `pipelineContext.action.actionExecutionId`.
    pub(crate) action_execution_id: String,
    pub(crate) status: JobStatus,
    /// The nonce most recently handed out by `PollForJobs`.
    pub(crate) nonce: Option<String>,
    /// When it was last handed out, for the acknowledgement timeout.
    pub(crate) dispatched_at: Option<Instant>,
    pub(crate) acknowledgements: u32,
    pub(crate) results: Vec<JobResult>,
    pub(crate) rejected_results: Vec<(String, String)>,
    /// (access key id, secret, session token).
    pub(crate) credentials: (String, String, String),
    pub(crate) continuation_token: Option<String>,
    pub(crate) claimed_elsewhere: bool,
}

impl Job {
    /// True once nothing more is expected of our worker for this job.
    pub(crate) fn is_settled(&self) -> bool {
        self.claimed_elsewhere || matches!(self.status, JobStatus::Succeeded | JobStatus::Failed)
    }

    pub(crate) fn record(&self) -> JobRecord {
        JobRecord {
            id: self.id.clone(),
            status: self.status,
            acknowledgements: self.acknowledgements,
            results: self.results.clone(),
            rejected_results: self.rejected_results.clone(),
            credentials: self.credentials.clone(),
            continuation_token: self.continuation_token.clone(),
            claimed_elsewhere: self.claimed_elsewhere,
        }
    }
}

/// All mutable state.
#[derive(Default)]
pub(crate) struct State {
    /// Jobs in the order they were queued (polls hand them out in this order).
    pub(crate) jobs: Vec<Job>,
    /// Issued access keys by id.
    pub(crate) credentials: HashMap<String, Credential>,
    /// Action types that exist (polling any other answers ActionTypeNotFoundException).
    pub(crate) action_types: HashSet<ActionTypeId>,
    /// What `CreateCustomActionType` declared for them (URL templates, properties), where known.
    pub(crate) action_type_definitions: HashMap<ActionTypeId, ActionTypeDefinition>,
    /// Objects by (bucket, key).
    pub(crate) objects: HashMap<(String, String), StoredObject>,
    /// Every request, in order.
    pub(crate) calls: Vec<RecordedCall>,
    /// How many more job-API calls answer ThrottlingException.
    pub(crate) throttle_remaining: u32,
    /// Job-API calls still to answer 503 ServiceUnavailableException.
    pub(crate) unavailable_remaining: u32,
    /// S3 requests still to answer 503 SlowDown.
    pub(crate) s3_failures_remaining: u32,
    /// Counter for naming object files.
    pub(crate) next_file: u64,
    /// S3 read faults to come, and the log of GETs with their ranges.
    pub(crate) s3_reads: super::s3_range::S3ReadState,
    /// Member accounts, their roles, SQS queues and the fleet's fault toggles.
    pub(crate) fleet: super::fleet::FleetState,
}

impl State {
    pub(crate) fn job(&self, job_id: &str) -> Option<&Job> {
        self.jobs.iter().find(|job| job.id == job_id)
    }

    pub(crate) fn job_mut(&mut self, job_id: &str) -> Option<&mut Job> {
        self.jobs.iter_mut().find(|job| job.id == job_id)
    }
}
