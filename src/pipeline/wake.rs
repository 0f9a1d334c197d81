//! The wake-up queue: CodePipeline's "CodePipeline Action Execution State Change" events,
//! forwarded by EventBridge into an SQS queue, tell the worker the moment a job is queued.
//!
//! [`parse_event`] reads one message body (the EventBridge event as JSON: `source`
//! `aws.codepipeline`, the envelope's `account` and `region`, `detail.state` `STARTED` when a
//! job is created, `detail.type` the action type). [`SqsWakeQueue`] long-polls the queue
//! (`ReceiveMessage` with `WaitTimeSeconds` 20) and deletes what the worker has handled; its
//! client honours `AWS_ENDPOINT_URL_SQS` like every SDK client. The worker side — which source a
//! message names, metrics, falling back to polling when the queue fails — is
//! [`crate::worker::wake`].

use std::future::Future;

use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};

/// How long one `ReceiveMessage` waits for a message (SQS's maximum).
pub const WAIT_TIME_SECONDS: i32 = 20;
/// The most messages one receive returns (SQS's maximum).
const MAX_MESSAGES: i32 = 10;

/// One message received from the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessage {
    pub receipt_handle: String,
    pub body: String,
}

/// Why the queue could not be used.
#[derive(Debug, thiserror::Error)]
pub enum WakeQueueError {
    #[error("SQS refused {operation} on the wake-up queue ({code}): {message}")]
    Refused {
        operation: &'static str,
        code: String,
        message: String,
    },
    #[error("the wake-up queue could not be reached ({operation}): {message}")]
    Unreachable {
        operation: &'static str,
        message: String,
    },
}

/// The queue as the worker uses it; [`SqsWakeQueue`] in production, fakes in tests.
pub trait WakeQueue: Send + Sync + 'static {
    /// Waits up to [`WAIT_TIME_SECONDS`] for messages.
    fn receive(&self) -> impl Future<Output = Result<Vec<QueueMessage>, WakeQueueError>> + Send;

    fn delete(
        &self,
        receipt_handle: &str,
    ) -> impl Future<Output = Result<(), WakeQueueError>> + Send;
}

/// The action type named in an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventActionType {
    pub owner: String,
    pub category: String,
    pub provider: String,
    pub version: String,
}

/// A job was queued: a `STARTED` action execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionStarted {
    pub account: String,
    pub region: String,
    pub action_type: EventActionType,
    pub pipeline: String,
}

/// What a message is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WakeEventKind {
    /// An action execution started (the action type is not checked here).
    Started(ActionStarted),
    /// A CodePipeline action execution event in another state.
    OtherState { state: String },
    /// Anything else: not JSON, another source or detail type, a missing field.
    NotCodePipeline,
}

const DETAIL_TYPE: &str = "CodePipeline Action Execution State Change";

/// Reads one message body.
pub fn parse_event(body: &str) -> WakeEventKind {
    let Ok(event) = serde_json::from_str::<serde_json::Value>(body) else {
        return WakeEventKind::NotCodePipeline;
    };
    let text = |value: &serde_json::Value, key: &str| {
        value.get(key).and_then(|v| v.as_str()).map(str::to_owned)
    };
    if text(&event, "source").as_deref() != Some("aws.codepipeline")
        || text(&event, "detail-type").as_deref() != Some(DETAIL_TYPE)
    {
        return WakeEventKind::NotCodePipeline;
    }
    let Some(detail) = event.get("detail") else {
        return WakeEventKind::NotCodePipeline;
    };
    let Some(state) = text(detail, "state") else {
        return WakeEventKind::NotCodePipeline;
    };
    if state != "STARTED" {
        return WakeEventKind::OtherState { state };
    }
    let kind = detail.get("type");
    let type_field = |key| kind.and_then(|kind| text(kind, key));
    let version = kind.and_then(|kind| kind.get("version")).and_then(|v| {
        v.as_str()
            .map(str::to_owned)
            .or_else(|| v.as_u64().map(|n| n.to_string()))
    });
    let (Some(account), Some(region), Some(owner), Some(category), Some(provider), Some(version)) = (
        text(&event, "account"),
        text(&event, "region").or_else(|| text(detail, "region")),
        type_field("owner"),
        type_field("category"),
        type_field("provider"),
        version,
    ) else {
        return WakeEventKind::NotCodePipeline;
    };
    WakeEventKind::Started(ActionStarted {
        account,
        region,
        action_type: EventActionType {
            owner,
            category,
            provider,
            version,
        },
        pipeline: text(detail, "pipeline").unwrap_or_default(),
    })
}

