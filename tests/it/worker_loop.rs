//! The real poll loop driven by a scripted control plane, with tokio's clock paused so backoff
//! and drain timeouts are instant and deterministic.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pipeline_publisher::pipeline::{
    Acknowledgement, FailureType, Job, JobApi, JobApiError, JobData, JobFailure, JobSuccess,
    PollVersions,
};
use pipeline_publisher::publish::JobError;
use pipeline_publisher::worker::{self, ClaimedJob, JobContext, JobHandler, WorkerSettings};
use tokio::sync::{Notify, oneshot, watch};

#[derive(Default)]
struct FakeJobApi {
    /// Polls that answer `ThrottlingException` before any job is handed out.
    throttled_polls: AtomicUsize,
    /// Polls that fail as unreachable (after the throttled ones) before any job is handed out.
    unavailable_polls: AtomicUsize,
    /// Success results that answer `ThrottlingException` before one is accepted.
    throttled_results: AtomicUsize,
    /// Jobs waiting to be polled; each poll hands out at most `maxBatchSize` of them.
    queue: Mutex<VecDeque<&'static str>>,
    /// `maxBatchSize` of every poll, in order.
    batch_sizes: Mutex<Vec<usize>>,
    /// When each poll was made (tokio's clock, paused in these tests), in order.
    poll_times: Mutex<Vec<tokio::time::Instant>>,
    /// Job ids whose acknowledgement answers with a status other than InProgress.
    not_ours: Vec<&'static str>,
    results: Mutex<Vec<(String, Result<JobSuccess, JobFailure>)>>,
    /// When set, result calls wait until it says `true` (a job API slow to take results).
    results_open: Option<watch::Sender<bool>>,
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

    fn result_ids(&self) -> Vec<String> {
        let mut ids: Vec<_> = self.results().into_iter().map(|(id, _)| id).collect();
        ids.sort();
        ids
    }

    async fn until_results_open(&self) {
        if let Some(open) = &self.results_open {
            let _ = open.subscribe().wait_for(|open| *open).await;
        }
    }

    /// When each poll was made, as time since `start`.
    fn poll_offsets(&self, start: tokio::time::Instant) -> Vec<Duration> {
        self.poll_times
            .lock()
            .unwrap()
            .iter()
            .map(|at| at.duration_since(start))
            .collect()
    }
}

fn throttled() -> JobApiError {
    JobApiError::Throttled {
        code: "ThrottlingException".into(),
        message: "Rate exceeded".into(),
    }
}

/// Takes one from `counter` if it is not yet zero.
fn take_one(counter: &AtomicUsize) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            left.checked_sub(1)
        })
        .is_ok()
}

