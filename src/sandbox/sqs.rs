//! SQS (AWS JSON 1.0, `POST /` with `X-Amz-Target: AmazonSQS.<Operation>`, as
//! `aws-sdk-sqs` sends it with `x-amzn-query-mode: true`): `ReceiveMessage` with long polling,
//! `DeleteMessage`, `ChangeMessageVisibility`, `SendMessage`, `GetQueueUrl` and
//! `GetQueueAttributes`, for the fleet's wake-up queue.
//!
//! Queues live in the fleet's account (the sandbox's own); only its worker credentials may
//! use them, as the fleet template's queue policy and role allow. Errors carry the
//! query-compatible code in `x-amzn-query-error` (`AWS.SimpleQueueService.NonExistentQueue;Sender`),
//! which is what the SDK reports as the error code.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use md5::{Digest, Md5};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::Sandbox;
use super::fleet::SqsFault;
use super::ids;
use super::job_api::session_token;
use super::model::{CallOutcome, RecordedCall};
use super::sigv4;
use super::state::CredentialScope;

/// `X-Amz-Target` is `AmazonSQS.<Operation>`.
const TARGET_PREFIX: &str = "AmazonSQS.";
/// SQS's message size limit is 256 KiB; a request is never much more.
const MAX_REQUEST_BYTES: usize = 1024 * 1024;
/// A queue's default `VisibilityTimeout`.
const DEFAULT_VISIBILITY: Duration = Duration::from_secs(30);

/// One message in a queue.
#[derive(Clone, Debug)]
pub(crate) struct Message {
    id: String,
    body: String,
    sent_at: SystemTime,
    /// Hidden until then after a receive.
    visible_at: Instant,
    receive_count: u32,
    first_received_at: Option<SystemTime>,
}

/// One queue and its messages.
#[derive(Debug)]
pub(crate) struct Queue {
    url: String,
    arn: String,
    visibility_timeout: Duration,
    /// Receives EventBridge's CodePipeline events (the fleet template's rule).
    pub(crate) subscribed: bool,
    messages: Vec<Message>,
    /// Every receipt handle handed out, to the id of its message.
    receipt_handles: HashMap<String, String>,
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

/// An SQS error as the JSON protocol answers it.
#[derive(Debug)]
struct SqsError {
    status: StatusCode,
    /// `__type`, e.g. `com.amazonaws.sqs#QueueDoesNotExist`.
    type_name: &'static str,
    /// The query-compatible code, e.g. `AWS.SimpleQueueService.NonExistentQueue`.
    code: &'static str,
    message: String,
}

impl SqsError {
    fn new(
        status: StatusCode,
        type_name: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            type_name,
            code,
            message: message.into(),
        }
    }

    fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "com.amazonaws.sqs#InvalidParameterValueException",
            "InvalidParameterValue",
            message,
        )
    }

    fn missing_parameter(name: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "com.amazonaws.sqs#MissingRequiredParameterException",
            "MissingParameter",
            format!("The request must contain the parameter {name}."),
        )
    }

    fn no_queue() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "com.amazonaws.sqs#QueueDoesNotExist",
            "AWS.SimpleQueueService.NonExistentQueue",
            "The specified queue does not exist.",
        )
    }

    fn access_denied(caller: &str, operation: &str, resource: &str) -> Self {
        let action = operation.to_ascii_lowercase();
        Self::new(
            StatusCode::FORBIDDEN,
            "com.amazon.coral.service#AccessDeniedException",
            "AccessDenied",
            format!(
                "User: {caller} is not authorized to perform: sqs:{action} on resource: \
                 {resource} because no identity-based policy allows the sqs:{action} action"
            ),
        )
    }
}

impl IntoResponse for SqsError {
    fn into_response(self) -> Response {
        let fault = if self.status.is_server_error() {
            "Receiver"
        } else {
            "Sender"
        };
        let body = json!({ "__type": self.type_name, "message": self.message });
        let mut response = json_response(self.status, &body);
        if let Ok(value) = HeaderValue::from_str(&format!("{};{fault}", self.code)) {
            response.headers_mut().insert("x-amzn-query-error", value);
        }
        response
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, Body::from(body.to_string())).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    if let Ok(request_id) = HeaderValue::from_str(&ids::uuid()) {
        headers.insert("x-amzn-requestid", request_id);
    }
    response
}

/// True for `POST /` with an `AmazonSQS.` target (checked before the job API).
pub(crate) fn is_sqs_request(request: &Request) -> bool {
    request.method() == axum::http::Method::POST
        && request
            .headers()
            .get("x-amz-target")
            .and_then(|value| value.to_str().ok())
            .is_some_and(|target| target.starts_with(TARGET_PREFIX))
}

