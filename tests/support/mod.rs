//! Shared set-up of the proxy's integration tests: a simulator on port 0 and the pieces of
//! the proxy pointed at it.
#![allow(dead_code)]

pub mod browser;
pub mod capture;
pub mod openapi;
pub mod redis;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use genesys_proxy::upstream::budget::{BudgetSettings, LocalBudget};
use genesys_proxy::upstream::{
    CallContext, Class, ClientCredentials, Endpoints, GenesysClient, UpstreamSettings,
};
use genesys_sim::{IntervalMatching, SimConfig, Simulator};
use secrecy::SecretString;
use uuid::Uuid;

/// The ids of the simulator's first `n` conversations (any state).
pub fn conversation_ids(sim: &Simulator, n: usize) -> Vec<Uuid> {
    sim.data()
        .conversations
        .iter()
        .take(n)
        .map(|c| c.id)
        .collect()
}

/// The ids of `n` conversations already over on the simulator's clock (their documents
/// no longer change, so a cached copy stays right).
pub fn ended_conversation_ids(sim: &Simulator, n: usize) -> Vec<Uuid> {
    let now = sim.state().now();
    sim.data()
        .conversations
        .iter()
        .filter(|c| c.is_over_at(now))
        .take(n)
        .map(|c| c.id)
        .collect()
}

/// The instant test orgs are generated around.
pub fn anchor() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-03-12T00:00:00Z")
        .expect("valid anchor")
        .with_timezone(&Utc)
}

/// 900 conversations over 100 days, with Genesys' documented "touched day" interval
/// matching (so the proxy must drop hits outside each chunk): the reports tests' org.
pub fn big_org() -> SimConfig {
    SimConfig {
        seed: 3,
        conversations: 900,
        days: 100,
        live_conversations: 4,
        anchor: Some(anchor()),
        interval_matching: IntervalMatching::StartedOnTouchedDay,
        ..SimConfig::default()
    }
}

/// `hour` o'clock (UTC), `days_before_anchor` days before [`anchor`].
pub fn at(days_before_anchor: i64, hour: u32) -> DateTime<Utc> {
    anchor() - chrono::Duration::days(days_before_anchor) + chrono::Duration::hours(i64::from(hour))
}

/// `t` as RFC 3339 to the second, as query strings carry it.
pub fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `name` on `PATH`. Missing: `None` (the caller returns: skipped, said on stderr) outside
/// CI; under CI (`CI` set), where no test may skip, a failure. `install` says how to get it.
pub fn installed(name: &str, install: &str) -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is not installed ({install}): this test cannot run in CI"
        );
        eprintln!("skipped: {name} not installed ({install})");
    }
    found
}

/// A small org with a fixed anchor.
pub fn sim_config() -> SimConfig {
    SimConfig {
        seed: 7,
        conversations: 400,
        days: 10,
        live_conversations: 6,
        anchor: Some(anchor()),
        interval_matching: IntervalMatching::StartedInInterval,
        ..SimConfig::default()
    }
}

/// A budget that never gets in the way (for tests about something else).
pub fn generous_budget() -> BudgetSettings {
    BudgetSettings {
        rate: 1_000_000,
        period_secs: 60.0,
        burst: 10_000,
        max_concurrency: 64,
        reset_guard_ms: 0,
        ..BudgetSettings::default()
    }
}

/// Fast retries for tests.
pub fn upstream_settings() -> UpstreamSettings {
    UpstreamSettings {
        request_timeout_ms: 2_000,
        retry_base_ms: 10,
        retry_max_ms: 50,
        ..UpstreamSettings::default()
    }
}

pub fn credentials(secret: &str) -> ClientCredentials {
    ClientCredentials {
        client_id: genesys_sim::config::DEFAULT_CLIENT_ID.to_owned(),
        client_secret: SecretString::from(secret.to_owned()),
    }
}

/// A Genesys client against `sim`.
pub fn client(
    sim: &Simulator,
    budget: BudgetSettings,
    settings: UpstreamSettings,
    secret: &str,
) -> Arc<GenesysClient> {
    let endpoints = Endpoints::explicit(&sim.base_url(), &sim.base_url()).expect("sim URLs");
    Arc::new(
        GenesysClient::new(
            &endpoints,
            credentials(secret),
            settings,
            Arc::new(LocalBudget::new(budget)),
        )
        .expect("client builds"),
    )
}

