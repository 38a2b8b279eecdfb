//! [`RedisTier`]: the cache tier shared by all replicas, in Redis, behind the same
//! [`CacheTier`] interface as each replica's moka store (composed with it in
//! [`crate::cache::TwoTier`]: moka first, this second).
//!
//! - An entry is one key, `{prefix}:{client}:cache:{namespace}:{key}`, holding a compact
//!   record of its value and timestamps ([`codec`]), expiring at its stale end.
//! - A fetch is coalesced across replicas: the replica about to go upstream sets a flight
//!   marker, `{prefix}:{client}:flight:{namespace}:{key}`, with `SET NX PX` (expiring
//!   after the fetch timeout, so a replica that dies mid-fetch blocks nobody longer). The
//!   others follow: they wait until a fresh entry is stored, woken by the leader's
//!   message on the `cache-filled` channel ([`filled`]) and looking again every
//!   `redis.flight_poll_ms` meanwhile. The leader releases the marker (if still its own)
//!   and publishes after storing, or after failing: followers then find the marker gone
//!   and no fresh entry, and claim the fetch themselves (one of them leads again).
//! - Redis down or slow: every call is bounded by `redis.timeout_ms` and fails at once
//!   while Redis counts as unavailable ([`super::store`]), which reads as a miss, a lead,
//!   a follow that ended without an entry: each replica caches and fetches on its own,
//!   and shares again once the heartbeat finds Redis answering.

pub mod codec;
pub mod conversation;
pub mod filled;
pub mod report;

use std::fmt::Display;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::Script;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use super::SharedTier;
use crate::cache::{CacheTier, Cached, FlightClaim, TierSize};
use codec::{SharedValue, WallClock, decode_entry, encode_entry};

/// Deletes the marker `KEYS[1]` if it still holds `ARGV[1]`, and says the flight of
/// `ARGV[3]` ended on channel `ARGV[2]`.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return redis.call('PUBLISH', ARGV[2], ARGV[3])
",
    )
});

/// The shared cache's counters (all namespaces), for `/metrics` and `/admin/cache`.
#[derive(Debug, Default)]
pub struct CacheCounts {
    hits: AtomicU64,
    misses: AtomicU64,
    errors: AtomicU64,
    led: AtomicU64,
    followed: AtomicU64,
    followed_in_vain: AtomicU64,
}

/// The shared cache's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SharedCacheStats {
    /// Lookups that found an entry in Redis (after a miss in the replica's own tier).
    pub hits: u64,
    /// Lookups that found none.
    pub misses: u64,
    /// Redis calls of the cache that failed, timed out or were skipped (Redis
    /// unavailable), and records that did not decode.
    pub errors: u64,
    /// Fetches this replica led for all (it set the flight marker).
    pub flights_led: u64,
    /// Fetches this replica left to another replica's flight.
    pub flights_followed: u64,
    /// Of those, the ones that ended without an entry (the leader failed, gave up, or
    /// Redis went away): the replica then claimed the fetch again.
    pub flights_followed_in_vain: u64,
}

impl CacheCounts {
    /// The figures.
    #[must_use]
    pub fn stats(&self) -> SharedCacheStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        SharedCacheStats {
            hits: read(&self.hits),
            misses: read(&self.misses),
            errors: read(&self.errors),
            flights_led: read(&self.led),
            flights_followed: read(&self.followed),
            flights_followed_in_vain: read(&self.followed_in_vain),
        }
    }

    fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The shared tier of one cache (`namespace`: `conversations`, …) with keys `K`.
pub struct RedisTier<K, V> {
    shared: Arc<SharedTier>,
    namespace: &'static str,
    /// How long a flight marker holds (the fetch timeout).
    flight_ttl: Duration,
    _entries: PhantomData<fn(K) -> V>,
}

impl<K, V> std::fmt::Debug for RedisTier<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTier")
            .field("namespace", &self.namespace)
            .field("flight_ttl", &self.flight_ttl)
            .finish_non_exhaustive()
    }
}

