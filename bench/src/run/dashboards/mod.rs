//! Scenario 5, dashboards: 50 dashboards polling the same 10 report queries every 10 s
//! through one proxy, against a simulator enforcing the token's 300 calls per minute;
//! upstream calls per minute and in any 60 s, as a share of that budget.

mod polls;

use std::fmt::Write as _;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use tokio::time::Instant;

use self::polls::{DashStats, ReportKind, dash_poll, dashboard_queries};
use super::Session;
use super::machine::binaries;
use super::options::Options;
use super::prometheus::metric_sum;
use super::proxy::{Key, metrics, start_proxy};
use super::sim::{Counters, counters, reset_counters, start_sim};
use super::tables::{Table, left, met_or_not, pass_or_fail, quantiles_ms, right, statuses};
use super::{LOAD_CPU, SERVER_CPU};
use crate::Control;
use crate::load::Part;

/// The token's budget in the dashboards run: Genesys' default, as the proxy and the
/// simulator have it by default.
const DASH_BUDGET: u32 = 300;

/// Whether `genesys-sim` in the binary directory offers `flag` (without a value), read
/// from its `--help`: `Some(true)` a switch, `Some(false)` a flag taking a value, `None`
/// not offered.
fn sim_flag(o: &Options, flag: &str) -> Option<bool> {
    let help = Command::new(o.sim_bin()).arg("--help").output().ok()?;
    let text = String::from_utf8_lossy(&help.stdout);
    // clap lists each option at the start of a line: `--flag`, `--flag <VALUE>` or
    // `-f, --flag ...`; a mention in another option's help is not a definition.
    text.lines().find_map(|line| {
        let line = line.trim_start();
        let rest = line.strip_prefix(flag).or_else(|| {
            line.split_once(", ")
                .and_then(|(_, r)| r.strip_prefix(flag))
        })?;
        if rest.is_empty() || rest.starts_with("  ") {
            Some(true)
        } else if rest.starts_with(" <") || rest.starts_with('=') || rest.starts_with(" [") {
            Some(false)
        } else {
            None
        }
    })
}

/// Upstream API calls of a counters snapshot: (analytics queries, other API calls).
fn dash_calls(c: &Counters) -> (u64, u64) {
    let analytics = c.calls_to("details_query") + c.calls_to("aggregates_query");
    (analytics, c.api_calls() - analytics)
}

/// The largest difference of `f` over any `window` seconds of `samples` (time, counters),
/// among windows ending at or after `from` seconds.
fn max_window(
    samples: &[(f64, Counters)],
    window: f64,
    from: f64,
    f: impl Fn(&Counters) -> u64,
) -> Option<u64> {
    let mut best = None;
    for (j, (t, c)) in samples.iter().enumerate() {
        if *t < from.max(window.min(samples.last()?.0)) {
            continue;
        }
        // The earliest sample no more than `window` seconds before this one.
        let i = samples[..=j]
            .iter()
            .position(|(ti, _)| *ti >= t - window - 0.5)
            .unwrap_or(0);
        let v = f(c).saturating_sub(f(&samples[i].1));
        best = Some(best.map_or(v, |b: u64| b.max(v)));
    }
    best
}

