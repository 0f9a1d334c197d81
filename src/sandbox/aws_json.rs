//! The response framing AWS's JSON protocols share: the body, the protocol's version as its
//! `Content-Type`, and a request id, as the SDKs read them.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::ids;

/// SQS's protocol.
pub(crate) const JSON_1_0: &str = "application/x-amz-json-1.0";
/// CodePipeline's, Secrets Manager's and SSM's.
pub(crate) const JSON_1_1: &str = "application/x-amz-json-1.1";

pub(crate) fn response(status: StatusCode, body: &Value, content_type: &'static str) -> Response {
    let mut response = (status, Body::from(body.to_string())).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(request_id) = HeaderValue::from_str(&ids::uuid()) {
        headers.insert("x-amzn-requestid", request_id);
    }
    response
}
