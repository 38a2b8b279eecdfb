//! [`SwrCache`]: the caching policy (single-flight fetches and stale serving) over a
//! [`CacheTier`] that holds the entries (a byte-bounded moka store by default), shared by
//! conversations and report pages.
//!
//! - A fresh entry is a hit: one lookup and an `Arc` clone.
//! - A stale entry within the stale-while-revalidate window is served at once while one
//!   background fetch refreshes it.
//! - Otherwise the caller joins the one fetch in flight for the key, or starts it. The
//!   fetch runs in a spawned task, so a caller that goes away cannot cancel it (moka's
//!   own `get_with` re-runs the loader when its leading future is dropped, spending
//!   upstream quota twice).
//! - A fetch started through [`SwrCache::get_raising`] carries its budget demand as an
//!   [`Urgency`]: a caller that joins it with a higher class or a later deadline raises it
//!   (the queued demand is re-prioritised), rather than wait at the leader's class or share
//!   a refusal its own deadline would have avoided. A fetch the budget refused after such a
//!   raise asks again with the raised demand. Each caller still waits only until its own
//!   deadline; giving up does not cancel the fetch for the others.
//! - If the fetch fails (or takes longer than the stale wait, or the caller's deadline) and
//!   a stale entry still lies within its stale-if-error bound, the stale entry is served
//!   when the failure allows it ([`UpstreamError::may_serve_stale`]: Genesys could not
//!   answer, or our credentials failed). A definitive answer about the resource (404, 403,
//!   400) is passed on, and drops the stale entry, so no later request (stale-while-
//!   revalidate included) is served a copy Genesys has just disowned.
//! - A fetch this process leads asks its tier first whether another process sharing the
//!   tier already fetches the key ([`CacheTier::claim_flight`]), and then waits for that
//!   one's entry instead of fetching (a private tier never says so).
//! - [`SwrCache::insert`] stores a value with its freshness directly (an update pushed by
//!   Genesys rather than fetched).

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::moka_tier::MokaTier;
use super::tier::{CacheTier, FlightClaim};
use crate::upstream::UpstreamError;
use crate::upstream::budget::{Demand, Urgency};

/// Something stored in the cache, weighed in bytes.
pub trait Weighted: Send + Sync + 'static {
    /// Approximate memory held by the value, in bytes.
    fn weight(&self) -> u32;
}

/// How long a fetched value stays fresh, and how long it may be served stale after that
/// when Genesys fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    pub fresh_for: Duration,
    pub stale_if_error: Duration,
}

/// A stored value with its timestamps.
#[derive(Debug)]
pub struct Cached<V> {
    pub value: V,
    pub fetched_at: Instant,
    pub fresh_until: Instant,
    /// Served stale on upstream errors until then.
    pub stale_until: Instant,
}

impl<V> Cached<V> {
    /// Seconds of freshness left (0 when stale).
    #[must_use]
    pub fn fresh_secs(&self, now: Instant) -> u64 {
        self.fresh_until.saturating_duration_since(now).as_secs()
    }

    /// Seconds since it was fetched.
    #[must_use]
    pub fn age_secs(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.fetched_at).as_secs()
    }
}

/// How a response was produced (becomes the `Cache-Status` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Fresh from the cache.
    Hit,
    /// Stale from the cache while a background fetch refreshes it.
    StaleWhileRevalidate,
    /// Stale from the cache because Genesys failed or was too slow.
    StaleIfError,
    /// Fetched for this request: nothing was cached.
    Miss,
    /// Fetched for this request to replace a stale entry.
    Refreshed,
    /// Joined a fetch another request had started.
    Collapsed,
}

impl CacheStatus {
    /// The RFC 9211 `Cache-Status` value around its `ttl` number: what comes before and
    /// after it ([`super::headers`] writes the value).
    #[must_use]
    pub fn header_parts(self) -> (&'static str, &'static str) {
        match self {
            Self::Hit => ("genesys-proxy; hit; ttl=", ""),
            Self::StaleWhileRevalidate => (
                "genesys-proxy; hit; ttl=",
                "; detail=stale-while-revalidate",
            ),
            Self::StaleIfError => ("genesys-proxy; hit; ttl=", "; detail=stale-if-error"),
            Self::Miss => ("genesys-proxy; fwd=miss; stored; ttl=", ""),
            Self::Refreshed => ("genesys-proxy; fwd=stale; stored; ttl=", ""),
            Self::Collapsed => ("genesys-proxy; fwd=miss; collapsed; ttl=", ""),
        }
    }

