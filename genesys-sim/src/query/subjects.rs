//! How the analytics record answers filter predicates: per conversation (conversation
//! filters), per segment (segment filters) and per metric observation (aggregates).
//!
//! Every answer is read from the [`FlatConversation`] the wire record is built from, and is
//! the value the wire record prints (dimensions that the record does not carry have no
//! value), so what a filter sees is exactly what the API returns.

use super::filter::{DimensionValue, Operator, Predicate, Subject, Target};
use crate::data::{ConversationRecord, Org};
use crate::render::analytics::{AnalyticsMetric, AnalyticsSegment};
use crate::render::flat::{FlatConversation, Party, provider};

/// Whether `predicate` may hold for the conversation record (`segment`: on one of its
/// segments; else on the conversation), read from the record alone: false only when no
/// segment (or the conversation) can have the value it matches, at any instant. Lets a
/// query skip building the analytics record of a conversation a filter cannot select.
#[must_use]
pub fn may_hold(
    predicate: &Predicate,
    record: &ConversationRecord,
    org: &Org,
    segment: bool,
) -> bool {
    let agents = || record.legs.iter().filter_map(|leg| leg.agent.as_ref());
    let (name, value) = match (&predicate.target, predicate.operator) {
        (Target::Dimension(name), Operator::Matches) => match predicate.value.as_deref() {
            Some(value) => (name, value),
            None => return true,
        },
        // The conversation's values of the common agent metrics, as the flat record emits
        // them (a running conversation shows some of them).
        (Target::Metric(name), Operator::Matches) if !segment => {
            return match name.as_str() {
                "tHandle" => {
                    agents().any(|a| predicate.matches_metric(a.talk_ms() + a.hold_ms() + a.acw_ms))
                }
                "tTalk" | "tTalkComplete" => {
                    agents().any(|a| predicate.matches_metric(a.talk_ms()))
                }
                "tAcw" => agents().any(|a| predicate.matches_metric(a.acw_ms)),
                "tAcd" => record
                    .legs
                    .iter()
                    .filter_map(|leg| leg.acd.as_ref())
                    .any(|acd| predicate.matches_metric(acd.wait_ms)),
                _ => true,
            };
        }
        _ => return true,
    };
    let id = predicate.value_id;
    match (segment, name.as_str()) {
        (true, "queueId") => {
            id.is_some_and(|id| record.legs.iter().any(|leg| org.queues[leg.queue].id == id))
        }
        (true, "userId") => id.is_some_and(|id| agents().any(|a| org.agents[a.agent].id == id)),
        (true, "wrapUpCode") => {
            id.is_some_and(|id| agents().any(|a| org.wrapup_codes[a.wrapup].id == id))
        }
        (true, "mediaType") => record.media.as_str() == value,
        (true | false, "direction" | "originatingDirection") => record.direction.as_str() == value,
        (false, "conversationId") => id == Some(record.id),
        (false, "divisionId") => id.is_some_and(|id| {
            record
                .legs
                .iter()
                .any(|leg| org.divisions[org.queues[leg.queue].division].id == id)
        }),
        _ => true,
    }
}

impl Subject for FlatConversation<'_> {
    fn any_dimension(&self, name: &str, found: &mut dyn FnMut(DimensionValue<'_>) -> bool) -> bool {
        let record = self.record;
        match name {
            "conversationId" => found(DimensionValue::Id(record.id)),
            "divisionId" => self.division_ids().any(|id| found(DimensionValue::Id(id))),
            "originatingDirection" => found(DimensionValue::Text(record.direction.as_str())),
            "conversationInitiator" => found(DimensionValue::Text(
                if record.direction == crate::data::Direction::Inbound {
                    "customer"
                } else {
                    "agent"
                },
            )),
            "customerParticipation" => found(DimensionValue::Flag(true)),
            "externalTag" => record
                .external_tag
                .as_deref()
                .is_some_and(|tag| found(DimensionValue::Text(tag))),
            "conversationStart" => found(DimensionValue::Time(record.start)),
            "conversationEnd" => self.end.is_some_and(|end| found(DimensionValue::Time(end))),
            _ => false,
        }
    }

    fn any_metric(&self, name: &str, found: &mut dyn FnMut(i64) -> bool) -> bool {
        self.metrics
            .iter()
            .any(|(_, m)| m.name == name && found(m.value))
    }
}

