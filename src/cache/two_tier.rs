//! [`TwoTier`]: a replica's own moka store first, and a second tier shared with other
//! replicas (Redis) when one is configured, behind one [`CacheTier`]. Whether the second
//! tier exists is decided at start-up but inside the type, so the application's state has
//! one type with or without Redis.
//!
//! - `get_ready` and `get_local` (the hit fast path) are the first tier's own: a
//!   first-tier hit costs what it cost without a second tier.
//! - `get` answers a fresh first-tier entry at once; otherwise it asks the second tier and
//!   keeps (promotes) what it finds there when that is fresher than the first tier's copy
//!   (another replica refreshed it).
//! - `insert`, `invalidate`, `purge` write both; sizes are the first tier's.
//! - Flights are claimed and released in the second tier (across replicas); without one,
//!   this process always leads.

use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;

use tokio::time::Instant;

use super::moka_tier::MokaTier;
use super::swr::{Cached, Weighted};
use super::tier::{CacheTier, FlightClaim, TierSize};

/// The replica's moka tier, then an optional second tier `S`.
pub struct TwoTier<K, V, S> {
    first: MokaTier<K, V>,
    second: Option<S>,
}

impl<K, V, S: std::fmt::Debug> std::fmt::Debug for TwoTier<K, V, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwoTier")
            .field("first", &self.first)
            .field("second", &self.second)
            .finish()
    }
}

impl<K, V, S> TwoTier<K, V, S> {
    /// `first` alone, or `first` before `second`.
    #[must_use]
    pub fn new(first: MokaTier<K, V>, second: Option<S>) -> Self {
        Self { first, second }
    }

    /// The second tier, when configured.
    pub fn second(&self) -> Option<&S> {
        self.second.as_ref()
    }
}

