//! What the S3 stand-in needs to be read the way a fast client reads real S3: `Range` requests
//! (206 with `Content-Range`, 416 `InvalidRange`), `If-Match` (412 `PreconditionFailed`), an
//! optional per-connection rate cap (one GET at a time per HTTP/1.1 connection, so capping each
//! response body caps its connection), the log of ranged reads, and the faults a ranged reader
//! must survive or report: a range answered short, an object replaced mid-download, a range
//! that keeps failing.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use tokio::time::{Instant, Sleep};

use super::Sandbox;

/// A `Range: bytes=…` header as S3 reads it: one range, first-last, first- or -suffix.
/// S3 ignores a header it cannot parse (and a multi-range one) and serves the whole object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ByteRange {
    /// `bytes=first-last` (`last` inclusive) or `bytes=first-` (`last` = `None`).
    From { first: u64, last: Option<u64> },
    /// `bytes=-n`: the last `n` bytes.
    Suffix(u64),
}

impl ByteRange {
    /// Parses the header value, `None` when S3 would ignore it.
    pub(crate) fn parse(value: &str) -> Option<Self> {
        let spec = value.trim().strip_prefix("bytes=")?.trim();
        if spec.contains(',') {
            return None;
        }
        let (first, last) = spec.split_once('-')?;
        let number = |text: &str| -> Option<u64> {
            let text = text.trim();
            (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
                .then(|| text.parse().ok())
                .flatten()
        };
        if first.trim().is_empty() {
            return number(last).map(ByteRange::Suffix);
        }
        let first = number(first)?;
        let last = if last.trim().is_empty() {
            None
        } else {
            Some(number(last)?)
        };
        if last.is_some_and(|last| last < first) {
            // RFC 9110: syntactically invalid, so ignored.
            return None;
        }
        Some(ByteRange::From { first, last })
    }

    /// The inclusive byte span of an object of `size` bytes, `None` when unsatisfiable (416).
    pub(crate) fn resolve(self, size: u64) -> Option<(u64, u64)> {
        match self {
            ByteRange::From { first, last } => {
                (first < size).then(|| (first, last.unwrap_or(u64::MAX).min(size - 1)))
            }
            ByteRange::Suffix(0) => None,
            ByteRange::Suffix(n) => (size > 0).then(|| (size.saturating_sub(n), size - 1)),
        }
    }
}

/// One GET or HEAD as the S3 stand-in saw it, with its conditional and range headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Read {
    pub method: String,
    pub key: String,
    /// The `Range` header as sent.
    pub range: Option<String>,
    /// The `If-Match` header as sent.
    pub if_match: Option<String>,
    pub status: u16,
}

/// An object that is replaced after some GETs of it were served.
#[derive(Debug, Clone)]
pub(crate) struct PendingReplacement {
    pub(crate) bucket: String,
    pub(crate) key: String,
    pub(crate) after_gets: u32,
    pub(crate) body: Vec<u8>,
}

/// The S3 read faults waiting to happen, and the log of reads.
#[derive(Debug, Default)]
pub(crate) struct S3ReadState {
    /// Ranged GETs still to be answered with half the bytes asked for.
    pub(crate) short_ranges_remaining: u32,
    /// Ranged GETs starting at this offset answer 500 InternalError, every time.
    pub(crate) failing_range_start: Option<u64>,
    pub(crate) replacement: Option<PendingReplacement>,
    pub(crate) reads: Vec<S3Read>,
}

impl Sandbox {
    /// The next `n` ranged GETs answer 206 with a `Content-Range` naming the range asked for
    /// but only half its bytes (and a `Content-Length` to match): what a broken proxy does.
    pub fn short_range_next(&self, n: u32) {
        self.inner.state().s3_reads.short_ranges_remaining = n;
    }

    /// From now on every ranged GET whose range starts at byte `start` answers HTTP 500
    /// `InternalError`.
    pub fn fail_ranges_starting_at(&self, start: u64) {
        self.inner.state().s3_reads.failing_range_start = Some(start);
    }

    /// After `after_gets` more GETs of `bucket/key` have been answered, the object is replaced
    /// by `body` (a new ETag), as if the pipeline overwrote it mid-download.
    pub fn replace_object_after_gets(&self, bucket: &str, key: &str, after_gets: u32, body: &[u8]) {
        self.inner.state().s3_reads.replacement = Some(PendingReplacement {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            after_gets,
            body: body.to_vec(),
        });
    }

