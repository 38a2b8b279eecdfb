//! One simulated conversation as a timeline: who joined when, waited how long, talked, held,
//! wrapped up. Both wire views (the real-time `Conversation` and the analytics details
//! record) are rendered from this one record, so they always agree.
//!
//! Shape of a conversation, in time order:
//! customer arrives -> (voice inbound) IVR -> for each leg: queue wait (ACD) -> agent alert
//! -> talk (with an optional hold) -> agent wrap-up (ACW). A leg whose agent transfers hands
//! the customer to the next leg; an abandoned wait ends the conversation with no agent.
//! Outbound conversations start with the agent dialling the customer, with no ACD leg.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

/// Media type of a conversation (one media per simulated conversation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaType {
    Voice,
    Chat,
    Email,
    Message,
}

impl MediaType {
    /// Every media type the simulator generates.
    pub const ALL: [Self; 4] = [Self::Voice, Self::Chat, Self::Email, Self::Message];

    /// The analytics `mediaType` value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Voice => "voice",
            Self::Chat => "chat",
            Self::Email => "email",
            Self::Message => "message",
        }
    }
}

/// Direction of a conversation as the customer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    /// The wire value (`inbound` / `outbound`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
        }
    }
}

/// The external party.
#[derive(Debug, Clone)]
pub struct Customer {
    pub participant_id: Uuid,
    pub session_id: Uuid,
    pub name: String,
    /// `tel:`, `mailto:`-less address or messaging id, as fits the media type.
    pub address: String,
}

/// The IVR flow a voice call passes through before it is queued.
#[derive(Debug, Clone)]
pub struct IvrLeg {
    pub participant_id: Uuid,
    pub session_id: Uuid,
    pub flow_id: Uuid,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// Time spent waiting in a queue.
#[derive(Debug, Clone)]
pub struct AcdWait {
    pub participant_id: Uuid,
    pub session_id: Uuid,
    /// Queue wait in milliseconds (tAcd / tWait; tAbandon when abandoned).
    pub wait_ms: i64,
    /// The customer hung up before an agent answered.
    pub abandoned: bool,
}

/// An agent's part: alerting (or dialling, outbound), talk, optional hold, wrap-up.
#[derive(Debug, Clone)]
pub struct AgentWork {
    /// Index into `Org::agents`.
    pub agent: usize,
    pub participant_id: Uuid,
    pub session_id: Uuid,
    /// Alerting (inbound) or dialling (outbound) starts.
    pub alert_start: DateTime<Utc>,
    /// The agent is connected to the customer.
    pub connected: DateTime<Utc>,
    /// A hold inside the talk: start and length in milliseconds.
    pub hold: Option<(DateTime<Utc>, i64)>,
    /// The agent's side disconnects (customer hang-up, or the agent's transfer).
    pub disconnected: DateTime<Utc>,
    /// After-call work in milliseconds, starting at `disconnected`.
    pub acw_ms: i64,
    /// Index into `Org::wrapup_codes`.
    pub wrapup: usize,
    /// The agent transferred the customer to the next leg.
    pub transferred: bool,
}

impl AgentWork {
    /// Talk time in milliseconds (connected, excluding hold).
    #[must_use]
    pub fn talk_ms(&self) -> i64 {
        (self.disconnected - self.connected).num_milliseconds() - self.hold_ms()
    }

    /// Hold time in milliseconds.
    #[must_use]
    pub fn hold_ms(&self) -> i64 {
        self.hold.map_or(0, |(_, ms)| ms)
    }

    /// End of wrap-up.
    #[must_use]
    pub fn acw_end(&self) -> DateTime<Utc> {
        self.disconnected + Duration::milliseconds(self.acw_ms)
    }

    /// Handle time: talk + hold + after-call work, as Genesys defines tHandle.
    #[must_use]
    pub fn handle_ms(&self) -> i64 {
        self.talk_ms() + self.hold_ms() + self.acw_ms
    }
}

/// One routing step: a queue, the wait in it (inbound), and the agent who took it.
#[derive(Debug, Clone)]
pub struct Leg {
    /// Index into `Org::queues`.
    pub queue: usize,
    /// When the customer entered this leg's queue (or the agent started dialling).
    pub enter: DateTime<Utc>,
    /// The queue wait; `None` for outbound calls, which are placed by the agent.
    pub acd: Option<AcdWait>,
    /// The answering agent; `None` when the wait was abandoned.
    pub agent: Option<AgentWork>,
}

/// One simulated conversation.
#[derive(Debug, Clone)]
pub struct ConversationRecord {
    pub id: Uuid,
    pub media: MediaType,
    pub direction: Direction,
    pub start: DateTime<Utc>,
    pub customer: Customer,
    pub ivr: Option<IvrLeg>,
    pub legs: Vec<Leg>,
    pub external_tag: Option<String>,
    /// Participant data attached by the IVR or routing (`attributes` on the customer).
    pub attributes: Vec<(String, String)>,
    /// Lowest MOS of the call (voice only).
    pub min_mos: Option<f64>,
    /// `disconnected()` and `last_event()`, worked out once (queries ask them of every
    /// conversation they look at).
    ends: (DateTime<Utc>, DateTime<Utc>),
}

impl ConversationRecord {
    /// A record of these parts; the remaining fields are derived.
    #[allow(clippy::too_many_arguments)]
    #[must_use]
    pub(crate) fn new(
        id: Uuid,
        media: MediaType,
        direction: Direction,
        start: DateTime<Utc>,
        customer: Customer,
        ivr: Option<IvrLeg>,
        legs: Vec<Leg>,
        external_tag: Option<String>,
        attributes: Vec<(String, String)>,
        min_mos: Option<f64>,
    ) -> Self {
        let last = legs.last().expect("every conversation has a leg");
        let disconnected = match (&last.agent, &last.acd) {
            (Some(agent), _) => agent.disconnected,
            (None, Some(acd)) => last.enter + Duration::milliseconds(acd.wait_ms),
            (None, None) => last.enter,
        };
        let last_event = legs
            .iter()
            .filter_map(|leg| leg.agent.as_ref().map(AgentWork::acw_end))
            .fold(disconnected, DateTime::max);
        Self {
            id,
            media,
            direction,
            start,
            customer,
            ivr,
            legs,
            external_tag,
            attributes,
            min_mos,
            ends: (disconnected, last_event),
        }
    }

    /// When the customer's side ends: an abandon or the last agent's disconnect.
    #[must_use]
    pub fn disconnected(&self) -> DateTime<Utc> {
        self.ends.0
    }

    /// When the last thing happens (the last wrap-up, or the disconnect): the analytics
    /// `conversationEnd`.
    #[must_use]
    pub fn last_event(&self) -> DateTime<Utc> {
        self.ends.1
    }

    /// True when every part of the conversation (wrap-up included) is over at `now`.
    #[must_use]
    pub fn is_over_at(&self, now: DateTime<Utc>) -> bool {
        self.last_event() <= now
    }

    /// Agents taking part, in order, as indexes into `Org::agents`.
    pub fn agents(&self) -> impl Iterator<Item = &AgentWork> {
        self.legs.iter().filter_map(|leg| leg.agent.as_ref())
    }
}

impl ConversationRecord {
    /// Indexes of the queues the conversation passed through, first first, no repeats.
    #[must_use]
    pub fn queues(&self) -> Vec<usize> {
        let mut out: Vec<usize> = Vec::new();
        for leg in &self.legs {
            if !out.contains(&leg.queue) {
                out.push(leg.queue);
            }
        }
        out
    }
}