    /// A short label (metrics).
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::StaleWhileRevalidate => "stale_while_revalidate",
            Self::StaleIfError => "stale_if_error",
            Self::Miss => "miss",
            Self::Refreshed => "refreshed",
            Self::Collapsed => "collapsed",
        }
    }
}

/// A value served, and how.
#[derive(Debug)]
pub struct Served<V> {
    pub entry: Arc<Cached<V>>,
    pub status: CacheStatus,
}

/// Counters of one cache (metrics).
#[derive(Debug, Default)]
pub struct CacheCounters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub stale: AtomicU64,
    pub collapsed: AtomicU64,
    pub fetches: AtomicU64,
    pub fetch_errors: AtomicU64,
    /// Joiners that raised the demand of the fetch they joined.
    pub raised: AtomicU64,
}

/// A copy of the counters plus the store's size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub stale: u64,
    pub collapsed: u64,
    pub fetches: u64,
    pub fetch_errors: u64,
    /// Joiners that raised the class or deadline of the fetch they joined.
    pub raised: u64,
    pub entries: u64,
    pub bytes: u64,
    pub max_bytes: u64,
}

type FlightResult<V> = Option<Result<Arc<Cached<V>>, UpstreamError>>;

/// A fetch in flight: its result channel, and its budget demand when joiners may raise it.
struct Flight<V> {
    result: watch::Receiver<FlightResult<V>>,
    urgency: Option<Arc<Urgency>>,
}

/// How many times a fetch waits for other processes' fetches of its key (each of which
/// ended without an entry) before it fetches anyway.
const MAX_FOLLOWS: usize = 3;

/// The cache: the policy of the module doc over the tier `T` that holds the entries.
pub struct SwrCache<K, V, T = MokaTier<K, V>> {
    tier: T,
    flights: Mutex<HashMap<K, Flight<V>>>,
    stale_while_revalidate: Duration,
    stale_wait: Duration,
    counters: CacheCounters,
}

impl<K, V, T: std::fmt::Debug> std::fmt::Debug for SwrCache<K, V, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwrCache")
            .field("tier", &self.tier)
            .finish_non_exhaustive()
    }
}

impl<K, V> SwrCache<K, V, MokaTier<K, V>>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Weighted,
{
    /// A cache holding at most `max_bytes` (by [`Weighted::weight`]) in moka; a request
    /// that could be served stale waits at most `stale_wait` for a fetch.
    #[must_use]
    pub fn new(
        max_bytes: u64,
        stale_while_revalidate: Duration,
        stale_wait: Duration,
    ) -> Arc<Self> {
        Self::with_tier(MokaTier::new(max_bytes), stale_while_revalidate, stale_wait)
    }
}

