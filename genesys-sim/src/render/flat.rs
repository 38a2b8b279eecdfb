//! The analytics record of a conversation at an instant as flat tables: its participants
//! (each with its one session), their segments and their metrics, borrowing every text from
//! the conversation record and the org. This is the one description of what the analytics
//! API shows: the wire record ([`super::analytics`]) is built from it, and queries evaluate
//! filters, orderings and aggregates against it (see `query::subjects`) without building
//! the wire record, which is what lets a query scan a month of a contact centre quickly.
//!
//! A [`FlatConversation`] can be refilled for another conversation so that a scan reuses its
//! tables instead of allocating for every conversation. Filling the tables from a record is
//! [`fill`]'s; leaving out what has not happened yet is [`FlatConversation::truncate`]'s.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::analytics::{AnalyticsMetric, AnalyticsSegment};
use crate::data::{ConversationRecord, MediaType, Org, Queue};

mod fill;

/// The IVR flow of a participant.
#[derive(Debug, Clone, Copy)]
pub struct Flow<'a> {
    pub flow_id: Uuid,
    /// The queue the flow transfers to (the conversation's first queue).
    pub queue: &'a Queue,
    /// The flow has not finished yet: its exit and transfer are not known.
    pub open: bool,
}

/// One participant with its (only) session.
#[derive(Debug, Clone, Copy)]
pub struct Party<'a> {
    pub participant_id: Uuid,
    pub name: &'a str,
    pub purpose: &'static str,
    pub user_id: Option<Uuid>,
    pub session_id: Uuid,
    pub peer_id: Option<Uuid>,
    pub remote: Option<&'a str>,
    /// `requestedRoutings` is `["Standard"]`.
    pub routed: bool,
    pub used_routing: Option<&'static str>,
    pub flow: Option<Flow<'a>>,
}

/// The analytics record of one conversation as tables. Segments and metrics name their
/// party by index and are grouped by party, in party order.
#[derive(Debug, Clone)]
pub struct FlatConversation<'a> {
    pub record: &'a ConversationRecord,
    pub org: &'a Org,
    /// `ani` of every session.
    pub ani: &'a str,
    /// `dnis` of every session.
    pub dnis: &'a str,
    /// `conversationEnd`: known once everything (wrap-up included) is over.
    pub end: Option<DateTime<Utc>>,
    /// `mediaStatsMinConversationMos`: known once the conversation is over.
    pub min_mos: Option<f64>,
    pub parties: Vec<Party<'a>>,
    pub segments: Vec<(usize, AnalyticsSegment)>,
    pub metrics: Vec<(usize, AnalyticsMetric)>,
}

/// `provider` of a session of this media type.
#[must_use]
pub fn provider(media: MediaType) -> &'static str {
    match media {
        MediaType::Voice => "Edge",
        MediaType::Chat => "PureCloud Webchat v2",
        MediaType::Email => "PureCloud Email",
        MediaType::Message => "PureCloud Messaging",
    }
}

impl<'a> FlatConversation<'a> {
    /// The record as it reads once everything has happened.
    #[must_use]
    pub fn complete(record: &'a ConversationRecord, org: &'a Org) -> Self {
        let mut flat = Self {
            record,
            org,
            ani: "",
            dnis: "",
            end: None,
            min_mos: None,
            parties: Vec::with_capacity(6),
            segments: Vec::with_capacity(16),
            metrics: Vec::with_capacity(20),
        };
        flat.fill(record);
        flat
    }

    /// The record as the API shows it at `now`.
    #[must_use]
    pub fn at(record: &'a ConversationRecord, org: &'a Org, now: DateTime<Utc>) -> Self {
        let mut flat = Self::complete(record, org);
        flat.truncate(now);
        flat
    }

    /// Refills the tables with `record` (of the same org) as it reads once complete.
    pub fn refill(&mut self, record: &'a ConversationRecord) {
        self.fill(record);
    }

    /// Refills the tables with `record` (of the same org) as the API shows it at `now`.
    pub fn refill_at(&mut self, record: &'a ConversationRecord, now: DateTime<Utc>) {
        self.fill(record);
        self.truncate(now);
    }

    /// Leaves out what has not happened by `now`: later segments, metrics and participants,
    /// the ends of running segments, the end of the conversation, the flow's outcome.
    pub fn truncate(&mut self, now: DateTime<Utc>) {
        if self.record.is_over_at(now) {
            return;
        }
        self.end = None;
        self.min_mos = None;
        self.segments.retain(|(_, s)| s.segment_start <= now);
        for (_, s) in &mut self.segments {
            if s.segment_end.is_some_and(|end| end > now) {
                s.segment_end = None;
                s.disconnect_type = None;
                s.wrap_up_code = None;
            }
        }
        self.metrics.retain(|(_, m)| m.emit_date <= now);
        // A participant without a segment yet has not joined: drop it, renumbering the rest.
        let mut renumber = vec![usize::MAX; self.parties.len()];
        let mut kept = 0;
        for (index, party) in self.parties.iter_mut().enumerate() {
            let mut any = false;
            let mut open = false;
            for (_, s) in self.segments.iter().filter(|(p, _)| *p == index) {
                any = true;
                open |= s.segment_end.is_none();
            }
            if let Some(flow) = party.flow.as_mut() {
                flow.open = open;
            }
            if any {
                renumber[index] = kept;
                kept += 1;
            }
        }
        if kept < self.parties.len() {
            let mut index = 0;
            self.parties.retain(|_| {
                index += 1;
                renumber[index - 1] != usize::MAX
            });
            self.metrics.retain(|(p, _)| renumber[*p] != usize::MAX);
            for (p, _) in &mut self.segments {
                *p = renumber[*p];
            }
            for (p, _) in &mut self.metrics {
                *p = renumber[*p];
            }
        }
    }

    /// `divisionIds`: the divisions of the queues the conversation passed through, in order.
    pub fn division_ids(&self) -> impl Iterator<Item = Uuid> + '_ {
        let org = self.org;
        let legs = &self.record.legs;
        legs.iter().enumerate().filter_map(move |(i, leg)| {
            let division = org.queues[leg.queue].division;
            let seen = legs[..i]
                .iter()
                .any(|earlier| org.queues[earlier.queue].division == division);
            (!seen).then(|| org.divisions[division].id)
        })
    }

    /// The segments of party `party`, in order.
    pub fn segments_of(&self, party: usize) -> impl Iterator<Item = &AnalyticsSegment> + '_ {
        self.segments
            .iter()
            .filter(move |(p, _)| *p == party)
            .map(|(_, s)| s)
    }

    /// The metrics of party `party`, in order.
    pub fn metrics_of(&self, party: usize) -> impl Iterator<Item = &AnalyticsMetric> + '_ {
        self.metrics
            .iter()
            .filter(move |(p, _)| *p == party)
            .map(|(_, m)| m)
    }
}
