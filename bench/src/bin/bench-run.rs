//! `bench-run`: the benchmark orchestrator behind `bench/run`.
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
//! 4. memory: RSS and cache bytes at 10k and 100k cached conversations;
//! 5. dashboards: 50 dashboards polling the same 10 report queries every 10 s -> upstream
//!    calls per minute, as a share of the token's 300 calls per minute.
//!
//! Exits 1 when a hard invariant fails (a proxy answer of the hit runs that is not a cache
//! hit, a first fetch of the many-id run that is not a 200, coalescing != 1 upstream call,
//! any upstream 429 in the budget or dashboards run, a client 429 in either, a malformed
//! report in the dashboards run, a budget class with demand below its minimum share less
//! [`MIN_SHARE_TOLERANCE`], a scenario that could not run), never for a performance ratio.

#![allow(clippy::too_many_arguments)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use chrono::{DateTime, SecondsFormat, Utc};
use genesys_proxy_bench::load::{self, ClosedLoop, OpenLoop, Part, Report};
use genesys_proxy_bench::paced::{self, Paced, PacedReport, Pacing, Schedule};
use genesys_proxy_bench::rounds::{self, RatioSummary};
use genesys_proxy_bench::{Control, Req};
use http::{HeaderName, Method};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use tokio::time::Instant;

const SIM_BASIC: &str = "Basic c2ltLWNsaWVudDpzaW0tc2VjcmV0"; // sim-client:sim-secret
const SERVER_CPU: &str = "1";
const LOAD_CPU: &str = "0";
const SCENARIOS: [&str; 5] = ["hits", "coalescing", "budget", "memory", "dashboards"];

// ---------------------------------------------------------------------------------------
// Options

#[derive(Debug, Clone)]
struct Options {
    bin_dir: PathBuf,
    /// Where genesys-sim is, when not beside the proxy.
    sim_bin_dir: Option<PathBuf>,
    bench_bin_dir: PathBuf,
    nginx: PathBuf,
    work: PathBuf,
    pin: bool,
    connections: usize,
    hit_warmup: f64,
    hit_secs: f64,
    /// Measured seconds of each paced run (0: none).
    paced_secs: f64,
    rounds: usize,
    /// Cached conversations of the many-id hit run (0: none).
    many_ids: usize,
    /// API keys of the many-id hit run.
    many_keys: usize,
    coalesce_requests: usize,
    coalesce_latency_ms: u64,
    budget_rate: u32,
    budget_secs: u64,
    oversubscription: u32,
    mem_points: Vec<usize>,
    mem_budgets_mib: Vec<u64>,
    conversations: usize,
    dash_count: usize,
    dash_every_secs: u64,
    dash_secs: u64,
    out: Option<PathBuf>,
    only: Vec<String>,
}

impl Options {
    fn parse() -> Result<Self> {
        let here = std::env::current_exe()?;
        let bench_bin_dir = here.parent().context("a directory")?.to_path_buf();
        let mut o = Self {
            bin_dir: PathBuf::from("target/release"),
            sim_bin_dir: None,
            bench_bin_dir,
            nginx: PathBuf::from("/usr/sbin/nginx"),
            work: std::env::temp_dir().join(format!("genesys-bench-{}", std::process::id())),
            pin: true,
            connections: 64,
            hit_warmup: 1.0,
            hit_secs: 6.0,
            paced_secs: 3.0,
            rounds: 5,
            many_ids: 10_000,
            many_keys: 50,
            coalesce_requests: 1000,
            coalesce_latency_ms: 200,
            budget_rate: 300,
            budget_secs: 60,
            oversubscription: 10,
            mem_points: vec![10_000, 100_000],
            mem_budgets_mib: vec![1024, 64],
            conversations: 110_000,
            dash_count: 50,
            dash_every_secs: 10,
            dash_secs: 180,
            out: None,
            only: Vec::new(),
        };
        let mut quick = false;
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = || args.next().with_context(|| format!("a value after {arg}"));
            match arg.as_str() {
                "--bin-dir" => o.bin_dir = value()?.into(),
                "--sim-bin-dir" => o.sim_bin_dir = Some(value()?.into()),
                "--nginx" => o.nginx = value()?.into(),
                "--work" => o.work = value()?.into(),
                "--out" => o.out = Some(value()?.into()),
                "--no-pin" => o.pin = false,
                "--quick" => quick = true,
                "--connections" => o.connections = value()?.parse()?,
                "--hit-secs" => o.hit_secs = value()?.parse()?,
                "--rounds" => o.rounds = value()?.parse()?,
                "--paced-secs" => o.paced_secs = value()?.parse()?,
                "--many-ids" => o.many_ids = value()?.parse()?,
                "--many-keys" => o.many_keys = value()?.parse()?,
                "--budget-rate" => o.budget_rate = value()?.parse()?,
                "--budget-secs" => o.budget_secs = value()?.parse()?,
                "--dash-secs" => o.dash_secs = value()?.parse()?,
                "--dashboards" => o.dash_count = value()?.parse()?,
                "--only" => o.only = value()?.split(',').map(str::to_owned).collect(),
                "-h" | "--help" => {
                    println!("{}", include_str!("../../USAGE.txt"));
                    std::process::exit(0);
                }
                other => bail!("unknown argument {other:?} (see --help)"),
            }
        }
        if quick {
            o.hit_warmup = 1.0;
            o.hit_secs = o.hit_secs.min(3.0);
            o.paced_secs = o.paced_secs.min(2.0);
            o.rounds = 1;
            o.many_ids = o.many_ids.min(2_000);
            o.budget_secs = o.budget_secs.min(15);
            o.mem_points = vec![2_000, 20_000];
            o.mem_budgets_mib = vec![1024, 16];
            o.conversations = 22_000;
            o.dash_secs = o.dash_secs.min(60);
        }
        ensure!(o.dash_count >= 1, "--dashboards must be at least 1");
        ensure!(o.rounds >= 1, "--rounds must be at least 1");
        ensure!(o.many_keys >= 1, "--many-keys must be at least 1");
        ensure!(o.dash_secs >= 1, "--dash-secs must be at least 1");
        for name in &o.only {
            ensure!(
                SCENARIOS.contains(&name.as_str()),
                "--only: unknown scenario {name:?} (one of {})",
                SCENARIOS.join(",")
            );
        }
        Ok(o)
    }

    /// The simulator's binary.
    fn sim_bin(&self) -> PathBuf {
        self.sim_bin_dir
            .as_ref()
            .unwrap_or(&self.bin_dir)
            .join("genesys-sim")
    }

    fn wants(&self, scenario: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == scenario)
    }
}

// ---------------------------------------------------------------------------------------
// Processes

