//! The subscriber's figures (`/metrics`) and its state (the `notifications` component of
//! `/readyz`): channels, topics, events by outcome, heartbeats, reconnects by reason,
//! gaps, and the time from an event's arrival to the cache holding it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::metrics::histogram::Histogram;
use crate::metrics::{header, sample};

/// What the subscriber is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// `mode = "off"`: conversations are polled.
    Off,
    /// Listing queues, creating channels, subscribing.
    Starting,
    /// Every planned channel is subscribed and connected.
    Subscribed,
    /// A channel lost its socket and is reconnecting (its conversations use TTLs).
    Reconnecting,
    /// Genesys refused (a permission, no Notifications API): polling, retried later.
    Degraded { reason: String },
    /// Stopped at shutdown.
    Stopped,
}

impl State {
    fn label(&self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Starting => "starting",
            Self::Subscribed => "ok",
            Self::Reconnecting => "reconnecting",
            Self::Degraded { .. } => "degraded",
            Self::Stopped => "stopped",
        }
    }
}

/// Why a socket was replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconnect {
    /// The socket closed or failed.
    Dropped,
    /// Nothing arrived for `silence_timeout_secs` (no heartbeat, no answer to a ping).
    Silence,
    /// Genesys sent `v2.system.socket_closing`.
    SocketClosing,
    /// The channel was re-created before its expiry.
    Renewal,
}

impl Reconnect {
    const ALL: [Self; 4] = [
        Self::Dropped,
        Self::Silence,
        Self::SocketClosing,
        Self::Renewal,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Dropped => "dropped",
            Self::Silence => "silence",
            Self::SocketClosing => "socket_closing",
            Self::Renewal => "renewal",
        }
    }
}

/// What became of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventOutcome {
    /// A cached conversation was updated.
    Applied,
    /// The conversation is not cached (nothing done, nothing fetched).
    NotCached,
    /// A remembered 404 was dropped.
    Forgotten,
    /// Unreadable or not applicable (nothing changed).
    Rejected,
    /// A topic the proxy does not use.
    Ignored,
}

impl EventOutcome {
    const ALL: [Self; 5] = [
        Self::Applied,
        Self::NotCached,
        Self::Forgotten,
        Self::Rejected,
        Self::Ignored,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::NotCached => "not_cached",
            Self::Forgotten => "forgotten",
            Self::Rejected => "rejected",
            Self::Ignored => "ignored",
        }
    }
}

/// The subscriber's counters and state.
#[derive(Debug)]
pub struct NotificationStats {
    state: Mutex<State>,
    channels_planned: AtomicU64,
    channels_connected: AtomicI64,
    channels_created: AtomicU64,
    topics: AtomicU64,
    topics_left_out: AtomicU64,
    events: [AtomicU64; EventOutcome::ALL.len()],
    heartbeats: AtomicU64,
    reconnects: [AtomicU64; Reconnect::ALL.len()],
    gaps: AtomicU64,
    demoted: AtomicU64,
    refusals: AtomicU64,
    event_lag: Histogram,
}

impl Default for NotificationStats {
    fn default() -> Self {
        Self {
            state: Mutex::new(State::Starting),
            channels_planned: AtomicU64::default(),
            channels_connected: AtomicI64::default(),
            channels_created: AtomicU64::default(),
            topics: AtomicU64::default(),
            topics_left_out: AtomicU64::default(),
            events: Default::default(),
            heartbeats: AtomicU64::default(),
            reconnects: Default::default(),
            gaps: AtomicU64::default(),
            demoted: AtomicU64::default(),
            refusals: AtomicU64::default(),
            event_lag: Histogram::default(),
        }
    }
}

