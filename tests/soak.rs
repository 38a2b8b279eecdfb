//! Fault soak: mixed client load against the proxy while the simulator cycles through
//! Genesys faults, with the proxy's promises to its clients checked on every response.
//!
//! Load (bounded: a fixed set of client tasks, each paced and capped in requests):
//! - warm: `GET /conversations/{id}` on a few ids fetched before the soak (live and ended
//!   conversations; some `?view=full`, some with `If-None-Match`);
//! - cold: `GET /conversations/{id}` on ids of the generated org not cached by the proxy
//!   (taken from a queue of the org's ids; each is dropped from the proxy's cache before it
//!   is asked for, so a "cold" request is never a hit whatever happened before);
//! - search: `GET /reports/search` with `last=` and with `from`/`to`, a few filters, and the
//!   POST form now and then;
//! - aggregates: `GET /reports/aggregates` (relative and absolute, grouped, bucketed) and the
//!   POST form now and then.
//!
//! Phases of a cycle: steady (no fault), latency spike (800 ms on every call), 5xx burst
//! (half the API calls answer 502 or 503), full outage, login outage (with every token
//! revoked a third of the way in), 429 storm with `Retry-After: 2`, 429 storm with
//! `Retry-After: 20`, malformed bodies (every successful API answer truncated), then
//! recovered (no fault). After each fault is cleared the test probes cold ids until one
//! answers 200, within a deadline (below).
//!
//! Invariants, checked on every response and reported with counts per phase:
//! - no client ever gets a 429;
//! - every answer but 2xx/304 is `application/problem+json` whose JSON body carries the
//!   `status` and a `title`;
//! - every 503 carries a `Retry-After` of whole seconds (at least 1);
//! - a 200 of `GET /conversations/{id}` (either view) carries that id and no other;
//! - warm ids always answer 200 (or 304 to `If-None-Match`): served stale when Genesys fails;
//! - in the fault-free phases (steady, recovered) every request answers 200/304;
//! - after each fault ends, a cold id answers 200 again within the fault's `Retry-After`
//!   plus 2 s, measured from the fault's end as the proxy could see it: the clear, plus the
//!   injected latency for the latency phase (calls already under way still take it). The
//!   storms' `Retry-After` is the simulator's (2 s and 20 s); the 5xx burst, the outage and
//!   the malformed bodies carry none (2 s); the login outage carries none from Genesys,
//!   but the proxy deliberately backs off its token requests after failures and says so in
//!   its 503s' `Retry-After`: there the deadline is the latest instant the proxy promised
//!   (a 503's arrival plus its `Retry-After`), plus 2 s;
//! - the test process's RSS (the proxy and the simulator run in it) and the number of
//!   live tokio tasks after the soak (and a settle) stay within generous bounds of the
//!   figures before it.
//!
//! Proxy settings beyond `tests/support`'s: short freshness (1-3 s for conversations, 2-5 s
//! for report pages, stale-while-revalidate 1 s), so warm entries go stale in every phase
//! and a warm 200 during a fault is really a stale-if-error serving and not a fresh hit;
//! stale-if-error at least 600 s and at least twice the whole soak, so a warm entry can never
//! fall out of its stale-if-error bound while the soak runs (the bound is the design's, not
//! what is under test here); a smaller cache byte budget (32 MiB conversations, 16 MiB
//! reports) so memory is bounded by configuration and not by the org's size. The
//! simulator's own rate limit is set out of reach (1,000,000 a minute): real rate limiting
//! is the budget tests' and the bench's subject, the 429s here are the injected storms.
//!
//! Duration: one cycle takes about 60 s (debug build). `SOAK_SECS=N` runs N / 60 cycles
//! (at least one); `SOAK_PHASE_SECS=N` sets the length of each fault phase (default 4).

mod support;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use chrono::Utc;
use genesys_sim::{Faults, SimConfig, Storm, endpoint};
use reqwest::Method;
use serde_json::{Value, json};
use support::{ADMIN_KEY, Reply, TestApp, anchor, proxy_settings, rfc, sim_config};
use uuid::Uuid;

