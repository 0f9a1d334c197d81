//! When the loop polls next: every pacing decision of the loop, as a small pure type that the
//! loop feeds with what happened and asks what to do. It never calls the job API and reads only
//! the clock it is handed, so it is tested on its own under a paused clock.
//!
//! The rules, in the order the loop applies them:
//! - Nothing in flight: poll at once.
//! - Some slots free while jobs still run: gather first. Poll when every slot is free or
//!   `gather_delay` after the first one freed, whichever comes first, and then ask for all free
//!   slots. One poll then claims a batch instead of one job per freed slot.
//! - An empty poll while busy (jobs in flight, or jobs received within `busy_window`): wait
//!   `poll_min_interval` (jittered), so the next job is picked up within about that long. Not
//!   while a wake-up queue answers: it tells the worker of every job queued, so the short pace
//!   would only spend requests (the idle backoff still starts at the minimum, in case an event
//!   came before its job could be polled).
//! - An empty poll once the busy window has passed: the idle backoff, doubling up to
//!   `poll_max_interval`, so an idle worker's request rate stays bounded.
//! - Throttled: a short full-jitter backoff (`throttle_base_interval` to
//!   `throttle_max_interval`). Transport errors and rejections: the slower error backoff.
//!
//! A poll that returns jobs resets every backoff.

use std::time::Duration;

use tokio::time::Instant;

use crate::retry::Backoff;
use crate::worker::WorkerSettings;

/// What a poll came back with, as far as pacing cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollResult {
    /// At least one job.
    Jobs,
    Empty,
    Throttled,
    /// Unreachable, 5xx, or rejected.
    Failed,
}

/// The loop's pacing state.
#[derive(Debug)]
pub struct Pacer {
    idle: Backoff,
    poll_min_interval: Duration,
    errors: Backoff,
    throttles: Backoff,
    busy_window: Duration,
    gather_delay: Duration,
    /// A wake-up queue answers: the idle pace is only a safety net.
    safety_net: bool,
    /// When a poll was last throttled.
    last_throttled: Option<Instant>,
    /// When the last poll returned jobs: the start of the busy window.
    last_received: Option<Instant>,
    /// While some slots are free and jobs still run: when to stop gathering and poll. Cleared
    /// when a poll returns jobs, so the next partly free state gathers afresh; kept (in the
    /// past) after empty or failed polls, whose own wait already did the gathering.
    gather_until: Option<Instant>,
}

impl Pacer {
    pub fn new(settings: &WorkerSettings) -> Self {
        Self {
            idle: Backoff::idle(settings.poll_min_interval, settings.poll_max_interval),
            poll_min_interval: settings.poll_min_interval,
            errors: Backoff::errors(settings.error_base_interval, settings.error_max_interval),
            throttles: Backoff::throttled(
                settings.throttle_base_interval,
                settings.throttle_max_interval,
            ),
            busy_window: settings.busy_window,
            // Never more than half of the minimum interval: gathering must not cost more
            // latency than an empty poll would.
            gather_delay: settings.gather_delay.min(settings.poll_min_interval / 2),
            safety_net: false,
            last_throttled: None,
            last_received: None,
            gather_until: None,
        }
    }

    /// Changes the idle pace (a wake-up queue came up or went down); the idle backoff starts
    /// again from the minimum. As a `safety_net` (a queue wakes the worker for each job) the
    /// waits are never shorter than `max`, only up to 20 % longer, so an idle source costs at
    /// most one poll per `max`; otherwise ±20 % around it, as without a queue.
    pub fn set_idle_pace(&mut self, max: Duration, safety_net: bool) {
        let max = max.max(self.poll_min_interval);
        self.safety_net = safety_net;
        self.idle = if safety_net {
            Backoff::safety_net(self.poll_min_interval, max)
        } else {
            Backoff::idle(self.poll_min_interval, max)
        };
    }

    /// Whether to wait before polling, and until when: `Some` while jobs are in flight and a
    /// finishing job would let the next poll ask for more.
    pub fn gather_until(
        &mut self,
        now: Instant,
        in_flight: usize,
        more_would_help: bool,
    ) -> Option<Instant> {
        if in_flight == 0 || !more_would_help {
            return None;
        }
        let deadline = *self
            .gather_until
            .get_or_insert_with(|| now + self.gather_delay);
        (now < deadline).then_some(deadline)
    }

    /// Whether a poll was throttled within the busy window: the source's request rate is
    /// scarce, so claiming more jobs per poll is worth a short wait.
    pub fn throttled_recently(&self, now: Instant) -> bool {
        self.last_throttled
            .is_some_and(|at| now.saturating_duration_since(at) < self.busy_window)
    }

