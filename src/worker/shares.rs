//! Fair shares: which source the loop polls next, and for how many jobs, when one worker serves
//! several sources (account/region pairs). A pure function of what the loop knows, tested on its
//! own under a paused clock.
//!
//! The rule, applied whenever a slot is free:
//! - A source is *due* when its own pacing wait ([`super::pacing::Pacer`]) has passed, or a
//!   wake-up message named it. Only due sources are polled.
//! - A source is *active* when it is due or has jobs in flight. The fair share of each active
//!   source is the concurrency divided among the active sources (rounded up).
//! - The free slot goes to the due source with the fewest jobs in flight; ties go to the one
//!   polled least recently, so equal sources take turns.
//! - It asks for as many jobs as it lacks to reach its share (at least one, at most the free
//!   slots). Alone, a source asks for every free slot, exactly as a single-source worker does.
//! - A source whose job API has lately throttled a poll ([`SourceView::polls_scarce`]) may
//!   claim ahead: jobs that wait for a slot once acknowledged ([`Room::claimable`]), because
//!   there a poll costs more than a job waiting a moment. It may hold up to its *claim share*,
//!   twice the concurrency divided among the active sources (rounded up), and asks for all of
//!   it that the room allows; it is polled even while every slot is taken, as long as there is
//!   room to claim. Alone, it claims all the room, as a single-source worker does. The claim
//!   share is what keeps throttled sources from starving each other: without it two of them
//!   fill the room with waiting jobs, and a third gets no job, and so makes no request, until
//!   they drain.
//!
//! - A partly free worker gathers slots before polling (see [`super::pacing`]) only while the
//!   chosen source holds every running job, or its job API has throttled a poll within the busy
//!   window; otherwise, with another source holding slots too, a job that waits takes the
//!   first slot that frees.
//!
//! What it guarantees: a source that queues 200 jobs holds every slot only while no other source
//! is due. Once another source is due, the next slot that frees goes to it (it has fewer jobs in
//! flight), so its job waits at most until one running job ends — about one job's duration —
//! plus its own poll interval (well under a second with a wake-up queue); where the job API
//! throttles polls, also behind the jobs already claimed and waiting for a slot, at most one
//! more job's duration. Slots are never left idle for fairness' sake: a source with nothing
//! due does not hold a slot back.

use tokio::time::Instant;

/// What the policy needs to know of one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceView {
    pub in_flight: usize,
    /// When the source's pacing allows its next poll.
    pub next_poll: Instant,
    /// When it was last polled (`None`: never), for taking turns.
    pub last_polled: Option<Instant>,
    /// Its job API throttled a poll lately: polls, not slots, are what it is short of.
    pub polls_scarce: bool,
}

/// What the loop may claim now (see [`super::tasks`], "Slots").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Room {
    /// Slots no claimed job is headed for: what a poll normally asks for at most.
    pub free: usize,
    /// Jobs the loop may claim in all: `free` plus the jobs that may wait for a slot.
    pub claimable: usize,
    /// Whether a finishing job would let the loop ask for more (so waiting to gather a larger
    /// batch is worth it); false once `--max-jobs` caps the batch.
    pub more_would_help: bool,
}

/// What the loop should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// Poll source `source` for up to `batch` jobs.
    Poll { source: usize, batch: usize },
    /// No source is due: wait until this instant (or a wake-up).
    WaitUntil(Instant),
    /// Sources are due but the room is taken (slots, or their claim shares): wait for a job to
    /// free its slot or end, or until `or_until`, when another source becomes due.
    WaitForRoom { or_until: Option<Instant> },
}

