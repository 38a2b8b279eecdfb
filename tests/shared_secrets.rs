//! Shared mode keeps its secrets: while replicas share a token through Redis, refresh it
//! after a 401, lose Redis and rejoin it, no issued Genesys token and not the client
//! secret appears in the logs (captured at TRACE, as JSON and as text), in any Redis value,
//! or in `/metrics` and `/admin/cache`.

mod support;

use genesys_sim::Simulator;
use support::capture::logs_at_trace;
use support::redis::{RedisServer, replicas};
use support::sim_config;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_token_leaves_a_shared_replica_through_logs_redis_or_responses() {
    let Some(mut redis) = RedisServer::start("no_token_leaves_a_shared_replica") else {
        return;
    };
    let capture = logs_at_trace();
    let sim = Simulator::start(sim_config()).await.expect("sim");
    let replicas = replicas(&sim, &redis, 2).await;
    let ids: Vec<String> = sim
        .data()
        .conversations
        .iter()
        .take(8)
        .map(|c| format!("/conversations/{}", c.id))
        .collect();
    let mut shown = String::new();
    let mut redis_values = Vec::new();
    let mut tokens = std::collections::BTreeSet::new();
    for (i, path) in ids.iter().enumerate() {
        // Revoking forgets the tokens: note them as they are issued.
        tokens.extend(sim.state().tokens.issued());
        match i {
            // A 401: the token is dropped from Redis and a new one shared.
            2 => sim.revoke_tokens(),
            // Redis goes away, then comes back.
            4 => redis.stop(),
            6 => redis.restart(),
            _ => {}
        }
        let replica = &replicas[i % 2];
        assert_eq!(replica.get(path).await.status, 200);
        shown.push_str(&replica.get("/metrics").await.text());
        shown.push_str(&replica.get("/admin/cache").await.text());
        shown.push_str(&replica.get("/readyz").await.text());
        if let Some(keys) = redis.command(&["--raw", "KEYS", "*"]) {
            for key in keys.lines().filter(|k| !k.is_empty()) {
                redis_values.push(redis.raw(key));
            }
        }
    }
    let logs = capture.text();
    assert!(logs.contains("shared mode"), "logs were captured");
    tokens.extend(sim.state().tokens.issued());
    assert!(tokens.len() >= 2, "{} tokens", tokens.len());
    let mut secrets: Vec<String> = tokens.into_iter().collect();
    secrets.push(genesys_sim::config::DEFAULT_CLIENT_SECRET.to_owned());
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "a secret is in the logs");
        assert!(
            !shown.contains(secret.as_str()),
            "a secret is in a response"
        );
        for value in &redis_values {
            assert!(
                !value.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "a secret is in Redis in clear"
            );
        }
    }
}
