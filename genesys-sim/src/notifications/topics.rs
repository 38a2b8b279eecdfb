//! The topics the simulator serves and which of them a conversation's change is published
//! on (API-FACTS section 8, `notificationMappings.json`):
//!
//! - `v2.routing.queues.{queueId}.conversations` (`QueueConversationEventTopicConversation`)
//!   for every queue the conversation has reached (a participant with that `queueId`);
//! - `v2.users.{userId}.conversations` (`ConversationEventTopicConversation`) for every
//!   agent user who has joined it.
//!
//! Any other topic is refused with 400 `notification.invalid.topic`; ids must be UUIDs
//! (an id of no queue or user of the org is accepted and simply never carries events).

use serde_json::Value;
use uuid::Uuid;

/// The kind of a valid topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicKind {
    QueueConversations,
    UserConversations,
}

/// The kind of `topic`, or `None` when the simulator does not serve it.
#[must_use]
pub fn parse(topic: &str) -> Option<TopicKind> {
    let (kind, id) = if let Some(rest) = topic.strip_prefix("v2.routing.queues.") {
        (TopicKind::QueueConversations, rest)
    } else {
        (
            TopicKind::UserConversations,
            topic.strip_prefix("v2.users.")?,
        )
    };
    let id = id.strip_suffix(".conversations")?;
    Uuid::parse_str(id).ok().map(|_| kind)
}

/// The queue conversation topic of `queue`.
#[must_use]
pub fn queue_conversations(queue: &str) -> String {
    format!("v2.routing.queues.{queue}.conversations")
}

/// The user conversation topic of `user`.
#[must_use]
pub fn user_conversations(user: &str) -> String {
    format!("v2.users.{user}.conversations")
}

/// The topics a real-time `Conversation` document is published on: its participants'
/// queues, then its agents' users, each once, in order of appearance.
#[must_use]
pub fn of_conversation(doc: &Value) -> Vec<String> {
    let participants = doc["participants"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    let mut topics: Vec<String> = Vec::new();
    let ids = |key: &'static str| {
        participants
            .iter()
            .filter_map(move |p| p.get(key).and_then(Value::as_str))
    };
    for queue in ids("queueId").map(queue_conversations) {
        if !topics.contains(&queue) {
            topics.push(queue);
        }
    }
    for user in ids("userId").map(user_conversations) {
        if !topics.contains(&user) {
            topics.push(user);
        }
    }
    topics
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn queue_and_user_conversation_topics_with_uuids_are_served() {
        let id = "2f5a7c1e-0b9d-4d8e-9c1a-6e0f3b2a4d51";
        assert_eq!(
            parse(&format!("v2.routing.queues.{id}.conversations")),
            Some(TopicKind::QueueConversations)
        );
        assert_eq!(
            parse(&format!("v2.users.{id}.conversations")),
            Some(TopicKind::UserConversations)
        );
        for bad in [
            "v2.routing.queues.support.conversations",
            &format!("v2.routing.queues.{id}.conversations.calls"),
            &format!("v2.conversations.{id}"),
            "channel.metadata",
            "",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_conversation_is_published_on_its_queues_then_its_agents() {
        let doc = json!({"participants": [
            {"purpose": "customer"},
            {"purpose": "acd", "queueId": "q1"},
            {"purpose": "agent", "queueId": "q1", "userId": "u1"},
            {"purpose": "acd", "queueId": "q2"},
            {"purpose": "agent", "queueId": "q2", "userId": "u2"},
        ]});
        assert_eq!(
            of_conversation(&doc),
            [
                "v2.routing.queues.q1.conversations",
                "v2.routing.queues.q2.conversations",
                "v2.users.u1.conversations",
                "v2.users.u2.conversations",
            ]
        );
    }
}
