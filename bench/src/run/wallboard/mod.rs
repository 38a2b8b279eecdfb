//! Scenario 6, wallboard (issue 18): about 200 live conversations changing in the simulator
//! (`--continuous --days 1 --conversations 32000`, its default 300 calls per minute), 20
//! clients each asking the proxy for every live conversation every 2 s, first with the
//! proxy subscribed to Genesys notifications, then with `[notifications] mode = "off"`
//! (polling on the cache TTLs). Reports the staleness of the answers (defined in
//! [`staleness`]: the time from the simulator's change to the first answer that shows it,
//! a lower bound, measured against `/sim/changes`), the `Age` served, and the upstream
//! conversation calls per minute as a share of the 300 (simulator counters, after a
//! warm-up that fetches every live conversation once). Hard invariant: no client 429.

mod staleness;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use chrono::{DateTime, Utc};
use tokio::time::Instant;

use self::staleness::{Timeline, digest, quantile, share_of_budget};
use super::Session;
use super::machine::binaries;
use super::options::Options;
use super::proxy::{Key, start_proxy};
use super::sim::{Sim, counters, reset_counters, start_sim};
use super::tables::{Table, left, met_or_not, pass_or_fail, right};
use super::{LOAD_CPU, SERVER_CPU};
use crate::Control;

/// Genesys' default token budget, as the simulator and the proxy have it.
const WALLBOARD_BUDGET: u32 = 300;

/// The live conversations and every change instant seen so far (wall ms, sorted).
#[derive(Default)]
struct Changes {
    live: Vec<String>,
    instants: HashMap<String, BTreeSet<i64>>,
}

/// Reads `/sim/changes?since=` into `changes`: the running ids, and each listed change
/// instant converted to the wall clock.
async fn read_changes(
    http: &Control,
    sim: &Sim,
    since: &str,
    changes: &Mutex<Changes>,
) -> Result<()> {
    let answer = http
        .get(&format!("{}/sim/changes?since={since}", sim.base), &[])
        .await?;
    ensure!(
        answer.status.is_success(),
        "/sim/changes: {}",
        answer.text()
    );
    let v = answer.json()?;
    let offset = v["clock_offset_ms"].as_i64().context("clock_offset_ms")?;
    let mut out = changes.lock().unwrap_or_else(PoisonError::into_inner);
    out.live.clear();
    for c in v["conversations"].as_array().context("conversations")? {
        let id = c["id"].as_str().context("id")?.to_owned();
        if !c["next_change"].is_null() {
            out.live.push(id.clone());
        }
        let set = out.instants.entry(id).or_default();
        for at in c["changes_since"].as_array().into_iter().flatten() {
            if let Some(at) = at
                .as_str()
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            {
                set.insert(at.with_timezone(&Utc).timestamp_millis() - offset);
            }
        }
    }
    Ok(())
}

/// What the clients saw.
#[derive(Default)]
struct Seen {
    timelines: HashMap<String, Timeline>,
    statuses: BTreeMap<u16, u64>,
    errors: u64,
    ages: Vec<i64>,
    pushed: u64,
}

/// One run's figures.
struct Outcome {
    mode: &'static str,
    answers: u64,
    statuses: BTreeMap<u16, u64>,
    errors: u64,
    pushed: u64,
    staleness: Vec<i64>,
    ambiguous: u64,
    ages: Vec<i64>,
    live: usize,
    conversation_calls: u64,
    other_calls: u64,
    upstream_429: u64,
    secs: f64,
}

/// The simulator's simulated "now", as RFC 3339, from its clock.
async fn sim_now(http: &Control, sim: &Sim) -> Result<String> {
    let v = http
        .get(&format!("{}/sim/clock", sim.base), &[])
        .await?
        .json()?;
    Ok(v["now"].as_str().context("now")?.to_owned())
}

