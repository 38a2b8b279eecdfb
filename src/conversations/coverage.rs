//! [`Coverage`]: which conversations Genesys notifications keep fresh, so that a
//! conversation fetched while its queue's topic is live is served fresh without polling
//! until an event changes it, not only once an event has arrived.
//!
//! Genesys publishes every change of a conversation on the conversation topic of each
//! queue it has a participant in (`v2.routing.queues.{id}.conversations`). So a document
//! fetched while one of its queues' sockets is connected and subscribed stays Genesys'
//! current state until an event says otherwise: the fetch may extend its freshness to
//! `pushed_fresh`, as an event does ([`Coverage::admit`]). Three things withdraw that:
//! - **a gap** (a socket lost, subscriptions lost, a refusal): events may have been
//!   missed, so every extended conversation falls back to its TTL ([`Coverage::gap`]
//!   hands them to the caller to demote), and a fetch that started before the gap is not
//!   extended (the ticket's epoch has changed);
//! - **an event for the conversation during its fetch**: the document may predate the
//!   change the event announced (the event found nothing cached to update), so it keeps
//!   its TTL ([`Coverage::event_seen`] records the instant);
//! - **no live queue**: a conversation with no queue participant (in a flow, outbound
//!   without a queue), or whose queues are not subscribed (new since the start, left out
//!   by the channel limits), is polled on its TTL as before. When it enters a subscribed
//!   queue, that change is an event, which updates it.
//!
//! The set of extended conversations loses an id when an event settles it (an ended
//! conversation's TTL is longer) or finds it no longer cached, and is emptied at every
//! gap; between those it holds at most the conversations cached while live.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

/// How long an event instant is remembered: longer than any fetch may take.
const EVENT_MEMORY: Duration = Duration::from_secs(120);

/// The queue of a queue conversation topic, `v2.routing.queues.{id}.conversations`.
#[must_use]
pub fn topic_queue(topic: &str) -> Option<&str> {
    topic
        .strip_prefix("v2.routing.queues.")?
        .strip_suffix(".conversations")
        .filter(|queue| !queue.is_empty() && !queue.contains('.'))
}

/// Taken when a fetch starts: what [`Coverage::admit`] compares with when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    epoch: u64,
    at: Instant,
}

/// The notifications' coverage of cached conversations (see the module doc).
#[derive(Debug, Default)]
pub struct Coverage {
    /// How long an event or a covered fetch keeps a conversation fresh, in seconds
    /// (`[notifications] pushed_fresh_secs`; 0 until notifications are set up).
    pushed_fresh_secs: AtomicU64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Queues whose topic is on a connected, subscribed socket, with how many sockets.
    live_queues: HashMap<String, u32>,
    /// Counts the gaps.
    epoch: u64,
    /// The latest event instant of each conversation (recent ones only).
    last_event: HashMap<Uuid, Instant>,
    /// The pruning threshold of `last_event`.
    prune_at: usize,
    /// Conversations fresh for longer than their TTL because of the notifications.
    extended: HashSet<Uuid>,
}

impl Coverage {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets how long pushed freshness lasts.
    pub fn set_pushed_fresh(&self, pushed_fresh: Duration) {
        self.pushed_fresh_secs
            .store(pushed_fresh.as_secs(), Ordering::Relaxed);
    }

    /// How long pushed freshness lasts.
    #[must_use]
    pub fn pushed_fresh(&self) -> Duration {
        Duration::from_secs(self.pushed_fresh_secs.load(Ordering::Relaxed))
    }

    /// The queues of `topics` are live (`true`: their socket is connected and
    /// subscribed) or no longer (`false`).
    pub fn set_live(&self, topics: &[String], live: bool) {
        let mut state = self.state();
        for queue in topics.iter().filter_map(|t| topic_queue(t)) {
            if live {
                *state.live_queues.entry(queue.to_owned()).or_default() += 1;
            } else if let Some(count) = state.live_queues.get_mut(queue) {
                *count -= 1;
                if *count == 0 {
                    state.live_queues.remove(queue);
                }
            }
        }
    }

    /// How many queues are live.
    #[must_use]
    pub fn live_queues(&self) -> usize {
        self.state().live_queues.len()
    }

    /// Taken before a fetch.
    #[must_use]
    pub fn ticket(&self) -> Ticket {
        Ticket {
            epoch: self.state().epoch,
            at: Instant::now(),
        }
    }

    /// An event for conversation `id` arrived now.
    pub fn event_seen(&self, id: Uuid) {
        let now = Instant::now();
        let mut state = self.state();
        state.last_event.insert(id, now);
        if state.last_event.len() >= state.prune_at {
            state
                .last_event
                .retain(|_, at| now.saturating_duration_since(*at) < EVENT_MEMORY);
            state.prune_at = (state.last_event.len() * 2).max(1_024);
        }
    }