impl<K: Display, V: SharedValue> RedisTier<K, V> {
    /// The tier of the cache `namespace` in `shared`; a flight marker holds for
    /// `flight_ttl` (the fetch timeout).
    #[must_use]
    pub fn new(shared: Arc<SharedTier>, namespace: &'static str, flight_ttl: Duration) -> Self {
        Self {
            shared,
            namespace,
            flight_ttl: flight_ttl.max(Duration::from_millis(1)),
            _entries: PhantomData,
        }
    }

    /// The name of `key`'s entry, as published on the channel.
    fn name(&self, key: &K) -> String {
        format!("{}:{key}", self.namespace)
    }

    fn entry_key(&self, name: &str) -> String {
        format!("{}:{name}", self.shared.keys.cache)
    }

    fn marker_key(&self, name: &str) -> String {
        format!("{}:{name}", self.shared.keys.flight)
    }

    fn counts(&self) -> &CacheCounts {
        &self.shared.cache
    }
}

/// Reads the entry `key` from Redis (`None`: absent, unreadable, or Redis failed).
async fn read_entry<V: SharedValue>(shared: &SharedTier, key: String) -> Option<Cached<V>> {
    let found: Result<Option<Vec<u8>>, _> = shared
        .store
        .run(|mut connection| async move {
            redis::cmd("GET")
                .arg(&key)
                .query_async(&mut connection)
                .await
        })
        .await;
    let counts = &shared.cache;
    match found {
        Ok(Some(bytes)) => {
            let entry = decode_entry(&bytes, &WallClock::now());
            CacheCounts::count(if entry.is_some() {
                &counts.hits
            } else {
                &counts.errors
            });
            entry
        }
        Ok(None) => {
            CacheCounts::count(&counts.misses);
            None
        }
        Err(_) => {
            CacheCounts::count(&counts.errors);
            None
        }
    }
}

/// A follower's wait: until a fresh entry is stored (`Some`), the marker is gone without
/// one, Redis fails, or `until` (`None`).
async fn follow<V: SharedValue>(
    shared: Arc<SharedTier>,
    name: String,
    entry_key: String,
    marker_key: String,
    until: Instant,
) -> Option<Arc<Cached<V>>> {
    let mut filled = shared.filled.subscribe();
    let poll = shared.settings.flight_poll();
    loop {
        let (entry_key, marker_key) = (entry_key.clone(), marker_key.clone());
        let looked: Result<(Option<Vec<u8>>, bool), _> = shared
            .store
            .run(|mut connection| async move {
                redis::pipe()
                    .get(&entry_key)
                    .exists(&marker_key)
                    .query_async(&mut connection)
                    .await
            })
            .await;
        let Ok((record, flying)) = looked else {
            CacheCounts::count(&shared.cache.errors);
            return None;
        };
        let now = Instant::now();
        if let Some(entry) = record.and_then(|r| decode_entry::<V>(&r, &WallClock::now()))
            && now < entry.fresh_until
        {
            return Some(Arc::new(entry));
        }
        if !flying || now >= until {
            return None;
        }
        let next = (now + poll).min(until);
        loop {
            tokio::select! {
                message = filled.recv() => match message {
                    Ok(ended) if *ended == *name => break,
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => {
                        tokio::time::sleep_until(next).await;
                        break;
                    }
                },
                () = tokio::time::sleep_until(next) => break,
            }
        }
    }
}

