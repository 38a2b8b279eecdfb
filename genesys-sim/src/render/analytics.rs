//! The analytics details record (`AnalyticsConversationWithoutAttributes`) of a
//! conversation at an instant, as it goes on the wire: built from the flat record
//! ([`super::flat`]) that queries filter, order and aggregate over, so what a filter sees
//! is exactly what the API returns. Written as JSON by `serde` or, faster and byte for
//! byte the same, by [`AnalyticsConversation::write_json`].

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::flat::{self, FlatConversation};
use super::json::{put_id, put_int, put_key, put_list, put_literal, put_str, put_time};
use super::timestamp;
use crate::data::{ConversationRecord, Direction, Org};

/// `AnalyticsConversationWithoutAttributes` (the fields the simulator fills).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsConversation {
    pub conversation_id: Uuid,
    #[serde(serialize_with = "timestamp::required")]
    pub conversation_start: DateTime<Utc>,
    #[serde(
        serialize_with = "timestamp::optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub conversation_end: Option<DateTime<Utc>>,
    pub conversation_initiator: &'static str,
    pub customer_participation: bool,
    pub division_ids: Vec<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_tag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_stats_min_conversation_mos: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_stats_min_conversation_r_factor: Option<f64>,
    pub originating_direction: &'static str,
    pub participants: Vec<AnalyticsParticipant>,
}

/// `AnalyticsParticipantWithoutAttributes`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsParticipant {
    pub participant_id: Uuid,
    pub participant_name: String,
    pub purpose: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Uuid>,
    pub sessions: Vec<AnalyticsSession>,
}

/// `AnalyticsSession`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsSession {
    pub ani: String,
    pub direction: &'static str,
    pub dnis: String,
    pub media_type: &'static str,
    pub provider: &'static str,
    pub session_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_routings: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used_routing: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow: Option<AnalyticsFlow>,
    pub metrics: Vec<AnalyticsMetric>,
    pub segments: Vec<AnalyticsSegment>,
}

/// `AnalyticsFlow` of an IVR session.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsFlow {
    pub entry_reason: String,
    pub entry_type: &'static str,
    pub flow_id: Uuid,
    pub flow_name: &'static str,
    pub flow_type: &'static str,
    pub flow_version: &'static str,
    pub starting_language: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ending_language: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer_target_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer_target_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer_type: Option<&'static str>,
}

/// `AnalyticsSessionMetric`: `value` in milliseconds for `t` metrics, a count for `n`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsMetric {
    #[serde(serialize_with = "timestamp::required")]
    pub emit_date: DateTime<Utc>,
    pub name: &'static str,
    pub value: i64,
}

/// `AnalyticsConversationSegment`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsSegment {
    #[serde(serialize_with = "timestamp::required")]
    pub segment_start: DateTime<Utc>,
    #[serde(
        serialize_with = "timestamp::optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub segment_end: Option<DateTime<Utc>>,
    pub segment_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disconnect_type: Option<&'static str>,
    pub conference: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wrap_up_code: Option<Uuid>,
}

/// The record as it reads once everything has happened.
#[must_use]
pub fn complete(record: &ConversationRecord, org: &Org) -> AnalyticsConversation {
    FlatConversation::complete(record, org).to_wire()
}

/// The record as the API shows it at `now`: what has not happened yet is left out.
#[must_use]
pub fn at(record: &ConversationRecord, org: &Org, now: DateTime<Utc>) -> AnalyticsConversation {
    FlatConversation::at(record, org, now).to_wire()
}

