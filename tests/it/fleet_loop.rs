//! The real poll loop serving several sources, each a scripted control plane, with tokio's
//! clock paused: a busy source does not starve another, a wake-up makes a source poll at once,
//! and a job journaled by an earlier process is reported to the source it came from.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pipeline_publisher::pipeline::{
    Acknowledgement, Job, JobApi, JobApiError, JobData, JobFailure, JobSuccess, PollVersions,
};
use pipeline_publisher::publish::JobError;
use pipeline_publisher::worker::journal::{Journal, JournalEntry};
use pipeline_publisher::worker::{
    self, ClaimedJob, JobContext, JobHandler, Source, WakeEvent, WorkerSettings,
};
use tokio::sync::mpsc;

/// One source's job API: a queue of job ids; records polls, detail fetches and results.
#[derive(Default)]
struct FakeSource {
    queue: Mutex<VecDeque<String>>,
    polls: Mutex<Vec<tokio::time::Instant>>,
    details: Mutex<Vec<String>>,
    results: Mutex<Vec<String>>,
}

impl FakeSource {
    fn with_jobs(prefix: &str, count: usize) -> Arc<Self> {
        Arc::new(Self {
            queue: Mutex::new((0..count).map(|i| format!("{prefix}-{i:03}")).collect()),
            ..Self::default()
        })
    }

    fn add(&self, id: &str) {
        self.queue.lock().unwrap().push_back(id.to_owned());
    }

    fn results(&self) -> Vec<String> {
        let mut ids = self.results.lock().unwrap().clone();
        ids.sort();
        ids
    }
}

impl JobApi for FakeSource {
    async fn poll_for_jobs(
        &self,
        max_batch_size: usize,
        _: PollVersions<'_>,
    ) -> Result<Vec<Job>, JobApiError> {
        self.polls.lock().unwrap().push(tokio::time::Instant::now());
        let mut queue = self.queue.lock().unwrap();
        let count = max_batch_size.min(queue.len());
        Ok(queue
            .drain(..count)
            .map(|id| Job {
                nonce: format!("nonce-{id}"),
                id,
                account_id: "111122223333".into(),
                data: JobData::default(),
            })
            .collect())
    }

    async fn acknowledge_job(&self, _: &str, _: &str) -> Result<Acknowledgement, JobApiError> {
        Ok(Acknowledgement::InProgress)
    }

    async fn get_job_details(&self, job_id: &str) -> Result<JobData, JobApiError> {
        self.details.lock().unwrap().push(job_id.to_owned());
        Ok(JobData::default())
    }

    async fn put_job_success_result(
        &self,
        job_id: &str,
        _: &JobSuccess,
    ) -> Result<(), JobApiError> {
        self.results.lock().unwrap().push(job_id.to_owned());
        Ok(())
    }

    async fn put_job_failure_result(
        &self,
        job_id: &str,
        _: &JobFailure,
    ) -> Result<(), JobApiError> {
        self.results.lock().unwrap().push(job_id.to_owned());
        Ok(())
    }
}

/// Takes one second per job (paused clock), and records when each job started.
#[derive(Default)]
struct OneSecond {
    started: Mutex<Vec<(String, tokio::time::Instant)>>,
}

impl JobHandler for OneSecond {
    type Error = JobError;

    async fn handle(&self, job: ClaimedJob, _: JobContext) -> Result<JobSuccess, JobError> {
        self.started
            .lock()
            .unwrap()
            .push((job.id.clone(), tokio::time::Instant::now()));
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok(JobSuccess::default())
    }
}

/// A wake-up naming source B (the second) and version 1.
async fn wake_b(sender: &mpsc::Sender<WakeEvent>) {
    let wake = WakeEvent::Source {
        source: 1,
        version: "1".into(),
    };
    sender.send(wake).await.unwrap();
}

fn settings(max_jobs: u64) -> WorkerSettings {
    WorkerSettings {
        concurrency: 4,
        max_jobs: Some(max_jobs),
        heartbeat_interval: Duration::ZERO,
        ..WorkerSettings::default()
    }
}

