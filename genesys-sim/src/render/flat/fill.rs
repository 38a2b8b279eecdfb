//! Filling a [`FlatConversation`]'s tables from a conversation record as it reads once
//! complete, one participant at a time: the customer, the IVR, and for each leg its ACD
//! wait and its agent (reached, interacting, wrapping up). Each piece pushes its segments
//! and metrics in the order the analytics API lists them; what has not happened yet by some
//! instant is left out afterwards by [`FlatConversation::truncate`], not here.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::{FlatConversation, Flow, Party};
use crate::data::{AcdWait, AgentWork, ConversationRecord, Direction, IvrLeg, Leg, Queue};
use crate::render::analytics::{AnalyticsMetric, AnalyticsSegment};

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

impl<'a> FlatConversation<'a> {
    /// Replaces the tables with `record` (of the same org) as it reads once complete.
    pub(super) fn fill(&mut self, record: &'a ConversationRecord) {
        self.record = record;
        self.parties.clear();
        self.segments.clear();
        self.metrics.clear();
        let org = self.org;
        let first_queue = &org.queues[record.legs[0].queue];
        (self.ani, self.dnis) = if record.direction == Direction::Inbound {
            (record.customer.address.as_str(), first_queue.dnis.as_str())
        } else {
            (first_queue.dnis.as_str(), record.customer.address.as_str())
        };
        self.end = Some(record.last_event());
        self.min_mos = record.min_mos;
        self.fill_customer(first_queue);
        if let Some(ivr) = &record.ivr {
            self.fill_ivr(ivr, first_queue);
        }
        for leg in &record.legs {
            let queue = &org.queues[leg.queue];
            if let Some(acd) = &leg.acd {
                self.fill_acd(leg, acd, queue);
            }
            if let Some(work) = &leg.agent {
                self.fill_agent(leg, work, queue);
            }
        }
    }

    fn inbound(&self) -> bool {
        self.record.direction == Direction::Inbound
    }

    /// Adds a party; returns its index.
    fn party(&mut self, party: Party<'a>) -> usize {
        self.parties.push(party);
        self.parties.len() - 1
    }

