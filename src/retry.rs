//! Retry and pacing policies, stated once as data, and the jittered backoff that carries them.
//!
//! Every layer that repeats a call takes its [`RetryPolicy`] from [`POLICIES`]; the table in
//! `RELIABILITY.md` is checked against that list by a test, so the documentation cannot drift.
//! A call is retried by exactly one layer, which also logs each retry once: where an SDK retries
//! inside, the outer layer does not (or the SDK's retries are turned off for that call).
//!
//! Jitter. Idle pacing: ±20 % around the nominal delay, so a fleet started together does not
//! poll in lock-step. Errors (transport, 5xx, rejections): "equal jitter" — half the doubled
//! delay fixed, half random — which spreads retries while still guaranteeing a minimum pause.
//! Throttled polls: "full jitter" — anywhere between zero and the doubled delay — from a short
//! base to a cap well under a second. A throttle says "not this instant", not "not for a
//! minute": the allowed rate is shared by the fleet, and every moment no worker asks is capacity
//! lost, so throttled callers come back soon and at random times instead of sleeping long and
//! returning together. Throttled job calls (acknowledge, details, results) wait in their
//! source's line ([`crate::worker::lane`]): one call at a time per worker and source, its head
//! retried on a short equal-jitter pace, so a worker's calls do not all hammer a throttled
//! account at once and the first in line is the first served.

use std::time::Duration;

/// How one kind of call is retried: the budget of attempts and time, and the pacing between
/// attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The calls it governs, as `RELIABILITY.md` names them.
    pub calls: &'static str,
    /// The one layer that retries these calls (and logs each retry).
    pub layer: &'static str,
    /// Attempts, the first included.
    pub attempts: u32,
    /// No new attempt starts after this long since the first; `None`: attempts alone bound it.
    pub deadline: Option<Duration>,
    /// Pacing after a transient failure that is not throttling.
    pub errors: Pace,
    /// Pacing after throttling, where it differs from `errors`. Such a policy retries throttled
    /// attempts until its deadline and counts only the other failures against `attempts`: a
    /// throttle says "not this instant", and under a fleet's sustained throttling a dozen in a
    /// row is a matter of time (about one call in 2,000 at half the calls throttled).
    pub throttled: Option<Pace>,
}

/// A doubling delay from `base` to `cap` with the given jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    pub base: Duration,
    pub cap: Duration,
    pub jitter: Jitter,
}

impl Pace {
    pub const fn new(base: Duration, cap: Duration, jitter: Jitter) -> Self {
        Self { base, cap, jitter }
    }

    pub fn backoff(&self) -> Backoff {
        Backoff::new(self.base, self.cap, self.jitter)
    }
}

impl RetryPolicy {
    /// The pacing of throttled attempts.
    pub fn throttle_pace(&self) -> Pace {
        self.throttled.unwrap_or(self.errors)
    }

    /// Whether another attempt may start after a throttled one, `elapsed` since the first:
    /// with its own throttle pace, until the deadline; otherwise as any failed attempt.
    pub fn allows_another_throttled(&self, attempt: u32, elapsed: Duration) -> bool {
        match (self.throttled, self.deadline) {
            (Some(_), Some(deadline)) => elapsed < deadline,
            _ => self.allows_another(attempt, elapsed),
        }
    }

    /// Whether another attempt may start: `attempt` attempts were made, `elapsed` since the first.
    pub fn allows_another(&self, attempt: u32, elapsed: Duration) -> bool {
        attempt < self.attempts && self.deadline.is_none_or(|deadline| elapsed < deadline)
    }
}

const fn millis(value: u64) -> Duration {
    Duration::from_millis(value)
}

const fn seconds(value: u64) -> Duration {
    Duration::from_secs(value)
}

/// Registry requests: 408, 429, 5xx (502, 503, 504, 500), connection failures and resets,
/// timeouts. `Retry-After` is honoured up to the cap. Streamed bodies are reopened for each
/// attempt.
pub const REGISTRY_REQUEST: RetryPolicy = RetryPolicy {
    calls: "registry requests",
    layer: "registry client",
    attempts: 4,
    deadline: None,
    errors: Pace::new(millis(500), seconds(8), Jitter::Equal),
    throttled: None,
};

/// `AcknowledgeJob` and `GetJobDetails`, retried by the source's line in the worker
/// ([`crate::worker::lane`]); the SDK makes one attempt. While the source throttles, its calls
/// go one at a time and the head of the line is retried soon (25 ms, doubling to 200 ms), until
/// the deadline: a claimed job whose acknowledgement is given up on is lost until the action
/// times out.
pub const JOB_CALL: RetryPolicy = RetryPolicy {
    calls: "AcknowledgeJob, GetJobDetails",
    layer: "worker (the source's line)",
    attempts: 12,
    deadline: Some(seconds(60)),
    errors: Pace::new(millis(100), seconds(1), Jitter::Full),
    throttled: Some(THROTTLED_JOB_CALL),
};