/// One run: a fresh simulator and proxy with `notifications` (`"all"` or `"off"`).
async fn run_mode(o: &Options, http: &Control, key: &Key, mode: &'static str) -> Result<Outcome> {
    let conversations = o.wall_conversations.to_string();
    let sim_args = [
        "--continuous",
        "--days",
        "1",
        "--conversations",
        &conversations,
    ];
    let sim = start_sim(
        o,
        http,
        &format!("sim-wallboard-{mode}"),
        Some(LOAD_CPU),
        &sim_args,
    )
    .await?;
    let proxy = start_proxy(
        o,
        http,
        &format!("proxy-wallboard-{mode}"),
        Some(SERVER_CPU),
        &sim,
        key,
        &format!(
            "[budget]\nrate = {WALLBOARD_BUDGET}\nperiod_secs = 60\n\n[notifications]\nmode = \"{mode}\"\n"
        ),
    )
    .await?;
    if mode != "off" {
        let started = Instant::now();
        loop {
            let ready = http
                .get(&format!("{}/readyz", proxy.base), &[])
                .await?
                .json()?;
            let status = ready["components"]["notifications"]["status"].clone();
            if status == "ok" {
                break;
            }
            ensure!(
                started.elapsed() < Duration::from_secs(60),
                "notifications never subscribed: {ready}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let since = sim_now(http, &sim).await?;
    let changes = Arc::new(Mutex::new(Changes::default()));
    read_changes(http, &sim, &since, &changes).await?;

    // Warm-up: every live conversation fetched once (paced by the proxy's budget), so that
    // the measured minutes show the steady state, not 200 first fetches.
    let poll_http = Control::new(Duration::from_secs(60));
    let live = changes
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .live
        .clone();
    eprintln!(
        "bench: wallboard ({mode}): warming {} live conversations",
        live.len()
    );
    for id in &live {
        let _ = poll_http
            .get(
                &format!("{}/conversations/{id}", proxy.base),
                &[("x-api-key", &key.key)],
            )
            .await;
    }
    reset_counters(http, &sim).await?;

    let seen = Arc::new(Mutex::new(Seen::default()));
    let every = Duration::from_secs(o.wall_every_secs);
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs(o.wall_secs);
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..o.wall_clients {
        let (changes, seen, http) = (changes.clone(), seen.clone(), poll_http.clone());
        let (base, key) = (proxy.base.clone(), key.key.clone());
        let offset = every.mul_f64(c as f64 / o.wall_clients as f64);
        tasks.spawn(async move {
            let mut tick = t0 + offset;
            while tick < end {
                tokio::time::sleep_until(tick).await;
                let ids = changes
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .live
                    .clone();
                for id in ids {
                    let answer = http
                        .get(
                            &format!("{base}/conversations/{id}"),
                            &[("x-api-key", &key)],
                        )
                        .await;
                    let at = Utc::now().timestamp_millis();
                    let mut s = seen.lock().unwrap_or_else(PoisonError::into_inner);
                    match answer {
                        Ok(a) => {
                            *s.statuses.entry(a.status.as_u16()).or_default() += 1;
                            if a.status.as_u16() == 200 {
                                s.timelines
                                    .entry(id)
                                    .or_default()
                                    .answer(at, digest(&a.body));
                                if let Some(age) = a.header("age").and_then(|v| v.parse().ok()) {
                                    s.ages.push(age);
                                }
                                if a.header("cache-status")
                                    .is_some_and(|v| v.contains("pushed"))
                                {
                                    s.pushed += 1;
                                }
                            }
                        }
                        Err(_) => s.errors += 1,
                    }
                }
                while tick <= Instant::now() {
                    tick += every;
                }
            }
        });
    }
    let mut refresh = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                Some(r) => r.context("a wallboard client")?,
                None => break,
            },
            _ = refresh.tick() => read_changes(http, &sim, &since, &changes).await?,
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    // Changes up to the end, for the last answers.
    read_changes(http, &sim, &since, &changes).await?;
    let last = counters(http, &sim).await?;
    let seen = std::mem::take(&mut *seen.lock().unwrap_or_else(PoisonError::into_inner));
    let changes = changes.lock().unwrap_or_else(PoisonError::into_inner);
    let mut all = Vec::new();
    let mut ambiguous = 0;
    for (id, timeline) in &seen.timelines {
        let instants: Vec<i64> = changes
            .instants
            .get(id)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        let (s, a) = timeline.staleness(&instants);
        all.extend(s);
        ambiguous += a;
    }
    all.sort_unstable();
    let mut ages = seen.ages;
    ages.sort_unstable();
    let conversation_calls = last.calls_to("get_conversation");
    Ok(Outcome {
        mode,
        answers: seen.statuses.values().sum(),
        statuses: seen.statuses,
        errors: seen.errors,
        pushed: seen.pushed,
        staleness: all,
        ambiguous,
        ages,
        live: changes.live.len(),
        other_calls: last.api_calls() - conversation_calls,
        conversation_calls,
        upstream_429: last.rate_limited,
        secs,
    })
}

/// Scenario 6: the wallboard with notifications, then without; writes table 6.
pub(crate) async fn scenario_wallboard(session: &mut Session<'_>, key: &Key) -> Result<()> {
    let (o, http, out, failures) = session.parts();
    let mut outcomes = Vec::new();
    for mode in ["all", "off"] {
        outcomes.push(run_mode(o, http, key, mode).await?);
    }
    let _ = writeln!(
        out,
        "## 6. Wallboard: {} clients polling every live conversation every {} s for {} s (budget {WALLBOARD_BUDGET} calls per 60 s)\n",
        o.wall_clients, o.wall_every_secs, o.wall_secs
    );
    let _ = writeln!(
        out,
        "Simulator: `genesys-sim --continuous --days 1 --conversations {}` (rate limit {WALLBOARD_BUDGET} per 60 s). Binaries: {}. Staleness of an answer: its time minus the simulator's change that the next summary served for that conversation shows, when that change came first (a lower bound; see bench/src/run/wallboard/staleness.rs). Upstream calls counted by the simulator after a warm-up that fetched each live conversation once.\n",
        o.wall_conversations,
        binaries(o)
    );
    let mut table = Table::new([
        left("notifications"),
        right("live at the end"),
        right("answers"),
        left("client statuses"),
        right("served as pushed"),
        left("staleness p50 / p90 / p99 / max ms"),
        left("Age p50 / p99 s"),
        left("upstream conversation calls"),
        right("other upstream API calls"),
        right("ambiguous transitions"),
        left("target (p99 <= 1 s, <= 10% of budget)"),
    ]);
    let mut notes = Vec::new();
    for r in &outcomes {
        let q = |v: &[i64], p: f64| quantile(v, p);
        let share = share_of_budget(r.conversation_calls, r.secs, WALLBOARD_BUDGET);
        let statuses = r
            .statuses
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .chain((r.errors > 0).then(|| format!("errors: {}", r.errors)))
            .collect::<Vec<_>>()
            .join(", ");
        let met = q(&r.staleness, 0.99) <= 1_000 && share <= 10.0;
        table.row(&[
            &r.mode,
            &r.live,
            &r.answers,
            &statuses,
            &r.pushed,
            &format!(
                "{} / {} / {} / {}",
                q(&r.staleness, 0.5),
                q(&r.staleness, 0.9),
                q(&r.staleness, 0.99),
                q(&r.staleness, 1.0)
            ),
            &format!("{} / {}", q(&r.ages, 0.5), q(&r.ages, 0.99)),
            &format!(
                "{} = {:.1}/min = {share:.1}%",
                r.conversation_calls,
                r.conversation_calls as f64 * 60.0 / r.secs.max(1.0)
            ),
            &r.other_calls,
            &r.ambiguous,
            &if r.mode == "off" {
                "-"
            } else {
                met_or_not(met)
            },
        ]);
        let client_429 = r.statuses.get(&429).copied().unwrap_or(0);
        if client_429 > 0 {
            failures.push(format!(
                "wallboard ({}): clients saw {client_429} 429s",
                r.mode
            ));
        }
        if r.answers == 0 {
            failures.push(format!("wallboard ({}): no answer", r.mode));
        }
        notes.push(format!(
            "`{}`: simulator 429s {}; no client 429: {}.",
            r.mode,
            r.upstream_429,
            pass_or_fail(client_429 == 0)
        ));
    }
    table.write(out);
    let _ = writeln!(out, "{}\n", notes.join(" "));
    Ok(())
}