/// One segment in its session and participant: what a segment filter sees.
#[derive(Debug, Clone, Copy)]
pub struct SegmentContext<'f, 'a> {
    pub conversation: &'f FlatConversation<'a>,
    pub party: &'f Party<'a>,
    pub segment: &'f AnalyticsSegment,
}

impl<'a> FlatConversation<'a> {
    /// Every segment with its session and participant.
    pub fn segment_contexts(&self) -> impl Iterator<Item = SegmentContext<'_, 'a>> {
        self.segments
            .iter()
            .map(move |(party, segment)| SegmentContext {
                conversation: self,
                party: &self.parties[*party],
                segment,
            })
    }
}

impl Subject for SegmentContext<'_, '_> {
    fn any_dimension(&self, name: &str, found: &mut dyn FnMut(DimensionValue<'_>) -> bool) -> bool {
        let party = self.party;
        let segment = self.segment;
        let record = self.conversation.record;
        match name {
            "queueId" => segment
                .queue_id
                .is_some_and(|id| found(DimensionValue::Id(id))),
            "wrapUpCode" => segment
                .wrap_up_code
                .is_some_and(|id| found(DimensionValue::Id(id))),
            "segmentType" => found(DimensionValue::Text(segment.segment_type)),
            "disconnectType" => segment
                .disconnect_type
                .is_some_and(|how| found(DimensionValue::Text(how))),
            "conference" => found(DimensionValue::Flag(segment.conference)),
            "segmentEnd" => segment
                .segment_end
                .is_some_and(|end| found(DimensionValue::Time(end))),
            "userId" => party
                .user_id
                .is_some_and(|id| found(DimensionValue::Id(id))),
            "purpose" => found(DimensionValue::Text(party.purpose)),
            "participantName" => found(DimensionValue::Text(party.name)),
            "mediaType" => found(DimensionValue::Text(record.media.as_str())),
            "direction" => found(DimensionValue::Text(record.direction.as_str())),
            "ani" => found(DimensionValue::Text(self.conversation.ani)),
            "dnis" => found(DimensionValue::Text(self.conversation.dnis)),
            "provider" => found(DimensionValue::Text(provider(record.media))),
            "sessionId" => found(DimensionValue::Id(party.session_id)),
            "usedRouting" => party
                .used_routing
                .is_some_and(|how| found(DimensionValue::Text(how))),
            "requestedRouting" => party.routed && found(DimensionValue::Text("Standard")),
            _ => false,
        }
    }

    fn any_metric(&self, name: &str, found: &mut dyn FnMut(i64) -> bool) -> bool {
        match (name, self.segment.segment_end) {
            ("tSegmentDuration", Some(end)) => {
                found((end - self.segment.segment_start).num_milliseconds())
            }
            _ => false,
        }
    }
}

/// One metric of a session with the dimensions of its session: what an aggregates filter
/// sees and what an aggregates query groups.
///
/// Its dimensions are `conversationId`, `originatingDirection`, `mediaType`, `direction`,
/// `purpose`, `queueId` (the session's queue), `userId`, `wrapUpCode` and `divisionId` (the
/// queue's division, else the conversation's first).
#[derive(Debug, Clone, Copy)]
pub struct Observation<'f, 'a> {
    pub conversation: &'f FlatConversation<'a>,
    pub party: usize,
    /// The metric's name as observed (`tWait` is observed wherever `tAcd` is).
    pub name: &'static str,
    pub metric: &'f AnalyticsMetric,
}

impl Observation<'_, '_> {
    /// The value of dimension `name`, when the observation has one (never more than one).
    #[must_use]
    pub fn value(&self, name: &str) -> Option<DimensionValue<'static>> {
        let conversation = self.conversation;
        let record = conversation.record;
        let party = &conversation.parties[self.party];
        let queue_id = || {
            conversation
                .segments_of(self.party)
                .find_map(|s| s.queue_id)
        };
        match name {
            "conversationId" => Some(DimensionValue::Id(record.id)),
            "originatingDirection" => Some(DimensionValue::Text(record.direction.as_str())),
            "mediaType" => Some(DimensionValue::Text(record.media.as_str())),
            "direction" => Some(DimensionValue::Text(record.direction.as_str())),
            "purpose" => Some(DimensionValue::Text(party.purpose)),
            "queueId" => queue_id().map(DimensionValue::Id),
            "userId" => party.user_id.map(DimensionValue::Id),
            "wrapUpCode" => conversation
                .segments_of(self.party)
                .find_map(|s| s.wrap_up_code)
                .map(DimensionValue::Id),
            "divisionId" => {
                let org = conversation.org;
                queue_id()
                    .and_then(|q| org.queues.iter().find(|queue| queue.id == q))
                    .map(|queue| org.divisions[queue.division].id)
                    .or_else(|| conversation.division_ids().next())
                    .map(DimensionValue::Id)
            }
            _ => None,
        }
    }
}