/// The pace at the head of a throttled source's line: soon enough that the fleet's probes
/// cover the rate's refills (a job API saves up a fraction of a second's allowance), slow
/// enough that each worker throws at most 5–80 requests a second at a throttled source.
const THROTTLED_JOB_CALL: Pace = Pace::new(millis(25), millis(200), Jitter::Equal);

/// One `PollForJobs` inside the AWS SDK; the worker loop then paces the next poll itself
/// (`--poll-*`, `--throttle-*` and `--error-*` flags), so a poll's own budget stays small.
pub const POLL_FOR_JOBS: RetryPolicy = RetryPolicy {
    calls: "PollForJobs",
    layer: "AWS SDK",
    attempts: 3,
    deadline: None,
    errors: Pace::new(millis(100), seconds(1), Jitter::Full),
    throttled: None,
};

/// `PutJobSuccessResult` / `PutJobFailureResult`: a finished job whose result is lost hangs its
/// pipeline until the action times out, so delivery keeps trying longest. The SDK's own
/// retries are off for these calls; the source's line in the worker is the one layer.
pub const RESULT_CALL: RetryPolicy = RetryPolicy {
    calls: "PutJobSuccessResult, PutJobFailureResult",
    layer: "worker (the source's line)",
    attempts: 12,
    deadline: Some(seconds(60)),
    errors: Pace::new(millis(500), seconds(10), Jitter::Equal),
    throttled: Some(THROTTLED_JOB_CALL),
};

/// S3 `GetObject` / `PutObject` with the job's credentials: the SDK's standard policy.
pub const S3_OBJECT: RetryPolicy = RetryPolicy {
    calls: "S3 GetObject, PutObject",
    layer: "AWS SDK",
    attempts: 3,
    deadline: None,
    errors: Pace::new(seconds(1), seconds(20), Jitter::Full),
    throttled: None,
};

/// One range of a parallel artifact download (connection failures, timeouts, 5xx, 429, a body
/// cut short), retried on its own with fresh job credentials; the SDK's retries are off for
/// these calls. A 412 (the object changed) or a range answered wrongly is never retried.
pub const S3_RANGE: RetryPolicy = RetryPolicy {
    calls: "S3 ranged GetObject (one range of a download)",
    layer: "artifact download",
    attempts: 5,
    deadline: Some(seconds(120)),
    errors: Pace::new(millis(200), seconds(5), Jitter::Equal),
    throttled: None,
};

/// One part of a multipart deploy: asking for its pre-signed URL and `PUT`ting its bytes there
/// are one attempt, so a part whose URL expired (403) is tried again with a fresh URL, as
/// jfrog-client-go does. Transport errors, 408/429/5xx and 403 are retried; any other refusal
/// fails the part (and aborts the upload) at once.
pub const MULTIPART_PART: RetryPolicy = RetryPolicy {
    calls: "multipart deploy part (part URL + PUT)",
    layer: "registry client",
    attempts: 4,
    deadline: None,
    errors: Pace::new(millis(500), seconds(8), Jitter::Equal),
    throttled: None,
};

/// Polling `status` after a multipart `complete` while the registry assembles the parts: soon
/// at first, doubling to every 2 s, for at most an hour. jfrog-client-go polls every 5 s from
/// the start; a 1 GiB file at 5 × 100 MB/s is sent in about 2 s, so a 5 s wait would cost more
/// than the parts saved, and the doubling keeps the wait within about the assembly's own time.
pub const MULTIPART_STATUS: RetryPolicy = RetryPolicy {
    calls: "multipart deploy status polls",
    layer: "registry client",
    attempts: 2000,
    deadline: Some(seconds(3600)),
    errors: Pace::new(millis(50), seconds(2), Jitter::Proportional),
    throttled: None,
};

/// Every policy, in the order `RELIABILITY.md` lists them.
pub const POLICIES: [RetryPolicy; 8] = [
    REGISTRY_REQUEST,
    POLL_FOR_JOBS,
    JOB_CALL,
    RESULT_CALL,
    S3_OBJECT,
    S3_RANGE,
    MULTIPART_PART,
    MULTIPART_STATUS,
];

/// The retry table as `RELIABILITY.md` shows it (Markdown), generated from [`POLICIES`].
pub fn policy_table() -> String {
    let mut table = String::from(
        "| calls | retried by | attempts | deadline | transient errors | throttling |\n\
         |---|---|---|---|---|---|\n",
    );
    for policy in POLICIES {
        let throttled = policy.throttled.map_or_else(
            || "as errors".to_owned(),
            |pace| format!("{}, until the deadline", describe(&pace)),
        );
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            policy.calls,
            policy.layer,
            policy.attempts,
            policy.deadline.map_or_else(
                || "—".to_owned(),
                |deadline| format!("{} s", deadline.as_secs())
            ),
            describe(&policy.errors),
            throttled,
        ));
    }
    table
}

