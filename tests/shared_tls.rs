//! Shared mode over TLS (`rediss://`): replicas that trust Redis' private CA
//! (`redis.ca_file`) share one token and one cache through it, with mutual TLS too
//! (`redis.client_cert_file` / `redis.client_key_file`); a replica that does not trust
//! Redis' certificate, or that Redis does not trust, runs on local state and says why on
//! `/readyz` and `/admin/cache`, still answering; unusable TLS files stop the start with a
//! message naming the setting. The CA and certificates are made by `openssl` at test time.

mod support;

use std::sync::Arc;

use genesys_proxy::Settings;
use genesys_sim::{Simulator, endpoint};
use support::redis::{RedisServer, Replica, TestDir, TlsFiles, shared_settings};
use support::{eventually, sim_config};

fn paths(sim: &Simulator, n: usize) -> Vec<String> {
    sim.data()
        .conversations
        .iter()
        .take(n)
        .map(|c| format!("/conversations/{}", c.id))
        .collect()
}

/// Shared settings for `redis` (a TLS server) trusting `ca`.
fn tls_settings(redis: &RedisServer, ca: &std::path::Path) -> Settings {
    let mut settings = shared_settings(redis);
    assert!(
        settings
            .redis
            .url
            .as_deref()
            .is_some_and(|u| u.starts_with("rediss://"))
    );
    settings.redis.ca_file = Some(ca.to_owned());
    settings
}

async fn mode_becomes(replica: &Replica, mode: &str) -> serde_json::Value {
    eventually(&format!("the replica's shared tier is {mode}"), || async {
        replica.admin().await["shared"]["mode"] == mode
    })
    .await;
    replica.admin().await
}