/// A child process, stopped (SIGTERM, then SIGKILL) when dropped.
pub(crate) struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn status_kib(&self, field: &str) -> Option<u64> {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        text.lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("bench: {} did not stop on SIGTERM; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn(
    o: &Options,
    name: &str,
    cpu: Option<&str>,
    program: &Path,
    args: &[String],
    env: &[(&str, String)],
) -> Result<Proc> {
    let log = o.work.join(format!("{name}.log"));
    let file = std::fs::File::create(&log)?;
    let mut command = match cpu.filter(|_| o.pin) {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.args(["-c", cpu]).arg(program);
            c
        }
        None => Command::new(program),
    };
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .env_remove("RUST_LOG")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    for (k, v) in env {
        command.env(k, v);
    }
    let child = command
        .spawn()
        .with_context(|| format!("starting {}", program.display()))?;
    Ok(Proc {
        name: name.to_owned(),
        child,
        log,
    })
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn wait_ready(http: &Control, proc: &mut Proc, url: &str, secs: u64) -> Result<()> {
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Ok(answer) = http.get(url, &[]).await
            && answer.status.is_success()
        {
            return Ok(());
        }
        if let Ok(Some(status)) = proc.child.try_wait() {
            bail!(
                "{} exited ({status}) before it was ready:\n{}",
                proc.name,
                proc.log_tail()
            );
        }
        if Instant::now() > until {
            bail!(
                "{} not ready at {url} after {secs} s:\n{}",
                proc.name,
                proc.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------
// The simulator and the proxy

#[allow(dead_code)] // `proc` stops the simulator when dropped
struct Sim {
    proc: Proc,
    base: String,
    addr: SocketAddr,
}

async fn start_sim(
    o: &Options,
    http: &Control,
    name: &str,
    cpu: Option<&str>,
    extra: &[&str],
) -> Result<Sim> {
    let port = free_port()?;
    let mut args = vec!["--listen".to_owned(), format!("127.0.0.1:{port}")];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let started = Instant::now();
    let mut proc = spawn(o, name, cpu, &o.sim_bin(), &args, &[])?;
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(http, &mut proc, &format!("{base}/sim/org"), 120).await?;
    eprintln!(
        "bench: {name} ready in {:.1} s, RSS {} MiB ({})",
        started.elapsed().as_secs_f64(),
        proc.status_kib("VmRSS:").unwrap_or(0) / 1024,
        extra.join(" ")
    );
    Ok(Sim {
        proc,
        addr: format!("127.0.0.1:{port}").parse()?,
        base,
    })
}

async fn sim_token(http: &Control, sim: &Sim) -> Result<String> {
    let answer = http
        .send(
            Method::POST,
            &format!("{}/oauth/token", sim.base),
            &[
                ("authorization", SIM_BASIC),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            "grant_type=client_credentials",
        )
        .await?;
    ensure!(answer.status.is_success(), "token: {}", answer.text());
    Ok(answer.json()?["access_token"]
        .as_str()
        .context("access_token")?
        .to_owned())
}

#[derive(Debug, Default, Deserialize)]
struct Counters {
    calls: BTreeMap<String, BTreeMap<u16, u64>>,
    rate_limited: u64,
}

impl Counters {
    fn api_calls(&self) -> u64 {
        self.calls
            .iter()
            .filter(|(k, _)| k.as_str() != "oauth_token")
            .flat_map(|(_, by)| by.values())
            .sum()
    }

    fn calls_to(&self, endpoint: &str) -> u64 {
        self.calls.get(endpoint).map_or(0, |by| by.values().sum())
    }

    fn by_status(&self) -> BTreeMap<u16, u64> {
        let mut out = BTreeMap::new();
        for (k, by) in &self.calls {
            if k != "oauth_token" {
                for (s, n) in by {
                    *out.entry(*s).or_default() += n;
                }
            }
        }
        out
    }
}

async fn counters(http: &Control, sim: &Sim) -> Result<Counters> {
    Ok(serde_json::from_slice(
        &http
            .get(&format!("{}/sim/counters", sim.base), &[])
            .await?
            .body,
    )?)
}

async fn reset_counters(http: &Control, sim: &Sim) -> Result<()> {
    http.send(
        Method::DELETE,
        &format!("{}/sim/counters", sim.base),
        &[],
        "",
    )
    .await?;
    Ok(())
}

async fn set_latency(http: &Control, sim: &Sim, ms: u64) -> Result<()> {
    let answer = http
        .send(
            Method::PUT,
            &format!("{}/sim/faults", sim.base),
            &[("content-type", "application/json")],
            format!("{{\"latency_ms\": {ms}}}"),
        )
        .await?;
    ensure!(answer.status.is_success(), "faults: {}", answer.text());
    Ok(())
}

/// A conversation as listed by the analytics details query.
#[derive(Debug, Clone)]
struct Listed {
    id: String,
    start: DateTime<Utc>,
    ended: bool,
    voice: bool,
}

#[derive(Deserialize)]
struct DetailsPage {
    #[serde(default)]
    conversations: Vec<DetailsConversation>,
}

#[derive(Deserialize)]
struct DetailsConversation {
    #[serde(rename = "conversationId")]
    id: String,
    #[serde(rename = "conversationStart")]
    start: DateTime<Utc>,
    #[serde(rename = "conversationEnd")]
    end: Option<String>,
    #[serde(default)]
    participants: Vec<DetailsParticipant>,
}

#[derive(Deserialize)]
struct DetailsParticipant {
    #[serde(default)]
    sessions: Vec<DetailsSession>,
}

#[derive(Deserialize)]
struct DetailsSession {
    #[serde(rename = "mediaType")]
    media: Option<String>,
}

/// Every conversation of the simulator, day by day, straight from its details query (the
/// simulator runs with `--max-page-size 10000 --interval-matching exact`).
async fn list_conversations(http: &Control, sim: &Sim, days: i64) -> Result<Vec<Listed>> {
    let token = sim_token(http, sim).await?;
    let bearer = format!("Bearer {token}");
    let now = Utc::now();
    let first = (now - chrono::Duration::days(days + 1))
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .context("midnight")?
        .and_utc();
    let mut out = Vec::new();
    let mut day = first;
    while day < now + chrono::Duration::hours(1) {
        let next = day + chrono::Duration::days(1);
        for page in 1.. {
            let body = serde_json::json!({
                "interval": format!("{}/{}", rfc3339(day), rfc3339(next)),
                "paging": {"pageSize": 10000, "pageNumber": page},
            });
            let answer = http
                .send(
                    Method::POST,
                    &format!("{}/api/v2/analytics/conversations/details/query", sim.base),
                    &[
                        ("authorization", bearer.as_str()),
                        ("content-type", "application/json"),
                    ],
                    body.to_string(),
                )
                .await?;
            ensure!(
                answer.status.is_success(),
                "details query: {} {}",
                answer.status,
                answer.text()
            );
            let parsed: DetailsPage = serde_json::from_slice(&answer.body)?;
            let n = parsed.conversations.len();
            out.extend(parsed.conversations.into_iter().map(|c| {
                Listed {
                    voice: c
                        .participants
                        .iter()
                        .flat_map(|p| &p.sessions)
                        .any(|s| s.media.as_deref() == Some("voice")),
                    id: c.id,
                    start: c.start,
                    ended: c.end.is_some(),
                }
            }));
            if n < 10_000 {
                break;
            }
        }
        day = next;
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|c| seen.insert(c.id.clone()));
    Ok(out)
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

struct Proxy {
    proc: Proc,
    base: String,
    addr: SocketAddr,
}

#[derive(Clone)]
struct Key {
    key: String,
    bearer: String,
    hash: String,
}

fn new_key() -> Key {
    let key = format!(
        "gp_bench_{:016x}{:016x}",
        fastrand::u64(..),
        fastrand::u64(..)
    );
    let hash = hex::encode(Sha256::digest(key.as_bytes()));
    Key {
        bearer: format!("Bearer {key}"),
        key,
        hash,
    }
}

#[allow(clippy::too_many_arguments)]
async fn start_proxy(
    o: &Options,
    http: &Control,
    name: &str,
    cpu: Option<&str>,
    sim: &Sim,
    key: &Key,
    sections: &str,
) -> Result<Proxy> {
    let port = free_port()?;
    let config = format!(
        "{sections}\n[telemetry]\nlog_filter = \"warn\"\n\n[[clients]]\nname = \"bench\"\nkey_sha256 = \"{}\"\nscopes = [\"admin\"]\nweight = 1\n",
        key.hash
    );
    let path = o.work.join(format!("{name}.toml"));
    std::fs::write(&path, config)?;
    let args = vec![
        "--config".to_owned(),
        path.display().to_string(),
        "--listen".to_owned(),
        format!("127.0.0.1:{port}"),
    ];
    let env = [
        ("GENESYS_API_URL", sim.base.clone()),
        ("GENESYS_LOGIN_URL", sim.base.clone()),
        ("GENESYS_CLIENT_ID", "sim-client".to_owned()),
        ("GENESYS_CLIENT_SECRET", "sim-secret".to_owned()),
    ];
    let mut proc = spawn(o, name, cpu, &o.bin_dir.join("genesys-proxy"), &args, &env)?;
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(http, &mut proc, &format!("{base}/readyz"), 60).await?;
    Ok(Proxy {
        proc,
        addr: format!("127.0.0.1:{port}").parse()?,
        base,
    })
}

async fn metrics(http: &Control, proxy: &Proxy) -> Result<String> {
    Ok(http
        .get(&format!("{}/metrics", proxy.base), &[])
        .await?
        .text())
}

/// The sum of every sample of `name` whose labels contain all of `labels`.
fn metric_sum(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Cumulative bucket counts of a histogram (`le` -> count) for one label set.
fn buckets(text: &str, name: &str, label: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{");
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with(&prefix) && l.contains(label))
    {
        let Some(le) = line.split("le=\"").nth(1).and_then(|r| r.split('"').next()) else {
            continue;
        };
        let le = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().unwrap_or(f64::NAN)
        };
        if let Some(v) = line.rsplit(' ').next().and_then(|v| v.parse().ok()) {
            out.push((le, v));
        }
    }
    out
}

/// Quantile `q` of the difference of two cumulative histograms: the upper bound of the
/// bucket it falls in (and the bound below it). None when nothing was observed.
fn bucket_quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> Option<(f64, f64, f64)> {
    let diff: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, v)| {
            let b = before
                .iter()
                .find(|(l, _)| l == le)
                .map_or(0.0, |(_, x)| *x);
            (*le, v - b)
        })
        .collect();
    let total = diff.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let target = q * total;
    let mut lower = 0.0;
    for (le, cumulative) in &diff {
        if *cumulative >= target {
            return Some((lower, *le, total));
        }
        lower = *le;
    }
    None
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

// ---------------------------------------------------------------------------------------
// Table helpers

fn statuses(part: &Part) -> String {
    let mut items: Vec<String> = part
        .statuses
        .iter()
        .map(|(s, n)| format!("{s}: {n}"))
        .collect();
    for (e, n) in &part.errors {
        items.push(format!("no answer ({e}): {n}"));
    }
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / 1_048_576.0)
}

// ---------------------------------------------------------------------------------------
// Scenario 1: cache-hit throughput

/// Seed of the order in which each round runs the targets (issue 14 asked for it).
const ORDER_SEED: u64 = 14;
/// The paced runs' rates, as shares of the ceiling's closed-loop req/s in the same round
/// and representation: well below saturation, and near it.
const PACED_SHARES: [f64; 2] = [0.5, 0.8];
/// How long after the end of a paced run's schedule requests still queued are sent (a
/// target slower than the offered rate builds a queue; what is left is counted unsent).
const PACED_GRACE: Duration = Duration::from_secs(3);
const PROXY: &str = "genesys-proxy";
const CEILING: &str = "ceiling (bare service)";
const NGINX: &str = "nginx proxy_cache";
/// The workloads of the closed-loop runs: the two representations of one id with one
/// key, and many ids with many keys.
const WORKLOADS: [&str; 3] = ["summary", "full", "many ids, many keys (full)"];

/// A server the hit runs measure.
struct HitTarget {
    name: &'static str,
    addr: SocketAddr,
    pid: u32,
    /// The header that says whether an answer was a cache hit.
    capture: HeaderName,
    /// The requests of each workload of [`WORKLOADS`] (the last is empty without a
    /// many-id run).
    requests: [Arc<Vec<Req>>; 3],
}

impl HitTarget {
    /// Answers of `part` that were cache hits, by this target's own header.
    fn hits(&self, part: &Part) -> u64 {
        part.captured
            .iter()
            .filter(|(value, _)| {
                if self.name == NGINX {
                    value.as_str() == "HIT"
                } else {
                    value.split(';').any(|item| item.trim() == "hit")
                }
            })
            .map(|(_, n)| n)
            .sum()
    }
}

/// The closed-loop runs of one target and one workload, round by round.
#[derive(Default)]
struct ClosedRuns {
    rps: Vec<f64>,
    /// Answers per CPU-second of the server.
    per_cpu: Vec<f64>,
    p99: Vec<f64>,
    cpu: Vec<CpuUse>,
    /// Every round's answers together (latency quantiles of all of them).
    all: Report,
}

impl ClosedRuns {
    fn push(&mut self, report: &Report, cpu: CpuUse) {
        self.rps.push(report.rps());
        self.per_cpu.push(report.rps() / cpu.server.max(0.01));
        self.p99.push(report.total().ms(0.99));
        self.cpu.push(cpu);
        self.all.add(report);
    }
}

/// The paced runs of one target, representation and load, round by round.
#[derive(Default)]
struct PacedRuns {
    offered: Vec<f64>,
    answered: Vec<f64>,
    server_cpu: Vec<f64>,
    p99: Vec<f64>,
    all: Report,
    pacing: Pacing,
}

fn each_round(values: &[f64], digits: usize) -> String {
    values
        .iter()
        .map(|v| format!("{v:.digits$}"))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// Non-200 answers and requests without an answer.
fn bad_answers(part: &Part) -> u64 {
    part.statuses
        .iter()
        .filter(|(s, _)| **s != 200)
        .map(|(_, n)| n)
        .sum::<u64>()
        + part.error_count()
}

/// One closed-loop run of `requests` against `target`, with the CPU it used.
async fn closed_run(
    o: &Options,
    target: &HitTarget,
    requests: Arc<Vec<Req>>,
    label: &str,
    round: usize,
) -> Result<(Report, CpuUse)> {
    let run = ClosedLoop {
        addr: target.addr,
        connections: o.connections,
        warmup: Duration::from_secs_f64(o.hit_warmup),
        duration: Duration::from_secs_f64(o.hit_secs),
        requests,
        capture: Some(target.capture.clone()),
    };
    let (warmup, secs) = (run.warmup, run.duration);
    let probe = async {
        tokio::time::sleep(warmup).await;
        let probe = CpuProbe::start(target.pid);
        tokio::time::sleep(secs).await;
        probe.stop()
    };
    let (report, cpu) = tokio::join!(load::closed_loop(run), probe);
    let report = report?;
    eprintln!(
        "bench: hits {label} {} round {}: {}; CPU server {:.2}, load generator {:.2}, others on the server's core {:.2}",
        target.name,
        round + 1,
        report.summary(),
        cpu.server,
        cpu.load,
        cpu.other_on_server_core
    );
    Ok((report, cpu))
}

/// One paced run of `requests` against `target` at `rate`, with the server's CPU.
async fn paced_run(
    o: &Options,
    target: &HitTarget,
    requests: Arc<Vec<Req>>,
    rate: f64,
    label: &str,
    round: usize,
) -> Result<(PacedReport, f64)> {
    let schedule = Schedule {
        rate,
        warmup: Duration::from_secs_f64(o.hit_warmup),
        duration: Duration::from_secs_f64(o.paced_secs),
    };
    let run = Paced {
        addr: target.addr,
        connections: o.connections,
        schedule,
        requests,
        capture: Some(target.capture.clone()),
        grace: PACED_GRACE,
    };
    let probe = async {
        tokio::time::sleep(schedule.warmup).await;
        let probe = CpuProbe::start(target.pid);
        tokio::time::sleep(schedule.duration).await;
        probe.stop()
    };
    let (paced, cpu) = tokio::join!(paced::paced_loop(run), probe);
    let paced = paced?;
    eprintln!(
        "bench: paced {label} {} at {rate:.0}/s round {}: {}; queued {}, unsent {}, own lateness p99 {:.0} us; CPU server {:.2}",
        target.name,
        round + 1,
        paced.report.summary(),
        paced.pacing.queued,
        paced.pacing.unsent,
        paced.pacing.own_lateness_us(0.99),
        cpu.server
    );
    Ok((paced, cpu.server))
}

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

/// Fetches every id of the many-id run once through `base_addr` (`path` gives the path of
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

#[allow(clippy::too_many_lines)]
async fn scenario_hits(
    o: &Options,
    http: &Control,
    out: &mut String,
    failures: &mut Vec<String>,
    sim: &Sim,
    proxy: &Proxy,
    keys: &[Key],
    id: &str,
    many_ids: &[String],
) -> Result<()> {
    let key = keys.first().context("a key")?;
    // The proxy's two representations, as a hit: the ceiling's answers.
    let mut bodies = Vec::new();
    for (name, query) in [("summary", ""), ("full", "?view=full")] {
        bodies.push(capture_hit(o, http, proxy, key, id, name, query).await?);
    }

    // The ceiling: a bare service with the same bytes and headers.
    let ceiling_port = free_port()?;
    let mut ceiling = spawn(
        o,
        "ceiling",
        Some(SERVER_CPU),
        &o.bench_bin_dir.join("ceiling"),
        &[
            "--listen".into(),
            format!("127.0.0.1:{ceiling_port}"),
            "--dir".into(),
            o.work.join("ceiling").display().to_string(),
        ],
        &[],
    )?;
    let ceiling_base = format!("http://127.0.0.1:{ceiling_port}");
    wait_ready(http, &mut ceiling, &format!("{ceiling_base}/healthz"), 20).await?;

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
                    let runs = &mut paced[w][s][t];
                    runs.offered.push(rate);
                    runs.answered.push(run.report.rps());
                    runs.server_cpu.push(server_cpu);
                    runs.p99.push(run.report.total().ms(0.99));
                    runs.all.add(&run.report);
                    runs.pacing.add(&run.pacing);
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

fn ratio_of(
    closed: &[ClosedRuns],
    targets: &[HitTarget],
    of: &str,
    per_cpu: bool,
    target: f64,
) -> RatioSummary {
    let find = |name: &str| targets.iter().position(|t| t.name == name);
    let values = |i: Option<usize>| {
        i.map_or_else(Vec::new, |i| {
            if per_cpu {
                closed[i].per_cpu.clone()
            } else {
                closed[i].rps.clone()
            }
        })
    };
    RatioSummary::new(
        rounds::per_round_ratios(&values(find(PROXY)), &values(find(of))),
        target,
    )
}

/// The closed-loop table of the two representations, and their per-round ratios.
fn write_closed_tables(
    o: &Options,
    out: &mut String,
    targets: &[HitTarget],
    closed: &[Vec<ClosedRuns>],
    bodies: &[bytes::Bytes],
) {
    let _ = writeln!(
        out,
        "## 1. Cache-hit throughput: `GET /conversations/{{id}}`, one id, one key, {} connections, closed loop, {} s per run after {} s warm-up, {} round(s), targets in a shuffled order within each round\n",
        o.connections, o.hit_secs, o.hit_warmup, o.rounds
    );
    let _ = writeln!(
        out,
        "| representation | target | body bytes | req/s, median (min-max) of rounds | spread (max / min - 1) | req/s of each round | req per server CPU-second, median | p50 / p99 / p99.9 ms, all rounds' answers | p99 ms of each round | non-200 / errors | CPU, median of rounds: server / load gen / others on the server's core |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---|---:|---|---|---|---|");
    for (w, body) in bodies.iter().enumerate().take(2) {
        for (t, target) in targets.iter().enumerate() {
            let runs = &closed[w][t];
            let total = runs.all.total();
            let cpu = |f: fn(&CpuUse) -> f64| {
                rounds::median(&runs.cpu.iter().map(f).collect::<Vec<_>>()) * 100.0
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.0} ({:.0}-{:.0}) | {:.0}% | {} | {:.0} | {:.3} / {:.3} / {:.3} | {} | {} | {:.0}% / {:.0}% / {:.0}% |",
                WORKLOADS[w],
                target.name,
                body.len(),
                rounds::median(&runs.rps),
                rounds::minimum(&runs.rps),
                rounds::maximum(&runs.rps),
                (rounds::maximum(&runs.rps) / rounds::minimum(&runs.rps) - 1.0) * 100.0,
                each_round(&runs.rps, 0),
                rounds::median(&runs.per_cpu),
                total.ms(0.5),
                total.ms(0.99),
                total.ms(0.999),
                each_round(&runs.p99, 3),
                bad_answers(&total),
                cpu(|c| c.server),
                cpu(|c| c.load),
                cpu(|c| c.other_on_server_core),
            );
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Ratios are taken within each round (the proxy's run over the other target's run of the same round), then summarised over the rounds; the verdict is the median's.\n"
    );
    let _ = writeln!(
        out,
        "| representation | proxy / ceiling, req/s (target >= 0.9) | of each round | proxy / nginx, req/s (target >= 1.3) | of each round | proxy / ceiling, per CPU-second: median, min | proxy / nginx, per CPU-second: median, min | proxy p99 at {} connections, all rounds' answers (target < 2 ms) |",
        o.connections
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    for w in 0..2 {
        let vs_ceiling = ratio_of(&closed[w], targets, CEILING, false, 0.9);
        let vs_nginx = ratio_of(&closed[w], targets, NGINX, false, 1.3);
        let cpu_ceiling = ratio_of(&closed[w], targets, CEILING, true, 0.9);
        let cpu_nginx = ratio_of(&closed[w], targets, NGINX, true, 1.3);
        let p99 = closed[w][0].all.total().ms(0.99);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {:.2}x, {:.2}x | {:.2}x, {:.2}x | {p99:.3} ms ({}) |",
            WORKLOADS[w],
            vs_ceiling.verdict(),
            vs_ceiling.each(),
            vs_nginx.verdict(),
            vs_nginx.each(),
            cpu_ceiling.median,
            cpu_ceiling.min,
            cpu_nginx.median,
            cpu_nginx.min,
            if p99 < 2.0 { "met" } else { "NOT met" }
        );
    }
    let _ = writeln!(out);
}

/// The paced runs: latency at fixed shares of the ceiling's throughput.
fn write_paced_table(
    o: &Options,
    out: &mut String,
    targets: &[HitTarget],
    paced: &[Vec<Vec<PacedRuns>>],
) {
    if o.paced_secs <= 0.0 {
        return;
    }
    let _ = writeln!(
        out,
        "### 1b. Latency below saturation: paced at {} of the ceiling's closed-loop req/s of the same round, {} connections, {} s per run after {} s warm-up, timed from each request's scheduled send\n",
        PACED_SHARES
            .iter()
            .map(|s| format!("{:.0}%", s * 100.0))
            .collect::<Vec<_>>()
            .join(" and "),
        o.connections,
        o.paced_secs,
        o.hit_warmup
    );
    let _ = writeln!(
        out,
        "| representation | load | target | offered req/s, median | answered req/s, median | server CPU, median | p50 / p99 / p99.9 / max ms, all rounds' answers | p99 ms of each round | queued behind busy connections | load generator's own lateness p50 / p99 | non-200 / errors / unsent |"
    );
    let _ = writeln!(out, "|---|---|---|---:|---:|---:|---|---|---:|---|---|");
    for (w, by_share) in paced.iter().enumerate() {
        for (s, by_target) in by_share.iter().enumerate() {
            for (t, runs) in by_target.iter().enumerate() {
                if runs.offered.is_empty() {
                    continue;
                }
                let total = runs.all.total();
                let p = &runs.pacing;
                let _ = writeln!(
                    out,
                    "| {} | {:.0}% | {} | {:.0} | {:.0} | {:.0}% | {:.3} / {:.3} / {:.3} / {:.3} | {} | {} of {} ({:.2}%) | {:.0} / {:.0} us | {} / {} |",
                    WORKLOADS[w],
                    PACED_SHARES[s] * 100.0,
                    targets[t].name,
                    rounds::median(&runs.offered),
                    rounds::median(&runs.answered),
                    rounds::median(&runs.server_cpu) * 100.0,
                    total.ms(0.5),
                    total.ms(0.99),
                    total.ms(0.999),
                    total.ms(1.0),
                    each_round(&runs.p99, 3),
                    p.queued,
                    p.scheduled,
                    p.queued as f64 * 100.0 / p.scheduled.max(1) as f64,
                    p.own_lateness_us(0.5),
                    p.own_lateness_us(0.99),
                    bad_answers(&total),
                    p.unsent,
                );
            }
        }
    }
    let _ = writeln!(out);
}

/// The many-id, many-key closed-loop runs.
fn write_many_table(
    o: &Options,
    out: &mut String,
    targets: &[HitTarget],
    closed: &[ClosedRuns],
    ids: usize,
    keys: usize,
) {
    let _ = writeln!(
        out,
        "### 1c. Many ids, many keys: {ids} cached conversations (`?view=full`), {keys} API keys, {} connections, closed loop, {} s per run after {} s warm-up, {} round(s)\n",
        o.connections, o.hit_secs, o.hit_warmup, o.rounds
    );
    let _ = writeln!(
        out,
        "| target | body bytes per answer | req/s, median (min-max) of rounds | req/s of each round | req per server CPU-second, median | p50 / p99 / p99.9 ms, all rounds' answers | cache hits (by the target's own header) | non-200 / errors |"
    );
    let _ = writeln!(out, "|---|---:|---:|---|---:|---|---|---|");
    for (t, target) in targets.iter().enumerate() {
        let runs = &closed[t];
        let total = runs.all.total();
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.0} ({:.0}-{:.0}) | {} | {:.0} | {:.3} / {:.3} / {:.3} | {} of {} | {} |",
            target.name,
            total.body_bytes as f64 / total.answered.max(1) as f64,
            rounds::median(&runs.rps),
            rounds::minimum(&runs.rps),
            rounds::maximum(&runs.rps),
            each_round(&runs.rps, 0),
            rounds::median(&runs.per_cpu),
            total.ms(0.5),
            total.ms(0.99),
            total.ms(0.999),
            target.hits(&total),
            total.answered,
            bad_answers(&total),
        );
    }
    let vs_ceiling = ratio_of(closed, targets, CEILING, false, 0.9);
    let vs_nginx = ratio_of(closed, targets, NGINX, false, 1.3);
    let _ = writeln!(
        out,
        "\nproxy / ceiling, req/s: {} (each round {}); proxy / nginx, req/s: {} (each round {}). The ceiling answers one fixed document whatever the id; the proxy and nginx each id's own.\n",
        vs_ceiling.verdict(),
        vs_ceiling.each(),
        vs_nginx.verdict(),
        vs_nginx.each()
    );
}

async fn start_nginx(
    o: &Options,
    http: &Control,
    sim: &Sim,
    ceiling_port: u16,
    port: u16,
    token: &str,
) -> Result<Proc> {
    ensure!(
        o.nginx.exists(),
        "{} not found (bench/run installs Debian's nginx)",
        o.nginx.display()
    );
    let dir = o.work.join("nginx");
    for sub in ["cache", "tmp", "logs"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    let workers = if o.pin { 1 } else { num_cpus() };
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0");
    let user = if root { "user root;" } else { "" };
    let d = dir.display();
    let cache = |auth: &str| {
        format!(
            r#"            proxy_http_version 1.1;
            proxy_set_header Connection "";
            {auth}
            proxy_cache conv;
            proxy_cache_key $uri$is_args$args;
            proxy_cache_valid 200 10m;
            proxy_cache_lock on;
            proxy_ignore_headers Cache-Control Expires Set-Cookie;
            add_header X-Cache-Status $upstream_cache_status;"#
        )
    };
    let config = format!(
        r#"# generated by bench-run
{user}
worker_processes {workers};
daemon off;
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 75s;
    keepalive_requests 10000000;
    open_file_cache max=1000 inactive=60s;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    proxy_cache_path {d}/cache levels=1:2 keys_zone=conv:10m max_size=1g inactive=60m use_temp_path=off;
    upstream genesys {{ server {sim}; keepalive 16; }}
    upstream origin {{ server 127.0.0.1:{ceiling_port}; keepalive 16; }}
    server {{
        listen 127.0.0.1:{port} reuseport;
        location /api/v2/conversations/ {{
            proxy_pass http://genesys;
{genesys_cache}
        }}
        location /conversations/ {{
            proxy_pass http://origin;
{origin_cache}
        }}
    }}
}}
"#,
        sim = sim.addr,
        genesys_cache = cache(&format!(
            "proxy_set_header Authorization \"Bearer {token}\";"
        )),
        origin_cache = cache(""),
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, config)?;
    let mut proc = spawn(
        o,
        "nginx",
        Some(SERVER_CPU),
        &o.nginx,
        &[
            "-p".into(),
            dir.display().to_string(),
            "-c".into(),
            path.display().to_string(),
        ],
        &[],
    )?;
    // Any answer (even 404) means it listens.
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        if http
            .get(&format!("http://127.0.0.1:{port}/"), &[])
            .await
            .is_ok()
        {
            break;
        }
        if let Ok(Some(status)) = proc.child.try_wait() {
            bail!("nginx exited ({status}):\n{}", proc.log_tail());
        }
        ensure!(
            Instant::now() < until,
            "nginx did not listen:\n{}",
            proc.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(proc)
}

/// CPU time (user + system, all threads) of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces): state is field 3.
    let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    get(11) + get(12) // utime (14) and stime (15), counted from field 3
}

/// The process and its children (nginx: master and workers).
fn family(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(child) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
            if rest
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u32>().ok())
                == Some(pid)
            {
                out.push(child);
            }
        }
    }
    out
}

