//! Whether the worker loop is alive, for `/healthz`: it polled successfully within the allowed
//! age, or every slot is busy (a full worker does not poll).

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The most of a poll error `/healthz` repeats: enough to name the cause on one line.
const MAX_POLL_ERROR_CHARS: usize = 300;

/// What the loop last did, as `/healthz` needs it.
#[derive(Debug)]
pub(super) struct Liveness {
    /// When the worker started: the health bound's start before the first poll.
    created: Instant,
    /// Milliseconds after `created` of the last successful `PollForJobs`, plus one (0 = never).
    last_poll_ok_ms: AtomicU64,
    /// Why the last poll failed; cleared by a successful poll.
    last_poll_error: Mutex<Option<String>>,
    /// Slots of the loop; while all are busy the loop does not poll and is still healthy.
    concurrency: AtomicU64,
    /// Set when the loop has returned.
    stopped: AtomicBool,
}

/// Why the worker counts as alive; its `Display` is the detail `/healthz` shows after `ok: `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthy {
    /// No poll yet, but the worker started within the allowed age.
    Starting,
    /// The last successful poll was `age` ago.
    Polled { age: Duration },
    /// Every slot has a job, so the loop waits instead of polling.
    AllSlotsBusy { in_flight: u64 },
}

impl fmt::Display for Healthy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Healthy::Starting => f.write_str("starting"),
            Healthy::Polled { age } => write!(f, "last successful poll {}s ago", age.as_secs()),
            Healthy::AllSlotsBusy { in_flight } => {
                write!(f, "all {in_flight} slots busy; not polling")
            }
        }
    }
}

/// Why the worker counts as dead; its message is what `/healthz` shows after `unhealthy: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unhealthy {
    #[error("the worker loop has stopped")]
    Stopped,

    #[error("no successful PollForJobs for {}s{}", .age.as_secs(), LastError(.last_error))]
    PollOverdue {
        age: Duration,
        /// The last poll's error as it was logged (the error itself is long gone).
        last_error: Option<String>,
    },

    #[error("no successful PollForJobs since start {}s ago{}", .age.as_secs(), LastError(.last_error))]
    NeverPolled {
        age: Duration,
        last_error: Option<String>,
    },
}

/// `; last error: …` when there was one.
struct LastError<'a>(&'a Option<String>);

impl fmt::Display for LastError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(error) => write!(f, "; last error: {error}"),
            None => Ok(()),
        }
    }
}

impl Liveness {
    pub(super) fn new() -> Self {
        Self {
            created: Instant::now(),
            last_poll_ok_ms: AtomicU64::new(0),
            last_poll_error: Mutex::new(None),
            concurrency: AtomicU64::new(1),
            stopped: AtomicBool::new(false),
        }
    }

    pub(super) fn poll_succeeded(&self) {
        let since_start = u64::try_from(self.created.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_poll_ok_ms
            .store(since_start.saturating_add(1), Ordering::Relaxed);
        *self.last_error() = None;
    }

    pub(super) fn poll_failed(&self, reason: &str) {
        *self.last_error() = Some(reason.chars().take(MAX_POLL_ERROR_CHARS).collect());
    }

    pub(super) fn set_concurrency(&self, concurrency: usize) {
        self.concurrency
            .store(concurrency.max(1) as u64, Ordering::Relaxed);
    }

    pub(super) fn set_stopped(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    /// Time since the last successful poll (since start when there was none yet), and whether
    /// there was one.
    pub(super) fn since_last_poll(&self) -> (Duration, bool) {
        let last = self.last_poll_ok_ms.load(Ordering::Relaxed);
        let now = self.created.elapsed();
        if last == 0 {
            (now, false)
        } else {
            (now.saturating_sub(Duration::from_millis(last - 1)), true)
        }
    }

    pub(super) fn health(
        &self,
        in_flight: u64,
        max_poll_age: Duration,
    ) -> Result<Healthy, Unhealthy> {
        if self.stopped.load(Ordering::Relaxed) {
            return Err(Unhealthy::Stopped);
        }
        let (age, ever) = self.since_last_poll();
        if age <= max_poll_age {
            return Ok(if ever {
                Healthy::Polled { age }
            } else {
                Healthy::Starting
            });
        }
        if in_flight >= self.concurrency.load(Ordering::Relaxed) {
            return Ok(Healthy::AllSlotsBusy { in_flight });
        }
        let last_error = self.last_error().clone();
        Err(if ever {
            Unhealthy::PollOverdue { age, last_error }
        } else {
            Unhealthy::NeverPolled { age, last_error }
        })
    }

    /// A panic elsewhere while holding the lock leaves at worst a stale reason, still worth
    /// showing.
    fn last_error(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.last_poll_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthz_reasons_read_as_before() {
        let liveness = Liveness::new();
        liveness.set_concurrency(2);
        assert_eq!(
            liveness.health(0, Duration::from_secs(60)),
            Ok(Healthy::Starting)
        );
        assert_eq!(
            liveness.health(2, Duration::ZERO).map(|h| h.to_string()),
            Ok("all 2 slots busy; not polling".to_owned())
        );
        let never = liveness.health(1, Duration::ZERO).unwrap_err();
        assert!(
            never
                .to_string()
                .starts_with("no successful PollForJobs since start "),
            "{never}"
        );
        assert!(!never.to_string().contains("last error"), "{never}");

        liveness.poll_succeeded();
        liveness.poll_failed("ThrottlingException: Rate exceeded");
        let overdue = liveness.health(0, Duration::ZERO).unwrap_err();
        assert!(
            matches!(&overdue, Unhealthy::PollOverdue { last_error: Some(e), .. } if e == "ThrottlingException: Rate exceeded"),
            "{overdue:?}"
        );
        assert!(
            overdue
                .to_string()
                .starts_with("no successful PollForJobs for ")
                && overdue
                    .to_string()
                    .ends_with("s; last error: ThrottlingException: Rate exceeded"),
            "{overdue}"
        );

        liveness.set_stopped();
        assert_eq!(
            liveness
                .health(0, Duration::from_secs(60))
                .unwrap_err()
                .to_string(),
            "the worker loop has stopped"
        );
    }

    #[test]
    fn a_long_poll_error_is_cut_to_one_readable_line() {
        let liveness = Liveness::new();
        liveness.poll_failed(&"é".repeat(1000));
        let Err(Unhealthy::NeverPolled {
            last_error: Some(error),
            ..
        }) = liveness.health(0, Duration::ZERO)
        else {
            panic!("a worker that never polled is unhealthy");
        };
        assert_eq!(error.chars().count(), MAX_POLL_ERROR_CHARS);
    }
}
