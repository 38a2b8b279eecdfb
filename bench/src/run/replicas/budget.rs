//! Table 7c: the budget run spread over replicas sharing Redis. A simulator enforcing
//! `--budget-rate` calls per 60 s per token; `--replicas` proxies with that budget and
//! every other budget setting at the proxy's default (the reset guard included), sharing
//! one Redis, notifications off; ten times the budget in `GET /conversations/{id}` of distinct cold ids, an
//! open loop per replica, the loops interleaved so that together they send at an even
//! pace. Upstream calls per minute against the budget, the share used, token requests,
//! upstream 429s and client statuses, overall and per replica.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Result, ensure};

use super::{NOTIFICATIONS_OFF, redis_section, require_shared, shared_mode};
use crate::Control;
use crate::Req;
use crate::load::{OpenLoop, Part};
use crate::run::budget::budget_sim_args;
use crate::run::options::Options;
use crate::run::prometheus::metric_sum;
use crate::run::proxy::{Key, Proxy, metrics, start_proxy};
use crate::run::redis::Redis;
use crate::run::sim::{counters, list_conversations, reset_counters, start_sim};
use crate::run::tables::{Table, left, met_or_not, pass_or_fail, quantiles_ms, right, statuses};

/// The client time-out of the open loops (as the budget scenario's).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(15);

/// Upstream requests a proxy has sent, from its `/metrics`.
async fn upstream_requests(http: &Control, proxy: &Proxy) -> Result<f64> {
    Ok(metric_sum(
        &metrics(http, proxy).await?,
        "genesys_proxy_upstream_requests_total",
        &[],
    ))
}

