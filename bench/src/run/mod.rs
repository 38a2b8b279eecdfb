//! `bench-run`, the benchmark orchestrator behind `bench/run` (the binary is
//! `src/bin/bench-run.rs`, which calls [`main`]).
//!
//! Starts the simulator, the proxy, the ceiling server and nginx from release binaries,
//! runs the four scenarios of issue 8 and prints one markdown table per scenario:
//!
//! 1. cache hits, proxy vs ceiling vs nginx, in rounds that run every target once in a
//!    shuffled order: throughput and latency at 64 connections (closed loop) for one id
//!    and one key, per-round ratios reported as median and minimum; latency at 50% and
//!    80% of the round's ceiling throughput, timed from each request's scheduled send
//!    (paced loop); throughput with many cached ids and many API keys;
//! 2. coalescing: 1000 concurrent cold requests for one id -> upstream calls;
//! 3. budget: 10x oversubscribed mixed load (real-time lookups, report searches and a
//!    stream of hydration searches) against a simulator enforcing the same limit ->
//!    upstream calls granted per class against the classes' minimum shares;
//! 4. memory: RSS and cache bytes at 10k and 100k cached conversations, and the bytes held
//!    per cached conversation against the bytes served for it (both representations);
//! 5. dashboards: 50 dashboards polling the same 10 report queries every 10 s -> upstream
//!    calls per minute, as a share of the token's 300 calls per minute;
//! 6. wallboard (issue 18): 20 clients polling ~200 live, changing conversations every
//!    2 s, with and without notifications -> staleness, `Age` and upstream conversation
//!    calls per minute as a share of 300;
//! 7. replicas (issue 19): proxies sharing a `redis-server` of the run's own -> hit
//!    throughput of one replica with and without `[redis] url`, the latency of a
//!    conversation another replica already fetched, and the 10x budget run over three
//!    replicas (upstream calls against the one budget, 429s).
//!
//! Exits 1 when a hard invariant fails (a proxy answer of the hit runs that is not a cache
//! hit, a first fetch of the many-id run that is not a 200, coalescing != 1 upstream call,
//! any upstream 429 in the budget, dashboards or replicas run, a client 429 in any of them
//! or in the wallboard run, a replica not in shared mode at the end of its run, a
//! malformed report in the dashboards run, a budget class with demand below its minimum share less
//! [`budget::MIN_SHARE_TOLERANCE`], a scenario that could not run), never for a
//! performance ratio.
//!
//! Modules: [`options`] (the command line), [`process`], [`sim`] and [`proxy`] (the
//! processes under test), [`cpu`] and [`prometheus`] (what is read from them), [`tables`]
//! (the markdown every scenario prints), [`redis`] (the replicas scenario's Redis), one
//! module per scenario, and [`machine`] (the line that says where the run ran).

mod budget;
mod coalescing;
mod cpu;
mod dashboards;
mod hits;
mod machine;
mod memory;
mod options;
mod process;
mod prometheus;
mod proxy;
mod redis;
mod replicas;
mod sim;
mod tables;
mod wallboard;

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use chrono::Utc;
use tokio::time::Instant;

use self::budget::scenario_budget;
use self::coalescing::scenario_coalescing;
use self::dashboards::scenario_dashboards;
use self::hits::scenario_hits;
use self::machine::machine;
use self::memory::scenario_memory;
use self::options::Options;
use self::proxy::{Key, Proxy, new_key, start_proxy};
use self::replicas::scenario_replicas;
use self::sim::{Listed, Sim, list_conversations, start_sim};
use self::wallboard::scenario_wallboard;
use crate::Control;

/// The CPU every server under test is pinned to (unless `--no-pin`).
const SERVER_CPU: &str = "1";
/// The CPU of the load generator (`bench/run` pins `bench-run` there) and of the
/// dashboards run's simulator.
const LOAD_CPU: &str = "0";

/// The proxy of the hit and coalescing runs, the simulator behind it, and its API keys:
/// the first is the admin client's, the others readers' (the many-key run).
#[derive(Clone, Copy)]
pub(crate) struct MainProxy<'a> {
    sim: &'a Sim,
    proxy: &'a Proxy,
    keys: &'a [Key],
}

/// What every scenario works with (the options and a control-plane client) and what it
/// reports (its tables and the invariants that failed).
pub(crate) struct Session<'a> {
    o: &'a Options,
    http: Control,
    /// The tables, as printed at the end.
    out: String,
    /// The invariants that failed, and the scenarios that could not run.
    failures: Vec<String>,
}

impl<'a> Session<'a> {
    fn new(o: &'a Options) -> Self {
        Self {
            o,
            http: Control::default(),
            out: String::new(),
            failures: Vec::new(),
        }
    }

    /// The options, the client, the tables and the failures, to use together.
    pub(crate) fn parts(&mut self) -> (&'a Options, &Control, &mut String, &mut Vec<String>) {
        (self.o, &self.http, &mut self.out, &mut self.failures)
    }

    /// Records the error of a scenario that could not run, under `label`.
    fn could_not_run(&mut self, label: &str, result: Result<()>) {
        if let Err(e) = result {
            self.failures.push(format!("{label}{e:#}"));
        }
    }
}

