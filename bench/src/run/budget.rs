//! Scenario 3, the budget: a 10x oversubscribed mixed load (real-time lookups, report
//! searches and hydration searches from a second client) against a simulator that
//! enforces the proxy's budget; upstream calls granted per class against the classes'
//! minimum shares, 429s, and how long granted calls waited.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use chrono::{DateTime, Utc};

use super::Session;
use super::prometheus::{bucket_quantile, buckets};
use super::proxy::{Key, Proxy, metrics, new_key, start_proxy};
use super::sim::{Listed, counters, list_conversations, reset_counters, rfc3339, start_sim};
use super::tables::{Table, left, met_or_not, pass_or_fail, quantiles_ms, right, statuses};
use crate::Control;
use crate::Req;
use crate::load::{OpenLoop, Part};

/// The minimum shares the budget run configures (`budget.report_min_share` and
/// `budget.hydrate_min_share`; the proxy's defaults, config.example.toml `[budget]`), per
/// class (realtime, report, hydrate): real time has none, it has priority.
const MIN_SHARES: [f64; 3] = [0.0, 0.2, 0.05];
/// How far below its minimum share a class with demand may fall (a fraction of the grants:
/// 0.03 is 3 percentage points) before the run fails. The budget pays a class its share
/// turn by turn, but a few grants are not its to have: the window's last
/// `realtime_reserve` calls go to real time only, hydration has no demand until the first
/// hydration page is found, and the count is read while calls are being granted. 3 points
/// is 9 grants of the full run's 300 and 2 of the quick run's 75.
pub(crate) const MIN_SHARE_TOLERANCE: f64 = 0.03;
/// One request in this many of the budget run is a hydration search (the first at index 7).
const HYDRATE_EVERY: usize = 100;
/// Page size of a hydration search: that many conversation calls when its hits are cold.
const HYDRATE_PAGE: usize = 5;
const CLASSES: [&str; 3] = ["realtime", "report", "hydrate"];

/// Upstream calls the proxy's budget granted per class (realtime, report, hydrate), from
/// `GET /admin/cache` (`budget.granted_by_class`); None when this proxy does not say.
async fn granted_by_class(http: &Control, proxy: &Proxy, key: &Key) -> Result<Option<[u64; 3]>> {
    let answer = http
        .get(
            &format!("{}/admin/cache", proxy.base),
            &[("authorization", &key.bearer)],
        )
        .await?;
    ensure!(
        answer.status.is_success(),
        "GET /admin/cache: {} {}",
        answer.status,
        answer.text()
    );
    let v = answer.json()?;
    let Some(by_class) = v["budget"]["granted_by_class"].as_array() else {
        return Ok(None);
    };
    let mut out = [0; 3];
    for (slot, value) in out.iter_mut().zip(by_class) {
        *slot = value.as_u64().context("budget.granted_by_class")?;
    }
    Ok(Some(out))
}

/// Hits and hydrated hits (those with a `conversation`) of a report page.
fn hydration_tally(body: &[u8]) -> Vec<(&'static str, u64)> {
    let Ok(page) = serde_json::from_slice::<serde_json::Value>(body) else {
        return vec![("unreadable pages", 1)];
    };
    let results = page["results"].as_array().map_or(&[][..], Vec::as_slice);
    let hydrated = results
        .iter()
        .filter(|hit| hit.get("conversation").is_some_and(|c| !c.is_null()))
        .count();
    vec![
        ("hits", results.len() as u64),
        ("hydrated", hydrated as u64),
    ]
}

