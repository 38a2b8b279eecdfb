//! Shared mode's budget: replicas that share a Redis share one rate budget. A 429 seen by
//! one replica freezes every replica until its `Retry-After`. Ten times the budget spread
//! over three replicas stays within the one budget (no upstream 429, no client 429) and
//! uses at least 95% of it: issue 19's figure as worded (Genesys' 300 calls per 60 s, the
//! proxy's default budget, 60 s of real time), and the same load scaled down to a few
//! windows of 2 s, which takes the replicas through several window turns of the simulator
//! (the reset each replica learns from the shared mirror, and the guard after it) in 4 s
//! (its floor on the share used is loose: a busy machine sends its load late). Under even
//! load the replicas share the gate evenly, within the tolerance `shared::budget`
//! documents (widened here for a loaded machine): the gate's slots are reserved in turn,
//! where asking again after each refusal let one replica take most of them. The figures
//! of a run on a quiet machine are the benchmark's (`bench/run --only replicas`).

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use genesys_proxy::upstream::budget::BudgetSettings;
use genesys_sim::{Faults, SimConfig, Simulator, Storm};
use support::redis::{RedisServer, SpreadLoad, replicas, replicas_with};
use support::sim_config;

fn cold_ids(sim: &Simulator) -> Vec<uuid::Uuid> {
    sim.data().conversations.iter().map(|c| c.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_429_on_one_replica_freezes_every_replica_until_its_retry_after() {
    let Some(redis) = RedisServer::start("a_429_on_one_replica_freezes_every_replica") else {
        return;
    };
    let sim = Simulator::start(sim_config()).await.expect("sim");
    let replicas = replicas(&sim, &redis, 2).await;
    let ids = cold_ids(&sim);
    // Both replicas have called Genesys (one token between them).
    for (i, replica) in replicas.iter().enumerate() {
        assert_eq!(
            replica
                .get(&format!("/conversations/{}", ids[i]))
                .await
                .status,
            200
        );
    }
    // One forced 429 with a Retry-After far beyond any request's deadline.
    sim.set_faults(Faults {
        storm: Some(Storm {
            retry_after_secs: 30,
            remaining: Some(1),
        }),
        ..Faults::default()
    });
    let first = replicas[0].get(&format!("/conversations/{}", ids[2])).await;
    assert_eq!(first.status, 503, "{}", first.text());
    assert_eq!(sim.counters().rate_limited, 1);
    // The freeze reaches Redis ...
    let mut frozen = false;
    for _ in 0..100 {
        let keys = redis
            .command(&["--raw", "KEYS", "*:budget:frozen"])
            .unwrap_or_default();
        if !keys.trim().is_empty() {
            frozen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(frozen, "the freeze is shared");
    // ... and the other replica, which saw no 429, does not call Genesys either: it
    // answers at once with the freeze's Retry-After.
    let calls = sim
        .counters()
        .calls_to(genesys_sim::endpoint::GET_CONVERSATION);
    let second = replicas[1].get(&format!("/conversations/{}", ids[3])).await;
    assert_eq!(second.status, 503, "{}", second.text());
    let retry_after: u64 = second
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((20..=31).contains(&retry_after), "{retry_after}");
    assert_eq!(
        sim.counters()
            .calls_to(genesys_sim::endpoint::GET_CONVERSATION),
        calls,
        "no call during the freeze"
    );
    assert_eq!(sim.counters().rate_limited, 1, "no second 429");
    // The other replica's readiness shows the freeze it was told of.
    let ready = replicas[1].get("/readyz").await.json();
    assert_eq!(ready["components"]["budget"]["status"], "frozen", "{ready}");
    assert_eq!(
        replicas[1].admin().await["shared"]["budget"]["frozen_for_ms"]
            .as_f64()
            .map(|ms| ms > 20_000.0),
        Some(true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_times_oversubscribed_load_over_three_replicas_stays_within_one_budget() {
    let Some(redis) = RedisServer::start("ten_times_oversubscribed_load_over_three_replicas")
    else {
        return;
    };
    // Genesys' 300 a minute, shortened in proportion: 40 per 2-second window.
    let sim = Simulator::start(SimConfig {
        conversations: 2_000,
        rate_limit: 40,
        rate_window: Duration::from_secs(2),
        ..sim_config()
    })
    .await
    .expect("sim");
    let budget = BudgetSettings {
        rate: 40,
        period_secs: 2.0,
        burst: 4,
        realtime_reserve: 2,
        max_concurrency: 8,
        // The default guard at each window reset: without it, a loaded machine (calls
        // granted on time but delivered late, bunched into the next window) met a 429.
        ..BudgetSettings::default()
    };
    let replicas = replicas_with(&sim, &redis, 3, |settings| {
        settings.budget = budget.clone();
        settings.server.request_timeout_ms = 2_000;
    })
    .await;
    // 200 cold requests a second (ten times the 20 a second of the budget) for 4 s.
    let paths: Vec<String> = cold_ids(&sim)
        .iter()
        .take(800)
        .map(|id| format!("/conversations/{id}"))
        .collect();
    let started = Instant::now();
    let statuses = SpreadLoad::send(&replicas, paths, Duration::from_millis(5))
        .await
        .statuses()
        .await;
    let elapsed = started.elapsed();
    let counters = sim.counters();
    let upstream = counters.calls_to(genesys_sim::endpoint::GET_CONVERSATION);
    let windows = elapsed.as_secs_f64() / 2.0;
    let budget_calls = windows * 40.0;
    eprintln!(
        "statuses {statuses:?}; {upstream} upstream calls in {elapsed:?} ({:.0}% of the budget)",
        100.0 * upstream as f64 / budget_calls
    );
    assert_eq!(counters.rate_limited, 0, "no upstream 429");
    assert_only_200_and_503(&statuses);
    // Within the one budget: the windows the run touched, never three budgets.
    assert!(
        (upstream as f64) <= (windows.ceil() + 1.0) * 40.0,
        "{upstream} calls in {windows:.1} windows"
    );
    // Most of it used (the benchmark measures the figure; this floor is loose).
    assert!(
        upstream as f64 >= 0.6 * budget_calls.min((windows - 1.0).max(1.0) * 40.0),
        "{upstream} calls in {windows:.1} windows"
    );
    assert_each_200_is_its_own_call(&statuses, upstream);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_under_even_load_share_the_gate_evenly_within_the_documented_tolerance() {
    let Some(redis) = RedisServer::start("replicas_under_even_load_share_the_gate_evenly") else {
        return;
    };
    // Genesys' limit and the proxy's default budget (5 calls a second), for a few seconds:
    // the pacing that first come, first served at the gate split unevenly.
    let sim = Simulator::start(SimConfig {
        conversations: 2_000,
        rate_limit: 300,
        rate_window: Duration::from_secs(60),
        ..sim_config()
    })
    .await
    .expect("sim");
    let replicas = replicas_with(&sim, &redis, 3, |settings| {
        settings.budget = BudgetSettings::default();
        settings.server.request_timeout_ms = REQUEST_TIMEOUT_MS;
    })
    .await;
    // Even load, ten times the budget: 50 cold requests a second for 6 s, round robin.
    let paths: Vec<String> = cold_ids(&sim)
        .iter()
        .take(300)
        .map(|id| format!("/conversations/{id}"))
        .collect();
    let statuses = SpreadLoad::send(&replicas, paths, Duration::from_millis(20))
        .await
        .statuses()
        .await;
    let counters = sim.counters();
    let upstream = counters.calls_to(genesys_sim::endpoint::GET_CONVERSATION);
    let grants = gate_grants(&replicas).await;
    let reserved = gate_figures(&replicas, &["reserved_grants"]).await;
    let lapsed = gate_figures(&replicas, &["lapsed_reservations"]).await;
    eprintln!(
        "statuses {statuses:?}; {upstream} upstream calls; by replica {grants:?}, on slots reserved {reserved:?}, lapsed {lapsed:?}"
    );
    assert_eq!(counters.rate_limited, 0, "no upstream 429");
    assert_only_200_and_503(&statuses);
    // Every upstream call passed one replica's gate (read after the simulator's count: a
    // call may still be on its way when its client was answered 503 at the timeout).
    let total: u64 = grants.iter().sum();
    assert!(upstream <= total, "{upstream} calls, gates {grants:?}");
    assert!(total >= 30, "{total} calls: too few to judge the shares");
    // The tolerance of `shared::budget`: within one call of the even share, apart from
    // the calls that go first come, first served (here the burst of 11 at the start and
    // the calls before the window's first reply, a large part of some 50 calls), so each
    // replica between half and one and a half times its even share (18, 18 and 16 of 52
    // measured on a loaded machine). Asking again after each refusal, first come, first
    // served, gave one replica 27 to 31 of 49 calls here and another 8 to 10.
    assert_even_shares(&grants, 0.5);
    // The calls on reserved slots, which go in turn (within one call of each other when
    // every replica always has a caller waiting; a slot whose callers went away lapses),
    // within a quarter of their even share (13, 12 and 12 measured). First come, first
    // served, none is reserved and the shares were 24, 13 and 12 of 49.
    assert!(reserved.iter().sum::<u64>() >= total / 2, "{reserved:?}");
    assert_even_shares(&reserved, 0.25);
    // Each replica waited for slots reserved for it, and says so in `/metrics`.
    for replica in &replicas {
        let metrics = replica.get("/metrics").await.text();
        let used = metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix("genesys_proxy_shared_budget_reservations_total{result=\"used\"} ")
            })
            .and_then(|v| v.parse::<u64>().ok());
        assert!(used.is_some_and(|used| used > 0), "{metrics}");
        assert!(
            metrics.contains("genesys_proxy_shared_budget_reservations_total{result=\"lapsed\"} ")
        );
        assert!(
            metrics.contains("# TYPE genesys_proxy_shared_budget_gate_wait_seconds_total counter")
        );
    }
}

/// Each replica's calls within `tolerance` (a fraction) of the even share.
fn assert_even_shares(grants: &[u64], tolerance: f64) {
    let total: u64 = grants.iter().sum();
    let even = total as f64 / grants.len() as f64;
    for (replica, &calls) in grants.iter().enumerate() {
        assert!(
            ((1.0 - tolerance) * even..=(1.0 + tolerance) * even).contains(&(calls as f64)),
            "replica {replica} made {calls} of {total} calls (even share {even:.1}): {grants:?}"
        );
    }
}

/// The fairness test's request timeout.
const REQUEST_TIMEOUT_MS: u64 = 2_000;

/// The calls each replica's gate let through (shared or local fallback), from `/admin/cache`.
async fn gate_grants(replicas: &[std::sync::Arc<support::redis::Replica>]) -> Vec<u64> {
    gate_figures(replicas, &["shared_grants", "local_grants"]).await
}

/// The sum of the gate's `figures` on each replica, from `/admin/cache`.
async fn gate_figures(
    replicas: &[std::sync::Arc<support::redis::Replica>],
    figures: &[&str],
) -> Vec<u64> {
    let mut sums = Vec::new();
    for replica in replicas {
        let gate = &replica.admin().await["shared"]["budget_gate"];
        let count = |name: &str| {
            gate[name]
                .as_u64()
                .unwrap_or_else(|| panic!("{name}: {gate}"))
        };
        sums.push(figures.iter().map(|name| count(name)).sum());
    }
    sums
}

/// No client 429: every answer is a 200 or a 503 (with `Retry-After`, which
/// [`SpreadLoad::statuses`] checks).
fn assert_only_200_and_503(statuses: &BTreeMap<u16, u64>) {
    assert_eq!(statuses.get(&429), None, "no client 429: {statuses:?}");
    assert!(
        statuses.keys().all(|s| *s == 200 || *s == 503),
        "{statuses:?}"
    );
}

/// Every 200 was its own upstream call (the ids are distinct and cold); a call can also
/// finish after its client was answered 503 at the request timeout (a loaded machine), so
/// there may be more calls than 200s, never more than answers.
fn assert_each_200_is_its_own_call(statuses: &BTreeMap<u16, u64>, upstream: u64) {
    let ok = statuses.get(&200).copied().unwrap_or(0);
    assert!(
        ok <= upstream,
        "{ok} answers of 200 from {upstream} upstream calls"
    );
    assert!(
        upstream <= statuses.values().sum::<u64>(),
        "{upstream} upstream calls for {statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_times_the_budget_over_three_replicas_for_sixty_seconds_uses_one_budget_without_a_429()
{
    let Some(redis) = RedisServer::start("ten_times_the_budget_over_three_replicas_for_60_s")
    else {
        return;
    };
    // Genesys' limit: 300 calls per 60 s per token, counted from the token's first call.
    let sim = Simulator::start(SimConfig {
        conversations: 4_000,
        rate_limit: 300,
        rate_window: Duration::from_secs(60),
        ..sim_config()
    })
    .await
    .expect("sim");
    // The proxy's default budget (its reset guard included): 300 calls per 60 s.
    let budget = BudgetSettings::default();
    assert_eq!((budget.rate, budget.period_secs), (300, 60.0));
    let replicas = replicas_with(&sim, &redis, 3, |settings| {
        settings.budget = BudgetSettings::default();
    })
    .await;
    let before = sim
        .counters()
        .calls_to(genesys_sim::endpoint::GET_CONVERSATION);
    assert_eq!(before, 0, "no call before the load");
    // Ten times the budget: 3000 distinct cold ids in 60 s (one every 20 ms), round robin
    // over the three replicas.
    let paths: Vec<String> = cold_ids(&sim)
        .iter()
        .take(3_000)
        .map(|id| format!("/conversations/{id}"))
        .collect();
    assert_eq!(paths.len(), 3_000);
    let started = Instant::now();
    // The calls of the first 60 s, all in the token's first window (which opened with
    // the first call, after the load started).
    let first_minute = async {
        tokio::time::sleep_until((started + Duration::from_secs(60)).into()).await;
        sim.counters()
            .calls_to(genesys_sim::endpoint::GET_CONVERSATION)
    };
    let (load, during) = tokio::join!(
        SpreadLoad::send(&replicas, paths, Duration::from_millis(20)),
        first_minute
    );
    let load_time = started.elapsed();
    let statuses = load.statuses().await;
    let elapsed = started.elapsed();
    let counters = sim.counters();
    let upstream = counters.calls_to(genesys_sim::endpoint::GET_CONVERSATION);
    let grants = gate_grants(&replicas).await;
    let reserved = gate_figures(&replicas, &["reserved_grants"]).await;
    let lapsed = gate_figures(&replicas, &["lapsed_reservations"]).await;
    let refused = gate_figures(&replicas, &["refused"]).await;
    eprintln!(
        "by replica {grants:?} ({reserved:?} on slots reserved, {lapsed:?} lapsed, {refused:?} refused at the gate; {} granted but never seen upstream); statuses {statuses:?}; {during} upstream calls in the first 60 s ({:.1}% of the budget), the load sent in {load_time:?}, {upstream} calls in {elapsed:?} with the answers still in flight",
        grants.iter().sum::<u64>().saturating_sub(upstream),
        100.0 * during as f64 / 300.0
    );
    assert_eq!(
        counters.tokens_issued, 1,
        "one token for the three replicas"
    );
    assert_eq!(counters.rate_limited, 0, "no upstream 429");
    assert_only_200_and_503(&statuses);
    assert_eq!(statuses.values().sum::<u64>(), 3_000);
    // Within the one budget (not three), and at least 95% of it used.
    assert!(during <= 300, "{during} calls in the 60 s of load");
    assert!(
        during >= 285,
        "{during} calls in the 60 s of load: below 95% of 300"
    );
    // Fair across the replicas under their even load: each within the tolerance that
    // `shared::budget` documents for the default budget over a minute, 20% of the even
    // share, and the calls on slots reserved in turn within 10% (first come, first
    // served, one replica took 255 of 318 calls here, and 239 of 349 in an earlier run).
    assert_even_shares(&grants, 0.20);
    assert_even_shares(&reserved, 0.10);
    assert_each_200_is_its_own_call(&statuses, upstream);
}
