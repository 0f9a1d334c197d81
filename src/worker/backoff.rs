//! Delays between polls: growing while idle, growing faster on errors, always jittered.
//!
//! Policy. Idle: the first empty poll waits `min`, each further one doubles the wait up to `max`,
//! each wait jittered by ±20 % so a fleet started together does not poll in lock-step. While the
//! worker is busy the loop asks for [`Backoff::shortest_delay`] instead, which stays at `min`.
//! Errors (transport, 5xx, rejections): "equal jitter" exponential backoff — half the doubled
//! delay fixed, half random — from `base` up to `max`, which spreads retries while still
//! guaranteeing a minimum pause. Throttling: "full jitter" — anywhere between zero and the
//! doubled delay — from a short `base` to a cap of a few seconds. A throttle says "not this
//! instant", not "not for a minute": the allowed rate is shared by the fleet, and every moment
//! no worker asks is capacity lost, so throttled callers come back soon and at random times
//! instead of sleeping long and returning together. Any successful poll resets all of them.

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
    /// Uniformly random between zero and the nominal delay.
    Full,
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

    /// The throttling policy: from `base` to `max`, full jitter.
    pub fn throttled(base: Duration, max: Duration) -> Self {
        Self::new(base, max, Jitter::Full)
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
        self.jittered(nominal)
    }

    /// The shortest delay of the policy, jittered, without growing the next one: the pace of a
    /// worker that is busy and expects more jobs soon.
    pub fn shortest_delay(&self) -> Duration {
        self.jittered(self.min)
    }

    fn jittered(&self, nominal: Duration) -> Duration {
        let millis = u64::try_from(nominal.as_millis()).unwrap_or(u64::MAX);
        let jittered = match self.jitter {
            Jitter::Proportional => {
                let spread = millis / 5;
                millis - spread + random_up_to(2 * spread)
            }
            Jitter::Equal => millis / 2 + random_up_to(millis - millis / 2),
            Jitter::Full => random_up_to(millis),
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
    fn the_shortest_delay_stays_at_the_minimum_and_does_not_grow_the_next_one() {
        let mut backoff = Backoff::idle(Duration::from_secs(1), Duration::from_secs(10));
        for _ in 0..20 {
            let delay = backoff.shortest_delay();
            assert!(
                (Duration::from_millis(800)..=Duration::from_millis(1200)).contains(&delay),
                "{delay:?}"
            );
        }
        assert!(backoff.next_delay() <= Duration::from_millis(1200));
    }

    #[test]
    fn throttle_delays_are_anywhere_below_the_doubled_delay_and_capped() {
        let mut backoff = Backoff::throttled(Duration::from_millis(200), Duration::from_secs(2));
        for exponent in 0..10u32 {
            let nominal = (200u64 << exponent).min(2_000);
            let delay = backoff.next_delay().as_millis() as u64;
            assert!(delay <= nominal, "{delay} vs {nominal}");
        }
        // Full jitter: over many draws the delays spread across the range, not near the top.
        let mut capped = Backoff::throttled(Duration::from_secs(2), Duration::from_secs(2));
        let draws: Vec<u64> = (0..200)
            .map(|_| capped.next_delay().as_millis() as u64)
            .collect();
        assert!(draws.iter().any(|&delay| delay < 500), "{draws:?}");
        assert!(draws.iter().any(|&delay| delay > 1500), "{draws:?}");
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
