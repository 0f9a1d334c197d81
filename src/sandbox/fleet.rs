//! One sandbox, many accounts and regions: the member accounts whose roles the fleet's
//! worker may assume (`assume_role`), the caller a request's credentials stand for, which
//! jobs that caller may see, and the fault toggles for unhealthy sources.
//!
//! The sandbox's own account (`SandboxConfig::account_id`) is the fleet's: its worker
//! credentials are long-term keys of that account. Every other account is a *member*
//! account, reached only through `AssumeRole` on the role [`Sandbox::add_member_account`]
//! registered, with the external id it was registered with. A job belongs to one account
//! and one region ([`JobSpec::account`], [`JobSpec::region`]); the job API shows it only to
//! credentials of that account on requests signed for that region.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;

use super::Sandbox;
use super::model::{ActionTypeId, JobSpec};
use super::sqs::Queue;
use super::state::{Credential, CredentialScope, State};

/// A role a member account lets the fleet assume.
#[derive(Clone, Debug)]
pub(crate) struct MemberRole {
    /// The member account the role is in.
    pub(crate) account_id: String,
    /// The `sts:ExternalId` its trust policy requires, if any.
    pub(crate) external_id: Option<String>,
    /// The role's `MaxSessionDuration` (IAM's default: one hour).
    pub(crate) max_session: Duration,
    /// Set by [`Sandbox::fail_assume_role`]: AssumeRole answers AccessDenied.
    pub(crate) denied: bool,
}

/// What temporary credentials from `AssumeRole` stand for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AssumedSession {
    /// The account of the assumed role.
    pub(crate) account_id: String,
    /// `arn:aws:iam::ACCOUNT:role/NAME`.
    pub(crate) role_arn: String,
    /// `RoleSessionName` from the request.
    pub(crate) session_name: String,
    /// When the credentials stop working (wall clock, as `Expiration` says).
    pub(crate) expires_at: SystemTime,
}

impl AssumedSession {
    /// `arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION`, as GetCallerIdentity names it.
    pub(crate) fn arn(&self) -> String {
        let role_name = self.role_arn.rsplit('/').next().unwrap_or_default();
        format!(
            "arn:aws:sts::{}:assumed-role/{role_name}/{}",
            self.account_id, self.session_name
        )
    }
}

/// A fault [`Sandbox::fail_sqs`] makes SQS answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SqsFault {
    /// HTTP 503 `ServiceUnavailable`, as during an outage.
    Unavailable,
    /// HTTP 403 `AccessDenied`, as when the queue policy or the role denies the call.
    AccessDenied,
}

/// The fleet's part of the sandbox state (one field of `State`).
#[derive(Default)]
pub(crate) struct FleetState {
    /// Registered roles by ARN.
    pub(crate) roles: HashMap<String, MemberRole>,
    /// (account, region, action type) that do not exist, though they would by default.
    pub(crate) missing_action_types: HashSet<(String, String, ActionTypeId)>,
    /// SQS queues by (account, name).
    pub(crate) queues: BTreeMap<(String, String), Queue>,
    /// Woken whenever a message is sent to any queue (and on shutdown), for long polls.
    pub(crate) queue_activity: Arc<Notify>,
    /// Set on shutdown: long polls answer at once.
    pub(crate) closing: bool,
    /// The fault SQS answers with, and for how many more calls (`None`: until cleared).
    pub(crate) sqs_fault: Option<(SqsFault, Option<u32>)>,
    /// ReceiveMessage calls waiting for a message right now.
    pub(crate) receivers_waiting: usize,
    /// Woken whenever PollForJobs hands out a job.
    pub(crate) job_dispatched: Arc<Notify>,
    /// Job-API rate limits by account (CodePipeline throttles per account and region).
    pub(crate) rate_limits: HashMap<String, TokenBucket>,
}

/// A token bucket: `rate` calls per second on average, bursts of up to `burst`.
#[derive(Clone, Debug)]
pub(crate) struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    refilled_at: tokio::time::Instant,
}

