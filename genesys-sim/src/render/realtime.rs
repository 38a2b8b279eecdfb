//! The real-time `Conversation` document (`GET /api/v2/conversations/{id}`) at an instant.
//!
//! It is derived from the same complete analytics record as the details view, so both
//! views agree on every time. Real-time segments need an end, so a segment still running
//! at `now` is not listed yet; ACW appears as `afterCallWork` and `wrapup`, not as a segment.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::analytics::{self, AnalyticsParticipant, AnalyticsSegment};
use super::format_time;
use crate::data::{ConversationRecord, MediaType, Org};

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

#[allow(clippy::too_many_lines)]
fn participant(
    record: &ConversationRecord,
    org: &Org,
    p: &AnalyticsParticipant,
    now: DateTime<Utc>,
) -> Option<Value> {
    let session = &p.sessions[0];
    let times = span(&session.segments);
    if times.start > now {
        return None;
    }
    let media = record.media;
    let ended = times.end <= now;
    let connected = times.connected.filter(|&at| at <= now);
    let queue = session
        .segments
        .iter()
        .find_map(|s| s.queue_id)
        .and_then(|id| org.queues.iter().find(|q| q.id == id));
    let is_agent = p.purpose == "agent";
    let outbound = record.direction == crate::data::Direction::Outbound;

    let (participant_type, address) = match p.purpose {
        "customer" => ("External", record.customer.address.clone()),
        "ivr" => (
            "IVR",
            format!(
                "sip:{}@127.0.0.1;language=en-US;user=ivr",
                session.session_id
            ),
        ),
        "acd" => (
            "ACD",
            format!(
                "sip:{}@127.0.0.1;language=en-US",
                queue.map(|q| q.id).unwrap_or_default()
            ),
        ),
        _ => (
            "Internal",
            format!(
                "sip:{}@sim.orgspan.com",
                p.user_id.unwrap_or_default().simple()
            ),
        ),
    };

    let state_done = if media == MediaType::Voice || media == MediaType::Chat {
        "terminated"
    } else {
        "disconnected"
    };
    let initial_state = match (media, is_agent, outbound) {
        (MediaType::Voice, true, true) => "dialing",
        (MediaType::Voice | MediaType::Chat, false, _) => "offering",
        _ => "alerting",
    };
    let state = if ended {
        state_done
    } else if connected.is_some() {
        "connected"
    } else {
        initial_state
    };
    let held = times
        .hold
        .is_some_and(|(start, end)| start <= now && now < end);

    let segments: Vec<Value> = session
        .segments
        .iter()
        .filter(|s| s.segment_type != "wrapup")
        .filter(|s| s.segment_end.is_some_and(|end| end <= now))
        .map(|s| {
            let mut seg = Map::new();
            seg.insert("startTime".into(), time(s.segment_start));
            seg.insert(
                "endTime".into(),
                time(s.segment_end.expect("filtered on end")),
            );
            seg.insert("type".into(), json!(realtime_type(s.segment_type)));
            match s.disconnect_type {
                Some(how) => {
                    seg.insert("howEnded".into(), json!("Disconnect"));
                    seg.insert("disconnectType".into(), json!(how));
                }
                None if s.segment_type == "system" || s.segment_type == "alert" => {
                    seg.insert("howEnded".into(), json!("Interact"));
                }
                None => {}
            }
            Value::Object(seg)
        })
        .collect();

    let wrapup = times
        .acw
        .filter(|(_, end, _)| *end <= now)
        .map(|(start, end, code)| {
            let name = org
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
        });

    let mut comm = Map::new();
    comm.insert("state".into(), json!(state));
    comm.insert("initialState".into(), json!(initial_state));
    comm.insert("id".into(), json!(session.session_id));
    match media {
        MediaType::Voice => {
            comm.insert("direction".into(), json!(session.direction));
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
                json!(format!("{}@conference.sim.orgspan.com", record.id.simple())),
            );
            comm.insert("held".into(), json!(held));
            comm.insert("direction".into(), json!(session.direction));
        }
        MediaType::Email => {
            comm.insert("held".into(), json!(held));
            comm.insert("subject".into(), json!("Question about my account"));
            comm.insert("messagesSent".into(), json!(i32::from(ended)));
            comm.insert("direction".into(), json!(session.direction));
            comm.insert("autoGenerated".into(), json!(false));
            comm.insert("spam".into(), json!(false));
        }
        MediaType::Message => {
            comm.insert("held".into(), json!(held));
            comm.insert("direction".into(), json!(session.direction));
            comm.insert("type".into(), json!("sms"));
        }
    }
    comm.insert("segments".into(), Value::Array(segments));
    if ended {
        if let Some(how) = times.disconnect_type {
            comm.insert("disconnectType".into(), json!(how));
        }
    }
    if let Some(at) = times.alert_start.filter(|&at| at <= now) {
        comm.insert("startAlertingTime".into(), time(at));
    }
    if let Some(at) = connected {
        comm.insert("connectedTime".into(), time(at));
    }
    if ended {
        comm.insert("disconnectedTime".into(), time(times.end));
    }
    if media == MediaType::Voice {
        comm.insert("disconnectReasons".into(), json!([]));
    }
    comm.insert("provider".into(), json!(session.provider));
    if let Some(peer) = session.peer_id {
        comm.insert("peerId".into(), json!(peer));
    }
    if let Some(wrapup) = &wrapup {
        comm.insert("wrapup".into(), wrapup.clone());
    }
    let after_call_work = match times.acw {
        Some((start, end, _)) if start <= now => {
            let done = end <= now;
            let mut acw = json!({"startTime": format_time(start), "state": if done {"complete"} else {"pending"}});
            if done {
                acw["endTime"] = time(end);
            }
            acw
        }
        _ => json!({}),
    };
    comm.insert("afterCallWork".into(), after_call_work);
    comm.insert("afterCallWorkRequired".into(), json!(is_agent));

    let mut doc = Map::new();
    doc.insert("id".into(), json!(p.participant_id));
    doc.insert("startTime".into(), time(times.start));
    if ended {
        doc.insert("endTime".into(), time(times.end));
    }
    if let Some(at) = connected {
        doc.insert("connectedTime".into(), time(at));
    }
    doc.insert("name".into(), json!(p.participant_name));
    if let Some(user) = p.user_id {
        doc.insert("userUri".into(), json!(format!("/api/v2/users/{user}")));
        doc.insert("userId".into(), json!(user));
    }
    if let Some(queue) = queue {
        doc.insert("queueId".into(), json!(queue.id));
        doc.insert("queueName".into(), json!(queue.name));
    }
    doc.insert("purpose".into(), json!(p.purpose));
    doc.insert("participantType".into(), json!(participant_type));
    doc.insert("address".into(), json!(address));
    doc.insert("ani".into(), json!(session.ani));
    let ani_name = if is_agent {
        &p.participant_name
    } else {
        &record.customer.name
    };
    doc.insert("aniName".into(), json!(ani_name));
    doc.insert("dnis".into(), json!(session.dnis));
    doc.insert("wrapupRequired".into(), json!(is_agent));
    if is_agent {
        doc.insert("wrapupPrompt".into(), json!("mandatory"));
        doc.insert("wrapupTimeoutMs".into(), json!(60_000));
        if let Some(wrapup) = wrapup {
            doc.insert("wrapup".into(), wrapup);
        }
        doc.insert("alertingTimeoutMs".into(), json!(8_000));
    }
    doc.insert("mediaRoles".into(), json!(["full"]));
    if p.purpose == "acd" {
        if let Some(queue) = queue {
            doc.insert(
                "conversationRoutingData".into(),
                json!({
                    "queue": {"id": queue.id, "selfUri": format!("/api/v2/routing/queues/{}", queue.id)},
                    "priority": 0,
                    "skills": [],
                    "scoredAgents": [],
                }),
            );
        }
    }
    let attributes: Map<String, Value> = if p.purpose == "customer" {
        record
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect()
    } else {
        Map::new()
    };
    doc.insert("attributes".into(), Value::Object(attributes));
    for key in MEDIA_KEYS {
        let list = if key == media_key(media) {
            vec![Value::Object(comm.clone())]
        } else {
            Vec::new()
        };
        doc.insert(key.into(), Value::Array(list));
    }
    doc.insert("internalMessages".into(), json!([]));
    if is_agent {
        if let Some((start, end, _)) = times.acw {
            if start <= now {
                doc.insert("startAcwTime".into(), time(start));
            }
            if end <= now {
                doc.insert("endAcwTime".into(), time(end));
            }
        }
    }
    Some(Value::Object(doc))
}
