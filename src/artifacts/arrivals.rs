//! Which bytes of an archive have arrived while its ranged download is still running.
//!
//! The download writes ranges out of order, several at once; extraction reads the archive in
//! order from another thread. [`Arrivals`] is what they share: the download marks each span it
//! has written, and a reader asks for the span that holds a byte, waiting until it arrives.
//! The download ends it one way or the other — [`Arrivals::finish`] (every byte is there) or
//! [`Arrivals::abandon`] (it failed or was cancelled; readers get an error instead of waiting
//! for bytes that will never come).

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// The shared record of arrived bytes.
#[derive(Debug, Default)]
pub struct Arrivals {
    state: Mutex<State>,
    /// Readers wait on this for bytes.
    changed: Condvar,
    /// Told when a reader starts waiting. Separate from `changed`: with several readers
    /// sharing one condition, each waiter's wake-up call would wake the others, and they
    /// would spin waking each other while the bytes are still on their way.
    reader_waiting: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Arrived spans, merged: start → end (exclusive).
    spans: BTreeMap<u64, u64>,
    ending: Option<Ending>,
    /// The byte a reader is waiting for, while it waits.
    waiting: Option<u64>,
    /// Readers waiting now.
    waiters: usize,
    /// Times a waiting reader was woken, for the tests.
    #[cfg(test)]
    wakeups: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Complete,
    Abandoned,
}

/// A read of bytes the download will no longer deliver.
#[derive(Debug, thiserror::Error)]
#[error("the download of the archive stopped before this byte arrived")]
pub struct DownloadStopped;

impl Arrivals {
    /// A record in which `spans` (`from..to`) have already arrived.
    pub fn with(spans: &[(u64, u64)]) -> Arc<Self> {
        let arrivals = Self::default();
        for &(from, to) in spans {
            arrivals.arrived(from, to);
        }
        Arc::new(arrivals)
    }

    /// A record of an archive that is already whole.
    pub fn whole() -> Arc<Self> {
        let arrivals = Self::default();
        arrivals.finish();
        Arc::new(arrivals)
    }

    /// Bytes `from..to` have been written where readers will look for them.
    pub fn arrived(&self, from: u64, to: u64) {
        if from >= to {
            return;
        }
        self.state().insert(from, to);
        self.changed.notify_all();
    }

    /// Every byte has arrived.
    pub fn finish(&self) {
        self.end(Ending::Complete);
    }

    /// No more bytes will arrive (the download failed or was dropped); a no-op once finished.
    pub fn abandon(&self) {
        self.end(Ending::Abandoned);
    }

    fn end(&self, ending: Ending) {
        let mut state = self.state();
        if state.ending.is_none() {
            state.ending = Some(ending);
        }
        drop(state);
        self.changed.notify_all();
    }

    /// Waits until byte `position` has arrived and returns the end (exclusive) of the arrived
    /// span holding it (`u64::MAX` once the download is complete); an error once it is
    /// abandoned.
    pub fn ready_from(&self, position: u64) -> io::Result<u64> {
        let mut state = self.state();
        loop {
            match state.ending {
                Some(Ending::Complete) => return Ok(u64::MAX),
                Some(Ending::Abandoned) => return Err(io::Error::other(DownloadStopped)),
                None => {}
            }
            if let Some(end) = state.end_at(position) {
                state.waiting = None;
                return Ok(end);
            }
            state.waiting = Some(position);
            state.waiters += 1;
            self.reader_waiting.notify_all();
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.waiters -= 1;
            #[cfg(test)]
            {
                state.wakeups += 1;
            }
        }
    }

    /// Waits (at most `timeout`) until `count` readers wait at once; whether they do.
    #[cfg(test)]
    pub(super) fn readers_wait(&self, count: usize, timeout: std::time::Duration) -> bool {
        let (state, _) = self
            .reader_waiting
            .wait_timeout_while(self.state(), timeout, |state| state.waiters < count)
            .unwrap_or_else(PoisonError::into_inner);
        state.waiters >= count
    }

