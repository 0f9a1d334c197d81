//! Delays between polls: growing while idle, growing faster on errors, always jittered.
//!
//! Policy. Idle: the first empty poll waits `min`, each further one doubles the wait up to `max`,
//! each wait jittered by ±20 % so a fleet started together does not poll in lock-step. Errors
//! (throttling, transport): "equal jitter" exponential backoff — half the doubled delay fixed,
//! half random — from `base` up to `max`, which spreads retries while still guaranteeing a
//! minimum pause. Any successful poll resets both.

use std::time::Duration;

/// An exponentially growing, jittered delay.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
    jitter: Jitter,
}

#[derive(Debug, Clone, Copy)]
enum Jitter {
    /// ±20 % around the nominal delay.
    Proportional,
    /// Half fixed, half uniformly random.
    Equal,
}

impl Backoff {
    /// The idle policy: from `min` to `max`, ±20 % jitter.
    pub fn idle(min: Duration, max: Duration) -> Self {
        Self::new(min, max, Jitter::Proportional)
    }

    /// The error policy: from `base` to `max`, equal jitter.
    pub fn errors(base: Duration, max: Duration) -> Self {
        Self::new(base, max, Jitter::Equal)
    }

    fn new(min: Duration, max: Duration, jitter: Jitter) -> Self {
        let max = max.max(min);
        Self {
            min,
            max,
            next: min,
            jitter,
        }
    }

    /// The delay to wait now; the one after it will be twice as long (up to the maximum).
    pub fn next_delay(&mut self) -> Duration {
        let nominal = self.next;
        self.next = (self.next * 2).min(self.max);
        let millis = u64::try_from(nominal.as_millis()).unwrap_or(u64::MAX);
        let jittered = match self.jitter {
            Jitter::Proportional => {
                let spread = millis / 5;
                millis - spread + random_up_to(2 * spread)
            }
            Jitter::Equal => millis / 2 + random_up_to(millis - millis / 2),
        };
        Duration::from_millis(jittered)
    }

    /// Back to the shortest delay, after a success.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

fn random_up_to(limit: u64) -> u64 {
    if limit == 0 {
        0
    } else {
        rand::random_range(0..=limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_delays_grow_to_the_maximum_within_the_jitter_band() {
        let mut backoff = Backoff::idle(Duration::from_secs(1), Duration::from_secs(5));
        let nominal = [1000, 2000, 4000, 5000, 5000];
        for expected in nominal {
            let delay = backoff.next_delay().as_millis() as u64;
            assert!(
                (expected * 8 / 10..=expected * 12 / 10).contains(&delay),
                "{delay} ms not within 20% of {expected} ms"
            );
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(1200));
    }

    #[test]
    fn error_delays_keep_at_least_half_of_the_nominal_delay() {
        let mut backoff = Backoff::errors(Duration::from_secs(1), Duration::from_secs(60));
        for exponent in 0..10u32 {
            let nominal = (1000u64 << exponent).min(60_000);
            let delay = backoff.next_delay().as_millis() as u64;
            assert!(
                (nominal / 2..=nominal).contains(&delay),
                "{delay} vs {nominal}"
            );
        }
    }
}
