//! How the analytics record answers filter predicates: per conversation (conversation
//! filters), per segment (segment filters) and per metric observation (aggregates).

use uuid::Uuid;

use super::filter::Subject;
use crate::render::analytics::{
    AnalyticsConversation, AnalyticsParticipant, AnalyticsSegment, AnalyticsSession,
};

impl Subject for AnalyticsConversation {
    fn dimension(&self, name: &str) -> Vec<String> {
        match name {
            "conversationId" => vec![self.conversation_id.to_string()],
            "divisionId" => self.division_ids.iter().map(Uuid::to_string).collect(),
            "originatingDirection" => vec![self.originating_direction.to_owned()],
            "conversationInitiator" => vec![self.conversation_initiator.to_owned()],
            "customerParticipation" => vec![self.customer_participation.to_string()],
            "externalTag" => self.external_tag.iter().cloned().collect(),
            "conversationStart" => vec![crate::render::format_time(self.conversation_start)],
            "conversationEnd" => self
                .conversation_end
                .map(crate::render::format_time)
                .into_iter()
                .collect(),
            _ => Vec::new(),
        }
    }

    fn metric(&self, name: &str) -> Vec<i64> {
        self.participants
            .iter()
            .flat_map(|p| &p.sessions)
            .flat_map(|s| &s.metrics)
            .filter(|m| m.name == name)
            .map(|m| m.value)
            .collect()
    }
}

/// One segment in its session and participant: what a segment filter sees.
#[derive(Debug, Clone, Copy)]
pub struct SegmentContext<'a> {
    pub participant: &'a AnalyticsParticipant,
    pub session: &'a AnalyticsSession,
    pub segment: &'a AnalyticsSegment,
}

impl AnalyticsConversation {
    /// Every segment with its session and participant.
    pub fn segment_contexts(&self) -> impl Iterator<Item = SegmentContext<'_>> {
        self.participants.iter().flat_map(|participant| {
            participant.sessions.iter().flat_map(move |session| {
                session.segments.iter().map(move |segment| SegmentContext {
                    participant,
                    session,
                    segment,
                })
            })
        })
    }
}

impl Subject for SegmentContext<'_> {
    fn dimension(&self, name: &str) -> Vec<String> {
        let one = |v: Option<String>| v.into_iter().collect();
        match name {
            "queueId" => one(self.segment.queue_id.map(|id| id.to_string())),
            "wrapUpCode" => one(self.segment.wrap_up_code.map(|id| id.to_string())),
            "segmentType" => vec![self.segment.segment_type.to_owned()],
            "disconnectType" => one(self.segment.disconnect_type.map(str::to_owned)),
            "conference" => vec![self.segment.conference.to_string()],
            "segmentEnd" => one(self.segment.segment_end.map(crate::render::format_time)),
            "userId" => one(self.participant.user_id.map(|id| id.to_string())),
            "purpose" => vec![self.participant.purpose.to_owned()],
            "participantName" => vec![self.participant.participant_name.clone()],
            "mediaType" => vec![self.session.media_type.to_owned()],
            "direction" => vec![self.session.direction.to_owned()],
            "ani" => vec![self.session.ani.clone()],
            "dnis" => vec![self.session.dnis.clone()],
            "provider" => vec![self.session.provider.to_owned()],
            "sessionId" => vec![self.session.session_id.to_string()],
            "usedRouting" => one(self.session.used_routing.map(str::to_owned)),
            "requestedRouting" => self
                .session
                .requested_routings
                .iter()
                .flatten()
                .map(|r| (*r).to_owned())
                .collect(),
            _ => Vec::new(),
        }
    }

    fn metric(&self, name: &str) -> Vec<i64> {
        match (name, self.segment.segment_end) {
            ("tSegmentDuration", Some(end)) => {
                vec![(end - self.segment.segment_start).num_milliseconds()]
            }
            _ => Vec::new(),
        }
    }
}
