//! Table 7a: cache-hit throughput of one replica alone and of one with `[redis] url`,
//! the hit scenario's closed-loop runs (same load generator, connections, warm-up, run
//! length and rounds, the two targets in a shuffled order within each round), and their
//! ratio taken within each round. First-tier hits must not slow down.

use std::fmt::Write as _;
use std::sync::Arc;

use anyhow::{Result, ensure};
use http::HeaderName;

use crate::Control;
use crate::Req;
use crate::rounds::{self, RatioSummary};
use crate::run::hits::runs::{ClosedRuns, closed_run};
use crate::run::hits::targets::HitTarget;
use crate::run::options::Options;
use crate::run::proxy::{Key, Proxy};
use crate::run::tables::{Table, each_round, left, quantiles_ms, right};

const ALONE: &str = "replica alone (no `[redis]`)";
const SHARED: &str = "replica with `[redis] url`";
/// The ratio (with Redis over alone, req/s) the median of the rounds should reach: no
/// slower, within the rounds' noise.
const RATIO_TARGET: f64 = 0.95;
const REPRESENTATIONS: [&str; 2] = ["summary", "full"];
/// Seed of the order in which each round runs the two replicas.
const ORDER_SEED: u64 = 19;

/// Asks `proxy` for `path` twice; the second answer must be a hit.
async fn warm(http: &Control, proxy: &Proxy, key: &Key, path: &str) -> Result<()> {
    let url = format!("{}{path}", proxy.base);
    let first = http.get(&url, &[("authorization", &key.bearer)]).await?;
    ensure!(first.status.is_success(), "{url}: {}", first.status);
    let hit = http.get(&url, &[("authorization", &key.bearer)]).await?;
    ensure!(
        hit.header("cache-status")
            .is_some_and(|s| s.split(';').any(|item| item.trim() == "hit")),
        "{url}: the second answer is not a hit: {:?}",
        hit.header("cache-status")
    );
    Ok(())
}

/// The closed-loop runs of `proxies` (alone, with Redis) serving `id` as a hit; writes
/// table 7a.
pub(super) async fn run(
    o: &Options,
    http: &Control,
    out: &mut String,
    failures: &mut Vec<String>,
    proxies: [&Proxy; 2],
    key: &Key,
    id: &str,
) -> Result<()> {
    let paths = [
        format!("/conversations/{id}"),
        format!("/conversations/{id}?view=full"),
    ];
    for proxy in proxies {
        for path in &paths {
            warm(http, proxy, key, path).await?;
        }
    }
    let one = |path: &str| Arc::new(vec![Req::get(path, &[("authorization", &key.bearer)])]);
    let targets: Vec<HitTarget> = proxies
        .iter()
        .zip([ALONE, SHARED])
        .map(|(proxy, name)| HitTarget {
            name,
            addr: proxy.addr,
            pid: proxy.proc.pid(),
            capture: HeaderName::from_static("cache-status"),
            requests: [one(&paths[0]), one(&paths[1]), Arc::new(Vec::new())],
        })
        .collect();
    let mut closed: Vec<Vec<ClosedRuns>> = REPRESENTATIONS
        .iter()
        .map(|_| targets.iter().map(|_| ClosedRuns::default()).collect())
        .collect();
    for round in 0..o.rounds {
        for (w, representation) in REPRESENTATIONS.iter().enumerate() {
            let seed = ORDER_SEED + w as u64;
            for t in rounds::round_order(targets.len(), round, seed) {
                let target = &targets[t];
                let label = format!("replicas {representation}");
                let (report, cpu) =
                    closed_run(o, target, target.requests[w].clone(), &label, round).await?;
                closed[w][t].push(&report, cpu);
            }
        }
    }

    let _ = writeln!(
        out,
        "### 7a. Cache-hit throughput of one replica, without and with `[redis] url`: `GET /conversations/{{id}}`, one id, one key, {} connections, closed loop, {} s per run after {} s warm-up, {} round(s), the two in a shuffled order within each round\n",
        o.connections, o.hit_secs, o.hit_warmup, o.rounds
    );
    let mut table = Table::new([
        left("representation"),
        left("replica"),
        right("req/s, median (min-max) of rounds"),
        left("req/s of each round"),
        right("req per server CPU-second, median"),
        left("p50 / p99 / p99.9 ms, all rounds' answers"),
        left("answers that were not hits / errors"),
        left(format!(
            "with Redis / alone, req/s within each round (target >= {RATIO_TARGET})"
        )),
        left("of each round"),
    ]);
    for (w, representation) in REPRESENTATIONS.iter().enumerate() {
        let ratio = RatioSummary::new(
            rounds::per_round_ratios(&closed[w][1].rps, &closed[w][0].rps),
            RATIO_TARGET,
        );
        for (t, target) in targets.iter().enumerate() {
            let runs = &closed[w][t];
            let total = runs.all.total();
            let not_hits = total.answered - target.hits(&total);
            if not_hits > 0 || total.error_count() > 0 {
                failures.push(format!(
                    "replicas, {} {representation}: {not_hits} of {} answers were not cache hits, {} errors",
                    target.name,
                    total.answered,
                    total.error_count()
                ));
            }
            let (verdict, each) = if t == 1 {
                (ratio.verdict(), ratio.each())
            } else {
                (String::new(), String::new())
            };
            table.row(&[
                representation,
                &target.name,
                &format!(
                    "{:.0} ({:.0}-{:.0})",
                    rounds::median(&runs.rps),
                    rounds::minimum(&runs.rps),
                    rounds::maximum(&runs.rps)
                ),
                &each_round(&runs.rps, 0),
                &format!("{:.0}", rounds::median(&runs.per_cpu)),
                &quantiles_ms(&total, &[0.5, 0.99, 0.999], 3),
                &format!("{not_hits} / {}", total.error_count()),
                &verdict,
                &each,
            ]);
        }
    }
    table.write(out);
    Ok(())
}