    /// Records a poll's result; returns how long to wait before the next poll.
    pub fn after_poll(&mut self, now: Instant, result: PollResult, in_flight: usize) -> Duration {
        match result {
            PollResult::Jobs => {
                self.idle.reset();
                self.errors.reset();
                self.throttles.reset();
                self.last_received = Some(now);
                self.gather_until = None;
                Duration::ZERO
            }
            PollResult::Empty => {
                self.errors.reset();
                self.throttles.reset();
                let busy = !self.safety_net
                    && (in_flight > 0
                        || self.last_received.is_some_and(|at| {
                            now.saturating_duration_since(at) < self.busy_window
                        }));
                if busy {
                    // More work is likely soon: keep the short pace, and do not grow the idle
                    // backoff, so once the window has passed it starts from the minimum.
                    self.idle.shortest_delay()
                } else {
                    self.idle.next_delay()
                }
            }
            // Pace, do not sleep: the allowed rate is there to be used soon.
            PollResult::Throttled => {
                self.last_throttled = Some(now);
                self.throttles.next_delay()
            }
            PollResult::Failed => self.errors.next_delay(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> WorkerSettings {
        WorkerSettings {
            poll_min_interval: Duration::from_secs(1),
            poll_max_interval: Duration::from_secs(10),
            busy_window: Duration::from_secs(60),
            gather_delay: Duration::from_millis(500),
            ..WorkerSettings::default()
        }
    }

    fn within(delay: Duration, low_ms: u64, high_ms: u64) -> bool {
        (Duration::from_millis(low_ms)..=Duration::from_millis(high_ms)).contains(&delay)
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_worker_backs_off_to_the_maximum_and_a_job_resets_it() {
        let mut pacer = Pacer::new(&settings());
        let nominal = [1000, 2000, 4000, 8000, 10_000, 10_000];
        for expected in nominal {
            let delay = pacer.after_poll(Instant::now(), PollResult::Empty, 0);
            assert!(
                within(delay, expected * 8 / 10, expected * 12 / 10),
                "{delay:?}"
            );
            tokio::time::advance(delay).await;
        }
        assert_eq!(
            pacer.after_poll(Instant::now(), PollResult::Jobs, 1),
            Duration::ZERO
        );
        let delay = pacer.after_poll(Instant::now(), PollResult::Empty, 0);
        assert!(within(delay, 800, 1200), "{delay:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn empty_polls_keep_the_short_pace_for_the_busy_window_after_the_last_job() {
        let mut pacer = Pacer::new(&settings());
        pacer.after_poll(Instant::now(), PollResult::Jobs, 0);
        for _ in 0..50 {
            let delay = pacer.after_poll(Instant::now(), PollResult::Empty, 0);
            assert!(within(delay, 800, 1200), "{delay:?}");
            tokio::time::advance(delay).await;
        }
        tokio::time::advance(Duration::from_secs(60)).await;
        // The window has passed: the idle backoff starts again from the minimum and grows.
        let first = pacer.after_poll(Instant::now(), PollResult::Empty, 0);
        let second = pacer.after_poll(Instant::now(), PollResult::Empty, 0);
        assert!(within(first, 800, 1200), "{first:?}");
        assert!(within(second, 1600, 2400), "{second:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn with_a_wake_up_queue_empty_polls_back_off_at_once_and_never_poll_sooner_than_the_net()
    {
        let mut pacer = Pacer::new(&settings());
        pacer.set_idle_pace(Duration::from_secs(60), true);
        pacer.after_poll(Instant::now(), PollResult::Jobs, 2);
        let delays: Vec<Duration> = (0..10)
            .map(|_| pacer.after_poll(Instant::now(), PollResult::Empty, 2))
            .collect();
        // 1 s, 2 s, 4 s ... 60 s, though jobs are in flight and one was received just now.
        assert!(within(delays[0], 1000, 1200), "{delays:?}");
        assert!(within(delays[1], 2000, 2400), "{delays:?}");
        for delay in &delays[6..] {
            assert!(within(*delay, 60_000, 72_000), "{delays:?}");
        }
        // The queue failed: back to the busy window's short pace.
        pacer.set_idle_pace(Duration::from_secs(10), false);
        let delay = pacer.after_poll(Instant::now(), PollResult::Empty, 2);
        assert!(within(delay, 800, 1200), "{delay:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_is_paced_briefly_and_errors_back_off_longer() {
        let mut pacer = Pacer::new(&settings());
        for _ in 0..20 {
            let delay = pacer.after_poll(Instant::now(), PollResult::Throttled, 0);
            assert!(delay <= Duration::from_secs(2), "{delay:?}");
        }
        let mut errors = Vec::new();
        for _ in 0..8 {
            errors.push(pacer.after_poll(Instant::now(), PollResult::Failed, 0));
        }
        assert!(within(errors[0], 500, 1000), "{errors:?}");
        assert!(errors[7] >= Duration::from_secs(30), "{errors:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_partly_busy_worker_gathers_once_until_the_deadline() {
        let mut pacer = Pacer::new(&settings());
        let start = Instant::now();
        assert_eq!(
            pacer.gather_until(start, 0, true),
            None,
            "idle: poll at once"
        );
        assert_eq!(
            pacer.gather_until(start, 2, false),
            None,
            "nothing more to ask for"
        );
        let deadline = pacer.gather_until(start, 2, true).unwrap();
        assert_eq!(deadline - start, Duration::from_millis(500));
        tokio::time::advance(Duration::from_millis(200)).await;
        assert_eq!(pacer.gather_until(Instant::now(), 1, true), Some(deadline));
        tokio::time::advance(Duration::from_millis(300)).await;
        assert_eq!(
            pacer.gather_until(Instant::now(), 1, true),
            None,
            "deadline passed"
        );
        // An empty poll keeps the old deadline (the poll's own wait did the gathering) ...
        pacer.after_poll(Instant::now(), PollResult::Empty, 1);
        assert_eq!(pacer.gather_until(Instant::now(), 1, true), None);
        // ... while jobs start a new gathering round.
        pacer.after_poll(Instant::now(), PollResult::Jobs, 1);
        assert!(pacer.gather_until(Instant::now(), 1, true).is_some());
    }

    #[test]
    fn the_gather_delay_never_exceeds_half_the_minimum_interval() {
        let pacer = Pacer::new(&WorkerSettings {
            poll_min_interval: Duration::from_millis(200),
            gather_delay: Duration::from_secs(5),
            ..WorkerSettings::default()
        });
        assert_eq!(pacer.gather_delay, Duration::from_millis(100));
    }
}
