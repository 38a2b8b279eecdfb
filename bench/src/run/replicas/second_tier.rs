//! Table 7b: a replica's latency for conversations another replica already fetched. With
//! the simulator answering after [`UPSTREAM_LATENCY_MS`], replica A fetches N cold
//! settled conversations one at a time; a moment later replica B asks for the same N
//! (what a shared cache tier serves from Redis; without one, B fetches them again), then
//! asks again (its own first tier). Each step: latency p50 / p99 / max, the
//! `Cache-Status` values answered, and the upstream conversation calls the simulator
//! counted during it.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, ensure};
use http::{HeaderName, Method};

use crate::run::proxy::{Key, Proxy};
use crate::run::sim::{Sim, counters, reset_counters, set_latency};
use crate::run::tables::{Table, left, quantiles_ms, right, statuses};
use crate::{Control, Report, Req, load};

/// The simulator's latency during this part: about what Genesys takes for one
/// conversation, so that a fetch from Genesys and an answer from Redis differ.
const UPSTREAM_LATENCY_MS: u64 = 100;
/// The pause between A's last fetch and B's first request (a write to a shared tier that
/// completes after A answered has landed by then).
const PAUSE: Duration = Duration::from_secs(1);

/// One step: `proxy` asked for every id once, one request at a time (one connection);
/// the report and the upstream conversation calls counted meanwhile.
async fn step(
    http: &Control,
    sim: &Sim,
    proxy: &Proxy,
    key: &Key,
    ids: &[String],
) -> Result<(Report, u64)> {
    reset_counters(http, sim).await?;
    let requests: Vec<Req> = ids
        .iter()
        .map(|id| {
            Req::get(
                &format!("/conversations/{id}"),
                &[("authorization", &key.bearer)],
            )
        })
        .collect();
    let report = load::each_once(
        proxy.addr,
        1,
        Arc::new(requests),
        Some(HeaderName::from_static("cache-status")),
    )
    .await?;
    let calls = counters(http, sim).await?.calls_to("get_conversation");
    Ok((report, calls))
}

/// The `Cache-Status` values of `report`'s answers, commonest first, with their counts;
/// each value's `ttl=` dropped (it differs from answer to answer).
fn cache_statuses(report: &Report) -> String {
    let mut by_value = std::collections::BTreeMap::<String, u64>::new();
    for (value, n) in &report.total().captured {
        let kept: Vec<&str> = value
            .split(';')
            .map(str::trim)
            .filter(|item| !item.starts_with("ttl="))
            .collect();
        *by_value.entry(kept.join("; ")).or_default() += n;
    }
    let mut values: Vec<(String, u64)> = by_value.into_iter().collect();
    values.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    if values.is_empty() {
        return "none".to_owned();
    }
    values
        .iter()
        .map(|(v, n)| format!("`{v}`: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The three steps through `replicas` (A, B) for `ids`; writes table 7b.
pub(super) async fn run(
    http: &Control,
    out: &mut String,
    failures: &mut Vec<String>,
    sim: &Sim,
    replicas: [&Proxy; 2],
    key: &Key,
    ids: &[String],
) -> Result<()> {
    ensure!(!ids.is_empty(), "no settled conversation left for this run");
    let [a, b] = replicas;
    set_latency(http, sim, UPSTREAM_LATENCY_MS).await?;
    let steps = async {
        let cold = step(http, sim, a, key, ids).await?;
        tokio::time::sleep(PAUSE).await;
        let other = step(http, sim, b, key, ids).await?;
        let again = step(http, sim, b, key, ids).await?;
        Ok::<_, anyhow::Error>([cold, other, again])
    }
    .await;
    let _ = http
        .send(Method::DELETE, &format!("{}/sim/faults", sim.base), &[], "")
        .await;
    let steps = steps?;
    let modes = [
        (
            "replica A".to_owned(),
            super::shared_mode(http, a, key).await?,
        ),
        (
            "replica B".to_owned(),
            super::shared_mode(http, b, key).await?,
        ),
    ];
    super::require_shared(failures, "second tier", &modes);

    let _ = writeln!(
        out,
        "### 7b. A conversation another replica already fetched: {} settled conversations, `GET /conversations/{{id}}` one at a time on one connection, simulator latency {UPSTREAM_LATENCY_MS} ms, replicas A and B sharing Redis (at the end: A {}, B {})\n",
        ids.len(),
        modes[0].1,
        modes[1].1
    );
    let mut table = Table::new([
        left("step"),
        left("client statuses"),
        left("p50 / p99 / max ms"),
        left("Cache-Status answered"),
        right("upstream conversation calls (simulator)"),
    ]);
    let names = [
        "replica A, cold: no replica has fetched them".to_owned(),
        format!(
            "replica B, {} s after A fetched them (a shared cache tier's hit; without one, a miss)",
            PAUSE.as_secs()
        ),
        "replica B again (its own first tier)".to_owned(),
    ];
    for (name, (report, calls)) in names.iter().zip(&steps) {
        let total = report.total();
        let ok = total.statuses.get(&200).copied().unwrap_or(0);
        if ok != ids.len() as u64 {
            failures.push(format!(
                "replicas, second tier: {name}: {ok} of {} answers were 200 ({})",
                ids.len(),
                statuses(&total)
            ));
        }
        table.row(&[
            name,
            &statuses(&total),
            &quantiles_ms(&total, &[0.5, 0.99, 1.0], 2),
            &cache_statuses(report),
            calls,
        ]);
    }
    table.write(out);
    eprintln!(
        "bench: replicas: second tier: {}",
        steps
            .iter()
            .map(|(r, c)| format!("{} ({c} calls)", r.summary()))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_statuses_count_each_value_without_its_ttl_commonest_first() {
        let mut part = crate::load::Part::default();
        for value in [
            "genesys-proxy; fwd=miss; stored; ttl=21599",
            "genesys-proxy; hit; ttl=21599",
            "genesys-proxy; hit; ttl=21598",
        ] {
            part.record_answer(Duration::from_millis(1), 200, 10, Some(value));
        }
        let report = Report {
            elapsed: Duration::from_secs(1),
            parts: vec![part],
        };
        assert_eq!(
            cache_statuses(&report),
            "`genesys-proxy; hit`: 2, `genesys-proxy; fwd=miss; stored`: 1"
        );
        assert_eq!(cache_statuses(&Report::default()), "none");
    }
}