/// Busy and total ticks of one CPU (from /proc/stat).
fn core_ticks(cpu: &str) -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let name = format!("cpu{cpu} ");
    let Some(line) = text.lines().find(|l| l.starts_with(&name)) else {
        return (0, 0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// CPU use during a run: the server's, the load generator's, and everything else's on
/// the server's core, each as a share of one core.
#[derive(Debug, Clone, Copy, Default)]
struct CpuUse {
    server: f64,
    load: f64,
    other_on_server_core: f64,
}

struct CpuProbe {
    pids: Vec<u32>,
    server: u64,
    load: u64,
    core: (u64, u64),
    at: std::time::Instant,
}

impl CpuProbe {
    fn start(server_pid: u32) -> Self {
        let pids = family(server_pid);
        Self {
            server: pids.iter().map(|p| cpu_ticks(*p)).sum(),
            load: cpu_ticks(std::process::id()),
            core: core_ticks(SERVER_CPU),
            at: std::time::Instant::now(),
            pids,
        }
    }

    fn stop(&self) -> CpuUse {
        let hz = 100.0; // USER_HZ
        let secs = self.at.elapsed().as_secs_f64();
        let server: u64 = self.pids.iter().map(|p| cpu_ticks(*p)).sum();
        let load = cpu_ticks(std::process::id());
        let core = core_ticks(SERVER_CPU);
        let server_share = (server - self.server) as f64 / hz / secs;
        let core_busy = (core.0 - self.core.0) as f64 / (core.1 - self.core.1).max(1) as f64;
        CpuUse {
            server: server_share,
            load: (load - self.load) as f64 / hz / secs,
            other_on_server_core: (core_busy - server_share).max(0.0),
        }
    }
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
}

// ---------------------------------------------------------------------------------------
// Scenario 2: coalescing

async fn scenario_coalescing(
    o: &Options,
    http: &Control,
    out: &mut String,
    failures: &mut Vec<String>,
    sim: &Sim,
    proxy: &Proxy,
    key: &Key,
    id: &str,
) -> Result<()> {
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
    let _ = writeln!(
        out,
        "| requests | upstream calls (simulator) | upstream calls (proxy metrics) | client statuses | Cache-Status of the answers | client p50 / p99 / max | verdict |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---|---|---|---|");
    let _ = writeln!(
        out,
        "| {} | {} | {} | {} | {} | {:.0} / {:.0} / {:.0} ms | {} |\n",
        o.coalesce_requests,
        upstream,
        proxy_upstream,
        statuses(&t),
        t.captured
            .iter()
            .map(|(k, n)| format!("`{k}`: {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        t.ms(0.5),
        t.ms(0.99),
        t.ms(1.0),
        if ok { "PASS (1 call)" } else { "FAIL" }
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Scenario 3: budget

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
const MIN_SHARE_TOLERANCE: f64 = 0.03;
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

#[allow(clippy::too_many_lines)]
async fn scenario_budget(
    o: &Options,
    http: &Control,
    out: &mut String,
    failures: &mut Vec<String>,
    key: &Key,
) -> Result<()> {
    let r = o.budget_rate;
    let sim = start_sim(
        o,
        http,
        "sim-budget",
        None,
        &[
            "--conversations",
            "20000",
            "--days",
            "30",
            "--rate-limit",
            &r.to_string(),
            "--rate-window",
            "60",
            "--max-page-size",
            "10000",
            "--interval-matching",
            "exact",
        ],
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
    let _ = writeln!(out, "| figure | value |");
    let _ = writeln!(out, "|---|---|");
    let _ = writeln!(
        out,
        "| upstream calls during the {} s of load | {calls:.0} ({:.1}/min; get_conversation {}, details_query {}) |",
        o.budget_secs,
        calls / secs * 60.0,
        at_end.calls_to("get_conversation"),
        at_end.calls_to("details_query")
    );
    let _ = writeln!(
        out,
        "| budget used (target >= 95%) | {:.1}% of {budget:.0} ({}) |",
        used * 100.0,
        if used >= 0.95 { "met" } else { "NOT met" }
    );
    let _ = writeln!(
        out,
        "| upstream calls including the drain | {} (statuses {:?}) |",
        after_all.api_calls(),
        after_all.by_status()
    );
    let _ = writeln!(
        out,
        "| upstream 429s (must be 0) | {upstream_429} ({}) |",
        if upstream_429 == 0 { "PASS" } else { "FAIL" }
    );
    let _ = writeln!(
        out,
        "| client 429s (must be 0) | {client_429} ({}) |",
        if client_429 == 0 { "PASS" } else { "FAIL" }
    );
    // Each 200 of a lookup or a search stands for one upstream call (every id and interval
    // is asked once), each conversation attached to a hydration page for one more.
    let served = ok(&parts[0]) + ok(&parts[1]) + ok(&parts[2]) + tally("hydrated");
    let _ = writeln!(
        out,
        "| upstream calls that served a client (drain included): lookup and search 200s + conversations attached to hydration pages | {served} / {} = {:.0}% |",
        after_all.api_calls(),
        served as f64 * 100.0 / after_all.api_calls().max(1) as f64
    );
    let _ = writeln!(
        out,
        "| budget wait of granted calls (from the proxy's histogram buckets) | {} |\n",
        waits.join("; ")
    );

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
    let _ = writeln!(
        out,
        "| class | demand offered by the load generator | upstream calls granted during the load | share of those grants | minimum share (configured; must reach it less {:.0} points) | granted including the drain | client answers of the class's requests (p50 / p99) |",
        MIN_SHARE_TOLERANCE * 100.0
    );
    let _ = writeln!(out, "|---|---|---:|---:|---|---:|---|");
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
        let mut answers = format!("{} ({:.0} / {:.0} ms)", statuses(p), p.ms(0.5), p.ms(0.99));
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
        let _ = writeln!(
            out,
            "| {class} | {} | {granted} | {} | {verdict} | {} | {answers} |",
            demand[c],
            share.map_or("-".to_owned(), |s| format!("{:.1}%", s * 100.0)),
            with_drain.map_or("not reported".to_owned(), |g| g[c].to_string()),
        );
    }
    let _ = writeln!(
        out,
        "| all | {total} requests | {} | 100% | | {} | |\n",
        during.map_or("not reported".to_owned(), |_| granted_total.to_string()),
        with_drain.map_or("not reported".to_owned(), |g| g
            .iter()
            .sum::<u64>()
            .to_string()),
    );
    drop(proxy);
    drop(sim);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Scenario 4: memory

async fn cache_figures(http: &Control, proxy: &Proxy, key: &Key) -> Result<(u64, u64, u64)> {
    let answer = http
        .get(
            &format!("{}/admin/cache", proxy.base),
            &[("authorization", &key.bearer)],
        )
        .await?;
    let v = answer.json()?;
    let c = &v["conversations"];
    Ok((
        c["entries"].as_u64().context("entries")?,
        c["bytes"].as_u64().context("bytes")?,
        c["max_bytes"].as_u64().unwrap_or(0),
    ))
}

async fn scenario_memory(
    o: &Options,
    http: &Control,
    out: &mut String,
    failures: &mut Vec<String>,
    sim: &Sim,
    key: &Key,
    listed: &[Listed],
) -> Result<()> {
    let _ = writeln!(
        out,
        "## 4. Memory: RSS and cache bytes with {} distinct conversations fetched\n",
        o.mem_points
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" then ")
    );
    let _ = writeln!(
        out,
        "| cache.max_bytes | fetched | entries | cache bytes | of budget | bytes/entry | RSS | RSS - RSS at start | peak RSS (VmHWM) | time to fetch |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let need = *o.mem_points.iter().max().unwrap_or(&0);
    ensure!(
        listed.len() >= need,
        "the simulator lists {} conversations, {need} are needed",
        listed.len()
    );
    for budget_mib in &o.mem_budgets_mib {
        let max_bytes = budget_mib * 1024 * 1024;
        let name = format!("proxy-mem-{budget_mib}");
        let proxy = start_proxy(
            o,
            http,
            &name,
            None,
            sim,
            key,
            &format!(
                "[budget]\nrate = 1000000\nburst = 100000\nmax_concurrency = 64\nmax_queue = 100000\n\n[cache]\nmax_bytes = {max_bytes}\n"
            ),
        )
        .await?;
        let rss0 = proxy.proc.status_kib("VmRSS:").unwrap_or(0) * 1024;
        let _ = writeln!(
            out,
            "| {} | 0 | 0 | 0 | 0% | - | {} | - | - | - |",
            mib(max_bytes as f64),
            mib(rss0 as f64)
        );
        let mut done = 0;
        for point in &o.mem_points {
            let requests: Vec<Req> = listed[done..*point]
                .iter()
                .map(|c| {
                    Req::get(
                        &format!("/conversations/{}", c.id),
                        &[("authorization", &key.bearer)],
                    )
                })
                .collect();
            let started = Instant::now();
            let report = load::each_once(proxy.addr, 32, Arc::new(requests), None).await?;
            let took = started.elapsed();
            eprintln!("bench: memory {name} fill to {point}: {}", report.summary());
            let t = report.total();
            let bad = t.answered - t.statuses.get(&200).copied().unwrap_or(0) + t.error_count();
            if bad > 0 {
                failures.push(format!(
                    "memory {name}: {bad} fetches did not answer 200: {}",
                    statuses(&t)
                ));
            }
            done = *point;
            let (entries, bytes, _) = cache_figures(http, &proxy, key).await?;
            let rss = proxy.proc.status_kib("VmRSS:").unwrap_or(0) * 1024;
            let hwm = proxy.proc.status_kib("VmHWM:").unwrap_or(0) * 1024;
            if bytes > max_bytes {
                failures.push(format!(
                    "memory {name}: cache bytes {bytes} exceed max_bytes {max_bytes}"
                ));
            }
            let _ = writeln!(
                out,
                "| {} | {point} | {entries} | {} | {:.0}% | {:.0} | {} | {} | {} | {:.1} s |",
                mib(max_bytes as f64),
                mib(bytes as f64),
                bytes as f64 * 100.0 / max_bytes as f64,
                bytes as f64 / entries.max(1) as f64,
                mib(rss as f64),
                mib(rss.saturating_sub(rss0) as f64),
                mib(hwm as f64),
                took.as_secs_f64()
            );
        }
        drop(proxy);
    }
    let _ = writeln!(out);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Scenario 5: dashboards

/// The token's budget in the dashboards run: Genesys' default, as the proxy and the
/// simulator have it by default.
const DASH_BUDGET: u32 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReportKind {
    Search,
    Aggregates,
}

/// One report a dashboard shows: a GET of page 1.
#[derive(Debug, Clone)]
struct DashQuery {
    kind: ReportKind,
    /// Path and query string, as sent.
    path: String,
    /// The same, as printed (the queue id named).
    label: String,
}

/// What the polls of one query got.
#[derive(Debug, Default)]
struct DashStats {
    part: Part,
    /// 200 answers without `results` (search) or `series` (aggregates).
    malformed: u64,
    /// Fewest and most items (`results` or `series`) of a 200 answer.
    items: Option<(usize, usize)>,
    /// Ticks skipped because the dashboard's previous poll of this query was still running.
    skipped: u64,
    /// Per polling period of the run (by the poll's start): polls, answers other than 200
    /// (or none).
    by_period: Vec<(u64, u64)>,
}

/// The ten reports every dashboard polls.
fn dashboard_queries(queue: &str, queue_name: &str) -> Vec<DashQuery> {
    let search = |q: &str| ("search", format!("/reports/search?{q}&page_size=50"));
    let aggregates = |q: &str| ("aggregates", format!("/reports/aggregates?{q}"));
    let queue_q = format!("queue_ids={queue}");
    [
        search("last=PT15M&order=desc"),
        search("last=PT15M&media_types=voice&order=desc"),
        search("last=PT1H&order=desc"),
        search(&format!("last=PT1H&{queue_q}&order=asc")),
        search("last=P1D&order=asc"),
        search("last=P1D&media_types=voice&order=desc"),
        search(&format!("last=P1D&{queue_q}&order=desc")),
        aggregates("last=P1D&granularity=PT1H&group_by=queue_id&metrics=offered,handle"),
        aggregates("last=PT1H&granularity=PT15M&group_by=media_type&metrics=offered,wait,handle"),
        aggregates("last=PT15M&group_by=queue_id&metrics=offered,answered,abandon"),
    ]
    .into_iter()
    .map(|(kind, path)| DashQuery {
        kind: if kind == "search" {
            ReportKind::Search
        } else {
            ReportKind::Aggregates
        },
        label: format!("`{}`", path.replace(queue, &format!("{{{queue_name}}}"))),
        path,
    })
    .collect()
}

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

/// One poll: status, latency and the answer's shape.
async fn dash_poll(
    http: &Control,
    base: &str,
    key: &str,
    query: &DashQuery,
    stats: &std::sync::Mutex<Vec<DashStats>>,
    index: usize,
    period: usize,
) {
    let started = Instant::now();
    let answer = http
        .get(&format!("{base}{}", query.path), &[("x-api-key", key)])
        .await;
    let latency = started.elapsed();
    let mut all = stats
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let s = &mut all[index];
    if s.by_period.len() <= period {
        s.by_period.resize(period + 1, (0, 0));
    }
    s.by_period[period].0 += 1;
    if !answer.as_ref().is_ok_and(|a| a.status.as_u16() == 200) {
        s.by_period[period].1 += 1;
    }
    match answer {
        Ok(answer) => {
            let status = answer.status.as_u16();
            s.part
                .record_answer(latency, status, answer.body.len() as u64, None);
            if status == 200 {
                let field = match query.kind {
                    ReportKind::Search => "results",
                    ReportKind::Aggregates => "series",
                };
                let items = serde_json::from_slice::<serde_json::Value>(&answer.body)
                    .ok()
                    .and_then(|v| v.get(field).and_then(|f| f.as_array().map(Vec::len)));
                match items {
                    Some(n) => {
                        s.items = Some(s.items.map_or((n, n), |(lo, hi)| (lo.min(n), hi.max(n))));
                    }
                    None => s.malformed += 1,
                }
            }
        }
        Err(e) => {
            let reason = if format!("{e:#}").contains("no answer within") {
                "time-out"
            } else {
                "connection"
            };
            s.part.error(reason);
        }
    }
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

#[allow(clippy::too_many_lines)]
async fn scenario_dashboards(
    o: &Options,
    http: &Control,
    out: &mut String,
    failures: &mut Vec<String>,
    key: &Key,
) -> Result<()> {
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
        format!(
            "{p:.1}% of {budget} ({})",
            if p <= 10.0 { "met" } else { "NOT met" }
        )
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
    let _ = writeln!(
        out,
        "| report (page 1) | polls | client statuses | p50 / p99 / max ms | items on page 1 (min-max) | ticks skipped (previous poll still running) |"
    );
    let _ = writeln!(out, "|---|---:|---|---|---|---:|");
    for (q, s) in queries.iter().zip(&stats) {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.1} / {:.1} / {:.1} | {}{} | {} |",
            q.label,
            s.part.answered + s.part.error_count(),
            statuses(&s.part),
            s.part.ms(0.5),
            s.part.ms(0.99),
            s.part.ms(1.0),
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
            },
            s.skipped
        );
    }
    let _ = writeln!(out);

    let _ = writeln!(
        out,
        "| minute of the run | details queries | aggregates queries | other upstream API calls | analytics queries, % of budget | all upstream API calls, % of budget |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
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
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {ot} | {an} = {:.1}% | {} = {:.1}% |",
            d("details_query"),
            d("aggregates_query"),
            pct(an),
            an + ot,
            pct(an + ot)
        );
    }
    let _ = writeln!(out);

    let _ = writeln!(out, "| figure | value |");
    let _ = writeln!(out, "|---|---|");
    let _ = writeln!(
        out,
        "| upstream analytics queries (details + aggregates), whole run | {analytics} (details {}, aggregates {}) = {:.1}/min over {drained:.0} s |",
        last.calls_to("details_query"),
        last.calls_to("aggregates_query"),
        analytics as f64 * 60.0 / drained.max(1.0)
    );
    let others: Vec<String> = last
        .calls
        .iter()
        .filter(|(k, _)| {
            !["oauth_token", "details_query", "aggregates_query"].contains(&k.as_str())
        })
        .map(|(k, by)| format!("{k} {}", by.values().sum::<u64>()))
        .collect();
    let _ = writeln!(
        out,
        "| other upstream API calls, whole run | {other}{} (tokens {}) |",
        if others.is_empty() {
            String::new()
        } else {
            format!(" ({})", others.join(", "))
        },
        last.calls_to("oauth_token")
    );
    let _ = writeln!(
        out,
        "| max analytics queries in any 60 s (target <= 10% of the budget) | {max_analytics} = {} |",
        verdict(max_analytics)
    );
    let _ = writeln!(
        out,
        "| max upstream API calls of any kind in any 60 s | {max_all} = {:.1}% of {budget} |",
        pct(max_all)
    );
    if let Some((a, b)) = steady {
        let _ = writeln!(
            out,
            "| the same, windows ending after 120 s (the first minute's cold cache left out) | analytics {a} = {:.1}%, all {b} = {:.1}% |",
            pct(a),
            pct(b)
        );
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
    let _ = writeln!(
        out,
        "| upstream analytics queries per {} s of the run | {} |",
        o.dash_every_secs,
        upstream_timeline.join(", ")
    );
    let _ = writeln!(
        out,
        "| client non-200 per {} s of the run (by the poll's start) | {} |",
        o.dash_every_secs,
        bad_timeline
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        out,
        "| upstream statuses (simulator) / upstream calls (proxy metrics) | {:?} / {proxy_upstream:.0} |",
        last.by_status()
    );
    let _ = writeln!(
        out,
        "| upstream 429s (must be 0) | {upstream_429} ({}) |",
        if upstream_429 == 0 { "PASS" } else { "FAIL" }
    );
    let _ = writeln!(
        out,
        "| polls | {polls} ({:.1}/s; {} search, {} aggregates); {skipped} ticks skipped |",
        polls as f64 / secs,
        queries
            .iter()
            .zip(&stats)
            .filter(|(q, _)| q.kind == ReportKind::Search)
            .map(|(_, s)| s.part.answered + s.part.error_count())
            .sum::<u64>(),
        queries
            .iter()
            .zip(&stats)
            .filter(|(q, _)| q.kind == ReportKind::Aggregates)
            .map(|(_, s)| s.part.answered + s.part.error_count())
            .sum::<u64>()
    );
    let _ = writeln!(
        out,
        "| poll latency p50 / p99 / max | {:.1} / {:.1} / {:.1} ms |",
        total.ms(0.5),
        total.ms(0.99),
        total.ms(1.0)
    );
    let _ = writeln!(
        out,
        "| client statuses (non-200: {non_200}{}) | {} |",
        if malformed > 0 {
            format!("; 200 without results/series: {malformed}")
        } else {
            String::new()
        },
        statuses(&total)
    );
    let _ = writeln!(
        out,
        "| client 429s (must be 0) | {client_429} ({}) |\n",
        if client_429 == 0 { "PASS" } else { "FAIL" }
    );
    drop(proxy);
    drop(sim);
    Ok(())
}

/// Where the binaries under test come from, and the commit of their tree when it is one.
fn binaries(o: &Options) -> String {
    let describe = |dir: &Path| {
        let dir = dir.display().to_string();
        match tree_commit(&dir) {
            Some((commit, dirty)) => format!(
                "`{dir}` (tree at {commit}{})",
                if dirty {
                    " with uncommitted changes"
                } else {
                    ""
                }
            ),
            None => format!("`{dir}`"),
        }
    };
    match &o.sim_bin_dir {
        Some(sim) if *sim != o.bin_dir => format!(
            "proxy from {}, simulator from {}",
            describe(&o.bin_dir),
            describe(sim)
        ),
        _ => describe(&o.bin_dir),
    }
}

/// The short commit of the git tree holding `dir`, and whether tracked files differ from it.
fn tree_commit(dir: &str) -> Option<(String, bool)> {
    let head = Command::new("git")
        .args(["-C", dir, "rev-parse", "--short", "HEAD"])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())?;
    let commit = String::from_utf8_lossy(&head.stdout).trim().to_owned();
    let dirty = Command::new("git")
        .args(["-C", dir, "status", "--porcelain", "--untracked-files=no"])
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|out| !out.stdout.is_empty());
    Some((commit, dirty))
}

// ---------------------------------------------------------------------------------------

fn command_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text).trim().to_owned()
        })
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn machine(o: &Options) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown", |(_, v)| v.trim())
        .to_owned();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or("unknown".to_owned(), |kib| {
            format!("{:.1} GiB", kib as f64 / 1_048_576.0)
        });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    // The tree the binaries under test were built from (--bin-dir), else this one.
    let (commit, dirty) = tree_commit(&o.bin_dir.display().to_string())
        .or_else(|| tree_commit("."))
        .unwrap_or_else(|| ("unknown".to_owned(), false));
    format!(
        "Machine: {} CPUs ({model}), {mem} RAM, Linux {}, {}, {}; genesys-proxy at {commit}{}; load average at start {}.\n",
        num_cpus_total(),
        kernel.trim(),
        command_line("rustc", &["--version"]),
        command_line(&o.nginx.display().to_string(), &["-v"]),
        if dirty {
            " with uncommitted changes"
        } else {
            ""
        },
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

fn num_cpus_total() -> usize {
    std::fs::read_to_string("/proc/cpuinfo")
        .map(|t| t.lines().filter(|l| l.starts_with("processor")).count())
        .unwrap_or(0)
}

async fn run(o: &Options, out: &mut String, failures: &mut Vec<String>) -> Result<()> {
    let _ = writeln!(out, "{}", machine(o));
    let http = Control::default();
    let key = new_key();
    let _ = &key.key;
    // One simulator with a large org and no effective rate limit for scenarios 1, 2 and 4.
    if (o.wants("hits") || o.wants("coalescing") || o.wants("memory"))
        && let Err(e) = main_sim_scenarios(o, &http, out, failures, &key).await
    {
        failures.push(format!("{e:#}"));
    }
    if o.wants("budget")
        && let Err(e) = scenario_budget(o, &http, out, failures, &key).await
    {
        failures.push(format!("budget: {e:#}"));
    }
    if o.wants("dashboards")
        && let Err(e) = scenario_dashboards(o, &http, out, failures, &key).await
    {
        failures.push(format!("dashboards: {e:#}"));
    }
    Ok(())
}

/// Scenarios 1, 2 and 4, on one simulator with a large org and no effective rate limit.
async fn main_sim_scenarios(
    o: &Options,
    http: &Control,
    out: &mut String,
    failures: &mut Vec<String>,
    key: &Key,
) -> Result<()> {
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
        if o.wants("hits")
            && let Err(e) = scenario_hits(
                o, http, out, failures, &sim, &proxy, &keys, &hit_id, &many_ids,
            )
            .await
        {
            failures.push(format!("hit throughput: {e:#}"));
        }
        if o.wants("coalescing")
            && let Err(e) =
                scenario_coalescing(o, http, out, failures, &sim, &proxy, key, &cold_id).await
        {
            failures.push(format!("coalescing: {e:#}"));
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
        if let Err(e) = scenario_memory(o, http, out, failures, &sim, key, &fresh).await {
            failures.push(format!("memory: {e:#}"));
        }
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let o = match Options::parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("bench-run: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    if let Err(e) = std::fs::create_dir_all(&o.work) {
        eprintln!("bench-run: {}: {e}", o.work.display());
        return std::process::ExitCode::from(2);
    }
    // The load generator and the scenarios run on one worker thread: with `taskset -c 0`
    // (bench/run) that is CPU 0, while every server under test is pinned to CPU 1.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let started = std::time::Instant::now();
    let mut out = String::new();
    let mut failures = Vec::new();
    if let Err(e) = runtime.block_on(run(&o, &mut out, &mut failures)) {
        failures.push(format!("{e:#}"));
    }
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
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_quantile_is_the_bucket_of_the_difference_between_two_scrapes() {
        // Cumulative buckets before and after: 10 observations <= 0.1, 5 more <= 1, 5 more <= 10,
        // observed between the two scrapes (the 3 before are left out).
        let before = [(0.1, 3.0), (1.0, 3.0), (10.0, 3.0), (f64::INFINITY, 3.0)];
        let after = [
            (0.1, 13.0),
            (1.0, 18.0),
            (10.0, 23.0),
            (f64::INFINITY, 23.0),
        ];
        assert_eq!(
            bucket_quantile(&before, &after, 0.5),
            Some((0.0, 0.1, 20.0))
        );
        assert_eq!(
            bucket_quantile(&before, &after, 0.75),
            Some((0.1, 1.0, 20.0))
        );
        assert_eq!(
            bucket_quantile(&before, &after, 0.99),
            Some((1.0, 10.0, 20.0))
        );
    }

    #[test]
    fn no_observation_between_two_scrapes_has_no_quantile() {
        let same = [(0.1, 3.0), (f64::INFINITY, 3.0)];
        assert_eq!(bucket_quantile(&same, &same, 0.5), None);
    }

    #[test]
    fn a_proxy_hit_is_recognised_by_its_cache_status_item_not_a_substring() {
        let proxy = HitTarget {
            name: PROXY,
            addr: "127.0.0.1:1".parse().unwrap(),
            pid: 0,
            capture: HeaderName::from_static("cache-status"),
            requests: [
                Arc::new(Vec::new()),
                Arc::new(Vec::new()),
                Arc::new(Vec::new()),
            ],
        };
        let mut part = Part::default();
        for status in [
            "genesys-proxy; hit; ttl=21599",
            "genesys-proxy; fwd=miss; stored; ttl=21599",
            "genesys-proxy; hit; ttl=21598",
        ] {
            part.record_answer(Duration::from_micros(100), 200, 1, Some(status));
        }
        assert_eq!(proxy.hits(&part), 2);
    }

    #[test]
    fn each_round_lists_the_values_in_round_order() {
        assert_eq!(each_round(&[1.0, 2.25, 3.5], 1), "1.0 / 2.2 / 3.5");
    }
}
