//! [`MokaTier`]: the process-local tier, a moka store bounded in bytes by the entries'
//! [`Weighted::weight`], each entry dropped at its stale end. The default tier of every
//! [`SwrCache`](super::SwrCache), and the first tier once a shared one sits behind it.
//!
//! Keys are hashed with [`KeyHasher`], not std's SipHash: every lookup hashes its key,
//! and a hit is a lookup.

use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::swr::{Cached, Weighted};
use super::tier::{CacheTier, TierSize};

/// The hasher of the store's keys: aHash, keyed with seeds drawn from the OS once per
/// process (its `runtime-rng`) and varied per store. Clients choose the keys (conversation
/// ids come from request paths), so the hash must be one they cannot predict, or they
/// could pick ids that collide and slow every lookup of the table; a keyed hash with a
/// secret per-process seed gives that, at a fraction of SipHash's cost on a 16-byte UUID.
pub type KeyHasher = ahash::RandomState;

/// Entries expire when they may no longer be served stale.
struct ExpireAtStaleEnd;

impl<K, V> moka::Expiry<K, Arc<Cached<V>>> for ExpireAtStaleEnd {
    fn expire_after_create(
        &self,
        _key: &K,
        value: &Arc<Cached<V>>,
        _at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.stale_until.saturating_duration_since(Instant::now()))
    }

    fn expire_after_update(
        &self,
        _key: &K,
        value: &Arc<Cached<V>>,
        _at: std::time::Instant,
        _left: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.stale_until.saturating_duration_since(Instant::now()))
    }
}

/// A moka store holding at most `max_bytes` by weight.
pub struct MokaTier<K, V> {
    store: moka::future::Cache<K, Arc<Cached<V>>, KeyHasher>,
    max_bytes: u64,
}

impl<K, V> std::fmt::Debug for MokaTier<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MokaTier")
            .field("entries", &self.store.entry_count())
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

impl<K, V> MokaTier<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Weighted,
{
    /// A tier holding at most `max_bytes` (by [`Weighted::weight`]).
    #[must_use]
    pub fn new(max_bytes: u64) -> Self {
        let store = moka::future::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_key: &K, entry: &Arc<Cached<V>>| entry.value.weight())
            .expire_after(ExpireAtStaleEnd)
            .build_with_hasher(KeyHasher::new());
        Self { store, max_bytes }
    }
}

impl<K, V> CacheTier<K, V> for MokaTier<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Weighted,
{
    fn get(&self, key: &K) -> impl Future<Output = Option<Arc<Cached<V>>>> + Send {
        self.store.get(key)
    }

    fn insert(&self, key: K, entry: Arc<Cached<V>>) -> impl Future<Output = ()> + Send {
        self.store.insert(key, entry)
    }

    fn invalidate(&self, key: &K) -> impl Future<Output = ()> + Send {
        self.store.invalidate(key)
    }

    async fn purge(&self) {
        self.store.invalidate_all();
        self.store.run_pending_tasks().await;
    }

    fn settle(&self) -> impl Future<Output = ()> + Send {
        self.store.run_pending_tasks()
    }

    fn size(&self) -> TierSize {
        TierSize {
            entries: self.store.entry_count(),
            bytes: self.store.weighted_size(),
            max_bytes: self.max_bytes,
        }
    }
}
