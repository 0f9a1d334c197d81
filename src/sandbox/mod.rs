//! Local stand-ins for CodePipeline's job-worker API and for S3, served over HTTP so the real
//! worker — with the real `aws-sdk-codepipeline` and `aws-sdk-s3` clients pointed at
//! `endpoint_url` — can be run by `demo` and by integration tests.
//!
//! - Job API (AWS JSON 1.1, `POST /` + `X-Amz-Target`): PollForJobs, AcknowledgeJob,
//!   GetJobDetails, PutJobSuccessResult, PutJobFailureResult, validated against the service
//!   model's constraints; fault injection with [`Sandbox::throttle_next`] and
//!   [`Sandbox::claim_elsewhere`].
//! - S3 (path-style object GET/HEAD/PUT): only a job's `artifactCredentials` are accepted
//!   (never [`Sandbox::worker_credentials`]); bodies are streamed to a private temp dir.
//! - STS (`GetCallerIdentity`, `GetWebIdentityToken` with the issuer's OIDC documents),
//!   Secrets Manager (`GetSecretValue`) and SSM (`GetParameter`) for the worker's instance
//!   role: `identity`, `sts`, `web_identity`, `secrets`, `ssm`, over `aws_auth`.
//! - Every request is signature-checked (SigV4) and logged in [`Sandbox::calls`].
//! - Many accounts and regions: STS `AssumeRole` ([`Sandbox::add_member_account`]) issues
//!   temporary credentials of a member account; the job API shows a caller only the jobs of
//!   its credentials' account and of the region it signed for ([`JobSpec::account`],
//!   [`JobSpec::region`], [`SandboxConfig::extra_regions`]).
//! - SQS (AWS JSON 1.0, `X-Amz-Target: AmazonSQS.*`): `ReceiveMessage` with long polling,
//!   `DeleteMessage`, …; [`Sandbox::create_queue`] makes a queue that receives the
//!   EventBridge-shaped "CodePipeline Action Execution State Change" event of every queued job.
//! - A pipeline view for people (`GET /codesuite/codepipeline/pipelines`, unsigned): the jobs
//!   as CodePipeline's console shows the action, links rendered from the action type's URL
//!   templates.
//!
//! Map: `model` public types · `state` shared state · `jobs` job creation and JSON ·
//! `job_api` HTTP layer of the job API · `job_ops` poll/acknowledge/details ·
//! `job_results` success/failure results · `validate` constraint
//! checks · `s3` the S3 stand-in · `aws_chunked` upload body decoding · `objects` storage ·
//! `sigv4` signatures · `ids` generated identifiers · `action_types` registered action types ·
//! `console`, `console_page`, `url_templates`, `html` the pipeline view · `fleet` member
//! accounts, callers and fleet toggles · `assume_role` STS AssumeRole · `sqs` the SQS
//! stand-in · `events` the EventBridge events.

mod action_types;
mod aws_auth;
mod aws_chunked;
mod aws_json;
mod console;
mod console_page;
mod html;
mod identity;
mod ids;
mod job_api;
mod job_ops;
mod job_results;
mod jobs;
mod list_action_types;
mod model;
mod objects;
mod s3;
mod s3_range;
mod secrets;
mod sigv4;
mod ssm;
mod state;
mod sts;
mod url_templates;
mod validate;
mod web_identity;

mod assume_role;
mod events;
mod fleet;
mod sqs;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_console;
#[cfg(test)]
mod tests_results;
#[cfg(test)]
mod tests_s3;
#[cfg(test)]
mod tests_secrets;
#[cfg(test)]
mod tests_sts;

#[cfg(test)]
mod tests_fleet;
#[cfg(test)]
mod tests_sqs;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::post;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use action_types::{
    ActionTypeDefinition, ActionTypeDefinitionError, ActionTypeSettings, ConfigurationProperty,
};
pub use console::PIPELINES_PATH;
pub use events::ACTION_EXECUTION_STATE_CHANGE;
pub use fleet::SqsFault;
pub use identity::{
    WORKER_PARAMETER_PREFIX, WORKER_ROLE_NAME, WORKER_SECRET_PREFIX, WORKER_SESSION_NAME,
};
pub use model::{
    ActionTypeId, ArtifactSpec, CallOutcome, CredentialsSpec, JobRecord, JobResult, JobSpec,
    JobStatus, RecordedCall, StoredObject,
};
pub use s3_range::S3Read;
pub use sqs::QueueCounts;

use state::{Credential, CredentialScope, Inner};

