//! [`Store`]: the one Redis connection of a replica (a `redis` connection manager, which
//! reconnects by itself), every call bounded by `redis.timeout_ms`, and the tier's health.
//!
//! A call that fails or times out marks Redis unavailable: from then on calls fail at once
//! (no request waits on a dead Redis) until the heartbeat finds Redis answering again and
//! [`Store::rejoin`]s. The health, the failures and the rejoins are counted for `/metrics`.
//! With Sentinel ([`super::link`]), every heartbeat's probe first asks the sentinels where
//! the master is: a connection to a new address replaces the old one, so the replica
//! follows a failover within a heartbeat, its pub/sub too once its connection to the old
//! master ends ([`Store::client`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::link::Target;
use super::settings::RedisSettings;

/// Why a Redis call did not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Redis is counted unavailable (a recent call failed): not tried.
    #[error("Redis is unavailable: {0}")]
    Unavailable(String),
    /// The call failed or timed out.
    #[error("Redis call failed: {0}")]
    Failed(String),
}

/// The connection and the tier's health.
pub struct Store {
    /// Where Redis is: at `redis.url`, or where the sentinels say.
    target: Target,
    /// The connection to the master in use (none until the sentinels named one).
    link: RwLock<Option<Arc<Link>>>,
    manager_config: ConnectionManagerConfig,
    /// [`Store::client`] before the sentinels named a master.
    nowhere: redis::Client,
    timeout: Duration,
    /// The longest the sentinels may take to name the master.
    sentinel_timeout: Duration,
    /// `redis.url` without its password (and the sentinels).
    shown_url: String,
    available: AtomicBool,
    /// Whether Redis was ever in use (a first join is no rejoin).
    joined: AtomicBool,
    last_error: Mutex<Option<String>>,
    failures: AtomicU64,
    rejoins: AtomicU64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("url", &self.shown_url)
            .field("available", &self.available())
            .finish_non_exhaustive()
    }
}

/// A connection to the master, and the client it was made from.
struct Link {
    connection: ConnectionManager,
    client: redis::Client,
}

impl Link {
    fn new(
        client: redis::Client,
        config: ConnectionManagerConfig,
    ) -> redis::RedisResult<Arc<Self>> {
        Ok(Arc::new(Self {
            connection: ConnectionManager::new_lazy_with_config(client.clone(), config)?,
            client,
        }))
    }
}

/// Until the sentinels named a master.
const NO_MASTER_YET: &str = "the master has not been named by the sentinels yet";

