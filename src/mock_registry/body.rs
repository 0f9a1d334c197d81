//! Reading a whole request body into memory under a cap (413 beyond it), for the JSON
//! documents the npm and build-info APIs receive.

use axum::body::Body;
use axum::http::{HeaderMap, header};
use futures::StreamExt as _;

use super::error::ApiError;

/// Collects `body`, refusing more than `limit` bytes (announced or actual) with 413.
pub(super) async fn read_capped(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if announced.is_some_and(|length| length > limit as u64) {
        return Err(ApiError::too_large(limit));
    }
    let capacity = announced.map_or(0, |length| length as usize);
    let mut bytes = Vec::with_capacity(capacity);
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|error| ApiError::bad_request(format!("Failed to read the body: {error}")))?;
        if bytes.len() + chunk.len() > limit {
            return Err(ApiError::too_large(limit));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}