    /// Every object GET and HEAD so far, in order.
    pub fn s3_reads(&self) -> Vec<S3Read> {
        self.inner.state().s3_reads.reads.clone()
    }

    /// Counts an answered GET of `bucket/key` towards a pending replacement and carries it out
    /// when due.
    pub(crate) fn count_get(&self, bucket: &str, key: &str) {
        let due = {
            let mut state = self.inner.state();
            match &mut state.s3_reads.replacement {
                Some(pending) if pending.bucket == bucket && pending.key == key => {
                    pending.after_gets = pending.after_gets.saturating_sub(1);
                    if pending.after_gets == 0 {
                        state.s3_reads.replacement.take()
                    } else {
                        None
                    }
                }
                _ => None,
            }
        };
        if let Some(pending) = due
            && let Err(error) = self.put_object(&pending.bucket, &pending.key, &pending.body)
        {
            tracing::warn!(%error, "could not replace a sandbox object");
        }
    }

    /// Whether this ranged GET is to be answered short (and counts it).
    pub(crate) fn take_short_range(&self) -> bool {
        let mut state = self.inner.state();
        let reads = &mut state.s3_reads;
        if reads.short_ranges_remaining > 0 {
            reads.short_ranges_remaining -= 1;
            true
        } else {
            false
        }
    }

    pub(crate) fn range_fails(&self, first: u64) -> bool {
        self.inner.state().s3_reads.failing_range_start == Some(first)
    }
}

/// A body stream held to `rate` bytes per second, measured from its first byte.
pub(crate) struct RateCapped<S> {
    inner: S,
    rate: u64,
    started: Option<Instant>,
    sent: u64,
    sleep: Option<Pin<Box<Sleep>>>,
    held: Option<Bytes>,
}

impl<S> RateCapped<S> {
    pub(crate) fn new(inner: S, rate: u64) -> Self {
        Self {
            inner,
            rate: rate.max(1),
            started: None,
            sent: 0,
            sleep: None,
            held: None,
        }
    }
}

impl<S, E> Stream for RateCapped<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    type Item = Result<Bytes, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(sleep) = this.sleep.as_mut() {
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.sleep = None;
            if let Some(chunk) = this.held.take() {
                return Poll::Ready(Some(Ok(chunk)));
            }
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                let started = *this.started.get_or_insert_with(Instant::now);
                this.sent += chunk.len() as u64;
                // The chunk may leave once the bytes sent so far fit the rate.
                let due = started + Duration::from_secs_f64(this.sent as f64 / this.rate as f64);
                if due <= Instant::now() {
                    return Poll::Ready(Some(Ok(chunk)));
                }
                let mut sleep = Box::pin(tokio::time::sleep_until(due));
                if sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Some(Ok(chunk)));
                }
                this.sleep = Some(sleep);
                this.held = Some(chunk);
                Poll::Pending
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_as_s3_reads_them() {
        assert_eq!(
            ByteRange::parse("bytes=0-99"),
            Some(ByteRange::From {
                first: 0,
                last: Some(99)
            })
        );
        assert_eq!(
            ByteRange::parse("bytes=5-"),
            Some(ByteRange::From {
                first: 5,
                last: None
            })
        );
        assert_eq!(ByteRange::parse("bytes=-10"), Some(ByteRange::Suffix(10)));
        for ignored in [
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=9-1",
            "bytes=a-b",
            "bytes=-",
        ] {
            assert_eq!(ByteRange::parse(ignored), None, "{ignored}");
        }
    }

    #[test]
    fn ranges_resolve_against_the_object_size() {
        let range = |text| ByteRange::parse(text).unwrap();
        assert_eq!(range("bytes=0-99").resolve(10), Some((0, 9)));
        assert_eq!(range("bytes=3-").resolve(10), Some((3, 9)));
        assert_eq!(range("bytes=-4").resolve(10), Some((6, 9)));
        assert_eq!(range("bytes=-40").resolve(10), Some((0, 9)));
        assert_eq!(range("bytes=10-20").resolve(10), None);
        assert_eq!(range("bytes=0-0").resolve(0), None);
    }
}
