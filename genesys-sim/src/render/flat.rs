//! The analytics record of a conversation at an instant as flat tables: its participants
//! (each with its one session), their segments and their metrics, borrowing every text from
//! the conversation record and the org. This is the one description of what the analytics
//! API shows: the wire record ([`super::analytics`]) is built from it, and queries evaluate
//! filters, orderings and aggregates against it (see `query::subjects`) without building
//! the wire record, which is what lets a query scan a month of a contact centre quickly.
//!
//! A [`FlatConversation`] can be refilled for another conversation so that a scan reuses its
//! tables instead of allocating for every conversation.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::analytics::{AnalyticsMetric, AnalyticsSegment};
use crate::data::{ConversationRecord, Direction, MediaType, Org, Queue};

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

    /// Adds a party; returns its index.
    fn party(&mut self, party: Party<'a>) -> usize {
        self.parties.push(party);
        self.parties.len() - 1
    }

    fn fill(&mut self, record: &'a ConversationRecord) {
        let org = self.org;
        self.record = record;
        self.parties.clear();
        self.segments.clear();
        self.metrics.clear();
        let inbound = record.direction == Direction::Inbound;
        let first_queue = &org.queues[record.legs[0].queue];
        (self.ani, self.dnis) = if inbound {
            (record.customer.address.as_str(), first_queue.dnis.as_str())
        } else {
            (first_queue.dnis.as_str(), record.customer.address.as_str())
        };
        self.end = Some(record.last_event());
        self.min_mos = record.min_mos;
        let customer_session = record.customer.session_id;
        let disconnected = record.disconnected();
        let plain = |participant_id, name, purpose, session_id| Party {
            participant_id,
            name,
            purpose,
            user_id: None,
            session_id,
            peer_id: Some(customer_session),
            remote: None,
            routed: false,
            used_routing: None,
            flow: None,
        };

        // The customer.
        let customer = self.party(Party {
            peer_id: None,
            remote: Some(record.customer.name.as_str()),
            ..plain(
                record.customer.participant_id,
                record.customer.name.as_str(),
                "customer",
                customer_session,
            )
        });
        let abandoned = record.legs.last().is_some_and(|leg| leg.agent.is_none());
        let customer_hangup = if abandoned { "endpoint" } else { "peer" };
        let first_queue_id = Some(first_queue.id);
        if inbound {
            let connected = record.start + ms(188);
            self.segments.push((
                customer,
                segment(record.start, connected, "system", None, None),
            ));
            self.segments.push((
                customer,
                segment(
                    connected,
                    disconnected,
                    "interact",
                    Some(customer_hangup),
                    first_queue_id,
                ),
            ));
            self.metrics
                .push((customer, metric(connected, "nConnected", 1)));
        } else {
            let agent = record.legs[0]
                .agent
                .as_ref()
                .expect("outbound legs have an agent");
            self.segments.push((
                customer,
                segment(
                    agent.connected,
                    disconnected,
                    "interact",
                    Some("peer"),
                    first_queue_id,
                ),
            ));
            self.metrics
                .push((customer, metric(agent.connected, "nConnected", 1)));
        }

        // The IVR.
        if let Some(ivr) = &record.ivr {
            let flow = self.party(Party {
                flow: Some(Flow {
                    flow_id: ivr.flow_id,
                    queue: first_queue,
                    open: false,
                }),
                ..plain(ivr.participant_id, "Main IVR", "ivr", ivr.session_id)
            });
            let flow_start = ivr.start + ms(110);
            let flow_ms = (ivr.end - flow_start).num_milliseconds();
            self.segments
                .push((flow, segment(ivr.start, flow_start, "system", None, None)));
            self.segments.push((
                flow,
                segment(flow_start, ivr.end, "ivr", Some("transfer"), None),
            ));
            self.metrics.push((flow, metric(flow_start, "nFlow", 1)));
            self.metrics.push((flow, metric(ivr.end, "tFlow", flow_ms)));
            self.metrics
                .push((flow, metric(ivr.end, "nFlowOutcome", 1)));
            self.metrics
                .push((flow, metric(ivr.end, "tFlowOut", flow_ms)));
        }

        for leg in &record.legs {
            let queue = &org.queues[leg.queue];
            let queue_id = Some(queue.id);
            if let Some(acd) = &leg.acd {
                let party = self.party(Party {
                    routed: true,
                    used_routing: (!acd.abandoned).then_some("Standard"),
                    ..plain(
                        acd.participant_id,
                        queue.name.as_str(),
                        "acd",
                        acd.session_id,
                    )
                });
                let offered = leg.enter + ms(27);
                let left = leg.enter + ms(acd.wait_ms);
                let how = if acd.abandoned { "peer" } else { "transfer" };
                self.segments
                    .push((party, segment(leg.enter, offered, "delay", None, queue_id)));
                self.segments.push((
                    party,
                    segment(offered, left, "interact", Some(how), queue_id),
                ));
                self.metrics.push((party, metric(offered, "nOffered", 1)));
                self.metrics
                    .push((party, metric(left, "tAcd", acd.wait_ms)));
                if acd.abandoned {
                    self.metrics
                        .push((party, metric(left, "tAbandon", acd.wait_ms)));
                }
            }
            if let Some(work) = &leg.agent {
                let agent = &org.agents[work.agent];
                let party = self.party(Party {
                    user_id: Some(agent.id),
                    routed: inbound,
                    used_routing: inbound.then_some("Standard"),
                    ..plain(
                        work.participant_id,
                        agent.name.as_str(),
                        "agent",
                        work.session_id,
                    )
                });
                if inbound {
                    self.segments.push((
                        party,
                        segment(work.alert_start, work.connected, "alert", None, queue_id),
                    ));
                    let alert_ms = (work.connected - work.alert_start).num_milliseconds();
                    let answer_ms = (work.connected - leg.enter).num_milliseconds();
                    self.metrics
                        .push((party, metric(work.connected, "tAlert", alert_ms)));
                    self.metrics
                        .push((party, metric(work.connected, "tAnswered", answer_ms)));
                } else {
                    self.segments.push((
                        party,
                        segment(work.alert_start, work.connected, "dialing", None, queue_id),
                    ));
                    let dial_ms = (work.connected - work.alert_start).num_milliseconds();
                    self.metrics
                        .push((party, metric(work.alert_start, "nOutbound", 1)));
                    self.metrics
                        .push((party, metric(work.connected, "tContacting", dial_ms)));
                }
                let end_how = if work.transferred { "transfer" } else { "peer" };
                let mut hold_metrics = None;
                match work.hold {
                    Some((hold_start, hold_ms)) => {
                        let hold_end = hold_start + ms(hold_ms);
                        self.segments.push((
                            party,
                            segment(work.connected, hold_start, "interact", None, queue_id),
                        ));
                        self.segments
                            .push((party, segment(hold_start, hold_end, "hold", None, queue_id)));
                        self.segments.push((
                            party,
                            segment(
                                hold_end,
                                work.disconnected,
                                "interact",
                                Some(end_how),
                                queue_id,
                            ),
                        ));
                        hold_metrics = Some((hold_end, hold_ms));
                    }
                    None => self.segments.push((
                        party,
                        segment(
                            work.connected,
                            work.disconnected,
                            "interact",
                            Some(end_how),
                            queue_id,
                        ),
                    )),
                }
                if let Some((hold_end, hold_ms)) = hold_metrics {
                    self.metrics
                        .push((party, metric(hold_end, "tHeld", hold_ms)));
                    self.metrics
                        .push((party, metric(hold_end, "tHeldComplete", hold_ms)));
                }
                let acw_end = work.acw_end();
                let mut wrapup = segment(work.disconnected, acw_end, "wrapup", None, queue_id);
                wrapup.wrap_up_code = Some(org.wrapup_codes[work.wrapup].id);
                self.segments.push((party, wrapup));
                let talk_ms = work.talk_ms();
                self.metrics
                    .push((party, metric(work.disconnected, "tTalk", talk_ms)));
                self.metrics
                    .push((party, metric(work.disconnected, "tTalkComplete", talk_ms)));
                if work.transferred {
                    self.metrics
                        .push((party, metric(work.disconnected, "nTransferred", 1)));
                }
                self.metrics
                    .push((party, metric(acw_end, "tAcw", work.acw_ms)));
                // tHandle as AgentWork::handle_ms defines it, without working out talk again.
                let handle_ms = talk_ms + work.hold_ms() + work.acw_ms;
                self.metrics
                    .push((party, metric(acw_end, "tHandle", handle_ms)));
            }
        }
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