/// Chooses the next poll, given the `room` a worker of `concurrency` slots has.
pub fn choose(sources: &[SourceView], room: Room, concurrency: usize, now: Instant) -> Choice {
    let due = |view: &SourceView| view.next_poll <= now;
    let active = sources
        .iter()
        .filter(|view| due(view) || view.in_flight > 0)
        .count()
        .max(1);
    let share = concurrency.div_ceil(active).max(1);
    let claim_share = (2 * concurrency).div_ceil(active).max(1);
    let batch = |view: &SourceView| {
        if view.polls_scarce {
            claim_share
                .saturating_sub(view.in_flight)
                .min(room.claimable)
        } else if room.free == 0 {
            0
        } else {
            share.saturating_sub(view.in_flight).min(room.free).max(1)
        }
    };
    let chosen = sources
        .iter()
        .enumerate()
        .filter(|(_, view)| due(view) && batch(view) > 0)
        // Fewest in flight first; among equals the one polled longest ago (never polled first).
        .min_by_key(|(index, view)| (view.in_flight, view.last_polled, *index));
    let next_due = sources
        .iter()
        .map(|view| view.next_poll)
        .filter(|&at| at > now)
        .min();
    match chosen {
        Some((source, view)) => Choice::Poll {
            source,
            batch: batch(view),
        },
        None if sources.iter().any(due) => Choice::WaitForRoom { or_until: next_due },
        None => Choice::WaitUntil(next_due.unwrap_or(now)),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::time::Duration;

    use super::*;

    /// `free` slots and nothing claimable beyond them.
    fn room(free: usize) -> Room {
        Room {
            free,
            claimable: free,
            more_would_help: true,
        }
    }

    fn view(in_flight: usize, next_poll: Instant, last_polled: Option<Instant>) -> SourceView {
        SourceView {
            in_flight,
            next_poll,
            last_polled,
            polls_scarce: false,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn one_source_asks_for_every_free_slot_as_before() {
        let now = Instant::now();
        for (in_flight, free) in [(0, 4), (1, 3), (3, 1)] {
            assert_eq!(
                choose(&[view(in_flight, now, None)], room(free), 4, now),
                Choice::Poll {
                    source: 0,
                    batch: free
                }
            );
        }
        let later = now + Duration::from_secs(3);
        assert_eq!(
            choose(&[view(0, later, Some(now))], room(4), 4, now),
            Choice::WaitUntil(later)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_due_source_with_fewer_jobs_gets_the_free_slot_and_its_share() {
        let now = Instant::now();
        // A holds three of four slots; B has just become due.
        let sources = [view(3, now, Some(now)), view(0, now, None)];
        assert_eq!(
            choose(&sources, room(1), 4, now),
            Choice::Poll {
                source: 1,
                batch: 1
            }
        );
        // With more free slots B asks for its share (two of four), not all of them.
        let sources = [view(1, now, Some(now)), view(0, now, None)];
        assert_eq!(
            choose(&sources, room(3), 4, now),
            Choice::Poll {
                source: 1,
                batch: 2
            }
        );
        // A source that is not due holds nothing back: A may fill every slot.
        let later = now + Duration::from_secs(10);
        let sources = [view(1, now, Some(now)), view(0, later, Some(now))];
        assert_eq!(
            choose(&sources, room(3), 4, now),
            Choice::Poll {
                source: 0,
                batch: 3
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttled_source_asks_for_all_it_may_claim_and_still_yields_the_next() {
        let now = Instant::now();
        let scarce = |in_flight, last_polled| SourceView {
            polls_scarce: true,
            ..view(in_flight, now, last_polled)
        };
        // Three throttled sources share four slots, three of them free, with room to claim
        // seven jobs; the one with nothing running asks for its claim share, three of the
        // eight it may claim in all, rather than its share of two slots.
        let sources = [scarce(1, Some(now)), scarce(0, None), scarce(0, Some(now))];
        let room_to_wait = Room {
            free: 3,
            claimable: 7,
            more_would_help: true,
        };
        assert_eq!(
            choose(&sources, room_to_wait, 4, now),
            Choice::Poll {
                source: 1,
                batch: 3
            }
        );
        // Alone, a throttled source claims all the room.
        assert_eq!(
            choose(&[scarce(1, Some(now))], room_to_wait, 4, now),
            Choice::Poll {
                source: 0,
                batch: 7
            }
        );
        // Having taken them, it is not chosen again while another due source has fewer.
        let sources = [
            scarce(1, Some(now)),
            scarce(3, Some(now)),
            scarce(0, Some(now)),
        ];
        assert_eq!(
            choose(&sources, room(1), 4, now),
            Choice::Poll {
                source: 2,
                batch: 1
            }
        );
        // Without throttling the same worker keeps to shares of its free slots.
        let sources = [
            view(1, now, Some(now)),
            view(0, now, None),
            view(0, now, Some(now)),
        ];
        assert_eq!(
            choose(&sources, room_to_wait, 4, now),
            Choice::Poll {
                source: 1,
                batch: 2
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn throttled_sources_holding_their_claim_shares_leave_room_for_the_third() {
        let now = Instant::now();
        let scarce = |in_flight| SourceView {
            polls_scarce: true,
            ..view(in_flight, now, Some(now))
        };
        // Every slot is taken, two claims are left: the source holding nothing gets them,
        // though the other two are due and would take them too.
        let full = Room {
            free: 0,
            claimable: 2,
            more_would_help: true,
        };
        let sources = [scarce(3), scarce(0), scarce(3)];
        assert_eq!(
            choose(&sources, full, 4, now),
            Choice::Poll {
                source: 1,
                batch: 2
            }
        );
        // Once it holds its claim share too, the due sources wait for room, and for the
        // source that becomes due next.
        let later = now + Duration::from_millis(300);
        let sources = [
            scarce(3),
            scarce(3),
            SourceView {
                next_poll: later,
                ..scarce(2)
            },
        ];
        assert_eq!(
            choose(&sources, full, 4, now),
            Choice::WaitForRoom {
                or_until: Some(later)
            }
        );
        // Unthrottled sources never claim ahead: no free slot, no poll.
        let sources = [view(4, now, Some(now)), view(0, now, None)];
        assert_eq!(
            choose(&sources, full, 4, now),
            Choice::WaitForRoom { or_until: None }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn equal_sources_take_turns() {
        let start = Instant::now();
        let mut sources = vec![view(0, start, None); 3];
        let mut order = Vec::new();
        for _ in 0..6 {
            let now = Instant::now();
            let Choice::Poll { source, .. } = choose(&sources, room(1), 1, now) else {
                panic!("every source is due");
            };
            order.push(source);
            sources[source].last_polled = Some(now);
            tokio::time::advance(Duration::from_millis(10)).await;
        }
        assert_eq!(order, [0, 1, 2, 0, 1, 2]);
    }

    /// A whole run of the rule: source A queues 200 jobs of one second each, B queues 5 a
    /// little later; four slots, polls due again right after a poll with jobs and 1 s after an
    /// empty one. B's first job starts within one job's duration plus one poll interval of being
    /// queued, half of B's jobs within two job durations, and every job of both starts once.
    #[tokio::test(start_paused = true)]
    async fn a_busy_source_delays_another_by_at_most_one_job_and_one_poll_interval() {
        let job = Duration::from_secs(1);
        let poll_interval = Duration::from_secs(1);
        let concurrency = 4;
        let start = Instant::now();
        let mut queues: [VecDeque<(usize, Instant)>; 2] =
            [(0..200).map(|id| (id, start)).collect(), VecDeque::new()];
        let b_queued_at = start + Duration::from_millis(2500);
        let mut b_added = false;
        let mut sources = [view(0, start, None), view(0, start, None)];
        // (source, ends at)
        let mut running: Vec<(usize, Instant)> = Vec::new();
        let mut started = [Vec::new(), Vec::new()];
        let mut waits_b = Vec::new();
        for _ in 0..10_000 {
            let now = Instant::now();
            if !b_added && now >= b_queued_at {
                queues[1].extend((0..5).map(|id| (id, b_queued_at)));
                b_added = true;
            }
            running.retain(|&(source, ends)| {
                let ended = ends <= now;
                if ended {
                    sources[source].in_flight -= 1;
                }
                !ended
            });
            if queues.iter().all(VecDeque::is_empty) && running.is_empty() && b_added {
                break;
            }
            let free = concurrency - running.len();
            let next_end = running.iter().map(|&(_, ends)| ends).min();
            let wake = if free == 0 {
                next_end
            } else {
                match choose(&sources, room(free), concurrency, now) {
                    Choice::Poll { source, batch } => {
                        sources[source].last_polled = Some(now);
                        let mut got = 0;
                        while got < batch
                            && let Some((id, queued)) = queues[source].pop_front()
                        {
                            got += 1;
                            started[source].push(id);
                            if source == 1 {
                                waits_b.push(now - queued);
                            }
                            running.push((source, now + job));
                            sources[source].in_flight += 1;
                        }
                        sources[source].next_poll = if got > 0 { now } else { now + poll_interval };
                        continue;
                    }
                    Choice::WaitUntil(until)
                    | Choice::WaitForRoom {
                        or_until: Some(until),
                    } => Some(next_end.map_or(until, |end| end.min(until))),
                    Choice::WaitForRoom { or_until: None } => next_end,
                }
            };
            let mut until = wake.unwrap_or(now + poll_interval);
            if !b_added {
                until = until.min(b_queued_at);
            }
            tokio::time::advance(until.saturating_duration_since(now)).await;
        }
        let mut a = started[0].clone();
        a.sort_unstable();
        assert_eq!(a, (0..200).collect::<Vec<_>>(), "each of A's jobs once");
        assert_eq!(
            started[1],
            (0..5).collect::<Vec<_>>(),
            "each of B's jobs once"
        );
        assert!(waits_b[0] <= job + poll_interval, "{waits_b:?}");
        waits_b.sort_unstable();
        assert!(waits_b[2] <= 2 * job, "B's median wait: {waits_b:?}");
    }
}