/// Scenario 5: `o.dash_count` dashboards poll for `o.dash_secs`; writes table 5.
pub(crate) async fn scenario_dashboards(session: &mut Session<'_>, key: &Key) -> Result<()> {
    let (o, http, out, failures) = session.parts();
    let budget = DASH_BUDGET;
    let mut sim_args: Vec<String> = [
        "--conversations",
        "20000",
        "--days",
        "2",
        "--rate-limit",
        &budget.to_string(),
        "--rate-window",
        "60",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let continuous = match sim_flag(o, "--continuous") {
        Some(true) => {
            sim_args.push("--continuous".to_owned());
            "`--continuous` passed: conversations keep arriving during the run"
        }
        Some(false) => {
            "this simulator's `--continuous` takes a value the bench does not know: not passed; no conversation arrives during the run"
        }
        None => {
            "this simulator has no `--continuous`: no conversation arrives during the run, the last one starts when it starts"
        }
    };
    let arg_refs: Vec<&str> = sim_args.iter().map(String::as_str).collect();
    let sim = start_sim(o, http, "sim-dashboards", Some(LOAD_CPU), &arg_refs).await?;
    let proxy = start_proxy(
        o,
        http,
        "proxy-dashboards",
        Some(SERVER_CPU),
        &sim,
        key,
        &format!("[budget]\nrate = {budget}\nperiod_secs = 60\n"),
    )
    .await?;

    // A queue of the org, from the simulator's directory (not an API call).
    let org = http
        .get(&format!("{}/sim/org", sim.base), &[])
        .await?
        .json()?;
    let queue = &org["queues"][0];
    let queue_id = queue["id"]
        .as_str()
        .context("a queue id in /sim/org")?
        .to_owned();
    let queue_name = queue["name"].as_str().unwrap_or("queue").to_owned();
    let queries = Arc::new(dashboard_queries(&queue_id, &queue_name));

    let every = Duration::from_secs(o.dash_every_secs);
    let length = Duration::from_secs(o.dash_secs);
    let n = o.dash_count;
    let stats = Arc::new(std::sync::Mutex::new(
        (0..queries.len())
            .map(|_| DashStats::default())
            .collect::<Vec<_>>(),
    ));
    let poll_http = Control::new(Duration::from_secs(30));
    let proxy_before = metrics(http, &proxy).await?;
    reset_counters(http, &sim).await?;
    let t0 = Instant::now();
    let end = t0 + length;
    eprintln!(
        "bench: dashboards: {n} dashboards x {} queries every {} s for {} s",
        queries.len(),
        o.dash_every_secs,
        o.dash_secs
    );

    // Every (dashboard, query) pair is a task polling on the dashboard's schedule: the
    // dashboards start spread evenly over the first period, and each fires its queries
    // together, skipping a tick while its previous poll of that query is still running.
    let mut tasks = tokio::task::JoinSet::new();
    for d in 0..n {
        let offset = every.mul_f64(d as f64 / n as f64);
        for q in 0..queries.len() {
            let (queries, stats, http) = (queries.clone(), stats.clone(), poll_http.clone());
            let (base, key) = (proxy.base.clone(), key.key.clone());
            tasks.spawn(async move {
                let mut tick = t0 + offset;
                while tick < end {
                    tokio::time::sleep_until(tick).await;
                    let period = (tick - t0).as_secs() / every.as_secs().max(1);
                    let period = usize::try_from(period).unwrap_or(usize::MAX);
                    dash_poll(&http, &base, &key, &queries[q], &stats, q, period).await;
                    tick += every;
                    let now = Instant::now();
                    while tick < now && tick < end {
                        stats
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)[q]
                            .skipped += 1;
                        tick += every;
                    }
                }
            });
        }
    }
    // The simulator's counters, once a second, until the last poll is answered.
    let mut samples: Vec<(f64, Counters)> = vec![(0.0, Counters::default())];
    let mut sampler = tokio::time::interval_at(t0 + Duration::from_secs(1), Duration::from_secs(1));
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                Some(r) => r.context("a dashboard task")?,
                None => break,
            },
            _ = sampler.tick() => {
                let c = counters(http, &sim).await?;
                samples.push((t0.elapsed().as_secs_f64(), c));
            }
        }
    }
    let drained = t0.elapsed().as_secs_f64();
    let last = counters(http, &sim).await?;
    samples.push((drained, last));
    let proxy_after = metrics(http, &proxy).await?;
    let last = &samples.last().context("a sample")?.1;
    let stats = std::mem::take(
        &mut *stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );

    let mut total = Part::default();
    for s in &stats {
        for (status, count) in &s.part.statuses {
            *total.statuses.entry(*status).or_default() += count;
        }
        for (e, count) in &s.part.errors {
            *total.errors.entry(e.clone()).or_default() += count;
        }
        total.answered += s.part.answered;
        let _ = total.latency.add(&s.part.latency);
    }
    let polls = total.answered + total.error_count();
    let client_429 = total.statuses.get(&429).copied().unwrap_or(0);
    let non_200 = total.answered - total.statuses.get(&200).copied().unwrap_or(0);
    let malformed: u64 = stats.iter().map(|s| s.malformed).sum();
    let skipped: u64 = stats.iter().map(|s| s.skipped).sum();
    let upstream_429 = last.rate_limited;
    eprintln!(
        "bench: dashboards: {polls} polls in {drained:.1} s; statuses {:?}; errors {:?}; p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; upstream {:?}",
        total.statuses,
        total.errors,
        total.ms(0.5),
        total.ms(0.99),
        total.ms(1.0),
        last.calls
    );
    if upstream_429 > 0 {
        failures.push(format!(
            "dashboards: the simulator sent {upstream_429} 429s"
        ));
    }
    if client_429 > 0 {
        failures.push(format!("dashboards: clients saw {client_429} 429s"));
    }
    if malformed > 0 {
        failures.push(format!(
            "dashboards: {malformed} 200 answers had no `results` (search) or `series` (aggregates)"
        ));
    }
    if total.answered == 0 {
        failures.push("dashboards: no poll was answered".to_owned());
    }

    let secs = o.dash_secs as f64;
    let pct = |calls: u64| {
        f64::from(u32::try_from(calls).unwrap_or(u32::MAX)) * 100.0 / f64::from(budget)
    };
    let (analytics, other) = dash_calls(last);
    let analytics_of = |c: &Counters| dash_calls(c).0;
    let all_of = |c: &Counters| c.api_calls();
    let max_analytics = max_window(&samples, 60.0, 0.0, analytics_of).unwrap_or(0);
    let max_all = max_window(&samples, 60.0, 0.0, all_of).unwrap_or(0);
    let steady = (secs >= 120.0).then(|| {
        (
            max_window(&samples, 60.0, 120.0, analytics_of).unwrap_or(0),
            max_window(&samples, 60.0, 120.0, all_of).unwrap_or(0),
        )
    });
    let proxy_upstream = metric_sum(&proxy_after, "genesys_proxy_upstream_requests_total", &[])
        - metric_sum(&proxy_before, "genesys_proxy_upstream_requests_total", &[]);
    let verdict = |calls: u64| {
        let p = pct(calls);
        format!("{p:.1}% of {budget} ({})", met_or_not(p <= 10.0))
    };

    let _ = writeln!(
        out,
        "## 5. Dashboards: {n} dashboards polling the same {} reports every {} s for {} s (budget {budget} calls per 60 s; simulator enforces {budget} per 60 s per token)\n",
        queries.len(),
        o.dash_every_secs,
        o.dash_secs
    );
    let _ = writeln!(
        out,
        "Simulator: `genesys-sim {}` ({continuous}). Binaries: {}. Each dashboard asks for page 1 of every report with `X-API-Key` and the GET form, all ten at once, every {} s; the dashboards start spread over the first {} s. Queue `{{{queue_name}}}` = `{queue_id}`.\n",
        sim_args.join(" "),
        binaries(o),
        o.dash_every_secs,
        o.dash_every_secs
    );
    let mut reports = Table::new([
        left("report (page 1)"),
        right("polls"),
        left("client statuses"),
        left("p50 / p99 / max ms"),
        left("items on page 1 (min-max)"),
        right("ticks skipped (previous poll still running)"),
    ]);
    for (q, s) in queries.iter().zip(&stats) {
        reports.row(&[
            &q.label,
            &(s.part.answered + s.part.error_count()),
            &statuses(&s.part),
            &quantiles_ms(&s.part, &[0.5, 0.99, 1.0], 1),
            &format!(
                "{}{}",
                s.items.map_or("-".to_owned(), |(lo, hi)| format!(
                    "{lo}-{hi} {}",
                    if q.kind == ReportKind::Search {
                        "results"
                    } else {
                        "series"
                    }
                )),
                if s.malformed > 0 {
                    format!(" ({} malformed)", s.malformed)
                } else {
                    String::new()
                }
            ),
            &s.skipped,
        ]);
    }
    reports.write(out);

    let mut by_minute = Table::new([
        left("minute of the run"),
        right("details queries"),
        right("aggregates queries"),
        right("other upstream API calls"),
        right("analytics queries, % of budget"),
        right("all upstream API calls, % of budget"),
    ]);
    let at = |t: f64| -> Counters {
        samples
            .iter()
            .rev()
            .find(|(ts, _)| *ts <= t + 0.5)
            .map_or_else(Counters::default, |(_, c)| Counters {
                calls: c.calls.clone(),
                rate_limited: c.rate_limited,
            })
    };
    let minutes = (secs / 60.0).ceil() as usize;
    let mut bounds: Vec<(String, f64, f64)> = (0..minutes)
        .map(|m| {
            let (a, b) = (m as f64 * 60.0, ((m + 1) as f64 * 60.0).min(secs));
            (format!("{} ({a:.0}-{b:.0} s)", m + 1), a, b)
        })
        .collect();
    if drained > secs + 0.5 {
        bounds.push((
            format!("after the last tick ({secs:.0}-{drained:.1} s)"),
            secs,
            drained + 1.0,
        ));
    }
    for (name, a, b) in &bounds {
        let (ca, cb) = (at(*a), at(*b));
        let d = |e: &str| cb.calls_to(e) - ca.calls_to(e);
        let (an, ot) = (
            dash_calls(&cb).0 - dash_calls(&ca).0,
            dash_calls(&cb).1 - dash_calls(&ca).1,
        );
        by_minute.row(&[
            name,
            &d("details_query"),
            &d("aggregates_query"),
            &ot,
            &format!("{an} = {:.1}%", pct(an)),
            &format!("{} = {:.1}%", an + ot, pct(an + ot)),
        ]);
    }
    by_minute.write(out);

    let mut figures = Table::figures();
    figures.row(&[
        &"upstream analytics queries (details + aggregates), whole run",
        &format!(
            "{analytics} (details {}, aggregates {}) = {:.1}/min over {drained:.0} s",
            last.calls_to("details_query"),
            last.calls_to("aggregates_query"),
            analytics as f64 * 60.0 / drained.max(1.0)
        ),
    ]);
    let others: Vec<String> = last
        .calls
        .iter()
        .filter(|(k, _)| {
            !["oauth_token", "details_query", "aggregates_query"].contains(&k.as_str())
        })
        .map(|(k, by)| format!("{k} {}", by.values().sum::<u64>()))
        .collect();
    figures.row(&[
        &"other upstream API calls, whole run",
        &format!(
            "{other}{} (tokens {})",
            if others.is_empty() {
                String::new()
            } else {
                format!(" ({})", others.join(", "))
            },
            last.calls_to("oauth_token")
        ),
    ]);
    figures.row(&[
        &"max analytics queries in any 60 s (target <= 10% of the budget)",
        &format!("{max_analytics} = {}", verdict(max_analytics)),
    ]);
    figures.row(&[
        &"max upstream API calls of any kind in any 60 s",
        &format!("{max_all} = {:.1}% of {budget}", pct(max_all)),
    ]);
    if let Some((a, b)) = steady {
        figures.row(&[
            &"the same, windows ending after 120 s (the first minute's cold cache left out)",
            &format!("analytics {a} = {:.1}%, all {b} = {:.1}%", pct(a), pct(b)),
        ]);
    }
    let periods = (secs / o.dash_every_secs as f64).ceil() as usize;
    let upstream_timeline: Vec<String> = (0..periods)
        .map(|k| {
            let step = o.dash_every_secs as f64;
            let (a, b) = (k as f64 * step, ((k + 1) as f64 * step).min(secs));
            (dash_calls(&at(b)).0 - dash_calls(&at(a)).0).to_string()
        })
        .collect();
    let mut bad_timeline = vec![0u64; periods];
    for s in &stats {
        for (k, (_, bad)) in s.by_period.iter().enumerate() {
            if let Some(slot) = bad_timeline.get_mut(k) {
                *slot += bad;
            }
        }
    }
    figures.row(&[
        &format!(
            "upstream analytics queries per {} s of the run",
            o.dash_every_secs
        ),
        &upstream_timeline.join(", "),
    ]);
    figures.row(&[
        &format!(
            "client non-200 per {} s of the run (by the poll's start)",
            o.dash_every_secs
        ),
        &bad_timeline
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    ]);
    figures.row(&[
        &"upstream statuses (simulator) / upstream calls (proxy metrics)",
        &format!("{:?} / {proxy_upstream:.0}", last.by_status()),
    ]);
    figures.row(&[
        &"upstream 429s (must be 0)",
        &format!("{upstream_429} ({})", pass_or_fail(upstream_429 == 0)),
    ]);
    let polls_of = |kind: ReportKind| {
        queries
            .iter()
            .zip(&stats)
            .filter(|(q, _)| q.kind == kind)
            .map(|(_, s)| s.part.answered + s.part.error_count())
            .sum::<u64>()
    };
    figures.row(&[
        &"polls",
        &format!(
            "{polls} ({:.1}/s; {} search, {} aggregates); {skipped} ticks skipped",
            polls as f64 / secs,
            polls_of(ReportKind::Search),
            polls_of(ReportKind::Aggregates)
        ),
    ]);
    figures.row(&[
        &"poll latency p50 / p99 / max",
        &format!("{} ms", quantiles_ms(&total, &[0.5, 0.99, 1.0], 1)),
    ]);
    figures.row(&[
        &format!(
            "client statuses (non-200: {non_200}{})",
            if malformed > 0 {
                format!("; 200 without results/series: {malformed}")
            } else {
                String::new()
            }
        ),
        &statuses(&total),
    ]);
    figures.row(&[
        &"client 429s (must be 0)",
        &format!("{client_429} ({})", pass_or_fail(client_429 == 0)),
    ]);
    figures.write(out);
    drop(proxy);
    drop(sim);
    Ok(())
}