    /// Waits (at most `timeout`) until a reader waits for a byte, and returns that byte.
    #[cfg(test)]
    pub(super) fn reader_waits(&self, timeout: std::time::Duration) -> Option<u64> {
        let (state, _) = self
            .reader_waiting
            .wait_timeout_while(self.state(), timeout, |state| state.waiting.is_none())
            .unwrap_or_else(PoisonError::into_inner);
        state.waiting
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    fn insert(&mut self, mut from: u64, mut to: u64) {
        if let Some((&start, &end)) = self.spans.range(..=from).next_back()
            && end >= from
        {
            from = start;
            to = to.max(end);
            self.spans.remove(&start);
        }
        while let Some((&start, &end)) = self.spans.range(from..).next() {
            if start > to {
                break;
            }
            to = to.max(end);
            self.spans.remove(&start);
        }
        self.spans.insert(from, to);
    }

    fn end_at(&self, position: u64) -> Option<u64> {
        self.spans
            .range(..=position)
            .next_back()
            .map(|(_, &end)| end)
            .filter(|&end| end > position)
    }
}

/// Abandons the record when dropped unless the download finished it first, so a reader never
/// waits on a download that was cancelled or panicked.
pub(super) struct AbandonOnDrop(pub(super) Arc<Arrivals>);

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        self.0.abandon();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn spans_merge_and_a_byte_is_ready_up_to_the_end_of_its_span() {
        let arrivals = Arrivals::with(&[(10, 20), (30, 40)]);
        assert_eq!(arrivals.state().end_at(15), Some(20));
        assert_eq!(arrivals.state().end_at(20), None);
        arrivals.arrived(20, 30);
        assert_eq!(arrivals.ready_from(10).unwrap(), 40);
        arrivals.arrived(0, 5);
        arrivals.arrived(5, 10);
        assert_eq!(arrivals.ready_from(0).unwrap(), 40);
        assert_eq!(arrivals.state().spans.len(), 1);
    }

    #[test]
    fn a_reader_waits_for_its_byte_and_is_released_by_its_arrival() {
        let arrivals = Arrivals::with(&[(0, 10)]);
        let reader = {
            let arrivals = arrivals.clone();
            std::thread::spawn(move || arrivals.ready_from(50))
        };
        assert_eq!(arrivals.reader_waits(Duration::from_secs(10)), Some(50));
        arrivals.arrived(40, 45);
        arrivals.arrived(45, 60);
        assert_eq!(reader.join().unwrap().unwrap(), 60);
    }

    #[test]
    fn readers_waiting_together_sleep_until_bytes_arrive() {
        // Extraction and a streamed upload both wait on one download. Each waiter used to
        // wake the others as it began waiting, so two of them spun (a core's worth of CPU)
        // until the bytes came.
        let arrivals = Arrivals::with(&[]);
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let arrivals = arrivals.clone();
                std::thread::spawn(move || arrivals.ready_from(100))
            })
            .collect();
        assert!(arrivals.readers_wait(2, Duration::from_secs(10)));
        // Watch them for a while: spinning readers wake thousands of times in it.
        let watched = std::time::Instant::now();
        let mut looks = 0;
        while watched.elapsed() < Duration::from_millis(100) && looks < 1_000_000 {
            std::thread::yield_now();
            looks += 1;
        }
        let idle_wakeups = arrivals.state().wakeups;
        arrivals.arrived(100, 200);
        for reader in readers {
            assert_eq!(reader.join().unwrap().unwrap(), 200);
        }
        // A condition variable may wake a waiter spuriously, but rarely.
        assert!(
            idle_wakeups <= 2,
            "{idle_wakeups} wake-ups with no byte arriving"
        );
    }

    #[test]
    fn an_abandoned_download_releases_its_readers_with_an_error() {
        let arrivals = Arrivals::with(&[]);
        let reader = {
            let arrivals = arrivals.clone();
            std::thread::spawn(move || arrivals.ready_from(0))
        };
        drop(AbandonOnDrop(arrivals.clone()));
        let error = reader.join().unwrap().unwrap_err();
        assert!(error.get_ref().unwrap().is::<DownloadStopped>(), "{error}");
    }

    #[test]
    fn a_finished_download_is_not_undone_by_its_guard() {
        let arrivals = Arrivals::with(&[]);
        arrivals.finish();
        drop(AbandonOnDrop(arrivals.clone()));
        assert_eq!(arrivals.ready_from(123).unwrap(), u64::MAX);
        assert_eq!(Arrivals::whole().ready_from(0).unwrap(), u64::MAX);
    }
}
