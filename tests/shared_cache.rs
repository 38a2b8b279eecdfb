//! Shared mode's cache: replicas that share a Redis keep conversations in it behind their
//! own moka tier, and coalesce fetches across replicas (a flight marker in Redis, the
//! leader's entry awaited by the others). Proven over HTTP against the simulator's call
//! counters: 1,000 cold requests over 3 replicas make one upstream call; what one replica
//! fetched is a hit on another, byte for byte; a follower whose leader fails fetches
//! itself, and one whose leader died answers by its deadline; with Redis stopped the
//! replicas answer on their own, and share again once it is back.

mod support;

use std::sync::Arc;
use std::time::Duration;

use genesys_sim::{Faults, SimConfig, Simulator, endpoint};
use support::redis::{self, RedisServer, Replica};
use support::{Reply, ended_conversation_ids, sim_config};
use uuid::Uuid;

fn conversation_calls(sim: &Simulator) -> u64 {
    sim.counters().calls_to(endpoint::GET_CONVERSATION)
}

/// `n` replicas whose requests (and so the fetches they lead) may last `timeout`.
async fn replicas_with(
    sim: &Simulator,
    redis: &RedisServer,
    n: usize,
    timeout: Duration,
) -> Vec<Arc<Replica>> {
    redis::replicas_with(sim, redis, n, |settings| {
        settings.server.request_timeout_ms = u64::try_from(timeout.as_millis()).expect("ms");
        settings.upstream.request_timeout_ms = 10_000;
        // A loaded test machine may delay a Redis answer: what is tested here is the
        // coalescing, not giving up on a slow Redis (tests/shared_degrade.rs).
        settings.redis.timeout_ms = 2_000;
    })
    .await
}