/// The axum handler for SQS requests.
pub(crate) async fn handle(State(sandbox): State<Sandbox>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let operation = parts
        .headers
        .get("x-amz-target")
        .and_then(|value| value.to_str().ok())
        .and_then(|target| target.strip_prefix(TARGET_PREFIX))
        .unwrap_or("")
        .to_owned();
    let result = match to_bytes(body, MAX_REQUEST_BYTES).await {
        Ok(body) => answer(&sandbox, &parts, &operation, &body).await,
        Err(error) => Err(SqsError::invalid_parameter(error.to_string())),
    };
    let messages = result.as_ref().map_or(0, |value| {
        value
            .get("Messages")
            .and_then(Value::as_array)
            .map_or(0, Vec::len)
    });
    sandbox.inner.state().calls.push(RecordedCall::Sqs {
        operation,
        outcome: match &result {
            Ok(_) => CallOutcome::Ok,
            Err(error) => CallOutcome::Error(error.code.to_owned()),
        },
        messages,
    });
    match result {
        Ok(value) => json_response(StatusCode::OK, &value),
        Err(error) => error.into_response(),
    }
}

async fn answer(
    sandbox: &Sandbox,
    parts: &Parts,
    operation: &str,
    body: &[u8],
) -> Result<Value, SqsError> {
    authenticate(sandbox, parts, body, operation)?;
    take_fault(sandbox, operation)?;
    match operation {
        "ReceiveMessage" => receive_message(sandbox, parse(body)?).await,
        "DeleteMessage" => delete_message(sandbox, parse(body)?),
        "ChangeMessageVisibility" => change_message_visibility(sandbox, parse(body)?),
        "SendMessage" => send_message(sandbox, parse(body)?),
        "GetQueueUrl" => get_queue_url(sandbox, parse(body)?),
        "GetQueueAttributes" => get_queue_attributes(sandbox, parse(body)?),
        other => Err(SqsError::new(
            StatusCode::BAD_REQUEST,
            "com.amazonaws.sqs#UnsupportedOperation",
            "AWS.SimpleQueueService.UnsupportedOperation",
            format!("The sandbox does not implement SQS operation '{other}'"),
        )),
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, SqsError> {
    serde_json::from_slice(body).map_err(|error| {
        SqsError::new(
            StatusCode::BAD_REQUEST,
            "com.amazon.coral.service#SerializationException",
            "SerializationException",
            error.to_string(),
        )
    })
}

/// Signature, live credentials, and the fleet's own worker identity (the only one the
/// queue policy and the fleet role allow).
fn authenticate(
    sandbox: &Sandbox,
    parts: &Parts,
    body: &[u8],
    operation: &str,
) -> Result<(), SqsError> {
    let invalid_token = || {
        SqsError::new(
            StatusCode::FORBIDDEN,
            "com.amazon.coral.service#UnrecognizedClientException",
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        )
    };
    let authorization = sigv4::parse(&parts.headers).map_err(|_| {
        SqsError::new(
            StatusCode::FORBIDDEN,
            "com.amazon.coral.service#MissingAuthenticationTokenException",
            "MissingAuthenticationToken",
            "Missing Authentication Token",
        )
    })?;
    if authorization.service != "sqs" || !sandbox.serves_region(&authorization.region) {
        return Err(SqsError::new(
            StatusCode::FORBIDDEN,
            "com.amazon.coral.service#InvalidSignatureException",
            "SignatureDoesNotMatch",
            format!(
                "Credential should be scoped to a valid region and service 'sqs', not '{}/{}'.",
                authorization.region, authorization.service
            ),
        ));
    }
    let credential = sandbox
        .inner
        .state()
        .credentials
        .get(&authorization.access_key_id)
        .cloned()
        .filter(|credential| !credential.revoked)
        .ok_or_else(invalid_token)?;
    if session_token(&parts.headers) != credential.session_token.as_deref() {
        return Err(invalid_token());
    }
    if !sigv4::signature_matches(
        &authorization,
        &credential.secret,
        &parts.method,
        &parts.uri,
        &parts.headers,
        &sigv4::sha256_hex(body),
    ) {
        return Err(SqsError::new(
            StatusCode::FORBIDDEN,
            "com.amazon.coral.service#InvalidSignatureException",
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        ));
    }
    let config = &sandbox.inner.config;
    let caller = match &credential.scope {
        CredentialScope::Worker => return Ok(()),
        CredentialScope::Job(job_id) => format!(
            "arn:aws:sts::{}:assumed-role/CodePipelineArtifactAccess/{job_id}",
            config.account_id
        ),
        CredentialScope::Assumed(session) => session.arn(),
    };
    let resource = format!(
        "arn:aws:sqs:{}:{}:*",
        authorization.region, config.account_id
    );
    Err(SqsError::access_denied(&caller, operation, &resource))
}

/// Answers the fault set by `fail_sqs`, counting it down.
fn take_fault(sandbox: &Sandbox, operation: &str) -> Result<(), SqsError> {
    let mut state = sandbox.inner.state();
    let Some((fault, remaining)) = state.fleet.sqs_fault else {
        return Ok(());
    };
    state.fleet.sqs_fault = match remaining {
        Some(0 | 1) => None,
        Some(n) => Some((fault, Some(n - 1))),
        None => Some((fault, None)),
    };
    if remaining == Some(0) {
        return Ok(());
    }
    let config = &sandbox.inner.config;
    Err(match fault {
        SqsFault::Unavailable => SqsError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "com.amazon.coral.availability#ServiceUnavailableException",
            "ServiceUnavailable",
            "Service is unavailable. Please try again later.",
        ),
        SqsFault::AccessDenied => SqsError::access_denied(
            &sandbox.worker_caller_arn(),
            operation,
            &format!("arn:aws:sqs:{}:{}:*", config.region, config.account_id),
        ),
    })
}

/// (account, name) from `https://sqs.REGION.amazonaws.com/ACCOUNT/NAME` or any URL ending
/// in `/ACCOUNT/NAME`.
fn queue_key(url: &str) -> Option<(String, String)> {
    let path = url.split_once("://").map_or(url, |(_, rest)| rest);
    let mut segments = path.rsplit('/').filter(|segment| !segment.is_empty());
    let name = segments.next()?;
    let account = segments.next()?;
    Some((account.to_owned(), name.to_owned()))
}

fn required<'a>(value: Option<&'a String>, name: &str) -> Result<&'a str, SqsError> {
    value
        .map(String::as_str)
        .ok_or_else(|| SqsError::missing_parameter(name))
}