impl Subject for Observation<'_, '_> {
    fn any_dimension(&self, name: &str, found: &mut dyn FnMut(DimensionValue<'_>) -> bool) -> bool {
        self.value(name).is_some_and(found)
    }

    fn any_metric(&self, name: &str, found: &mut dyn FnMut(i64) -> bool) -> bool {
        self.name == name && found(self.metric.value)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Duration, Utc};
    use serde_json::{Value, json};

    use super::*;
    use crate::config::AnalyticsLimits;
    use crate::data::Dataset;
    use crate::query::details::DetailsQuery;
    use crate::query::vocabulary;

    fn sample() -> Dataset {
        let anchor = DateTime::parse_from_rfc3339("2025-03-12T00:00:00Z")
            .expect("valid")
            .with_timezone(&Utc);
        Dataset::generate(8, anchor, 2, 250, 10)
    }

    /// Instants across a conversation's life, from before its start to after its end.
    fn instants(record: &ConversationRecord) -> impl Iterator<Item = DateTime<Utc>> {
        let span = (record.last_event() - record.start).num_milliseconds();
        let start = record.start;
        (0..=6).map(move |step| start + Duration::milliseconds(span * step / 5 - 1 + step % 2))
    }

    /// The wire forms in a JSON value (a string, a flag, or a list of them).
    fn texts(value: &Value) -> Vec<String> {
        match value {
            Value::String(text) => vec![text.clone()],
            Value::Bool(flag) => vec![flag.to_string()],
            Value::Array(items) => items.iter().flat_map(texts).collect(),
            _ => Vec::new(),
        }
    }

    /// A conversation dimension as a reader of the wire record finds it.
    fn conversation_dimension(wire: &Value, name: &str) -> Vec<String> {
        match name {
            "divisionId" => texts(&wire["divisionIds"]),
            "conversationId"
            | "originatingDirection"
            | "conversationInitiator"
            | "customerParticipation"
            | "externalTag"
            | "conversationStart"
            | "conversationEnd" => texts(&wire[name]),
            _ => Vec::new(),
        }
    }

    /// A segment dimension as a reader of the wire record finds it.
    fn segment_dimension(
        participant: &Value,
        session: &Value,
        segment: &Value,
        name: &str,
    ) -> Vec<String> {
        match name {
            "requestedRouting" => texts(&session["requestedRoutings"]),
            "queueId" | "wrapUpCode" | "segmentType" | "disconnectType" | "conference"
            | "segmentEnd" => texts(&segment[name]),
            "userId" | "purpose" | "participantName" => texts(&participant[name]),
            "mediaType" | "direction" | "ani" | "dnis" | "provider" | "sessionId"
            | "usedRouting" => texts(&session[name]),
            _ => Vec::new(),
        }
    }

    fn time(value: &Value) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(value.as_str().expect("a time"))
            .expect("valid")
            .with_timezone(&Utc)
    }

