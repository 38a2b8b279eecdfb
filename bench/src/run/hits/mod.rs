//! Scenario 1, cache hits: the proxy, the ceiling and nginx proxy_cache serve one cached
//! conversation (both representations) and many cached ids with many keys, in rounds that
//! run every target once in a shuffled order; closed-loop throughput, latency paced at
//! shares of the ceiling's throughput, and the check that every answer of the proxy was a
//! hit.

pub(crate) mod runs;
mod servers;
mod tables;
pub(crate) mod targets;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context as _, Result, ensure};
use http::HeaderName;
use tokio::time::Instant;

use self::runs::{ClosedRuns, PacedRuns, closed_run, paced_run};
use self::servers::{start_ceiling, start_nginx};
use self::tables::{write_closed_tables, write_many_table, write_paced_table};
use self::targets::{CEILING, HitTarget, NGINX, PROXY};
use super::options::Options;
use super::process::free_port;
use super::proxy::{Key, Proxy};
use super::sim::sim_token;
use super::tables::statuses;
use super::{MainProxy, Session};
use crate::load;
use crate::rounds;
use crate::{Control, Req};

/// Seed of the order in which each round runs the targets (issue 14 asked for it).
const ORDER_SEED: u64 = 14;
/// The paced runs' rates, as shares of the ceiling's closed-loop req/s in the same round
/// and representation: well below saturation, and near it.
pub(crate) const PACED_SHARES: [f64; 2] = [0.5, 0.8];
/// The workloads of the closed-loop runs: the two representations of one id with one
/// key, and many ids with many keys.
pub(crate) const WORKLOADS: [&str; 3] = ["summary", "full", "many ids, many keys (full)"];

/// The proxy's hit, written where the ceiling reads its answers; returns its body.
async fn capture_hit(
    o: &Options,
    http: &Control,
    proxy: &Proxy,
    key: &Key,
    id: &str,
    name: &str,
    query: &str,
) -> Result<bytes::Bytes> {
    let url = format!("{}/conversations/{id}{query}", proxy.base);
    let first = http.get(&url, &[("authorization", &key.bearer)]).await?;
    ensure!(first.status.is_success(), "proxy {url}: {}", first.status);
    let hit = http.get(&url, &[("authorization", &key.bearer)]).await?;
    ensure!(
        hit.header("cache-status")
            .is_some_and(|s| s.contains("hit")),
        "the proxy's second answer is not a hit: {:?}",
        hit.header("cache-status")
    );
    let mut headers = String::new();
    for (k, v) in &hit.headers {
        if ["date", "content-length", "transfer-encoding", "connection"].contains(&k.as_str()) {
            continue;
        }
        let _ = writeln!(headers, "{k}: {}", v.to_str().unwrap_or(""));
    }
    let dir = o.work.join("ceiling");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(format!("{name}.body")), &hit.body)?;
    std::fs::write(dir.join(format!("{name}.headers")), headers)?;
    Ok(hit.body)
}

/// Fetches every id of the many-id run once through `addr` (`path` gives the path of
/// an id), so that the runs after it are hits; a failure when an answer is not 200.
async fn fill_cache(
    failures: &mut Vec<String>,
    target: &str,
    addr: SocketAddr,
    ids: &[String],
    path: impl Fn(&str) -> String,
    key: &Key,
) -> Result<()> {
    let started = Instant::now();
    let requests: Vec<Req> = ids
        .iter()
        .map(|id| Req::get(&path(id), &[("authorization", &key.bearer)]))
        .collect();
    let report = load::each_once(addr, 32, Arc::new(requests), None).await?;
    let t = report.total();
    let ok = t.statuses.get(&200).copied().unwrap_or(0);
    eprintln!(
        "bench: many ids: {target} fetched {} ids in {:.1} s ({})",
        ids.len(),
        started.elapsed().as_secs_f64(),
        statuses(&t)
    );
    if ok != ids.len() as u64 {
        failures.push(format!(
            "hits, many ids: {target} answered {ok} of {} first fetches with 200 ({})",
            ids.len(),
            statuses(&t)
        ));
    }
    Ok(())
}