fn md5_hex(text: &str) -> String {
    hex::encode(Md5::digest(text.as_bytes()))
}

fn epoch_millis(time: SystemTime) -> String {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis())
        .to_string()
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ReceiveMessageInput {
    queue_url: Option<String>,
    attribute_names: Option<Vec<String>>,
    message_system_attribute_names: Option<Vec<String>>,
    max_number_of_messages: Option<i64>,
    visibility_timeout: Option<i64>,
    wait_time_seconds: Option<i64>,
}

/// Long polling: waits up to `WaitTimeSeconds` for a visible message, answering as soon as
/// one is sent or becomes visible again.
async fn receive_message(sandbox: &Sandbox, input: ReceiveMessageInput) -> Result<Value, SqsError> {
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
struct WaitingReceiver<'a>(&'a Sandbox);

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
fn take_visible(
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
struct ReceiptInput {
    queue_url: Option<String>,
    receipt_handle: Option<String>,
    visibility_timeout: Option<i64>,
}

/// The queue and the id of the message `handle` was issued for.
fn with_receipt<T>(
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
fn delete_message(sandbox: &Sandbox, input: ReceiptInput) -> Result<Value, SqsError> {
    with_receipt(sandbox, &input, |queue, message_id| {
        queue.messages.retain(|message| message.id != message_id);
        queue.receipt_handles.retain(|_, id| *id != message_id);
    })?;
    Ok(json!({}))
}

fn change_message_visibility(sandbox: &Sandbox, input: ReceiptInput) -> Result<Value, SqsError> {
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
struct SendMessageInput {
    queue_url: Option<String>,
    message_body: Option<String>,
}

fn send_message(sandbox: &Sandbox, input: SendMessageInput) -> Result<Value, SqsError> {
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
struct GetQueueUrlInput {
    queue_name: Option<String>,
    #[serde(rename = "QueueOwnerAWSAccountId")]
    queue_owner_aws_account_id: Option<String>,
}

fn get_queue_url(sandbox: &Sandbox, input: GetQueueUrlInput) -> Result<Value, SqsError> {
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
struct GetQueueAttributesInput {
    queue_url: Option<String>,
    attribute_names: Option<Vec<String>>,
}

fn get_queue_attributes(
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

fn counts(queue: &Queue) -> QueueCounts {
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