/// A call context of `class` for `client` with `timeout`.
pub fn ctx(class: Class, client: &str, timeout: Duration) -> CallContext {
    CallContext::new(class, client.to_owned(), 1, timeout)
}

/// The key of the test client with every scope.
pub const ADMIN_KEY: &str = "gp_test_admin_key_0123456789abcdefghijklmnopqrstuvw";
/// The key of a test client with only `reports:read`.
pub const REPORTS_KEY: &str = "gp_test_reports_key_0123456789abcdefghijklmnopqrstu";

/// Settings for a test proxy: port 0, two clients, fast retries, a generous budget.
pub fn proxy_settings() -> genesys_proxy::Settings {
    use genesys_proxy::auth::{ClientSettings, Scope, hash_key};
    let mut settings = genesys_proxy::Settings::default();
    settings.server.listen = "127.0.0.1:0".parse().expect("addr");
    settings.server.request_timeout_ms = 3_000;
    settings.upstream = upstream_settings();
    settings.budget = generous_budget();
    // Notifications off unless a test turns them on (tests/notifications.rs): the other
    // tests count upstream calls and token requests.
    settings.notifications.mode = genesys_proxy::notifications::settings::Mode::Off;
    settings.clients = vec![
        ClientSettings {
            name: "tester".into(),
            key_sha256: hash_key(ADMIN_KEY),
            scopes: vec![Scope::Admin],
            weight: 1,
        },
        ClientSettings {
            name: "reporter".into(),
            key_sha256: hash_key(REPORTS_KEY),
            scopes: vec![Scope::ReportsRead],
            weight: 1,
        },
    ];
    settings
}

/// A simulator and a proxy in front of it, both on port 0.
pub struct TestApp {
    pub sim: Simulator,
    pub base: String,
    pub http: reqwest::Client,
    pub state: genesys_proxy::routes::AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A response read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: bytes::Bytes,
}