/// Scenario 1: the hit runs of `id` (and of `many_ids` with many keys) against the proxy,
/// the ceiling and nginx, round by round; writes tables 1, 1b and 1c.
pub(crate) async fn scenario_hits(
    session: &mut Session<'_>,
    main: &MainProxy<'_>,
    id: &str,
    many_ids: &[String],
) -> Result<()> {
    let (o, http, out, failures) = session.parts();
    let MainProxy { sim, proxy, keys } = *main;
    let key = keys.first().context("a key")?;
    // The proxy's two representations, as a hit: the ceiling's answers.
    let mut bodies = Vec::new();
    for (name, query) in [("summary", ""), ("full", "?view=full")] {
        bodies.push(capture_hit(o, http, proxy, key, id, name, query).await?);
    }

    // The ceiling: a bare service with the same bytes and headers.
    let ceiling_port = free_port()?;
    let ceiling = start_ceiling(o, http, ceiling_port).await?;

    // nginx proxy_cache: the full document from the simulator, the summary from the
    // ceiling as its origin (nginx cannot make the summary itself); same bytes either way.
    let token = sim_token(http, sim).await?;
    let nginx_port = free_port()?;
    let nginx = start_nginx(o, http, sim, ceiling_port, nginx_port, &token).await;
    let nginx_base = format!("http://127.0.0.1:{nginx_port}");
    let nginx_path = |id: &str, full: bool| {
        if full {
            format!("/api/v2/conversations/{id}")
        } else {
            format!("/conversations/{id}")
        }
    };
    if let Ok(n) = &nginx {
        for (body, (name, full)) in bodies.iter().zip([("summary", false), ("full", true)]) {
            let url = format!("{nginx_base}{}", nginx_path(id, full));
            let mut last = None;
            for _ in 0..3 {
                last = Some(http.get(&url, &[("authorization", &key.bearer)]).await?);
            }
            let last = last.context("an answer")?;
            let status = last.header("x-cache-status").unwrap_or("-").to_owned();
            if status != "HIT" || last.body != *body {
                failures.push(format!(
                    "nginx does not serve the {name} body as a HIT (X-Cache-Status {status}, {} bytes vs {} from the proxy)",
                    last.body.len(),
                    body.len()
                ));
                eprintln!("bench: nginx log:\n{}", n.log_tail());
            }
        }
    }
    if let Err(e) = &nginx {
        failures.push(format!("nginx could not start: {e:#}"));
    }

    // Many ids, many keys: every id fetched once through the proxy and nginx first.
    if !many_ids.is_empty() {
        fill_cache(
            failures,
            PROXY,
            proxy.addr,
            many_ids,
            |id| format!("/conversations/{id}?view=full"),
            key,
        )
        .await?;
        if nginx.is_ok() {
            fill_cache(
                failures,
                NGINX,
                format!("127.0.0.1:{nginx_port}").parse()?,
                many_ids,
                |id| nginx_path(id, true),
                key,
            )
            .await?;
        }
    }
    // Request i asks for id i with key i mod keys (the ids are in a shuffled order).
    let many = |path: &dyn Fn(&str) -> String| {
        Arc::new(
            many_ids
                .iter()
                .enumerate()
                .map(|(i, id)| {
                    Req::get(
                        &path(id),
                        &[("authorization", &keys[i % keys.len()].bearer)],
                    )
                })
                .collect::<Vec<_>>(),
        )
    };
    let one = |path: String| Arc::new(vec![Req::get(&path, &[("authorization", &key.bearer)])]);
    let own_path = |id: &str| format!("/conversations/{id}?view=full");
    let mut targets = vec![
        HitTarget {
            name: PROXY,
            addr: proxy.addr,
            pid: proxy.proc.pid(),
            capture: HeaderName::from_static("cache-status"),
            requests: [
                one(format!("/conversations/{id}")),
                one(own_path(id)),
                many(&own_path),
            ],
        },
        HitTarget {
            name: CEILING,
            addr: format!("127.0.0.1:{ceiling_port}").parse()?,
            pid: ceiling.pid(),
            capture: HeaderName::from_static("cache-status"),
            requests: [
                one(format!("/conversations/{id}")),
                one(own_path(id)),
                many(&own_path),
            ],
        },
    ];
    if let Ok(n) = &nginx {
        targets.push(HitTarget {
            name: NGINX,
            addr: format!("127.0.0.1:{nginx_port}").parse()?,
            pid: n.pid(),
            capture: HeaderName::from_static("x-cache-status"),
            requests: [
                one(nginx_path(id, false)),
                one(nginx_path(id, true)),
                many(&|id| nginx_path(id, true)),
            ],
        });
    }
    let workloads = if many_ids.is_empty() { 2 } else { 3 };
    let ceiling_at = targets
        .iter()
        .position(|t| t.name == CEILING)
        .context("the ceiling")?;

    let mut closed: Vec<Vec<ClosedRuns>> = (0..workloads)
        .map(|_| targets.iter().map(|_| ClosedRuns::default()).collect())
        .collect();
    let mut paced: Vec<Vec<Vec<PacedRuns>>> = (0..2)
        .map(|_| {
            PACED_SHARES
                .iter()
                .map(|_| targets.iter().map(|_| PacedRuns::default()).collect())
                .collect()
        })
        .collect();
    let started = Instant::now();
    for round in 0..o.rounds {
        for (w, workload) in WORKLOADS.iter().enumerate().take(workloads) {
            let seed = ORDER_SEED + w as u64 * 16;
            for t in rounds::round_order(targets.len(), round, seed) {
                let target = &targets[t];
                let (report, cpu) =
                    closed_run(o, target, target.requests[w].clone(), workload, round).await?;
                closed[w][t].push(&report, cpu);
            }
            // Below saturation: paced at shares of this round's ceiling, one representation.
            if w >= 2 || o.paced_secs <= 0.0 {
                continue;
            }
            let capacity = closed[w][ceiling_at].rps.last().copied().unwrap_or(0.0);
            if capacity < 1.0 {
                failures.push(format!(
                    "hits: no ceiling throughput for {workload} in round {}: no paced runs",
                    round + 1
                ));
                continue;
            }
            for (s, share) in PACED_SHARES.iter().enumerate() {
                let rate = capacity * share;
                for t in rounds::round_order(targets.len(), round, seed + 1 + s as u64) {
                    let target = &targets[t];
                    let (run, server_cpu) =
                        paced_run(o, target, target.requests[w].clone(), rate, workload, round)
                            .await?;
                    paced[w][s][t].push(rate, &run, server_cpu);
                }
            }
        }
    }
    eprintln!(
        "bench: hit runs took {:.0} s",
        started.elapsed().as_secs_f64()
    );
    drop(nginx);
    drop(ceiling);

    // Every answer of the proxy must have been a hit.
    for (w, workload) in WORKLOADS.iter().enumerate().take(workloads) {
        let t = closed[w][0].all.total();
        let hits = targets[0].hits(&t);
        if hits != t.answered {
            failures.push(format!(
                "{PROXY} {workload}: only {hits} of {} closed-loop answers were cache hits",
                t.answered
            ));
        }
        if w < 2 {
            for (s, share) in PACED_SHARES.iter().enumerate() {
                let t = paced[w][s][0].all.total();
                let hits = targets[0].hits(&t);
                if hits != t.answered {
                    failures.push(format!(
                        "{PROXY} {workload} paced at {:.0}%: only {hits} of {} answers were cache hits",
                        share * 100.0,
                        t.answered
                    ));
                }
            }
        }
    }

    write_closed_tables(o, out, &targets, &closed, &bodies);
    write_paced_table(o, out, &targets, &paced);
    if workloads == 3 {
        write_many_table(o, out, &targets, &closed[2], many_ids.len(), keys.len());
    }
    Ok(())
}
