//! One source's lane to its job API: how a worker retries `AcknowledgeJob`, `GetJobDetails`
//! and the result calls, and how it shares a throttled source's request rate among its jobs.
//!
//! The job API throttles per account and region, so every job of a source, in every worker,
//! draws on one rate. Retrying each throttled call on its own random backoff leaves moments in
//! which every call of the source is asleep at once: capacity the fleet never gets back, and
//! the more jobs are waiting, the more requests are thrown away on throttles. So while a source
//! throttles (a call of it was throttled within [`CALM_AFTER`]), a worker sends that source's
//! calls one at a time, in the order they came:
//! - the call at the head of the line is retried on the throttle pace of its policy (from
//!   25 ms, doubling to 200 ms, equal jitter) until the job API takes it;
//! - the moment it is taken, the next call goes, so a refilled allowance is used at once;
//! - a call that fails otherwise (unreachable, 5xx) leaves the line while it backs off on the
//!   slower error pace, and rejoins at the back.
//!
//! A worker therefore makes at most about one throttled request per 25–200 ms per source, and a
//! fleet of N workers keeps N probes in flight, which covers the rate's refills without the
//! storm of independent retries. Once the source has throttled nothing for [`CALM_AFTER`],
//! calls go at once and side by side again. Polls do not wait in the line (the loop paces them,
//! [`crate::worker::pacing`]), but a throttled poll puts the source in the line too.
//!
//! Each call's budget is its [`RetryPolicy`]: throttled attempts go on until the deadline,
//! other failures count against the attempts. This is the one layer that retries these calls;
//! the SDK makes one attempt each ([`crate::pipeline::aws`]).

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::pipeline::{
    Acknowledgement, Job, JobApi, JobApiError, JobData, JobFailure, JobSuccess, PollVersions,
};
use crate::retry::{JOB_CALL, RESULT_CALL, RetryPolicy};

/// How long after its last throttle a source's calls still go one at a time.
pub const CALM_AFTER: Duration = Duration::from_secs(1);

/// The line of one source's calls in one worker.
#[derive(Debug)]
pub struct Lane {
    /// One permit: the call at the head of the line. Tokio's semaphore serves waiters in the
    /// order they asked, which is the line's order.
    head: Semaphore,
    last_throttled: Mutex<Option<Instant>>,
}

impl Default for Lane {
    fn default() -> Self {
        Self::new()
    }
}

// The lock is held only to read or set an `Option<Instant>`, which cannot panic, so it is never
// poisoned.
const NEVER_POISONED: &str = "the lane's clock is never poisoned";

impl Lane {
    pub fn new() -> Self {
        Self {
            head: Semaphore::new(1),
            last_throttled: Mutex::new(None),
        }
    }

    /// Whether the source has throttled lately, so calls take their turn.
    pub fn throttling(&self, now: Instant) -> bool {
        self.last_throttled
            .lock()
            .expect(NEVER_POISONED)
            .is_some_and(|at| now.saturating_duration_since(at) < CALM_AFTER)
    }

    /// Records a throttled call of the source (also a poll, which the loop retries itself).
    pub fn throttled(&self, now: Instant) {
        *self.last_throttled.lock().expect(NEVER_POISONED) = Some(now);
    }

    async fn take_turn(&self) -> SemaphorePermit<'_> {
        self.head
            .acquire()
            .await
            .expect("the lane's semaphore is never closed")
    }

    /// Makes `call` until it succeeds, fails for good, or `policy`'s budget is spent, taking
    /// its turn in the line while the source throttles.
    pub async fn call<T, F, Fut>(
        &self,
        policy: &RetryPolicy,
        operation: &'static str,
        mut call: F,
    ) -> Result<T, JobApiError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, JobApiError>>,
    {
        let started = Instant::now();
        let mut errors = policy.errors.backoff();
        let mut probes = policy.throttle_pace().backoff();
        // Every attempt, for the log; and those that failed other than throttled, for the budget.
        let (mut attempt, mut failed) = (1u32, 0u32);
        let mut turn = None;
        loop {
            if turn.is_none() && self.throttling(Instant::now()) {
                turn = Some(self.take_turn().await);
                probes.reset();
            }
            let error = match call().await {
                Err(error) if error.is_transient() => error,
                // Dropping the turn lets the next call in line go at once.
                other => return other,
            };
            let throttled = matches!(error, JobApiError::Throttled { .. });
            failed += u32::from(!throttled);
            let another = if throttled {
                policy.allows_another_throttled(failed, started.elapsed())
            } else {
                policy.allows_another(failed, started.elapsed())
            };
            if !another {
                return Err(error);
            }
            if throttled {
                self.throttled(Instant::now());
                if turn.is_none() {
                    // Throttled outside the line: join it; the turn is the wait.
                    turn = Some(self.take_turn().await);
                    probes.reset();
                    attempt += 1;
                    continue;
                }
                let delay = probes.next_delay();
                debug!(%error, operation, attempt, retry_in_ms = delay.as_millis() as u64, "throttled; retrying at the head of the source's line");
                tokio::time::sleep(delay).await;
            } else {
                // An error backoff is long: it must not hold the line.
                turn = None;
                let delay = errors.next_delay();
                warn!(%error, operation, attempt, retry_in_ms = delay.as_millis() as u64, "job API call failed; retrying");
                tokio::time::sleep(delay).await;
            }
            attempt += 1;
        }
    }
}

