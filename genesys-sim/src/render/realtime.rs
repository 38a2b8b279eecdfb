//! The real-time `Conversation` document (`GET /api/v2/conversations/{id}`) at an instant.
//!
//! It is derived from the same complete analytics record as the details view, so both
//! views agree on every time. Real-time segments need an end, so a segment still running
//! at `now` is not listed yet; ACW appears as `afterCallWork` and `wrapup`, not as a segment.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::analytics::{self, AnalyticsParticipant, AnalyticsSegment, AnalyticsSession};
use super::format_time;
use crate::data::{ConversationRecord, MediaType, Org, Queue};

/// The media arrays every participant carries, empty when unused.
const MEDIA_KEYS: [&str; 9] = [
    "calls",
    "callbacks",
    "chats",
    "cobrowsesessions",
    "emails",
    "messages",
    "screenshares",
    "socialExpressions",
    "videos",
];

fn media_key(media: MediaType) -> &'static str {
    match media {
        MediaType::Voice => "calls",
        MediaType::Chat => "chats",
        MediaType::Email => "emails",
        MediaType::Message => "messages",
    }
}

fn realtime_type(segment_type: &str) -> &'static str {
    match segment_type {
        "system" => "System",
        "alert" => "Alert",
        "delay" => "Delay",
        "ivr" => "IVR",
        "hold" => "Hold",
        "dialing" => "Dialing",
        _ => "Interact",
    }
}

fn time(at: DateTime<Utc>) -> Value {
    Value::String(format_time(at))
}

/// Times of one participant, from its complete analytics segments.
struct Span {
    start: DateTime<Utc>,
    connected: Option<DateTime<Utc>>,
    end: DateTime<Utc>,
    acw: Option<(DateTime<Utc>, DateTime<Utc>, Uuid)>,
    hold: Option<(DateTime<Utc>, DateTime<Utc>)>,
    alert_start: Option<DateTime<Utc>>,
    disconnect_type: Option<&'static str>,
}

fn span(segments: &[AnalyticsSegment]) -> Span {
    let live: Vec<&AnalyticsSegment> = segments
        .iter()
        .filter(|s| s.segment_type != "wrapup")
        .collect();
    let last = live.last().expect("a participant has segments");
    Span {
        start: live[0].segment_start,
        connected: live
            .iter()
            .find(|s| matches!(s.segment_type, "interact" | "ivr"))
            .map(|s| s.segment_start),
        end: last.segment_end.expect("complete records end"),
        acw: segments
            .iter()
            .find(|s| s.segment_type == "wrapup")
            .map(|s| {
                (
                    s.segment_start,
                    s.segment_end.expect("complete records end"),
                    s.wrap_up_code.expect("wrap-up segments carry a code"),
                )
            }),
        hold: segments.iter().find(|s| s.segment_type == "hold").map(|s| {
            (
                s.segment_start,
                s.segment_end.expect("complete records end"),
            )
        }),
        alert_start: live
            .iter()
            .find(|s| matches!(s.segment_type, "alert" | "dialing"))
            .map(|s| s.segment_start),
        disconnect_type: last.disconnect_type,
    }
}

/// The `Conversation` document at `now` (the conversation must have started by then).
#[must_use]
pub fn at(record: &ConversationRecord, org: &Org, now: DateTime<Utc>) -> Value {
    let complete = analytics::complete(record, org);
    let participants: Vec<Value> = complete
        .participants
        .iter()
        .filter_map(|p| participant(record, org, p, now))
        .collect();
    let first_queue = &org.queues[record.legs[0].queue];
    let address = if record.direction == crate::data::Direction::Inbound {
        first_queue.dnis.clone()
    } else {
        record.customer.address.clone()
    };
    let mut doc = Map::new();
    doc.insert("id".into(), json!(record.id));
    doc.insert("startTime".into(), time(record.start));
    let disconnected = record.disconnected();
    if disconnected <= now {
        doc.insert("endTime".into(), time(disconnected));
    }
    if let Some(tag) = &record.external_tag {
        doc.insert("externalTag".into(), json!(tag));
    }
    doc.insert("address".into(), json!(address));
    doc.insert("participants".into(), Value::Array(participants));
    doc.insert("recordingState".into(), json!("NONE"));
    doc.insert("divisions".into(), divisions(record, org));
    doc.insert("securePause".into(), json!(false));
    doc.insert(
        "selfUri".into(),
        json!(format!("/api/v2/conversations/{}", record.id)),
    );
    Value::Object(doc)
}

