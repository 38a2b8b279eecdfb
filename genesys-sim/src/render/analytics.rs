//! The analytics details record (`AnalyticsConversationWithoutAttributes`) of a
//! conversation at an instant. Queries filter, order and aggregate over these typed
//! records, so what a filter sees is exactly what the API returns.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::timestamp;
use crate::data::{ConversationRecord, Direction, MediaType, Org};

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
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsMetric {
    #[serde(serialize_with = "timestamp::required")]
    pub emit_date: DateTime<Utc>,
    pub name: &'static str,
    pub value: i64,
}

/// `AnalyticsConversationSegment`.
#[derive(Debug, Clone, Serialize)]
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

fn provider(media: MediaType) -> &'static str {
    match media {
        MediaType::Voice => "Edge",
        MediaType::Chat => "PureCloud Webchat v2",
        MediaType::Email => "PureCloud Email",
        MediaType::Message => "PureCloud Messaging",
    }
}

fn ms(value: i64) -> Duration {
    Duration::milliseconds(value)
}

fn segment(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    kind: &'static str,
    disconnect: Option<&'static str>,
    queue: Option<Uuid>,
) -> AnalyticsSegment {
    AnalyticsSegment {
        segment_start: start,
        segment_end: Some(end),
        segment_type: kind,
        disconnect_type: disconnect,
        conference: false,
        queue_id: queue,
        wrap_up_code: None,
    }
}

fn metric(at: DateTime<Utc>, name: &'static str, value: i64) -> AnalyticsMetric {
    AnalyticsMetric {
        emit_date: at,
        name,
        value,
    }
}

