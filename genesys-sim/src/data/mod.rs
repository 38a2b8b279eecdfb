//! The simulated org's data: its directory and its conversations, generated once from the
//! seed and then read-only. Tests read it through [`Dataset`] to compute their own
//! expectations independently of the simulator's query code.
//!
//! The dataset may hold conversations that start after the simulator's clock (continuous
//! arrivals): the API shows a conversation only from its start on
//! ([`Dataset::visible_between`]).

mod conversation;
mod generate;
mod org;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use conversation::{
    AcdWait, AgentWork, ConversationRecord, Customer, Direction, IvrLeg, Leg, MediaType,
};
pub use generate::{ARRIVALS_AHEAD_DAYS, Arrivals, DIURNAL_WEIGHTS};
pub use org::{AGENT_COUNT, Agent, Division, Org, Queue, WrapupCode};

use crate::rng::SimRng;

/// The org and its conversations, sorted by start time.
#[derive(Debug)]
pub struct Dataset {
    /// The instant the data was generated around.
    pub anchor: DateTime<Utc>,
    pub org: Org,
    pub conversations: Vec<ConversationRecord>,
    by_id: HashMap<Uuid, usize>,
}

impl Dataset {
    /// Generates the data for `seed` with the default arrivals (history, then a few live
    /// conversations at the anchor): the same inputs always give the same data.
    #[must_use]
    pub fn generate(
        seed: u64,
        anchor: DateTime<Utc>,
        days: u32,
        historical: usize,
        live: usize,
    ) -> Self {
        Self::generate_with(seed, anchor, days, (historical, live), Arrivals::default())
    }

