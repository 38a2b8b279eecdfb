//! [`Store`]: the one Redis connection of a replica (a `redis` connection manager, which
//! reconnects by itself), every call bounded by `redis.timeout_ms`, and the tier's health.
//!
//! A call that fails or times out marks Redis unavailable: from then on calls fail at once
//! (no request waits on a dead Redis) until the heartbeat finds Redis answering again and
//! [`Store::rejoin`]s. The health, the failures and the rejoins are counted for `/metrics`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::settings::{RedisSettings, redacted};

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
    connection: ConnectionManager,
    /// The client the connection was made from (pub/sub needs a connection of its own).
    client: redis::Client,
    timeout: Duration,
    /// `redis.url` without its password.
    shown_url: String,
    available: AtomicBool,
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

impl Store {
    /// A store for `settings.url` (connected lazily: Redis may be down at start).
    ///
    /// # Errors
    /// When the URL is unusable.
    pub fn new(settings: &RedisSettings) -> Result<Self, String> {
        let url = settings.url.as_deref().ok_or("redis.url is not set")?;
        let shown_url = redacted(url);
        let client = redis::Client::open(url)
            .map_err(|e| format!("redis.url {shown_url}: {}", e.category()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.timeout()))
            .set_response_timeout(Some(settings.timeout()))
            .set_number_of_retries(1)
            .set_max_delay(settings.timeout());
        let connection = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| format!("redis.url {shown_url}: {}", e.category()))?;
        Ok(Self {
            connection,
            client,
            timeout: settings.timeout(),
            shown_url,
            // Unknown until the first heartbeat: calls may try.
            available: AtomicBool::new(true),
            last_error: Mutex::new(None),
            failures: AtomicU64::new(0),
            rejoins: AtomicU64::new(0),
        })
    }

    /// Whether Redis is counted available.
    pub fn available(&self) -> bool {
        self.available.load(Ordering::Acquire)
    }

    /// The client, for a connection of its own (pub/sub).
    pub fn client(&self) -> &redis::Client {
        &self.client
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
    /// heartbeat's probe).
    ///
    /// # Errors
    /// The call failed or timed out.
    pub async fn try_run<T, F, Fut>(&self, call: F) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let outcome = tokio::time::timeout(self.timeout, call(self.connection.clone())).await;
        let error = match outcome {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => describe(&error),
            Err(_) => format!("no answer within {} ms", self.timeout.as_millis()),
        };
        self.failed(&error);
        Err(StoreError::Failed(error))
    }

    /// Counts a failure and marks Redis unavailable (logged once per outage).
    fn failed(&self, error: &str) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(error.to_owned());
        if self.available.swap(false, Ordering::AcqRel) {
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
            self.rejoins.fetch_add(1, Ordering::Relaxed);
            *self
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = None;
            tracing::info!(redis = %self.shown_url, "Redis answers again: this replica rejoins shared mode");
        }
    }
}

/// A Redis error for logs: its kind and text, which never hold the URL's password.
fn describe(error: &redis::RedisError) -> String {
    if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_io_error() {
        format!("connection failed ({})", error.category())
    } else {
        format!(
            "{} ({})",
            error.category(),
            error.detail().unwrap_or("no detail")
        )
    }
}