/// Scenario 3: a 10x oversubscribed open loop of lookups, report searches and hydration
/// searches through a proxy whose budget is the simulator's limit; writes table 3.
pub(crate) async fn scenario_budget(session: &mut Session<'_>, key: &Key) -> Result<()> {
    let (o, http, out, failures) = session.parts();
    let r = o.budget_rate;
    let sim = start_sim(
        o,
        http,
        "sim-budget",
        None,
        &budget_sim_args(&r.to_string()),
    )
    .await?;
    let listed = list_conversations(http, &sim, 30).await?;
    // The hydration searches come from a second client (a reporting app), so that their
    // report pages take turns with the other searches in the report class instead of
    // queueing behind them; every other request is the admin client's.
    let hydrator = new_key();
    let cache = "[cache]\nactive_fresh_secs = 1\nended_fresh_secs = 1\nsettled_fresh_secs = 1\nreport_recent_fresh_secs = 1\nreport_old_fresh_secs = 1\n";
    let client = format!(
        "[[clients]]\nname = \"hydrator\"\nkey_sha256 = \"{}\"\nscopes = [\"reports:read\"]\nweight = 1\n",
        hydrator.hash
    );
    let shares = format!(
        "report_min_share = {}\nhydrate_min_share = {}\n",
        MIN_SHARES[1], MIN_SHARES[2]
    );
    // `reset_guard_ms` stays at the proxy's default: the tests set it to 0, which would
    // flatter the share of the budget used.
    let sections = |shares: &str| {
        format!("[budget]\nrate = {r}\nperiod_secs = 60\n{shares}\n{cache}\n{client}")
    };
    // A proxy that predates the minimum shares refuses their settings: run it without.
    let (proxy, shares_set) = match start_proxy(
        o,
        http,
        "proxy-budget",
        None,
        &sim,
        key,
        &sections(&shares),
    )
    .await
    {
        Ok(proxy) => (proxy, true),
        Err(e) => {
            eprintln!(
                "bench: budget run: the proxy did not start with minimum shares ({e:#}); starting it without"
            );
            let proxy = start_proxy(
                o,
                http,
                "proxy-budget-plain",
                None,
                &sim,
                key,
                &sections(""),
            )
            .await?;
            (proxy, false)
        }
    };
    let per_sec = f64::from(r) * f64::from(o.oversubscription) / 60.0;
    let total = (per_sec * o.budget_secs as f64).round() as usize;
    let mut ids: Vec<&Listed> = listed.iter().collect();
    fastrand::seed(8);
    fastrand::shuffle(&mut ids);
    // Distinct half-hour windows over the last 29 days, each a distinct report query.
    let now = Utc::now();
    let base = (now - chrono::Duration::days(29))
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .context("midnight")?
        .and_utc();
    let n_windows = 29 * 48;
    let window_of = |t: DateTime<Utc>| {
        let w = (t - base).num_minutes().div_euclid(30);
        (0..n_windows).contains(&w).then_some(w)
    };
    let mut per_window = vec![0usize; n_windows as usize];
    for c in &listed {
        if let Some(w) = window_of(c.start) {
            per_window[w as usize] += 1;
        }
    }
    let mut windows: Vec<i64> = (0..n_windows).collect();
    fastrand::shuffle(&mut windows);
    // Hydration searches ask for windows with a full page of conversations; the other
    // searches for the other windows, and the real-time lookups for conversations outside
    // them, so that no hydration call is served by another request's fetch.
    let hydrations = (0..total).filter(|i| i % HYDRATE_EVERY == 7).count();
    let busy: Vec<i64> = windows
        .iter()
        .copied()
        .filter(|&w| per_window[w as usize] >= HYDRATE_PAGE)
        .take(hydrations)
        .collect();
    ensure!(
        busy.len() == hydrations,
        "only {} half-hour windows hold {HYDRATE_PAGE} conversations; the budget run needs {hydrations}",
        busy.len()
    );
    windows.retain(|w| !busy.contains(w));
    ids.retain(|c| window_of(c.start).is_none_or(|w| !busy.contains(&w)));
    let interval = |w: i64| {
        let from = base + chrono::Duration::minutes(30 * w);
        (rfc3339(from), rfc3339(from + chrono::Duration::minutes(30)))
    };
    let (mut n_get, mut n_report, mut n_hydrate) = (0usize, 0usize, 0usize);
    let mut requests = Vec::with_capacity(total);
    for i in 0..total {
        if i % HYDRATE_EVERY == 7 {
            let (from, to) = interval(busy[n_hydrate]);
            n_hydrate += 1;
            requests.push(
                Req::get(
                    &format!(
                        "/reports/search?from={from}&to={to}&page_size={HYDRATE_PAGE}&include=conversation"
                    ),
                    &[("authorization", &hydrator.bearer)],
                )
                .tagged(2)
                .tallied(hydration_tally),
            );
        } else if i % 10 < 7 {
            let c = ids
                .get(n_get)
                .context("not enough distinct conversations for the budget run")?;
            n_get += 1;
            requests.push(
                Req::get(
                    &format!("/conversations/{}", c.id),
                    &[("authorization", &key.bearer)],
                )
                .tagged(0),
            );
        } else {
            let (from, to) = interval(windows[n_report % windows.len()]);
            n_report += 1;
            let body = serde_json::json!({"from": from, "to": to, "page_size": 50});
            requests.push(
                Req::post_json(
                    "/reports/search",
                    &[("authorization", &key.bearer)],
                    body.to_string(),
                )
                .tagged(1),
            );
        }
    }
    reset_counters(http, &sim).await?;
    let before = metrics(http, &proxy).await?;
    let granted_before = granted_by_class(http, &proxy, key).await?;
    eprintln!(
        "bench: budget run: {total} requests at {per_sec:.1}/s for {} s against a budget of {r} per 60 s",
        o.budget_secs
    );
    let running = OpenLoop::start(&proxy.base, requests, per_sec, Duration::from_secs(15));
    let draining = running.sent().await?;
    let at_end = counters(http, &sim).await?;
    let granted_at_end = granted_by_class(http, &proxy, key).await?;
    let report = draining.finish().await?;
    let after_all = counters(http, &sim).await?;
    let granted_after_all = granted_by_class(http, &proxy, key).await?;
    let after = metrics(http, &proxy).await?;
    let secs = o.budget_secs as f64;
    let budget = f64::from(r) * secs / 60.0;
    let calls = at_end.api_calls() as f64;
    let used = calls / budget;
    let upstream_429 = after_all.rate_limited;
    eprintln!("bench: budget run: {}", report.summary());
    if upstream_429 > 0 {
        failures.push(format!("budget: the simulator sent {upstream_429} 429s"));
    }
    let part = |tag: usize| report.parts.get(tag).cloned().unwrap_or_default();
    let parts = [part(0), part(1), part(2)];
    let client_429: u64 = parts
        .iter()
        .map(|p| p.statuses.get(&429).copied().unwrap_or(0))
        .sum();
    if client_429 > 0 {
        failures.push(format!("budget: clients saw {client_429} 429s"));
    }
    let ok = |p: &Part| p.statuses.get(&200).copied().unwrap_or(0);
    let tally = |name: &str| parts[2].tallies.get(name).copied().unwrap_or(0);
    let waits: Vec<String> = CLASSES
        .iter()
        .map(|class| {
            let label = format!("class=\"{class}\"");
            let b = buckets(&before, "genesys_proxy_budget_wait_seconds", &label);
            let a = buckets(&after, "genesys_proxy_budget_wait_seconds", &label);
            match (bucket_quantile(&b, &a, 0.5), bucket_quantile(&b, &a, 0.99)) {
                (Some((_, p50, n)), Some((lo, hi, _))) => format!(
                    "{class}: p50 <= {}, p99 in ({}, {}] ({n:.0} granted)",
                    fmt_secs(p50),
                    fmt_secs(lo),
                    fmt_secs(hi)
                ),
                _ => format!("{class}: no granted call"),
            }
        })
        .collect();
    let _ = writeln!(
        out,
        "## 3. Budget: {}x oversubscribed mixed load for {} s (budget {r} calls per 60 s; simulator enforces {r} per 60 s per token)\n",
        o.oversubscription, o.budget_secs
    );
    let _ = writeln!(
        out,
        "Demand: {total} requests at {per_sec:.1}/s = {:.0}/min ({n_get} `GET /conversations/{{id}}` of distinct cold ids, {n_report} `POST /reports/search` of distinct half-hour intervals, {n_hydrate} `GET /reports/search?page_size={HYDRATE_PAGE}&include=conversation` of other half-hour intervals holding at least {HYDRATE_PAGE} conversations, from a second client key), open loop, client time-out 15 s. Proxy: `[budget] rate = {r}, period_secs = 60`{}, every other budget setting (`reset_guard_ms` included) the proxy's default.\n",
        per_sec * 60.0,
        if shares_set {
            format!(
                ", `report_min_share = {}`, `hydrate_min_share = {}`",
                MIN_SHARES[1], MIN_SHARES[2]
            )
        } else {
            String::new()
        }
    );
    let mut figures = Table::figures();
    figures.row(&[
        &format!("upstream calls during the {} s of load", o.budget_secs),
        &format!(
            "{calls:.0} ({:.1}/min; get_conversation {}, details_query {})",
            calls / secs * 60.0,
            at_end.calls_to("get_conversation"),
            at_end.calls_to("details_query")
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
        &"upstream calls including the drain",
        &format!(
            "{} (statuses {:?})",
            after_all.api_calls(),
            after_all.by_status()
        ),
    ]);
    figures.row(&[
        &"upstream 429s (must be 0)",
        &format!("{upstream_429} ({})", pass_or_fail(upstream_429 == 0)),
    ]);
    figures.row(&[
        &"client 429s (must be 0)",
        &format!("{client_429} ({})", pass_or_fail(client_429 == 0)),
    ]);
    // Each 200 of a lookup or a search stands for one upstream call (every id and interval
    // is asked once), each conversation attached to a hydration page for one more.
    let served = ok(&parts[0]) + ok(&parts[1]) + ok(&parts[2]) + tally("hydrated");
    figures.row(&[
        &"upstream calls that served a client (drain included): lookup and search 200s + conversations attached to hydration pages",
        &format!(
            "{served} / {} = {:.0}%",
            after_all.api_calls(),
            served as f64 * 100.0 / after_all.api_calls().max(1) as f64
        ),
    ]);
    figures.row(&[
        &"budget wait of granted calls (from the proxy's histogram buckets)",
        &waits.join("; "),
    ]);
    figures.write(out);

    // Per class: demand, grants, shares.
    let delta = |a: Option<[u64; 3]>, b: Option<[u64; 3]>| {
        a.zip(b)
            .map(|(a, b)| [0, 1, 2].map(|c| b[c].saturating_sub(a[c])))
    };
    let during = delta(granted_before, granted_at_end);
    let with_drain = delta(granted_before, granted_after_all);
    let granted_total = during.map_or(0, |g| g.iter().sum::<u64>());
    let demand = [
        format!("{n_get} `GET /conversations/{{id}}` of distinct cold ids: one call each"),
        format!(
            "{n_report} `POST /reports/search`, and the report pages of the {n_hydrate} hydration searches: one call each"
        ),
        format!(
            "{n_hydrate} `GET /reports/search?include=conversation` (client `hydrator`): up to {HYDRATE_PAGE} conversation calls each, at most {}",
            n_hydrate * HYDRATE_PAGE
        ),
    ];
    let has_demand = [n_get > 0, n_report + n_hydrate > 0, n_hydrate > 0];
    let mut classes = Table::new([
        left("class"),
        left("demand offered by the load generator"),
        right("upstream calls granted during the load"),
        right("share of those grants"),
        left(format!(
            "minimum share (configured; must reach it less {:.0} points)",
            MIN_SHARE_TOLERANCE * 100.0
        )),
        right("granted including the drain"),
        left("client answers of the class's requests (p50 / p99)"),
    ]);
    for (c, class) in CLASSES.iter().enumerate() {
        let (granted, share) = match during {
            Some(g) => (
                g[c].to_string(),
                Some(g[c] as f64 / granted_total.max(1) as f64),
            ),
            None => ("not reported".to_owned(), None),
        };
        let floor = MIN_SHARES[c] - MIN_SHARE_TOLERANCE;
        let verdict = if c == 0 {
            "none: first once the others have their minimum shares".to_owned()
        } else if !shares_set {
            "not set: this proxy has no minimum shares".to_owned()
        } else {
            let min = format!("{:.0}%", MIN_SHARES[c] * 100.0);
            match share {
                _ if !has_demand[c] => format!("{min} (no demand)"),
                Some(s) if s >= floor => format!("{min} (PASS)"),
                Some(s) => {
                    failures.push(format!(
                        "budget: the {class} class had demand and got {:.1}% of the {granted_total} upstream calls granted during the load, below its minimum share of {min} less {:.0} points",
                        s * 100.0,
                        MIN_SHARE_TOLERANCE * 100.0
                    ));
                    format!("{min} (FAIL)")
                }
                None => format!("{min} (not checked: the proxy does not report grants per class)"),
            }
        };
        let p = &parts[c];
        let mut answers = format!("{} ({} ms)", statuses(p), quantiles_ms(p, &[0.5, 0.99], 0));
        if c == 2 {
            let _ = write!(
                answers,
                "; {} hits on the 200 pages, {} with their conversation attached",
                tally("hits"),
                tally("hydrated")
            );
            if tally("unreadable pages") > 0 {
                let _ = write!(answers, ", {} pages unreadable", tally("unreadable pages"));
            }
        }
        classes.row(&[
            class,
            &demand[c],
            &granted,
            &share.map_or("-".to_owned(), |s| format!("{:.1}%", s * 100.0)),
            &verdict,
            &with_drain.map_or("not reported".to_owned(), |g| g[c].to_string()),
            &answers,
        ]);
    }
    classes.row(&[
        &"all",
        &format!("{total} requests"),
        &during.map_or("not reported".to_owned(), |_| granted_total.to_string()),
        &"100%",
        &"",
        &with_drain.map_or("not reported".to_owned(), |g| {
            g.iter().sum::<u64>().to_string()
        }),
        &"",
    ]);
    classes.write(out);
    drop(proxy);
    drop(sim);
    Ok(())
}

/// A budget wait as printed: milliseconds below 1 s, `> 30 s` for the last bucket.
/// The simulator of the budget runs: a month of 20,000 conversations, enforcing `rate` calls
/// per 60 s per token, pages as large as asked, intervals matched exactly.
pub(crate) fn budget_sim_args(rate: &str) -> [&str; 12] {
    [
        "--conversations",
        "20000",
        "--days",
        "30",
        "--rate-limit",
        rate,
        "--rate-window",
        "60",
        "--max-page-size",
        "10000",
        "--interval-matching",
        "exact",
    ]
}

fn fmt_secs(s: f64) -> String {
    if s.is_infinite() {
        "> 30 s".to_owned()
    } else if s < 0.001 {
        format!("{} ms", s * 1000.0)
    } else if s < 1.0 {
        format!("{:.0} ms", s * 1000.0)
    } else {
        format!("{s} s")
    }
}
