//! [`RedisSettings`]: the `[redis]` section. Without `url`, the proxy runs alone (one
//! process, its own token, budget and cache); with it, replicas share them through Redis.

use std::time::Duration;

use serde::Deserialize;

fn default_timeout_ms() -> u64 {
    250
}
fn default_key_prefix() -> String {
    "genesys-proxy".to_owned()
}
fn default_heartbeat_secs() -> u64 {
    2
}
fn default_token_lock_ms() -> u64 {
    5_000
}
fn default_share_cache() -> bool {
    true
}
fn default_flight_poll_ms() -> u64 {
    100
}

/// Shared mode (`[redis]`; env `GENESYS_PROXY_REDIS__URL` and friends).
#[derive(Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://host:6379`, `rediss://` (TLS) or `redis+sentinel://` (Sentinel), as the
    /// `redis` crate reads them. Absent: single-process mode. May hold a password: it is
    /// never logged nor shown.
    pub url: Option<String>,
    /// Longest any one Redis call may take, in milliseconds; past it the replica counts
    /// Redis as unavailable and falls back to local state until the next heartbeat.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Prefix of every key, so several proxies (or other programs) can share one Redis.
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    /// How often a replica announces itself (and checks Redis) in seconds; a replica not
    /// heard of for three heartbeats counts as gone.
    #[serde(default = "default_heartbeat_secs")]
    pub heartbeat_secs: u64,
    /// How long the replica refreshing the shared token holds its lock, in milliseconds
    /// (others wait for its token that long at most, then try themselves).
    #[serde(default = "default_token_lock_ms")]
    pub token_lock_ms: u64,
    /// Whether cached conversations are kept in Redis too (a second tier behind each
    /// replica's own) and their fetches coalesced across replicas.
    #[serde(default = "default_share_cache")]
    pub share_cache: bool,
    /// How often a replica waiting for another's fetch looks for its entry, in
    /// milliseconds, besides being told on the `cache-filled` channel (a lost message
    /// costs at most this).
    #[serde(default = "default_flight_poll_ms")]
    pub flight_poll_ms: u64,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: None,
            timeout_ms: default_timeout_ms(),
            key_prefix: default_key_prefix(),
            heartbeat_secs: default_heartbeat_secs(),
            token_lock_ms: default_token_lock_ms(),
            share_cache: default_share_cache(),
            flight_poll_ms: default_flight_poll_ms(),
        }
    }
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &self.url.as_deref().map(redacted))
            .field("timeout_ms", &self.timeout_ms)
            .field("key_prefix", &self.key_prefix)
            .field("heartbeat_secs", &self.heartbeat_secs)
            .field("token_lock_ms", &self.token_lock_ms)
            .field("share_cache", &self.share_cache)
            .field("flight_poll_ms", &self.flight_poll_ms)
            .finish()
    }
}

/// `url` without its password, for logs and `/admin` (`redis://:***@host:6379/0`).
#[must_use]
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "(unparsable URL)".to_owned(),
    }
}

impl RedisSettings {
    /// The bound on one Redis call.
    #[must_use]
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// How often a follower looks for the entry of the flight it waits on.
    #[must_use]
    pub fn flight_poll(&self) -> Duration {
        Duration::from_millis(self.flight_poll_ms)
    }

    /// The heartbeat period.
    #[must_use]
    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs(self.heartbeat_secs)
    }

    /// Checks the section; the message names the bad setting (never the URL's password).
    ///
    /// # Errors
    /// The first invalid setting.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(url) = &self.url {
            redis::Client::open(url.as_str()).map_err(|e| {
                format!(
                    "redis.url {} is not a Redis URL: {}",
                    redacted(url),
                    e.category()
                )
            })?;
        }
        if !(1..=60_000).contains(&self.timeout_ms) {
            return Err("redis.timeout_ms must be between 1 and 60000".into());
        }
        if self.key_prefix.is_empty() || self.key_prefix.contains(char::is_whitespace) {
            return Err("redis.key_prefix must be a non-empty word".into());
        }
        if !(1..=300).contains(&self.heartbeat_secs) {
            return Err("redis.heartbeat_secs must be between 1 and 300".into());
        }
        if self.token_lock_ms < 100 {
            return Err("redis.token_lock_ms must be at least 100".into());
        }
        if !(10..=5_000).contains(&self.flight_poll_ms) {
            return Err("redis.flight_poll_ms must be between 10 and 5000".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_never_shows() {
        let settings = RedisSettings {
            url: Some("redis://:hunter2@cache:6379/0".into()),
            ..RedisSettings::default()
        };
        assert!(settings.validate().is_ok());
        let shown = format!("{settings:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("***"),
            "{shown}"
        );
        let error = RedisSettings {
            url: Some("http://:hunter2@cache".into()),
            ..RedisSettings::default()
        }
        .validate()
        .expect_err("not redis");
        assert!(
            error.contains("redis.url") && !error.contains("hunter2"),
            "{error}"
        );
    }
}