impl TokenBucket {
    /// Takes one token; false (the call is throttled) when none is left.
    pub(crate) fn take(&mut self, now: tokio::time::Instant) -> bool {
        let elapsed = now.duration_since(self.refilled_at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.refilled_at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Who signed a job-API request: the account of its credentials and the region it was
/// signed for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Caller {
    pub(crate) account_id: String,
    pub(crate) region: String,
}

impl Caller {
    /// True when `spec` is a job this caller's account and region can see.
    pub(crate) fn sees(&self, spec: &JobSpec, sandbox: &Sandbox) -> bool {
        job_account(spec, sandbox) == self.account_id && job_region(spec, sandbox) == self.region
    }
}

/// The account a job belongs to (the sandbox's own unless the spec names one).
pub(crate) fn job_account<'a>(spec: &'a JobSpec, sandbox: &'a Sandbox) -> &'a str {
    spec.account
        .as_deref()
        .unwrap_or(&sandbox.inner.config.account_id)
}

/// The region a job belongs to (the sandbox's own unless the spec names one).
pub(crate) fn job_region<'a>(spec: &'a JobSpec, sandbox: &'a Sandbox) -> &'a str {
    spec.region
        .as_deref()
        .unwrap_or(&sandbox.inner.config.region)
}

/// The account `credential` acts in; `None` for an assumed session that has expired.
pub(crate) fn credential_account(
    sandbox: &Sandbox,
    credential: &Credential,
    now: SystemTime,
) -> Result<String, Expired> {
    match &credential.scope {
        CredentialScope::Assumed(session) if session.expires_at <= now => Err(Expired),
        CredentialScope::Assumed(session) => Ok(session.account_id.clone()),
        _ => Ok(sandbox.inner.config.account_id.clone()),
    }
}

/// Temporary credentials past their `Expiration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Expired;

impl State {
    /// True when the action type exists in that account and region.
    pub(crate) fn action_type_exists(
        &self,
        account_id: &str,
        region: &str,
        action_type: &ActionTypeId,
    ) -> bool {
        self.action_types.contains(action_type)
            && !self.fleet.missing_action_types.contains(&(
                account_id.to_owned(),
                region.to_owned(),
                action_type.clone(),
            ))
    }
}

impl Sandbox {
    /// Registers a member account and the role in it that trusts the fleet's worker
    /// credentials ([`Sandbox::worker_credentials`]), requiring `external_id` when given;
    /// returns the role's ARN, `arn:aws:iam::ACCOUNT:role/ROLE_NAME`. Credentials from
    /// `AssumeRole` on it see that account's jobs, and only those.
    pub fn add_member_account(
        &self,
        account_id: &str,
        role_name: &str,
        external_id: Option<&str>,
    ) -> String {
        let role_arn = format!("arn:aws:iam::{account_id}:role/{role_name}");
        self.inner.state().fleet.roles.insert(
            role_arn.clone(),
            MemberRole {
                account_id: account_id.to_owned(),
                external_id: external_id.map(str::to_owned),
                max_session: Duration::from_secs(3600),
                denied: false,
            },
        );
        role_arn
    }

    /// While `fail` is set, `AssumeRole` on `role_arn` answers 403 AccessDenied (as when the
    /// member account removed the role or changed its trust policy).
    pub fn fail_assume_role(&self, role_arn: &str, fail: bool) {
        if let Some(role) = self.inner.state().fleet.roles.get_mut(role_arn) {
            role.denied = fail;
        }
    }

    /// While `missing` is set, polling `action_type` in that account and region answers
    /// ActionTypeNotFoundException (as when the member account never created it).
    pub fn set_action_type_missing(
        &self,
        account_id: &str,
        region: &str,
        action_type: &ActionTypeId,
        missing: bool,
    ) {
        let key = (
            account_id.to_owned(),
            region.to_owned(),
            action_type.clone(),
        );
        let mut state = self.inner.state();
        if missing {
            state.fleet.missing_action_types.insert(key);
        } else {
            state.fleet.missing_action_types.remove(&key);
        }
    }

    /// The regions requests may be signed for: `config.region`, then `config.extra_regions`.
    pub fn regions(&self) -> Vec<String> {
        let config = &self.inner.config;
        std::iter::once(config.region.clone())
            .chain(config.extra_regions.iter().cloned())
            .collect()
    }

    /// True when requests signed for `region` are served.
    pub(crate) fn serves_region(&self, region: &str) -> bool {
        let config = &self.inner.config;
        config.region == region || config.extra_regions.iter().any(|extra| extra == region)
    }

    /// Makes every SQS call answer `fault`: for the next `calls` calls, or with `None` until
    /// [`Sandbox::clear_sqs_fault`].
    pub fn fail_sqs(&self, fault: SqsFault, calls: Option<u32>) {
        self.inner.state().fleet.sqs_fault = Some((fault, calls));
    }

    /// SQS answers normally again.
    pub fn clear_sqs_fault(&self) {
        self.inner.state().fleet.sqs_fault = None;
    }

    /// Limits the job API for credentials of `account_id` to `requests_per_second` on average
    /// with bursts of `burst` (at least 1); calls beyond it answer 400 ThrottlingException
    /// "Rate exceeded". A rate of 0 or less removes the limit.
    pub fn limit_job_api_rate(&self, account_id: &str, requests_per_second: f64, burst: u32) {
        let mut state = self.inner.state();
        if requests_per_second <= 0.0 {
            state.fleet.rate_limits.remove(account_id);
            return;
        }
        let burst = f64::from(burst.max(1));
        state.fleet.rate_limits.insert(
            account_id.to_owned(),
            TokenBucket {
                rate: requests_per_second,
                burst,
                tokens: burst,
                refilled_at: tokio::time::Instant::now(),
            },
        );
    }

    /// Waits until PollForJobs has handed out job `job_id` (it is no longer queued), or
    /// `timeout` passes (then false): the moment a worker picked the job up.
    pub async fn wait_until_dispatched(&self, job_id: &str, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let dispatched = Arc::clone(&self.inner.state().fleet.job_dispatched);
        loop {
            let notified = dispatched.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let picked_up = self
                .inner
                .state()
                .job(job_id)
                .is_some_and(|job| job.status != super::JobStatus::Queued);
            if picked_up {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }

    /// Ends every long poll in flight (they answer with what they have), for shutdown.
    pub(crate) fn end_long_polls(&self) {
        let activity = {
            let mut state = self.inner.state();
            state.fleet.closing = true;
            Arc::clone(&state.fleet.queue_activity)
        };
        activity.notify_waiters();
    }
}
