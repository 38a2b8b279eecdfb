//! [`NotificationSettings`]: the `[notifications]` section: which queues to subscribe to
//! (all, a list, or none), the Notifications API limits (UNCONFIRMED in API-FACTS, so
//! settings rather than constants), the keep-alive timings and how long a pushed
//! conversation stays fresh.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Which queues' conversation topics the proxy subscribes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Every queue of the org (discovered with `GET /api/v2/routing/queues`).
    #[default]
    All,
    /// The queues of `queue_ids`.
    List,
    /// No subscription: conversations are polled (TTL freshness only).
    Off,
}

/// The `[notifications]` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationSettings {
    /// `all` (default), `list` or `off`.
    pub mode: Mode,
    /// The queues subscribed to in `list` mode (Genesys queue ids, UUIDs).
    pub queue_ids: Vec<String>,
    /// Most topics one channel holds (Genesys documents 1,000; UNCONFIRMED).
    pub max_topics_per_channel: usize,
    /// Most channels the proxy opens (Genesys allows 20 per user and OAuth client; the
    /// 21st removes the least recently used one. Leave room for other users of the
    /// client; UNCONFIRMED).
    pub max_channels: usize,
    /// Send `{"message":"ping"}` after this long without any message (Genesys sends a
    /// heartbeat every 30 s; UNCONFIRMED).
    pub ping_after_secs: u64,
    /// Declare the socket dead after this long without any message, and reconnect.
    pub silence_timeout_secs: u64,
    /// Re-create a channel this long before it expires (Genesys: channels live 24 h).
    pub renew_before_secs: u64,
    /// First pause before reconnecting; doubles per failed attempt.
    pub reconnect_min_ms: u64,
    /// Longest pause between reconnection attempts.
    pub reconnect_max_secs: u64,
    /// After Genesys refused the subscription (a missing permission, no Notifications API)
    /// the proxy polls, and tries to subscribe again after this long.
    pub retry_refused_secs: u64,
    /// How long a conversation updated by an event, or fetched while one of its queues is
    /// subscribed, stays fresh (it falls back to the TTL of `[cache]` after any gap).
    pub pushed_fresh_secs: u64,
    /// Page size of the queue discovery (`GET /api/v2/routing/queues`).
    pub queue_page_size: u32,
    /// In `all` mode, list the org's queues again this often, and subscribe anew when they
    /// changed (0: only at start).
    pub rediscover_queues_secs: u64,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        Self {
            mode: Mode::All,
            queue_ids: Vec::new(),
            max_topics_per_channel: 1_000,
            max_channels: 10,
            ping_after_secs: 45,
            silence_timeout_secs: 75,
            renew_before_secs: 3_600,
            reconnect_min_ms: 500,
            reconnect_max_secs: 60,
            retry_refused_secs: 600,
            pushed_fresh_secs: 300,
            queue_page_size: 100,
            rediscover_queues_secs: 600,
        }
    }
}

impl NotificationSettings {
    /// Whether the proxy subscribes at all.
    #[must_use]
    pub fn enabled(&self) -> bool {
        self.mode != Mode::Off
    }

    #[must_use]
    pub fn ping_after(&self) -> Duration {
        Duration::from_secs(self.ping_after_secs)
    }

    #[must_use]
    pub fn silence_timeout(&self) -> Duration {
        Duration::from_secs(self.silence_timeout_secs)
    }

    #[must_use]
    pub fn renew_before(&self) -> Duration {
        Duration::from_secs(self.renew_before_secs)
    }

    #[must_use]
    pub fn reconnect_min(&self) -> Duration {
        Duration::from_millis(self.reconnect_min_ms)
    }

    #[must_use]
    pub fn reconnect_max(&self) -> Duration {
        Duration::from_secs(self.reconnect_max_secs)
    }

    /// How often `all` mode lists the queues again; `None` when it does not.
    #[must_use]
    pub fn rediscover_queues(&self) -> Option<Duration> {
        (self.mode == Mode::All && self.rediscover_queues_secs > 0)
            .then(|| Duration::from_secs(self.rediscover_queues_secs))
    }

    #[must_use]
    pub fn retry_refused(&self) -> Duration {
        Duration::from_secs(self.retry_refused_secs)
    }

    #[must_use]
    pub fn pushed_fresh(&self) -> Duration {
        Duration::from_secs(self.pushed_fresh_secs)
    }

    /// The queue ids of `list` mode, parsed.
    ///
    /// # Errors
    /// The first id that is not a UUID (a topic name is built from it).
    pub fn listed_queues(&self) -> Result<Vec<Uuid>, String> {
        self.queue_ids
            .iter()
            .map(|id| {
                Uuid::try_parse(id.trim()).map_err(|_| {
                    format!("notifications.queue_ids: {id:?} is not a Genesys queue id (a UUID)")
                })
            })
            .collect()
    }

    /// Checks the section; the message names the bad setting.
    ///
    /// # Errors
    /// The first invalid setting.
    pub fn validate(&self) -> Result<(), String> {
        let queues = self.listed_queues()?;
        if self.mode == Mode::List && queues.is_empty() {
            return Err(
                "notifications.mode = \"list\" needs notifications.queue_ids (or mode = \"all\" or \"off\")"
                    .into(),
            );
        }
        for (name, value) in [
            ("max_topics_per_channel", self.max_topics_per_channel as u64),
            ("max_channels", self.max_channels as u64),
            ("ping_after_secs", self.ping_after_secs),
            ("silence_timeout_secs", self.silence_timeout_secs),
            ("reconnect_min_ms", self.reconnect_min_ms),
            ("reconnect_max_secs", self.reconnect_max_secs),
            ("retry_refused_secs", self.retry_refused_secs),
            ("queue_page_size", u64::from(self.queue_page_size)),
        ] {
            if value == 0 {
                return Err(format!("notifications.{name} must be above 0"));
            }
        }
        if self.silence_timeout_secs <= self.ping_after_secs {
            return Err(
                "notifications.silence_timeout_secs must be above notifications.ping_after_secs (the ping needs time to be answered)"
                    .into(),
            );
        }
        if self.reconnect_max() < self.reconnect_min() {
            return Err(
                "notifications.reconnect_max_secs must be at least notifications.reconnect_min_ms"
                    .into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_subscribe_to_every_queue() {
        let settings = NotificationSettings::default();
        assert_eq!(settings.validate(), Ok(()));
        assert!(settings.enabled());
    }

    #[test]
    fn bad_settings_are_named() {
        let list = NotificationSettings {
            mode: Mode::List,
            ..NotificationSettings::default()
        };
        assert!(list.validate().expect_err("no ids").contains("queue_ids"));
        let injected = NotificationSettings {
            mode: Mode::List,
            queue_ids: vec!["x.conversations,v2.users.y".into()],
            ..NotificationSettings::default()
        };
        assert!(
            injected
                .validate()
                .expect_err("not a uuid")
                .contains("UUID")
        );
        let timing = NotificationSettings {
            silence_timeout_secs: 10,
            ping_after_secs: 10,
            ..NotificationSettings::default()
        };
        assert!(
            timing
                .validate()
                .expect_err("no time")
                .contains("silence_timeout_secs")
        );
    }
}
