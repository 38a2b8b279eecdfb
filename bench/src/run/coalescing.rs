//! Scenario 2, coalescing: many concurrent cold requests for one id, against a slow
//! simulator, must make one upstream call.

use std::fmt::Write as _;

use anyhow::{Context as _, Result};
use http::{HeaderName, Method};

use super::MainProxy;
use super::Session;
use super::prometheus::metric_sum;
use super::proxy::metrics;
use super::sim::{counters, reset_counters, set_latency};
use super::tables::{Table, left, quantiles_ms, right, statuses};
use crate::Req;
use crate::load;

/// Scenario 2: `o.coalesce_requests` requests for the cold `id` at once, the simulator
/// answering after `o.coalesce_latency_ms`; writes table 2.
pub(crate) async fn scenario_coalescing(
    session: &mut Session<'_>,
    main: &MainProxy<'_>,
    id: &str,
) -> Result<()> {
    let (o, http, out, failures) = session.parts();
    let MainProxy { sim, proxy, keys } = *main;
    let key = keys.first().context("a key")?;
    set_latency(http, sim, o.coalesce_latency_ms).await?;
    reset_counters(http, sim).await?;
    let before = metrics(http, proxy).await?;
    let requests: Vec<Req> = (0..o.coalesce_requests)
        .map(|_| {
            Req::get(
                &format!("/conversations/{id}"),
                &[("authorization", &key.bearer)],
            )
        })
        .collect();
    let report = load::all_at_once(
        proxy.addr,
        requests,
        Some(HeaderName::from_static("cache-status")),
    )
    .await;
    let _ = http
        .send(Method::DELETE, &format!("{}/sim/faults", sim.base), &[], "")
        .await;
    let report = report?;
    let after = metrics(http, proxy).await?;
    let c = counters(http, sim).await?;
    let upstream = c.calls_to("get_conversation");
    let proxy_upstream = metric_sum(&after, "genesys_proxy_upstream_requests_total", &[])
        - metric_sum(&before, "genesys_proxy_upstream_requests_total", &[]);
    let t = report.total();
    eprintln!("bench: coalescing: {}", report.summary());
    let ok = upstream == 1 && t.statuses.get(&200) == Some(&(o.coalesce_requests as u64));
    if !ok {
        failures.push(format!(
            "coalescing: {upstream} upstream calls for {} concurrent cold requests (must be 1), client statuses {}",
            o.coalesce_requests,
            statuses(&t)
        ));
    }
    let _ = writeln!(
        out,
        "## 2. Coalescing: {} concurrent cold requests for one id (simulator latency {} ms)\n",
        o.coalesce_requests, o.coalesce_latency_ms
    );
    let mut table = Table::new([
        right("requests"),
        right("upstream calls (simulator)"),
        right("upstream calls (proxy metrics)"),
        left("client statuses"),
        left("Cache-Status of the answers"),
        left("client p50 / p99 / max"),
        left("verdict"),
    ]);
    table.row(&[
        &o.coalesce_requests,
        &upstream,
        &proxy_upstream,
        &statuses(&t),
        &t.captured
            .iter()
            .map(|(k, n)| format!("`{k}`: {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        &format!("{} ms", quantiles_ms(&t, &[0.5, 0.99, 1.0], 0)),
        &if ok { "PASS (1 call)" } else { "FAIL" },
    ]);
    table.write(out);
    Ok(())
}