    /// Whether conversation `id`, fetched under `ticket` with participants in `queues`,
    /// is kept fresh by the notifications from now on; if so it is recorded as extended
    /// (a gap will demote it).
    pub fn admit<'q>(
        &self,
        id: Uuid,
        mut queues: impl Iterator<Item = &'q str>,
        ticket: Ticket,
    ) -> bool {
        if self.pushed_fresh().is_zero() {
            return false;
        }
        let mut state = self.state();
        let covered = state.epoch == ticket.epoch
            && state.last_event.get(&id).is_none_or(|at| *at < ticket.at)
            && queues.any(|queue| state.live_queues.contains_key(queue));
        if covered {
            state.extended.insert(id);
        }
        covered
    }

    /// An event made `id` fresh beyond its TTL (`true`) or not (`false`: settled, or no
    /// longer cached).
    pub fn set_extended(&self, id: Uuid, extended: bool) {
        let mut state = self.state();
        if extended {
            state.extended.insert(id);
        } else {
            state.extended.remove(&id);
        }
    }

    /// Events may have been missed: fetches in flight are not extended, and the
    /// conversations that were are returned, to fall back to their TTLs.
    #[must_use]
    pub fn gap(&self) -> Vec<Uuid> {
        let mut state = self.state();
        state.epoch += 1;
        state.extended.drain().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q1: &str = "v2.routing.queues.q1.conversations";
    const Q2: &str = "v2.routing.queues.q2.conversations";

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn coverage() -> Coverage {
        let coverage = Coverage::default();
        coverage.set_pushed_fresh(Duration::from_secs(300));
        coverage
    }

    #[test]
    fn the_queue_of_a_topic() {
        assert_eq!(topic_queue(Q1), Some("q1"));
        for other in [
            "v2.users.u.conversations",
            "v2.routing.queues..conversations",
            "v2.routing.queues.q1.conversations.calls",
            "v2.routing.queues.q1",
        ] {
            assert_eq!(topic_queue(other), None, "{other}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_fetch_is_covered_only_when_one_of_its_queues_is_live() {
        let coverage = coverage();
        let ticket = coverage.ticket();
        assert!(
            !coverage.admit(id(1), ["q1"].into_iter(), ticket),
            "nothing live"
        );
        coverage.set_live(&[Q1.to_owned(), Q2.to_owned()], true);
        assert!(
            !coverage.admit(id(1), std::iter::empty(), ticket),
            "no queue"
        );
        assert!(
            !coverage.admit(id(1), ["q3"].into_iter(), ticket),
            "not subscribed"
        );
        assert!(coverage.admit(id(1), ["q3", "q2"].into_iter(), ticket));
        coverage.set_live(&[Q2.to_owned()], false);
        assert!(
            !coverage.admit(id(2), ["q2"].into_iter(), ticket),
            "q2 went down"
        );
        assert!(coverage.admit(id(2), ["q1"].into_iter(), ticket));
        assert_eq!(coverage.live_queues(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn two_sockets_holding_a_queue_keep_it_live_until_both_are_down() {
        let coverage = coverage();
        let topics = [Q1.to_owned()];
        coverage.set_live(&topics, true);
        coverage.set_live(&topics, true);
        coverage.set_live(&topics, false);
        assert!(coverage.admit(id(1), ["q1"].into_iter(), coverage.ticket()));
        coverage.set_live(&topics, false);
        coverage.set_live(&topics, false);
        assert!(!coverage.admit(id(1), ["q1"].into_iter(), coverage.ticket()));
        assert_eq!(coverage.live_queues(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_event_during_the_fetch_or_a_gap_before_its_end_withdraws_the_cover() {
        let coverage = coverage();
        coverage.set_live(&[Q1.to_owned()], true);
        coverage.event_seen(id(1));
        tokio::time::advance(Duration::from_millis(1)).await;
        let ticket = coverage.ticket();
        assert!(
            coverage.admit(id(1), ["q1"].into_iter(), ticket),
            "an event before the fetch started is in the document"
        );
        let ticket = coverage.ticket();
        tokio::time::advance(Duration::from_millis(1)).await;
        coverage.event_seen(id(1));
        assert!(!coverage.admit(id(1), ["q1"].into_iter(), ticket));
        assert!(
            coverage.admit(id(2), ["q1"].into_iter(), ticket),
            "another id"
        );
        let mut demoted = coverage.gap();
        demoted.sort();
        assert_eq!(demoted, [id(1), id(2)]);
        assert!(!coverage.admit(id(3), ["q1"].into_iter(), ticket), "a gap");
        assert!(coverage.gap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_is_covered_before_notifications_set_a_freshness() {
        let coverage = Coverage::default();
        coverage.set_live(&[Q1.to_owned()], true);
        assert!(!coverage.admit(id(1), ["q1"].into_iter(), coverage.ticket()));
    }

    #[tokio::test(start_paused = true)]
    async fn old_event_instants_are_forgotten() {
        let coverage = coverage();
        for n in 0..1_024 {
            coverage.event_seen(id(n));
        }
        tokio::time::advance(EVENT_MEMORY).await;
        for n in 10_000..11_024 {
            coverage.event_seen(id(n));
        }
        let state = coverage.state();
        assert!(!state.last_event.contains_key(&id(0)));
        assert!(state.last_event.contains_key(&id(11_023)));
        assert!(state.last_event.len() <= 1_024);
    }
}