/// How long a client waits for any answer before calling it a hang.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Added to every recovery deadline (the "+ 2 s").
const RECOVERY_SLACK: Duration = Duration::from_secs(2);
/// Pause between two recovery probes.
const PROBE_PAUSE: Duration = Duration::from_millis(100);
/// Latency of the latency phase.
const LATENCY_MS: u64 = 800;
/// Allowed RSS growth of the test process over the soak.
const RSS_GROWTH_MAX_KB: u64 = 256 * 1024;
/// Allowed growth of the live tokio task count over the soak, after a settle. Idle
/// keep-alive connections hold tasks (a client task and a server task each, on both hops);
/// their number is bounded by the client tasks and the upstream concurrency, not by the
/// number of requests.
const TASK_GROWTH_MAX: usize = 96;
/// Most violations described in full in the failure message (all are counted).
const VIOLATIONS_SHOWN: usize = 40;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn env_secs(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// VmRSS of this process, in kB.
fn rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// What a request was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Warm,
    Cold,
    Search,
    Aggregates,
    Probe,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Self::Warm => "warm",
            Self::Cold => "cold",
            Self::Search => "search",
            Self::Aggregates => "aggregates",
            Self::Probe => "probe",
        }
    }
}

/// The faults of one phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Latency,
    Errors5xx,
    Outage,
    LoginOutage,
    Storm { retry_after_secs: u64 },
    Malformed,
}

impl Fault {
    const CYCLE: [Self; 7] = [
        Self::Latency,
        Self::Errors5xx,
        Self::Outage,
        Self::LoginOutage,
        Self::Storm {
            retry_after_secs: 2,
        },
        Self::Storm {
            retry_after_secs: 20,
        },
        Self::Malformed,
    ];

    fn name(self) -> String {
        match self {
            Self::Latency => format!("latency {LATENCY_MS} ms"),
            Self::Errors5xx => "5xx burst (502/503 at 0.25 each)".into(),
            Self::Outage => "full outage".into(),
            Self::LoginOutage => "login outage + token revocation".into(),
            Self::Storm { retry_after_secs } => {
                format!("429 storm, Retry-After {retry_after_secs} s")
            }
            Self::Malformed => "malformed bodies".into(),
        }
    }

    fn faults(self) -> Faults {
        let mut faults = Faults::default();
        match self {
            Self::Latency => faults.latency_ms = LATENCY_MS,
            Self::Errors5xx => {
                faults.error_rates = BTreeMap::from([(502, 0.25), (503, 0.25)]);
            }
            Self::Outage => faults.outage = true,
            Self::LoginOutage => faults.login_outage = true,
            Self::Storm { retry_after_secs } => {
                faults.storm = Some(Storm {
                    retry_after_secs,
                    remaining: None,
                });
            }
            Self::Malformed => faults.malformed_responses = u32::MAX,
        }
        faults
    }
}

/// Upstream figures read from the simulator's counters.
#[derive(Debug, Clone, Copy, Default)]
struct Upstream {
    api_calls: u64,
    api_429: u64,
    api_5xx: u64,
    token_calls: u64,
    tokens_issued: u64,
}

impl Upstream {
    fn read(app: &TestApp) -> Self {
        let c = app.sim.counters();
        let api_calls = c
            .calls
            .iter()
            .filter(|(name, _)| name.as_str() != endpoint::OAUTH_TOKEN)
            .map(|(_, by)| by.values().sum::<u64>())
            .sum();
        Self {
            api_calls,
            api_429: c.api_calls_with(429),
            api_5xx: (500..=504).map(|s| c.api_calls_with(s)).sum(),
            token_calls: c.calls_to(endpoint::OAUTH_TOKEN),
            tokens_issued: c.tokens_issued,
        }
    }

    fn since(self, before: Self) -> Self {
        Self {
            api_calls: self.api_calls - before.api_calls,
            api_429: self.api_429 - before.api_429,
            api_5xx: self.api_5xx - before.api_5xx,
            token_calls: self.token_calls - before.token_calls,
            tokens_issued: self.tokens_issued - before.tokens_issued,
        }
    }
}

