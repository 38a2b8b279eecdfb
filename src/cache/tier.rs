//! [`CacheTier`]: where a [`SwrCache`](super::SwrCache) keeps its entries, behind a small
//! interface so that a second, shared tier (Redis, DESIGN.md "Shared mode") can slot in
//! the way a shared budget can replace [`LocalBudget`](crate::upstream::budget::LocalBudget).
//!
//! The split: [`SwrCache`](super::SwrCache) owns the *policy* (what is a hit, serving stale
//! while revalidating or on errors, one fetch per key in this process, raising a joined
//! fetch's demand, the counters); a tier owns the *entries*: get, insert, invalidate,
//! purge, its size, and the single-flight join *across* processes ([`CacheTier::claim_flight`]).
//! An entry travels with its timestamps ([`Cached`]), so a tier stores the freshness and
//! stale bounds with the value and every tier answers the same way for it. `insert` takes
//! a ready entry: the cache's fetches write through it, and so will pushed updates (Genesys
//! notifications replacing a conversation, through [`SwrCache::insert`](super::SwrCache::insert)).
//!
//! The tiers, and how they fit without touching the policy:
//! - [`MokaTier`](super::MokaTier): each process's own, byte-bounded;
//! - the shared tier ([`RedisTier`](crate::shared::cache::RedisTier)): `get` reads the
//!   entry with its timestamps, `insert` writes it with a TTL at its stale end,
//!   `claim_flight` sets an in-flight marker (`SET NX PX`) and answers
//!   [`FlightClaim::Follow`] with a wait for the entry the marker's holder stores,
//!   `release_flight` deletes the marker;
//! - [`TwoTier`](super::TwoTier) (moka first, the shared one second, if configured):
//!   reads the first and then the second (promoting what it finds), writes and
//!   invalidates both, and claims flights in the second. The hit fast path reads the
//!   first only ([`CacheTier::get_ready`], then [`CacheTier::get_local`]).
//!
//! **Shape: a generic parameter, not a trait object.** The trait's methods return
//! `impl Future` (so they are not object safe), and [`SwrCache`](super::SwrCache) is
//! generic over its tier with moka as the default. The first tier's `get` is on the hit
//! path, which answers a fresh hit from pre-serialised bytes at a fixed cost per request:
//! a boxed future per lookup would add an allocation to every hit, a trait object an
//! indirect call. With a type parameter the lookup compiles to moka's own future, as it
//! did before the interface. A deployment's tiers are fixed at start-up, so nothing is
//! lost by naming them in a type: whether Redis is configured is a runtime choice *inside*
//! a two-tier type (its second tier optional), not a choice between types. The fetch
//! closures never cross this interface (they stay with the policy), so no method needs a
//! closure parameter; only a follower's wait is boxed, on the miss path, where it is
//! nothing next to a network round trip.

use std::future::{Future, ready};
use std::pin::Pin;
use std::sync::Arc;

use tokio::time::Instant;

use super::swr::Cached;

/// What a tier holds, for the cache's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TierSize {
    pub entries: u64,
    /// Bytes held, as the tier weighs its entries.
    pub bytes: u64,
    /// The tier's byte budget.
    pub max_bytes: u64,
}

/// A wait for the entry another process is fetching: `None` when it stored none (it failed
/// or gave up).
pub type FlightWait<V> = Pin<Box<dyn Future<Output = Option<Arc<Cached<V>>>> + Send>>;

/// The answer of a tier to a process about to fetch a key.
pub enum FlightClaim<V> {
    /// Nobody else sharing the tier fetches it: this process does, and then stores the
    /// entry (or not, if the fetch failed) and calls [`CacheTier::release_flight`].
    Lead,
    /// Another process fetches it: wait for its entry instead of fetching.
    Follow(FlightWait<V>),
}

impl<V> std::fmt::Debug for FlightClaim<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Lead => "Lead",
            Self::Follow(_) => "Follow",
        })
    }
}

/// Where a cache keeps its entries (see the module doc).
pub trait CacheTier<K, V>: Send + Sync + 'static {
    /// The entry stored for `key`, fresh or not (the cache judges its timestamps).
    fn get(&self, key: &K) -> impl Future<Output = Option<Arc<Cached<V>>>> + Send;

    /// The entry stored for `key` if this process holds it, without a round trip to
    /// another process (the hit fast path polls it once, in place), asked at `now`: a
    /// tier may answer an entry fresh at `now` from a faster table (the
    /// [`MokaTier`](super::MokaTier)'s front). By default, as [`CacheTier::get`].
    fn get_local(
        &self,
        key: &K,
        _now: Instant,
    ) -> impl Future<Output = Option<Arc<Cached<V>>>> + Send {
        self.get(key)
    }

    /// An entry for `key` fresh at `now` that the tier holds ready to answer without a
    /// future (the [`MokaTier`](super::MokaTier)'s front), else `None`: that says nothing
    /// of whether the tier holds one, [`CacheTier::get_local`] does. By default `None`.
    fn get_ready(&self, _key: &K, _now: Instant) -> Option<Arc<Cached<V>>> {
        None
    }

    /// Stores `entry` for `key`, replacing any other. A tier may drop it at its stale end
    /// ([`Cached::stale_until`]) or earlier to stay within its budget.
    fn insert(&self, key: K, entry: Arc<Cached<V>>) -> impl Future<Output = ()> + Send;

    /// Drops the entry for `key`, if any.
    fn invalidate(&self, key: &K) -> impl Future<Output = ()> + Send;

    /// Drops every entry.
    fn purge(&self) -> impl Future<Output = ()> + Send;

    /// Applies pending bookkeeping (evictions) so that [`CacheTier::size`] is exact.
    fn settle(&self) -> impl Future<Output = ()> + Send {
        ready(())
    }

    /// What the tier holds.
    fn size(&self) -> TierSize;

    /// Called by the one fetch of `key` in this process before it goes upstream: whether
    /// it leads, or another process sharing the tier is already fetching `key`. A tier
    /// private to the process always answers [`FlightClaim::Lead`].
    fn claim_flight(&self, _key: &K) -> impl Future<Output = FlightClaim<V>> + Send {
        ready(FlightClaim::Lead)
    }

    /// Ends a flight this process led (after storing its entry, or after it failed).
    fn release_flight(&self, _key: &K) -> impl Future<Output = ()> + Send {
        ready(())
    }
}