    /// A party of the conversation's side (not the customer): no user, no routing, no
    /// flow, the customer's session as its peer.
    fn plain_party(
        &self,
        participant_id: Uuid,
        name: &'a str,
        purpose: &'static str,
        session_id: Uuid,
    ) -> Party<'a> {
        Party {
            participant_id,
            name,
            purpose,
            user_id: None,
            session_id,
            peer_id: Some(self.record.customer.session_id),
            remote: None,
            routed: false,
            used_routing: None,
            flow: None,
        }
    }

    fn push_segment(&mut self, party: usize, segment: AnalyticsSegment) {
        self.segments.push((party, segment));
    }

    fn push_metric(&mut self, party: usize, at: DateTime<Utc>, name: &'static str, value: i64) {
        let metric = AnalyticsMetric {
            emit_date: at,
            name,
            value,
        };
        self.metrics.push((party, metric));
    }

    /// The customer: connected through the system when calling in, by the first agent when
    /// called; it hangs up itself when it abandons (no agent on the last leg).
    fn fill_customer(&mut self, first_queue: &'a Queue) {
        let record = self.record;
        let customer = &record.customer;
        let party = self.party(Party {
            peer_id: None,
            remote: Some(customer.name.as_str()),
            ..self.plain_party(
                customer.participant_id,
                customer.name.as_str(),
                "customer",
                customer.session_id,
            )
        });
        let abandoned = record.legs.last().is_some_and(|leg| leg.agent.is_none());
        let hangup = if abandoned { "endpoint" } else { "peer" };
        let disconnected = record.disconnected();
        let first_queue_id = Some(first_queue.id);
        if self.inbound() {
            let connected = record.start + ms(188);
            self.push_segment(
                party,
                segment(record.start, connected, "system", None, None),
            );
            let interact = segment(
                connected,
                disconnected,
                "interact",
                Some(hangup),
                first_queue_id,
            );
            self.push_segment(party, interact);
            self.push_metric(party, connected, "nConnected", 1);
        } else {
            let agent = record.legs[0]
                .agent
                .as_ref()
                .expect("outbound legs have an agent");
            let interact = segment(
                agent.connected,
                disconnected,
                "interact",
                Some("peer"),
                first_queue_id,
            );
            self.push_segment(party, interact);
            self.push_metric(party, agent.connected, "nConnected", 1);
        }
    }

    /// The IVR flow, which transfers to the first queue.
    fn fill_ivr(&mut self, ivr: &IvrLeg, first_queue: &'a Queue) {
        let party = self.party(Party {
            flow: Some(Flow {
                flow_id: ivr.flow_id,
                queue: first_queue,
                open: false,
            }),
            ..self.plain_party(ivr.participant_id, "Main IVR", "ivr", ivr.session_id)
        });
        let flow_start = ivr.start + ms(110);
        let flow_ms = (ivr.end - flow_start).num_milliseconds();
        self.push_segment(party, segment(ivr.start, flow_start, "system", None, None));
        let flow = segment(flow_start, ivr.end, "ivr", Some("transfer"), None);
        self.push_segment(party, flow);
        self.push_metric(party, flow_start, "nFlow", 1);
        self.push_metric(party, ivr.end, "tFlow", flow_ms);
        self.push_metric(party, ivr.end, "nFlowOutcome", 1);
        self.push_metric(party, ivr.end, "tFlowOut", flow_ms);
    }

    /// The wait of `leg` in `queue`, ended by a transfer to an agent or by abandon.
    fn fill_acd(&mut self, leg: &Leg, acd: &AcdWait, queue: &'a Queue) {
        let party = self.party(Party {
            routed: true,
            used_routing: (!acd.abandoned).then_some("Standard"),
            ..self.plain_party(
                acd.participant_id,
                queue.name.as_str(),
                "acd",
                acd.session_id,
            )
        });
        let queue_id = Some(queue.id);
        let offered = leg.enter + ms(27);
        let left = leg.enter + ms(acd.wait_ms);
        let how = if acd.abandoned { "peer" } else { "transfer" };
        self.push_segment(party, segment(leg.enter, offered, "delay", None, queue_id));
        let interact = segment(offered, left, "interact", Some(how), queue_id);
        self.push_segment(party, interact);
        self.push_metric(party, offered, "nOffered", 1);
        self.push_metric(party, left, "tAcd", acd.wait_ms);
        if acd.abandoned {
            self.push_metric(party, left, "tAbandon", acd.wait_ms);
        }
    }

    /// The agent of `leg`, reached in `queue`.
    fn fill_agent(&mut self, leg: &Leg, work: &AgentWork, queue: &'a Queue) {
        let org = self.org;
        let agent = &org.agents[work.agent];
        let inbound = self.inbound();
        let party = self.party(Party {
            user_id: Some(agent.id),
            routed: inbound,
            used_routing: inbound.then_some("Standard"),
            ..self.plain_party(
                work.participant_id,
                agent.name.as_str(),
                "agent",
                work.session_id,
            )
        });
        let queue_id = Some(queue.id);
        self.fill_agent_reached(party, leg, work, queue_id);
        self.fill_agent_interaction(party, work, queue_id);
        self.fill_agent_wrapup(party, work, queue_id);
    }

    /// How the agent was reached: alerted (inbound) or dialing out (outbound).
    fn fill_agent_reached(
        &mut self,
        party: usize,
        leg: &Leg,
        work: &AgentWork,
        queue_id: Option<Uuid>,
    ) {
        let reaching_ms = (work.connected - work.alert_start).num_milliseconds();
        if self.inbound() {
            let alert = segment(work.alert_start, work.connected, "alert", None, queue_id);
            self.push_segment(party, alert);
            let answer_ms = (work.connected - leg.enter).num_milliseconds();
            self.push_metric(party, work.connected, "tAlert", reaching_ms);
            self.push_metric(party, work.connected, "tAnswered", answer_ms);
        } else {
            let dialing = segment(work.alert_start, work.connected, "dialing", None, queue_id);
            self.push_segment(party, dialing);
            self.push_metric(party, work.alert_start, "nOutbound", 1);
            self.push_metric(party, work.connected, "tContacting", reaching_ms);
        }
    }

    /// The agent's talk, around a hold if there was one, until a transfer or the peer's end.
    fn fill_agent_interaction(&mut self, party: usize, work: &AgentWork, queue_id: Option<Uuid>) {
        let end_how = Some(if work.transferred { "transfer" } else { "peer" });
        let Some((hold_start, hold_ms)) = work.hold else {
            let interact = segment(
                work.connected,
                work.disconnected,
                "interact",
                end_how,
                queue_id,
            );
            self.push_segment(party, interact);
            return;
        };
        let hold_end = hold_start + ms(hold_ms);
        let before = segment(work.connected, hold_start, "interact", None, queue_id);
        self.push_segment(party, before);
        self.push_segment(party, segment(hold_start, hold_end, "hold", None, queue_id));
        let after = segment(hold_end, work.disconnected, "interact", end_how, queue_id);
        self.push_segment(party, after);
        self.push_metric(party, hold_end, "tHeld", hold_ms);
        self.push_metric(party, hold_end, "tHeldComplete", hold_ms);
    }

    /// The agent's after-call work with its wrap-up code, and the metrics of the whole
    /// handling (talk, transfer, after-call work, handle time).
    fn fill_agent_wrapup(&mut self, party: usize, work: &AgentWork, queue_id: Option<Uuid>) {
        let acw_end = work.acw_end();
        let mut wrapup = segment(work.disconnected, acw_end, "wrapup", None, queue_id);
        wrapup.wrap_up_code = Some(self.org.wrapup_codes[work.wrapup].id);
        self.push_segment(party, wrapup);
        let talk_ms = work.talk_ms();
        self.push_metric(party, work.disconnected, "tTalk", talk_ms);
        self.push_metric(party, work.disconnected, "tTalkComplete", talk_ms);
        if work.transferred {
            self.push_metric(party, work.disconnected, "nTransferred", 1);
        }
        self.push_metric(party, acw_end, "tAcw", work.acw_ms);
        // tHandle as AgentWork::handle_ms defines it, without working out talk again.
        let handle_ms = talk_ms + work.hold_ms() + work.acw_ms;
        self.push_metric(party, acw_end, "tHandle", handle_ms);
    }
}
