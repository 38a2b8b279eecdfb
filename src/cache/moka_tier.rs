//! [`MokaTier`]: the process-local tier, a moka store bounded in bytes by the entries'
//! [`Weighted::weight`], each entry dropped at its stale end. The default tier of every
//! [`SwrCache`](super::SwrCache), and the first tier once a shared one sits behind it.
//!
//! Keys are hashed with [`KeyHasher`], not std's SipHash: every lookup hashes its key,
//! and a hit is a lookup. The fast path's lookups ([`CacheTier::get_ready`], then
//! [`CacheTier::get_local`]) read a [`FrontTable`] of the entries moka answered lately
//! before moka itself: a fresh hit then skips moka's per-read bookkeeping, and every
//! change reaches both (moka first).

use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{Either, ready};
use tokio::time::Instant;

use super::front::{FrontLookup, FrontTable};
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

/// A moka store holding at most `max_bytes` by weight, with its [`FrontTable`].
pub struct MokaTier<K, V> {
    store: moka::future::Cache<K, Arc<Cached<V>>, KeyHasher>,
    /// The entries moka answered lately; changed after moka, by every change.
    front: Arc<FrontTable<K, V>>,
    max_bytes: u64,
}

impl<K, V> std::fmt::Debug for MokaTier<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MokaTier")
            .field("entries", &self.store.entry_count())
            .field("front", &self.front)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

impl<K, V> MokaTier<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Weighted,
{
    /// A tier holding at most `max_bytes` (by [`Weighted::weight`]).
    #[must_use]
    pub fn new(max_bytes: u64) -> Self {
        let front = Arc::new(FrontTable::default());
        let evicted = Arc::clone(&front);
        let store = moka::future::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_key: &K, entry: &Arc<Cached<V>>| entry.value.weight())
            .expire_after(ExpireAtStaleEnd)
            // Inserts and invalidations tell the front themselves; moka's own removals
            // (for room, at the stale end) are told here, after moka dropped the entry.
            .eviction_listener(move |key: Arc<K>, _entry, cause| {
                if cause.was_evicted() {
                    evicted.forget(&*key);
                }
            })
            .build_with_hasher(KeyHasher::new());
        Self {
            store,
            front,
            max_bytes,
        }
    }

    /// The number of entries the front holds (for tests and `Debug`).
    #[must_use]
    pub fn front_slots(&self) -> usize {
        self.front.slots()
    }
}

impl<K, V> CacheTier<K, V> for MokaTier<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Weighted,
{
    fn get(&self, key: &K) -> impl Future<Output = Option<Arc<Cached<V>>>> + Send {
        self.store.get(key)
    }

    fn get_ready(&self, key: &K, now: Instant) -> Option<Arc<Cached<V>>> {
        match self.front.lookup(key, now) {
            FrontLookup::Hit(entry) => Some(entry),
            FrontLookup::Miss(_) => None,
        }
    }

    fn get_local(
        &self,
        key: &K,
        now: Instant,
    ) -> impl Future<Output = Option<Arc<Cached<V>>>> + Send {
        match self.front.lookup(key, now) {
            FrontLookup::Hit(entry) => Either::Left(ready(Some(entry))),
            FrontLookup::Miss(version) => Either::Right(async move {
                let entry = self.store.get(key).await;
                if let Some(entry) = &entry {
                    self.front.fill(key, entry, version, now);
                }
                entry
            }),
        }
    }

    async fn insert(&self, key: K, entry: Arc<Cached<V>>) {
        self.store.insert(key.clone(), entry).await;
        self.front.forget(&key);
    }

    async fn invalidate(&self, key: &K) {
        self.store.invalidate(key).await;
        self.front.forget(key);
    }

