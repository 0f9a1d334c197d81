//! The SQS operations the sandbox implements, each on the queues' state.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use md5::{Digest, Md5};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::super::Sandbox;
use super::super::ids;
use super::error::SqsError;
use super::queue::Queue;
use super::queue::counts;

/// (account, name) from `https://sqs.REGION.amazonaws.com/ACCOUNT/NAME` or any URL ending
/// in `/ACCOUNT/NAME`.
pub(super) fn queue_key(url: &str) -> Option<(String, String)> {
    let path = url.split_once("://").map_or(url, |(_, rest)| rest);
    let mut segments = path.rsplit('/').filter(|segment| !segment.is_empty());
    let name = segments.next()?;
    let account = segments.next()?;
    Some((account.to_owned(), name.to_owned()))
}

pub(super) fn required<'a>(value: Option<&'a String>, name: &str) -> Result<&'a str, SqsError> {
    value
        .map(String::as_str)
        .ok_or_else(|| SqsError::missing_parameter(name))
}

pub(super) fn md5_hex(text: &str) -> String {
    hex::encode(Md5::digest(text.as_bytes()))
}

pub(super) fn epoch_millis(time: SystemTime) -> String {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis())
        .to_string()
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ReceiveMessageInput {
    queue_url: Option<String>,
    attribute_names: Option<Vec<String>>,
    message_system_attribute_names: Option<Vec<String>>,
    max_number_of_messages: Option<i64>,
    visibility_timeout: Option<i64>,
    wait_time_seconds: Option<i64>,
}

/// Long polling: waits up to `WaitTimeSeconds` for a visible message, answering as soon as
/// one is sent or becomes visible again.
pub(super) async fn receive_message(
    sandbox: &Sandbox,
    input: ReceiveMessageInput,
) -> Result<Value, SqsError> {
    let key = queue_key(required(input.queue_url.as_ref(), "QueueUrl")?)
        .ok_or_else(SqsError::no_queue)?;
    let max = input.max_number_of_messages.unwrap_or(1);
    if !(1..=10).contains(&max) {
        return Err(SqsError::invalid_parameter(format!(
            "Value {max} for parameter MaxNumberOfMessages is invalid. Reason: Must be between \
             1 and 10, if provided."
        )));
    }
    let wait = input.wait_time_seconds.unwrap_or(0);
    if !(0..=20).contains(&wait) {
        return Err(SqsError::invalid_parameter(format!(
            "Value {wait} for parameter WaitTimeSeconds is invalid. Reason: Must be >= 0 and <= \
             20, if provided."
        )));
    }
    let visibility = match input.visibility_timeout {
        None => None,
        Some(seconds @ 0..=43_200) => Some(Duration::from_secs(seconds.unsigned_abs())),
        Some(seconds) => {
            return Err(SqsError::invalid_parameter(format!(
                "Value {seconds} for parameter VisibilityTimeout is invalid. Reason: Must be \
                 >= 0 and <= 43200, if provided."
            )));
        }
    };
    let mut wanted: Vec<String> = input.attribute_names.unwrap_or_default();
    wanted.extend(input.message_system_attribute_names.unwrap_or_default());
    let deadline = Instant::now() + Duration::from_secs(wait.unsigned_abs());
    let max = usize::try_from(max).unwrap_or(1);
    let _waiting = WaitingReceiver::new(sandbox);
    loop {
        let activity = Arc::clone(&sandbox.inner.state().fleet.queue_activity);
        let notified = activity.notified();
        tokio::pin!(notified);
        // Registered before looking, so a message sent in between still wakes us.
        notified.as_mut().enable();
        let next_visible = {
            let mut state = sandbox.inner.state();
            let closing = state.fleet.closing;
            let queue = state
                .fleet
                .queues
                .get_mut(&key)
                .ok_or_else(SqsError::no_queue)?;
            let now = Instant::now();
            let received = take_visible(queue, max, visibility, now, &wanted);
            if !received.is_empty() || closing || now >= deadline {
                return Ok(if received.is_empty() {
                    json!({})
                } else {
                    json!({ "Messages": received })
                });
            }
            queue
                .messages
                .iter()
                .map(|message| message.visible_at)
                .filter(|at| *at > now)
                .min()
        };
        let wake_at = next_visible.map_or(deadline, |at| at.min(deadline));
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep_until(wake_at) => {}
        }
    }
}

