//! The queues' state: messages, their visibility, and the sandbox's handles on them for tests.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::super::Sandbox;
use super::super::ids;
use super::DEFAULT_VISIBILITY;
use super::operations::queue_key;

/// One message in a queue.
#[derive(Clone, Debug)]
pub(crate) struct Message {
    pub(super) id: String,
    pub(super) body: String,
    pub(super) sent_at: SystemTime,
    /// Hidden until then after a receive.
    pub(super) visible_at: Instant,
    pub(super) receive_count: u32,
    pub(super) first_received_at: Option<SystemTime>,
}

/// One queue and its messages.
#[derive(Debug)]
pub(crate) struct Queue {
    pub(super) url: String,
    pub(super) arn: String,
    pub(super) visibility_timeout: Duration,
    /// Receives EventBridge's CodePipeline events (the fleet template's rule).
    pub(crate) subscribed: bool,
    pub(super) messages: Vec<Message>,
    /// Every receipt handle handed out, to the id of its message.
    pub(super) receipt_handles: HashMap<String, String>,
}

impl Queue {
    /// Appends a message; returns its id.
    pub(crate) fn push(&mut self, body: String) -> String {
        let id = ids::uuid();
        self.messages.push(Message {
            id: id.clone(),
            body,
            sent_at: SystemTime::now(),
            visible_at: Instant::now(),
            receive_count: 0,
            first_received_at: None,
        });
        id
    }
}

/// How many messages a queue holds, for assertions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueCounts {
    /// Messages a receive could return now (`ApproximateNumberOfMessages`).
    pub visible: usize,
    /// Received and not yet deleted nor visible again (`ApproximateNumberOfMessagesNotVisible`).
    pub in_flight: usize,
}

pub(super) fn counts(queue: &Queue) -> QueueCounts {
    let now = Instant::now();
    let visible = queue
        .messages
        .iter()
        .filter(|message| message.visible_at <= now)
        .count();
    QueueCounts {
        visible,
        in_flight: queue.messages.len() - visible,
    }
}

impl Sandbox {
    /// Creates a standard queue in the fleet's account (the sandbox's own) that receives
    /// every "CodePipeline Action Execution State Change" event of every account and region,
    /// as the fleet template's rule on the central event bus delivers them; returns its URL,
    /// `https://sqs.REGION.amazonaws.com/ACCOUNT/NAME` (the SDK sends it in the body; requests
    /// still go to the sandbox's endpoint). Creating an existing queue returns its URL.
    pub fn create_queue(&self, name: &str) -> String {
        let config = &self.inner.config;
        let (region, account) = (&config.region, &config.account_id);
        let url = format!("https://sqs.{region}.amazonaws.com/{account}/{name}");
        self.inner
            .state()
            .fleet
            .queues
            .entry((account.clone(), name.to_owned()))
            .or_insert_with(|| Queue {
                url: url.clone(),
                arn: format!("arn:aws:sqs:{region}:{account}:{name}"),
                visibility_timeout: DEFAULT_VISIBILITY,
                subscribed: true,
                messages: Vec::new(),
                receipt_handles: HashMap::new(),
            });
        url
    }

    /// Puts `body` on the queue as it is (e.g. a message that is no CodePipeline event);
    /// returns the message id, or `None` when there is no such queue.
    pub fn send_message(&self, queue_url: &str, body: &str) -> Option<String> {
        let key = queue_key(queue_url)?;
        let id = self
            .inner
            .state()
            .fleet
            .queues
            .get_mut(&key)?
            .push(body.to_owned());
        self.wake_receivers();
        Some(id)
    }

    /// How many messages the queue holds, or `None` when there is no such queue.
    pub fn queue_counts(&self, queue_url: &str) -> Option<QueueCounts> {
        let key = queue_key(queue_url)?;
        self.inner.state().fleet.queues.get(&key).map(counts)
    }

    /// The bodies of the queue's messages not yet deleted, oldest first.
    pub fn queue_bodies(&self, queue_url: &str) -> Vec<String> {
        let Some(key) = queue_key(queue_url) else {
            return Vec::new();
        };
        self.inner
            .state()
            .fleet
            .queues
            .get(&key)
            .map(|queue| queue.messages.iter().map(|m| m.body.clone()).collect())
            .unwrap_or_default()
    }

    /// How many ReceiveMessage calls are in the sandbox right now (long polls waiting), so a
    /// test can queue a job once a worker is listening.
    pub fn sqs_receivers_waiting(&self) -> usize {
        self.inner.state().fleet.receivers_waiting
    }

    /// Wakes long polls so they look at their queues again.
    pub(crate) fn wake_receivers(&self) {
        let activity = Arc::clone(&self.inner.state().fleet.queue_activity);
        activity.notify_waiters();
    }
}
