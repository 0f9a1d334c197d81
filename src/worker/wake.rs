//! Wake-up instead of fast polling: a task long-polls the wake-up queue
//! ([`crate::pipeline::wake`]) and tells the loop which source to poll at once.
//!
//! For every message: a `STARTED` event of our action type (owner, category, provider, one of
//! the source's versions) in the account and region of a source wakes that source, which then
//! asks that version alone (one request, not one per version served); anything
//! else — another state, another action type, not a CodePipeline event, an account/region no
//! source serves — is counted (`pipeline_publisher_wake_messages_total{outcome}`) and deleted,
//! never fatal. A message is deleted once the loop has been told.
//!
//! [`RECEIVERS`] receives are in flight at once, so a backlog of one source's events (a
//! pipeline fanning out 200 jobs) does not queue another source's event behind twenty round
//! trips; each message still wakes its source once, and the loop hears of the queue failing
//! or recovering once, whichever receiver saw it.
//!
//! While the queue answers, the loop polls idle sources only as a safety net
//! (`--poll-max-interval`, 60 s by default); it starts so, trusting the queue until a receive
//! fails. When a receive fails (unreachable, access denied)
//! the task tells the loop, which goes back to the pace of a worker without a queue, warns once,
//! counts it, and tries the queue again with the error backoff (1 s doubling to 60 s). The
//! first receive that works again restores the safety-net pace.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::metrics::{Metrics, WakeOutcome};
use crate::pipeline::ActionTypeId;
use crate::pipeline::wake::{ActionStarted, WakeEventKind, WakeQueue, parse_event};
use crate::retry::Backoff;

/// What the wake-up task tells the loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WakeEvent {
    /// Poll `version` of the action type in source `source` (its index) now.
    Source { source: usize, version: String },
    /// The queue answers: idle polling may slow to the safety net.
    QueueUp,
    /// The queue failed: poll at the normal pace until it answers again.
    QueueDown,
}

/// Where a source is, as events name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceAddress {
    /// `None` for the worker's own account when it was not given: matches any account in the
    /// region that no other source claims.
    pub account: Option<String>,
    pub region: String,
    pub versions: Vec<String>,
}

/// Maps events onto sources.
#[derive(Debug, Clone)]
pub struct SourceMatcher {
    /// Owner, category and provider of the action type served (its version is per source).
    pub action_type: ActionTypeId,
    /// In the loop's source order.
    pub sources: Vec<SourceAddress>,
}

impl SourceMatcher {
    /// The index of the source an event names; otherwise how the message counts: `Ignored`
    /// for another action type, `UnknownSource` when no source serves its account and region.
    pub fn find(&self, event: &ActionStarted) -> Result<usize, WakeOutcome> {
        let kind = &event.action_type;
        if kind.owner != self.action_type.owner
            || kind.category != self.action_type.category
            || kind.provider != self.action_type.provider
        {
            return Err(WakeOutcome::Ignored);
        }
        let serves = |source: &SourceAddress| {
            source.region == event.region && source.versions.contains(&kind.version)
        };
        let exact = self.sources.iter().position(|source| {
            serves(source) && source.account.as_deref() == Some(event.account.as_str())
        });
        exact
            .or_else(|| {
                self.sources
                    .iter()
                    .position(|source| serves(source) && source.account.is_none())
            })
            .ok_or(WakeOutcome::UnknownSource)
    }
}

/// How many receives are in flight at once: a backlog of one source's events (200 jobs queued
/// at once are 20 receives of 10) is worked through this many receives at a time, so the event
/// of another source behind it waits a few round trips, not twenty.
pub const RECEIVERS: usize = 4;

/// Receives from `queue` with [`RECEIVERS`] receives in flight, until the loop is gone
/// (`events` closed).
pub async fn run<Q: WakeQueue>(
    queue: Arc<Q>,
    matcher: SourceMatcher,
    metrics: Arc<Metrics>,
    events: mpsc::Sender<WakeEvent>,
) {
    run_receivers(queue, matcher, metrics, events, RECEIVERS).await;
}

