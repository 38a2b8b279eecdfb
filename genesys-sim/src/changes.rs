//! When each conversation changes: the instants at which its real-time document
//! (`GET /api/v2/conversations/{id}`, and so its notification event) reads differently.
//!
//! The real-time view is rendered from the complete analytics record, and it depends on
//! the instant only through comparisons with that record's segment starts and ends (a
//! participant joins at its first segment's start, connects at its interact segment's,
//! holds, leaves, wraps up). So the document is constant between two consecutive
//! instants of [`change_instants`], and a conversation's *version* at `now` is the number
//! of its change instants at or before `now` (1 from its start on). The event pump
//! ([`ChangeTracker`]) and the benchmark's `/sim/changes` both read this, and the unit
//! tests check the claim by rendering between instants.

use chrono::{DateTime, Utc};

use crate::data::{ConversationRecord, Dataset, Org};
use crate::render::analytics;

/// Every instant at which the conversation's real-time document changes, sorted, without
/// repeats; the first is its start.
#[must_use]
pub fn change_instants(record: &ConversationRecord, org: &Org) -> Vec<DateTime<Utc>> {
    let complete = analytics::complete(record, org);
    let mut out = vec![record.start];
    for participant in &complete.participants {
        for session in &participant.sessions {
            for segment in &session.segments {
                out.push(segment.segment_start);
                out.extend(segment.segment_end);
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The version of a conversation at `now`: how many of its change instants have passed
/// (0 before it starts).
#[must_use]
pub fn version_at(instants: &[DateTime<Utc>], now: DateTime<Utc>) -> usize {
    instants.partition_point(|&at| at <= now)
}

/// A conversation the tracker follows until its last change has passed.
#[derive(Debug)]
struct Running {
    /// Index into [`Dataset::conversations`].
    index: usize,
    instants: Vec<DateTime<Utc>>,
    /// Index into `instants` of the next change still to come.
    next: usize,
}

/// Finds, tick after tick, the conversations whose document changed since the last tick:
/// those that have started and not finished are followed; a conversation enters when the
/// clock reaches its start (conversations are sorted by start) and leaves after its last
/// change. Nothing that ended before the tracker started is ever looked at again.
#[derive(Debug)]
pub struct ChangeTracker {
    running: Vec<Running>,
    /// Index of the first conversation that had not started at the last tick.
    cursor: usize,
    last: DateTime<Utc>,
}

impl ChangeTracker {
    /// A tracker whose first tick reports the changes after `now`.
    #[must_use]
    pub fn new(data: &Dataset, now: DateTime<Utc>) -> Self {
        let cursor = data.conversations.partition_point(|c| c.start <= now);
        let running = data.conversations[..cursor]
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.is_over_at(now))
            .map(|(index, c)| {
                let instants = change_instants(c, &data.org);
                let next = version_at(&instants, now);
                Running {
                    index,
                    instants,
                    next,
                }
            })
            .collect();
        Self {
            running,
            cursor,
            last: now,
        }
    }

    /// Indexes of the conversations with a change in `(last tick, now]`, each once (a
    /// conversation that changed several times since reads as its latest state), in start
    /// order of entry. A `now` before the last tick reports nothing.
    pub fn advance(&mut self, data: &Dataset, now: DateTime<Utc>) -> Vec<usize> {
        if now <= self.last {
            return Vec::new();
        }
        let started = data.conversations.partition_point(|c| c.start <= now);
        for index in self.cursor..started.max(self.cursor) {
            let instants = change_instants(&data.conversations[index], &data.org);
            self.running.push(Running {
                index,
                instants,
                next: 0,
            });
        }
        self.cursor = started.max(self.cursor);
        let mut changed = Vec::new();
        for running in &mut self.running {
            let version = version_at(&running.instants, now);
            if version > running.next {
                changed.push(running.index);
                running.next = version;
            }
        }
        self.running.retain(|r| r.next < r.instants.len());
        self.last = now;
        changed
    }

    /// How many conversations are being followed (started, changes still to come).
    #[must_use]
    pub fn running(&self) -> usize {
        self.running.len()
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::render::realtime;

    fn data() -> Dataset {
        let anchor = DateTime::parse_from_rfc3339("2025-03-12T00:00:00Z")
            .expect("valid time")
            .with_timezone(&Utc);
        Dataset::generate(21, anchor, 2, 300, 30)
    }

    #[test]
    fn the_document_only_changes_at_the_change_instants() {
        let data = data();
        for record in data.conversations.iter().step_by(7) {
            let instants = change_instants(record, &data.org);
            assert_eq!(instants[0], record.start);
            assert_eq!(*instants.last().expect("instants"), record.last_event());
            for pair in instants.windows(2) {
                let at = realtime::at(record, &data.org, pair[0]);
                let just_before_next = pair[1] - Duration::milliseconds(1);
                let middle = pair[0] + (pair[1] - pair[0]) / 2;
                assert_eq!(at, realtime::at(record, &data.org, middle), "{}", record.id);
                assert_eq!(at, realtime::at(record, &data.org, just_before_next));
                assert_ne!(
                    at,
                    realtime::at(record, &data.org, pair[1]),
                    "{} does not change at {}",
                    record.id,
                    pair[1]
                );
            }
        }
    }

    #[test]
    fn the_tracker_reports_each_change_once_and_forgets_finished_conversations() {
        let data = data();
        let start = data.anchor;
        let mut tracker = ChangeTracker::new(&data, start);
        assert_eq!(tracker.running(), 30, "the live conversations");
        let mut reported = vec![0usize; data.conversations.len()];
        let mut now = start;
        for _ in 0..400 {
            now += Duration::seconds(7);
            for index in tracker.advance(&data, now) {
                reported[index] += 1;
            }
        }
        for (index, record) in data.conversations.iter().enumerate() {
            let instants = change_instants(record, &data.org);
            let expected = instants
                .windows(2)
                .filter(|w| w[1] > start && w[1] <= now)
                .count()
                + usize::from(record.start > start && record.start <= now);
            assert!(
                reported[index] <= expected && (expected == 0) == (reported[index] == 0),
                "{index}: {} reported, {expected} changes",
                reported[index]
            );
        }
        assert!(
            tracker.advance(&data, start).is_empty(),
            "time never runs back"
        );
        assert!(
            tracker.running() < 30,
            "finished conversations are forgotten"
        );
    }

    /// The wallboard benchmark's org (README, "Notifications"): continuous arrivals of
    /// 32,000 conversations a day keep about 200 running at any instant, each changing
    /// every minute or two.
    #[test]
    fn thirty_two_thousand_a_day_keep_about_two_hundred_running() {
        let data = Dataset::generate_with(
            7,
            DateTime::parse_from_rfc3339("2025-03-12T12:00:00Z")
                .expect("valid time")
                .with_timezone(&Utc),
            1,
            (32_000, 0),
            crate::data::Arrivals {
                continuous: true,
                diurnal: false,
            },
        );
        let start = data.anchor + Duration::hours(1);
        let mut tracker = ChangeTracker::new(&data, start);
        let running = tracker.running();
        assert!((160..=240).contains(&running), "{running} running");
        let mut changes = 0;
        for second in 1..=600 {
            changes += tracker
                .advance(&data, start + Duration::seconds(second))
                .len();
        }
        let per_minute = changes as f64 / 10.0;
        assert!(
            (60.0..=400.0).contains(&per_minute),
            "{per_minute} changes a minute among {running} conversations"
        );
        println!("{running} running, {per_minute} conversation changes a minute");
    }
}
