//! The cache interface is enough: conversation caching behaves the same with its entries
//! in moka and in [`MapTier`], a second implementation of [`CacheTier`] written here from
//! the trait alone (a map under a lock that counts its calls, and keeps in-flight markers
//! the way a shared Redis tier would). Each scenario (fresh hit, miss, single-flight join
//! of concurrent misses, stale-while-revalidate, stale-if-error, a refusal dropping the
//! entry, a remembered 404, purge, a pushed update) runs against both tiers; two services
//! sharing one `MapTier` stand for two replicas sharing Redis.

mod support;

use std::collections::HashMap;
use std::future::{Future, ready};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use genesys_proxy::auth::Caller;
use genesys_proxy::cache::{
    CacheSettings, CacheStatus, CacheTier, Cached, FlightClaim, MokaTier, TierSize, Weighted,
};
use genesys_proxy::conversations::{ConversationEntry, ConversationService};
use genesys_proxy::upstream::{Class, UpstreamError};
use genesys_sim::{Faults, Simulator, endpoint};
use support::{generous_budget, sim_config, upstream_settings};
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

type Entry = Arc<Cached<ConversationEntry>>;

/// The calls a [`MapTier`] received.
#[derive(Debug, Default)]
struct Calls {
    gets: AtomicU64,
    inserts: AtomicU64,
    invalidations: AtomicU64,
    purges: AtomicU64,
    leads: AtomicU64,
    follows: AtomicU64,
}

/// An in-flight marker: the entry its holder stored, once it releases it (`Some(None)`:
/// it stored none).
type Marker = watch::Sender<Option<Option<Entry>>>;

#[derive(Debug, Default)]
struct Shared {
    entries: Mutex<HashMap<Uuid, Entry>>,
    markers: Mutex<HashMap<Uuid, Marker>>,
    calls: Calls,
}

/// A tier in a map; clones share it (as replicas share Redis).
#[derive(Debug, Clone, Default)]
struct MapTier(Arc<Shared>);

impl MapTier {
    fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::SeqCst);
    }

    fn calls(&self) -> &Calls {
        &self.0.calls
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Entry>> {
        self.0.entries.lock().expect("entries")
    }
}

impl CacheTier<Uuid, ConversationEntry> for MapTier {
    fn get(&self, key: &Uuid) -> impl Future<Output = Option<Entry>> + Send {
        Self::count(&self.0.calls.gets);
        let entry = self
            .entries()
            .get(key)
            .filter(|entry| Instant::now() < entry.stale_until)
            .cloned();
        ready(entry)
    }

    fn insert(&self, key: Uuid, entry: Entry) -> impl Future<Output = ()> + Send {
        Self::count(&self.0.calls.inserts);
        self.entries().insert(key, entry);
        ready(())
    }

    fn invalidate(&self, key: &Uuid) -> impl Future<Output = ()> + Send {
        Self::count(&self.0.calls.invalidations);
        self.entries().remove(key);
        ready(())
    }

    fn purge(&self) -> impl Future<Output = ()> + Send {
        Self::count(&self.0.calls.purges);
        self.entries().clear();
        ready(())
    }

    fn size(&self) -> TierSize {
        let entries = self.entries();
        TierSize {
            entries: entries.len() as u64,
            bytes: entries.values().map(|e| u64::from(e.value.weight())).sum(),
            max_bytes: u64::MAX,
        }
    }

    fn claim_flight(
        &self,
        key: &Uuid,
    ) -> impl Future<Output = FlightClaim<ConversationEntry>> + Send {
        let mut markers = self.0.markers.lock().expect("markers");
        let claim = match markers.get(key) {
            Some(marker) => {
                Self::count(&self.0.calls.follows);
                let mut released = marker.subscribe();
                FlightClaim::Follow(Box::pin(async move {
                    let stored = released.wait_for(Option::is_some).await.ok()?;
                    stored.clone().flatten()
                }))
            }
            None => {
                Self::count(&self.0.calls.leads);
                markers.insert(*key, watch::channel(None).0);
                FlightClaim::Lead
            }
        };
        ready(claim)
    }