/// The record as it reads once everything has happened.
#[must_use]
#[allow(clippy::too_many_lines)]
pub fn complete(record: &ConversationRecord, org: &Org) -> AnalyticsConversation {
    let media = record.media;
    let inbound = record.direction == Direction::Inbound;
    let first_queue = &org.queues[record.legs[0].queue];
    let (ani, dnis) = if inbound {
        (record.customer.address.clone(), first_queue.dnis.clone())
    } else {
        (first_queue.dnis.clone(), record.customer.address.clone())
    };
    let session = |session_id: Uuid, peer: Option<Uuid>| AnalyticsSession {
        ani: ani.clone(),
        direction: record.direction.as_str(),
        dnis: dnis.clone(),
        media_type: media.as_str(),
        provider: provider(media),
        session_id,
        peer_id: peer,
        remote: None,
        requested_routings: None,
        used_routing: None,
        flow: None,
        metrics: Vec::new(),
        segments: Vec::new(),
    };
    let customer_session = record.customer.session_id;
    let disconnected = record.disconnected();
    let mut participants = Vec::new();

    // The customer.
    let mut customer = session(customer_session, None);
    customer.remote = Some(record.customer.name.clone());
    let abandoned = record.legs.last().is_some_and(|leg| leg.agent.is_none());
    let customer_hangup = if abandoned { "endpoint" } else { "peer" };
    let first_queue_id = Some(first_queue.id);
    if inbound {
        let connected = record.start + ms(188);
        customer
            .segments
            .push(segment(record.start, connected, "system", None, None));
        customer.segments.push(segment(
            connected,
            disconnected,
            "interact",
            Some(customer_hangup),
            first_queue_id,
        ));
        customer.metrics.push(metric(connected, "nConnected", 1));
    } else {
        let agent = record.legs[0]
            .agent
            .as_ref()
            .expect("outbound legs have an agent");
        customer.segments.push(segment(
            agent.connected,
            disconnected,
            "interact",
            Some("peer"),
            first_queue_id,
        ));
        customer
            .metrics
            .push(metric(agent.connected, "nConnected", 1));
    }
    participants.push(AnalyticsParticipant {
        participant_id: record.customer.participant_id,
        participant_name: record.customer.name.clone(),
        purpose: "customer",
        user_id: None,
        sessions: vec![customer],
    });

    // The IVR.
    if let Some(ivr) = &record.ivr {
        let mut flow_session = session(ivr.session_id, Some(customer_session));
        let flow_start = ivr.start + ms(110);
        flow_session
            .segments
            .push(segment(ivr.start, flow_start, "system", None, None));
        flow_session
            .segments
            .push(segment(flow_start, ivr.end, "ivr", Some("transfer"), None));
        let flow_ms = (ivr.end - flow_start).num_milliseconds();
        flow_session.metrics.push(metric(flow_start, "nFlow", 1));
        flow_session.metrics.push(metric(ivr.end, "tFlow", flow_ms));
        flow_session
            .metrics
            .push(metric(ivr.end, "nFlowOutcome", 1));
        flow_session
            .metrics
            .push(metric(ivr.end, "tFlowOut", flow_ms));
        flow_session.flow = Some(AnalyticsFlow {
            entry_reason: first_queue.dnis.clone(),
            entry_type: "dnis",
            flow_id: ivr.flow_id,
            flow_name: "Main IVR",
            flow_type: "INBOUNDCALL",
            flow_version: "12.0",
            starting_language: "en-us",
            ending_language: Some("en-us"),
            exit_reason: Some("TRANSFER"),
            transfer_target_address: Some(first_queue.id.to_string()),
            transfer_target_name: Some(first_queue.name.clone()),
            transfer_type: Some("ACD"),
        });
        participants.push(AnalyticsParticipant {
            participant_id: ivr.participant_id,
            participant_name: "Main IVR".to_owned(),
            purpose: "ivr",
            user_id: None,
            sessions: vec![flow_session],
        });
    }

    for leg in &record.legs {
        let queue = &org.queues[leg.queue];
        let queue_id = Some(queue.id);
        if let Some(acd) = &leg.acd {
            let mut acd_session = session(acd.session_id, Some(customer_session));
            acd_session.requested_routings = Some(vec!["Standard"]);
            let offered = leg.enter + ms(27);
            let left = leg.enter + ms(acd.wait_ms);
            acd_session
                .segments
                .push(segment(leg.enter, offered, "delay", None, queue_id));
            let how = if acd.abandoned { "peer" } else { "transfer" };
            acd_session
                .segments
                .push(segment(offered, left, "interact", Some(how), queue_id));
            acd_session.metrics.push(metric(offered, "nOffered", 1));
            acd_session.metrics.push(metric(left, "tAcd", acd.wait_ms));
            if acd.abandoned {
                acd_session
                    .metrics
                    .push(metric(left, "tAbandon", acd.wait_ms));
            } else {
                acd_session.used_routing = Some("Standard");
            }
            participants.push(AnalyticsParticipant {
                participant_id: acd.participant_id,
                participant_name: queue.name.clone(),
                purpose: "acd",
                user_id: None,
                sessions: vec![acd_session],
            });
        }
        if let Some(work) = &leg.agent {
            let agent = &org.agents[work.agent];
            let mut agent_session = session(work.session_id, Some(customer_session));
            if inbound {
                agent_session.requested_routings = Some(vec!["Standard"]);
                agent_session.used_routing = Some("Standard");
                agent_session.segments.push(segment(
                    work.alert_start,
                    work.connected,
                    "alert",
                    None,
                    queue_id,
                ));
                let alert_ms = (work.connected - work.alert_start).num_milliseconds();
                let answer_ms = (work.connected - leg.enter).num_milliseconds();
                agent_session
                    .metrics
                    .push(metric(work.connected, "tAlert", alert_ms));
                agent_session
                    .metrics
                    .push(metric(work.connected, "tAnswered", answer_ms));
            } else {
                agent_session.segments.push(segment(
                    work.alert_start,
                    work.connected,
                    "dialing",
                    None,
                    queue_id,
                ));
                let dial_ms = (work.connected - work.alert_start).num_milliseconds();
                agent_session
                    .metrics
                    .push(metric(work.alert_start, "nOutbound", 1));
                agent_session
                    .metrics
                    .push(metric(work.connected, "tContacting", dial_ms));
            }
            let end_how = if work.transferred { "transfer" } else { "peer" };
            match work.hold {
                Some((hold_start, hold_ms)) => {
                    let hold_end = hold_start + ms(hold_ms);
                    agent_session.segments.push(segment(
                        work.connected,
                        hold_start,
                        "interact",
                        None,
                        queue_id,
                    ));
                    agent_session
                        .segments
                        .push(segment(hold_start, hold_end, "hold", None, queue_id));
                    agent_session.segments.push(segment(
                        hold_end,
                        work.disconnected,
                        "interact",
                        Some(end_how),
                        queue_id,
                    ));
                    agent_session
                        .metrics
                        .push(metric(hold_end, "tHeld", hold_ms));
                    agent_session
                        .metrics
                        .push(metric(hold_end, "tHeldComplete", hold_ms));
                }
                None => agent_session.segments.push(segment(
                    work.connected,
                    work.disconnected,
                    "interact",
                    Some(end_how),
                    queue_id,
                )),
            }
            let mut wrapup = segment(work.disconnected, work.acw_end(), "wrapup", None, queue_id);
            wrapup.wrap_up_code = Some(org.wrapup_codes[work.wrapup].id);
            agent_session.segments.push(wrapup);
            agent_session
                .metrics
                .push(metric(work.disconnected, "tTalk", work.talk_ms()));
            agent_session
                .metrics
                .push(metric(work.disconnected, "tTalkComplete", work.talk_ms()));
            if work.transferred {
                agent_session
                    .metrics
                    .push(metric(work.disconnected, "nTransferred", 1));
            }
            agent_session
                .metrics
                .push(metric(work.acw_end(), "tAcw", work.acw_ms));
            agent_session
                .metrics
                .push(metric(work.acw_end(), "tHandle", work.handle_ms()));
            participants.push(AnalyticsParticipant {
                participant_id: work.participant_id,
                participant_name: agent.name.clone(),
                purpose: "agent",
                user_id: Some(agent.id),
                sessions: vec![agent_session],
            });
        }
    }

    let mut division_ids: Vec<Uuid> = Vec::new();
    for queue in record.queues() {
        let division = org.divisions[org.queues[queue].division].id;
        if !division_ids.contains(&division) {
            division_ids.push(division);
        }
    }
    AnalyticsConversation {
        conversation_id: record.id,
        conversation_start: record.start,
        conversation_end: Some(record.last_event()),
        conversation_initiator: if inbound { "customer" } else { "agent" },
        customer_participation: true,
        division_ids,
        external_tag: record.external_tag.clone(),
        media_stats_min_conversation_mos: record.min_mos,
        media_stats_min_conversation_r_factor: record
            .min_mos
            .map(|mos| (mos * 20.4 * 10.0).round() / 10.0),
        originating_direction: record.direction.as_str(),
        participants,
    }
}

