//! Shared mode degrades, never breaks: with Redis killed mid-run, replicas keep answering
//! (cached ids 200, cold ids 200 or 503 + `Retry-After`) on local state, each pacing at
//! the rate divided by the replicas last seen alive, so Genesys sees no 429; when Redis
//! is restarted, they rejoin shared mode and the shared budget gate is used again.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use genesys_proxy::upstream::budget::BudgetSettings;
use genesys_sim::{SimConfig, Simulator};
use support::redis::{RedisServer, Replica, SpreadLoad, replicas_with};
use support::sim_config;

async fn wait_for_mode(replica: &Replica, mode: &str) -> serde_json::Value {
    let mut admin = serde_json::Value::Null;
    for _ in 0..200 {
        admin = replica.admin().await;
        if admin["shared"]["mode"] == mode {
            return admin;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the replica did not reach mode {mode}: {admin}");
}

/// Sends `paths` spread over `replicas`, 5 ms apart; the statuses counted.
async fn load(replicas: &[Arc<Replica>], paths: Vec<String>) -> BTreeMap<u16, u64> {
    SpreadLoad::send(replicas, paths, Duration::from_millis(5))
        .await
        .statuses()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_redis_killed_replicas_keep_answering_within_the_rate_and_rejoin_when_it_returns() {
    let Some(mut redis) = RedisServer::start("with_redis_killed_replicas_keep_answering") else {
        return;
    };
    let sim = Simulator::start(SimConfig {
        conversations: 2_000,
        rate_limit: 40,
        rate_window: Duration::from_secs(2),
        ..sim_config()
    })
    .await
    .expect("sim");
    let replicas = replicas_with(&sim, &redis, 3, |settings| {
        settings.budget = BudgetSettings {
            rate: 40,
            period_secs: 2.0,
            burst: 3,
            realtime_reserve: 2,
            max_concurrency: 8,
            reset_guard_ms: 0,
            ..BudgetSettings::default()
        };
        settings.server.request_timeout_ms = 2_000;
    })
    .await;
    let ids: Vec<String> = sim
        .data()
        .conversations
        .iter()
        .map(|c| format!("/conversations/{}", c.id))
        .collect();
    // Each replica caches a few ids, and knows of the others.
    for (i, replica) in replicas.iter().enumerate() {
        for path in &ids[i * 3..i * 3 + 3] {
            assert_eq!(replica.get(path).await.status, 200);
        }
    }
    for replica in &replicas {
        for _ in 0..200 {
            if replica.admin().await["shared"]["live_replicas"] == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    redis.stop();
    // Cached ids keep answering 200 at once, on whichever replica cached them.
    for (i, replica) in replicas.iter().enumerate() {
        for path in &ids[i * 3..i * 3 + 3] {
            assert_eq!(replica.get(path).await.status, 200);
        }
    }
    // Oversubscribed cold load: 200 or 503 + Retry-After, and no 429 from Genesys.
    let statuses = load(&replicas, ids[100..600].to_vec()).await;
    eprintln!("with Redis down: {statuses:?}");
    assert_eq!(
        statuses
            .keys()
            .copied()
            .filter(|s| *s != 200 && *s != 503)
            .count(),
        0,
        "{statuses:?}"
    );
    assert!(statuses.get(&200).copied().unwrap_or(0) > 0, "{statuses:?}");
    // No 429 storm: a replica that falls back does not know what the others spent of
    // Genesys' window in the moment Redis died, so a 429 can happen at the switch; it
    // freezes that replica until its Retry-After, so there is at most one per replica.
    let rate_limited = sim.counters().rate_limited;
    eprintln!("upstream 429s at the switch: {rate_limited}");
    assert!(
        rate_limited <= replicas.len() as u64,
        "no upstream 429 storm: {rate_limited}"
    );
    for replica in &replicas {
        let admin = wait_for_mode(replica, "local").await;
        assert_eq!(admin["shared"]["live_replicas"], 3, "{admin}");
        assert!(
            admin["shared"]["budget_gate"]["local_grants"].as_u64() > Some(0),
            "{admin}"
        );
    }

    // Redis returns: every replica rejoins, and the shared gate is used again.
    redis.restart();
    let mut before = Vec::new();
    for replica in &replicas {
        let admin = wait_for_mode(replica, "shared").await;
        before.push(admin["shared"]["budget_gate"]["shared_grants"].as_u64());
    }
    let statuses = load(&replicas, ids[600..660].to_vec()).await;
    assert!(statuses.get(&200).copied().unwrap_or(0) > 0, "{statuses:?}");
    for (replica, before) in replicas.iter().zip(before) {
        let admin = replica.admin().await;
        assert!(
            admin["shared"]["budget_gate"]["shared_grants"].as_u64() > before,
            "{admin}"
        );
        assert!(admin["shared"]["rejoins"].as_u64() >= Some(1));
    }
    assert_eq!(
        sim.counters().rate_limited,
        rate_limited,
        "no 429 once the shared gate is back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_redis_is_given_up_on_after_its_timeout_and_rejoined_when_it_answers() {
    let Some(redis) = RedisServer::start("a_slow_redis_is_given_up_on") else {
        return;
    };
    let sim = Simulator::start(sim_config()).await.expect("sim");
    let replicas = replicas_with(&sim, &redis, 2, |settings| settings.redis.timeout_ms = 100).await;
    let ids: Vec<String> = sim
        .data()
        .conversations
        .iter()
        .take(6)
        .map(|c| format!("/conversations/{}", c.id))
        .collect();
    for (replica, path) in replicas.iter().zip(&ids) {
        assert_eq!(replica.get(path).await.status, 200);
    }
    // Redis stops answering (every client paused) for far longer than the timeout.
    assert_eq!(
        redis
            .command(&["CLIENT", "PAUSE", "4000", "ALL"])
            .as_deref(),
        Some("OK")
    );
    // Cold ids are still served, through the local fallback.
    for (replica, path) in replicas.iter().zip(&ids[2..]) {
        let reply = replica.get(path).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    for replica in &replicas {
        let admin = wait_for_mode(replica, "local").await;
        assert!(admin["shared"]["failures"].as_u64() >= Some(1), "{admin}");
    }
    // Redis answers again: the heartbeat finds it and the replicas rejoin.
    for replica in &replicas {
        wait_for_mode_within(replica, "shared", Duration::from_secs(10)).await;
    }
    for (replica, path) in replicas.iter().zip(&ids[4..]) {
        assert_eq!(replica.get(path).await.status, 200);
    }
    assert_eq!(sim.counters().rate_limited, 0);
}

async fn wait_for_mode_within(replica: &Replica, mode: &str, within: Duration) {
    let give_up = std::time::Instant::now() + within;
    loop {
        let admin = replica.admin().await;
        if admin["shared"]["mode"] == mode {
            return;
        }
        assert!(
            std::time::Instant::now() < give_up,
            "the replica did not reach mode {mode}: {admin}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
