//! [`RedisSettings`]: the `[redis]` section (and its `[redis.sentinel]` table). Without
//! `url`, the proxy runs alone (one process, its own token, budget and cache); with it,
//! replicas share them through Redis: at `url` (`redis://`, or `rediss://` with TLS), or
//! at the master that Sentinel names. [`redacted`] shows a URL without its password.

use std::path::PathBuf;
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
    /// `redis://[user:password@]host:6379[/db]`, or `rediss://` for TLS, as the `redis`
    /// crate reads them. Absent: single-process mode. With `[redis.sentinel]`, its host is
    /// the master's name (`redis://:password@mymaster/0`): the sentinels give the address,
    /// the URL how to talk to it (TLS, user, password, database). May hold a password: it
    /// is never logged nor shown.
    pub url: Option<String>,
    /// A PEM file of the certificate authorities that sign Redis' (and the sentinels')
    /// TLS certificates, for `rediss://` with a private CA. Absent: the platform's roots.
    pub ca_file: Option<PathBuf>,
    /// A PEM certificate (chain) this replica presents to Redis, for mutual TLS (with
    /// `client_key_file`).
    pub client_cert_file: Option<PathBuf>,
    /// The PEM private key of `client_cert_file`.
    pub client_key_file: Option<PathBuf>,
    /// Redis Sentinel: the master is asked of the sentinels, at start and at every
    /// heartbeat, so the replicas follow a failover within a heartbeat.
    #[serde(default)]
    pub sentinel: SentinelSettings,
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
    /// Whether the caches are kept in Redis too (a second tier behind each replica's own)
    /// and their fetches coalesced across replicas: conversations, and report pages and
    /// aggregates (namespaces `report-pages:v1` / `report-aggregates:v1`, keyed by the
    /// SHA-256 of the canonical upstream query), so a page or a search cursor from one
    /// replica is a hit on the others. Redis down: each replica caches locally.
    #[serde(default = "default_share_cache")]
    pub share_cache: bool,
    /// How often a replica waiting for another's fetch looks for its entry, in
    /// milliseconds, besides being told on the `cache-filled` channel (a lost message
    /// costs at most this).
    #[serde(default = "default_flight_poll_ms")]
    pub flight_poll_ms: u64,
}

/// `[redis.sentinel]`: which master, and the sentinels that know where it is.
#[derive(Clone, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SentinelSettings {
    /// The master's name, as the sentinels monitor it (`sentinel monitor mymaster ...`).
    /// Absent: no Sentinel, `redis.url` is Redis' address.
    pub master: Option<String>,
    /// The sentinels' URLs (`redis://host:26379`; `rediss://` for TLS, all alike; a
    /// password in them is the sentinels' own, one for all).
    #[serde(default)]
    pub nodes: Vec<String>,
}