/// What happened in one phase.
#[derive(Debug)]
struct PhaseRecord {
    name: String,
    /// Every request must answer 200/304 (fault-free phases).
    strict: bool,
    started: Instant,
    secs: f64,
    counts: BTreeMap<Kind, BTreeMap<u16, u64>>,
    /// Warm answers marked `stale-if-error` by `Cache-Status`.
    warm_stale_if_error: u64,
    /// The latest instant a 503 of this phase promised (arrival + `Retry-After`).
    latest_promise: Option<Instant>,
    max_retry_after: u64,
    upstream_before: Upstream,
    upstream: Option<Upstream>,
    /// For a fault's recovery phase: the time from the fault's end to the first cold 200,
    /// and the deadline it had.
    recovery: Option<(Option<Duration>, Duration)>,
}

/// Ids that the proxy has not cached, handed out one at a time.
#[derive(Debug)]
struct ColdPool {
    queue: VecDeque<Uuid>,
    reused: u64,
    taken: u64,
    total: usize,
}

/// Everything the client tasks and the driver share.
struct Soak {
    app: TestApp,
    warm: Vec<Uuid>,
    /// ETags seen per (id, full view).
    etags: Mutex<HashMap<(Uuid, bool), String>>,
    cold: Mutex<ColdPool>,
    phase: AtomicUsize,
    phases: Mutex<Vec<PhaseRecord>>,
    /// Warm requests are held to "always 200" from now on.
    warm_checked: AtomicBool,
    stop: AtomicBool,
    violations: Mutex<Vec<String>>,
    violation_count: AtomicU64,
    reports: ReportPaths,
}

/// The report requests the load rotates through.
struct ReportPaths {
    searches: Vec<(Method, String, Option<Value>)>,
    aggregates: Vec<(Method, String, Option<Value>)>,
}

impl ReportPaths {
    fn new(app: &TestApp) -> Self {
        let org = &app.sim.data().org;
        let queue = |i: usize| org.queues[i % org.queues.len()].id;
        let day = |k: i64| {
            let from = anchor() - chrono::Duration::days(k);
            (rfc(from), rfc(from + chrono::Duration::days(1)))
        };
        let mut searches = vec![
            (
                Method::GET,
                "/reports/search?last=PT1H&page_size=10".to_owned(),
                None,
            ),
            (
                Method::GET,
                "/reports/search?last=PT6H&media_types=voice&order=desc&page_size=25".to_owned(),
                None,
            ),
            (
                Method::POST,
                "/reports/search".to_owned(),
                Some(json!({"last": "PT2H", "directions": ["outbound"], "page_size": 20})),
            ),
        ];
        let mut aggregates = vec![
            (
                Method::GET,
                "/reports/aggregates?last=P1D&granularity=PT1H&metrics=offered,handle".to_owned(),
                None,
            ),
            (
                Method::POST,
                "/reports/aggregates".to_owned(),
                Some(
                    json!({"last": "PT12H", "group_by": ["direction"], "metrics": ["offered", "abandon"]}),
                ),
            ),
        ];
        for k in 1..=8 {
            let (from, to) = day(k);
            let q = usize::try_from(k).expect("small");
            searches.push((
                Method::GET,
                format!(
                    "/reports/search?from={from}&to={to}&queue_ids={}&page_size=20",
                    queue(q)
                ),
                None,
            ));
            searches.push((
                Method::GET,
                format!(
                    "/reports/search?from={from}&to={to}&directions=inbound&media_types=voice,chat&min_handle_seconds=60&order=desc"
                ),
                None,
            ));
            aggregates.push((
                Method::GET,
                format!(
                    "/reports/aggregates?from={from}&to={to}&group_by=queue_id&metrics=offered,wait,handle"
                ),
                None,
            ));
            aggregates.push((
                Method::GET,
                format!(
                    "/reports/aggregates?from={from}&to={to}&granularity=PT30M&group_by=media_type&metrics=talk,acw&queue_ids={}",
                    queue(q + 3)
                ),
                None,
            ));
        }
        Self {
            searches,
            aggregates,
        }
    }
}

impl Soak {
    fn violation(&self, text: String) {
        self.violation_count.fetch_add(1, Ordering::Relaxed);
        let mut list = lock(&self.violations);
        if list.len() < VIOLATIONS_SHOWN {
            list.push(text);
        }
    }

