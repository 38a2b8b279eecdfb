//! Shared mode keeps its secrets: while replicas share a token through Redis, refresh it
//! after a 401, lose Redis and rejoin it, no issued Genesys token and not the client
//! secret appears in the logs (captured at TRACE, as JSON and as text), in any Redis value,
//! or in `/metrics` and `/admin/cache`.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use genesys_sim::Simulator;
use support::redis::{RedisServer, replicas};
use support::sim_config;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Self;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_token_leaves_a_shared_replica_through_logs_redis_or_responses() {
    let Some(mut redis) = RedisServer::start("no_token_leaves_a_shared_replica") else {
        return;
    };
    let capture = Capture::default();
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_span_list(true)
                .with_writer(capture.clone()),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_span_events(FmtSpan::NEW | FmtSpan::CLOSE)
                .with_writer(capture.clone()),
        )
        .with(LevelFilter::TRACE)
        .try_init()
        .expect("this file's only subscriber");
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
    let logs = String::from_utf8(capture.0.lock().expect("lock").clone()).expect("utf-8");
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