    #[test]
    fn filters_see_what_the_wire_record_shows() {
        let data = sample();
        for record in &data.conversations {
            for now in instants(record).filter(|&now| now >= record.start) {
                let flat = FlatConversation::at(record, &data.org, now);
                let wire = serde_json::to_value(flat.to_wire()).expect("serializes");
                for name in vocabulary::CONVERSATION_DIMENSIONS {
                    assert_eq!(
                        flat.dimension(name),
                        conversation_dimension(&wire, name),
                        "{name}"
                    );
                }
                let metrics: Vec<&Value> = wire["participants"]
                    .as_array()
                    .expect("participants")
                    .iter()
                    .flat_map(|p| p["sessions"].as_array().expect("sessions"))
                    .flat_map(|s| s["metrics"].as_array().expect("metrics"))
                    .collect();
                for name in vocabulary::CONVERSATION_METRICS {
                    let expected: Vec<i64> = metrics
                        .iter()
                        .filter(|m| m["name"] == *name)
                        .map(|m| m["value"].as_i64().expect("value"))
                        .collect();
                    assert_eq!(flat.metric(name), expected, "{name}");
                }
                let mut contexts = flat.segment_contexts();
                for participant in wire["participants"].as_array().expect("participants") {
                    for session in participant["sessions"].as_array().expect("sessions") {
                        for segment in session["segments"].as_array().expect("segments") {
                            let context = contexts.next().expect("as many segments");
                            for name in vocabulary::SEGMENT_DIMENSIONS {
                                assert_eq!(
                                    context.dimension(name),
                                    segment_dimension(participant, session, segment, name),
                                    "{name} of {segment}"
                                );
                            }
                            let duration: Vec<i64> = if segment["segmentEnd"].is_null() {
                                Vec::new()
                            } else {
                                let d =
                                    time(&segment["segmentEnd"]) - time(&segment["segmentStart"]);
                                vec![d.num_milliseconds()]
                            };
                            assert_eq!(context.metric("tSegmentDuration"), duration);
                        }
                    }
                }
                assert!(contexts.next().is_none());
            }
        }
    }

    #[test]
    fn observations_carry_their_session_dimensions() {
        let data = sample();
        for record in data.conversations.iter().take(80) {
            let flat = FlatConversation::complete(record, &data.org);
            let wire = serde_json::to_value(flat.to_wire()).expect("serializes");
            let participants = wire["participants"].as_array().expect("participants");
            for (party, participant) in participants.iter().enumerate() {
                let session = &participant["sessions"][0];
                let first = |key: &str| {
                    session["segments"]
                        .as_array()
                        .expect("segments")
                        .iter()
                        .find_map(|s| s[key].as_str().map(str::to_owned))
                };
                let division = first("queueId")
                    .map(|q| {
                        let queue = data.org.queues.iter().find(|x| x.id.to_string() == q);
                        data.org.divisions[queue.expect("a queue").division]
                            .id
                            .to_string()
                    })
                    .or_else(|| texts(&wire["divisionIds"]).first().cloned());
                let observation = Observation {
                    conversation: &flat,
                    party,
                    name: "nConnected",
                    metric: &flat.metrics[0].1,
                };
                let expected = [
                    (
                        "conversationId",
                        texts(&wire["conversationId"]).first().cloned(),
                    ),
                    (
                        "originatingDirection",
                        texts(&wire["originatingDirection"]).first().cloned(),
                    ),
                    ("mediaType", texts(&session["mediaType"]).first().cloned()),
                    ("direction", texts(&session["direction"]).first().cloned()),
                    ("purpose", texts(&participant["purpose"]).first().cloned()),
                    ("queueId", first("queueId")),
                    ("userId", texts(&participant["userId"]).first().cloned()),
                    ("wrapUpCode", first("wrapUpCode")),
                    ("divisionId", division),
                    ("ani", None),
                ];
                for (name, value) in expected {
                    assert_eq!(observation.value(name).map(|v| v.wire()), value, "{name}");
                }
            }
        }
    }