/// How the sandbox presents itself.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// The region requests must be signed for (`eu-west-1`).
    pub region: String,
    /// The account id in jobs and ARNs (`111122223333`).
    pub account_id: String,
    /// How long a polled job waits for AcknowledgeJob before it is handed out again.
    pub ack_timeout: Duration,
    /// The pipeline's artifact bucket, for building job specs.
    pub artifact_bucket: String,
    /// Bytes per second each S3 GET connection may deliver (real S3 serves one connection at
    /// roughly 80–100 MB/s); `None`: as fast as loopback goes.
    pub s3_connection_rate: Option<u64>,
    /// More regions requests may be signed for, besides `region` (none by default).
    pub extra_regions: Vec<String>,
    /// The shortest `DurationSeconds` AssumeRole accepts (STS: 900 s); lower it to test
    /// credential refresh.
    pub min_assume_role_duration: Duration,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            region: "eu-west-1".to_owned(),
            account_id: "111122223333".to_owned(),
            ack_timeout: Duration::from_secs(30),
            artifact_bucket: "codepipeline-eu-west-1-111122223333".to_owned(),
            s3_connection_rate: None,
            extra_regions: Vec::new(),
            min_assume_role_duration: Duration::from_secs(900),
        }
    }
}

/// A handle on one sandbox; clones share it.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

impl Sandbox {
    /// A sandbox with no jobs, no objects, and fresh worker credentials.
    pub fn new(config: SandboxConfig) -> anyhow::Result<Self> {
        let storage = tempfile::Builder::new()
            .prefix("pipeline-publisher-sandbox-")
            .tempdir()?;
        let worker = (ids::access_key_id("AKIA"), ids::secret_access_key());
        let mut state = state::State::default();
        state.credentials.insert(
            worker.0.clone(),
            Credential {
                secret: worker.1.clone(),
                session_token: None,
                scope: CredentialScope::Worker,
                revoked: false,
            },
        );
        for definition in ActionTypeDefinition::pipeline_publisher_versions()? {
            state.action_types.insert(definition.id.clone());
            state
                .action_type_definitions
                .insert(definition.id.clone(), definition);
        }
        let sandbox = Self {
            inner: Arc::new(Inner::new(config, storage, worker, state)),
        };
        sandbox.inner.identity.generate_keys()?;
        Ok(sandbox)
    }

    /// The configuration this sandbox was created with.
    pub fn config(&self) -> &SandboxConfig {
        &self.inner.config
    }

    /// Job API and S3 on one port: `POST /` with `X-Amz-Target` is the job API, anything
    /// else is S3. STS, Secrets Manager and SSM share it, told apart by the signed service
    /// (so `AWS_ENDPOINT_URL_STS`, `_SECRETS_MANAGER` and `_SSM` may all name it), and the
    /// OIDC issuer's documents are unsigned `GET`s under `/_oidc/`.
    pub fn router(&self) -> Router {
        Router::new()
            .fallback(route_request)
            .with_state(self.clone())
    }

    /// The job API alone.
    pub fn job_api_router(&self) -> Router {
        Router::new()
            .route("/", post(job_api::handle))
            .with_state(self.clone())
    }

    /// The S3 stand-in alone.
    pub fn s3_router(&self) -> Router {
        Router::new().fallback(s3::handle).with_state(self.clone())
    }

    /// Creates a sandbox and serves [`Sandbox::router`] on `127.0.0.1` at a free port.
    pub async fn start(config: SandboxConfig) -> anyhow::Result<RunningSandbox> {
        let sandbox = Self::new(config)?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let endpoint_url = format!("http://{}", listener.local_addr()?);
        sandbox.set_endpoint_url(&endpoint_url);
        let (shutdown, shutdown_requested) = oneshot::channel::<()>();
        let server = axum::serve(listener, sandbox.router()).with_graceful_shutdown(async {
            // A dropped sender also means "stop".
            let _ = shutdown_requested.await;
        });
        let task = tokio::spawn(async move { server.await });
        Ok(RunningSandbox {
            endpoint_url,
            sandbox,
            shutdown: Some(shutdown),
            task: Some(task),
        })
    }

    /// Registers an action type as `CreateCustomActionType` would (pipeline-publisher's own,
    /// from `action-definition.json`, is registered from the start).
    pub fn register_action_type(&self, definition: ActionTypeDefinition) {
        let mut state = self.inner.state();
        state.action_types.insert(definition.id.clone());
        state
            .action_type_definitions
            .insert(definition.id.clone(), definition);
    }

    /// The worker's own long-term credentials (access key id, secret): accepted by the job
    /// API, refused by S3 (403 AccessDenied), so S3 calls must use the job's credentials.
    pub fn worker_credentials(&self) -> (String, String) {
        self.inner.worker.clone()
    }

    /// Queues a job; returns its id. Its `artifactCredentials` are fresh temporary
    /// credentials valid on S3 unless `spec.credentials` says otherwise. Its STARTED event
    /// goes to every queue from [`Sandbox::create_queue`].
    pub fn queue_job(&self, spec: JobSpec) -> String {
        let mut state = self.inner.state();
        let id = jobs::queue(&mut state, spec, None);
        let delivered = events::deliver_job_started(self, &mut state, &id);
        drop(state);
        if delivered {
            self.wake_receivers();
        }
        id
    }