/// Every scenario asked for, in order; a scenario that cannot run is a failure, and the
/// others still run.
async fn run(session: &mut Session<'_>) {
    let o = session.o;
    let _ = writeln!(session.out, "{}", machine(o));
    let key = new_key();
    // One simulator with a large org and no effective rate limit for scenarios 1, 2 and 4.
    if o.wants("hits") || o.wants("coalescing") || o.wants("memory") {
        let result = main_sim_scenarios(session, &key).await;
        session.could_not_run("", result);
    }
    if o.wants("budget") {
        let result = scenario_budget(session, &key).await;
        session.could_not_run("budget: ", result);
    }
    if o.wants("dashboards") {
        let result = scenario_dashboards(session, &key).await;
        session.could_not_run("dashboards: ", result);
    }
    if o.wants("wallboard") {
        let result = scenario_wallboard(session, &key).await;
        session.could_not_run("wallboard: ", result);
    }
    if o.wants("replicas") {
        let result = scenario_replicas(session, &key).await;
        session.could_not_run("replicas: ", result);
    }
}

/// Scenarios 1, 2 and 4, on one simulator with a large org and no effective rate limit.
async fn main_sim_scenarios(session: &mut Session<'_>, key: &Key) -> Result<()> {
    let o = session.o;
    let http = &session.http.clone();
    let conversations = o.conversations.to_string();
    let sim = start_sim(
        o,
        http,
        "sim",
        Some(LOAD_CPU),
        &[
            "--conversations",
            &conversations,
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
    let started = Instant::now();
    let listed = list_conversations(http, &sim, 30).await?;
    eprintln!(
        "bench: listed {} conversations in {:.1} s",
        listed.len(),
        started.elapsed().as_secs_f64()
    );
    // The hit target: an ended voice conversation of days ago (settled: fresh for hours).
    let old = Utc::now() - chrono::Duration::days(3);
    let mut settled = listed
        .iter()
        .filter(|c| c.ended && c.voice && c.start < old);
    let hit_id = settled
        .next()
        .context("no settled voice conversation")?
        .id
        .clone();
    let cold_id = settled.next().context("a second one")?.id.clone();

    if o.wants("hits") || o.wants("coalescing") {
        // The many-id hit run: settled conversations (fresh for hours once fetched) other
        // than the two above (the coalescing run needs its id cold), asked with many keys.
        let mut many_ids: Vec<String> = listed
            .iter()
            .filter(|c| c.ended && c.start < old && c.id != hit_id && c.id != cold_id)
            .map(|c| c.id.clone())
            .collect();
        fastrand::seed(14);
        fastrand::shuffle(&mut many_ids);
        many_ids.truncate(if o.wants("hits") { o.many_ids } else { 0 });
        if many_ids.len() < o.many_ids && o.wants("hits") {
            eprintln!(
                "bench: only {} settled conversations for the many-id run (asked for {})",
                many_ids.len(),
                o.many_ids
            );
        }
        let mut keys = vec![key.clone()];
        keys.extend((1..o.many_keys).map(|_| new_key()));
        let mut sections =
            "[budget]\nrate = 1000000\nburst = 100000\nmax_concurrency = 64\n".to_owned();
        for (i, k) in keys.iter().enumerate().skip(1) {
            let _ = write!(
                sections,
                "\n[[clients]]\nname = \"reader-{i}\"\nkey_sha256 = \"{}\"\nscopes = [\"conversations:read\"]\nweight = 1\n",
                k.hash
            );
        }
        let proxy = start_proxy(o, http, "proxy", Some(SERVER_CPU), &sim, key, &sections).await?;
        let main = MainProxy {
            sim: &sim,
            proxy: &proxy,
            keys: &keys,
        };
        if o.wants("hits") {
            let result = scenario_hits(session, &main, &hit_id, &many_ids).await;
            session.could_not_run("hit throughput: ", result);
        }
        if o.wants("coalescing") {
            let result = scenario_coalescing(session, &main, &cold_id).await;
            session.could_not_run("coalescing: ", result);
        }
    }
    if o.wants("memory") {
        let mut fresh: Vec<Listed> = listed
            .iter()
            .filter(|c| c.id != hit_id && c.id != cold_id)
            .cloned()
            .collect();
        fastrand::seed(4);
        fastrand::shuffle(&mut fresh);
        let result = scenario_memory(session, &sim, key, &fresh).await;
        session.could_not_run("memory: ", result);
    }
    Ok(())
}

/// `bench-run`: parses the options, runs the scenarios asked for and prints their tables;
/// exits 1 when an invariant failed, 2 on a bad command line.
#[must_use]
pub fn main() -> ExitCode {
    let o = match Options::parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("bench-run: {e:#}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = std::fs::create_dir_all(&o.work) {
        eprintln!("bench-run: {}: {e}", o.work.display());
        return ExitCode::from(2);
    }
    // The load generator and the scenarios run on one worker thread: with `taskset -c 0`
    // (bench/run) that is CPU 0, while every server under test is pinned to CPU 1.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let started = std::time::Instant::now();
    let Session {
        mut out, failures, ..
    } = runtime.block_on(async {
        let mut session = Session::new(&o);
        run(&mut session).await;
        session
    });
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let _ = writeln!(
        out,
        "Run: {} s in all (load average at the end {}), {}; logs in {}.\n",
        started.elapsed().as_secs(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        if o.pin {
            "servers pinned to CPU 1, load generator to CPU 0"
        } else {
            "nothing pinned"
        },
        o.work.display()
    );
    if failures.is_empty() {
        let _ = writeln!(out, "Invariants: all held.");
    } else {
        let _ = writeln!(out, "Failures:\n");
        for f in &failures {
            let _ = writeln!(out, "- {f}");
        }
    }
    println!("{out}");
    if let Some(path) = &o.out
        && let Err(e) = std::fs::write(path, &out)
    {
        eprintln!("bench-run: {}: {e}", path.display());
    }
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