fn divisions(record: &ConversationRecord, org: &Org) -> Value {
    let mut out: Vec<(usize, Vec<usize>)> = Vec::new();
    for queue in record.queues() {
        let division = org.queues[queue].division;
        match out.iter_mut().find(|(d, _)| *d == division) {
            Some((_, queues)) => queues.push(queue),
            None => out.push((division, vec![queue])),
        }
    }
    Value::Array(
        out.into_iter()
            .map(|(division, queues)| {
                let id = org.divisions[division].id;
                json!({
                    "division": {
                        "id": id,
                        "selfUri": format!("/api/v2/authorization/divisions/{id}"),
                    },
                    "entities": queues.iter().map(|&q| {
                        let queue = org.queues[q].id;
                        json!({"id": queue, "selfUri": format!("/api/v2/routing/queues/{queue}")})
                    }).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

/// One participant as the real-time API shows it at `now`: what its document and its
/// communication (the entry of its media array) are both worked out from.
struct Moment<'a> {
    record: &'a ConversationRecord,
    org: &'a Org,
    participant: &'a AnalyticsParticipant,
    /// The participant's one session (the simulator gives each participant one).
    session: &'a AnalyticsSession,
    times: Span,
    now: DateTime<Utc>,
    /// The participant has left by `now`.
    ended: bool,
    /// When it connected, if it has by `now`.
    connected: Option<DateTime<Utc>>,
    /// The queue its session went through, if any.
    queue: Option<&'a Queue>,
    is_agent: bool,
}

/// The participant's document at `now`, or `None` before it joined.
fn participant(
    record: &ConversationRecord,
    org: &Org,
    participant: &AnalyticsParticipant,
    now: DateTime<Utc>,
) -> Option<Value> {
    let session = &participant.sessions[0];
    let times = span(&session.segments);
    if times.start > now {
        return None;
    }
    let moment = Moment {
        record,
        org,
        participant,
        session,
        ended: times.end <= now,
        connected: times.connected.filter(|&at| at <= now),
        queue: session
            .segments
            .iter()
            .find_map(|s| s.queue_id)
            .and_then(|id| org.queues.iter().find(|q| q.id == id)),
        is_agent: participant.purpose == "agent",
        times,
        now,
    };
    let wrapup = moment.wrapup();
    let communication = moment.communication(wrapup.as_ref());
    Some(moment.document(communication, wrapup))
}

impl Moment<'_> {
    /// `participantType` and `address`, by purpose.
    fn participant_type_and_address(&self) -> (&'static str, String) {
        match self.participant.purpose {
            "customer" => ("External", self.record.customer.address.clone()),
            "ivr" => (
                "IVR",
                format!(
                    "sip:{}@127.0.0.1;language=en-US;user=ivr",
                    self.session.session_id
                ),
            ),
            "acd" => (
                "ACD",
                format!(
                    "sip:{}@127.0.0.1;language=en-US",
                    self.queue.map(|q| q.id).unwrap_or_default()
                ),
            ),
            _ => (
                "Internal",
                format!(
                    "sip:{}@sim.orgspan.com",
                    self.participant.user_id.unwrap_or_default().simple()
                ),
            ),
        }
    }

    /// The communication's `initialState`, by media, role and direction.
    fn initial_state(&self) -> &'static str {
        let outbound = self.record.direction == crate::data::Direction::Outbound;
        match (self.record.media, self.is_agent, outbound) {
            (MediaType::Voice, true, true) => "dialing",
            (MediaType::Voice | MediaType::Chat, false, _) => "offering",
            _ => "alerting",
        }
    }

    /// The communication's `state` at `now`: its initial state, connected, then done.
    fn state(&self) -> &'static str {
        if self.ended {
            if matches!(self.record.media, MediaType::Voice | MediaType::Chat) {
                "terminated"
            } else {
                "disconnected"
            }
        } else if self.connected.is_some() {
            "connected"
        } else {
            self.initial_state()
        }
    }

    /// On hold at `now`.
    fn held(&self) -> bool {
        self.times
            .hold
            .is_some_and(|(start, end)| start <= self.now && self.now < end)
    }

    /// The segments that have ended by `now` (real-time segments need an end; ACW is not
    /// one of them).
    fn ended_segments(&self) -> Vec<Value> {
        self.session
            .segments
            .iter()
            .filter(|s| s.segment_type != "wrapup")
            .filter(|s| s.segment_end.is_some_and(|end| end <= self.now))
            .map(realtime_segment)
            .collect()
    }

    /// The `wrapup` once after-call work is over.
    fn wrapup(&self) -> Option<Value> {
        self.times
            .acw
            .filter(|(_, end, _)| *end <= self.now)
            .map(|(start, end, code)| {
                let name = self
                    .org
                    .wrapup_codes
                    .iter()
                    .find(|w| w.id == code)
                    .map(|w| w.name.clone())
                    .unwrap_or_default();
                json!({
                    "code": code,
                    "name": name,
                    "notes": "",
                    "tags": [],
                    "durationSeconds": (end - start).num_seconds(),
                    "endTime": format_time(end),
                    "provisional": false,
                })
            })
    }

    /// `afterCallWork`: pending from its start, complete at its end; empty before.
    fn after_call_work(&self) -> Value {
        match self.times.acw {
            Some((start, end, _)) if start <= self.now => {
                let done = end <= self.now;
                let mut acw = json!({"startTime": format_time(start), "state": if done {"complete"} else {"pending"}});
                if done {
                    acw["endTime"] = time(end);
                }
                acw
            }
            _ => json!({}),
        }
    }

    /// The fields only one media type's communication carries.
    fn media_fields(&self, comm: &mut Map<String, Value>) {
        let held = self.held();
        let direction = self.session.direction;
        match self.record.media {
            MediaType::Voice => {
                comm.insert("direction".into(), json!(direction));
                comm.insert("recording".into(), json!(false));
                comm.insert("recordingState".into(), json!("none"));
                comm.insert("muted".into(), json!(false));
                comm.insert("confined".into(), json!(false));
                comm.insert("held".into(), json!(held));
                comm.insert("securePause".into(), json!(false));
            }
            MediaType::Chat => {
                comm.insert(
                    "roomId".into(),
                    json!(format!(
                        "{}@conference.sim.orgspan.com",
                        self.record.id.simple()
                    )),
                );
                comm.insert("held".into(), json!(held));
                comm.insert("direction".into(), json!(direction));
            }
            MediaType::Email => {
                comm.insert("held".into(), json!(held));
                comm.insert("subject".into(), json!("Question about my account"));
                comm.insert("messagesSent".into(), json!(i32::from(self.ended)));
                comm.insert("direction".into(), json!(direction));
                comm.insert("autoGenerated".into(), json!(false));
                comm.insert("spam".into(), json!(false));
            }
            MediaType::Message => {
                comm.insert("held".into(), json!(held));
                comm.insert("direction".into(), json!(direction));
                comm.insert("type".into(), json!("sms"));
            }
        }
    }

    /// The communication: the one entry of the participant's media array.
    fn communication(&self, wrapup: Option<&Value>) -> Map<String, Value> {
        let mut comm = Map::new();
        comm.insert("state".into(), json!(self.state()));
        comm.insert("initialState".into(), json!(self.initial_state()));
        comm.insert("id".into(), json!(self.session.session_id));
        self.media_fields(&mut comm);
        comm.insert("segments".into(), Value::Array(self.ended_segments()));
        if self.ended {
            if let Some(how) = self.times.disconnect_type {
                comm.insert("disconnectType".into(), json!(how));
            }
        }
        if let Some(at) = self.times.alert_start.filter(|&at| at <= self.now) {
            comm.insert("startAlertingTime".into(), time(at));
        }
        if let Some(at) = self.connected {
            comm.insert("connectedTime".into(), time(at));
        }
        if self.ended {
            comm.insert("disconnectedTime".into(), time(self.times.end));
        }
        if self.record.media == MediaType::Voice {
            comm.insert("disconnectReasons".into(), json!([]));
        }
        comm.insert("provider".into(), json!(self.session.provider));
        if let Some(peer) = self.session.peer_id {
            comm.insert("peerId".into(), json!(peer));
        }
        if let Some(wrapup) = wrapup {
            comm.insert("wrapup".into(), wrapup.clone());
        }
        comm.insert("afterCallWork".into(), self.after_call_work());
        comm.insert("afterCallWorkRequired".into(), json!(self.is_agent));
        comm
    }

    /// The participant's `attributes`: the conversation's, on the customer only.
    fn attributes(&self) -> Map<String, Value> {
        if self.participant.purpose == "customer" {
            self.record
                .attributes
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect()
        } else {
            Map::new()
        }
    }

    /// The participant's document around its `communication`.
    fn document(&self, communication: Map<String, Value>, wrapup: Option<Value>) -> Value {
        let p = self.participant;
        let mut doc = Map::new();
        doc.insert("id".into(), json!(p.participant_id));
        doc.insert("startTime".into(), time(self.times.start));
        if self.ended {
            doc.insert("endTime".into(), time(self.times.end));
        }
        if let Some(at) = self.connected {
            doc.insert("connectedTime".into(), time(at));
        }
        doc.insert("name".into(), json!(p.participant_name));
        if let Some(user) = p.user_id {
            doc.insert("userUri".into(), json!(format!("/api/v2/users/{user}")));
            doc.insert("userId".into(), json!(user));
        }
        if let Some(queue) = self.queue {
            doc.insert("queueId".into(), json!(queue.id));
            doc.insert("queueName".into(), json!(queue.name));
        }
        let (participant_type, address) = self.participant_type_and_address();
        doc.insert("purpose".into(), json!(p.purpose));
        doc.insert("participantType".into(), json!(participant_type));
        doc.insert("address".into(), json!(address));
        doc.insert("ani".into(), json!(self.session.ani));
        let ani_name = if self.is_agent {
            &p.participant_name
        } else {
            &self.record.customer.name
        };
        doc.insert("aniName".into(), json!(ani_name));
        doc.insert("dnis".into(), json!(self.session.dnis));
        doc.insert("wrapupRequired".into(), json!(self.is_agent));
        if self.is_agent {
            doc.insert("wrapupPrompt".into(), json!("mandatory"));
            doc.insert("wrapupTimeoutMs".into(), json!(60_000));
            if let Some(wrapup) = wrapup {
                doc.insert("wrapup".into(), wrapup);
            }
            doc.insert("alertingTimeoutMs".into(), json!(8_000));
        }
        doc.insert("mediaRoles".into(), json!(["full"]));
        if p.purpose == "acd" {
            if let Some(queue) = self.queue {
                doc.insert("conversationRoutingData".into(), routing_data(queue));
            }
        }
        doc.insert("attributes".into(), Value::Object(self.attributes()));
        let mut communication = Some(communication);
        for key in MEDIA_KEYS {
            let list = if key == media_key(self.record.media) {
                communication
                    .take()
                    .map(Value::Object)
                    .into_iter()
                    .collect()
            } else {
                Vec::new()
            };
            doc.insert(key.into(), Value::Array(list));
        }
        doc.insert("internalMessages".into(), json!([]));
        if self.is_agent {
            if let Some((start, end, _)) = self.times.acw {
                if start <= self.now {
                    doc.insert("startAcwTime".into(), time(start));
                }
                if end <= self.now {
                    doc.insert("endAcwTime".into(), time(end));
                }
            }
        }
        Value::Object(doc)
    }
}

/// A real-time segment from an ended analytics segment.
fn realtime_segment(segment: &AnalyticsSegment) -> Value {
    let mut seg = Map::new();
    seg.insert("startTime".into(), time(segment.segment_start));
    seg.insert(
        "endTime".into(),
        time(segment.segment_end.expect("only ended segments are listed")),
    );
    seg.insert("type".into(), json!(realtime_type(segment.segment_type)));
    match segment.disconnect_type {
        Some(how) => {
            seg.insert("howEnded".into(), json!("Disconnect"));
            seg.insert("disconnectType".into(), json!(how));
        }
        None if segment.segment_type == "system" || segment.segment_type == "alert" => {
            seg.insert("howEnded".into(), json!("Interact"));
        }
        None => {}
    }
    Value::Object(seg)
}

/// `conversationRoutingData` of the ACD participant.
fn routing_data(queue: &Queue) -> Value {
    json!({
        "queue": {"id": queue.id, "selfUri": format!("/api/v2/routing/queues/{}", queue.id)},
        "priority": 0,
        "skills": [],
        "scoredAgents": [],
    })
}
