//! The messages of a notification channel: the envelope
//! `{"topicName", "version", "eventBody", "metadata"}` read into what the session does
//! with it. Any `channel.metadata` message (heartbeat, the answer to a ping, whatever its
//! text) is proof of life; `v2.system.socket_closing` asks for a reconnect; a queue
//! conversation topic carries a conversation event.

use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::plan::queue_of_topic;

/// A message received on a channel.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// `channel.metadata`: a heartbeat or the answer to a ping.
    Alive,
    /// `v2.system.socket_closing`: the server closes the socket soon; reconnect.
    SocketClosing,
    /// `v2.system.no_longer_subscribed.*`: the channel lost its subscriptions.
    NoLongerSubscribed,
    /// A conversation event of a queue topic.
    Conversation { queue: Uuid, body: Value },
    /// A topic the proxy does not use.
    Other { topic: String },
}

/// Why a frame was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable notification: {0}")]
pub struct Unreadable(String);

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "topicName")]
    topic_name: String,
    #[serde(rename = "eventBody", default)]
    event_body: Value,
}

/// The message a text frame holds.
///
/// # Errors
/// When the frame is no envelope.
pub fn read(text: &str) -> Result<Message, Unreadable> {
    let envelope: Envelope = serde_json::from_str(text).map_err(|e| Unreadable(e.to_string()))?;
    let topic = envelope.topic_name;
    Ok(if topic == "channel.metadata" {
        Message::Alive
    } else if topic == "v2.system.socket_closing" {
        Message::SocketClosing
    } else if topic.starts_with("v2.system.no_longer_subscribed") {
        Message::NoLongerSubscribed
    } else if let Some(queue) = queue_of_topic(&topic) {
        Message::Conversation {
            queue,
            body: envelope.event_body,
        }
    } else {
        Message::Other { topic }
    })
}

/// The client's ping (the answer comes on `channel.metadata`).
pub const PING: &str = r#"{"message":"ping"}"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_and_pongs_are_proof_of_life() {
        for text in [
            r#"{"topicName":"channel.metadata","eventBody":{"message":"WebSocket Heartbeat"}}"#,
            r#"{"topicName":"channel.metadata","eventBody":{"message":"pong"}}"#,
            r#"{"topicName":"channel.metadata","eventBody":{"message":"anything"},"version":"2"}"#,
        ] {
            assert_eq!(read(text), Ok(Message::Alive), "{text}");
        }
    }

    #[test]
    fn socket_closing_and_conversation_events_are_told_apart() {
        assert_eq!(
            read(r#"{"topicName":"v2.system.socket_closing","eventBody":{"message":"bye"}}"#),
            Ok(Message::SocketClosing)
        );
        let queue = Uuid::from_u128(9);
        let text = format!(
            r#"{{"topicName":"v2.routing.queues.{queue}.conversations","version":"2","eventBody":{{"id":"c"}},"metadata":{{"CorrelationId":"x"}}}}"#
        );
        assert_eq!(
            read(&text),
            Ok(Message::Conversation {
                queue,
                body: serde_json::json!({"id": "c"})
            })
        );
        assert!(matches!(
            read(r#"{"topicName":"v2.users.u.presence","eventBody":{}}"#),
            Ok(Message::Other { .. })
        ));
        assert!(read("not json").is_err());
        assert!(read(r#"{"eventBody":{}}"#).is_err());
    }
}