/// [`run`] with `receivers` receives in flight (at least one).
pub async fn run_receivers<Q: WakeQueue>(
    queue: Arc<Q>,
    matcher: SourceMatcher,
    metrics: Arc<Metrics>,
    events: mpsc::Sender<WakeEvent>,
    receivers: usize,
) {
    // The loop starts at the safety-net pace: a queue that does not work says so at its first
    // receive (a long poll that works says nothing for up to 20 s).
    let up = AtomicBool::new(true);
    metrics.set_wake_queue_up(true);
    let receiving =
        (0..receivers.max(1)).map(|_| receive(&*queue, &matcher, &metrics, &events, &up));
    futures::future::join_all(receiving).await;
}

/// One receiver: receive, wake, delete, until the loop is gone. `up` is shared by the
/// receivers, so the loop hears of the queue failing or recovering once.
async fn receive<Q: WakeQueue>(
    queue: &Q,
    matcher: &SourceMatcher,
    metrics: &Metrics,
    events: &mpsc::Sender<WakeEvent>,
    up: &AtomicBool,
) {
    let mut backoff = Backoff::errors(Duration::from_secs(1), Duration::from_secs(60));
    while !events.is_closed() {
        let messages = match queue.receive().await {
            Ok(messages) => messages,
            Err(error) => {
                metrics.wake_queue_failed();
                let delay = backoff.next_delay();
                if up.swap(false, Ordering::SeqCst) {
                    warn!(
                        %error,
                        retry_in_ms = delay.as_millis() as u64,
                        "the wake-up queue failed; polling every source at the normal pace until \
                         it answers (check --wake-queue and sqs:ReceiveMessage/DeleteMessage)"
                    );
                    metrics.set_wake_queue_up(false);
                    if events.send(WakeEvent::QueueDown).await.is_err() {
                        return;
                    }
                } else {
                    debug!(%error, retry_in_ms = delay.as_millis() as u64, "the wake-up queue still fails");
                }
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        backoff.reset();
        if !up.swap(true, Ordering::SeqCst) {
            info!("the wake-up queue answers again; idle sources are polled as a safety net only");
            metrics.set_wake_queue_up(true);
            if events.send(WakeEvent::QueueUp).await.is_err() {
                return;
            }
        }
        // Every source named in this batch is woken before any message is deleted, and once:
        // a backlog of one source's events must not hold up another's wake-up behind a
        // round trip per message.
        let mut woken = Vec::new();
        for message in &messages {
            let outcome = match parse_event(&message.body) {
                WakeEventKind::Started(started) => match matcher.find(&started) {
                    Ok(index) => {
                        debug!(pipeline = %started.pipeline, account = %started.account, region = %started.region, "a job was queued; waking its source");
                        let wake = WakeEvent::Source {
                            source: index,
                            version: started.action_type.version.clone(),
                        };
                        if !woken.contains(&wake) {
                            woken.push(wake.clone());
                            if events.send(wake).await.is_err() {
                                return;
                            }
                        }
                        WakeOutcome::Woke
                    }
                    Err(outcome) => {
                        if outcome == WakeOutcome::UnknownSource {
                            info!(account = %started.account, region = %started.region, "a wake-up message names an account/region no source serves; deleting it");
                        }
                        outcome
                    }
                },
                WakeEventKind::OtherState { .. } => WakeOutcome::Ignored,
                WakeEventKind::NotCodePipeline => {
                    info!("a wake-up message is not a CodePipeline action event; deleting it");
                    WakeOutcome::NotCodePipeline
                }
            };
            metrics.wake_message(outcome);
        }
        let deletes = messages
            .iter()
            .map(|message| queue.delete(&message.receipt_handle));
        for result in futures::future::join_all(deletes).await {
            if let Err(error) = result {
                // It comes back after its visibility timeout; waking a source twice is harmless.
                warn!(%error, "could not delete a wake-up message");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use super::*;
    use crate::pipeline::wake::{EventActionType, QueueMessage, WakeQueueError};

    /// The wake-up of version 1 (the tests' events) in source `source`.
    fn woke(source: usize) -> WakeEvent {
        WakeEvent::Source {
            source,
            version: "1".into(),
        }
    }

    fn matcher() -> SourceMatcher {
        SourceMatcher {
            action_type: ActionTypeId {
                category: "Deploy".into(),
                owner: "Custom".into(),
                provider: "Artifactory".into(),
                version: "1".into(),
            },
            sources: vec![
                SourceAddress {
                    account: None,
                    region: "eu-west-1".into(),
                    versions: vec!["1".into()],
                },
                SourceAddress {
                    account: Some("222233334444".into()),
                    region: "eu-west-1".into(),
                    versions: vec!["1".into(), "2".into()],
                },
            ],
        }
    }

    fn started(account: &str, region: &str, provider: &str, version: &str) -> ActionStarted {
        ActionStarted {
            account: account.into(),
            region: region.into(),
            action_type: EventActionType {
                owner: "Custom".into(),
                category: "Deploy".into(),
                provider: provider.into(),
                version: version.into(),
            },
            pipeline: "p".into(),
        }
    }

    #[test]
    fn events_map_to_the_source_of_their_account_and_region() {
        let matcher = matcher();
        assert_eq!(
            matcher.find(&started("222233334444", "eu-west-1", "Artifactory", "2")),
            Ok(1)
        );
        assert_eq!(
            matcher.find(&started("222233334444", "eu-west-1", "Artifactory", "1")),
            Ok(1)
        );
        assert_eq!(
            matcher.find(&started("111122223333", "eu-west-1", "Artifactory", "1")),
            Ok(0),
            "the worker's own account"
        );
        assert_eq!(
            matcher.find(&started("111122223333", "us-east-1", "Artifactory", "1")),
            Err(WakeOutcome::UnknownSource)
        );
        assert_eq!(
            matcher.find(&started("111122223333", "eu-west-1", "Other", "1")),
            Err(WakeOutcome::Ignored)
        );
    }

    /// Answers receives from a script of results, then waits forever.
    struct ScriptedQueue {
        script: Mutex<VecDeque<Result<Vec<QueueMessage>, WakeQueueError>>>,
        deleted: Mutex<Vec<String>>,
    }

    impl WakeQueue for ScriptedQueue {
        async fn receive(&self) -> Result<Vec<QueueMessage>, WakeQueueError> {
            let next = self.script.lock().unwrap().pop_front();
            match next {
                Some(result) => result,
                None => std::future::pending().await,
            }
        }

        async fn delete(&self, receipt_handle: &str) -> Result<(), WakeQueueError> {
            self.deleted.lock().unwrap().push(receipt_handle.to_owned());
            Ok(())
        }
    }

    fn message(handle: &str, body: &str) -> QueueMessage {
        QueueMessage {
            receipt_handle: handle.into(),
            body: body.into(),
        }
    }

    fn event_body(account: &str) -> String {
        serde_json::json!({
            "source": "aws.codepipeline",
            "detail-type": "CodePipeline Action Execution State Change",
            "account": account,
            "region": "eu-west-1",
            "detail": {"state": "STARTED", "pipeline": "p",
                       "type": {"owner": "Custom", "category": "Deploy", "provider": "Artifactory", "version": "1"}}
        })
        .to_string()
    }

    #[tokio::test(start_paused = true)]
    async fn messages_wake_their_source_junk_is_deleted_and_an_outage_falls_back() {
        let queue = Arc::new(ScriptedQueue {
            script: Mutex::new(VecDeque::from([
                Ok(vec![
                    message("m1", &event_body("222233334444")),
                    message("m2", "not json"),
                    message(
                        "m3",
                        &event_body("999999999999").replace("eu-west-1", "ap-south-1"),
                    ),
                ]),
                Err(WakeQueueError::Refused {
                    operation: "ReceiveMessage",
                    code: "AccessDenied".into(),
                    message: "no".into(),
                }),
                Err(WakeQueueError::Unreachable {
                    operation: "ReceiveMessage",
                    message: "connection refused".into(),
                }),
                Ok(vec![message("m4", &event_body("111122223333"))]),
            ])),
            deleted: Mutex::new(Vec::new()),
        });
        let metrics = Arc::new(Metrics::new());
        let (sender, mut receiver) = mpsc::channel(16);
        // One receiver, so the script is consumed in order.
        let task = tokio::spawn(run_receivers(
            queue.clone(),
            matcher(),
            metrics.clone(),
            sender,
            1,
        ));
        let mut events = Vec::new();
        for _ in 0..4 {
            events.push(receiver.recv().await.unwrap());
        }
        assert_eq!(
            events,
            [woke(1), WakeEvent::QueueDown, WakeEvent::QueueUp, woke(0),]
        );
        // The last delete follows the last event.
        for _ in 0..100 {
            if queue.deleted.lock().unwrap().len() == 4 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(*queue.deleted.lock().unwrap(), ["m1", "m2", "m3", "m4"]);
        let text = metrics.render();
        for line in [
            "pipeline_publisher_wake_messages_total{outcome=\"Woke\"} 2",
            "pipeline_publisher_wake_messages_total{outcome=\"NotCodePipeline\"} 1",
            "pipeline_publisher_wake_messages_total{outcome=\"UnknownSource\"} 1",
            "pipeline_publisher_wake_queue_failures_total 2",
            "pipeline_publisher_wake_queue_up 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
        }
        drop(receiver);
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_backlog_of_one_source_wakes_it_once_and_the_other_source_in_the_same_batch() {
        let mut batch: Vec<QueueMessage> = (0..9)
            .map(|index| message(&format!("a{index}"), &event_body("222233334444")))
            .collect();
        batch.push(message("b0", &event_body("111122223333")));
        let queue = Arc::new(ScriptedQueue {
            script: Mutex::new(VecDeque::from([Ok(batch)])),
            deleted: Mutex::new(Vec::new()),
        });
        let (sender, mut receiver) = mpsc::channel(16);
        let task = tokio::spawn(run_receivers(
            queue.clone(),
            matcher(),
            Arc::new(Metrics::new()),
            sender,
            1,
        ));
        let events = [
            receiver.recv().await.unwrap(),
            receiver.recv().await.unwrap(),
        ];
        assert_eq!(events, [woke(1), woke(0)]);
        for _ in 0..100 {
            if queue.deleted.lock().unwrap().len() == 10 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(
            queue.deleted.lock().unwrap().len(),
            10,
            "every message deleted"
        );
        assert!(
            receiver.try_recv().is_err(),
            "no second wake-up for the backlogged source"
        );
        drop(receiver);
        task.abort();
    }

    /// Counts the receives in flight; none ever returns.
    #[derive(Default)]
    struct SilentQueue {
        in_flight: std::sync::atomic::AtomicUsize,
    }

    impl WakeQueue for SilentQueue {
        async fn receive(&self) -> Result<Vec<QueueMessage>, WakeQueueError> {
            self.in_flight.fetch_add(1, Ordering::SeqCst);
            std::future::pending().await
        }

        async fn delete(&self, _: &str) -> Result<(), WakeQueueError> {
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn several_receives_are_in_flight_so_a_backlog_drains_in_parallel() {
        let queue = Arc::new(SilentQueue::default());
        let (sender, _receiver) = mpsc::channel(16);
        let task = tokio::spawn(run(
            queue.clone(),
            matcher(),
            Arc::new(Metrics::new()),
            sender,
        ));
        for _ in 0..100 {
            if queue.in_flight.load(Ordering::SeqCst) == RECEIVERS {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(queue.in_flight.load(Ordering::SeqCst), RECEIVERS);
        task.abort();
    }
}
