//! The real poll loop driven by a scripted control plane, with tokio's clock paused so backoff
//! and drain timeouts are instant and deterministic.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pipeline_publisher::pipeline::{
    Acknowledgement, FailureType, Job, JobApi, JobApiError, JobData, JobError, JobFailure,
    JobSuccess,
};
use pipeline_publisher::worker::{self, JobContext, JobHandler, WorkerSettings};
use tokio::sync::{Notify, oneshot};

#[derive(Default)]
struct FakeJobApi {
    /// Polls that answer `ThrottlingException` before any job is handed out.
    throttled_polls: AtomicUsize,
    /// Jobs waiting to be polled; each poll hands out at most `maxBatchSize` of them.
    queue: Mutex<VecDeque<&'static str>>,
    /// `maxBatchSize` of every poll, in order.
    batch_sizes: Mutex<Vec<usize>>,
    /// Job ids whose acknowledgement answers with a status other than InProgress.
    not_ours: Vec<&'static str>,
    results: Mutex<Vec<(String, Result<JobSuccess, JobFailure>)>>,
}

impl FakeJobApi {
    fn with_jobs(ids: &[&'static str]) -> Self {
        Self {
            queue: Mutex::new(ids.iter().copied().collect()),
            ..Self::default()
        }
    }

    fn results(&self) -> Vec<(String, Result<JobSuccess, JobFailure>)> {
        self.results.lock().unwrap().clone()
    }
}

fn job(id: &str) -> Job {
    Job {
        id: id.to_owned(),
        nonce: format!("nonce-{id}"),
        account_id: "111122223333".into(),
        data: JobData::default(),
    }
}

impl JobApi for FakeJobApi {
    async fn poll_for_jobs(&self, max_batch_size: usize) -> Result<Vec<Job>, JobApiError> {
        self.batch_sizes.lock().unwrap().push(max_batch_size);
        if self
            .throttled_polls
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .is_ok()
        {
            return Err(JobApiError::Throttled {
                code: "ThrottlingException".into(),
                message: "Rate exceeded".into(),
            });
        }
        let mut queue = self.queue.lock().unwrap();
        let count = max_batch_size.min(queue.len());
        Ok(queue.drain(..count).map(job).collect())
    }

    async fn acknowledge_job(
        &self,
        job_id: &str,
        _nonce: &str,
    ) -> Result<Acknowledgement, JobApiError> {
        if self.not_ours.contains(&job_id) {
            return Ok(Acknowledgement::NotOurs {
                status: "Succeeded".into(),
            });
        }
        Ok(Acknowledgement::InProgress)
    }

    async fn get_job_details(&self, _job_id: &str) -> Result<JobData, JobApiError> {
        Ok(JobData::default())
    }

    async fn put_job_success_result(
        &self,
        job_id: &str,
        success: &JobSuccess,
    ) -> Result<(), JobApiError> {
        self.results
            .lock()
            .unwrap()
            .push((job_id.to_owned(), Ok(success.clone())));
        Ok(())
    }

    async fn put_job_failure_result(
        &self,
        job_id: &str,
        failure: &JobFailure,
    ) -> Result<(), JobApiError> {
        self.results
            .lock()
            .unwrap()
            .push((job_id.to_owned(), Err(failure.clone())));
        Ok(())
    }
}

/// Succeeds at once.
struct Instant;

impl JobHandler for Instant {
    async fn handle(&self, job: Job, _context: JobContext) -> Result<JobSuccess, JobError> {
        Ok(JobSuccess {
            summary: format!("did {}", job.id),
            ..JobSuccess::default()
        })
    }
}

/// Holds every job until released; counts how many run at once.
#[derive(Default)]
struct Gate {
    running: AtomicUsize,
    peak: AtomicUsize,
    started: Notify,
    release: Notify,
}

struct Gated(Arc<Gate>);

impl JobHandler for Gated {
    async fn handle(&self, job: Job, _context: JobContext) -> Result<JobSuccess, JobError> {
        let gate = &self.0;
        let now = gate.running.fetch_add(1, Ordering::SeqCst) + 1;
        gate.peak.fetch_max(now, Ordering::SeqCst);
        gate.started.notify_waiters();
        gate.release.notified().await;
        gate.running.fetch_sub(1, Ordering::SeqCst);
        Ok(JobSuccess {
            summary: format!("did {}", job.id),
            ..JobSuccess::default()
        })
    }
}

fn settings(concurrency: usize, max_jobs: Option<u64>) -> WorkerSettings {
    WorkerSettings {
        concurrency,
        max_jobs,
        ..WorkerSettings::default()
    }
}

#[tokio::test(start_paused = true)]
async fn throttling_backs_off_without_losing_or_crashing() {
    let api = Arc::new(FakeJobApi {
        throttled_polls: AtomicUsize::new(3),
        ..FakeJobApi::with_jobs(&["a", "b"])
    });
    let started = tokio::time::Instant::now();
    let report = worker::run(
        api.clone(),
        Arc::new(Instant),
        settings(4, Some(2)),
        std::future::pending(),
    )
    .await;
    assert_eq!(report.succeeded, 2);
    // Equal-jitter backoff from 1 s: at least 0.5 + 1 + 2 s of waiting before the jobs arrived.
    assert!(
        started.elapsed() >= Duration::from_millis(3500),
        "{:?}",
        started.elapsed()
    );
    let ids: Vec<_> = api.results().into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, ["a", "b"]);
}

