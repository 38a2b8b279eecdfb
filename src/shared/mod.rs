//! Shared mode: several replicas share one Genesys token, one budget and one cache tier through Redis (or
//! Valkey), opted in with `[redis] url`. Without it, nothing here runs.
//!
//! [`SharedTier`] is a replica's handle on Redis: the connection with its bounded
//! timeouts and health ([`store`]), the heartbeat registry of live replicas
//! ([`registry`]), the sealed token slot ([`seal`], [`token`]), the budget's
//! server-side scripts ([`budget`]) and the second cache tier with its flights coalesced
//! across replicas ([`cache`]). When Redis is down or slow, each replica falls back
//! to local state (its own token, a local budget of rate / live replicas) and rejoins
//! when the heartbeat finds Redis answering again. Its figures are [`stats::SharedStats`]
//! (`/metrics`, `/admin/cache`, `/readyz`).

pub mod budget;
pub mod cache;
mod link;
pub mod registry;
pub mod seal;
pub mod settings;
pub mod stats;
pub mod store;
pub mod token;

use std::sync::Arc;
use std::sync::atomic::AtomicU32;

use sha2::{Digest, Sha256};

pub use budget::SharedBudget;
pub use settings::RedisSettings;
pub use stats::SharedStats;
use store::Store;

use crate::upstream::ClientCredentials;

/// The Redis keys of one OAuth client (the client id is hashed into them, so several
/// orgs or clients can share one Redis).
#[derive(Debug, Clone)]
pub struct Keys {
    /// The sealed token.
    pub token: String,
    /// Held by the replica refreshing the token.
    pub token_lock: String,
    /// The heartbeat registry (a sorted set).
    pub replicas: String,
    /// The budget's GCRA theoretical arrival time.
    pub budget_tat: String,
    /// The budget's freeze after a 429 (an instant in ms on Redis' clock).
    pub budget_frozen: String,
    /// The mirror of Genesys' window (a hash: used, allowed, reset_at).
    pub budget_window: String,
    /// The prefix of the shared cache's entries (`{cache}:{namespace}:{key}`).
    pub cache: String,
    /// The prefix of the shared cache's flight markers (`{flight}:{namespace}:{key}`).
    pub flight: String,
    /// The channel on which a flight's end is published (`{namespace}:{key}`).
    pub cache_filled: String,
}

impl Keys {
    fn new(prefix: &str, client_id: &str) -> Self {
        let digest = Sha256::digest(client_id.as_bytes());
        let client = hex::encode(&digest[..6]);
        let key = |name: &str| format!("{prefix}:{client}:{name}");
        Self {
            token: key("token"),
            token_lock: key("token-lock"),
            replicas: key("replicas"),
            budget_tat: key("budget:tat"),
            budget_frozen: key("budget:frozen"),
            budget_window: key("budget:window"),
            cache: key("cache"),
            flight: key("flight"),
            cache_filled: key("cache-filled"),
        }
    }
}

/// A replica's handle on the shared tier.
#[derive(Debug)]
pub struct SharedTier {
    pub(crate) store: Store,
    pub(crate) keys: Keys,
    /// This replica's id in the registry.
    pub(crate) replica: String,
    pub(crate) settings: RedisSettings,
    /// Live replicas at the last heartbeat (at least 1).
    pub(crate) live_replicas: AtomicU32,
    pub(crate) sealer: seal::Sealer,
    /// The shared budget's gate counters.
    pub(crate) gate: budget::GateCounts,
    /// The shared cache's counters.
    pub(crate) cache: cache::CacheCounts,
    /// Ends of shared flights, as published (followers wait on them).
    pub(crate) filled: cache::filled::Filled,
}

impl SharedTier {
    /// The tier for `settings` and the OAuth client `credentials` (whose secret keys the
    /// token's seal); starts the heartbeat on the current runtime. Redis may be down: the
    /// replica then starts on local state.
    ///
    /// # Errors
    /// When `redis.url` is missing, or a `[redis]` setting is unusable.
    pub fn start(
        settings: &RedisSettings,
        credentials: &ClientCredentials,
    ) -> Result<Arc<Self>, String> {
        let store = Store::new(settings)?;
        let mut id = [0u8; 6];
        getrandom::fill(&mut id).map_err(|e| format!("no random replica id: {e}"))?;
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "replica".to_owned());
        let tier = Arc::new(Self {
            store,
            keys: Keys::new(&settings.key_prefix, &credentials.client_id),
            replica: format!("{host}-{}", hex::encode(id)),
            settings: settings.clone(),
            live_replicas: AtomicU32::new(1),
            sealer: seal::Sealer::new(&credentials.client_secret, &credentials.client_id),
            gate: budget::GateCounts::default(),
            cache: cache::CacheCounts::default(),
            filled: cache::filled::channel(),
        });
        tracing::info!(
            redis = tier.store.shown_url(),
            replica = %tier.replica,
            "shared mode: token and budget are shared through Redis"
        );
        tokio::spawn(registry::beat(Arc::downgrade(&tier)));
        if settings.share_cache {
            tokio::spawn(cache::filled::listen(Arc::downgrade(&tier)));
        }
        Ok(tier)
    }

    /// Whether Redis is counted available (shared state in use).
    pub fn available(&self) -> bool {
        self.store.available()
    }

    /// Live replicas at the last heartbeat (at least 1; the last count while Redis is
    /// down).
    pub fn live_replicas(&self) -> u32 {
        self.live_replicas
            .load(std::sync::atomic::Ordering::Relaxed)
            .max(1)
    }

    /// This replica's id.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// The keys (tests look at what Redis holds).
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Whether caches keep a second tier here (`redis.share_cache`).
    pub fn shares_cache(&self) -> bool {
        self.settings.share_cache
    }
}
