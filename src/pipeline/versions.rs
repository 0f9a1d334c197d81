//! Which versions of the action type one poll asks about, when a source serves several.
//!
//! Every version asked is one `PollForJobs` request, and the job API's request rate is shared
//! by the whole fleet (and, idle, is the cost the wake-up queue exists to cut). So a poll asks
//! as few versions as it can:
//!
//! - [`PollVersions::Only`]: a wake-up named the version whose job was queued; only it is asked.
//! - [`PollVersions::Next`] (the wake-up queue answers, so a queued job wakes its version
//!   anyway): one version — the one that handed out jobs last time it was asked while it keeps
//!   doing so, otherwise the one asked longest ago. Idle, each poll is one request.
//! - [`PollVersions::All`] (no queue to rely on): every version until one has jobs, the one
//!   that last handed out jobs first, so a busy version costs one request per poll.
//!
//! A version not asked for [`OVERDUE`] goes first in `Next` and `All` alike, so a version with
//! a steady backlog cannot starve another whose wake-up was lost.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// The longest a version goes unasked while another keeps handing out jobs.
pub const OVERDUE: Duration = Duration::from_secs(30);

/// What the loop asks one poll to cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollVersions<'a> {
    /// Every version, until one has jobs.
    All,
    /// One version, chosen by the rotation.
    Next,
    /// This version (named by a wake-up); one the source does not serve counts as `Next`.
    Only(&'a str),
}

/// The rotation of one source's versions: what was asked when, and which one has work.
#[derive(Debug)]
pub struct VersionRotation {
    versions: Vec<String>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// The version whose last poll handed out jobs.
    busy: Option<usize>,
    last_asked: Vec<Option<Instant>>,
}

impl VersionRotation {
    pub fn new(versions: Vec<String>) -> Self {
        let count = versions.len();
        Self {
            versions,
            state: Mutex::new(State {
                busy: None,
                last_asked: vec![None; count],
            }),
        }
    }

    /// The indices of the versions to ask, in order (stop at the first with jobs).
    pub fn plan(&self, choice: PollVersions<'_>, now: Instant) -> Vec<usize> {
        if let PollVersions::Only(version) = choice
            && let Some(index) = self.versions.iter().position(|v| v == version)
        {
            return vec![index];
        }
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        // Never asked counts as asked longest ago; ties keep the configured order.
        let mut order: Vec<usize> = (0..self.versions.len()).collect();
        order.sort_by_key(|&index| state.last_asked[index]);
        let overdue = |index: usize| {
            state.last_asked[index].is_none_or(|asked| now.duration_since(asked) >= OVERDUE)
        };
        if let Some(busy) = state.busy
            && !order.iter().any(|&index| index != busy && overdue(index))
        {
            order.retain(|&index| index != busy);
            order.insert(0, busy);
        }
        if choice != PollVersions::All {
            order.truncate(1);
        }
        order
    }

    /// Records that version `index` was asked and whether it handed out jobs.
    pub fn asked(&self, index: usize, had_jobs: bool, now: Instant) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.last_asked[index] = Some(now);
        if had_jobs {
            state.busy = Some(index);
        } else if state.busy == Some(index) {
            state.busy = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rotation() -> VersionRotation {
        VersionRotation::new(vec!["1".into(), "2".into()])
    }

    #[tokio::test(start_paused = true)]
    async fn idle_polls_with_a_queue_ask_one_version_each_in_turn() {
        let rotation = rotation();
        let mut asked = Vec::new();
        for _ in 0..4 {
            let now = Instant::now();
            let plan = rotation.plan(PollVersions::Next, now);
            assert_eq!(plan.len(), 1);
            rotation.asked(plan[0], false, now);
            asked.push(plan[0]);
            tokio::time::advance(Duration::from_secs(60)).await;
        }
        assert_eq!(asked, [0, 1, 0, 1]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_version_is_asked_alone_until_it_is_empty() {
        let rotation = rotation();
        let now = Instant::now();
        rotation.asked(0, false, now);
        rotation.asked(1, true, now);
        for choice in [PollVersions::All, PollVersions::Next] {
            assert_eq!(rotation.plan(choice, now)[0], 1, "{choice:?}");
        }
        assert_eq!(rotation.plan(PollVersions::All, now), [1, 0]);
        rotation.asked(1, false, now);
        assert_eq!(rotation.plan(PollVersions::Next, now), [0]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_backlog_does_not_starve_the_other_version() {
        let rotation = rotation();
        rotation.asked(0, false, Instant::now());
        let mut first_asks = Vec::new();
        for _ in 0..40 {
            let now = Instant::now();
            let plan = rotation.plan(PollVersions::Next, now);
            // Version 2 always has jobs; version 1 never does.
            rotation.asked(plan[0], plan[0] == 1, now);
            first_asks.push(plan[0]);
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        let of_version_1 = first_asks.iter().filter(|&&index| index == 0).count();
        // Once per `OVERDUE` (30 s) over 40 s, no more.
        assert_eq!(of_version_1, 1, "{first_asks:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_wake_up_asks_the_version_it_names_and_only_that() {
        let rotation = rotation();
        let now = Instant::now();
        rotation.asked(0, true, now);
        rotation.asked(1, false, now);
        assert_eq!(rotation.plan(PollVersions::Only("2"), now), [1]);
        assert_eq!(rotation.plan(PollVersions::Only("9"), now), [0]);
    }
}