/// A source's [`JobApi`] whose job calls are retried through its [`Lane`].
pub(crate) struct LanedJobApi<A> {
    inner: A,
    lane: Lane,
}

impl<A> LanedJobApi<A> {
    pub(crate) fn new(inner: A) -> Self {
        Self {
            inner,
            lane: Lane::new(),
        }
    }
}

impl<A: JobApi> JobApi for LanedJobApi<A> {
    async fn poll_for_jobs(
        &self,
        max_batch_size: usize,
        versions: PollVersions<'_>,
    ) -> Result<Vec<Job>, JobApiError> {
        let result = self.inner.poll_for_jobs(max_batch_size, versions).await;
        if matches!(result, Err(JobApiError::Throttled { .. })) {
            self.lane.throttled(Instant::now());
        }
        result
    }

    async fn acknowledge_job(
        &self,
        job_id: &str,
        nonce: &str,
    ) -> Result<Acknowledgement, JobApiError> {
        self.lane
            .call(&JOB_CALL, "AcknowledgeJob", || {
                self.inner.acknowledge_job(job_id, nonce)
            })
            .await
    }

    async fn get_job_details(&self, job_id: &str) -> Result<JobData, JobApiError> {
        self.lane
            .call(&JOB_CALL, "GetJobDetails", || {
                self.inner.get_job_details(job_id)
            })
            .await
    }

    async fn put_job_success_result(
        &self,
        job_id: &str,
        success: &JobSuccess,
    ) -> Result<(), JobApiError> {
        self.lane
            .call(&RESULT_CALL, "PutJobSuccessResult", || {
                self.inner.put_job_success_result(job_id, success)
            })
            .await
    }