/// Counts a ReceiveMessage call in `receivers_waiting` while it lives (also when the
/// connection drops and the handler with it).
pub(super) struct WaitingReceiver<'a>(&'a Sandbox);

impl<'a> WaitingReceiver<'a> {
    fn new(sandbox: &'a Sandbox) -> Self {
        sandbox.inner.state().fleet.receivers_waiting += 1;
        Self(sandbox)
    }
}

impl Drop for WaitingReceiver<'_> {
    fn drop(&mut self) {
        let mut state = self.0.inner.state();
        state.fleet.receivers_waiting = state.fleet.receivers_waiting.saturating_sub(1);
    }
}

/// Hands out up to `max` visible messages, hiding each for the visibility timeout.
pub(super) fn take_visible(
    queue: &mut Queue,
    max: usize,
    visibility: Option<Duration>,
    now: Instant,
    wanted: &[String],
) -> Vec<Value> {
    let hide_for = visibility.unwrap_or(queue.visibility_timeout);
    let wants = |name: &str| wanted.iter().any(|w| w == name || w == "All");
    let mut received = Vec::new();
    for message in queue
        .messages
        .iter_mut()
        .filter(|message| message.visible_at <= now)
        .take(max)
    {
        message.visible_at = now + hide_for;
        message.receive_count += 1;
        let first = *message
            .first_received_at
            .get_or_insert_with(SystemTime::now);
        let handle = ids::receipt_handle();
        queue
            .receipt_handles
            .insert(handle.clone(), message.id.clone());
        let mut entry = json!({
            "MessageId": message.id,
            "ReceiptHandle": handle,
            "MD5OfBody": md5_hex(&message.body),
            "Body": message.body,
        });
        let mut attributes = Map::new();
        if wants("ApproximateReceiveCount") {
            attributes.insert(
                "ApproximateReceiveCount".into(),
                json!(message.receive_count.to_string()),
            );
        }
        if wants("SentTimestamp") {
            attributes.insert("SentTimestamp".into(), json!(epoch_millis(message.sent_at)));
        }
        if wants("ApproximateFirstReceiveTimestamp") {
            attributes.insert(
                "ApproximateFirstReceiveTimestamp".into(),
                json!(epoch_millis(first)),
            );
        }
        if let (false, Some(object)) = (attributes.is_empty(), entry.as_object_mut()) {
            object.insert("Attributes".into(), Value::Object(attributes));
        }
        received.push(entry);
    }
    received
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ReceiptInput {
    queue_url: Option<String>,
    receipt_handle: Option<String>,
    visibility_timeout: Option<i64>,
}

/// The queue and the id of the message `handle` was issued for.
pub(super) fn with_receipt<T>(
    sandbox: &Sandbox,
    input: &ReceiptInput,
    action: impl FnOnce(&mut Queue, String) -> T,
) -> Result<T, SqsError> {
    let key = queue_key(required(input.queue_url.as_ref(), "QueueUrl")?)
        .ok_or_else(SqsError::no_queue)?;
    let handle = required(input.receipt_handle.as_ref(), "ReceiptHandle")?;
    let mut state = sandbox.inner.state();
    let queue = state
        .fleet
        .queues
        .get_mut(&key)
        .ok_or_else(SqsError::no_queue)?;
    let message_id = queue.receipt_handles.get(handle).cloned().ok_or_else(|| {
        SqsError::new(
            StatusCode::BAD_REQUEST,
            "com.amazonaws.sqs#ReceiptHandleIsInvalid",
            "ReceiptHandleIsInvalid",
            format!("The input receipt handle \"{handle}\" is not a valid receipt handle."),
        )
    })?;
    Ok(action(queue, message_id))
}

/// Deleting an already deleted message succeeds, as on SQS.
pub(super) fn delete_message(sandbox: &Sandbox, input: ReceiptInput) -> Result<Value, SqsError> {
    with_receipt(sandbox, &input, |queue, message_id| {
        queue.messages.retain(|message| message.id != message_id);
        queue.receipt_handles.retain(|_, id| *id != message_id);
    })?;
    Ok(json!({}))
}

pub(super) fn change_message_visibility(
    sandbox: &Sandbox,
    input: ReceiptInput,
) -> Result<Value, SqsError> {
    let seconds = input
        .visibility_timeout
        .ok_or_else(|| SqsError::missing_parameter("VisibilityTimeout"))?;
    if !(0..=43_200).contains(&seconds) {
        return Err(SqsError::invalid_parameter(format!(
            "Value {seconds} for parameter VisibilityTimeout is invalid. Reason: Must be >= 0 \
             and <= 43200."
        )));
    }
    let changed = with_receipt(sandbox, &input, |queue, message_id| {
        let now = Instant::now();
        let message = queue
            .messages
            .iter_mut()
            .find(|message| message.id == message_id && message.visible_at > now)?;
        message.visible_at = now + Duration::from_secs(seconds.unsigned_abs());
        Some(())
    })?;
    if changed.is_none() {
        return Err(SqsError::new(
            StatusCode::BAD_REQUEST,
            "com.amazonaws.sqs#MessageNotInflight",
            "AWS.SimpleQueueService.MessageNotInflight",
            "The message referred to isn't in flight.",
        ));
    }
    sandbox.wake_receivers();
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct SendMessageInput {
    queue_url: Option<String>,
    message_body: Option<String>,
}

pub(super) fn send_message(sandbox: &Sandbox, input: SendMessageInput) -> Result<Value, SqsError> {
    let url = required(input.queue_url.as_ref(), "QueueUrl")?;
    let body = required(input.message_body.as_ref(), "MessageBody")?;
    if body.is_empty() {
        return Err(SqsError::invalid_parameter(
            "The request must contain the parameter MessageBody.",
        ));
    }
    let id = sandbox
        .send_message(url, body)
        .ok_or_else(SqsError::no_queue)?;
    Ok(json!({ "MessageId": id, "MD5OfMessageBody": md5_hex(body) }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct GetQueueUrlInput {
    queue_name: Option<String>,
    #[serde(rename = "QueueOwnerAWSAccountId")]
    queue_owner_aws_account_id: Option<String>,
}

pub(super) fn get_queue_url(sandbox: &Sandbox, input: GetQueueUrlInput) -> Result<Value, SqsError> {
    let name = required(input.queue_name.as_ref(), "QueueName")?;
    let account = input
        .queue_owner_aws_account_id
        .unwrap_or_else(|| sandbox.inner.config.account_id.clone());
    let state = sandbox.inner.state();
    let queue = state
        .fleet
        .queues
        .get(&(account, name.to_owned()))
        .ok_or_else(SqsError::no_queue)?;
    Ok(json!({ "QueueUrl": queue.url }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct GetQueueAttributesInput {
    queue_url: Option<String>,
    attribute_names: Option<Vec<String>>,
}

pub(super) fn get_queue_attributes(
    sandbox: &Sandbox,
    input: GetQueueAttributesInput,
) -> Result<Value, SqsError> {
    let key = queue_key(required(input.queue_url.as_ref(), "QueueUrl")?)
        .ok_or_else(SqsError::no_queue)?;
    let state = sandbox.inner.state();
    let queue = state
        .fleet
        .queues
        .get(&key)
        .ok_or_else(SqsError::no_queue)?;
    let counts = counts(queue);
    let all = [
        ("QueueArn", queue.arn.clone()),
        ("ApproximateNumberOfMessages", counts.visible.to_string()),
        (
            "ApproximateNumberOfMessagesNotVisible",
            counts.in_flight.to_string(),
        ),
        (
            "VisibilityTimeout",
            queue.visibility_timeout.as_secs().to_string(),
        ),
        ("ReceiveMessageWaitTimeSeconds", "0".to_owned()),
    ];
    let wanted = input.attribute_names.unwrap_or_default();
    let attributes: Map<String, Value> = all
        .into_iter()
        .filter(|(name, _)| wanted.iter().any(|w| w == name || w == "All"))
        .map(|(name, value)| (name.to_owned(), json!(value)))
        .collect();
    Ok(if attributes.is_empty() {
        json!({})
    } else {
        json!({ "Attributes": attributes })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_keys_come_from_the_last_two_path_segments() {
        let key = |url| queue_key(url).unwrap();
        let expected = ("111122223333".to_owned(), "wake".to_owned());
        assert_eq!(
            key("https://sqs.eu-west-1.amazonaws.com/111122223333/wake"),
            expected
        );
        assert_eq!(key("http://127.0.0.1:4566/111122223333/wake/"), expected);
        assert!(queue_key("wake").is_none());
    }
}
