//! [`ConversationSummary`]: one search hit, in plain terms, from Genesys' analytics record.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::conversations::ConversationView;
use crate::upstream::models::AnalyticsConversation;

/// One conversation found by a search.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ConversationSummary {
    /// The conversation's Genesys id (what `GET /conversations/{id}` takes).
    #[schema(example = "5f1c2b7e-8a4d-4c31-9e0f-2d6b7a9c1e44")]
    pub id: String,
    /// When the conversation started (UTC).
    pub start: DateTime<Utc>,
    /// Absent while the conversation is still going on.
    pub end: Option<DateTime<Utc>>,
    /// Seconds from start to end.
    pub duration_seconds: Option<f64>,
    /// The media type of the conversation's sessions (`voice`, `chat`, ...).
    #[schema(example = "voice")]
    pub media_type: Option<String>,
    /// The conversation's originating direction.
    #[schema(example = "inbound")]
    pub direction: Option<String>,
    /// Queues it passed through, in order.
    pub queue_ids: Vec<String>,
    /// Agents (user ids) who took part, in order.
    pub user_ids: Vec<String>,
    /// The last wrap-up code chosen.
    pub wrapup_code: Option<String>,
    /// The Genesys divisions the conversation belongs to (empty when Genesys names none).
    pub division_ids: Vec<String>,
    /// Handle time over all agents (talk + hold + after-call work), seconds.
    pub handle_seconds: Option<f64>,
    /// Talk time over all agents, seconds; absent when Genesys recorded none.
    pub talk_seconds: Option<f64>,
    /// Time on hold over all agents, seconds; absent when Genesys recorded none.
    pub hold_seconds: Option<f64>,
    /// After-call work (wrap-up) time over all agents, seconds; absent when Genesys
    /// recorded none.
    pub acw_seconds: Option<f64>,
    /// The live conversation, with `include=conversation` (absent when not asked for, past
    /// the hydration bound, or when it could not be fetched in time).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<ConversationView>)]
    pub conversation: Option<serde_json::Value>,
}
fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

impl ConversationSummary {
    /// The summary of an analytics record.
    #[must_use]
    pub fn from_analytics(c: &AnalyticsConversation) -> Self {
        let sessions = || c.participants.iter().flat_map(|p| &p.sessions);
        let metric_sum = |name: &str| -> Option<f64> {
            let values: Vec<i64> = sessions()
                .flat_map(|s| &s.metrics)
                .filter(|m| m.name.as_deref() == Some(name))
                .filter_map(|m| m.value)
                .collect();
            (!values.is_empty()).then(|| seconds(values.iter().sum()))
        };
        let mut queue_ids: Vec<String> = Vec::new();
        for segment in sessions().flat_map(|s| &s.segments) {
            if let Some(queue) = &segment.queue_id {
                if !queue_ids.contains(queue) {
                    queue_ids.push(queue.clone());
                }
            }
        }
        let mut user_ids: Vec<String> = Vec::new();
        for participant in &c.participants {
            if let Some(user) = &participant.user_id {
                if !user_ids.contains(user) {
                    user_ids.push(user.clone());
                }
            }
        }
        let wrapup_code = sessions()
            .flat_map(|s| &s.segments)
            .filter(|s| s.wrap_up_code.is_some())
            .max_by_key(|s| s.segment_start)
            .and_then(|s| s.wrap_up_code.clone());
        Self {
            id: c.conversation_id.clone(),
            start: c.conversation_start,
            end: c.conversation_end,
            duration_seconds: c
                .conversation_end
                .map(|end| seconds((end - c.conversation_start).num_milliseconds())),
            media_type: sessions().find_map(|s| s.media_type.clone()),
            direction: c.originating_direction.clone(),
            queue_ids,
            user_ids,
            wrapup_code,
            division_ids: c.division_ids.clone(),
            handle_seconds: metric_sum("tHandle"),
            talk_seconds: metric_sum("tTalk"),
            hold_seconds: metric_sum("tHeld"),
            acw_seconds: metric_sum("tAcw"),
            conversation: None,
        }
    }
}
