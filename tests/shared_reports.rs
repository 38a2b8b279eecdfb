//! Shared mode's report cache: replicas that share a Redis keep upstream details pages and
//! aggregates responses in it behind their own moka tier, and coalesce their fetches
//! across replicas. Proven over HTTP against the simulator's call counters: three replicas
//! polled at once for the same reports make the upstream calls of one; a page one replica
//! fetched is answered by the others byte for byte without an upstream call; a cursor one
//! replica issued is followed on another; with Redis stopped, reports still answer.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use genesys_proxy::Settings;
use genesys_sim::{Faults, Simulator, endpoint};
use support::redis::{self, RedisServer, Replica};
use support::{Reply, at, big_org, proxy_settings, rfc};

/// A search over four days, several pages long.
fn search_path() -> String {
    format!(
        "/reports/search?from={}&to={}&page_size=10",
        rfc(at(5, 0)),
        rfc(at(1, 0))
    )
}

/// A search over 40 days (two upstream chunks), whose first page takes several upstream
/// pages.
fn long_search_path() -> String {
    format!(
        "/reports/search?from={}&to={}&page_size=200",
        rfc(at(41, 0)),
        rfc(at(1, 0))
    )
}

/// Aggregates over 39 days: two upstream chunks (at most 31 days each).
fn aggregates_path() -> String {
    format!(
        "/reports/aggregates?from={}&to={}&granularity=PT6H&group_by=queue_id&metrics=offered,handle",
        rfc(at(40, 0)),
        rfc(at(1, 0))
    )
}

/// The upstream analytics calls made so far: (details queries, aggregates queries).
fn analytics_calls(sim: &Simulator) -> (u64, u64) {
    let counters = sim.counters();
    (
        counters.arrivals_to(endpoint::DETAILS_QUERY),
        counters.arrivals_to(endpoint::AGGREGATES_QUERY),
    )
}

/// What the tests change in every replica's settings: requests (and the fetches they
/// lead) may last long on a loaded machine, and a slow Redis answer is not what is tested
/// here (tests/shared_degrade.rs is).
fn patient(settings: &mut Settings) {
    settings.server.request_timeout_ms = 30_000;
    settings.upstream.request_timeout_ms = 10_000;
    settings.redis.timeout_ms = 2_000;
}

async fn replicas(sim: &Simulator, redis: &RedisServer, n: usize) -> Vec<Arc<Replica>> {
    redis::replicas_with(sim, redis, n, patient).await
}

fn assert_ok(reply: &Reply) {
    assert_eq!(reply.status, 200, "{}", reply.text());
}