fn describe(pace: &Pace) -> String {
    let jitter = match pace.jitter {
        Jitter::Proportional => "±20 % jitter",
        Jitter::Equal => "equal jitter",
        Jitter::Full => "full jitter",
        Jitter::Later => "0–20 % later",
    };
    format!(
        "{} → {}, {jitter}",
        seconds_text(pace.base),
        seconds_text(pace.cap)
    )
}

fn seconds_text(duration: Duration) -> String {
    let text = format!("{:.1}", duration.as_secs_f64());
    format!("{} s", text.trim_end_matches(".0"))
}

/// An exponentially growing, jittered delay.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
    jitter: Jitter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// ±20 % around the nominal delay.
    Proportional,
    /// Half fixed, half uniformly random.
    Equal,
    /// Uniformly random between zero and the nominal delay.
    Full,
    /// The nominal delay, or up to 20 % later: spread out, yet never sooner than asked (a pace
    /// that promises at most one request per nominal delay).
    Later,
}

impl Backoff {
    /// The idle policy: from `min` to `max`, ±20 % jitter.
    pub fn idle(min: Duration, max: Duration) -> Self {
        Self::new(min, max, Jitter::Proportional)
    }

    /// The safety-net policy of a worker woken by a queue: from `min` to `max`, each wait up to
    /// 20 % longer, never shorter, so idle polls come at most once per `max`.
    pub fn safety_net(min: Duration, max: Duration) -> Self {
        Self::new(min, max, Jitter::Later)
    }

    /// The error policy: from `base` to `max`, equal jitter.
    pub fn errors(base: Duration, max: Duration) -> Self {
        Self::new(base, max, Jitter::Equal)
    }

    /// The throttling policy: from `base` to `max`, full jitter.
    pub fn throttled(base: Duration, max: Duration) -> Self {
        Self::new(base, max, Jitter::Full)
    }

    pub fn new(min: Duration, max: Duration, jitter: Jitter) -> Self {
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
            Jitter::Later => millis + random_up_to(millis / 5),
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
    fn safety_net_delays_are_never_shorter_than_the_maximum_once_grown() {
        let mut backoff = Backoff::safety_net(Duration::from_secs(1), Duration::from_secs(60));
        let delays: Vec<Duration> = (0..40).map(|_| backoff.next_delay()).collect();
        for delay in &delays[6..] {
            assert!(
                (Duration::from_secs(60)..=Duration::from_secs(72)).contains(delay),
                "{delay:?}"
            );
        }
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

#[cfg(test)]
mod policy_table_tests {
    use super::*;

    /// `RELIABILITY.md` shows the table generated from [`POLICIES`]; regenerate it with
    /// `UPDATE_RELIABILITY=1 cargo test --lib retry` after changing a policy.
    #[test]
    fn reliability_md_states_the_retry_policies_the_code_uses() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("RELIABILITY.md");
        let text = std::fs::read_to_string(&path).unwrap();
        let (begin, end) = (
            "<!-- retry-policies:begin -->\n",
            "<!-- retry-policies:end -->",
        );
        let start = text
            .find(begin)
            .expect("RELIABILITY.md lacks the retry-policies markers")
            + begin.len();
        let stop = text[start..].find(end).expect("no end marker") + start;
        let table = policy_table();
        if std::env::var_os("UPDATE_RELIABILITY").is_some() {
            let updated = format!("{}{}{}", &text[..start], table, &text[stop..]);
            std::fs::write(&path, updated).unwrap();
            return;
        }
        assert_eq!(
            &text[start..stop],
            table,
            "RELIABILITY.md's retry table differs from src/retry.rs; run \
             UPDATE_RELIABILITY=1 cargo test --lib retry"
        );
    }

    #[test]
    fn a_policy_stops_at_its_attempts_or_its_deadline() {
        assert!(RESULT_CALL.allows_another(11, Duration::from_secs(59)));
        assert!(!RESULT_CALL.allows_another(12, Duration::ZERO));
        assert!(!RESULT_CALL.allows_another(2, Duration::from_secs(60)));
        assert!(REGISTRY_REQUEST.allows_another(3, Duration::from_secs(3600)));
        assert!(!REGISTRY_REQUEST.allows_another(4, Duration::ZERO));
    }

    #[test]
    fn throttled_result_calls_go_on_until_the_deadline_and_others_stop_at_their_attempts() {
        assert!(RESULT_CALL.allows_another_throttled(40, Duration::from_secs(59)));
        assert!(!RESULT_CALL.allows_another_throttled(2, Duration::from_secs(60)));
        assert!(JOB_CALL.allows_another_throttled(40, Duration::from_secs(59)));
        assert!(!JOB_CALL.allows_another(12, Duration::ZERO));
        assert!(!S3_RANGE.allows_another_throttled(5, Duration::ZERO));
    }
}
