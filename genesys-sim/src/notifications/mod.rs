//! The Notifications API (API-FACTS section 8): notification channels, their topic
//! subscriptions, the one WebSocket per channel, and the conversation events it carries.
//!
//! - [`channels`]: the registry of channels (lifetime, the 20-channel cap, the socket
//!   attached to each, its topics).
//! - [`topics`]: which topics the simulator knows, and which topics a conversation's
//!   change is published on.
//! - [`events`]: the envelope and the event bodies, projected from the same real-time
//!   document `GET /api/v2/conversations/{id}` serves.
//! - [`pump`]: the task that finds changed conversations tick after tick and publishes
//!   their events.
//! - [`socket`]: one WebSocket: heartbeats, ping/pong, expiry, closes.
//! - [`routes`]: the REST handlers (`/api/v2/notifications/...`) and the socket upgrade.
//!
//! [`Notifications`] is the part of the simulator's state they share: settings that can
//! change at run time, the registry and the counters tests read at
//! `GET /sim/notifications`.

pub mod channels;
pub mod events;
pub(crate) mod pump;
pub(crate) mod routes;
pub(crate) mod socket;
pub mod topics;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::Serialize;

use crate::config::NotificationSettings;
use channels::Channels;

/// Counters of the Notifications API (REST calls are also counted with the other API
/// calls, under their endpoint labels).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NotificationCounters {
    pub channels_created: u64,
    /// Channels removed to make room for a new one (the 20-channel cap).
    pub channels_evicted: u64,
    pub channels_expired: u64,
    /// Successful subscription changes (`POST`, `PUT`, `DELETE`).
    pub subscription_changes: u64,
    pub sockets_accepted: u64,
    /// Connections refused (unknown or expired channel).
    pub sockets_refused: u64,
    /// Sockets closed because a second socket connected to their channel.
    pub sockets_replaced: u64,
    /// Sockets cut without a close frame (`POST /sim/notifications/drop`).
    pub sockets_dropped: u64,
    pub heartbeats_sent: u64,
    pub pongs_sent: u64,
    pub socket_closing_sent: u64,
    /// Events written to a socket, per topic.
    pub events_sent: BTreeMap<String, u64>,
    /// Events lost because the subscribed channel had no socket, per topic.
    pub events_dropped: BTreeMap<String, u64>,
}

/// The Notifications API's shared state; one per simulator.
#[derive(Debug)]
pub struct Notifications {
    settings: Mutex<NotificationSettings>,
    channels: Mutex<Channels>,
    counters: Mutex<NotificationCounters>,
    pump_started: AtomicBool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Notifications {
    /// No channels yet, with these settings.
    #[must_use]
    pub fn new(settings: NotificationSettings) -> Self {
        Self {
            settings: Mutex::new(settings),
            channels: Mutex::new(Channels::default()),
            counters: Mutex::new(NotificationCounters::default()),
            pump_started: AtomicBool::new(false),
        }
    }

    /// The current settings.
    #[must_use]
    pub fn settings(&self) -> NotificationSettings {
        lock(&self.settings).clone()
    }

    /// Replaces the settings (a new heartbeat interval applies from each socket's next
    /// heartbeat, a new lifetime to channels created from now on).
    pub fn set_settings(&self, settings: NotificationSettings) {
        *lock(&self.settings) = settings;
    }

    /// A copy of the counters.
    #[must_use]
    pub fn counters(&self) -> NotificationCounters {
        lock(&self.counters).clone()
    }

    /// Sets every counter back to zero.
    pub fn reset_counters(&self) {
        *lock(&self.counters) = NotificationCounters::default();
    }

    pub(crate) fn count(&self, f: impl FnOnce(&mut NotificationCounters)) {
        f(&mut lock(&self.counters));
    }

    pub(crate) fn channels(&self) -> MutexGuard<'_, Channels> {
        lock(&self.channels)
    }

    /// True the first time only: the caller starts the event pump.
    pub(crate) fn claim_pump(&self) -> bool {
        !self.pump_started.swap(true, Ordering::SeqCst)
    }

    /// Cuts every socket without a close frame (as a network failure would); returns how
    /// many. The channels and their subscriptions stay: clients may reconnect.
    pub fn drop_sockets(&self) -> usize {
        let dropped = self.channels().drop_sockets();
        self.count(|c| c.sockets_dropped += dropped as u64);
        dropped
    }

    /// Sends `v2.system.socket_closing` on every socket, then closes it (as Genesys does
    /// before maintenance); returns how many. The channels stay: clients reconnect.
    pub fn close_for_maintenance(&self) -> usize {
        let closed = self.channels().close_for_maintenance();
        self.count(|c| c.socket_closing_sent += closed as u64);
        closed
    }
}