    /// Starts a phase; returns its index.
    fn begin(&self, name: String, strict: bool) -> usize {
        let mut phases = lock(&self.phases);
        let now = Instant::now();
        if let Some(last) = phases.last_mut() {
            last.secs = now.duration_since(last.started).as_secs_f64();
            last.upstream = Some(Upstream::read(&self.app).since(last.upstream_before));
        }
        phases.push(PhaseRecord {
            name,
            strict,
            started: now,
            secs: 0.0,
            counts: BTreeMap::new(),
            warm_stale_if_error: 0,
            latest_promise: None,
            max_retry_after: 0,
            upstream_before: Upstream::read(&self.app),
            upstream: None,
            recovery: None,
        });
        let index = phases.len() - 1;
        self.phase.store(index, Ordering::SeqCst);
        index
    }

    fn end_phases(&self) {
        let mut phases = lock(&self.phases);
        if let Some(last) = phases.last_mut() {
            last.secs = last.started.elapsed().as_secs_f64();
            last.upstream = Some(Upstream::read(&self.app).since(last.upstream_before));
        }
    }

    fn latest_promise(&self, indexes: &[usize]) -> Option<Instant> {
        let phases = lock(&self.phases);
        indexes
            .iter()
            .filter_map(|&i| phases[i].latest_promise)
            .max()
    }