    #[test]
    fn the_quick_check_never_rules_out_a_conversation_a_filter_selects() {
        let data = sample();
        let org = &data.org;
        let dimension = |name: &str, value: String| json!({"dimension": name, "value": value});
        let range = |metric: &str, gt: i64| json!({"type": "metric", "metric": metric, "range": {"gt": gt}});
        let mut segment_predicates: Vec<Value> = Vec::new();
        segment_predicates.extend(
            org.queues
                .iter()
                .map(|q| dimension("queueId", q.id.to_string())),
        );
        segment_predicates.extend(
            org.agents
                .iter()
                .take(12)
                .map(|a| dimension("userId", a.id.to_string())),
        );
        segment_predicates.extend(
            org.wrapup_codes
                .iter()
                .map(|w| dimension("wrapUpCode", w.id.to_string())),
        );
        segment_predicates.extend(
            ["voice", "chat", "email", "message"].map(|m| dimension("mediaType", m.to_owned())),
        );
        segment_predicates
            .extend(["inbound", "outbound"].map(|d| dimension("direction", d.to_owned())));
        let mut conversation_predicates: Vec<Value> = Vec::new();
        conversation_predicates.extend(
            org.divisions
                .iter()
                .map(|d| dimension("divisionId", d.id.to_string())),
        );
        conversation_predicates.extend(
            data.conversations
                .iter()
                .take(3)
                .map(|c| dimension("conversationId", c.id.to_string())),
        );
        conversation_predicates.extend(
            ["inbound", "outbound"].map(|d| dimension("originatingDirection", d.to_owned())),
        );
        for metric in ["tHandle", "tTalk", "tTalkComplete", "tAcw", "tAcd"] {
            for gt in [0, 20_000, 300_000, 900_000] {
                conversation_predicates.push(range(metric, gt));
            }
        }
        conversation_predicates.push(json!({"type": "metric", "metric": "tHandle", "value": "1"}));
        let interval = "2025-03-01T00:00:00Z/2025-03-13T00:00:00Z";
        let mut bodies: Vec<Value> = Vec::new();
        for p in &segment_predicates {
            bodies.push(json!({"interval": interval, "segmentFilters": [{"type": "and", "predicates": [p]}]}));
            bodies.push(json!({"interval": interval, "segmentFilters": [{"type": "or", "predicates": [p, dimension("mediaType", "email".to_owned())]}]}));
        }
        for p in &conversation_predicates {
            bodies.push(json!({"interval": interval, "conversationFilters": [{"type": "and", "predicates": [p]}]}));
        }
        let limits = AnalyticsLimits::default();
        let queries: Vec<DetailsQuery> = bodies
            .iter()
            .map(|b| DetailsQuery::parse(b, &limits).expect("valid"))
            .collect();
        let mut selected = 0;
        for record in &data.conversations {
            for now in instants(record).filter(|&now| now >= record.start) {
                let flat = FlatConversation::at(record, org, now);
                for (query, body) in queries.iter().zip(&bodies) {
                    if query.selects(&flat) {
                        selected += 1;
                        assert!(
                            query.may_select(record, org),
                            "{body} selects {} at {now}",
                            record.id
                        );
                    }
                }
            }
        }
        assert!(
            selected > 10_000,
            "the filters select something: {selected}"
        );
    }
}