    /// A snapshot of one job.
    pub fn job(&self, job_id: &str) -> Option<JobRecord> {
        self.inner.state().job(job_id).map(state::Job::record)
    }

    /// Snapshots of all jobs, in the order they were queued.
    pub fn jobs(&self) -> Vec<JobRecord> {
        self.inner
            .state()
            .jobs
            .iter()
            .map(state::Job::record)
            .collect()
    }

    /// Waits until the job has an accepted result, or `timeout` passes (then `None`).
    pub async fn wait_for_result(&self, job_id: &str, timeout: Duration) -> Option<JobResult> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let settled = self.inner.job_settled.notified();
            tokio::pin!(settled);
            // Registered before the check, so a result arriving in between still wakes us.
            settled.as_mut().enable();
            if let Some(result) = self
                .job(job_id)
                .and_then(|job| job.results.first().cloned())
            {
                return Some(result);
            }
            if tokio::time::timeout_at(deadline, settled).await.is_err() {
                return None;
            }
        }
    }

    /// Waits until every job has a result or was claimed elsewhere; false on timeout.
    pub async fn wait_until_idle(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let settled = self.inner.job_settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            if self.inner.state().jobs.iter().all(state::Job::is_settled) {
                return true;
            }
            if tokio::time::timeout_at(deadline, settled).await.is_err() {
                return false;
            }
        }
    }

    /// Every request answered so far, in order.
    pub fn calls(&self) -> Vec<RecordedCall> {
        self.inner.state().calls.clone()
    }

    /// The next `n` job-API calls answer 400 `ThrottlingException` "Rate exceeded".
    pub fn throttle_next(&self, n: u32) {
        self.inner.state().throttle_remaining = n;
    }

    /// The next `n` job-API calls answer HTTP 503 `ServiceUnavailableException`.
    pub fn unavailable_next(&self, n: u32) {
        self.inner.state().unavailable_remaining = n;
    }

    /// The next `n` S3 requests answer HTTP 503 `SlowDown`.
    pub fn fail_s3_next(&self, n: u32) {
        self.inner.state().s3_failures_remaining = n;
    }

    /// Another worker wins the race for the job: it may still be handed to us by a poll, but
    /// our AcknowledgeJob answers InvalidNonceException and the job is then in progress
    /// elsewhere.
    pub fn claim_elsewhere(&self, job_id: &str) {
        let mut state = self.inner.state();
        if let Some(job) = state.job_mut(job_id) {
            job.claimed_elsewhere = true;
        }
        drop(state);
        self.inner.job_settled.notify_waiters();
    }

    /// S3 answers 403 AccessDenied for this job's credentials from now on.
    pub fn revoke_job_credentials(&self, job_id: &str) {
        let mut state = self.inner.state();
        let Some(access_key_id) = state.job(job_id).map(|job| job.credentials.0.clone()) else {
            return;
        };
        if let Some(credential) = state.credentials.get_mut(&access_key_id) {
            credential.revoked = true;
        }
    }
}

/// The combined router's single handler.
async fn route_request(State(sandbox): State<Sandbox>, request: Request) -> Response {
    if secrets::is_secrets_request(&request) {
        secrets::handle(State(sandbox), request).await
    } else if ssm::is_ssm_request(&request) {
        ssm::handle(State(sandbox), request).await
    } else if sqs::is_sqs_request(&request) {
        sqs::handle(State(sandbox), request).await
    } else if job_api::is_job_api_request(&request) {
        job_api::handle(State(sandbox), request).await
    } else if console::is_console_request(&request) {
        console::handle(State(sandbox), request).await
    } else if sts::is_sts_request(&request) {
        sts::handle(State(sandbox), request).await
    } else if web_identity::is_issuer_request(&request) {
        web_identity::handle_issuer(State(sandbox), request).await
    } else {
        s3::handle(State(sandbox), request).await
    }
}

/// A sandbox being served on `endpoint_url`; stops on [`RunningSandbox::shutdown`] or drop.
pub struct RunningSandbox {
    /// `http://127.0.0.1:PORT`, for `endpoint_url` / `AWS_ENDPOINT_URL`.
    pub endpoint_url: String,
    /// The sandbox being served.
    pub sandbox: Sandbox,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl RunningSandbox {
    /// Stops accepting connections and lets requests in flight finish (at most 5 s).
    pub async fn shutdown(mut self) {
        self.sandbox.end_long_polls();
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let Some(mut task) = self.task.take() else {
            return;
        };
        match tokio::time::timeout(Duration::from_secs(5), &mut task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => tracing::warn!(%error, "sandbox server failed"),
            Ok(Err(error)) => tracing::warn!(%error, "sandbox server task failed"),
            Err(_) => {
                tracing::warn!("sandbox server did not stop within 5 s; aborting it");
                task.abort();
            }
        }
    }
}

impl Drop for RunningSandbox {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
