//! [`ConversationView`]: the simplified, documented shape of a conversation that
//! `GET /conversations/{id}` returns by default (`?view=full` returns Genesys' own
//! document byte for byte).

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::upstream::models::{Communication, Conversation, Participant};

/// Whether a conversation is still going on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConversationState {
    /// At least one participant has not ended.
    Active,
    /// Every participant has ended.
    Ended,
}

/// A queue the conversation passed through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct QueueRef {
    /// The queue's Genesys id.
    #[schema(example = "8f2a4c6e-1b3d-4f5a-9c7e-0d2b4f6a8c1e")]
    pub id: String,
    /// The queue's name, when Genesys gave it (absent otherwise).
    #[schema(example = "Support")]
    pub name: Option<String>,
}

/// An agent who took part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AgentRef {
    /// The agent's Genesys user id.
    #[schema(example = "6b7c8d9e-0f1a-4b2c-9d3e-4f5a6b7c8d9e")]
    pub user_id: String,
    /// The agent's display name, when Genesys gave it (absent otherwise).
    #[schema(example = "Jane Agent")]
    pub name: Option<String>,
    /// The wrap-up code the agent chose, once chosen.
    pub wrapup: Option<WrapupRef>,
}

/// A wrap-up code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct WrapupRef {
    /// The wrap-up code's Genesys id.
    #[schema(example = "e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a5b")]
    pub code: String,
    /// The wrap-up code's name, when Genesys gave it (absent otherwise).
    #[schema(example = "Resolved")]
    pub name: Option<String>,
}

/// One participant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ParticipantView {
    /// The participant's id within this conversation (not a user id); absent when Genesys
    /// gave none.
    pub id: Option<String>,
    /// `customer`, `ivr`, `acd`, `agent`, ...
    #[schema(example = "agent")]
    pub purpose: Option<String>,
    /// The participant's display name (an agent's name, a caller's number or name), when
    /// Genesys gave one.
    pub name: Option<String>,
    /// The Genesys user id, for a participant who is a user (an agent); absent otherwise.
    pub user_id: Option<String>,
    /// The queue this participant came through, when routed by a queue; absent otherwise.
    pub queue_id: Option<String>,
    /// When the participant joined the conversation (UTC), when Genesys gave it.
    pub start: Option<DateTime<Utc>>,
    /// When the participant was connected (UTC); absent when it never was, or not yet.
    pub connected: Option<DateTime<Utc>>,
    /// When the participant left (UTC); absent while it is still in the conversation.
    pub end: Option<DateTime<Utc>>,
}

/// A conversation, simplified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ConversationView {
    /// The conversation's Genesys id (the id asked for).
    #[schema(example = "5f1c2b7e-8a4d-4c31-9e0f-2d6b7a9c1e44")]
    pub id: String,
    /// `active` while any participant has not ended, `ended` once all have.
    pub state: ConversationState,
    /// When the conversation started (UTC).
    pub start: DateTime<Utc>,
    /// When the conversation ended (absent while active).
    pub end: Option<DateTime<Utc>>,
    /// Seconds from start to end (absent while active).
    pub duration_seconds: Option<i64>,
    /// `voice`, `chat`, `email`, `message`, `callback`.
    #[schema(example = json!(["voice"]))]
    pub media_types: Vec<String>,
    /// `inbound` or `outbound`, as the customer's side saw it.
    #[schema(example = "inbound")]
    pub direction: Option<String>,
    /// The queues it passed through, in the order of its participants, each once (empty
    /// when it was never queued).
    pub queues: Vec<QueueRef>,
    /// The agents who took part, in order, each with the wrap-up code they chose (empty
    /// when no agent took part).
    pub agents: Vec<AgentRef>,
    /// The external tag an integration set on the conversation; absent when none was set.
    pub external_tag: Option<String>,
    /// Every participant (customer, IVR, ACD, agents...), in Genesys' order.
    pub participants: Vec<ParticipantView>,
}

fn media(participant: &Participant) -> impl Iterator<Item = (&'static str, &Communication)> {
    participant
        .calls
        .iter()
        .map(|c| ("voice", c))
        .chain(participant.chats.iter().map(|c| ("chat", c)))
        .chain(participant.emails.iter().map(|c| ("email", c)))
        .chain(participant.messages.iter().map(|c| ("message", c)))
        .chain(participant.callbacks.iter().map(|c| ("callback", c)))
}

impl ConversationView {
    /// The view of a Genesys conversation document.
    #[must_use]
    pub fn from_conversation(conversation: &Conversation) -> Self {
        let participants = &conversation.participants;
        let active = participants.iter().any(|p| p.end_time.is_none())
            || participants.is_empty() && conversation.end_time.is_none();
        let end = if active {
            None
        } else {
            participants
                .iter()
                .filter_map(|p| p.end_time)
                .max()
                .or(conversation.end_time)
        };
        let mut media_types: Vec<String> = Vec::new();
        for participant in participants {
            for (name, _) in media(participant) {
                if !media_types.iter().any(|m| m == name) {
                    media_types.push(name.to_owned());
                }
            }
        }
        let direction = participants
            .iter()
            .find(|p| p.purpose.as_deref() == Some("customer"))
            .into_iter()
            .chain(participants.iter())
            .find_map(|p| media(p).find_map(|(_, c)| c.direction.clone()));
        let mut queues: Vec<QueueRef> = Vec::new();
        for participant in participants {
            if let Some(id) = &participant.queue_id {
                if !queues.iter().any(|q| &q.id == id) {
                    queues.push(QueueRef {
                        id: id.clone(),
                        name: participant.queue_name.clone(),
                    });
                }
            }
        }
        let agents = participants
            .iter()
            .filter(|p| p.purpose.as_deref() == Some("agent"))
            .filter_map(|p| {
                Some(AgentRef {
                    user_id: p.user_id.clone()?,
                    name: p.name.clone(),
                    wrapup: p.wrapup.as_ref().and_then(|w| {
                        Some(WrapupRef {
                            code: w.code.clone()?,
                            name: w.name.clone(),
                        })
                    }),
                })
            })
            .collect();
        Self {
            // Genesys' model leaves `id` optional: a document without one gives an empty
            // id here, for the caller (which knows the id it fetched) to fill in.
            id: conversation.id.clone().unwrap_or_default(),
            state: if active {
                ConversationState::Active
            } else {
                ConversationState::Ended
            },
            start: conversation.start_time,
            end,
            duration_seconds: end.map(|e| (e - conversation.start_time).num_seconds()),
            media_types,
            direction,
            queues,
            agents,
            external_tag: conversation.external_tag.clone(),
            participants: participants
                .iter()
                .map(|p| ParticipantView {
                    id: p.id.clone(),
                    purpose: p.purpose.clone(),
                    name: p.name.clone(),
                    user_id: p.user_id.clone(),
                    queue_id: p.queue_id.clone(),
                    start: p.start_time,
                    connected: p.connected_time,
                    end: p.end_time,
                })
                .collect(),
        }
    }

    /// Whether every agent that must wrap up has done so.
    #[must_use]
    pub fn wrapped_up(conversation: &Conversation) -> bool {
        conversation
            .participants
            .iter()
            .filter(|p| p.purpose.as_deref() == Some("agent") && p.wrapup_required.unwrap_or(false))
            .all(|p| p.wrapup.as_ref().is_some_and(|w| w.code.is_some()))
    }
}
