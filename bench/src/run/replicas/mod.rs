//! Scenario 7, replicas (issue 19): proxies that share a `redis-server` of the run's own
//! ([`super::redis`]). Three parts, one table each:
//!
//! - [`hits`]: cache-hit throughput of one replica with and without `[redis] url`
//!   (closed loop, the hit scenario's method and load generator, in rounds): first-tier
//!   hits must not slow down;
//! - [`second_tier`]: the latency of a replica answering a conversation another replica
//!   already fetched, with the `Cache-Status` it answered and the upstream calls it made,
//!   beside a cold fetch and a first-tier hit (this measures whatever the proxy does: a
//!   shared cache tier shows as hits without upstream calls, no shared tier as misses);
//! - [`budget`]: the budget scenario's 10x oversubscribed load spread over three replicas
//!   sharing Redis, against a simulator enforcing the budget per token: upstream calls per
//!   minute against the budget, the share used, upstream 429s and client statuses.
//!
//! Every replica runs with `[notifications] mode = "off"` (the wallboard scenario measures
//! notifications). Hard invariants: every answer of the hit runs is a hit, no upstream or client 429 in
//! the budget run, every replica in shared mode when its run ends.

mod budget;
mod hits;
mod second_tier;

use std::fmt::Write as _;

use anyhow::{Context as _, Result};
use chrono::Utc;

use super::Session;
use super::proxy::{Key, Proxy, start_proxy};
use super::redis::{Redis, version};
use super::sim::{list_conversations, start_sim};
use super::{LOAD_CPU, SERVER_CPU};
use crate::Control;

/// The budget of the hit and second-tier runs: never in the way.
const GENEROUS_BUDGET: &str = "[budget]\nrate = 1000000\nburst = 100000\nmax_concurrency = 64\n";
/// Every replica of this scenario polls (the wallboard scenario measures notifications):
/// no subscription calls among the upstream calls counted, no pushed updates.
const NOTIFICATIONS_OFF: &str = "[notifications]\nmode = \"off\"\n";

/// The `[redis]` section of a replica: `url`, and a key prefix of the part's own, so the
/// parts (each with its own simulator, hence its own token) share nothing.
fn redis_section(redis: &Redis, key_prefix: &str) -> String {
    format!(
        "[redis]\nurl = \"{}\"\nkey_prefix = \"{key_prefix}\"\n",
        redis.url
    )
}

/// What a replica's `GET /admin/cache` says of shared mode: its mode (`shared`, `local`)
/// and the replicas it knows alive, as `mode (N live)`; `-` when it says nothing.
pub(crate) async fn shared_mode(http: &Control, proxy: &Proxy, key: &Key) -> Result<String> {
    let answer = http
        .get(
            &format!("{}/admin/cache", proxy.base),
            &[("authorization", &key.bearer)],
        )
        .await?;
    let v = answer.json()?;
    let shared = &v["shared"];
    Ok(match shared["mode"].as_str() {
        Some(mode) => format!(
            "{mode} ({} live)",
            shared["live_replicas"]
                .as_u64()
                .map_or("?".to_owned(), |n| n.to_string())
        ),
        None => "-".to_owned(),
    })
}

/// Records a failure unless every replica of `modes` was in shared mode.
fn require_shared(failures: &mut Vec<String>, part: &str, modes: &[(String, String)]) {
    for (name, mode) in modes {
        if !mode.starts_with("shared") {
            failures.push(format!(
                "replicas, {part}: {name} was not in shared mode at the end ({mode})"
            ));
        }
    }
}

/// Scenario 7: starts Redis, then the three parts; writes tables 7a, 7b and 7c.
pub(crate) async fn scenario_replicas(session: &mut Session<'_>, key: &Key) -> Result<()> {
    let (o, http, out, failures) = session.parts();
    let redis = Redis::start(o, Some(SERVER_CPU)).await?;
    let _ = writeln!(
        out,
        "## 7. Replicas (issue 19): proxies sharing one Redis ({})\n",
        version(o)
    );
    // One simulator without an effective limit for parts a and b.
    let sim = start_sim(
        o,
        http,
        "sim-replicas",
        Some(LOAD_CPU),
        &[
            "--conversations",
            "20000",
            "--days",
            "30",
            "--rate-limit",
            "100000000",
            "--max-page-size",
            "10000",
            "--interval-matching",
            "exact",
        ],
    )
    .await?;
    let listed = list_conversations(http, &sim, 30).await?;
    // Settled conversations (ended days ago: fresh for hours once fetched), in a shuffled
    // order: the hit id, then the ids of the second-tier run.
    let old = Utc::now() - chrono::Duration::days(3);
    let mut settled: Vec<String> = listed
        .iter()
        .filter(|c| c.ended && c.start < old)
        .map(|c| c.id.clone())
        .collect();
    fastrand::seed(19);
    fastrand::shuffle(&mut settled);
    let hit_id = settled.first().context("no settled conversation")?.clone();
    let tier_ids: Vec<String> = settled
        .iter()
        .skip(1)
        .take(o.second_tier_ids)
        .cloned()
        .collect();

    let alone_sections = format!("{GENEROUS_BUDGET}\n{NOTIFICATIONS_OFF}");
    let shared = format!("{alone_sections}\n{}", redis_section(&redis, "bench-cache"));
    let alone = start_proxy(
        o,
        http,
        "replica-alone",
        Some(SERVER_CPU),
        &sim,
        key,
        &alone_sections,
    )
    .await?;
    let replica_a = start_proxy(o, http, "replica-a", Some(SERVER_CPU), &sim, key, &shared).await?;
    let result = hits::run(o, http, out, failures, [&alone, &replica_a], key, &hit_id).await;
    if let Err(e) = result {
        failures.push(format!("replicas, hit throughput: {e:#}"));
    }
    drop(alone);
    let replica_b = start_proxy(o, http, "replica-b", Some(SERVER_CPU), &sim, key, &shared).await?;
    let result = second_tier::run(
        http,
        out,
        failures,
        &sim,
        [&replica_a, &replica_b],
        key,
        &tier_ids,
    )
    .await;
    if let Err(e) = result {
        failures.push(format!("replicas, second tier: {e:#}"));
    }
    drop(replica_a);
    drop(replica_b);
    drop(sim);

    let result = budget::run(o, http, out, failures, &redis, key).await;
    if let Err(e) = result {
        failures.push(format!("replicas, budget: {e:#}"));
    }
    if let Some(n) = redis.keys().await {
        eprintln!("bench: replicas: Redis held {n} keys at the end");
    }
    Ok(())
}