/// The prefix of this org's keys in Redis (`genesys-proxy:{client}`), once a replica has
/// announced itself.
async fn key_prefix(redis: &RedisServer) -> String {
    for _ in 0..200 {
        let keys = redis
            .command(&["--raw", "KEYS", "genesys-proxy:*:replicas"])
            .unwrap_or_default();
        if let Some(key) = keys.lines().find(|k| !k.is_empty()) {
            return key.trim_end_matches(":replicas").to_owned();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no replica registered in Redis");
}

fn flight_marker(prefix: &str, id: Uuid) -> String {
    format!("{prefix}:flight:conversations:v1:{id}")
}

async fn wait_for_mode(replica: &Replica, mode: &str) {
    for _ in 0..400 {
        if replica.admin().await["shared"]["mode"] == mode {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the replica did not reach mode {mode}");
}

fn shared_cache(admin: &serde_json::Value) -> &serde_json::Value {
    &admin["shared"]["cache"]
}

fn etag(reply: &Reply) -> String {
    reply.header("etag").expect("an ETag")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_cold_requests_over_three_replicas_make_one_upstream_call() {
    let Some(redis) = RedisServer::start("a_thousand_cold_requests_over_three_replicas") else {
        return;
    };
    let sim = Simulator::start(sim_config()).await.expect("sim");
    // Requests and their fetches may wait long on a loaded machine: not what is measured.
    let replicas = replicas_with(&sim, &redis, 3, Duration::from_secs(30)).await;
    // Long enough that requests still arriving find the fetch running somewhere.
    sim.set_faults(Faults {
        latency_ms: 500,
        ..Faults::default()
    });
    let id = ended_conversation_ids(&sim, 1)[0];
    let path = format!("/conversations/{id}");
    let requests = (0..1000).map(|i| replicas[i % 3].get(&path));
    let replies = futures_util::future::join_all(requests).await;
    let failed: Vec<_> = replies.iter().filter(|r| r.status != 200).collect();
    assert!(
        failed.is_empty(),
        "every request answered 200; {} did not, such as {:?}",
        failed.len(),
        failed.first().map(|r| r.text())
    );
    let counters = sim.counters();
    let mut shared = Vec::new();
    for replica in &replicas {
        shared.push(replica.admin().await["shared"].clone());
    }
    assert_eq!(
        counters.arrivals_to(endpoint::GET_CONVERSATION),
        1,
        "{shared:?}"
    );
    assert_eq!(counters.calls_to(endpoint::GET_CONVERSATION), 1);
    // Every replica answered the same bytes under the same ETag.
    assert!(replies.iter().all(|r| r.body == replies[0].body));
    assert!(replies.iter().all(|r| etag(r) == etag(&replies[0])));
    let mut led = 0;
    for replica in &replicas {
        led += shared_cache(&replica.admin().await)["flights_led"]
            .as_u64()
            .expect("flights_led");
    }
    assert!(led >= 1, "a replica led the fetch for all");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_conversation_fetched_through_one_replica_is_a_hit_on_another() {
    let Some(redis) = RedisServer::start("a_conversation_fetched_through_one_replica") else {
        return;
    };
    let sim = Simulator::start(sim_config()).await.expect("sim");
    let replicas = replicas_with(&sim, &redis, 3, Duration::from_secs(5)).await;
    let id = ended_conversation_ids(&sim, 1)[0];
    for query in ["", "?view=full"] {
        let path = format!("/conversations/{id}{query}");
        let first = replicas[0].get(&path).await;
        assert_eq!(first.status, 200, "{}", first.text());
        for replica in &replicas[1..] {
            // From Redis, then (promoted) from the replica's own tier.
            for _ in 0..2 {
                let reply = replica.get(&path).await;
                assert_eq!(reply.status, 200, "{}", reply.text());
                assert!(
                    reply
                        .header("cache-status")
                        .is_some_and(|s| s.contains("; hit")),
                    "{:?}",
                    reply.header("cache-status")
                );
                assert_eq!(reply.body, first.body);
                assert_eq!(etag(&reply), etag(&first));
            }
        }
    }
    assert_eq!(conversation_calls(&sim), 1);
    let admin = replicas[1].admin().await;
    assert!(shared_cache(&admin)["hits"].as_u64() >= Some(1), "{admin}");
    let metrics = replicas[1].get("/metrics").await.text();
    assert!(
        metrics.contains("genesys_proxy_shared_cache_requests_total{result=\"hit\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("genesys_proxy_shared_cache_flights_total{role=\"led\"}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_whose_leader_fails_fetches_itself() {
    let Some(redis) = RedisServer::start("a_follower_whose_leader_fails") else {
        return;
    };
    let sim = Simulator::start(sim_config()).await.expect("sim");
    let replicas = replicas_with(&sim, &redis, 2, Duration::from_secs(10)).await;
    let ids = ended_conversation_ids(&sim, 2);
    // Both replicas hold the shared token before the fault is set.
    for replica in &replicas {
        assert_eq!(
            replica
                .get(&format!("/conversations/{}", ids[0]))
                .await
                .status,
            200
        );
    }
    let prefix = key_prefix(&redis).await;
    let before = conversation_calls(&sim);
    // The leader's answer is cut short (it fails), after long enough for the follower to
    // find its flight running.
    sim.set_faults(Faults {
        latency_ms: 1_500,
        malformed_responses: 1,
        ..Faults::default()
    });
    let path = format!("/conversations/{}", ids[1]);
    let leader = tokio::spawn({
        let (base, path) = (replicas[0].base.clone(), path.clone());
        async move {
            reqwest::Client::new()
                .get(format!("{base}{path}"))
                .bearer_auth(support::ADMIN_KEY)
                .send()
                .await
                .expect("sent")
                .status()
                .as_u16()
        }
    });
    let marker = flight_marker(&prefix, ids[1]);
    let mut flying = false;
    for _ in 0..200 {
        if redis.command(&["EXISTS", &marker]).as_deref() == Some("(integer) 1") {
            flying = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(flying, "the first replica set the flight marker");
    let follower = replicas[1].get(&path).await;
    assert_ne!(
        leader.await.expect("task"),
        200,
        "the leader's fetch failed"
    );
    // The follower did not wait for its deadline (a 503): it fetched once the leader
    // released the marker.
    assert_eq!(follower.status, 200, "{}", follower.text());
    assert_eq!(conversation_calls(&sim) - before, 2);
    let cache = replicas[1].admin().await;
    let cache = shared_cache(&cache);
    assert_eq!(cache["flights_followed"], 1, "{cache}");
    assert_eq!(cache["flights_followed_in_vain"], 1, "{cache}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_whose_leader_died_answers_by_its_deadline_and_fetches_after() {
    let Some(redis) = RedisServer::start("a_follower_whose_leader_died") else {
        return;
    };
    let sim = Simulator::start(sim_config()).await.expect("sim");
    let replicas = replicas_with(&sim, &redis, 1, Duration::from_secs(1)).await;
    let ids = ended_conversation_ids(&sim, 2);
    assert_eq!(
        replicas[0]
            .get(&format!("/conversations/{}", ids[0]))
            .await
            .status,
        200
    );
    let prefix = key_prefix(&redis).await;
    let before = conversation_calls(&sim);
    // A replica that died mid-fetch left its marker for a minute.
    let marker = flight_marker(&prefix, ids[1]);
    redis
        .command(&["SET", &marker, "gone-replica", "PX", "60000"])
        .expect("marker set");
    let path = format!("/conversations/{}", ids[1]);
    let reply = tokio::time::timeout(Duration::from_secs(10), replicas[0].get(&path))
        .await
        .expect("answered, not hung on the dead leader");
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert!(reply.header("retry-after").is_some());
    // After a few flight timeouts the replica fetches itself, marker or not.
    let mut served = None;
    for _ in 0..100 {
        let reply = replicas[0].get(&path).await;
        if reply.status == 200 {
            served = Some(reply);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served.is_some(), "the conversation was fetched in the end");
    assert_eq!(conversation_calls(&sim) - before, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_redis_stopped_replicas_answer_alone_and_share_again_after_restart() {
    let Some(mut redis) = RedisServer::start("with_redis_stopped_replicas_answer_alone") else {
        return;
    };
    let sim = Simulator::start(SimConfig {
        conversations: 200,
        ..sim_config()
    })
    .await
    .expect("sim");
    let replicas = replicas_with(&sim, &redis, 2, Duration::from_secs(3)).await;
    let ids = ended_conversation_ids(&sim, 4);
    let path = |id: Uuid| format!("/conversations/{id}");
    // One id cached through the first replica, then a hit on the second.
    assert_eq!(replicas[0].get(&path(ids[0])).await.status, 200);
    assert_eq!(replicas[1].get(&path(ids[0])).await.status, 200);
    assert_eq!(conversation_calls(&sim), 1);

    redis.stop();
    for replica in &replicas {
        let cached = replica.get(&path(ids[0])).await;
        assert_eq!(cached.status, 200, "{}", cached.text());
        let cold = replica.get(&path(ids[1])).await;
        assert!(
            cold.status == 200 || (cold.status == 503 && cold.header("retry-after").is_some()),
            "{} {}",
            cold.status,
            cold.text()
        );
    }
    for replica in &replicas {
        wait_for_mode(replica, "local").await;
        let ready = replica.get("/readyz").await.json();
        assert_eq!(
            ready["components"]["shared"]["status"], "degraded",
            "{ready}"
        );
        assert!(shared_cache(&replica.admin().await)["errors"].as_u64() >= Some(1));
    }

    redis.restart();
    for replica in &replicas {
        wait_for_mode(replica, "shared").await;
    }
    let before = conversation_calls(&sim);
    let first = replicas[0].get(&path(ids[2])).await;
    assert_eq!(first.status, 200, "{}", first.text());
    let second = replicas[1].get(&path(ids[2])).await;
    assert_eq!(second.status, 200, "{}", second.text());
    assert_eq!((&second.body, etag(&second)), (&first.body, etag(&first)));
    assert_eq!(conversation_calls(&sim) - before, 1, "shared again");
}
