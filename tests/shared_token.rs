//! Shared mode's token: replicas that share a Redis obtain one Genesys token between them
//! (single-flight across replicas under Redis' lock), Redis holds it sealed (never in
//! clear), a 401 on one replica drops it for all, and with Redis gone each replica falls
//! back to a token of its own and rejoins when Redis is back (sharing one of those); a
//! Redis restarted empty gets the replicas' shared token back, so a replica that starts
//! later still finds it.

mod support;

use std::time::Duration;

use genesys_sim::Simulator;
use support::redis::{RedisServer, Replica, replicas, shared_settings};
use support::{conversation_ids, sim_config};

/// Every key Redis holds, with its raw value (strings only).
fn redis_values(redis: &RedisServer) -> Vec<(String, Vec<u8>)> {
    let keys = redis.command(&["--raw", "KEYS", "*"]).unwrap_or_default();
    keys.lines()
        .filter(|k| !k.is_empty())
        .map(|k| (k.to_owned(), redis.raw(k)))
        .collect()
}

fn assert_no_token_in_clear(sim: &Simulator, redis: &RedisServer) {
    let tokens = sim.state().tokens.issued();
    assert!(!tokens.is_empty());
    for (key, value) in redis_values(redis) {
        for token in &tokens {
            assert!(
                !value.windows(token.len()).any(|w| w == token.as_bytes()),
                "the token is in clear under {key}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_obtain_one_token_which_redis_holds_sealed() {
    let Some(redis) = RedisServer::start("three_replicas_obtain_one_token") else {
        return;
    };
    let sim = Simulator::start(sim_config()).await.expect("sim");
    let replicas = replicas(&sim, &redis, 3).await;
    // Cold replicas, many requests at once on each: one token request in all.
    let ids = conversation_ids(&sim, 30);
    let requests = ids.iter().enumerate().map(|(i, id)| {
        let replica = &replicas[i % 3];
        async move { replica.get(&format!("/conversations/{id}")).await }
    });
    for reply in futures_util::future::join_all(requests).await {
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    assert_eq!(
        sim.counters().tokens_issued,
        1,
        "one token for three replicas"
    );
    let mut requests = 0;
    for replica in &replicas {
        let admin = replica.admin().await;
        assert_eq!(admin["shared"]["mode"], "shared", "{admin}");
        assert_eq!(admin["token"]["has_token"], true);
        // One token: Redis holds it, and every replica uses that one.
        assert_eq!(admin["shared"]["token"]["held_in_redis"], true, "{admin}");
        assert_eq!(
            admin["shared"]["token"]["this_replica_uses_it"], true,
            "{admin}"
        );
        // One budget: the window mirror in Redis, the same for all.
        assert_eq!(
            admin["shared"]["budget"]["window_allowed"], 300.0,
            "{admin}"
        );
        requests += admin["token"]["requests"].as_u64().expect("requests");
    }
    assert_eq!(requests, 1, "one replica asked the login host");
    let values = redis_values(&redis);
    assert!(
        values
            .iter()
            .any(|(k, v)| k.ends_with(":token") && !v.is_empty()),
        "the token is in Redis: {:?}",
        values.iter().map(|(k, _)| k).collect::<Vec<_>>()
    );
    assert_no_token_in_clear(&sim, &redis);
    // Readiness and metrics show the shared tier.
    let ready = replicas[0].get("/readyz").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["components"]["shared"]["status"], "ok");
    // Each replica counts the others at its next heartbeat.
    for _ in 0..100 {
        if replicas[1].admin().await["shared"]["live_replicas"] == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = replicas[1].get("/metrics").await.text();
    assert!(
        metrics
            .lines()
            .any(|l| l == "genesys_proxy_shared_available 1"),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l == "genesys_proxy_shared_live_replicas 3"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_401_on_one_replica_drops_the_shared_token_for_all() {
    let Some(redis) = RedisServer::start("a_401_drops_the_shared_token") else {
        return;
    };
    let sim = Simulator::start(sim_config()).await.expect("sim");
    let replicas = replicas(&sim, &redis, 2).await;
    let ids = conversation_ids(&sim, 4);
    assert_eq!(
        replicas[0]
            .get(&format!("/conversations/{}", ids[0]))
            .await
            .status,
        200
    );
    assert_eq!(
        replicas[1]
            .get(&format!("/conversations/{}", ids[1]))
            .await
            .status,
        200
    );
    assert_eq!(sim.counters().tokens_issued, 1);
    // Genesys forgets the token: the first replica to see the 401 gets a new one ...
    sim.revoke_tokens();
    assert_eq!(
        replicas[0]
            .get(&format!("/conversations/{}", ids[2]))
            .await
            .status,
        200
    );
    assert_eq!(sim.counters().tokens_issued, 2);
    // ... and the other, refused with its old one, takes that one from Redis.
    assert_eq!(
        replicas[1]
            .get(&format!("/conversations/{}", ids[3]))
            .await
            .status,
        200
    );
    assert_eq!(sim.counters().tokens_issued, 2, "no third token");
    assert_no_token_in_clear(&sim, &redis);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_redis_each_replica_holds_its_own_token_and_rejoins_when_it_returns() {
    let Some(mut redis) = RedisServer::start("without_redis_each_replica_holds_its_own_token")
    else {
        return;
    };
    let sim = Simulator::start(sim_config()).await.expect("sim");
    redis.stop();
    let replicas = replicas(&sim, &redis, 2).await;
    let ids = conversation_ids(&sim, 4);
    // Redis is down from the start: each replica answers, on a token of its own.
    for (i, replica) in replicas.iter().enumerate() {
        let reply = replica.get(&format!("/conversations/{}", ids[i])).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    assert_eq!(sim.counters().tokens_issued, 2);
    for replica in &replicas {
        let admin = replica.admin().await;
        assert_eq!(admin["shared"]["mode"], "local", "{admin}");
        let ready = replica.get("/readyz").await;
        assert_eq!(ready.status, 200, "a degraded tier still serves");
        assert_eq!(ready.json()["components"]["shared"]["status"], "degraded");
    }
    // Redis returns: the heartbeat finds it and the replicas rejoin.
    redis.restart();
    for replica in &replicas {
        let mut mode = String::new();
        for _ in 0..100 {
            mode = replica.admin().await["shared"]["mode"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if mode == "shared" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(mode, "shared");
        assert!(replica.admin().await["shared"]["rejoins"].as_u64() >= Some(1));
    }
    // Their next calls rejoin the shared token: the first stores its own token in Redis
    // (no new token is asked for), the other takes that one.
    for (i, replica) in replicas.iter().enumerate() {
        let reply = replica.get(&format!("/conversations/{}", ids[2 + i])).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    assert_eq!(sim.counters().tokens_issued, 2, "no third token");
    for replica in &replicas {
        let admin = replica.admin().await;
        assert_eq!(
            admin["shared"]["token"]["this_replica_uses_it"], true,
            "{admin}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_restarted_empty_gets_the_shared_token_back_for_replicas_that_start_later() {
    let Some(mut redis) = RedisServer::start("a_redis_restarted_empty_gets_the_token_back") else {
        return;
    };
    let sim = Simulator::start(sim_config()).await.expect("sim");
    let replicas = replicas(&sim, &redis, 2).await;
    let ids = conversation_ids(&sim, 5);
    for (i, replica) in replicas.iter().enumerate() {
        let reply = replica.get(&format!("/conversations/{}", ids[i])).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    assert_eq!(sim.counters().tokens_issued, 1);
    // Redis restarts without persistence: the sealed token is gone from it, while both
    // replicas still hold it.
    redis.stop();
    redis.restart();
    for replica in &replicas {
        let mut admin = serde_json::Value::Null;
        for _ in 0..200 {
            admin = replica.admin().await;
            if admin["shared"]["mode"] == "shared" && admin["shared"]["rejoins"].as_u64() >= Some(1)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(admin["shared"]["mode"], "shared", "{admin}");
        assert!(admin["shared"]["rejoins"].as_u64() >= Some(1), "{admin}");
    }
    // Their next calls put the token they hold back into Redis (no new token).
    for (i, replica) in replicas.iter().enumerate() {
        let reply = replica.get(&format!("/conversations/{}", ids[2 + i])).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    // A replica that starts now finds it there.
    let late = Replica::start(&sim, shared_settings(&redis)).await;
    let reply = late.get(&format!("/conversations/{}", ids[4])).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        sim.counters().tokens_issued,
        1,
        "one token for the three replicas, across Redis' restart"
    );
    for replica in replicas.iter().map(AsRef::as_ref).chain([&late]) {
        let admin = replica.admin().await;
        assert_eq!(admin["shared"]["token"]["held_in_redis"], true, "{admin}");
        assert_eq!(
            admin["shared"]["token"]["this_replica_uses_it"], true,
            "{admin}"
        );
    }
    assert_no_token_in_clear(&sim, &redis);
}
