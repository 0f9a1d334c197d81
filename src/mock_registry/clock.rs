//! The mock's notion of "now": the system clock plus an offset that tests can
//! advance, so token expiry is checked against a real clock without sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use time::OffsetDateTime;

/// System UTC time shifted by a test-controlled offset (never negative).
#[derive(Debug, Default)]
pub(super) struct Clock {
    /// How far ahead of the system clock the mock runs, in milliseconds.
    offset_millis: AtomicI64,
}

impl Clock {
    /// The current time as the mock sees it.
    pub(super) fn now(&self) -> OffsetDateTime {
        let offset = self.offset_millis.load(Ordering::Relaxed);
        OffsetDateTime::now_utc() + time::Duration::milliseconds(offset)
    }

    /// Moves the mock's clock forward (saturating at about 292 million years).
    pub(super) fn advance(&self, by: Duration) {
        let millis = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        let _ = self
            .offset_millis
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |current| {
                Some(current.saturating_add(millis))
            });
    }
}

/// Formats a time the way Artifactory does: `2026-11-26T09:13:04.174Z` (UTC, milliseconds).
pub(super) fn artifactory_timestamp(at: OffsetDateTime) -> String {
    let utc = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        utc.year(),
        u8::from(utc.month()),
        utc.day(),
        utc.hour(),
        utc.minute(),
        utc.second(),
        utc.millisecond()
    )
}

/// Milliseconds since the Unix epoch, the form timestamps take in the metadata file.
pub(super) fn to_unix_millis(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// The inverse of [`to_unix_millis`]; `None` when outside `time`'s supported range.
pub(super) fn from_unix_millis(millis: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_artifactory() {
        let at = from_unix_millis(1_795_684_384_174).expect("in range");
        assert_eq!(artifactory_timestamp(at), "2026-11-26T09:13:04.174Z");
        assert_eq!(to_unix_millis(at), 1_795_684_384_174);
    }

    #[test]
    fn advancing_moves_now_forward() {
        let clock = Clock::default();
        let before = clock.now();
        clock.advance(Duration::from_secs(3600));
        assert!(clock.now() - before >= time::Duration::seconds(3600));
    }
}