    /// Generates the data for `seed` with the given arrivals: `historical` conversations
    /// over the `days` before `anchor`, `live` ones at the anchor (not used with continuous
    /// arrivals). The same inputs always give the same data.
    #[must_use]
    pub fn generate_with(
        seed: u64,
        anchor: DateTime<Utc>,
        days: u32,
        (historical, live): (usize, usize),
        arrivals: Arrivals,
    ) -> Self {
        let mut rng = SimRng::new(seed);
        let org = Org::generate(&mut rng);
        let conversations =
            generate::conversations(&mut rng, &org, anchor, days, (historical, live), arrivals);
        let by_id = conversations
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id, i))
            .collect();
        Self {
            anchor,
            org,
            conversations,
            by_id,
        }
    }

    /// The conversation with this id.
    #[must_use]
    pub fn get(&self, id: &Uuid) -> Option<&ConversationRecord> {
        self.by_id.get(id).map(|&i| &self.conversations[i])
    }

    /// Conversations whose start lies in `[from, to)`, in start order.
    pub fn started_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> &[ConversationRecord] {
        let lo = self.conversations.partition_point(|c| c.start < from);
        let hi = self.conversations.partition_point(|c| c.start < to);
        &self.conversations[lo..hi.max(lo)]
    }

    /// Indexes (into `conversations`) of the conversations whose start lies in
    /// `[from, to)` and that have started by `now`: what the API can see of that range.
    #[must_use]
    pub fn visible_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> std::ops::Range<usize> {
        let lo = self.conversations.partition_point(|c| c.start < from);
        let hi = self
            .conversations
            .partition_point(|c| c.start < to && c.start <= now);
        lo..hi.max(lo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Dataset {
        let anchor = DateTime::parse_from_rfc3339("2025-03-12T00:00:00Z")
            .expect("valid time")
            .with_timezone(&Utc);
        Dataset::generate(5, anchor, 10, 500, 10)
    }

    #[test]
    fn the_same_seed_generates_the_same_data() {
        let a = sample();
        let b = sample();
        let ids_a: Vec<_> = a.conversations.iter().map(|c| c.id).collect();
        let ids_b: Vec<_> = b.conversations.iter().map(|c| c.id).collect();
        assert_eq!(ids_a, ids_b);
        assert_eq!(a.org.queues[0].id, b.org.queues[0].id);
    }

    #[test]
    fn historical_conversations_are_over_at_the_anchor_and_live_ones_are_not() {
        let data = sample();
        let live = data
            .conversations
            .iter()
            .filter(|c| !c.is_over_at(data.anchor))
            .count();
        assert_eq!(live, 10);
    }

    fn noon() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-03-12T12:00:00Z")
            .expect("valid time")
            .with_timezone(&Utc)
    }

    /// 3,000 conversations a day over 10 days (and 2 more after the anchor).
    fn contact_centre(diurnal: bool) -> Dataset {
        let arrivals = Arrivals {
            continuous: true,
            diurnal,
        };
        Dataset::generate_with(12, noon(), 10, (30_000, 7), arrivals)
    }

    fn arrivals_between(data: &Dataset, from_hours: i64, to_hours: i64) -> usize {
        let hours = |h| noon() + chrono::Duration::hours(h);
        data.started_between(hours(from_hours), hours(to_hours))
            .len()
    }

    #[test]
    fn continuous_arrivals_keep_the_daily_rate_up_to_the_anchor_and_after_it() {
        let data = contact_centre(false);
        let per_day = 3_000;
        assert_eq!(
            data.conversations.len(),
            30_000 + 2 * per_day,
            "live ones are not added"
        );
        assert!(data.conversations[0].start >= noon() - chrono::Duration::days(10));
        let last = data.conversations.last().expect("conversations").start;
        assert!(
            last > noon() + chrono::Duration::hours(47),
            "arrivals go on: {last}"
        );
        // Six hours hold a quarter of a day's conversations, before and after the anchor.
        for (from, to) in [(-6, 0), (0, 6), (-3, 3), (24, 30), (-200, -194)] {
            let count = arrivals_between(&data, from, to);
            assert!(
                count.abs_diff(per_day / 4) < per_day / 4 / 8,
                "{count} between {from}h and {to}h"
            );
        }
        // The last fifteen minutes before the anchor hold about a 96th of a day's.
        let recent = data
            .started_between(noon() - chrono::Duration::minutes(15), noon())
            .len();
        assert!(
            (15..=50).contains(&recent),
            "{recent} in the last 15 minutes"
        );
        // Some are running at the anchor, none of them stretched to be.
        let running = data
            .conversations
            .iter()
            .filter(|c| c.start <= noon() && !c.is_over_at(noon()))
            .count();
        assert!(running >= 5, "{running} running at the anchor");
    }

    #[test]
    fn continuous_arrivals_are_the_same_for_the_same_seed() {
        let a = contact_centre(true);
        let b = contact_centre(true);
        assert!(
            a.conversations
                .iter()
                .zip(&b.conversations)
                .all(|(x, y)| x.id == y.id)
        );
    }

    #[test]
    fn diurnal_arrivals_follow_a_contact_centre_day() {
        for data in [
            contact_centre(true),
            Dataset::generate_with(
                12,
                noon(),
                10,
                (30_000, 7),
                Arrivals {
                    continuous: false,
                    diurnal: true,
                },
            ),
        ] {
            // Whole days from midnight: the same number a day as without the profile.
            let midnight = noon() - chrono::Duration::hours(12);
            let at = |days: i64, hours: i64| {
                midnight + chrono::Duration::days(days) + chrono::Duration::hours(hours)
            };
            let day = data.started_between(at(-5, 0), at(-4, 0)).len();
            assert!(day.abs_diff(3_000) < 300, "{day} in a day");
            let mut busy = 0;
            let mut night = 0;
            for days in -9..-1 {
                busy += data.started_between(at(days, 10), at(days, 11)).len();
                night += data.started_between(at(days, 3), at(days, 4)).len();
            }
            assert!(night > 0, "never empty");
            assert!(busy > 6 * night, "{busy} in busy hours, {night} at night");
        }
    }

    #[test]
    fn every_agent_leg_has_consistent_times() {
        let data = sample();
        for conversation in &data.conversations {
            for agent in conversation.agents() {
                assert!(agent.alert_start <= agent.connected);
                assert!(agent.connected < agent.disconnected);
                assert!(agent.talk_ms() > 0);
                assert_eq!(
                    agent.handle_ms(),
                    agent.talk_ms() + agent.hold_ms() + agent.acw_ms
                );
            }
            assert!(conversation.disconnected() <= conversation.last_event());
        }
    }
}