/// The gaps between consecutive instants.
fn gaps(offsets: &[Duration]) -> Vec<Duration> {
    offsets.windows(2).map(|pair| pair[1] - pair[0]).collect()
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
    async fn poll_for_jobs(
        &self,
        max_batch_size: usize,
        _: PollVersions<'_>,
    ) -> Result<Vec<Job>, JobApiError> {
        self.batch_sizes.lock().unwrap().push(max_batch_size);
        self.poll_times
            .lock()
            .unwrap()
            .push(tokio::time::Instant::now());
        if take_one(&self.throttled_polls) {
            return Err(throttled());
        }
        if take_one(&self.unavailable_polls) {
            return Err(JobApiError::Unavailable {
                message: "connection refused".into(),
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
        self.until_results_open().await;
        if take_one(&self.throttled_results) {
            return Err(throttled());
        }
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
        self.until_results_open().await;
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
    type Error = JobError;

    async fn handle(&self, job: ClaimedJob, _context: JobContext) -> Result<JobSuccess, JobError> {
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
    /// Jobs that have started, ever.
    started_total: AtomicUsize,
    started: Notify,
    release: Notify,
}

impl Gate {
    /// Waits until the `nth` job has started (counting from 1), then lets the running one end.
    async fn release_the_nth(&self, nth: usize) {
        let started = async {
            while self.started_total.load(Ordering::SeqCst) < nth {
                self.started.notified().await;
            }
        };
        // On the paused clock, the worker's own timers carry time to this bound when it stalls.
        tokio::time::timeout(Duration::from_secs(600), started)
            .await
            .unwrap_or_else(|_| panic!("job {nth} never started"));
        self.release.notify_waiters();
    }
}

struct Gated(Arc<Gate>);

impl JobHandler for Gated {
    type Error = JobError;

    async fn handle(&self, job: ClaimedJob, _context: JobContext) -> Result<JobSuccess, JobError> {
        let gate = &self.0;
        let now = gate.running.fetch_add(1, Ordering::SeqCst) + 1;
        gate.peak.fetch_max(now, Ordering::SeqCst);
        gate.started_total.fetch_add(1, Ordering::SeqCst);
        gate.started.notify_waiters();
        gate.release.notified().await;
        gate.running.fetch_sub(1, Ordering::SeqCst);
        Ok(JobSuccess {
            summary: format!("did {}", job.id),
            ..JobSuccess::default()
        })
    }
}

/// Takes as long as its table says for each job (on tokio's clock).
struct Timed(HashMap<&'static str, Duration>);

impl JobHandler for Timed {
    type Error = JobError;

    async fn handle(&self, job: ClaimedJob, _context: JobContext) -> Result<JobSuccess, JobError> {
        let duration = self.0.get(job.id.as_str()).copied().unwrap_or_default();
        tokio::time::sleep(duration).await;
        Ok(JobSuccess {
            summary: format!("did {}", job.id),
            ..JobSuccess::default()
        })
    }
}

fn millis(value: u64) -> Duration {
    Duration::from_millis(value)
}

fn settings(concurrency: usize, max_jobs: Option<u64>) -> WorkerSettings {
    WorkerSettings {
        concurrency,
        max_jobs,
        ..WorkerSettings::default()
    }
}

#[tokio::test(start_paused = true)]
async fn throttled_polls_retry_at_a_short_pace_and_lose_no_job() {
    let api = Arc::new(FakeJobApi {
        throttled_polls: AtomicUsize::new(8),
        throttled_results: AtomicUsize::new(3),
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
    assert_eq!((report.succeeded, report.undelivered), (2, 0));
    assert_eq!(api.result_ids(), ["a", "b"], "each job ended exactly once");
    let polls = api.poll_offsets(started);
    assert_eq!(
        polls.len(),
        9,
        "8 throttled polls, then the one that got the jobs"
    );
    // Full jitter from 200 ms, doubling, capped at 2 s: never a long sleep. (The error policy,
    // 1 s doubling to 60 s with at least half of it fixed, would take over a minute here.)
    for gap in gaps(&polls) {
        assert!(gap <= Duration::from_secs(2), "{gap:?} in {polls:?}");
    }
    let nominal_total = millis(200 + 400 + 800 + 1600 + 4 * 2000);
    assert!(polls[8] <= nominal_total, "{polls:?}");
}

#[tokio::test(start_paused = true)]
async fn a_result_throttled_more_times_than_the_attempts_is_still_delivered() {
    // Twelve attempts bound other failures; throttling goes on until the 60 s deadline, which
    // thirty throttles of at most a second each stay within.
    let api = Arc::new(FakeJobApi {
        throttled_results: AtomicUsize::new(30),
        ..FakeJobApi::with_jobs(&["a"])
    });
    // A result given up on ends nothing `--max-jobs` counts, so the loop would poll on.
    let report = tokio::time::timeout(
        Duration::from_secs(600),
        worker::run(
            api.clone(),
            Arc::new(Instant),
            settings(1, Some(1)),
            std::future::pending(),
        ),
    )
    .await
    .expect("the result was given up on");
    assert_eq!((report.succeeded, report.undelivered), (1, 0));
    assert_eq!(api.result_ids(), ["a"]);
}

#[tokio::test(start_paused = true)]
async fn transport_errors_still_back_off_slowly() {
    let api = Arc::new(FakeJobApi {
        unavailable_polls: AtomicUsize::new(3),
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
    let polls = api.poll_offsets(started);
    assert!(polls[3] >= millis(3500), "{polls:?}");
    assert_eq!(api.result_ids(), ["a", "b"]);
}

#[tokio::test(start_paused = true)]
async fn the_busy_window_keeps_empty_polls_at_the_minimum_then_backs_off() {
    let api = Arc::new(FakeJobApi::with_jobs(&["a"]));
    let worker_settings = WorkerSettings {
        poll_min_interval: Duration::from_secs(1),
        poll_max_interval: Duration::from_secs(8),
        busy_window: Duration::from_secs(60),
        ..settings(1, None)
    };
    let started = tokio::time::Instant::now();
    let report = worker::run(
        api.clone(),
        Arc::new(Instant),
        worker_settings,
        tokio::time::sleep(Duration::from_secs(150)),
    )
    .await;
    assert_eq!(report.succeeded, 1);
    let polls = api.poll_offsets(started);
    assert_eq!(polls[0], Duration::ZERO, "the first poll got the job");
    // Within 60 s of receiving the job, every empty poll follows the last within 1 s ± 20 %.
    let window_end = polls
        .iter()
        .position(|&at| at >= Duration::from_secs(60))
        .expect("polls after the window");
    let in_window = gaps(&polls[..=window_end]);
    assert!(in_window.len() >= 50, "{polls:?}");
    for gap in &in_window {
        assert!(
            *gap <= millis(1200),
            "{gap:?} inside the busy window: {polls:?}"
        );
    }
    // After it, the idle backoff starts from the minimum and doubles to the maximum.
    let after = gaps(&polls[window_end..]);
    assert!(after.len() >= 8, "{polls:?}");
    for (index, gap) in after.iter().enumerate() {
        let nominal = 1000u64 << index.min(3);
        let band = millis(nominal * 8 / 10)..=millis(nominal * 12 / 10);
        assert!(
            band.contains(gap),
            "gap {index} after the window is {gap:?}, expected {nominal} ms ± 20 %: {after:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_partly_free_worker_gathers_then_asks_for_every_free_slot() {
    // The first batch ends at 1.0, 1.1 and 1.2 s; "d" runs on. Polling when "a" ended would ask
    // for one job; gathering (500 ms by default) asks once, for three.
    let api = Arc::new(FakeJobApi::with_jobs(&["a", "b", "c", "d", "e", "f", "g"]));
    let handler = Timed(HashMap::from([
        ("a", millis(1000)),
        ("b", millis(1100)),
        ("c", millis(1200)),
        ("d", millis(30_000)),
        ("e", millis(100)),
        ("f", millis(100)),
        ("g", millis(100)),
    ]));
    let started = tokio::time::Instant::now();
    let report = worker::run(
        api.clone(),
        Arc::new(handler),
        settings(4, None),
        tokio::time::sleep(Duration::from_secs(40)),
    )
    .await;
    assert_eq!(report.succeeded, 7);
    assert_eq!(api.batch_sizes.lock().unwrap()[..2], [4, 3]);
    let polls = api.poll_offsets(started);
    let gather_delay = WorkerSettings::default().gather_delay;
    assert_eq!(gather_delay, millis(500));
    assert!(
        (millis(1000) + gather_delay..millis(1050) + gather_delay).contains(&polls[1]),
        "polled one gather delay after the first slot freed: {polls:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_batch_that_ends_together_is_replaced_by_one_full_poll() {
    let api = Arc::new(FakeJobApi::with_jobs(&[
        "a", "b", "c", "d", "e", "f", "g", "h",
    ]));
    let handler = Timed(HashMap::from([
        ("a", millis(1000)),
        ("b", millis(1050)),
        ("c", millis(1100)),
        ("d", millis(1150)),
    ]));
    let started = tokio::time::Instant::now();
    let report = worker::run(
        api.clone(),
        Arc::new(handler),
        settings(4, Some(8)),
        std::future::pending(),
    )
    .await;
    assert_eq!(report.succeeded, 8);
    assert_eq!(*api.batch_sizes.lock().unwrap(), [4, 4]);
    let polls = api.poll_offsets(started);
    assert!(
        (millis(1150)..millis(1200)).contains(&polls[1]),
        "polled as soon as the last slot freed, not at the gather deadline: {polls:?}"
    );
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
async fn jobs_waiting_on_their_result_calls_free_their_slots_up_to_four_times_the_concurrency() {
    let (open, _) = watch::channel(false);
    let api = Arc::new(FakeJobApi {
        results_open: Some(open),
        ..FakeJobApi::with_jobs(&["a", "b", "c", "d", "e", "f"])
    });
    let gate = Arc::new(Gate::default());
    let (stop, stopped) = oneshot::channel::<()>();
    let worker = tokio::spawn(worker::run(
        api.clone(),
        Arc::new(Gated(gate.clone())),
        settings(1, None),
        async move {
            let _ = stopped.await;
        },
    ));
    for nth in 1..=4 {
        // This job's work ends; its result call then waits on the job API, and the next job
        // takes its slot.
        gate.release_the_nth(nth).await;
    }
    // Four claimed jobs wait on their results: the worker must not claim a fifth, however long
    // the job API takes (the paused clock runs ahead through every backoff and gather window).
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        api.queue.lock().unwrap().len(),
        2,
        "claimed beyond four times the concurrency"
    );
    assert_eq!(gate.running.load(Ordering::SeqCst), 0);
    assert!(api.results().is_empty());

    api.results_open.as_ref().unwrap().send_replace(true);
    for nth in [5, 6] {
        gate.release_the_nth(nth).await;
    }
    stop.send(()).unwrap();
    let report = worker.await.unwrap();
    assert_eq!(report.succeeded, 6);
    assert_eq!(
        api.result_ids(),
        ["a", "b", "c", "d", "e", "f"],
        "one result per job"
    );
    assert_eq!(
        gate.peak.load(Ordering::SeqCst),
        1,
        "never worked on two at once"
    );
}

#[tokio::test(start_paused = true)]
async fn a_throttled_job_api_gets_polls_for_twice_the_concurrency_whose_extra_jobs_wait() {
    let api = Arc::new(FakeJobApi {
        throttled_polls: AtomicUsize::new(1),
        ..FakeJobApi::with_jobs(&["a", "b", "c", "d", "e", "f"])
    });
    let gate = Arc::new(Gate::default());
    let (stop, stopped) = oneshot::channel::<()>();
    let worker = tokio::spawn(worker::run(
        api.clone(),
        Arc::new(Gated(gate.clone())),
        settings(2, None),
        async move {
            let _ = stopped.await;
        },
    ));
    while gate.running.load(Ordering::SeqCst) < 2 {
        gate.started.notified().await;
    }
    // However long the two running jobs take, the two claimed beyond them only wait.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        *api.batch_sizes.lock().unwrap(),
        [2, 4],
        "the throttled poll asked for the free slots, the next one for twice the concurrency"
    );
    assert_eq!(api.queue.lock().unwrap().len(), 2, "four jobs claimed");
    assert_eq!(gate.started_total.load(Ordering::SeqCst), 2);

    for nth in [2, 4, 6] {
        gate.release_the_nth(nth).await;
    }
    while api.results().len() < 6 {
        gate.release.notify_waiters();
        tokio::task::yield_now().await;
    }
    stop.send(()).unwrap();
    let report = worker.await.unwrap();
    assert_eq!(report.succeeded, 6);
    assert_eq!(
        api.result_ids(),
        ["a", "b", "c", "d", "e", "f"],
        "one result per job"
    );
    assert_eq!(
        gate.peak.load(Ordering::SeqCst),
        2,
        "never worked on more than the concurrency"
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