/// The record as the API shows it at `now`: what has not happened yet is left out.
#[must_use]
pub fn at(record: &ConversationRecord, org: &Org, now: DateTime<Utc>) -> AnalyticsConversation {
    let mut view = complete(record, org);
    if record.is_over_at(now) {
        return view;
    }
    view.conversation_end = None;
    view.media_stats_min_conversation_mos = None;
    view.media_stats_min_conversation_r_factor = None;
    for participant in &mut view.participants {
        for session in &mut participant.sessions {
            session.segments.retain(|s| s.segment_start <= now);
            for segment in &mut session.segments {
                if segment.segment_end.is_some_and(|end| end > now) {
                    segment.segment_end = None;
                    segment.disconnect_type = None;
                    segment.wrap_up_code = None;
                }
            }
            session.metrics.retain(|m| m.emit_date <= now);
            let flow_open = session.segments.iter().any(|s| s.segment_end.is_none());
            if let Some(flow) = session.flow.as_mut().filter(|_| flow_open) {
                flow.ending_language = None;
                flow.exit_reason = None;
                flow.transfer_target_address = None;
                flow.transfer_target_name = None;
                flow.transfer_type = None;
            }
        }
        participant.sessions.retain(|s| !s.segments.is_empty());
    }
    view.participants.retain(|p| !p.sessions.is_empty());
    view
}