/// The budget run over `o.replicas` replicas sharing `redis`; writes table 7c.
pub(super) async fn run(
    o: &Options,
    http: &Control,
    out: &mut String,
    failures: &mut Vec<String>,
    redis: &Redis,
    key: &Key,
) -> Result<()> {
    let r = o.budget_rate;
    let n = o.replicas;
    let sim = start_sim(
        o,
        http,
        "sim-replicas-budget",
        None,
        &budget_sim_args(&r.to_string()),
    )
    .await?;
    let mut ids: Vec<String> = list_conversations(http, &sim, 30)
        .await?
        .into_iter()
        .map(|c| c.id)
        .collect();
    fastrand::seed(191);
    fastrand::shuffle(&mut ids);
    let sections = format!(
        "[budget]\nrate = {r}\nperiod_secs = 60\n\n{NOTIFICATIONS_OFF}\n{}",
        redis_section(redis, "bench-budget")
    );
    // Counted from before the replicas start: their token requests too.
    reset_counters(http, &sim).await?;
    let mut replicas = Vec::with_capacity(n);
    for i in 0..n {
        replicas.push(
            start_proxy(
                o,
                http,
                &format!("replica-budget-{}", i + 1),
                None,
                &sim,
                key,
                &sections,
            )
            .await?,
        );
    }
    let per_sec = f64::from(r) * f64::from(o.oversubscription) / 60.0;
    let total = (per_sec * o.budget_secs as f64).round() as usize;
    ensure!(
        ids.len() >= total,
        "{} conversations for {total} distinct cold ids",
        ids.len()
    );
    // Request i goes to replica i mod n; each replica's loop at 1/n of the rate, started
    // one interval after the previous one's.
    let mut per_replica: Vec<Vec<Req>> = vec![Vec::new(); n];
    for (i, id) in ids.iter().take(total).enumerate() {
        per_replica[i % n].push(Req::get(
            &format!("/conversations/{id}"),
            &[("authorization", &key.bearer)],
        ));
    }
    let at_start = counters(http, &sim).await?;
    let mut before = Vec::with_capacity(n);
    for proxy in &replicas {
        before.push(upstream_requests(http, proxy).await?);
    }
    eprintln!(
        "bench: replicas budget run: {total} requests at {per_sec:.1}/s over {n} replicas for {} s against a budget of {r} per 60 s",
        o.budget_secs
    );
    let interval = Duration::from_secs_f64(1.0 / per_sec);
    let mut loops = Vec::with_capacity(n);
    for (proxy, requests) in replicas.iter().zip(per_replica) {
        loops.push(OpenLoop::start(
            &proxy.base,
            requests,
            per_sec / n as f64,
            CLIENT_TIMEOUT,
        ));
        tokio::time::sleep(interval).await;
    }
    let mut draining = Vec::with_capacity(n);
    for running in loops {
        draining.push(running.sent().await?);
    }
    let at_end = counters(http, &sim).await?;
    let mut reports = Vec::with_capacity(n);
    for d in draining {
        reports.push(d.finish().await?);
    }
    let after_all = counters(http, &sim).await?;
    let mut made = Vec::with_capacity(n);
    let mut modes = Vec::with_capacity(n);
    for (i, proxy) in replicas.iter().enumerate() {
        made.push(upstream_requests(http, proxy).await? - before[i]);
        modes.push((
            format!("replica {}", i + 1),
            shared_mode(http, proxy, key).await?,
        ));
    }
    require_shared(failures, "budget", &modes);

    let secs = o.budget_secs as f64;
    let budget = f64::from(r) * secs / 60.0;
    let calls = at_end.api_calls().saturating_sub(at_start.api_calls()) as f64;
    let used = calls / budget;
    let upstream_429 = after_all.rate_limited;
    if upstream_429 > 0 {
        failures.push(format!(
            "replicas, budget: the simulator sent {upstream_429} 429s"
        ));
    }
    let parts: Vec<Part> = reports.iter().map(crate::Report::total).collect();
    let mut combined = crate::Report::default();
    for report in &reports {
        combined.add(report);
    }
    let all = combined.total();
    let client_429 = all.statuses.get(&429).copied().unwrap_or(0);
    if client_429 > 0 {
        failures.push(format!("replicas, budget: clients saw {client_429} 429s"));
    }
    let _ = writeln!(
        out,
        "### 7c. Budget: {}x oversubscribed for {} s over {n} replicas sharing Redis (budget {r} calls per 60 s in all; simulator enforces {r} per 60 s per token)\n",
        o.oversubscription, o.budget_secs
    );
    let _ = writeln!(
        out,
        "Demand: {total} `GET /conversations/{{id}}` of distinct cold ids at {per_sec:.1}/s = {:.0}/min, request i to replica i mod {n}, open loop, client time-out {} s. Each replica: `[budget] rate = {r}, period_secs = 60`, every other budget setting (`reset_guard_ms` included) the proxy's default; `[redis] url` the run's own redis-server; notifications off.\n",
        per_sec * 60.0,
        CLIENT_TIMEOUT.as_secs()
    );
    let mut figures = Table::figures();
    figures.row(&[
        &format!("upstream calls during the {} s of load", o.budget_secs),
        &format!(
            "{calls:.0} = {:.1}/min against a budget of {r}/min",
            calls / secs * 60.0
        ),
    ]);
    figures.row(&[
        &"budget used (target >= 95%)",
        &format!(
            "{:.1}% of {budget:.0} ({})",
            used * 100.0,
            met_or_not(used >= 0.95)
        ),
    ]);
    figures.row(&[
        &"upstream calls including the drain (and any before the load)",
        &format!(
            "{} (statuses {:?})",
            after_all.api_calls(),
            after_all.by_status()
        ),
    ]);
    figures.row(&[
        &"token requests since the replicas started (one token for every replica: 1)",
        &after_all.calls_to("oauth_token"),
    ]);
    figures.row(&[
        &"upstream 429s (must be 0)",
        &format!("{upstream_429} ({})", pass_or_fail(upstream_429 == 0)),
    ]);
    figures.row(&[
        &"client 429s (must be 0)",
        &format!("{client_429} ({})", pass_or_fail(client_429 == 0)),
    ]);
    figures.row(&[
        &"client statuses, all replicas (p50 / p99 ms)",
        &format!(
            "{} ({})",
            statuses(&all),
            quantiles_ms(&all, &[0.5, 0.99], 0)
        ),
    ]);
    figures.write(out);

    let mut table = Table::new([
        left("replica"),
        right("requests"),
        left("client statuses"),
        left("p50 / p99 ms"),
        right("upstream requests it sent (its /metrics, drain included)"),
        left("shared mode at the end (replicas it knows alive)"),
    ]);
    for (i, part) in parts.iter().enumerate() {
        table.row(&[
            &modes[i].0,
            &(part.answered + part.error_count()),
            &statuses(part),
            &quantiles_ms(part, &[0.5, 0.99], 0),
            &format!("{:.0}", made[i]),
            &modes[i].1,
        ]);
    }
    table.write(out);
    drop(replicas);
    drop(sim);
    Ok(())
}
