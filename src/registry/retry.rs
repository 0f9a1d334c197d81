//! Which registry failures are tried again, how often and how long.
//!
//! Policy: [`crate::retry::REGISTRY_REQUEST`] — at most 4 attempts per request, waiting with
//! equal-jitter exponential backoff from 500 ms up to 8 s between them (or the server's
//! `Retry-After`, capped at 8 s). This loop is the only layer that retries a registry request,
//! and the only one that logs the retry; reporters are told so they can count or draw it.
//! Retried: connection failures and resets, timeouts (including a stalled body past the read
//! timeout), and the statuses that mean "not now" — 408, 429, 500, 502, 503, 504. Not retried:
//! any other 4xx (the request itself is wrong and will stay wrong; 401 is handled by minting a
//! new token, not by repeating the request), and TLS certificate errors (a bad certificate does
//! not fix itself, and retrying would only hide a possible interception).

use std::future::Future;
use std::time::Duration;

use reqwest::StatusCode;
use tracing::warn;

use crate::error::{inline_chain, is_certificate_error};
use crate::registry::{RegistryError, Reporter};
use crate::retry::REGISTRY_REQUEST;

/// Attempts per request, the first included.
pub const MAX_ATTEMPTS: u32 = REGISTRY_REQUEST.attempts;
const MAX_DELAY: Duration = REGISTRY_REQUEST.errors.cap;

/// Whether a response status is worth another attempt.
pub fn is_transient_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

/// Whether a failed request (no response) is worth another attempt.
pub fn is_transient_transport(error: &reqwest::Error) -> bool {
    if is_certificate_error(error) {
        return false;
    }
    error.is_connect() || error.is_timeout() || error.is_request() || error.is_body()
}

/// Sends the request `build` makes, building it anew for each attempt (bodies stream from disk
/// and cannot be replayed), until it succeeds, fails for good, or attempts run out. Returns the
/// last response whatever its status; the caller interprets it.
pub async fn send<F, Fut>(
    operation: &'static str,
    url: &str,
    observer: Option<&dyn Reporter>,
    mut build: F,
) -> Result<reqwest::Response, RegistryError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<reqwest::RequestBuilder, RegistryError>>,
{
    let mut backoff = REGISTRY_REQUEST.errors.backoff();
    let mut attempt = 1;
    loop {
        let outcome = build().await?.send().await;
        let last_attempt = attempt >= MAX_ATTEMPTS;
        let delay = match &outcome {
            Ok(response) if is_transient_status(response.status()) && !last_attempt => {
                let delay = retry_after(response).unwrap_or_else(|| backoff.next_delay());
                warn!(operation, url, status = %response.status(), attempt, retry_in_ms = delay.as_millis() as u64, "registry answered with a transient error; retrying");
                if let Some(observer) = observer {
                    observer.retrying(url, attempt, response.status().as_str());
                }
                delay
            }
            Err(error) if is_transient_transport(error) && !last_attempt => {
                let delay = backoff.next_delay();
                warn!(operation, url, error = %inline_chain(error), attempt, retry_in_ms = delay.as_millis() as u64, "registry request failed; retrying");
                if let Some(observer) = observer {
                    observer.retrying(url, attempt, "transport error");
                }
                delay
            }
            _ => {
                return outcome.map_err(|source| RegistryError::Transport {
                    url: url.to_owned(),
                    source,
                });
            }
        };
        tokio::time::sleep(delay).await;
        attempt += 1;
    }
}

/// `Retry-After` in seconds, capped so a server cannot park a job for an hour.
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let seconds: u64 = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds).min(MAX_DELAY))
}
