//! What a cached conversation costs against the bytes it serves (DESIGN.md, "Targets":
//! at most 1.3x). Every conversation of the test org is fetched into the conversation
//! cache; the bytes the cache accounts for them (their weights: both bodies, both ETags
//! and the measured per-entry overhead, `ENTRY_OVERHEAD`) are compared with the bytes
//! they serve (the summary view plus the full document). The overhead constant itself is
//! measured with `bench/run --only memory` (process RSS per entry).

mod support;

use std::time::Duration;

use genesys_proxy::auth::Caller;
use genesys_proxy::cache::{CacheSettings, Weighted};
use genesys_proxy::conversations::{ConversationEntry, ConversationService, ENTRY_OVERHEAD};
use genesys_proxy::upstream::Class;
use genesys_sim::Simulator;
use support::{generous_budget, sim_config, upstream_settings};
use tokio::time::Instant;

#[tokio::test]
async fn a_cached_conversation_costs_at_most_1_3_times_the_bytes_it_serves() {
    let sim = Simulator::start(genesys_sim::SimConfig {
        rate_limit: 1_000_000,
        ..sim_config()
    })
    .await
    .expect("sim");
    let client = support::client(
        &sim,
        generous_budget(),
        upstream_settings(),
        genesys_sim::config::DEFAULT_CLIENT_SECRET,
    );
    let service =
        ConversationService::new(client, CacheSettings::default(), Duration::from_secs(5));
    let caller = Caller {
        name: "tester".into(),
        scopes: Vec::new(),
        weight: 1,
    };
    let now = sim.state().now();
    let ids: Vec<_> = sim
        .data()
        .conversations
        .iter()
        .filter(|c| c.start <= now)
        .map(|c| c.id)
        .collect();
    assert!(ids.len() >= 300, "{} conversations", ids.len());

    let (mut served, mut weighed, mut worst) = (0u64, 0u64, 0f64);
    for &id in &ids {
        let deadline = Instant::now() + Duration::from_secs(5);
        let entry = service
            .get(id, Class::Realtime, &caller, deadline)
            .await
            .expect("fetched")
            .entry;
        let ConversationEntry::Found(representations) = &entry.value else {
            panic!("{id} not found");
        };
        let bodies = (representations.view.len() + representations.full.len()) as u64;
        let weight = u64::from(entry.value.weight());
        served += bodies;
        weighed += weight;
        worst = worst.max(weight as f64 / bodies as f64);
    }
    service.settle().await;
    let stats = service.stats();
    assert_eq!(stats.entries, ids.len() as u64);
    assert_eq!(
        stats.bytes, weighed,
        "the cache accounts each entry's weight"
    );

    let count = ids.len() as u64;
    let ratio = weighed as f64 / served as f64;
    println!(
        "{count} conversations: served {} B each (summary + full), accounted {} B each \
         ({ENTRY_OVERHEAD} B of overhead): {ratio:.3}x; the worst conversation {worst:.3}x",
        served / count,
        weighed / count,
    );
    assert!(
        ratio <= 1.3,
        "a cached conversation is accounted {ratio:.3}x the bytes it serves"
    );
    // What is accounted beyond the bodies is the two ETags and the fixed overhead.
    let beyond = weighed - served;
    assert!(
        beyond <= count * (u64::from(ENTRY_OVERHEAD) + 2 * 32),
        "{} bytes beyond the bodies per entry",
        beyond / count
    );
}

/// The process's resident set, in bytes (Linux; 0 elsewhere).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Measures what the process grows by per cached conversation, against the bytes each
/// serves: `MEMORY_CONVERSATIONS` (default 20 000) conversations fetched into the cache
/// through the simulator in the same process. A measurement, not a check (RSS depends on
/// the allocator and on what else the process did); run it with
/// `cargo test --test cache_memory -- --ignored --nocapture` (a debug build allocates
/// the same structures as a release one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: prints RSS per cached conversation"]
async fn measure_rss_per_cached_conversation() {
    let count: usize = std::env::var("MEMORY_CONVERSATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let sim = Simulator::start(genesys_sim::SimConfig {
        conversations: count + count / 10,
        days: 30,
        live_conversations: 0,
        rate_limit: 1_000_000,
        ..sim_config()
    })
    .await
    .expect("sim");
    let client = support::client(
        &sim,
        generous_budget(),
        upstream_settings(),
        genesys_sim::config::DEFAULT_CLIENT_SECRET,
    );
    let settings = CacheSettings {
        max_bytes: 4 << 30,
        ..CacheSettings::default()
    };
    let service = std::sync::Arc::new(ConversationService::new(
        client,
        settings,
        Duration::from_secs(30),
    ));
    let now = sim.state().now();
    let ids: Vec<_> = sim
        .data()
        .conversations
        .iter()
        .filter(|c| c.start <= now)
        .map(|c| c.id)
        .take(count)
        .collect();
    let fetch_all = |ids: Vec<uuid::Uuid>| {
        let service = service.clone();
        async move {
            let mut served = 0u64;
            for chunk in ids.chunks(32) {
                let mut tasks = tokio::task::JoinSet::new();
                for &id in chunk {
                    let service = service.clone();
                    tasks.spawn(async move {
                        let caller = Caller {
                            name: "tester".into(),
                            scopes: Vec::new(),
                            weight: 1,
                        };
                        let deadline = Instant::now() + Duration::from_secs(30);
                        let served = service.get(id, Class::Realtime, &caller, deadline).await;
                        match &served.expect("fetched").entry.value {
                            ConversationEntry::Found(r) => (r.view.len() + r.full.len()) as u64,
                            ConversationEntry::NotFound => 0,
                        }
                    });
                }
                while let Some(bodies) = tasks.join_next().await {
                    served += bodies.expect("task");
                }
            }
            served
        }
    };
    // Warm the connections, the token and the allocator's arenas.
    let (warm, rest) = ids.split_at(ids.len().min(500));
    fetch_all(warm.to_vec()).await;
    service.settle().await;
    let (rss_before, bytes_before) = (rss_bytes(), service.stats().bytes);
    let served = fetch_all(rest.to_vec()).await;
    service.settle().await;
    let (rss_after, bytes_after) = (rss_bytes(), service.stats().bytes);
    let n = rest.len() as u64;
    let per_entry = rss_after.saturating_sub(rss_before) / n;
    println!(
        "{n} conversations cached: served {} B each (summary + full); RSS grew {per_entry} B \
         each ({:.3}x); the cache accounts {} B each ({:.3}x)",
        served / n,
        per_entry as f64 / (served / n) as f64,
        (bytes_after - bytes_before) / n,
        (bytes_after - bytes_before) as f64 / served as f64,
    );
}