impl std::fmt::Debug for SentinelSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentinelSettings")
            .field("master", &self.master)
            .field(
                "nodes",
                &self.nodes.iter().map(|n| redacted(n)).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: None,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            sentinel: SentinelSettings::default(),
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
            .field("ca_file", &self.ca_file)
            .field("client_cert_file", &self.client_cert_file)
            .field("client_key_file", &self.client_key_file)
            .field("sentinel", &self.sentinel)
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

    /// How Redis is shown in logs and `/admin`: the URL without its password, and with
    /// Sentinel the sentinels too (`redis://:***@mymaster/0 via sentinels redis://s1:26379`).
    #[must_use]
    pub fn shown(&self) -> String {
        let url = self.url.as_deref().map_or_else(String::new, redacted);
        if self.sentinel.master.is_none() {
            return url;
        }
        let nodes: Vec<String> = self.sentinel.nodes.iter().map(|n| redacted(n)).collect();
        format!("{url} via sentinels {}", nodes.join(", "))
    }

    /// Checks the section; the message names the bad setting (never the URL's password).
    ///
    /// # Errors
    /// The first invalid setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.url.is_some() {
            // The files are read and the URLs parsed as the store will, at start.
            super::link::Target::new(self)?;
        } else if self.sentinel.master.is_some()
            || !self.sentinel.nodes.is_empty()
            || self.ca_file.is_some()
            || self.client_cert_file.is_some()
            || self.client_key_file.is_some()
        {
            return Err(
                "redis.sentinel, redis.ca_file and redis.client_cert_file / client_key_file need redis.url (shared mode is on only with it)"
                    .into(),
            );
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

    fn sentinel(url: &str, master: &str, nodes: &[&str]) -> RedisSettings {
        RedisSettings {
            url: Some(url.into()),
            sentinel: SentinelSettings {
                master: Some(master.into()),
                nodes: nodes.iter().map(|n| (*n).to_owned()).collect(),
            },
            ..RedisSettings::default()
        }
    }

    #[test]
    fn sentinel_settings_are_checked_and_their_passwords_never_show() {
        let good = sentinel(
            "redis://:hunter2@mymaster/1",
            "mymaster",
            &[
                "redis://:s3nt1nel@10.0.0.1:26379",
                "redis://:s3nt1nel@10.0.0.2:26379",
            ],
        );
        assert_eq!(good.validate(), Ok(()));
        for shown in [good.shown(), format!("{good:?}")] {
            assert!(
                !shown.contains("hunter2") && !shown.contains("s3nt1nel"),
                "{shown}"
            );
            assert!(shown.contains("10.0.0.2:26379"), "{shown}");
        }
        assert_eq!(
            good.shown(),
            "redis://:***@mymaster/1 via sentinels redis://:***@10.0.0.1:26379, redis://:***@10.0.0.2:26379"
        );
        let bad = [
            (
                sentinel(
                    "redis://:hunter2@10.0.0.9:6379",
                    "mymaster",
                    &["redis://10.0.0.1:26379"],
                ),
                "redis.url",
            ),
            (
                sentinel("redis://mymaster", "mymaster", &[]),
                "redis.sentinel.nodes",
            ),
            (
                sentinel(
                    "redis://mymaster",
                    "mymaster",
                    &[
                        "redis://:s3nt1nel@10.0.0.1:26379",
                        "http://:s3nt1nel@10.0.0.2",
                    ],
                ),
                "redis.sentinel.nodes",
            ),
            (
                sentinel(
                    "redis://mymaster",
                    "mymaster",
                    &["redis://10.0.0.1:26379", "rediss://10.0.0.2:26379"],
                ),
                "redis.sentinel.nodes",
            ),
            (
                sentinel(
                    "redis://mymaster",
                    "mymaster",
                    &[
                        "redis://:s3nt1nel@10.0.0.1:26379",
                        "redis://:other@10.0.0.2:26379",
                    ],
                ),
                "redis.sentinel.nodes",
            ),
            (
                sentinel(
                    "redis://my master",
                    "my master",
                    &["redis://10.0.0.1:26379"],
                ),
                "redis.",
            ),
        ];
        for (settings, named) in bad {
            let error = settings.validate().expect_err("refused");
            assert!(error.contains(named), "{error}");
            assert!(
                !error.contains("hunter2") && !error.contains("s3nt1nel"),
                "{error}"
            );
        }
        let nodes_alone = RedisSettings {
            url: Some("redis://cache:6379".into()),
            sentinel: SentinelSettings {
                master: None,
                nodes: vec!["redis://10.0.0.1:26379".into()],
            },
            ..RedisSettings::default()
        };
        let error = nodes_alone.validate().expect_err("nodes without a master");
        assert!(error.contains("redis.sentinel.master"), "{error}");
        let without_url = RedisSettings { url: None, ..good };
        let error = without_url.validate().expect_err("no url");
        assert!(error.contains("redis.url"), "{error}");
        let certificate_without_url = RedisSettings {
            client_cert_file: Some("/etc/genesys-proxy/redis-client.pem".into()),
            ..RedisSettings::default()
        };
        let error = certificate_without_url
            .validate()
            .expect_err("a certificate without a url");
        assert!(error.contains("redis.url"), "{error}");
    }
}