impl Store {
    /// A store for `settings` (connected lazily: Redis, or the sentinels, may be down at
    /// start).
    ///
    /// # Errors
    /// When a setting is unusable (the message names it).
    pub fn new(settings: &RedisSettings) -> Result<Self, String> {
        let target = Target::new(settings)?;
        let shown_url = settings.shown();
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.timeout()))
            .set_response_timeout(Some(settings.timeout()))
            .set_number_of_retries(1)
            .set_max_delay(settings.timeout());
        let link = match &target {
            Target::Direct(client) => Some(
                Link::new(client.clone(), manager_config.clone())
                    .map_err(|e| format!("redis.url {shown_url}: {}", e.category()))?,
            ),
            Target::Sentinel(_) => None,
        };
        // Direct: unknown until the first heartbeat, calls may try. Sentinel: calls wait
        // for the heartbeat to ask where the master is (a request never waits on them).
        let direct = link.is_some();
        Ok(Self {
            target,
            link: RwLock::new(link),
            manager_config,
            nowhere: nowhere().map_err(|e| format!("redis: {}", e.category()))?,
            timeout: settings.timeout(),
            // A sentinel that does not answer costs the crate's connection timeout (1 s)
            // before the next is tried: the probe may take a heartbeat.
            sentinel_timeout: settings.timeout().max(settings.heartbeat()),
            shown_url,
            available: AtomicBool::new(direct),
            joined: AtomicBool::new(direct),
            last_error: Mutex::new((!direct).then(|| NO_MASTER_YET.to_owned())),
            failures: AtomicU64::new(0),
            rejoins: AtomicU64::new(0),
        })
    }

    /// Whether Redis is counted available.
    pub fn available(&self) -> bool {
        self.available.load(Ordering::Acquire)
    }

    /// The client of the master in use, for a connection of its own (pub/sub); read it
    /// again for every new connection (with Sentinel, the master may have moved). Before
    /// the sentinels named a master, a client that fails to connect at once.
    pub fn client(&self) -> redis::Client {
        self.current()
            .map_or_else(|| self.nowhere.clone(), |link| link.client.clone())
    }

    fn current(&self) -> Option<Arc<Link>> {
        self.link
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The bound on one call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The URL without its password.
    pub fn shown_url(&self) -> &str {
        &self.shown_url
    }

    /// The last failure (cleared on rejoin).
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Failed calls so far.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Times the replica rejoined after Redis was unavailable.
    pub fn rejoins(&self) -> u64 {
        self.rejoins.load(Ordering::Relaxed)
    }

    /// Runs `call` on the connection within the timeout, unless Redis is counted
    /// unavailable; a failure marks it so.
    ///
    /// # Errors
    /// Unavailable, or the call failed or timed out.
    pub async fn run<T, F, Fut>(&self, call: F) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if !self.available() {
            return Err(StoreError::Unavailable(
                self.last_error().unwrap_or_else(|| "not answering".into()),
            ));
        }
        self.try_run(call).await
    }

    /// As [`run`](Self::run), tried even while Redis is counted unavailable (the
    /// heartbeat's probe); with Sentinel, the master is asked of the sentinels first, every
    /// time: a failover that left the old master writable (`SENTINEL FAILOVER`, until the
    /// sentinels demote it) is followed within a heartbeat, not when a write fails. While
    /// the master in use answers, sentinels that do not answer do not make Redis
    /// unavailable.
    ///
    /// # Errors
    /// The call failed or timed out.
    pub async fn try_run<T, F, Fut>(&self, call: F) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if self.target.follows_sentinels() {
            // Boxed: the crate's sentinel future is deep, and every call's future holds this one.
            if let Err(error) = Box::pin(self.ask_sentinels()).await {
                if !self.available() || self.current().is_none() {
                    self.failed(&error);
                    return Err(StoreError::Failed(error));
                }
                // The master in use still answers: the sentinels are asked again next time.
                tracing::debug!(redis = %self.shown_url, error, "the sentinels did not answer: the master in use stays");
            }
        }
        let Some(link) = self.current() else {
            self.failed(NO_MASTER_YET);
            return Err(StoreError::Failed(NO_MASTER_YET.to_owned()));
        };
        let outcome = tokio::time::timeout(self.timeout, call(link.connection.clone())).await;
        let error = match outcome {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => describe(&error),
            Err(_) => format!("no answer within {} ms", self.timeout.as_millis()),
        };
        self.failed(&error);
        Err(StoreError::Failed(error))
    }

    /// Asks the sentinels where the master is; a new address replaces the connection.
    async fn ask_sentinels(&self) -> Result<(), String> {
        let client = match tokio::time::timeout(self.sentinel_timeout, self.target.master()).await {
            Ok(Ok(client)) => client,
            Ok(Err(error)) => {
                return Err(format!(
                    "no master from the sentinels: {}",
                    describe(&error)
                ));
            }
            Err(_) => {
                return Err(format!(
                    "the sentinels named no master within {} ms",
                    self.sentinel_timeout.as_millis()
                ));
            }
        };
        let address = client.get_connection_info().addr().clone();
        let mut link = self.link.write().unwrap_or_else(PoisonError::into_inner);
        if link
            .as_ref()
            .is_some_and(|link| link.client.get_connection_info().addr() == &address)
        {
            return Ok(());
        }
        *link = Some(
            Link::new(client, self.manager_config.clone())
                .map_err(|e| format!("the master at {address}: {}", describe(&e)))?,
        );
        tracing::info!(redis = %self.shown_url, master = %address, "the sentinels name the master: connecting to it");
        Ok(())
    }

    /// Counts a failure and marks Redis unavailable (logged once per outage).
    fn failed(&self, error: &str) {
        let first = self.failures.fetch_add(1, Ordering::Relaxed) == 0;
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(error.to_owned());
        let was_available = self.available.swap(false, Ordering::AcqRel);
        // With Sentinel the store starts unavailable: its first failure is an outage too.
        if was_available || (first && !self.joined.load(Ordering::Acquire)) {
            tracing::warn!(
                redis = %self.shown_url,
                error,
                "Redis is unavailable: this replica falls back to its local token, budget and cache"
            );
        }
    }

    /// Redis answered the heartbeat: calls go to it again.
    pub fn rejoin(&self) {
        if !self.available.swap(true, Ordering::AcqRel) {
            *self
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = None;
            if self.joined.swap(true, Ordering::AcqRel) {
                self.rejoins.fetch_add(1, Ordering::Relaxed);
                tracing::info!(redis = %self.shown_url, "Redis answers again: this replica rejoins shared mode");
            } else {
                tracing::info!(redis = %self.shown_url, "Redis answers: this replica joins shared mode");
            }
        }
    }
}

/// A client that cannot connect, for pub/sub before the sentinels named a master: its
/// connection fails at once (no network), naming why.
fn nowhere() -> redis::RedisResult<redis::Client> {
    redis::Client::open(redis::ConnectionAddr::Unix(
        "/nonexistent/the-sentinels-have-not-named-a-master-yet".into(),
    ))
}

/// A Redis error for logs: its kind and text, which never hold the URL's password.
fn describe(error: &redis::RedisError) -> String {
    if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_io_error() {
        // The I/O error's own text (refused, reset, a TLS certificate not trusted, ...):
        // it holds no URL.
        format!("connection failed ({error})")
    } else {
        match error.detail() {
            Some(detail) => format!("{} ({detail})", error.category()),
            None => error.category().to_owned(),
        }
    }
}