/// Waits until the replica runs locally for a reason that contains `reason` (at first a
/// slow handshake may only have timed out); its `/admin/cache`.
async fn local_because(replica: &Replica, reason: &str) -> serde_json::Value {
    eventually(
        &format!("the replica runs locally because of {reason}"),
        || async {
            let admin = replica.admin().await;
            admin["shared"]["mode"] == "local"
                && admin["shared"]["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains(reason))
        },
    )
    .await;
    replica.admin().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_that_trust_the_private_ca_share_one_token_over_tls() {
    let test = "replicas_that_trust_the_private_ca_share_one_token_over_tls";
    let Some(files) = TlsFiles::generate(test) else {
        return;
    };
    let Some(redis) = RedisServer::start_tls(test, &files, false) else {
        return;
    };
    let sim = Simulator::start(sim_config()).await.expect("sim");
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let replica = Replica::start(&sim, tls_settings(&redis, &files.ca)).await;
        replicas.push(Arc::new(replica));
    }
    for replica in &replicas {
        mode_becomes(replica, "shared").await;
    }
    // Cold replicas, requests at once on both: one token request in all.
    let paths = paths(&sim, 12);
    let requests = paths.iter().enumerate().map(|(i, path)| {
        let replica = &replicas[i % 2];
        async move { replica.get(path).await }
    });
    for reply in futures_util::future::join_all(requests).await {
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    assert_eq!(
        sim.counters().tokens_issued,
        1,
        "one token for both replicas"
    );
    for replica in &replicas {
        let admin = replica.admin().await;
        assert_eq!(admin["shared"]["mode"], "shared", "{admin}");
        assert_eq!(
            admin["shared"]["redis"],
            redis.url(),
            "the URL shown: {admin}"
        );
        assert_eq!(
            admin["shared"]["token"]["this_replica_uses_it"], true,
            "{admin}"
        );
        let ready = replica.get("/readyz").await;
        assert_eq!(ready.status, 200);
        assert_eq!(ready.json()["components"]["shared"]["status"], "ok");
    }
    // The token is in that Redis (read over TLS by redis-cli).
    assert!(
        redis.key_ending(":token").is_some(),
        "the token is in Redis"
    );
    // And the cache: an ended conversation fetched through one replica is a hit on the
    // other, from Redis, with one upstream call in all (one neither fetched yet).
    let now = sim.state().now();
    let id = sim
        .data()
        .conversations
        .iter()
        .skip(paths.len())
        .find(|c| c.is_over_at(now))
        .map(|c| c.id)
        .expect("an ended conversation");
    let path = format!("/conversations/{id}?view=full");
    let calls = || sim.counters().calls_to(endpoint::GET_CONVERSATION);
    let before = calls();
    let first = replicas[0].get(&path).await;
    assert_eq!(first.status, 200, "{}", first.text());
    let second = replicas[1].get(&path).await;
    assert_eq!(second.status, 200, "{}", second.text());
    assert!(
        second
            .header("cache-status")
            .is_some_and(|s| s.contains("; hit")),
        "{:?}",
        second.header("cache-status")
    );
    assert_eq!(second.body, first.body);
    assert_eq!(calls() - before, 1, "one upstream call for both replicas");
    let admin = replicas[1].admin().await;
    assert!(
        admin["shared"]["cache"]["hits"].as_u64() >= Some(1),
        "a shared-cache hit: {admin}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_that_does_not_trust_redis_runs_locally_and_says_why() {
    let test = "a_replica_that_does_not_trust_redis_runs_locally_and_says_why";
    let Some(files) = TlsFiles::generate(test) else {
        return;
    };
    let Some(redis) = RedisServer::start_tls(test, &files, false) else {
        return;
    };
    let sim = Simulator::start(sim_config()).await.expect("sim");
    // Its CA did not sign Redis' certificate.
    let replica = Replica::start(&sim, tls_settings(&redis, &files.other_ca)).await;
    let paths = paths(&sim, 2);
    // It answers, on a token of its own.
    let reply = replica.get(&paths[0]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let admin = local_because(&replica, "UnknownIssuer").await;
    let detail = admin["shared"]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.starts_with("connection failed (") && detail.contains("certificate"),
        "the reason names the untrusted certificate: {admin}"
    );
    let ready = replica.get("/readyz").await;
    assert_eq!(ready.status, 200, "a degraded tier still serves");
    let shared = &ready.json()["components"]["shared"];
    assert_eq!(shared["status"], "degraded", "{shared}");
    assert!(
        shared["detail"]
            .as_str()
            .is_some_and(|d| d.contains("UnknownIssuer")),
        "{shared}"
    );
    assert_eq!(replica.get(&paths[1]).await.status, 200);
    assert_eq!(sim.counters().tokens_issued, 1);
    // Redis holds nothing of it.
    assert_eq!(redis.command(&["DBSIZE"]).as_deref(), Some("(integer) 0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_mutual_tls_a_replica_presents_its_certificate_and_one_without_is_refused() {
    let test = "with_mutual_tls_a_replica_presents_its_certificate";
    let Some(files) = TlsFiles::generate(test) else {
        return;
    };
    let Some(redis) = RedisServer::start_tls(test, &files, true) else {
        return;
    };
    let sim = Simulator::start(sim_config()).await.expect("sim");
    let mut with_certificate = tls_settings(&redis, &files.ca);
    with_certificate.redis.client_cert_file = Some(files.client_cert.clone());
    with_certificate.redis.client_key_file = Some(files.client_key.clone());
    let trusted = Replica::start(&sim, with_certificate).await;
    let refused = Replica::start(&sim, tls_settings(&redis, &files.ca)).await;
    mode_becomes(&trusted, "shared").await;
    // Redis refuses the handshake without a client certificate.
    local_because(&refused, "CertificateRequired").await;
    let paths = paths(&sim, 2);
    assert_eq!(trusted.get(&paths[0]).await.status, 200);
    assert_eq!(refused.get(&paths[1]).await.status, 200);
    assert!(
        redis.key_ending(":token").is_some(),
        "the token is in Redis"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_reach_a_tls_master_that_the_sentinel_names() {
    let test = "replicas_reach_a_tls_master_that_the_sentinel_names";
    let Some(files) = TlsFiles::generate(test) else {
        return;
    };
    let Some(master) = RedisServer::start_tls(test, &files, false) else {
        return;
    };
    let Some(sentinel) = RedisServer::start_sentinel(test, &master, "tlsmaster") else {
        return;
    };
    let sim = Simulator::start(sim_config()).await.expect("sim");
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let mut settings = shared_settings(&sentinel);
        settings.redis.url = Some("rediss://tlsmaster".into());
        settings.redis.ca_file = Some(files.ca.clone());
        settings.redis.sentinel.master = Some("tlsmaster".into());
        settings.redis.sentinel.nodes = vec![sentinel.url()];
        replicas.push(Arc::new(Replica::start(&sim, settings).await));
    }
    for replica in &replicas {
        mode_becomes(replica, "shared").await;
    }
    let paths = paths(&sim, 4);
    for (i, path) in paths.iter().enumerate() {
        assert_eq!(replicas[i % 2].get(path).await.status, 200);
    }
    assert_eq!(
        sim.counters().tokens_issued,
        1,
        "one token for both replicas"
    );
    assert!(
        master.key_ending(":token").is_some(),
        "the token is in Redis"
    );
}

/// Settings for `rediss://` with `ca_file`, as the start validates them.
fn validated(adjust: impl FnOnce(&mut Settings)) -> Result<(), String> {
    let mut settings = support::proxy_settings();
    settings.redis.url = Some("rediss://:hunter2@redis.internal:6380/0".into());
    adjust(&mut settings);
    settings.validate()
}

/// A change to the settings, with a case's name and what its error must name.
type Change<'a> = Box<dyn FnOnce(&mut Settings) + 'a>;

#[test]
fn unusable_tls_files_stop_the_start_naming_the_setting() {
    let Some(files) = TlsFiles::generate("unusable_tls_files_stop_the_start") else {
        return;
    };
    let dir = TestDir::new("tls-errors");
    let garbled = dir.path().join("garbled.pem");
    std::fs::write(
        &garbled,
        "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
    )
    .expect("written");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").expect("written");
    let missing = dir.path().join("missing.pem");

    assert_eq!(
        validated(|s| s.redis.ca_file = Some(files.ca.clone())),
        Ok(())
    );
    let cases: Vec<(&str, Change, &str)> = vec![
        (
            "a file that is not there",
            Box::new(|s| s.redis.ca_file = Some(missing.clone())),
            "redis.ca_file",
        ),
        (
            "a file without a certificate",
            Box::new(|s| s.redis.ca_file = Some(empty.clone())),
            "redis.ca_file",
        ),
        (
            "a certificate that is not PEM",
            Box::new(|s| s.redis.ca_file = Some(garbled.clone())),
            "redis.ca_file",
        ),
        (
            "a certificate where the key should be",
            Box::new(|s| {
                s.redis.client_cert_file = Some(files.client_cert.clone());
                s.redis.client_key_file = Some(files.client_cert.clone());
            }),
            "redis.client_key_file",
        ),
        (
            "a certificate without its key",
            Box::new(|s| s.redis.client_cert_file = Some(files.client_cert.clone())),
            "redis.client_key_file",
        ),
        (
            "a CA for a plain redis:// URL",
            Box::new(|s| {
                s.redis.url = Some("redis://:hunter2@redis.internal:6379".into());
                s.redis.ca_file = Some(files.ca.clone());
            }),
            "rediss://",
        ),
    ];
    for (case, adjust, named) in cases {
        let error = validated(adjust).expect_err(case);
        eprintln!("{case}: {error}");
        assert!(error.contains(named), "{case}: {error}");
        assert!(!error.contains("hunter2"), "{case}: {error}");
    }
}
