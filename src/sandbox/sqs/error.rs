//! SQS's errors, as the JSON protocol with query compatibility answers them.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::sandbox::aws_json;

/// An SQS error as the JSON protocol answers it.
#[derive(Debug)]
pub(super) struct SqsError {
    pub(super) status: StatusCode,
    /// `__type`, e.g. `com.amazonaws.sqs#QueueDoesNotExist`.
    pub(super) type_name: &'static str,
    /// The query-compatible code, e.g. `AWS.SimpleQueueService.NonExistentQueue`.
    pub(super) code: &'static str,
    pub(super) message: String,
}

impl SqsError {
    pub(super) fn new(
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

    pub(super) fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "com.amazonaws.sqs#InvalidParameterValueException",
            "InvalidParameterValue",
            message,
        )
    }

    pub(super) fn missing_parameter(name: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "com.amazonaws.sqs#MissingRequiredParameterException",
            "MissingParameter",
            format!("The request must contain the parameter {name}."),
        )
    }

    pub(super) fn no_queue() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "com.amazonaws.sqs#QueueDoesNotExist",
            "AWS.SimpleQueueService.NonExistentQueue",
            "The specified queue does not exist.",
        )
    }

    pub(super) fn access_denied(caller: &str, operation: &str, resource: &str) -> Self {
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
        let mut response = aws_json::response(self.status, &body, aws_json::JSON_1_0);
        if let Ok(value) = HeaderValue::from_str(&format!("{};{fault}", self.code)) {
            response.headers_mut().insert("x-amzn-query-error", value);
        }
        response
    }
}