#[tokio::test(start_paused = true)]
async fn asks_only_for_free_slots_and_never_runs_more_than_the_concurrency() {
    let api = Arc::new(FakeJobApi::with_jobs(&["a", "b", "c", "d", "e", "f", "g"]));
    let gate = Arc::new(Gate::default());
    let (stop, stopped) = oneshot::channel::<()>();
    let worker = tokio::spawn(worker::run(
        api.clone(),
        Arc::new(Gated(gate.clone())),
        settings(3, None),
        async move {
            let _ = stopped.await;
        },
    ));
    // Three jobs hold all three slots: the loop must now wait instead of polling.
    while gate.running.load(Ordering::SeqCst) < 3 {
        gate.started.notified().await;
    }
    assert_eq!(*api.batch_sizes.lock().unwrap(), [3]);
    assert_eq!(
        api.queue.lock().unwrap().len(),
        4,
        "nothing claimed beyond the free slots"
    );
    while api.results().len() < 7 {
        gate.release.notify_waiters();
        tokio::task::yield_now().await;
    }
    stop.send(()).unwrap();
    let report = worker.await.unwrap();
    assert_eq!(report.succeeded, 7);
    assert_eq!(gate.peak.load(Ordering::SeqCst), 3);
    assert!(
        api.batch_sizes
            .lock()
            .unwrap()
            .iter()
            .all(|&size| (1..=3).contains(&size))
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_drains_then_fails_what_did_not_finish() {
    let api = Arc::new(FakeJobApi::with_jobs(&["stuck"]));
    let gate = Arc::new(Gate::default());
    let (stop, stopped) = oneshot::channel::<()>();
    let mut worker_settings = settings(2, None);
    worker_settings.drain_timeout = Duration::from_secs(60);
    let worker = tokio::spawn(worker::run(
        api.clone(),
        Arc::new(Gated(gate.clone())),
        worker_settings,
        async move {
            let _ = stopped.await;
        },
    ));
    while gate.running.load(Ordering::SeqCst) < 1 {
        gate.started.notified().await;
    }
    let shutdown_at = tokio::time::Instant::now();
    stop.send(()).unwrap();
    let report = worker.await.unwrap();
    assert!(
        shutdown_at.elapsed() >= Duration::from_secs(60),
        "waited for the drain timeout"
    );
    assert_eq!(report.failed, 1);
    let results = api.results();
    assert_eq!(results.len(), 1);
    let (id, Err(failure)) = &results[0] else {
        panic!("the unfinished job is reported as failed: {results:?}");
    };
    assert_eq!(id, "stuck");
    assert_eq!(failure.failure_type, FailureType::JobFailed);
    assert!(
        failure.message.contains("drain timeout"),
        "{}",
        failure.message
    );
}

#[tokio::test(start_paused = true)]
async fn a_job_acknowledged_with_another_status_is_dropped_without_a_result() {
    let api = Arc::new(FakeJobApi {
        not_ours: vec!["taken"],
        ..FakeJobApi::with_jobs(&["taken", "mine"])
    });
    let report = worker::run(
        api.clone(),
        Arc::new(Instant),
        settings(1, Some(1)),
        std::future::pending(),
    )
    .await;
    assert_eq!((report.succeeded, report.not_ours), (1, 1));
    let ids: Vec<_> = api.results().into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, ["mine"]);
}
