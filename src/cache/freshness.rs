//! How long cached answers stay fresh, and the cache's settings (`[cache]`).
//!
//! Conversations: an active one (a participant without an end) changes by the second, so
//! it is fresh for seconds; an ended one is fresh for minutes while wrap-up may still
//! arrive, then for hours once it has settled; an unknown id is remembered briefly.
//! Report pages: an interval that ended long ago does not change, a recent one does.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::swr::Freshness;

macro_rules! default_fn {
    ($name:ident, $ty:ty, $value:expr) => {
        fn $name() -> $ty {
            $value
        }
    };
}

default_fn!(default_max_bytes, u64, 256 * 1024 * 1024);
default_fn!(default_active_fresh_secs, u64, 5);
default_fn!(default_ended_fresh_secs, u64, 60);
default_fn!(default_settle_secs, u64, 1_800);
default_fn!(default_settled_fresh_secs, u64, 6 * 3_600);
default_fn!(default_not_found_fresh_secs, u64, 30);
default_fn!(default_stale_while_revalidate_secs, u64, 10);
default_fn!(default_stale_if_error_secs, u64, 600);
default_fn!(default_stale_wait_ms, u64, 1_500);
default_fn!(default_report_max_bytes, u64, 64 * 1024 * 1024);
default_fn!(default_report_recent_fresh_secs, u64, 30);
default_fn!(default_report_old_fresh_secs, u64, 3_600);
default_fn!(default_report_old_after_secs, u64, 86_400);

/// Cache settings (`[cache]` in the config file). Every duration is in seconds.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CacheSettings {
    /// Memory the conversation cache may hold, in bytes (bodies as stored).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// Freshness of an active conversation.
    #[serde(default = "default_active_fresh_secs")]
    pub active_fresh_secs: u64,
    /// Freshness of a conversation that ended less than `settle_secs` ago (wrap-up and
    /// late participants may still arrive).
    #[serde(default = "default_ended_fresh_secs")]
    pub ended_fresh_secs: u64,
    /// How long after its end a conversation is considered still settling.
    #[serde(default = "default_settle_secs")]
    pub settle_secs: u64,
    /// Freshness of a settled conversation.
    #[serde(default = "default_settled_fresh_secs")]
    pub settled_fresh_secs: u64,
    /// How long an unknown conversation id is remembered as unknown.
    #[serde(default = "default_not_found_fresh_secs")]
    pub not_found_fresh_secs: u64,
    /// After freshness ends, serve the stale entry at once while one background fetch
    /// refreshes it, for this long.
    #[serde(default = "default_stale_while_revalidate_secs")]
    pub stale_while_revalidate_secs: u64,
    /// After freshness ends, serve the stale entry when Genesys fails, for this long.
    #[serde(default = "default_stale_if_error_secs")]
    pub stale_if_error_secs: u64,
    /// When a stale entry could be served, wait at most this long (milliseconds) for
    /// Genesys before serving it; the fetch goes on in the background.
    #[serde(default = "default_stale_wait_ms")]
    pub stale_wait_ms: u64,
    /// Memory the report caches (upstream pages and aggregates) may hold, in bytes.
    #[serde(default = "default_report_max_bytes")]
    pub report_max_bytes: u64,
    /// Freshness of a report page whose interval ended less than `report_old_after_secs`
    /// ago (or is still running).
    #[serde(default = "default_report_recent_fresh_secs")]
    pub report_recent_fresh_secs: u64,
    /// Freshness of a report page whose interval ended long ago.
    #[serde(default = "default_report_old_fresh_secs")]
    pub report_old_fresh_secs: u64,
    /// When a report interval counts as old.
    #[serde(default = "default_report_old_after_secs")]
    pub report_old_after_secs: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            max_bytes: default_max_bytes(),
            active_fresh_secs: default_active_fresh_secs(),
            ended_fresh_secs: default_ended_fresh_secs(),
            settle_secs: default_settle_secs(),
            settled_fresh_secs: default_settled_fresh_secs(),
            not_found_fresh_secs: default_not_found_fresh_secs(),
            stale_while_revalidate_secs: default_stale_while_revalidate_secs(),
            stale_if_error_secs: default_stale_if_error_secs(),
            stale_wait_ms: default_stale_wait_ms(),
            report_max_bytes: default_report_max_bytes(),
            report_recent_fresh_secs: default_report_recent_fresh_secs(),
            report_old_fresh_secs: default_report_old_fresh_secs(),
            report_old_after_secs: default_report_old_after_secs(),
        }
    }
}