    async fn put_job_failure_result(
        &self,
        job_id: &str,
        failure: &JobFailure,
    ) -> Result<(), JobApiError> {
        self.lane
            .call(&RESULT_CALL, "PutJobFailureResult", || {
                self.inner.put_job_failure_result(job_id, failure)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn throttle() -> JobApiError {
        JobApiError::Throttled {
            code: "ThrottlingException".into(),
            message: "Rate exceeded".into(),
        }
    }

    /// A job API stand-in with a token bucket: `rate` calls a second, up to `burst` saved up
    /// (one at the start), recording each call.
    struct Allowance {
        rate: f64,
        burst: f64,
        bucket: Mutex<(f64, Instant)>,
        attempts: AtomicU32,
    }

    impl Allowance {
        fn new(rate: f64, burst: f64) -> Arc<Self> {
            Arc::new(Self {
                rate,
                burst,
                bucket: Mutex::new((1.0, Instant::now())),
                attempts: AtomicU32::new(0),
            })
        }

        async fn call(&self) -> Result<(), JobApiError> {
            self.attempts.fetch_add(1, Ordering::SeqCst);
            let now = Instant::now();
            let mut bucket = self.bucket.lock().unwrap();
            let (tokens, last) = *bucket;
            let tokens = (tokens + (now - last).as_secs_f64() * self.rate).min(self.burst);
            if tokens >= 1.0 {
                *bucket = (tokens - 1.0, now);
                Ok(())
            } else {
                *bucket = (tokens, now);
                Err(throttle())
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttled_source_serves_its_waiting_calls_one_at_a_time_in_order() {
        let lane = Arc::new(Lane::new());
        let allowance = Allowance::new(10.0, 2.0);
        lane.throttled(Instant::now());
        let finished = Arc::new(Mutex::new(Vec::new()));
        let mut calls = tokio::task::JoinSet::new();
        for index in 0..10 {
            let (lane, allowance, finished) = (lane.clone(), allowance.clone(), finished.clone());
            calls.spawn(async move {
                lane.call(&RESULT_CALL, "test", || allowance.call())
                    .await
                    .unwrap();
                finished.lock().unwrap().push(index);
            });
            // Each call joins the line before the next one starts.
            tokio::task::yield_now().await;
        }
        let started = Instant::now();
        while calls.join_next().await.is_some() {}
        assert_eq!(*finished.lock().unwrap(), (0..10).collect::<Vec<_>>());
        // Ten calls, one saved up and nine more at ten a second: the head probes at least
        // every 200 ms, within the bucket's two saved calls, so no refill is lost and the last
        // call goes within one probe wait of the ideal 0.9 s.
        let took = started.elapsed();
        assert!(took <= Duration::from_millis(1_100), "{took:?}");
        // One probe at a time, each at least 12.5 ms after the last (the shortest wait).
        let attempts = allowance.attempts.load(Ordering::SeqCst);
        assert!(attempts <= 10 + 1_100 / 12, "{attempts} attempts");
    }

    #[tokio::test(start_paused = true)]
    async fn calls_go_side_by_side_until_the_source_throttles() {
        let lane = Lane::new();
        let in_flight = AtomicU32::new(0);
        let most = AtomicU32::new(0);
        let call = || async {
            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(10)).await;
            in_flight.fetch_sub(1, Ordering::SeqCst);
            Ok::<_, JobApiError>(())
        };
        let both = futures::future::join(
            lane.call(&JOB_CALL, "test", call),
            lane.call(&JOB_CALL, "test", call),
        );
        let (first, second) = both.await;
        first.unwrap();
        second.unwrap();
        assert_eq!(most.load(Ordering::SeqCst), 2, "calm source: no line");

        lane.throttled(Instant::now());
        most.store(0, Ordering::SeqCst);
        let (first, second) = futures::future::join(
            lane.call(&JOB_CALL, "test", call),
            lane.call(&JOB_CALL, "test", call),
        )
        .await;
        first.unwrap();
        second.unwrap();
        assert_eq!(
            most.load(Ordering::SeqCst),
            1,
            "throttling source: one at a time"
        );

        tokio::time::advance(CALM_AFTER).await;
        assert!(!lane.throttling(Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_throttled_past_its_attempts_is_still_made_until_the_deadline() {
        let lane = Lane::new();
        let attempts = AtomicU32::new(0);
        let result = lane
            .call(&JOB_CALL, "test", || async {
                if attempts.fetch_add(1, Ordering::SeqCst) < 3 * JOB_CALL.attempts {
                    Err(throttle())
                } else {
                    Ok(())
                }
            })
            .await;
        assert!(result.is_ok());
        assert_eq!(attempts.load(Ordering::SeqCst), 3 * JOB_CALL.attempts + 1);
    }

    #[tokio::test(start_paused = true)]
    async fn other_failures_stop_at_the_attempts_and_leave_the_line_while_backing_off() {
        let lane = Arc::new(Lane::new());
        lane.throttled(Instant::now());
        let attempts = AtomicU32::new(0);
        let failing = lane.call(&JOB_CALL, "test", || async {
            attempts.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(JobApiError::Unavailable {
                message: "connection refused".into(),
            })
        });
        let other = {
            let lane = lane.clone();
            async move {
                // Starts while the failing call backs off; must not wait for it to give up.
                tokio::time::sleep(Duration::from_millis(50)).await;
                let started = Instant::now();
                lane.call(&JOB_CALL, "test", || async { Ok::<_, JobApiError>(()) })
                    .await
                    .unwrap();
                started.elapsed()
            }
        };
        let (failed, waited) = futures::future::join(failing, other).await;
        assert!(matches!(failed, Err(JobApiError::Unavailable { .. })));
        assert_eq!(attempts.load(Ordering::SeqCst), JOB_CALL.attempts);
        assert!(waited < Duration::from_millis(10), "{waited:?}");
    }
}
