//! The simulated org's data: its directory and its conversations, generated once from the
//! seed and then read-only. Tests read it through [`Dataset`] to compute their own
//! expectations independently of the simulator's query code.

mod conversation;
mod generate;
mod org;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use conversation::{
    AcdWait, AgentWork, ConversationRecord, Customer, Direction, IvrLeg, Leg, MediaType,
};
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
    /// Generates the data for `seed`: the same inputs always give the same data.
    #[must_use]
    pub fn generate(
        seed: u64,
        anchor: DateTime<Utc>,
        days: u32,
        historical: usize,
        live: usize,
    ) -> Self {
        let mut rng = SimRng::new(seed);
        let org = Org::generate(&mut rng);
        let conversations = generate::conversations(&mut rng, &org, anchor, days, historical, live);
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