impl CacheSettings {
    /// How long a request waits for Genesys when it could be served stale instead.
    #[must_use]
    pub fn stale_wait(&self) -> Duration {
        Duration::from_millis(self.stale_wait_ms)
    }

    /// The stale-while-revalidate window.
    #[must_use]
    pub fn stale_while_revalidate(&self) -> Duration {
        Duration::from_secs(self.stale_while_revalidate_secs)
    }

    fn with_fresh(&self, secs: u64) -> Freshness {
        Freshness {
            fresh_for: Duration::from_secs(secs),
            stale_if_error: Duration::from_secs(self.stale_if_error_secs),
        }
    }

    /// Freshness of a conversation: `ended` is `None` while it is active; `settled` is
    /// false while an agent still owes a wrap-up.
    #[must_use]
    pub fn conversation(
        &self,
        ended: Option<DateTime<Utc>>,
        wrapped_up: bool,
        now: DateTime<Utc>,
    ) -> Freshness {
        match ended {
            None => self.with_fresh(self.active_fresh_secs),
            Some(end) => {
                let since = (now - end).num_seconds().max(0).unsigned_abs();
                if wrapped_up && since >= self.settle_secs {
                    self.with_fresh(self.settled_fresh_secs)
                } else {
                    self.with_fresh(self.ended_fresh_secs)
                }
            }
        }
    }

    /// Freshness of a remembered 404.
    #[must_use]
    pub fn not_found(&self) -> Freshness {
        Freshness {
            fresh_for: Duration::from_secs(self.not_found_fresh_secs),
            stale_if_error: Duration::ZERO,
        }
    }

    /// Freshness of a report page over an interval ending at `end`.
    #[must_use]
    pub fn report(&self, end: DateTime<Utc>, now: DateTime<Utc>) -> Freshness {
        let since = (now - end).num_seconds();
        if since >= 0 && since.unsigned_abs() >= self.report_old_after_secs {
            self.with_fresh(self.report_old_fresh_secs)
        } else {
            self.with_fresh(self.report_recent_fresh_secs)
        }
    }

    /// Checks the settings; the message names the bad one.
    ///
    /// # Errors
    /// The first invalid setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_bytes < 64 * 1024 {
            return Err("cache.max_bytes must be at least 65536".into());
        }
        if self.report_max_bytes < 64 * 1024 {
            return Err("cache.report_max_bytes must be at least 65536".into());
        }
        if self.active_fresh_secs == 0 {
            return Err("cache.active_fresh_secs must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_follows_the_conversation_state() {
        let settings = CacheSettings::default();
        let now = Utc::now();
        assert_eq!(
            settings.conversation(None, false, now).fresh_for,
            Duration::from_secs(5)
        );
        let just_ended = now - chrono::Duration::seconds(30);
        assert_eq!(
            settings.conversation(Some(just_ended), true, now).fresh_for,
            Duration::from_secs(60)
        );
        let long_ago = now - chrono::Duration::hours(2);
        assert_eq!(
            settings.conversation(Some(long_ago), true, now).fresh_for,
            Duration::from_secs(6 * 3600)
        );
        assert_eq!(
            settings.conversation(Some(long_ago), false, now).fresh_for,
            Duration::from_secs(60)
        );
    }

    #[test]
    fn old_report_intervals_stay_fresh_longer() {
        let settings = CacheSettings::default();
        let now = Utc::now();
        assert_eq!(
            settings
                .report(now - chrono::Duration::days(3), now)
                .fresh_for,
            Duration::from_secs(3600)
        );
        assert_eq!(
            settings
                .report(now - chrono::Duration::minutes(5), now)
                .fresh_for,
            Duration::from_secs(30)
        );
        assert_eq!(
            settings
                .report(now + chrono::Duration::minutes(5), now)
                .fresh_for,
            Duration::from_secs(30)
        );
    }
}