/// The wake-up queue over the AWS SDK.
#[derive(Debug, Clone)]
pub struct SqsWakeQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsWakeQueue {
    /// A client for the queue at `url`, in the queue's region (the URL's host names it:
    /// `sqs.REGION.amazonaws.com`), else the configured one.
    pub fn new(sdk_config: &aws_config::SdkConfig, url: &url::Url) -> Self {
        let mut config = aws_sdk_sqs::config::Builder::from(sdk_config);
        if let Some(region) = url
            .host_str()
            .and_then(|host| host.strip_prefix("sqs."))
            .and_then(|rest| rest.split('.').next())
            .filter(|region| region.contains('-'))
        {
            config = config.region(aws_sdk_sqs::config::Region::new(region.to_owned()));
        }
        Self {
            client: aws_sdk_sqs::Client::from_conf(config.build()),
            url: url.to_string(),
        }
    }
}

fn queue_error<E, R>(operation: &'static str, error: SdkError<E, R>) -> WakeQueueError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match &error {
        SdkError::ServiceError(context) => WakeQueueError::Refused {
            operation,
            code: context.err().code().unwrap_or("Unknown").to_owned(),
            message: context.err().message().unwrap_or("").to_owned(),
        },
        _ => WakeQueueError::Unreachable {
            operation,
            message: crate::error::inline_chain(&error),
        },
    }
}

impl WakeQueue for SqsWakeQueue {
    async fn receive(&self) -> Result<Vec<QueueMessage>, WakeQueueError> {
        let output = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .wait_time_seconds(WAIT_TIME_SECONDS)
            .max_number_of_messages(MAX_MESSAGES)
            .send()
            .await
            .map_err(|error| queue_error("ReceiveMessage", error))?;
        Ok(output
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|message| {
                Some(QueueMessage {
                    receipt_handle: message.receipt_handle?,
                    body: message.body.unwrap_or_default(),
                })
            })
            .collect())
    }

    async fn delete(&self, receipt_handle: &str) -> Result<(), WakeQueueError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map_err(|error| queue_error("DeleteMessage", error))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(state: &str) -> String {
        serde_json::json!({
            "version": "0",
            "id": "01234567-0123-0123-0123-012345678901",
            "detail-type": "CodePipeline Action Execution State Change",
            "source": "aws.codepipeline",
            "account": "222233334444",
            "time": "2026-12-02T03:00:00Z",
            "region": "us-east-1",
            "resources": ["arn:aws:codepipeline:us-east-1:222233334444:nestbox-firmware"],
            "detail": {
                "pipeline": "nestbox-firmware",
                "execution-id": "c0ffee",
                "stage": "Publish",
                "action": "Artifactory",
                "state": state,
                "region": "us-east-1",
                "type": {"owner": "Custom", "category": "Deploy", "provider": "Artifactory", "version": "1"},
                "version": 3.0
            }
        })
        .to_string()
    }

    #[test]
    fn a_started_event_names_its_account_region_and_action_type() {
        let WakeEventKind::Started(started) = parse_event(&event("STARTED")) else {
            panic!("a STARTED event");
        };
        assert_eq!(
            (started.account.as_str(), started.region.as_str()),
            ("222233334444", "us-east-1")
        );
        assert_eq!(started.action_type.provider, "Artifactory");
        assert_eq!(started.action_type.version, "1");
        assert_eq!(started.pipeline, "nestbox-firmware");
    }

    #[test]
    fn other_messages_are_told_apart() {
        assert_eq!(
            parse_event(&event("SUCCEEDED")),
            WakeEventKind::OtherState {
                state: "SUCCEEDED".into()
            }
        );
        for junk in [
            "hello",
            "{}",
            r#"{"source": "aws.s3", "detail-type": "Object Created"}"#,
            &event("STARTED").replace("\"account\"", "\"acct\""),
        ] {
            assert_eq!(parse_event(junk), WakeEventKind::NotCodePipeline, "{junk}");
        }
    }
}