impl<K, V, T> SwrCache<K, V, T>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Send + Sync + 'static,
    T: CacheTier<K, V>,
{
    /// A cache keeping its entries in `tier`; a request that could be served stale waits
    /// at most `stale_wait` for a fetch.
    #[must_use]
    pub fn with_tier(tier: T, stale_while_revalidate: Duration, stale_wait: Duration) -> Arc<Self> {
        Arc::new(Self {
            tier,
            flights: Mutex::new(HashMap::new()),
            stale_while_revalidate,
            stale_wait,
            counters: CacheCounters::default(),
        })
    }

    /// The tier holding the entries.
    pub fn tier(&self) -> &T {
        &self.tier
    }

    /// Counters and size.
    pub fn stats(&self) -> CacheStats {
        let c = &self.counters;
        let size = self.tier.size();
        CacheStats {
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            stale: c.stale.load(Ordering::Relaxed),
            collapsed: c.collapsed.load(Ordering::Relaxed),
            fetches: c.fetches.load(Ordering::Relaxed),
            fetch_errors: c.fetch_errors.load(Ordering::Relaxed),
            raised: c.raised.load(Ordering::Relaxed),
            entries: size.entries,
            bytes: size.bytes,
            max_bytes: size.max_bytes,
        }
    }

    /// Applies the tier's pending evictions (so `stats` is exact; tests and `/admin`).
    pub async fn settle(&self) {
        self.tier.settle().await;
    }

    /// Drops every entry.
    pub async fn purge(&self) {
        self.tier.purge().await;
    }

    /// Drops one entry.
    pub async fn invalidate(&self, key: &K) {
        self.tier.invalidate(key).await;
    }

    /// Drops one entry (as [`Self::invalidate`]).
    pub async fn remove(&self, key: &K) {
        self.invalidate(key).await;
    }

    /// Stores `value` for `key` as fetched now and fresh for `freshness`, replacing any
    /// entry (an update Genesys pushed). A fetch of `key` in flight still stores what it
    /// fetches when it ends.
    pub async fn insert(&self, key: K, value: V, freshness: Freshness) -> Arc<Cached<V>> {
        let entry = self.entry(value, freshness);
        self.tier.insert(key, entry.clone()).await;
        entry
    }

    /// The entry of `value` fetched now.
    fn entry(&self, value: V, freshness: Freshness) -> Arc<Cached<V>> {
        let now = Instant::now();
        let fresh_until = now + freshness.fresh_for;
        Arc::new(Cached {
            value,
            fetched_at: now,
            fresh_until,
            stale_until: fresh_until + freshness.stale_if_error.max(self.stale_while_revalidate),
        })
    }

    fn flights(&self) -> std::sync::MutexGuard<'_, HashMap<K, Flight<V>>> {
        self.flights.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Joins the fetch in flight for `key`, or starts one; returns its result channel and
    /// whether this call started it. A joiner that will wait on the fetch (`raise`) raises
    /// its demand to `demand`; a fetch started with a `demand` is handed its [`Urgency`].
    ///
    /// `fetch` makes one attempt (`None`: it cannot). It is called again only when the
    /// budget refused an attempt after a joiner raised the demand: the raise and that
    /// check both happen under the flights lock, so a raise either reaches the running
    /// attempt, or the retry, or comes after the flight has ended (and starts a new one).
    fn join_or_start<A, Fut>(
        self: &Arc<Self>,
        key: &K,
        demand: Option<&Demand>,
        raise: bool,
        fetch: A,
    ) -> (watch::Receiver<FlightResult<V>>, bool)
    where
        A: FnMut(Option<Arc<Urgency>>) -> Option<Fut> + Send + 'static,
        Fut: Future<Output = Result<(V, Freshness), UpstreamError>> + Send + 'static,
    {
        let mut flights = self.flights();
        if let Some(flight) = flights.get(key) {
            if raise
                && let (Some(urgency), Some(demand)) = (&flight.urgency, demand)
                && urgency.raise(demand)
            {
                self.counters.raised.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    class = demand.class.as_str(),
                    client = %demand.client,
                    "a request joined a fetch in flight and raised its demand"
                );
            }
            return (flight.result.clone(), false);
        }
        let (sender, receiver) = watch::channel(None);
        let urgency = demand.cloned().map(Urgency::new);
        flights.insert(
            key.clone(),
            Flight {
                result: receiver.clone(),
                urgency: urgency.clone(),
            },
        );
        drop(flights);
        let cache = Arc::clone(self);
        let key = key.clone();
        // The fetch keeps the span of the request that started it (its trace goes on to
        // Genesys), but not the request itself: it outlives a client that goes away.
        tokio::spawn(tracing::Instrument::in_current_span(async move {
            let result = cache.fly(&key, urgency, fetch).await;
            let _ = sender.send(Some(result));
        }));
        (receiver, true)
    }

    /// The flight of `key` this process started: waits for another process's fetch when
    /// the tier says one runs, else fetches (again after a refusal a joiner's raise may
    /// overturn), stores the entry and ends the flight.
    async fn fly<A, Fut>(
        &self,
        key: &K,
        urgency: Option<Arc<Urgency>>,
        mut fetch: A,
    ) -> Result<Arc<Cached<V>>, UpstreamError>
    where
        A: FnMut(Option<Arc<Urgency>>) -> Option<Fut> + Send + 'static,
        Fut: Future<Output = Result<(V, Freshness), UpstreamError>> + Send + 'static,
    {
        let mut leads = false;
        for _ in 0..MAX_FOLLOWS {
            match self.tier.claim_flight(key).await {
                FlightClaim::Lead => {
                    leads = true;
                    break;
                }
                FlightClaim::Follow(other) => {
                    if let Some(entry) = other.await {
                        self.flights().remove(key);
                        return Ok(entry);
                    }
                }
            }
        }
        // A fetch that ended since this request missed (here or in another process) has
        // stored a fresh entry: no need to fetch again.
        if let Some(entry) = self.tier.get(key).await
            && Instant::now() < entry.fresh_until
        {
            self.flights().remove(key);
            if leads {
                self.tier.release_flight(key).await;
            }
            return Ok(entry);
        }
        self.counters.fetches.fetch_add(1, Ordering::Relaxed);
        let result = loop {
            let attempted = urgency.as_ref().map(|u| u.current());
            let outcome = match fetch(urgency.clone()) {
                Some(attempt) => attempt.await,
                None => Err(UpstreamError::Unavailable {
                    detail: "the fetch could not start".into(),
                }),
            };
            match outcome {
                Ok((value, freshness)) => {
                    let entry = self.entry(value, freshness);
                    self.tier.insert(key.clone(), entry.clone()).await;
                    self.flights().remove(key);
                    break Ok(entry);
                }
                Err(error) => {
                    if !error.may_serve_stale() {
                        // Before the flight ends, so no newer entry can be dropped.
                        self.tier.invalidate(key).await;
                    }
                    let mut flights = self.flights();
                    let raised_since = matches!(error, UpstreamError::Overloaded { .. })
                        && urgency
                            .as_ref()
                            .zip(attempted.as_ref())
                            .is_some_and(|(urgency, attempted)| urgency.is_above(attempted));
                    if !raised_since {
                        flights.remove(key);
                        drop(flights);
                        self.counters.fetch_errors.fetch_add(1, Ordering::Relaxed);
                        break Err(error);
                    }
                    drop(flights);
                    tracing::debug!(
                        %error,
                        "the budget refused a fetch that a joiner has raised since: asking again"
                    );
                }
            }
        };
        if leads {
            self.tier.release_flight(key).await;
        }
        result
    }

    /// The entry for `key` if it is fresh and `accept`able (counted as a hit), else
    /// `None` and nothing counted: the caller goes on to [`Self::get`]. The cache-hit fast
    /// path uses it.
    /// Only the entries this process holds are looked at ([`CacheTier::get_local`]).
    pub async fn fresh(&self, key: &K, accept: impl Fn(&V) -> bool) -> Option<Arc<Cached<V>>> {
        self.fresh_at(key, Instant::now(), accept).await
    }

    /// As [`Self::fresh_at`], but only an entry the tier holds ready to answer at once
    /// ([`CacheTier::get_ready`]); `None` says nothing, [`Self::fresh_at`] does. The
    /// cache-hit fast path asks this first: no future to make, poll or move.
    pub fn fresh_ready(
        &self,
        key: &K,
        now: Instant,
        accept: impl Fn(&V) -> bool,
    ) -> Option<Arc<Cached<V>>> {
        self.counted_if_fresh(self.tier.get_ready(key, now)?, now, accept)
    }

    /// As [`Self::fresh`], fresh at `now` (a time the caller has already read).
    pub async fn fresh_at(
        &self,
        key: &K,
        now: Instant,
        accept: impl Fn(&V) -> bool,
    ) -> Option<Arc<Cached<V>>> {
        let entry = self.tier.get_local(key, now).await?;
        self.counted_if_fresh(entry, now, accept)
    }

    /// `entry` if it is fresh at `now` and `accept`able, counted as a hit; else `None`,
    /// nothing counted.
    fn counted_if_fresh(
        &self,
        entry: Arc<Cached<V>>,
        now: Instant,
        accept: impl Fn(&V) -> bool,
    ) -> Option<Arc<Cached<V>>> {
        if now < entry.fresh_until && accept(&entry.value) {
            self.counters.hits.fetch_add(1, Ordering::Relaxed);
            Some(entry)
        } else {
            None
        }
    }

    /// The value for `key`: from the cache when fresh (or stale within bounds), else from
    /// `fetch`, waiting at most until `deadline`.
    ///
    /// # Errors
    /// The fetch's error when nothing stale may be served, or `Overloaded` when the
    /// deadline passes first.
    pub async fn get<F, Fut>(
        self: &Arc<Self>,
        key: K,
        deadline: Instant,
        fetch: F,
    ) -> Result<Served<V>, UpstreamError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(V, Freshness), UpstreamError>> + Send + 'static,
    {
        let mut fetch = Some(fetch);
        self.serve(key, deadline, None, move |_| fetch.take().map(|f| f()))
            .await
    }

    /// As [`Self::get`], for a fetch whose budget demand those who join it may raise:
    /// `demand` is this caller's (class, client, and the deadline its fetch must meet).
    /// A fetch this call starts is handed the [`Urgency`] every joiner raises (build the
    /// upstream call's context from it); this call joining a fetch raises it to `demand`.
    /// `fetch` may be called again, with the same urgency, when the budget refused the
    /// previous attempt after a joiner raised it.
    ///
    /// # Errors
    /// As [`Self::get`].
    pub async fn get_raising<F, Fut>(
        self: &Arc<Self>,
        key: K,
        deadline: Instant,
        demand: Demand,
        mut fetch: F,
    ) -> Result<Served<V>, UpstreamError>
    where
        F: FnMut(Arc<Urgency>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(V, Freshness), UpstreamError>> + Send + 'static,
    {
        self.serve(key, deadline, Some(demand), move |urgency| {
            urgency.map(&mut fetch)
        })
        .await
    }

    async fn serve<A, Fut>(
        self: &Arc<Self>,
        key: K,
        deadline: Instant,
        demand: Option<Demand>,
        fetch: A,
    ) -> Result<Served<V>, UpstreamError>
    where
        A: FnMut(Option<Arc<Urgency>>) -> Option<Fut> + Send + 'static,
        Fut: Future<Output = Result<(V, Freshness), UpstreamError>> + Send + 'static,
    {
        let now = Instant::now();
        let mut stale = None;
        if let Some(entry) = self.tier.get(&key).await {
            if now < entry.fresh_until {
                self.counters.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(Served {
                    entry,
                    status: CacheStatus::Hit,
                });
            }
            if now < entry.fresh_until + self.stale_while_revalidate {
                self.counters.stale.fetch_add(1, Ordering::Relaxed);
                // Not waiting on it: a background refresh is not raised.
                let _ = self.join_or_start(&key, demand.as_ref(), false, fetch);
                return Ok(Served {
                    entry,
                    status: CacheStatus::StaleWhileRevalidate,
                });
            }
            if now < entry.stale_until {
                stale = Some(entry);
            }
        }
        let (mut receiver, leader) = self.join_or_start(&key, demand.as_ref(), true, fetch);
        // With a stale copy to fall back on, do not keep the client waiting on a slow
        // Genesys: the fetch goes on and refreshes the entry for the next request.
        let wait_until = match &stale {
            Some(_) => deadline.min(now + self.stale_wait),
            None => deadline,
        };
        let outcome = tokio::time::timeout_at(wait_until, receiver.wait_for(Option::is_some)).await;
        let result = match outcome {
            Ok(Ok(value)) => value.clone().unwrap_or(Err(UpstreamError::Unavailable {
                detail: "the fetch ended without a result".into(),
            })),
            Ok(Err(_closed)) => Err(UpstreamError::Unavailable {
                detail: "the fetch task stopped".into(),
            }),
            Err(_elapsed) => Err(UpstreamError::Overloaded {
                retry_after: Duration::from_secs(1),
            }),
        };
        match result {
            Ok(entry) => {
                let status = match (leader, stale.is_some()) {
                    (false, _) => {
                        self.counters.collapsed.fetch_add(1, Ordering::Relaxed);
                        CacheStatus::Collapsed
                    }
                    (true, true) => CacheStatus::Refreshed,
                    (true, false) => CacheStatus::Miss,
                };
                if leader {
                    self.counters.misses.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Served { entry, status })
            }
            Err(error) => match stale {
                Some(entry) if error.may_serve_stale() => {
                    self.counters.stale.fetch_add(1, Ordering::Relaxed);
                    Ok(Served {
                        entry,
                        status: CacheStatus::StaleIfError,
                    })
                }
                _ => Err(error),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use tokio::sync::Notify;

    use super::*;
    use crate::upstream::Class;

    #[derive(Debug)]
    struct Value(u32);

    impl Weighted for Value {
        fn weight(&self) -> u32 {
            100
        }
    }

    fn demand(class: Class, client: &str, deadline: Instant) -> Demand {
        Demand {
            class,
            client: Arc::from(client),
            weight: 1,
            deadline,
        }
    }

    const FRESH: Freshness = Freshness {
        fresh_for: Duration::from_secs(60),
        stale_if_error: Duration::from_secs(60),
    };

    type Attempt =
        std::pin::Pin<Box<dyn Future<Output = Result<(Value, Freshness), UpstreamError>> + Send>>;

    /// A fetch that counts its attempts, shows its urgency and waits for `release`; the
    /// first attempt answers `first`, later ones a value.
    #[derive(Clone)]
    struct Probe {
        attempts: Arc<AtomicU32>,
        urgency: Arc<Mutex<Option<Arc<Urgency>>>>,
        release: Arc<Notify>,
    }

    impl Probe {
        fn new() -> Self {
            Self {
                attempts: Arc::new(AtomicU32::new(0)),
                urgency: Arc::new(Mutex::new(None)),
                release: Arc::new(Notify::new()),
            }
        }

        fn fetch(
            &self,
            first: Result<u32, UpstreamError>,
        ) -> impl FnMut(Arc<Urgency>) -> Attempt + Send + 'static {
            let probe = self.clone();
            move |urgency| {
                let probe = probe.clone();
                let first = first.clone();
                Box::pin(async move {
                    *probe.urgency.lock().expect("lock") = Some(urgency);
                    let attempt = probe.attempts.fetch_add(1, Ordering::SeqCst);
                    if attempt == 0 {
                        probe.release.notified().await;
                        first.map(|v| (Value(v), FRESH))
                    } else {
                        Ok((Value(attempt), FRESH))
                    }
                })
            }
        }

        fn urgency(&self) -> Demand {
            self.urgency
                .lock()
                .expect("lock")
                .as_ref()
                .expect("the fetch started")
                .current()
        }
    }

    async fn settle() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_joiner_raises_the_fetch_it_joins_and_outlasts_the_leader() {
        let cache = SwrCache::<u32, Value>::new(1 << 20, Duration::ZERO, Duration::from_secs(1));
        let start = Instant::now();
        let probe = Probe::new();
        let leader_deadline = start + Duration::from_secs(2);
        let leader = tokio::spawn({
            let (cache, fetch) = (cache.clone(), probe.fetch(Ok(7)));
            let demand = demand(Class::Hydrate, "reporter", leader_deadline);
            async move { cache.get_raising(1, leader_deadline, demand, fetch).await }
        });
        settle().await;
        assert_eq!(probe.urgency().class, Class::Hydrate);
        let joiner_deadline = start + Duration::from_secs(5);
        let joiner = tokio::spawn({
            let (cache, fetch) = (cache.clone(), probe.fetch(Ok(8)));
            let demand = demand(Class::Realtime, "tester", joiner_deadline);
            async move { cache.get_raising(1, joiner_deadline, demand, fetch).await }
        });
        settle().await;
        let raised = probe.urgency();
        assert_eq!(
            (raised.class, &*raised.client, raised.deadline),
            (Class::Realtime, "tester", joiner_deadline)
        );
        // The leader stops waiting at its own deadline; the fetch goes on for the joiner.
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(matches!(
            leader.await.expect("task"),
            Err(UpstreamError::Overloaded { .. })
        ));
        probe.release.notify_one();
        let served = joiner.await.expect("task").expect("served");
        assert_eq!(served.status, CacheStatus::Collapsed);
        assert_eq!(served.entry.value.0, 7);
        assert_eq!(probe.attempts.load(Ordering::SeqCst), 1);
        let stats = cache.stats();
        assert_eq!((stats.fetches, stats.raised), (1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_after_a_raise_asks_again_and_one_without_is_shared() {
        let overloaded = UpstreamError::Overloaded {
            retry_after: Duration::from_secs(1),
        };
        for raise in [true, false] {
            let cache =
                SwrCache::<u32, Value>::new(1 << 20, Duration::ZERO, Duration::from_secs(1));
            let start = Instant::now();
            let probe = Probe::new();
            let deadline = start + Duration::from_secs(2);
            let leader = tokio::spawn({
                let (cache, fetch) = (cache.clone(), probe.fetch(Err(overloaded.clone())));
                let demand = demand(Class::Hydrate, "reporter", deadline);
                async move { cache.get_raising(1, deadline, demand, fetch).await }
            });
            settle().await;
            // A real-time joiner raises; one of the same class with an earlier deadline
            // does not.
            let joiner_demand = if raise {
                demand(Class::Realtime, "tester", start + Duration::from_secs(5))
            } else {
                demand(Class::Hydrate, "tester", start + Duration::from_secs(1))
            };
            let joiner = tokio::spawn({
                let (cache, fetch) = (cache.clone(), probe.fetch(Ok(0)));
                let until = joiner_demand.deadline;
                async move { cache.get_raising(1, until, joiner_demand, fetch).await }
            });
            settle().await;
            probe.release.notify_one();
            let (leader, joiner) = (leader.await.expect("task"), joiner.await.expect("task"));
            if raise {
                assert_eq!(probe.attempts.load(Ordering::SeqCst), 2);
                assert_eq!(leader.expect("served").entry.value.0, 1);
                assert_eq!(joiner.expect("served").status, CacheStatus::Collapsed);
                assert_eq!(cache.stats().fetch_errors, 0);
            } else {
                assert_eq!(probe.attempts.load(Ordering::SeqCst), 1);
                assert_eq!(leader.expect_err("refused"), overloaded);
                assert_eq!(joiner.expect_err("refused"), overloaded);
                assert_eq!(cache.stats().fetch_errors, 1);
            }
            assert_eq!(cache.stats().fetches, 1);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stale_entry_answers_for_a_failure_to_answer_and_a_refusal_drops_it() {
        let cache = SwrCache::<u32, Value>::new(1 << 20, Duration::ZERO, Duration::from_secs(1));
        let deadline = || Instant::now() + Duration::from_secs(5);
        let failing = |error: UpstreamError| move || async move { Err(error) };
        let unavailable = UpstreamError::Unavailable {
            detail: "Genesys answered 503".into(),
        };
        let forbidden = UpstreamError::Forbidden {
            message: "missing.permissions".into(),
        };
        cache
            .get(1, deadline(), || async { Ok((Value(1), FRESH)) })
            .await
            .expect("fetched");
        tokio::time::advance(FRESH.fresh_for + Duration::from_secs(1)).await;

        let stale = cache
            .get(1, deadline(), failing(unavailable.clone()))
            .await
            .expect("served stale");
        assert_eq!(
            (stale.status, stale.entry.value.0),
            (CacheStatus::StaleIfError, 1)
        );
        let refused = cache.get(1, deadline(), failing(forbidden.clone())).await;
        assert_eq!(refused.expect_err("not served stale"), forbidden);
        // The refusal dropped the copy: a later failure to answer finds nothing to serve.
        let after = cache.get(1, deadline(), failing(unavailable.clone())).await;
        assert_eq!(after.expect_err("nothing stale left"), unavailable);
    }

    #[tokio::test(start_paused = true)]
    async fn a_plain_get_joined_by_a_raising_one_is_not_raised() {
        let cache = SwrCache::<u32, Value>::new(1 << 20, Duration::ZERO, Duration::from_secs(1));
        let start = Instant::now();
        let release = Arc::new(Notify::new());
        let leader = tokio::spawn({
            let (cache, release) = (cache.clone(), release.clone());
            async move {
                cache
                    .get(1, start + Duration::from_secs(2), move || async move {
                        release.notified().await;
                        Ok((Value(3), FRESH))
                    })
                    .await
            }
        });
        settle().await;
        let probe = Probe::new();
        let joiner = tokio::spawn({
            let (cache, fetch) = (cache.clone(), probe.fetch(Ok(0)));
            let demand = demand(Class::Realtime, "tester", start + Duration::from_secs(5));
            async move {
                cache
                    .get_raising(1, start + Duration::from_secs(5), demand, fetch)
                    .await
            }
        });
        settle().await;
        release.notify_one();
        assert_eq!(
            leader.await.expect("task").expect("served").entry.value.0,
            3
        );
        assert_eq!(
            joiner.await.expect("task").expect("served").entry.value.0,
            3
        );
        assert_eq!(probe.attempts.load(Ordering::SeqCst), 0);
        assert_eq!(cache.stats().raised, 0);
    }
}