impl NotificationStats {
    /// The current state.
    #[must_use]
    pub fn state(&self) -> State {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Sets the state; returns the previous one.
    pub fn set_state(&self, state: State) -> State {
        let mut slot = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        std::mem::replace(&mut slot, state)
    }

    pub fn planned(&self, channels: usize, topics: usize, left_out: usize) {
        self.channels_planned
            .store(channels as u64, Ordering::Relaxed);
        self.topics.store(topics as u64, Ordering::Relaxed);
        self.topics_left_out
            .store(left_out as u64, Ordering::Relaxed);
    }

    pub fn channel_created(&self) {
        self.channels_created.fetch_add(1, Ordering::Relaxed);
    }

    pub fn socket_opened(&self) {
        self.channels_connected.fetch_add(1, Ordering::Relaxed);
    }

    pub fn socket_closed(&self) {
        self.channels_connected.fetch_sub(1, Ordering::Relaxed);
    }

    /// Sockets connected now.
    #[must_use]
    pub fn connected(&self) -> u64 {
        u64::try_from(self.channels_connected.load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// Channels the plan asks for.
    #[must_use]
    pub fn planned_channels(&self) -> u64 {
        self.channels_planned.load(Ordering::Relaxed)
    }

    pub fn heartbeat(&self) {
        self.heartbeats.fetch_add(1, Ordering::Relaxed);
    }

    pub fn reconnect(&self, why: Reconnect) {
        self.reconnects[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Reconnections for `why` so far.
    #[must_use]
    pub fn reconnects(&self, why: Reconnect) -> u64 {
        self.reconnects[why as usize].load(Ordering::Relaxed)
    }

    pub fn gap(&self, demoted: u64) {
        self.gaps.fetch_add(1, Ordering::Relaxed);
        self.demoted.fetch_add(demoted, Ordering::Relaxed);
    }

    /// Gaps so far.
    #[must_use]
    pub fn gaps(&self) -> u64 {
        self.gaps.load(Ordering::Relaxed)
    }

    pub fn refused(&self) {
        self.refusals.fetch_add(1, Ordering::Relaxed);
    }

    pub fn event(&self, outcome: EventOutcome, lag: Duration) {
        self.events[outcome as usize].fetch_add(1, Ordering::Relaxed);
        if outcome != EventOutcome::Ignored {
            self.event_lag.observe(lag);
        }
    }

    /// Events with `outcome` so far.
    #[must_use]
    pub fn events(&self, outcome: EventOutcome) -> u64 {
        self.events[outcome as usize].load(Ordering::Relaxed)
    }

    /// The `notifications` component of `/readyz` (it never makes the proxy unready:
    /// without events, conversations are polled).
    #[must_use]
    pub fn readiness(&self) -> Value {
        let state = self.state();
        let mut report = json!({
            "status": state.label(),
            "channels": self.planned_channels(),
            "connected": self.connected(),
            "topics": self.topics.load(Ordering::Relaxed),
        });
        if let State::Degraded { reason } = &state {
            report["detail"] = json!(format!("{reason}; conversations are polled"));
        }
        report
    }

    /// The families, in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let gauges: [(&str, &str, u64); 4] = [
            (
                "genesys_proxy_notification_channels",
                "Notification channels the topic plan asks for.",
                self.planned_channels(),
            ),
            (
                "genesys_proxy_notification_channels_connected",
                "Notification channels with a connected socket.",
                self.connected(),
            ),
            (
                "genesys_proxy_notification_topics",
                "Topics subscribed over all channels.",
                self.topics.load(Ordering::Relaxed),
            ),
            (
                "genesys_proxy_notification_topics_left_out",
                "Topics beyond what max_channels x max_topics_per_channel can hold (polled).",
                self.topics_left_out.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in gauges {
            header(out, name, "gauge", help);
            sample(out, name, "", value);
        }
        let degraded = u64::from(matches!(self.state(), State::Degraded { .. }));
        header(
            out,
            "genesys_proxy_notification_degraded",
            "gauge",
            "1 while Genesys refuses the subscription and conversations are polled.",
        );
        sample(out, "genesys_proxy_notification_degraded", "", degraded);
        let counters: [(&str, &str, u64); 5] = [
            (
                "genesys_proxy_notification_channels_created_total",
                "Channels created (each one upstream call).",
                self.channels_created.load(Ordering::Relaxed),
            ),
            (
                "genesys_proxy_notification_heartbeats_total",
                "channel.metadata messages received (heartbeats and pongs).",
                self.heartbeats.load(Ordering::Relaxed),
            ),
            (
                "genesys_proxy_notification_gaps_total",
                "Times events may have been missed (a socket lost, a refusal); pushed conversations then fall back to TTL freshness.",
                self.gaps(),
            ),
            (
                "genesys_proxy_notification_demoted_total",
                "Pushed conversations returned to TTL freshness after a gap.",
                self.demoted.load(Ordering::Relaxed),
            ),
            (
                "genesys_proxy_notification_refusals_total",
                "Times Genesys refused a subscription, a channel or the queue listing.",
                self.refusals.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in counters {
            header(out, name, "counter", help);
            sample(out, name, "", value);
        }
        let name = "genesys_proxy_notification_events_total";
        header(
            out,
            name,
            "counter",
            "Notification events received, by outcome.",
        );
        for outcome in EventOutcome::ALL {
            let labels = format!("outcome=\"{}\"", outcome.label());
            sample(out, name, &labels, self.events(outcome));
        }
        let name = "genesys_proxy_notification_reconnects_total";
        header(out, name, "counter", "Sockets replaced, by reason.");
        for why in Reconnect::ALL {
            let labels = format!("reason=\"{}\"", why.label());
            sample(out, name, &labels, self.reconnects(why));
        }
        let name = "genesys_proxy_notification_event_lag_seconds";
        header(
            out,
            name,
            "histogram",
            "Time from an event's arrival on the socket to the cache holding its update.",
        );
        self.event_lag.render(out, name, "");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_families_render_with_their_labels() {
        let stats = NotificationStats::default();
        stats.planned(2, 1_500, 0);
        stats.event(EventOutcome::Applied, Duration::from_millis(2));
        stats.reconnect(Reconnect::SocketClosing);
        let mut out = String::new();
        stats.render(&mut out);
        for line in [
            "genesys_proxy_notification_channels 2",
            "genesys_proxy_notification_topics 1500",
            "genesys_proxy_notification_events_total{outcome=\"applied\"} 1",
            "genesys_proxy_notification_reconnects_total{reason=\"socket_closing\"} 1",
            "genesys_proxy_notification_event_lag_seconds_count 1",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} in\n{out}");
        }
    }

    #[test]
    fn a_degraded_subscriber_says_why_and_that_it_polls() {
        let stats = NotificationStats::default();
        stats.set_state(State::Degraded {
            reason: "missing permission".into(),
        });
        let report = stats.readiness();
        assert_eq!(report["status"], "degraded");
        assert_eq!(
            report["detail"],
            "missing permission; conversations are polled"
        );
    }
}