impl<K, V> CacheTier<K, V> for RedisTier<K, V>
where
    K: Display + Send + Sync + 'static,
    V: SharedValue,
{
    async fn get(&self, key: &K) -> Option<Arc<Cached<V>>> {
        let entry_key = self.entry_key(&self.name(key));
        read_entry(&self.shared, entry_key).await.map(Arc::new)
    }

    async fn insert(&self, key: K, entry: Arc<Cached<V>>) {
        let clock = WallClock::now();
        let ttl = entry.stale_until.saturating_duration_since(clock.instant);
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let entry_key = self.entry_key(&self.name(&key));
        if ttl_ms == 0 {
            return;
        }
        let record = encode_entry(&entry, &clock);
        let stored: Result<(), _> = self
            .shared
            .store
            .run(|mut connection| async move {
                redis::cmd("SET")
                    .arg(&entry_key)
                    .arg(record)
                    .arg("PX")
                    .arg(ttl_ms)
                    .query_async(&mut connection)
                    .await
            })
            .await;
        if stored.is_err() {
            CacheCounts::count(&self.counts().errors);
        }
    }

    async fn invalidate(&self, key: &K) {
        let entry_key = self.entry_key(&self.name(key));
        let dropped: Result<u32, _> = self
            .shared
            .store
            .run(|mut connection| async move {
                redis::cmd("DEL")
                    .arg(&entry_key)
                    .query_async(&mut connection)
                    .await
            })
            .await;
        if dropped.is_err() {
            CacheCounts::count(&self.counts().errors);
        }
    }

    async fn purge(&self) {
        let pattern = format!("{}:{}:*", self.shared.keys.cache, self.namespace);
        let mut cursor: u64 = 0;
        // Bounded: a purge drops what a few thousand SCAN steps find.
        for _ in 0..10_000 {
            let pattern = pattern.clone();
            let step: Result<(u64, Vec<String>), _> = self
                .shared
                .store
                .run(|mut connection| async move {
                    let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(500)
                        .query_async(&mut connection)
                        .await?;
                    if !keys.is_empty() {
                        let _: u64 = redis::cmd("UNLINK")
                            .arg(&keys)
                            .query_async(&mut connection)
                            .await?;
                    }
                    Ok((next, keys))
                })
                .await;
            match step {
                Ok((0, _)) => return,
                Ok((next, _)) => cursor = next,
                Err(_) => {
                    CacheCounts::count(&self.counts().errors);
                    return;
                }
            }
        }
    }

    /// Not counted: the replica's figures are its own tier's.
    fn size(&self) -> TierSize {
        TierSize::default()
    }

    async fn claim_flight(&self, key: &K) -> FlightClaim<V> {
        let name = self.name(key);
        let marker_key = self.marker_key(&name);
        let replica = self.shared.replica.clone();
        let ttl_ms = u64::try_from(self.flight_ttl.as_millis()).unwrap_or(u64::MAX);
        let claimed: Result<Option<String>, _> = {
            let marker_key = marker_key.clone();
            self.shared
                .store
                .run(|mut connection| async move {
                    redis::cmd("SET")
                        .arg(&marker_key)
                        .arg(&replica)
                        .arg("NX")
                        .arg("PX")
                        .arg(ttl_ms)
                        .query_async(&mut connection)
                        .await
                })
                .await
        };
        match claimed {
            Ok(Some(_)) => {
                CacheCounts::count(&self.counts().led);
                FlightClaim::Lead
            }
            Ok(None) => {
                CacheCounts::count(&self.counts().followed);
                let shared = self.shared.clone();
                let entry_key = self.entry_key(&name);
                let until = Instant::now() + self.flight_ttl;
                FlightClaim::Follow(Box::pin(async move {
                    let counts = shared.clone();
                    let entry = follow(shared, name, entry_key, marker_key, until).await;
                    if entry.is_none() {
                        CacheCounts::count(&counts.cache.followed_in_vain);
                    }
                    entry
                }))
            }
            Err(_) => {
                // Redis is away: this replica fetches on its own.
                CacheCounts::count(&self.counts().errors);
                FlightClaim::Lead
            }
        }
    }

    async fn release_flight(&self, key: &K) {
        let name = self.name(key);
        let marker_key = self.marker_key(&name);
        let replica = self.shared.replica.clone();
        let channel = self.shared.keys.cache_filled.clone();
        let released: Result<u64, _> = self
            .shared
            .store
            .run(|mut connection| async move {
                RELEASE
                    .key(marker_key)
                    .arg(replica)
                    .arg(channel)
                    .arg(name)
                    .invoke_async(&mut connection)
                    .await
            })
            .await;
        if released.is_err() {
            CacheCounts::count(&self.counts().errors);
        }
    }
}