impl<K, V, S> CacheTier<K, V> for TwoTier<K, V, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Weighted,
    S: CacheTier<K, V>,
{
    fn get_ready(&self, key: &K, now: Instant) -> Option<Arc<Cached<V>>> {
        self.first.get_ready(key, now)
    }

    fn get_local(
        &self,
        key: &K,
        now: Instant,
    ) -> impl Future<Output = Option<Arc<Cached<V>>>> + Send {
        self.first.get_local(key, now)
    }

    async fn get(&self, key: &K) -> Option<Arc<Cached<V>>> {
        let local = self.first.get(key).await;
        let Some(second) = &self.second else {
            return local;
        };
        if let Some(entry) = &local
            && Instant::now() < entry.fresh_until
        {
            return local;
        }
        let shared = second.get(key).await;
        match (local, shared) {
            (Some(local), Some(shared)) if shared.fresh_until <= local.fresh_until => Some(local),
            (local, None) => local,
            (_, Some(shared)) => {
                self.first.insert(key.clone(), shared.clone()).await;
                Some(shared)
            }
        }
    }

    async fn insert(&self, key: K, entry: Arc<Cached<V>>) {
        match &self.second {
            Some(second) => {
                self.first.insert(key.clone(), entry.clone()).await;
                second.insert(key, entry).await;
            }
            None => self.first.insert(key, entry).await,
        }
    }

    async fn invalidate(&self, key: &K) {
        self.first.invalidate(key).await;
        if let Some(second) = &self.second {
            second.invalidate(key).await;
        }
    }

    async fn purge(&self) {
        self.first.purge().await;
        if let Some(second) = &self.second {
            second.purge().await;
        }
    }

    fn settle(&self) -> impl Future<Output = ()> + Send {
        self.first.settle()
    }

    fn size(&self) -> TierSize {
        self.first.size()
    }

    async fn claim_flight(&self, key: &K) -> FlightClaim<V> {
        match &self.second {
            Some(second) => second.claim_flight(key).await,
            None => FlightClaim::Lead,
        }
    }

    async fn release_flight(&self, key: &K) {
        if let Some(second) = &self.second {
            second.release_flight(key).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use super::*;

    #[derive(Debug)]
    struct Value(u32);

    impl Weighted for Value {
        fn weight(&self) -> u32 {
            100
        }
    }

    /// A second tier in a map, counting its lookups and claims.
    #[derive(Debug, Default)]
    struct Map {
        entries: Mutex<HashMap<u32, Arc<Cached<Value>>>>,
        gets: AtomicU32,
        claims: AtomicU32,
    }

    impl CacheTier<u32, Value> for Map {
        async fn get(&self, key: &u32) -> Option<Arc<Cached<Value>>> {
            self.gets.fetch_add(1, Ordering::SeqCst);
            self.entries.lock().expect("lock").get(key).cloned()
        }
        async fn insert(&self, key: u32, entry: Arc<Cached<Value>>) {
            self.entries.lock().expect("lock").insert(key, entry);
        }
        async fn invalidate(&self, key: &u32) {
            self.entries.lock().expect("lock").remove(key);
        }
        async fn purge(&self) {
            self.entries.lock().expect("lock").clear();
        }
        fn size(&self) -> TierSize {
            TierSize::default()
        }
        async fn claim_flight(&self, _key: &u32) -> FlightClaim<Value> {
            self.claims.fetch_add(1, Ordering::SeqCst);
            FlightClaim::Follow(Box::pin(async { None }))
        }
    }

    fn entry(value: u32, fresh_for: u64) -> Arc<Cached<Value>> {
        let now = Instant::now();
        Arc::new(Cached {
            value: Value(value),
            fetched_at: now,
            fresh_until: now + Duration::from_secs(fresh_for),
            stale_until: now + Duration::from_secs(fresh_for + 600),
        })
    }

    fn tiers() -> TwoTier<u32, Value, Map> {
        TwoTier::new(MokaTier::new(1 << 20), Some(Map::default()))
    }

    fn second(tiers: &TwoTier<u32, Value, Map>) -> &Map {
        tiers.second().expect("a second tier")
    }

    #[tokio::test(start_paused = true)]
    async fn a_fresh_first_tier_entry_never_asks_the_second() {
        let tiers = tiers();
        tiers.insert(1, entry(1, 60)).await;
        assert!(
            second(&tiers)
                .entries
                .lock()
                .expect("lock")
                .contains_key(&1)
        );
        assert_eq!(
            tiers
                .get_local(&1, Instant::now())
                .await
                .expect("local")
                .value
                .0,
            1
        );
        assert_eq!(tiers.get(&1).await.expect("hit").value.0, 1);
        assert_eq!(second(&tiers).gets.load(Ordering::SeqCst), 0);
        // A miss of the fast path stays local too.
        assert!(tiers.get_local(&2, Instant::now()).await.is_none());
        assert_eq!(second(&tiers).gets.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_second_tier_answers_a_miss_and_a_stale_copy_and_is_promoted() {
        let tiers = tiers();
        second(&tiers).insert(1, entry(10, 60)).await;
        assert_eq!(tiers.get(&1).await.expect("from the second").value.0, 10);
        assert_eq!(
            tiers
                .get_local(&1, Instant::now())
                .await
                .expect("promoted")
                .value
                .0,
            10
        );
        // The first tier's copy has gone stale; another process stored a fresher one.
        tiers.first.insert(2, entry(20, 10)).await;
        tokio::time::advance(Duration::from_secs(20)).await;
        second(&tiers).insert(2, entry(21, 60)).await;
        assert_eq!(tiers.get(&2).await.expect("fresher").value.0, 21);
        assert_eq!(
            tiers
                .get_local(&2, Instant::now())
                .await
                .expect("promoted")
                .value
                .0,
            21
        );
        // An older second-tier copy does not replace a stale first-tier one.
        tiers.first.insert(3, entry(30, 10)).await;
        second(&tiers).insert(3, entry(31, 5)).await;
        tokio::time::advance(Duration::from_secs(15)).await;
        assert_eq!(tiers.get(&3).await.expect("kept").value.0, 30);
        tiers.invalidate(&3).await;
        assert!(tiers.get(&3).await.is_none(), "invalidated in both");
    }

    #[tokio::test(start_paused = true)]
    async fn flights_are_claimed_in_the_second_tier_and_alone_this_process_leads() {
        let tiers = tiers();
        assert!(matches!(
            tiers.claim_flight(&1).await,
            FlightClaim::Follow(_)
        ));
        assert_eq!(second(&tiers).claims.load(Ordering::SeqCst), 1);
        let alone: TwoTier<u32, Value, Map> = TwoTier::new(MokaTier::new(1 << 20), None);
        assert!(matches!(alone.claim_flight(&1).await, FlightClaim::Lead));
        alone.insert(1, entry(1, 60)).await;
        assert_eq!(alone.get(&1).await.expect("hit").value.0, 1);
    }
}