impl FlatConversation<'_> {
    /// The wire record.
    #[must_use]
    pub fn to_wire(&self) -> AnalyticsConversation {
        let record = self.record;
        let media = record.media;
        let participants = self
            .parties
            .iter()
            .enumerate()
            .map(|(index, party)| AnalyticsParticipant {
                participant_id: party.participant_id,
                participant_name: party.name.to_owned(),
                purpose: party.purpose,
                user_id: party.user_id,
                sessions: vec![AnalyticsSession {
                    ani: self.ani.to_owned(),
                    direction: record.direction.as_str(),
                    dnis: self.dnis.to_owned(),
                    media_type: media.as_str(),
                    provider: flat::provider(media),
                    session_id: party.session_id,
                    peer_id: party.peer_id,
                    remote: party.remote.map(str::to_owned),
                    requested_routings: party.routed.then(|| vec!["Standard"]),
                    used_routing: party.used_routing,
                    flow: party.flow.map(|flow| {
                        let done = !flow.open;
                        AnalyticsFlow {
                            entry_reason: flow.queue.dnis.clone(),
                            entry_type: "dnis",
                            flow_id: flow.flow_id,
                            flow_name: "Main IVR",
                            flow_type: "INBOUNDCALL",
                            flow_version: "12.0",
                            starting_language: "en-us",
                            ending_language: done.then_some("en-us"),
                            exit_reason: done.then_some("TRANSFER"),
                            transfer_target_address: done.then(|| flow.queue.id.to_string()),
                            transfer_target_name: done.then(|| flow.queue.name.clone()),
                            transfer_type: done.then_some("ACD"),
                        }
                    }),
                    metrics: self.metrics_of(index).copied().collect(),
                    segments: self.segments_of(index).copied().collect(),
                }],
            })
            .collect();
        AnalyticsConversation {
            conversation_id: record.id,
            conversation_start: record.start,
            conversation_end: self.end,
            conversation_initiator: if record.direction == Direction::Inbound {
                "customer"
            } else {
                "agent"
            },
            customer_participation: true,
            division_ids: self.division_ids().collect(),
            external_tag: record.external_tag.clone(),
            media_stats_min_conversation_mos: self.min_mos,
            media_stats_min_conversation_r_factor: self
                .min_mos
                .map(|mos| (mos * 20.4 * 10.0).round() / 10.0),
            originating_direction: record.direction.as_str(),
            participants,
        }
    }
}

impl AnalyticsConversation {
    /// Appends the record's JSON to `out`: byte for byte what `serde_json` writes for it,
    /// several times faster (a details page carries a hundred of these records).
    pub fn write_json(&self, out: &mut String) {
        out.push('{');
        put_key(out, "conversationId");
        put_id(out, self.conversation_id);
        put_key(out, "conversationStart");
        put_time(out, self.conversation_start);
        if let Some(end) = self.conversation_end {
            put_key(out, "conversationEnd");
            put_time(out, end);
        }
        put_key(out, "conversationInitiator");
        put_literal(out, self.conversation_initiator);
        put_key(out, "customerParticipation");
        out.push_str(if self.customer_participation {
            "true"
        } else {
            "false"
        });
        put_key(out, "divisionIds");
        put_list(out, &self.division_ids, |out, id| put_id(out, *id));
        if let Some(tag) = &self.external_tag {
            put_key(out, "externalTag");
            put_str(out, tag);
        }
        for (key, value) in [
            (
                "mediaStatsMinConversationMos",
                self.media_stats_min_conversation_mos,
            ),
            (
                "mediaStatsMinConversationRFactor",
                self.media_stats_min_conversation_r_factor,
            ),
        ] {
            if let Some(value) = value {
                put_key(out, key);
                out.push_str(&serde_json::to_string(&value).expect("a number serializes"));
            }
        }
        put_key(out, "originatingDirection");
        put_literal(out, self.originating_direction);
        put_key(out, "participants");
        put_list(out, &self.participants, |out, p| p.write_json(out));
        out.push('}');
    }
}

impl AnalyticsParticipant {
    fn write_json(&self, out: &mut String) {
        out.push('{');
        put_key(out, "participantId");
        put_id(out, self.participant_id);
        put_key(out, "participantName");
        put_str(out, &self.participant_name);
        put_key(out, "purpose");
        put_literal(out, self.purpose);
        if let Some(user) = self.user_id {
            put_key(out, "userId");
            put_id(out, user);
        }
        put_key(out, "sessions");
        put_list(out, &self.sessions, |out, s| s.write_json(out));
        out.push('}');
    }
}