    fn release_flight(&self, key: &Uuid) -> impl Future<Output = ()> + Send {
        let marker = self.0.markers.lock().expect("markers").remove(key);
        if let Some(marker) = marker {
            let stored = self.entries().get(key).cloned();
            marker.send_replace(Some(stored));
        }
        ready(())
    }
}

fn caller() -> Caller {
    Caller {
        name: Arc::from("tester"),
        scopes: Vec::new(),
        weight: 1,
    }
}

fn service<T: CacheTier<Uuid, ConversationEntry>>(
    sim: &Simulator,
    settings: CacheSettings,
    tier: T,
) -> Arc<ConversationService<T>> {
    let client = support::client(
        sim,
        generous_budget(),
        upstream_settings(),
        genesys_sim::config::DEFAULT_CLIENT_SECRET,
    );
    Arc::new(ConversationService::with_tier(
        client,
        settings,
        Duration::from_secs(5),
        tier,
    ))
}

async fn lookup<T: CacheTier<Uuid, ConversationEntry>>(
    service: &ConversationService<T>,
    id: Uuid,
) -> Result<(Entry, CacheStatus), UpstreamError> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let served = service
        .get(id, Class::Realtime, &caller(), deadline)
        .await?;
    Ok((served.entry, served.status))
}

fn live_id(sim: &Simulator) -> Uuid {
    let now = sim.state().now();
    let data = sim.data();
    let live = data
        .conversations
        .iter()
        .find(|c| c.start <= now && !c.is_over_at(now));
    live.expect("a live conversation").id
}

fn ended_id(sim: &Simulator) -> Uuid {
    let now = sim.state().now();
    let data = sim.data();
    let ended = data.conversations.iter().find(|c| c.is_over_at(now));
    ended.expect("an ended conversation").id
}

fn upstream_calls(sim: &Simulator) -> u64 {
    sim.counters().calls_to(endpoint::GET_CONVERSATION)
}

fn found(entry: &Entry) -> &genesys_proxy::conversations::Representations {
    match &entry.value {
        ConversationEntry::Found(representations) => representations,
        ConversationEntry::NotFound => panic!("not found"),
    }
}

/// Freshness of an active conversation one second, stale copies served while
/// revalidating for `revalidate_secs` and on errors for a minute.
fn short_lived(revalidate_secs: u64) -> CacheSettings {
    CacheSettings {
        active_fresh_secs: 1,
        stale_while_revalidate_secs: revalidate_secs,
        stale_if_error_secs: 60,
        stale_wait_ms: 5_000,
        ..CacheSettings::default()
    }
}

async fn a_miss_then_a_fresh_hit<T: CacheTier<Uuid, ConversationEntry>>(tier: T) {
    let sim = Simulator::start(sim_config()).await.expect("sim");
    let service = service(&sim, CacheSettings::default(), tier);
    let id = ended_id(&sim);
    let (first, status) = lookup(&service, id).await.expect("fetched");
    assert_eq!(status, CacheStatus::Miss);
    let (second, status) = lookup(&service, id).await.expect("cached");
    assert_eq!(status, CacheStatus::Hit);
    assert!(Arc::ptr_eq(&first, &second), "the same entry");
    let hit = service.fresh_hit(id).await.expect("a fresh hit");
    assert_eq!(found(&hit).full, found(&first).full);
    assert_eq!(upstream_calls(&sim), 1);
    service.settle().await;
    let stats = service.stats();
    assert_eq!((stats.hits, stats.misses, stats.entries), (2, 1, 1));
}

#[tokio::test]
async fn a_miss_then_a_fresh_hit_in_moka() {
    a_miss_then_a_fresh_hit(MokaTier::new(1 << 24)).await;
}

#[tokio::test]
async fn a_miss_then_a_fresh_hit_in_a_map() {
    let tier = MapTier::default();
    a_miss_then_a_fresh_hit(tier.clone()).await;
    let calls = tier.calls();
    assert_eq!(calls.inserts.load(Ordering::SeqCst), 1);
    assert_eq!(calls.leads.load(Ordering::SeqCst), 1);
    assert!(calls.gets.load(Ordering::SeqCst) >= 3);
}