#[tokio::test(start_paused = true)]
async fn a_source_with_a_backlog_does_not_starve_another() {
    let a = FakeSource::with_jobs("a", 200);
    let b = FakeSource::with_jobs("b", 0);
    let handler = Arc::new(OneSecond::default());
    let start = tokio::time::Instant::now();
    let worker = tokio::spawn(worker::run_sources(
        vec![Source::new("a", a.clone()), Source::new("b", b.clone())],
        handler.clone(),
        settings(205),
        None,
        std::future::pending::<()>(),
    ));
    // B's five jobs arrive while A's backlog holds every slot.
    tokio::time::sleep(Duration::from_millis(10_500)).await;
    let b_queued = tokio::time::Instant::now();
    for index in 0..5 {
        b.add(&format!("b-{index:03}"));
    }
    let report = tokio::time::timeout(Duration::from_secs(600), worker)
        .await
        .expect("the worker ends after --max-jobs")
        .unwrap();
    assert_eq!(report.succeeded, 205);
    let a_results = a.results();
    assert_eq!(a_results.len(), 200, "each of A's jobs once");
    a_results.windows(2).for_each(|w| assert_ne!(w[0], w[1]));
    assert_eq!(
        b.results(),
        (0..5).map(|i| format!("b-{i:03}")).collect::<Vec<_>>()
    );
    let mut waits: Vec<Duration> = handler
        .started
        .lock()
        .unwrap()
        .iter()
        .filter(|(id, _)| id.starts_with("b-"))
        .map(|(_, at)| *at - b_queued)
        .collect();
    waits.sort();
    // One job lasts 1 s; B polls at its own pace (1 s while busy, up to 10 s idle). B's first
    // job starts within one job plus one poll interval; its median within two jobs of that.
    assert!(
        waits[0] <= Duration::from_secs(11),
        "{waits:?} (A started {:?})",
        start.elapsed()
    );
    assert!(waits[2] <= waits[0] + Duration::from_secs(2), "{waits:?}");
}