    /// Sends one request; `Err` when no answer came within [`CLIENT_TIMEOUT`].
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<Reply, String> {
        let mut request = self
            .app
            .http
            .request(method, format!("{}{path}", self.app.base))
            .bearer_auth(ADMIN_KEY)
            .timeout(CLIENT_TIMEOUT);
        if let Some(body) = body {
            request = request.json(body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// Sends a request, checks every invariant on its answer and counts it in the phase it
    /// was sent in. Returns the status (0 when no answer came).
    async fn request(
        &self,
        kind: Kind,
        method: Method,
        path: &str,
        body: Option<&Value>,
        conversation: Option<Uuid>,
        if_none_match: Option<&str>,
    ) -> (u16, Option<Reply>) {
        let phase = self.phase.load(Ordering::SeqCst);
        let headers: Vec<(&str, &str)> = if_none_match
            .map(|e| vec![("if-none-match", e)])
            .unwrap_or_default();
        let shown_method = method.clone();
        let result = self.send(method, path, body, &headers).await;
        let arrived = Instant::now();
        let (phase_name, strict) = {
            let phases = lock(&self.phases);
            (phases[phase].name.clone(), phases[phase].strict)
        };
        let what = format!("[{phase_name}] {kind:?} {shown_method} {path}");
        let reply = match result {
            Ok(reply) => reply,
            Err(error) => {
                self.violation(format!(
                    "{what}: no answer within {CLIENT_TIMEOUT:?}: {error}"
                ));
                let mut phases = lock(&self.phases);
                *phases[phase]
                    .counts
                    .entry(kind)
                    .or_default()
                    .entry(0)
                    .or_default() += 1;
                return (0, None);
            }
        };
        let status = reply.status;
        let describe = || {
            let headers: Vec<String> = reply
                .headers
                .iter()
                .filter(|(n, _)| {
                    matches!(
                        n.as_str(),
                        "content-type" | "retry-after" | "cache-status" | "x-request-id"
                    )
                })
                .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap_or("?")))
                .collect();
            let text = reply.text();
            let text: String = text.chars().take(400).collect();
            format!("{what} -> {status} [{}] {text}", headers.join(", "))
        };
        let ok = (200..300).contains(&status) || status == 304;
        if status == 429 {
            self.violation(format!("a client got a 429: {}", describe()));
        }
        if !ok {
            let problem_json =
                reply.header("content-type").as_deref() == Some("application/problem+json");
            let body: Option<Value> = serde_json::from_slice(&reply.body).ok();
            let carries = body.as_ref().is_some_and(|b| {
                b["status"].as_u64() == Some(u64::from(status)) && b["title"].is_string()
            });
            if !problem_json || !carries {
                self.violation(format!(
                    "an error that is not problem+json with status and title: {}",
                    describe()
                ));
            }
        }
        let mut promise = None;
        if status == 503 {
            match reply
                .header("retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok())
            {
                Some(secs) if secs >= 1 => {
                    promise = Some((arrived + Duration::from_secs(secs), secs));
                }
                _ => self.violation(format!(
                    "a 503 without a Retry-After of whole seconds: {}",
                    describe()
                )),
            }
        }
        if let (Some(id), 200) = (conversation, status) {
            let body: Option<Value> = serde_json::from_slice(&reply.body).ok();
            let carried = body.as_ref().and_then(|b| b["id"].as_str());
            if carried != Some(id.to_string().as_str()) {
                self.violation(format!(
                    "GET /conversations/{id} answered another id ({carried:?}): {}",
                    describe()
                ));
            }
        }
        if kind == Kind::Warm && self.warm_checked.load(Ordering::SeqCst) {
            let fine = status == 200 || (status == 304 && if_none_match.is_some());
            if !fine {
                self.violation(format!("a warm id did not answer 200: {}", describe()));
            }
        }
        if strict && !ok {
            self.violation(format!(
                "a request failed in a fault-free phase: {}",
                describe()
            ));
        }
        let stale_if_error = reply
            .header("cache-status")
            .is_some_and(|v| v.contains("stale-if-error"));
        {
            let mut phases = lock(&self.phases);
            let record = &mut phases[phase];
            *record
                .counts
                .entry(kind)
                .or_default()
                .entry(status)
                .or_default() += 1;
            if kind == Kind::Warm && stale_if_error {
                record.warm_stale_if_error += 1;
            }
            if let Some((at, secs)) = promise {
                record.latest_promise = record.latest_promise.max(Some(at));
                record.max_retry_after = record.max_retry_after.max(secs);
            }
        }
        (status, Some(reply))
    }

    /// Takes a cold id: one the proxy does not hold (dropped from its cache if it was
    /// fetched before, when the org's ids have all been used once).
    async fn take_cold(&self) -> Uuid {
        let id = {
            let mut pool = lock(&self.cold);
            let id = pool.queue.pop_front().expect("the pool is never empty");
            pool.taken += 1;
            if pool.taken > pool.total as u64 {
                pool.reused += 1;
            }
            id
        };
        self.app.state.conversations.forget(id).await;
        id
    }

    fn give_back(&self, id: Uuid) {
        lock(&self.cold).queue.push_back(id);
    }

    async fn cold_request(&self, kind: Kind) -> u16 {
        let id = self.take_cold().await;
        let (status, _) = self
            .request(
                kind,
                Method::GET,
                &format!("/conversations/{id}"),
                None,
                Some(id),
                None,
            )
            .await;
        self.give_back(id);
        status
    }

    async fn warm_request(&self, n: u64) {
        let id = self.warm[usize::try_from(n).expect("fits") % self.warm.len()];
        let full = n % 4 == 1;
        let path = if full {
            format!("/conversations/{id}?view=full")
        } else {
            format!("/conversations/{id}")
        };
        let etag = if n % 3 == 2 {
            lock(&self.etags).get(&(id, full)).cloned()
        } else {
            None
        };
        let (status, reply) = self
            .request(
                Kind::Warm,
                Method::GET,
                &path,
                None,
                Some(id),
                etag.as_deref(),
            )
            .await;
        if let (200, Some(reply)) = (status, reply) {
            if let Some(tag) = reply.header("etag") {
                lock(&self.etags).insert((id, full), tag);
            }
        }
    }

    async fn report_request(&self, kind: Kind, n: u64) {
        let list = match kind {
            Kind::Search => &self.reports.searches,
            _ => &self.reports.aggregates,
        };
        let (method, path, body) = &list[usize::try_from(n).expect("fits") % list.len()];
        self.request(kind, method.clone(), path, body.as_ref(), None, None)
            .await;
    }
}

/// One client task: `kind` requests, `pause` apart, at most `cap` of them.
async fn client(soak: Arc<Soak>, kind: Kind, offset: u64, pause: Duration, cap: u64) -> u64 {
    let mut sent = 0;
    while !soak.stop.load(Ordering::SeqCst) && sent < cap {
        let n = offset + sent * 7;
        match kind {
            Kind::Warm => soak.warm_request(n).await,
            Kind::Cold | Kind::Probe => {
                soak.cold_request(Kind::Cold).await;
            }
            Kind::Search | Kind::Aggregates => soak.report_request(kind, n).await,
        }
        sent += 1;
        tokio::time::sleep(pause).await;
    }
    sent
}

/// Probes cold ids until one answers 200 or the deadline (asked again after each probe:
/// it may move with the proxy's promises) passes; the time from `end` to the first 200,
/// and the deadline as it stood last.
async fn recover(
    soak: &Soak,
    end: Instant,
    deadline: impl Fn() -> Instant,
) -> (Option<Duration>, Instant) {
    loop {
        let status = soak.cold_request(Kind::Probe).await;
        let now = Instant::now();
        let due = deadline();
        if status == 200 {
            return (
                (now <= due).then(|| now.saturating_duration_since(end)),
                due,
            );
        }
        if now >= due {
            return (None, due);
        }
        tokio::time::sleep(PROBE_PAUSE).await;
    }
}

fn soak_sim() -> SimConfig {
    SimConfig {
        conversations: 4_000,
        days: 10,
        live_conversations: 8,
        rate_limit: 1_000_000,
        ..sim_config()
    }
}

fn soak_settings(total: Duration) -> genesys_proxy::Settings {
    let mut settings = proxy_settings();
    // The proxy's "now" is the simulator's, which runs from the fixed anchor.
    settings.reports.clock_offset_ms = (anchor() - Utc::now()).num_milliseconds();
    let cache = &mut settings.cache;
    cache.active_fresh_secs = 1;
    cache.ended_fresh_secs = 2;
    cache.settled_fresh_secs = 3;
    cache.stale_while_revalidate_secs = 1;
    cache.stale_if_error_secs = cache.stale_if_error_secs.max(600).max(2 * total.as_secs());
    cache.report_recent_fresh_secs = 2;
    cache.report_old_fresh_secs = 5;
    cache.max_bytes = 32 * 1024 * 1024;
    cache.report_max_bytes = 16 * 1024 * 1024;
    settings
}

fn table(phases: &[PhaseRecord]) -> String {
    let mut out = String::new();
    for p in phases {
        let _ = write!(out, "{:<44} {:>5.1}s", p.name, p.secs);
        for (kind, by) in &p.counts {
            let statuses: Vec<String> = by.iter().map(|(s, n)| format!("{s}:{n}")).collect();
            let _ = write!(out, " | {} {}", kind.label(), statuses.join(" "));
        }
        if p.warm_stale_if_error > 0 {
            let _ = write!(out, " | warm stale-if-error {}", p.warm_stale_if_error);
        }
        if p.max_retry_after > 0 {
            let _ = write!(out, " | max Retry-After {}s", p.max_retry_after);
        }
        if let Some(u) = p.upstream {
            let _ = write!(
                out,
                " | upstream api {} (429 {}, 5xx {}), token {} (issued {})",
                u.api_calls, u.api_429, u.api_5xx, u.token_calls, u.tokens_issued
            );
        }
        if let Some((took, deadline)) = p.recovery {
            match took {
                Some(t) => {
                    let _ = write!(
                        out,
                        " | recovered in {:.2}s (deadline {:.1}s)",
                        t.as_secs_f64(),
                        deadline.as_secs_f64()
                    );
                }
                None => {
                    let _ = write!(
                        out,
                        " | NOT recovered within {:.1}s",
                        deadline.as_secs_f64()
                    );
                }
            }
        }
        out.push('\n');
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_keeps_its_promises_while_genesys_fails() {
    let wall = Instant::now();
    let cycles = env_secs("SOAK_SECS").map_or(1, |s| (s / 60).max(1));
    let phase_len = Duration::from_secs(env_secs("SOAK_PHASE_SECS").unwrap_or(4).max(1));
    let steady = Duration::from_secs(2);
    let settled = Duration::from_secs(3);
    // Rough length of the whole soak (for the stale-if-error bound).
    let cycle_estimate = steady + phase_len * 7 + Duration::from_secs(30) + settled;
    let total = cycle_estimate * u32::try_from(cycles).expect("cycles");

    let settings = soak_settings(total);
    let token_backoff_max_secs = settings.upstream.token_backoff_max_secs;
    let upstream_timeout_ms = settings.upstream.request_timeout_ms;
    let app = TestApp::start(soak_sim(), settings).await;

    // Warm ids: live conversations and ended ones; cold ids: every other conversation
    // that has started (one that has not is a 404, not a cold 200).
    let now = app.sim.state().now();
    let started: Vec<&genesys_sim::data::ConversationRecord> = app
        .sim
        .data()
        .conversations
        .iter()
        .filter(|c| c.start <= now)
        .collect();
    let mut warm: Vec<Uuid> = started
        .iter()
        .filter(|c| !c.is_over_at(now))
        .take(4)
        .map(|c| c.id)
        .collect();
    assert!(!warm.is_empty(), "the org has live conversations");
    warm.extend(
        started
            .iter()
            .rev()
            .filter(|c| c.is_over_at(now))
            .take(4)
            .map(|c| c.id),
    );
    warm.extend(started.iter().take(2).map(|c| c.id));
    let cold: VecDeque<Uuid> = started
        .iter()
        .map(|c| c.id)
        .filter(|id| !warm.contains(id))
        .collect();
    let cold_total = cold.len();
    let reports = ReportPaths::new(&app);
    let soak = Arc::new(Soak {
        app,
        warm: warm.clone(),
        etags: Mutex::new(HashMap::new()),
        cold: Mutex::new(ColdPool {
            queue: cold,
            reused: 0,
            taken: 0,
            total: cold_total,
        }),
        phase: AtomicUsize::new(0),
        phases: Mutex::new(Vec::new()),
        warm_checked: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        violations: Mutex::new(Vec::new()),
        violation_count: AtomicU64::new(0),
        reports,
    });

    // Warm-up: every warm id fetched (and both views cached) before any fault.
    soak.begin("warm-up".into(), true);
    for (n, id) in warm.iter().enumerate() {
        for full in [false, true] {
            let path = if full {
                format!("/conversations/{id}?view=full")
            } else {
                format!("/conversations/{id}")
            };
            let (status, reply) = soak
                .request(Kind::Warm, Method::GET, &path, None, Some(*id), None)
                .await;
            assert_eq!(status, 200, "warm-up of {id} ({n})");
            if let Some(tag) = reply.and_then(|r| r.header("etag")) {
                lock(&soak.etags).insert((*id, full), tag);
            }
        }
    }
    soak.warm_checked.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let tasks_before = alive_tasks();
    let rss_before = rss_kb();

    // The client tasks: bounded in number and each in requests.
    let secs = total.as_secs().max(60);
    let mut clients = tokio::task::JoinSet::new();
    let mut spawn = |kind: Kind, offset: u64, pause_ms: u64| {
        let cap = secs * 1_000 / pause_ms;
        clients.spawn(client(
            soak.clone(),
            kind,
            offset,
            Duration::from_millis(pause_ms),
            cap,
        ));
    };
    for offset in 0..4 {
        spawn(Kind::Warm, offset, 25);
    }
    for offset in 0..2 {
        spawn(Kind::Cold, offset, 60);
    }
    spawn(Kind::Search, 0, 120);
    spawn(Kind::Search, 3, 200);
    spawn(Kind::Aggregates, 0, 150);

    let mut rss_per_cycle = Vec::new();
    for cycle in 0..cycles {
        let tag = if cycles > 1 {
            format!("c{} ", cycle + 1)
        } else {
            String::new()
        };
        soak.begin(format!("{tag}steady"), true);
        tokio::time::sleep(steady).await;
        for fault in Fault::CYCLE {
            let fault_phase = soak.begin(format!("{tag}{}", fault.name()), false);
            soak.app.sim.set_faults(fault.faults());
            if fault == Fault::LoginOutage {
                tokio::time::sleep(phase_len / 3).await;
                soak.app.sim.revoke_tokens();
                tokio::time::sleep(phase_len - phase_len / 3).await;
            } else {
                tokio::time::sleep(phase_len).await;
            }
            soak.app.sim.set_faults(Faults::default());
            let cleared = Instant::now();
            let recovery_phase = soak.begin(format!("{tag}  after {}", fault.name()), false);
            let end = match fault {
                Fault::Latency => cleared + Duration::from_millis(LATENCY_MS),
                _ => cleared,
            };
            let storm_retry_after = match fault {
                Fault::Storm { retry_after_secs } => Duration::from_secs(retry_after_secs),
                _ => Duration::ZERO,
            };
            let deadline = || {
                if fault == Fault::LoginOutage {
                    // The proxy's own token backoff, as it promised it in its 503s (those
                    // promises count down to the same instant, whenever they were made),
                    // at most the configured longest backoff.
                    let promised = soak.latest_promise(&[fault_phase, recovery_phase]);
                    let cap = end + Duration::from_secs(token_backoff_max_secs);
                    promised.map_or(end, |p| p.clamp(end, cap)) + RECOVERY_SLACK
                } else {
                    end + storm_retry_after + RECOVERY_SLACK
                }
            };
            let (took, due) = recover(&soak, end, deadline).await;
            let allowed = due.saturating_duration_since(end);
            lock(&soak.phases)[recovery_phase].recovery = Some((took, allowed));
            if took.is_none() {
                soak.violation(format!(
                    "[{}] no cold id answered 200 within {:.1}s of the fault's end",
                    fault.name(),
                    allowed.as_secs_f64()
                ));
            }
        }
        soak.begin(format!("{tag}recovered"), true);
        tokio::time::sleep(settled).await;
        rss_per_cycle.push((rss_kb(), alive_tasks()));
    }
    soak.stop.store(true, Ordering::SeqCst);
    let mut sent = 0;
    while let Some(joined) = clients.join_next().await {
        sent += joined.expect("a client task panicked");
    }
    soak.end_phases();

    // Settle: every fetch spawned for a request that has been answered ends within the
    // upstream request timeout; then moka applies its pending evictions.
    tokio::time::sleep(Duration::from_millis(upstream_timeout_ms + 500)).await;
    soak.app.state.conversations.settle().await;
    let tasks_after = alive_tasks();
    let rss_after = rss_kb();

    let phases = lock(&soak.phases);
    let pool = lock(&soak.cold);
    let stats = soak.app.state.conversations.stats();
    let mut report = table(&phases);
    let _ = writeln!(
        report,
        "requests sent by client tasks: {sent}; cold ids: {} in the org, {} taken, {} reused; \
         conversation cache: {} entries, {} bytes (max {}), {} stale servings",
        pool.total,
        pool.taken,
        pool.reused,
        stats.entries,
        stats.bytes,
        stats.max_bytes,
        stats.stale
    );
    let _ = writeln!(
        report,
        "tokio tasks alive: {tasks_before} before, {tasks_after} after; RSS kB: {rss_before:?} before, \
         {rss_after:?} after, (RSS kB, tasks) at each cycle's end {rss_per_cycle:?}; wall time {:.1}s",
        wall.elapsed().as_secs_f64()
    );
    println!("{report}");

    let count = soak.violation_count.load(Ordering::Relaxed);
    let shown = lock(&soak.violations);
    assert!(
        count == 0,
        "{count} invariant violations (first {}):\n{}\n\n{report}",
        shown.len(),
        shown.join("\n")
    );
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        assert!(
            after <= before + RSS_GROWTH_MAX_KB,
            "RSS grew from {before} kB to {after} kB\n{report}"
        );
    }
    assert!(
        tasks_after <= tasks_before + TASK_GROWTH_MAX,
        "tokio tasks grew from {tasks_before} to {tasks_after}\n{report}"
    );
    // Over several cycles (SOAK_SECS), the later cycles must not keep growing once the
    // first has warmed the connection pools and the caches.
    if let (Some(&(first_rss, first_tasks)), Some(&(last_rss, last_tasks))) =
        (rss_per_cycle.first(), rss_per_cycle.last())
    {
        assert!(
            last_tasks <= first_tasks + TASK_GROWTH_MAX / 2,
            "tokio tasks grew from {first_tasks} after the first cycle to {last_tasks}\n{report}"
        );
        if let (Some(first), Some(last)) = (first_rss, last_rss) {
            assert!(
                last <= first + RSS_GROWTH_MAX_KB / 2,
                "RSS grew from {first} kB after the first cycle to {last} kB\n{report}"
            );
        }
    }
    // Every phase of its own length saw warm and cold load (the soak measured what it
    // claims to); a recovery may be over before any client task's next request.
    for p in phases
        .iter()
        .filter(|p| p.name != "warm-up" && !p.name.contains("after "))
    {
        for kind in [Kind::Warm, Kind::Cold] {
            assert!(
                p.counts.get(&kind).is_some_and(|by| !by.is_empty()),
                "phase {} saw no {} request\n{report}",
                p.name,
                kind.label()
            );
        }
    }
}