async fn concurrent_misses_join_one_fetch<T: CacheTier<Uuid, ConversationEntry>>(tier: T) {
    let sim = Simulator::start(sim_config()).await.expect("sim");
    sim.set_faults(Faults {
        latency_ms: 200,
        ..Faults::default()
    });
    let service = service(&sim, CacheSettings::default(), tier);
    let id = ended_id(&sim);
    let lookups: Vec<_> = (0..50)
        .map(|_| {
            let service = service.clone();
            tokio::spawn(async move { lookup(&service, id).await })
        })
        .collect();
    let mut statuses = HashMap::new();
    for lookup in lookups {
        let (_, status) = lookup.await.expect("task").expect("served");
        *statuses.entry(status.label()).or_insert(0) += 1;
    }
    assert_eq!(statuses, HashMap::from([("miss", 1), ("collapsed", 49)]));
    assert_eq!(upstream_calls(&sim), 1);
}

#[tokio::test]
async fn concurrent_misses_join_one_fetch_in_moka() {
    concurrent_misses_join_one_fetch(MokaTier::new(1 << 24)).await;
}

#[tokio::test]
async fn concurrent_misses_join_one_fetch_in_a_map() {
    let tier = MapTier::default();
    concurrent_misses_join_one_fetch(tier.clone()).await;
    assert_eq!(tier.calls().inserts.load(Ordering::SeqCst), 1);
}

async fn a_stale_copy_is_served_while_one_fetch_refreshes_it<
    T: CacheTier<Uuid, ConversationEntry>,
>(
    tier: T,
) {
    let sim = Simulator::start(sim_config()).await.expect("sim");
    let service = service(&sim, short_lived(30), tier);
    let id = live_id(&sim);
    let (first, _) = lookup(&service, id).await.expect("fetched");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    sim.set_faults(Faults {
        latency_ms: 500,
        ..Faults::default()
    });
    for _ in 0..3 {
        let (stale, status) = lookup(&service, id).await.expect("stale");
        assert_eq!(status, CacheStatus::StaleWhileRevalidate);
        assert!(Arc::ptr_eq(&stale, &first));
    }
    let started = std::time::Instant::now();
    while service.fresh_hit(id).await.is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never refreshed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        upstream_calls(&sim),
        2,
        "one refresh for three stale answers"
    );
}

#[tokio::test]
async fn a_stale_copy_is_served_while_one_fetch_refreshes_it_in_moka() {
    a_stale_copy_is_served_while_one_fetch_refreshes_it(MokaTier::new(1 << 24)).await;
}

#[tokio::test]
async fn a_stale_copy_is_served_while_one_fetch_refreshes_it_in_a_map() {
    let tier = MapTier::default();
    a_stale_copy_is_served_while_one_fetch_refreshes_it(tier.clone()).await;
    assert_eq!(tier.calls().inserts.load(Ordering::SeqCst), 2);
}

/// Stale-if-error during an outage, then a refusal (403) that drops the stale copy.
async fn a_stale_copy_answers_for_an_outage_and_a_refusal_drops_it<
    T: CacheTier<Uuid, ConversationEntry>,
>(
    tier: T,
) {
    let sim = Simulator::start(sim_config()).await.expect("sim");
    let service = service(&sim, short_lived(0), tier);
    let id = live_id(&sim);
    let (first, _) = lookup(&service, id).await.expect("fetched");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    sim.set_faults(Faults {
        outage: true,
        ..Faults::default()
    });
    let (stale, status) = lookup(&service, id).await.expect("stale");
    assert_eq!(status, CacheStatus::StaleIfError);
    assert!(Arc::ptr_eq(&stale, &first));
    sim.set_faults(Faults {
        forbidden: true,
        ..Faults::default()
    });
    let refused = lookup(&service, id).await.expect_err("refused");
    assert!(
        matches!(refused, UpstreamError::Forbidden { .. }),
        "{refused:?}"
    );
    sim.set_faults(Faults {
        outage: true,
        ..Faults::default()
    });
    let after = lookup(&service, id).await.expect_err("nothing stale left");
    assert!(after.may_serve_stale(), "{after:?}");
}

#[tokio::test]
async fn a_stale_copy_answers_for_an_outage_and_a_refusal_drops_it_in_moka() {
    a_stale_copy_answers_for_an_outage_and_a_refusal_drops_it(MokaTier::new(1 << 24)).await;
}