impl AnalyticsSession {
    fn write_json(&self, out: &mut String) {
        out.push('{');
        put_key(out, "ani");
        put_str(out, &self.ani);
        put_key(out, "direction");
        put_literal(out, self.direction);
        put_key(out, "dnis");
        put_str(out, &self.dnis);
        put_key(out, "mediaType");
        put_literal(out, self.media_type);
        put_key(out, "provider");
        put_literal(out, self.provider);
        put_key(out, "sessionId");
        put_id(out, self.session_id);
        if let Some(peer) = self.peer_id {
            put_key(out, "peerId");
            put_id(out, peer);
        }
        if let Some(remote) = &self.remote {
            put_key(out, "remote");
            put_str(out, remote);
        }
        if let Some(routings) = &self.requested_routings {
            put_key(out, "requestedRoutings");
            put_list(out, routings, |out, r| put_literal(out, r));
        }
        if let Some(used) = self.used_routing {
            put_key(out, "usedRouting");
            put_literal(out, used);
        }
        if let Some(flow) = &self.flow {
            put_key(out, "flow");
            flow.write_json(out);
        }
        put_key(out, "metrics");
        put_list(out, &self.metrics, |out, m| {
            out.push('{');
            put_key(out, "emitDate");
            put_time(out, m.emit_date);
            put_key(out, "name");
            put_literal(out, m.name);
            put_key(out, "value");
            put_int(out, m.value);
            out.push('}');
        });
        put_key(out, "segments");
        put_list(out, &self.segments, |out, s| s.write_json(out));
        out.push('}');
    }
}

impl AnalyticsFlow {
    fn write_json(&self, out: &mut String) {
        out.push('{');
        put_key(out, "entryReason");
        put_str(out, &self.entry_reason);
        put_key(out, "entryType");
        put_literal(out, self.entry_type);
        put_key(out, "flowId");
        put_id(out, self.flow_id);
        for (key, value) in [
            ("flowName", self.flow_name),
            ("flowType", self.flow_type),
            ("flowVersion", self.flow_version),
            ("startingLanguage", self.starting_language),
        ] {
            put_key(out, key);
            put_literal(out, value);
        }
        for (key, value) in [
            ("endingLanguage", self.ending_language),
            ("exitReason", self.exit_reason),
            (
                "transferTargetAddress",
                self.transfer_target_address.as_deref(),
            ),
            ("transferTargetName", self.transfer_target_name.as_deref()),
            ("transferType", self.transfer_type),
        ] {
            if let Some(value) = value {
                put_key(out, key);
                put_str(out, value);
            }
        }
        out.push('}');
    }
}

impl AnalyticsSegment {
    fn write_json(&self, out: &mut String) {
        out.push('{');
        put_key(out, "segmentStart");
        put_time(out, self.segment_start);
        if let Some(end) = self.segment_end {
            put_key(out, "segmentEnd");
            put_time(out, end);
        }
        put_key(out, "segmentType");
        put_literal(out, self.segment_type);
        if let Some(how) = self.disconnect_type {
            put_key(out, "disconnectType");
            put_literal(out, how);
        }
        put_key(out, "conference");
        out.push_str(if self.conference { "true" } else { "false" });
        if let Some(queue) = self.queue_id {
            put_key(out, "queueId");
            put_id(out, queue);
        }
        if let Some(code) = self.wrap_up_code {
            put_key(out, "wrapUpCode");
            put_id(out, code);
        }
        out.push('}');
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::data::Dataset;

    #[test]
    fn the_direct_writer_writes_what_serde_writes() {
        let anchor = DateTime::parse_from_rfc3339("2025-03-12T00:00:00Z")
            .expect("valid")
            .with_timezone(&Utc);
        let data = Dataset::generate(4, anchor, 2, 300, 12);
        for record in &data.conversations {
            let span = (record.last_event() - record.start).num_milliseconds();
            for step in 0..=8 {
                let now = record.start + Duration::milliseconds(span * step / 8 - 1 + step % 3);
                let wire = at(record, &data.org, now);
                let mut written = String::new();
                wire.write_json(&mut written);
                let serde = serde_json::to_string(&wire).expect("serializes");
                assert_eq!(written, serde, "{} at {now}", record.id);
            }
        }
    }
}
