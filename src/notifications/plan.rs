//! Topic planning: which topics go on which channel. A pure function: the queues' topics,
//! sorted (so a re-plan of the same queues gives the same channels), spread over as few
//! channels as the per-channel limit allows, within the channel limit; what does not fit
//! is named, never silently dropped.

use uuid::Uuid;

/// The topic of a queue's conversations (`QueueConversationEventTopicConversation`).
#[must_use]
pub fn queue_topic(queue: Uuid) -> String {
    format!("v2.routing.queues.{queue}.conversations")
}

/// The queue of a queue conversation topic, if `topic` is one.
#[must_use]
pub fn queue_of_topic(topic: &str) -> Option<Uuid> {
    let queue = topic
        .strip_prefix("v2.routing.queues.")?
        .strip_suffix(".conversations")?;
    Uuid::try_parse(queue).ok()
}

/// The channels to open: each one's topics, and the topics no channel could take.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub channels: Vec<Vec<String>>,
    pub left_out: Vec<String>,
}

impl Plan {
    /// Topics subscribed over all channels.
    #[must_use]
    pub fn topics(&self) -> usize {
        self.channels.iter().map(Vec::len).sum()
    }
}

/// Spreads the topics of `queues` over the fewest channels of at most `per_channel`
/// topics each, at most `max_channels` channels; duplicates count once. Channels are
/// filled evenly (1,001 topics on two channels are 501 and 500), so each has room for a
/// queue created later.
#[must_use]
pub fn plan(queues: &[Uuid], per_channel: usize, max_channels: usize) -> Plan {
    let mut topics: Vec<String> = queues.iter().copied().map(queue_topic).collect();
    topics.sort_unstable();
    topics.dedup();
    let per_channel = per_channel.max(1);
    let capacity = per_channel.saturating_mul(max_channels);
    let left_out = if topics.len() > capacity {
        topics.split_off(capacity)
    } else {
        Vec::new()
    };
    let count = topics.len().div_ceil(per_channel);
    let mut channels = Vec::with_capacity(count);
    let mut rest = topics.as_slice();
    for remaining in (1..=count).rev() {
        let take = rest.len().div_ceil(remaining);
        let (head, tail) = rest.split_at(take);
        channels.push(head.to_vec());
        rest = tail;
    }
    Plan { channels, left_out }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queues(n: u128) -> Vec<Uuid> {
        (0..n).map(Uuid::from_u128).collect()
    }

    #[test]
    fn no_queue_needs_no_channel() {
        assert_eq!(plan(&[], 1_000, 20), Plan::default());
    }

    #[test]
    fn up_to_the_limit_fits_on_one_channel() {
        let plan = plan(&queues(1_000), 1_000, 20);
        assert_eq!(plan.channels.len(), 1);
        assert_eq!(plan.topics(), 1_000);
        assert!(plan.left_out.is_empty());
    }

    #[test]
    fn more_than_a_thousand_queues_spread_evenly_over_the_fewest_channels() {
        let plan = plan(&queues(2_345), 1_000, 20);
        let sizes: Vec<usize> = plan.channels.iter().map(Vec::len).collect();
        assert_eq!(sizes, [782, 782, 781]);
        let mut all: Vec<&String> = plan.channels.iter().flatten().collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 2_345, "every topic once");
        assert!(plan.channels.iter().all(|c| c.len() <= 1_000));
    }

    #[test]
    fn what_exceeds_every_channel_is_left_out_and_named() {
        let plan = plan(&queues(25), 10, 2);
        assert_eq!(plan.channels.len(), 2);
        assert_eq!(plan.topics(), 20);
        assert_eq!(plan.left_out.len(), 5);
    }

    #[test]
    fn duplicates_count_once_and_the_plan_is_stable() {
        let mut twice = queues(3);
        twice.extend(queues(3).into_iter().rev());
        assert_eq!(plan(&twice, 2, 5), plan(&queues(3), 2, 5));
        assert_eq!(plan(&twice, 2, 5).topics(), 3);
    }

    #[test]
    fn queue_topics_round_trip_and_nothing_else_parses() {
        let queue = Uuid::from_u128(7);
        assert_eq!(queue_of_topic(&queue_topic(queue)), Some(queue));
        assert_eq!(queue_of_topic("v2.users.x.conversations"), None);
        assert_eq!(queue_of_topic("v2.routing.queues.nope.conversations"), None);
    }
}