#[tokio::test]
async fn a_stale_copy_answers_for_an_outage_and_a_refusal_drops_it_in_a_map() {
    let tier = MapTier::default();
    a_stale_copy_answers_for_an_outage_and_a_refusal_drops_it(tier.clone()).await;
    assert!(tier.calls().invalidations.load(Ordering::SeqCst) >= 1);
}

/// A 404 is remembered; purge and forget drop entries; a pushed document is a fresh hit.
async fn not_found_purge_forget_and_push<T: CacheTier<Uuid, ConversationEntry>>(tier: T) {
    let sim = Simulator::start(sim_config()).await.expect("sim");
    let service = service(&sim, CacheSettings::default(), tier);
    let unknown = Uuid::from_u128(0x4000_8000_0000_0000_0000);
    let (gone, status) = lookup(&service, unknown).await.expect("a 404 entry");
    assert_eq!(status, CacheStatus::Miss);
    assert!(matches!(gone.value, ConversationEntry::NotFound));
    let (_, status) = lookup(&service, unknown).await.expect("remembered");
    assert_eq!(status, CacheStatus::Hit);
    assert!(
        service.fresh_hit(unknown).await.is_none(),
        "not a found one"
    );

    let id = ended_id(&sim);
    let (fetched, _) = lookup(&service, id).await.expect("fetched");
    assert_eq!(upstream_calls(&sim), 2);
    service.purge().await;
    assert_eq!(service.stats().entries, 0);
    assert_eq!(
        lookup(&service, id).await.expect("again").1,
        CacheStatus::Miss
    );
    service.forget(id).await;
    assert_eq!(
        lookup(&service, id).await.expect("again").1,
        CacheStatus::Miss
    );
    assert_eq!(upstream_calls(&sim), 4);

    // A pushed document replaces the entry and is served without a call.
    let pushed = service
        .store_document(id, found(&fetched).full.clone())
        .await
        .expect("a conversation document");
    let (served, status) = lookup(&service, id).await.expect("pushed");
    assert_eq!(status, CacheStatus::Hit);
    assert!(Arc::ptr_eq(&served, &pushed));
    assert!(
        service
            .store_document(id, bytes::Bytes::from_static(b"{not json"))
            .await
            .is_err()
    );
    assert_eq!(upstream_calls(&sim), 4);
}

#[tokio::test]
async fn not_found_purge_forget_and_push_in_moka() {
    not_found_purge_forget_and_push(MokaTier::new(1 << 24)).await;
}

#[tokio::test]
async fn not_found_purge_forget_and_push_in_a_map() {
    let tier = MapTier::default();
    not_found_purge_forget_and_push(tier.clone()).await;
    let calls = tier.calls();
    assert_eq!(calls.purges.load(Ordering::SeqCst), 1);
    assert_eq!(calls.invalidations.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn two_replicas_sharing_a_tier_make_one_upstream_call() {
    let sim = Simulator::start(sim_config()).await.expect("sim");
    sim.set_faults(Faults {
        latency_ms: 300,
        ..Faults::default()
    });
    let tier = MapTier::default();
    let replicas = [
        service(&sim, CacheSettings::default(), tier.clone()),
        service(&sim, CacheSettings::default(), tier.clone()),
    ];
    let id = ended_id(&sim);
    let lookups: Vec<_> = (0..40)
        .map(|i| {
            let replica = replicas[i % 2].clone();
            tokio::spawn(async move { lookup(&replica, id).await })
        })
        .collect();
    let mut entries = Vec::new();
    for lookup in lookups {
        entries.push(lookup.await.expect("task").expect("served").0);
    }
    assert_eq!(upstream_calls(&sim), 1, "one call for both replicas");
    assert!(entries.iter().all(|e| Arc::ptr_eq(e, &entries[0])));
    let calls = tier.calls();
    assert_eq!(
        (
            calls.leads.load(Ordering::SeqCst),
            calls.follows.load(Ordering::SeqCst)
        ),
        (1, 1),
        "each replica's one flight: one led, the other followed"
    );
    // Later lookups on either replica are hits from the shared tier.
    for replica in &replicas {
        assert_eq!(lookup(replica, id).await.expect("hit").1, CacheStatus::Hit);
    }
}