/// Sends `per_path` GETs of each path, each path's round robin over `replicas`, all at
/// once; every answer must be a 200, and the answers to one path identical: their bodies
/// by path.
async fn poll_at_once(
    replicas: &[Arc<Replica>],
    paths: &[String],
    per_path: usize,
) -> BTreeMap<String, Vec<u8>> {
    let requests = (0..per_path * paths.len()).map(|i| {
        let path = paths[i % paths.len()].clone();
        let replica = replicas[(i / paths.len()) % replicas.len()].clone();
        async move { (path.clone(), replica.get(&path).await) }
    });
    let replies = futures_util::future::join_all(requests).await;
    let mut bodies = BTreeMap::new();
    for (path, reply) in replies {
        assert_ok(&reply);
        let first = bodies
            .entry(path.clone())
            .or_insert_with(|| reply.body.to_vec());
        assert_eq!(
            *first,
            reply.body.to_vec(),
            "every answer to {path} is the same"
        );
    }
    bodies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_polled_at_once_make_the_upstream_calls_of_one() {
    let Some(redis) = RedisServer::start("three_replicas_polled_at_once_for_reports") else {
        return;
    };
    let paths = [search_path(), long_search_path(), aggregates_path()];
    // Long enough that requests still arriving find the fetches running somewhere.
    let latency = Faults {
        latency_ms: 300,
        ..Faults::default()
    };

    // What one replica (no Redis) calls for these polls.
    let alone = Simulator::start(big_org()).await.expect("sim");
    alone.set_faults(latency.clone());
    let mut settings = proxy_settings();
    patient(&mut settings);
    let replica = Arc::new(Replica::start(&alone, settings).await);
    let reference = poll_at_once(&[replica], &paths, 30).await;
    let one = analytics_calls(&alone);
    assert!(one.0 >= 3 && one.1 >= 2, "{one:?}");

    // Three replicas sharing Redis, each polled as often, against the same data.
    let sim = Simulator::start(big_org()).await.expect("sim");
    sim.set_faults(latency);
    let replicas = replicas(&sim, &redis, 3).await;
    let bodies = poll_at_once(&replicas, &paths, 90).await;
    let mut shared = Vec::new();
    for replica in &replicas {
        shared.push(replica.admin().await["shared"]["cache"].clone());
    }
    assert_eq!(
        analytics_calls(&sim),
        one,
        "three replicas made one replica's upstream calls: {shared:?}"
    );
    assert_eq!(bodies, reference, "and answered what one replica answers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_report_fetched_through_one_replica_is_answered_by_the_others_without_upstream_calls() {
    let Some(redis) = RedisServer::start("a_report_fetched_through_one_replica") else {
        return;
    };
    let sim = Simulator::start(big_org()).await.expect("sim");
    let replicas = replicas(&sim, &redis, 3).await;
    for path in [search_path(), aggregates_path()] {
        let first = replicas[0].get(&path).await;
        assert_ok(&first);
        let calls = analytics_calls(&sim);
        for replica in &replicas[1..] {
            // From Redis, then (promoted) from the replica's own tier.
            for _ in 0..2 {
                let reply = replica.get(&path).await;
                assert_ok(&reply);
                assert_eq!(reply.body, first.body, "{path}: the same bytes");
            }
        }
        assert_eq!(analytics_calls(&sim), calls, "{path}: no upstream call");
    }
    for replica in &replicas[1..] {
        let cache = &replica.admin().await["shared"]["cache"];
        assert!(cache["hits"].as_u64().expect("hits") >= 2, "{cache}");
    }
    // Entries are named by the digest of the upstream query, however long the query.
    for namespace in ["report-pages:v1", "report-aggregates:v1"] {
        let keys = redis
            .command(&[
                "--raw",
                "KEYS",
                &format!("genesys-proxy:*:cache:{namespace}:*"),
            ])
            .expect("KEYS");
        let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
        assert!(!keys.is_empty(), "{namespace} entries in Redis");
        for key in keys {
            let digest = key.rsplit(':').next().expect("a digest");
            assert!(
                digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
                "{key}"
            );
            // It expires with the entry's stale end.
            let ttl: i64 = redis
                .command(&["--raw", "PTTL", key])
                .and_then(|t| t.parse().ok())
                .expect("PTTL");
            assert!(ttl > 0, "{key} expires ({ttl})");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cursor_issued_by_one_replica_is_followed_on_another() {
    let Some(redis) = RedisServer::start("a_cursor_issued_by_one_replica") else {
        return;
    };
    let sim = Simulator::start(big_org()).await.expect("sim");
    let replicas = replicas(&sim, &redis, 2).await;
    let (a, b) = (&replicas[0], &replicas[1]);
    let path = search_path();
    let first = a.get(&path).await;
    assert_ok(&first);
    let first = first.json();
    let cursor = first["next_cursor"].as_str().expect("more pages");
    let next_path = format!("{path}&cursor={cursor}");

    // B follows A's cursor, reading the upstream pages A fetched from Redis.
    let calls = analytics_calls(&sim);
    let next = b.get(&next_path).await;
    assert_ok(&next);
    assert_eq!(analytics_calls(&sim), calls, "no upstream call");
    let ids = |page: &serde_json::Value| -> Vec<String> {
        page["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|r| r["id"].as_str().expect("id").to_owned())
            .collect()
    };
    let (first_ids, next_ids) = (ids(&first), ids(&next.json()));
    assert_eq!(next_ids.len(), 10, "the next full page");
    assert!(
        next_ids.iter().all(|id| !first_ids.contains(id)),
        "no hit of the first page again"
    );
    // The replica that issued the cursor answers the same page, with the same next one.
    let again = a.get(&next_path).await;
    assert_ok(&again);
    assert_eq!(again.body, next.body, "the same next page on both replicas");
    assert_eq!(analytics_calls(&sim), calls, "no upstream call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_redis_stopped_reports_still_answer_from_each_replica() {
    let Some(mut redis) = RedisServer::start("with_redis_stopped_reports_still_answer") else {
        return;
    };
    let sim = Simulator::start(big_org()).await.expect("sim");
    let replicas = redis::replicas_with(&sim, &redis, 2, |settings| {
        settings.server.request_timeout_ms = 30_000;
        settings.upstream.request_timeout_ms = 10_000;
    })
    .await;
    let paths = [search_path(), aggregates_path()];
    let mut before = Vec::new();
    for path in &paths {
        let reply = replicas[0].get(path).await;
        assert_ok(&reply);
        before.push(reply.body);
    }
    redis.stop();
    let calls = analytics_calls(&sim);
    for (path, body) in paths.iter().zip(&before) {
        // Replica B never cached these: it fetches them itself, and answers the same.
        let reply = replicas[1].get(path).await;
        assert_ok(&reply);
        assert_eq!(reply.body, *body, "{path}");
        // Replica A answers from its own tier.
        let reply = replicas[0].get(path).await;
        assert_ok(&reply);
        assert_eq!(reply.body, *body, "{path}");
    }
    let (details, aggregates) = analytics_calls(&sim);
    assert!(
        details > calls.0 && aggregates > calls.1,
        "replica B went upstream on its own: {calls:?} -> {:?}",
        (details, aggregates)
    );
}
