//! Renders a [`ConversationRecord`](crate::data::ConversationRecord) as Genesys would show
//! it at a given instant: the real-time `Conversation` document and the analytics
//! `AnalyticsConversationWithoutAttributes` record. What has not happened yet at that
//! instant (a later participant, an end time, a metric) is simply absent.

pub mod analytics;
pub mod realtime;

use chrono::{DateTime, Utc};

/// Genesys' timestamp format: RFC 3339, UTC, milliseconds, `Z`.
#[must_use]
pub fn format_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// serde helpers writing timestamps in [`format_time`]'s form.
pub mod timestamp {
    use chrono::{DateTime, Utc};
    use serde::Serializer;

    /// Serializes a timestamp.
    pub fn required<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_time(*at))
    }

    /// Serializes an optional timestamp (use with `skip_serializing_if = "Option::is_none"`).
    #[allow(clippy::ref_option)]
    pub fn optional<S: Serializer>(at: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => required(at, s),
            None => s.serialize_none(),
        }
    }
}