impl Reply {
    /// Reads a response whole.
    pub async fn read(response: reqwest::Response) -> Self {
        Self {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.bytes().await.expect("body"),
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ascii").to_owned())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Builds a proxy with `settings` whose Genesys (API and login) is at `genesys_url`, with
/// `secret` as its client secret, and serves it on port 0: its base URL, its state, and
/// the sender that stops it.
pub async fn serve_proxy(
    settings: genesys_proxy::Settings,
    genesys_url: &str,
    secret: &str,
) -> (
    String,
    genesys_proxy::routes::AppState,
    tokio::sync::oneshot::Sender<()>,
) {
    let connection = genesys_proxy::config::GenesysConnection {
        endpoints: Endpoints::explicit(genesys_url, genesys_url).expect("urls"),
        credentials: credentials(secret),
    };
    let app = genesys_proxy::App::build(settings, connection)
        .await
        .expect("proxy builds");
    let base = format!("http://{}", app.local_addr());
    let state = app.state().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.serve(async {
        let _ = stopped.await;
    }));
    (base, state, stop)
}

impl TestApp {
    /// Starts a simulator with `sim` and a proxy with `settings` in front of it.
    pub async fn start(sim: SimConfig, settings: genesys_proxy::Settings) -> Self {
        Self::start_with_secret(sim, settings, genesys_sim::config::DEFAULT_CLIENT_SECRET).await
    }

    /// As [`start`](Self::start), with the proxy using `secret` as its client secret.
    pub async fn start_with_secret(
        sim: SimConfig,
        settings: genesys_proxy::Settings,
        secret: &str,
    ) -> Self {
        let sim = Simulator::start(sim).await.expect("sim starts");
        let (base, state, stop) = serve_proxy(settings, &sim.base_url(), secret).await;
        Self {
            sim,
            base,
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                .build()
                .expect("client"),
            state,
            stop: Some(stop),
        }
    }

    /// The default org and settings.
    pub async fn default_app() -> Self {
        Self::start(sim_config(), proxy_settings()).await
    }

    /// GET `path` with `key` (none when empty) and extra headers.
    pub async fn get_with(&self, path: &str, key: &str, headers: &[(&str, &str)]) -> Reply {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if !key.is_empty() {
            request = request.bearer_auth(key);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("request sent");
        Reply::read(response).await
    }

    /// GET `path` as the admin test client.
    pub async fn get(&self, path: &str) -> Reply {
        self.get_with(path, ADMIN_KEY, &[]).await
    }

    /// POST a JSON body to `path` as the admin test client.
    pub async fn post(&self, path: &str, body: &serde_json::Value) -> Reply {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(ADMIN_KEY)
            .json(body)
            .send()
            .await
            .expect("request sent");
        Reply::read(response).await
    }

    /// Upstream conversation calls the simulator has answered.
    pub fn upstream_conversation_calls(&self) -> u64 {
        self.sim
            .counters()
            .calls_to(genesys_sim::endpoint::GET_CONVERSATION)
    }

    /// An ended and a live conversation id of the simulated org.
    pub fn ended_id(&self) -> Uuid {
        let now = self.sim.state().now();
        self.sim
            .data()
            .conversations
            .iter()
            .find(|c| c.is_over_at(now))
            .expect("ended")
            .id
    }

    pub fn live_id(&self) -> Uuid {
        self.live_ids()
            .first()
            .expect("live")
            .parse()
            .expect("a conversation id")
    }

    /// Every conversation running on the simulator's clock (started, not over), as
    /// `/sim/changes` lists them.
    pub fn live_ids(&self) -> Vec<String> {
        let now = self.sim.state().now();
        self.sim
            .data()
            .conversations
            .iter()
            .filter(|c| c.start <= now && !c.is_over_at(now))
            .map(|c| c.id.to_string())
            .collect()
    }

    /// Moves the simulator's clock on by `seconds` through its `/sim/clock/advance` control.
    pub async fn advance_sim_clock(&self, seconds: u64) {
        let reply = self
            .http
            .post(format!("{}/sim/clock/advance", self.sim.base_url()))
            .json(&serde_json::json!({ "seconds": seconds }))
            .send()
            .await
            .expect("sim clock control");
        assert!(reply.status().is_success(), "clock: {}", reply.status());
    }
}

/// How long a test waits for a condition before it fails.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Polls `check` every 50 ms until it gives a value, failing after [`PATIENCE`] with `what`.
pub async fn eventually_some<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = tokio::time::Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(started.elapsed() < PATIENCE, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `check` every 50 ms until it holds, failing after [`PATIENCE`] with `what`.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    eventually_some(what, || {
        let holds = check();
        async move { holds.await.then_some(()) }
    })
    .await;
}

/// Asserts a problem+json body with `status`, returning it.
pub fn assert_problem(reply: &Reply, status: u16) -> serde_json::Value {
    assert_eq!(reply.status, status, "{}", reply.text());
    assert_eq!(
        reply.header("content-type").as_deref(),
        Some("application/problem+json"),
        "{}",
        reply.text()
    );
    let problem = reply.json();
    assert_eq!(problem["status"], status);
    assert!(
        problem["type"]
            .as_str()
            .expect("type")
            .starts_with("urn:genesys-proxy:problem:")
    );
    assert!(problem["title"].is_string() && problem["detail"].is_string());
    assert_eq!(
        problem["instance"].as_str(),
        reply.header("x-request-id").as_deref()
    );
    problem
}

/// The demo as `--demo` runs it: the simulator in-process and the proxy on port 0.
#[cfg(feature = "demo")]
pub struct DemoRun {
    pub demo: genesys_proxy::demo::Demo,
    pub address: std::net::SocketAddr,
    /// The start-up banner, as printed.
    pub banner: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

#[cfg(feature = "demo")]
impl Drop for DemoRun {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts the demo exactly as `genesys-proxy --demo` does, on port 0.
#[cfg(feature = "demo")]
pub async fn start_demo() -> DemoRun {
    let mut settings = genesys_proxy::Settings::default();
    settings.server.listen = "127.0.0.1:0".parse().expect("addr");
    let (demo, connection) = genesys_proxy::demo::Demo::start(&mut settings)
        .await
        .expect("demo starts");
    let app = genesys_proxy::App::build(settings, connection)
        .await
        .expect("proxy builds");
    let address = app.local_addr();
    let banner = demo.banner(address);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.serve(async {
        let _ = stopped.await;
    }));
    DemoRun {
        demo,
        address,
        banner,
        stop: Some(stop),
    }
}