#[tokio::test(start_paused = true)]
async fn a_wake_up_polls_the_named_source_at_once() {
    let a = FakeSource::with_jobs("a", 0);
    let b = FakeSource::with_jobs("b", 0);
    let (sender, receiver) = mpsc::channel(8);
    let worker = tokio::spawn(worker::run_sources(
        vec![Source::new("a", a.clone()), Source::new("b", b.clone())],
        Arc::new(OneSecond::default()),
        WorkerSettings {
            poll_min_interval: Duration::from_secs(60),
            poll_max_interval: Duration::from_secs(60),
            ..settings(1)
        },
        Some(receiver),
        std::future::pending::<()>(),
    ));
    // Both sources polled once at start, then wait a minute.
    for _ in 0..100 {
        if a.polls.lock().unwrap().len() == 1 && b.polls.lock().unwrap().len() == 1 {
            break;
        }
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    b.add("b-woken");
    let woken_at = tokio::time::Instant::now();
    wake_b(&sender).await;
    let report = tokio::time::timeout(Duration::from_secs(30), worker)
        .await
        .expect("the woken job ends well before the next scheduled poll")
        .unwrap();
    assert_eq!(report.succeeded, 1);
    assert_eq!(b.results(), ["b-woken"]);
    let polls = b.polls.lock().unwrap().clone();
    assert_eq!(polls.len(), 2, "{polls:?}");
    assert_eq!(polls[1], woken_at, "polled the moment the wake-up came");
    assert_eq!(
        a.polls.lock().unwrap().len(),
        1,
        "the other source was left alone"
    );
}

/// Jobs end spread out, as real ones do: `a-N` takes 1 s + (N mod 4) × 250 ms; records when
/// each job started and ended.
#[derive(Default)]
struct Staggered {
    spans: Mutex<Vec<(String, tokio::time::Instant, tokio::time::Instant)>>,
}

impl JobHandler for Staggered {
    type Error = JobError;

    async fn handle(&self, job: ClaimedJob, _: JobContext) -> Result<JobSuccess, JobError> {
        let started = tokio::time::Instant::now();
        let index: u64 = job.id.rsplit('-').next().unwrap().parse().unwrap();
        tokio::time::sleep(Duration::from_millis(1000 + 250 * (index % 4))).await;
        self.spans
            .lock()
            .unwrap()
            .push((job.id.clone(), started, tokio::time::Instant::now()));
        Ok(JobSuccess::default())
    }
}

#[tokio::test(start_paused = true)]
async fn a_woken_source_takes_the_first_slot_that_frees_while_another_has_a_backlog() {
    let a = FakeSource::with_jobs("a", 40);
    let b = FakeSource::with_jobs("b", 0);
    let handler = Arc::new(Staggered::default());
    let (sender, receiver) = mpsc::channel(4);
    let worker = tokio::spawn(worker::run_sources(
        vec![Source::new("a", a.clone()), Source::new("b", b.clone())],
        handler.clone(),
        settings(45),
        Some(receiver),
        std::future::pending::<()>(),
    ));
    // A's backlog holds every slot; B's jobs are queued and its wake-up arrives.
    tokio::time::sleep(Duration::from_millis(3_100)).await;
    for index in 0..5 {
        b.add(&format!("b-{index:03}"));
    }
    let woken_at = tokio::time::Instant::now();
    wake_b(&sender).await;
    let report = tokio::time::timeout(Duration::from_secs(600), worker)
        .await
        .expect("the worker ends after --max-jobs")
        .unwrap();
    assert_eq!(report.succeeded, 45);
    let spans = handler.spans.lock().unwrap().clone();
    // The moments slots free after the wake-up (A's jobs running then ending).
    let mut frees: Vec<tokio::time::Instant> = spans
        .iter()
        .filter(|(id, started, ended)| {
            id.starts_with("a-") && *started < woken_at && *ended >= woken_at
        })
        .map(|(_, _, ended)| *ended)
        .collect();
    frees.sort();
    let mut b_starts: Vec<tokio::time::Instant> = spans
        .iter()
        .filter(|(id, ..)| id.starts_with("b-"))
        .map(|(_, started, _)| *started)
        .collect();
    b_starts.sort();
    assert_eq!(b_starts.len(), 5);
    // B is not held back to gather slots: its share (two of four) takes the first two slots
    // that free, each the moment it frees.
    assert_eq!(b_starts[..2], frees[..2], "{spans:?}");
    // Its median job starts within two of A's longest jobs of the wake-up.
    assert!(
        b_starts[2] - woken_at <= Duration::from_millis(2 * 1750),
        "{:?}",
        b_starts.iter().map(|at| *at - woken_at).collect::<Vec<_>>()
    );
}

#[tokio::test(start_paused = true)]
async fn a_journaled_job_is_reported_to_the_source_it_came_from() {
    let state = tempfile::tempdir().unwrap();
    {
        let journal = Journal::open(state.path()).unwrap();
        journal
            .record(&JournalEntry {
                job_id: "b-crashed".into(),
                pipeline: "nestbox-firmware".into(),
                execution_id: "e1".into(),
                acknowledged_at: "2026-12-02T03:00:00Z".into(),
                source: Some("b".into()),
            })
            .unwrap();
    }
    let a = FakeSource::with_jobs("a", 0);
    let b = FakeSource::with_jobs("b", 0);
    let report = worker::run_sources(
        vec![Source::new("a", a.clone()), Source::new("b", b.clone())],
        Arc::new(OneSecond::default()),
        WorkerSettings {
            journal: Some(Arc::new(Journal::open(state.path()).unwrap())),
            ..settings(1)
        },
        None,
        std::future::pending::<()>(),
    )
    .await;
    assert_eq!(report.succeeded, 1);
    assert_eq!(*b.details.lock().unwrap(), ["b-crashed"]);
    assert_eq!(b.results(), ["b-crashed"]);
    assert!(a.details.lock().unwrap().is_empty() && a.results().is_empty());
    assert!(
        Journal::open(state.path())
            .unwrap()
            .pending()
            .unwrap()
            .is_empty()
    );
}