    async fn purge(&self) {
        self.store.invalidate_all();
        self.front.clear();
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    #[derive(Debug)]
    struct Value(u64);

    impl Weighted for Value {
        fn weight(&self) -> u32 {
            100
        }
    }

    fn entry(value: u64, fresh_for: Duration) -> Arc<Cached<Value>> {
        let now = Instant::now();
        Arc::new(Cached {
            value: Value(value),
            fetched_at: now,
            fresh_until: now + fresh_for,
            stale_until: now + fresh_for + Duration::from_secs(600),
        })
    }

    async fn local(tier: &MokaTier<u64, Value>, key: u64) -> Option<u64> {
        tier.get_local(&key, Instant::now())
            .await
            .map(|entry| entry.value.0)
    }

    #[tokio::test]
    async fn the_front_answers_what_moka_holds_after_every_change() {
        let tier = MokaTier::new(1 << 20);
        let minute = Duration::from_secs(60);
        tier.insert(1, entry(10, minute)).await;
        let ready = |key: u64| {
            tier.get_ready(&key, Instant::now())
                .map(|entry| entry.value.0)
        };
        assert_eq!(ready(1), None, "not read yet");
        assert_eq!(local(&tier, 1).await, Some(10));
        assert_eq!(tier.front_slots(), 1, "the read filled the front");
        assert_eq!(ready(1), Some(10));
        assert_eq!(local(&tier, 1).await, Some(10));

        tier.insert(1, entry(11, minute)).await;
        assert_eq!(tier.front_slots(), 0, "an insert takes the old slot out");
        assert_eq!(ready(1), None);
        assert_eq!(local(&tier, 1).await, Some(11));

        tier.invalidate(&1).await;
        assert_eq!(local(&tier, 1).await, None);

        tier.insert(2, entry(20, minute)).await;
        assert_eq!(local(&tier, 2).await, Some(20));
        tier.purge().await;
        assert_eq!(local(&tier, 2).await, None);
        assert_eq!(tier.front_slots(), 0);

        // A stale entry is moka's to answer, and never put in front.
        tier.insert(3, entry(30, Duration::ZERO)).await;
        assert_eq!(local(&tier, 3).await, Some(30));
        assert_eq!(tier.front_slots(), 0);
    }

    #[tokio::test]
    async fn an_entry_moka_evicts_for_room_leaves_the_front_too() {
        // Room for 3 entries of 100 bytes.
        let tier = MokaTier::new(300);
        let minute = Duration::from_secs(60);
        for key in 0..50 {
            tier.insert(key, entry(key, minute)).await;
            let _ = local(&tier, key).await;
            tier.settle().await;
        }
        tier.settle().await;
        let held = tier.size().entries;
        assert!(held <= 3, "moka holds {held}");
        assert!(
            tier.front_slots() as u64 <= held,
            "the front holds {} slots for {held} entries",
            tier.front_slots()
        );
        for key in 0..50 {
            let in_moka = tier.get(&key).await.is_some();
            assert_eq!(local(&tier, key).await.is_some(), in_moka, "key {key}");
        }
    }

    /// Readers racing a writer never see a copy older than the last insert that finished
    /// before their read began.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn racing_reads_never_answer_a_replaced_entry() {
        let tier = Arc::new(MokaTier::new(1 << 20));
        let finished = Arc::new(AtomicU64::new(0));
        let minute = Duration::from_secs(60);
        tier.insert(1, entry(0, minute)).await;
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (tier, finished) = (Arc::clone(&tier), Arc::clone(&finished));
                tokio::spawn(async move {
                    let mut reads = 0_u64;
                    loop {
                        let floor = finished.load(Ordering::SeqCst);
                        let seen = local(&tier, 1).await.expect("always held");
                        assert!(seen >= floor, "read {seen} after {floor} was stored");
                        reads += 1;
                        if floor == 2_000 {
                            return reads;
                        }
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for value in 1..=2_000 {
            tier.insert(1, entry(value, minute)).await;
            finished.store(value, Ordering::SeqCst);
            if value % 16 == 0 {
                tokio::task::yield_now().await;
            }
        }
        for reader in readers {
            assert!(reader.await.expect("reader") > 0);
        }
    }
}
