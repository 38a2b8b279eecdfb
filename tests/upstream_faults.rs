//! Upstream faults: a body Genesys truncated (the simulator's own malformed-body fault),
//! and faults the simulator's switches do not produce, injected by a small shim between
//! the proxy and the simulator: a single 429 that carries the token's real window
//! (`Retry-After: 3` while `inin-ratelimit-count` shows 2 of 300, as when another limit
//! than the per-token window answers), and a 401 that persists with a fresh token
//! (`ip.not.authorized`). Everything else passes through to the simulator, which counts
//! the calls and keeps the rate window.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt as _;
use genesys_proxy::upstream::budget::BudgetSettings;
use genesys_proxy::upstream::{Class, UpstreamError, UpstreamSettings};
use genesys_sim::{Faults, SimConfig, Simulator, endpoint};
use support::{TestApp, assert_problem, conversation_ids, ctx, sim_config, upstream_settings};
use uuid::Uuid;

/// What the shim does to the next API calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Pass,
    /// The next API call is counted by the simulator, then answered 429 with this
    /// `Retry-After` and the simulator's real `inin-ratelimit-*` headers.
    RateLimitOnce {
        retry_after_secs: u64,
    },
    /// Every API call is answered 401 with this code, whatever the token.
    Unauthorized {
        code: &'static str,
    },
}

#[derive(Clone)]
struct ShimState {
    upstream: String,
    http: reqwest::Client,
    mode: Arc<Mutex<Mode>>,
    answered_429: Arc<AtomicU64>,
    answered_401: Arc<AtomicU64>,
}

struct Shim {
    addr: SocketAddr,
    state: ShimState,
}

impl Shim {
    async fn start(sim: &Simulator) -> Self {
        let state = ShimState {
            upstream: sim.base_url().trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            mode: Arc::new(Mutex::new(Mode::Pass)),
            answered_429: Arc::default(),
            answered_401: Arc::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = axum::Router::new().fallback(shim).with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, state }
    }

    fn base_url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    fn set(&self, mode: Mode) {
        *self.state.mode.lock().expect("mode") = mode;
    }

    fn answered_429(&self) -> u64 {
        self.state.answered_429.load(Ordering::SeqCst)
    }

    fn answered_401(&self) -> u64 {
        self.state.answered_401.load(Ordering::SeqCst)
    }
}

fn error_body(status: u16, code: &str, message: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "status": status,
        "code": code,
        "message": message,
        "contextId": Uuid::new_v4().to_string(),
        "details": [],
        "errors": [],
    }))
    .expect("json")
}

async fn shim(State(shim): State<ShimState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let api = parts.uri.path().starts_with("/api/v2/");
    let mode = {
        let mut mode = shim.mode.lock().expect("mode");
        let now = *mode;
        if api && matches!(now, Mode::RateLimitOnce { .. }) {
            *mode = Mode::Pass;
        }
        now
    };
    if let (true, Mode::Unauthorized { code }) = (api, mode) {
        shim.answered_401.fetch_add(1, Ordering::SeqCst);
        let body = error_body(401, code, "Access from this IP address is not authorized.");
        return (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
    }
    let bytes = axum::body::to_bytes(body, 16 * 1024 * 1024)
        .await
        .expect("request body");
    let target = format!(
        "{}{}",
        shim.upstream,
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut forward = shim.http.request(parts.method.clone(), target);
    for (name, value) in &parts.headers {
        if name != header::HOST && name != header::CONTENT_LENGTH {
            forward = forward.header(name, value);
        }
    }
    let answer = forward.body(bytes).send().await.expect("simulator answers");
    let status = answer.status();
    let headers = answer.headers().clone();
    let body = answer.bytes().await.expect("simulator body");
    let mut response = match (api, mode) {
        (true, Mode::RateLimitOnce { retry_after_secs }) => {
            shim.answered_429.fetch_add(1, Ordering::SeqCst);
            let mut response = (
                StatusCode::TOO_MANY_REQUESTS,
                error_body(
                    429,
                    "too.many.requests.retry.after",
                    &format!("Rate limit exceeded the maximum. Retry the request in [{retry_after_secs}] seconds"),
                ),
            )
                .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            response
        }
        _ => {
            let mut response = Response::new(Body::from(body));
            *response.status_mut() = status;
            response
        }
    };
    for (name, value) in &headers {
        let keep = if status == StatusCode::OK && response.status() != status {
            name.as_str().starts_with("inin-")
        } else {
            name != header::CONTENT_LENGTH && name != header::TRANSFER_ENCODING
        };
        if keep {
            response.headers_mut().insert(name.clone(), value.clone());
        }
    }
    if response.status() == StatusCode::TOO_MANY_REQUESTS {
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    response
}

/// Genesys' defaults on both sides: 300 a minute per token.
fn genesys_sim() -> SimConfig {
    SimConfig {
        rate_limit: 300,
        rate_window: Duration::from_secs(60),
        ..sim_config()
    }
}

fn endpoints(shim: &Shim) -> genesys_proxy::upstream::Endpoints {
    genesys_proxy::upstream::Endpoints::explicit(&shim.base_url(), &shim.base_url())
        .expect("shim URLs")
}

fn shim_client(
    shim: &Shim,
    budget: BudgetSettings,
    settings: UpstreamSettings,
) -> Arc<genesys_proxy::upstream::GenesysClient> {
    Arc::new(
        genesys_proxy::upstream::GenesysClient::new(
            &endpoints(shim),
            support::credentials(genesys_sim::config::DEFAULT_CLIENT_SECRET),
            settings,
            Arc::new(genesys_proxy::upstream::LocalBudget::new(budget)),
        )
        .expect("client builds"),
    )
}

#[tokio::test]
async fn one_429_with_room_in_the_window_costs_seconds_and_the_call_that_met_it_is_answered() {
    let sim = Simulator::start(genesys_sim()).await.expect("sim");
    let shim = Shim::start(&sim).await;
    let client = shim_client(&shim, BudgetSettings::default(), upstream_settings());
    let ids = conversation_ids(&sim, 6);
    client
        .get_conversation(ids[0], &ctx(Class::Realtime, "t", Duration::from_secs(5)))
        .await
        .expect("warm");

    shim.set(Mode::RateLimitOnce {
        retry_after_secs: 3,
    });
    let started = Instant::now();
    let met = {
        let client = client.clone();
        let id = ids[1];
        tokio::spawn(async move {
            let result = client
                .get_conversation(id, &ctx(Class::Realtime, "t", Duration::from_secs(9)))
                .await;
            (result, started.elapsed())
        })
    };
    // Until the budget has learnt of the 429.
    while client.budget().stats().rate_limited == 0 {
        assert!(started.elapsed() < Duration::from_secs(10), "no 429 met");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // A caller that cannot wait is told at once when to come back: the freeze's end (not
    // the window's reset, a minute away). The countdown is tested with paused time in
    // tests/budget.rs.
    let error = client
        .get_conversation(
            ids[2],
            &ctx(Class::Realtime, "u", Duration::from_millis(500)),
        )
        .await
        .map(|_| ())
        .expect_err("cannot wait out the freeze");
    let asked_within = started.elapsed();
    assert!(
        matches!(error, UpstreamError::Overloaded { .. }),
        "{error:?}"
    );
    // The freeze ends 3 s after the 429, which came after `started`, and the call that met
    // it goes first then: what is quoted is at most 3 s and a pacing slot (0.2 s at 300 a
    // minute), not the window's reset a minute away; and no less than what was left of
    // 3 s from `started` when the answer came, however slow the machine.
    let quoted = error.retry_after().expect("a retry-after");
    assert!(quoted <= Duration::from_millis(3_500), "{quoted:?}");
    assert!(
        quoted + asked_within + Duration::from_millis(100) >= Duration::from_secs(3),
        "{quoted:?} quoted {asked_within:?} after the start"
    );

    let (result, took) = met.await.expect("task");
    result.expect("the call that met the 429 is retried within its deadline");
    // Not before the freeze ends; well before a freeze of twice the Retry-After (6 s) or
    // the call's own 9 s deadline.
    assert!(
        took >= Duration::from_millis(2_900) && took <= Duration::from_millis(5_500),
        "answered {took:?} after the 429, about its Retry-After"
    );
    // Recovered: calls go through, the window (3 of 300 used) is not spent. Each has one
    // second: were the budget still frozen or waiting for the window, it would fail.
    for &id in &ids[2..6] {
        client
            .get_conversation(id, &ctx(Class::Report, "t", Duration::from_secs(1)))
            .await
            .expect("served after the freeze");
    }
    assert_eq!(shim.answered_429(), 1);
    assert_eq!(
        sim.counters().rate_limited,
        0,
        "the simulator never limited"
    );
    assert!(!client.budget().stats().frozen);
}

#[tokio::test]
async fn through_the_proxy_one_429_costs_its_retry_after_not_a_window() {
    let sim = Simulator::start(genesys_sim()).await.expect("sim");
    let shim = Shim::start(&sim).await;
    let mut settings = support::proxy_settings();
    settings.server.request_timeout_ms = 10_000;
    settings.budget = BudgetSettings::default();
    let connection = genesys_proxy::config::GenesysConnection {
        endpoints: endpoints(&shim),
        credentials: support::credentials(genesys_sim::config::DEFAULT_CLIENT_SECRET),
    };
    let app = genesys_proxy::App::build(settings, connection)
        .await
        .expect("proxy builds");
    let base = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.serve(async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let get = |id: Uuid| {
        let request = http
            .get(format!("{base}/conversations/{id}"))
            .bearer_auth(support::ADMIN_KEY);
        async move {
            let response = request.send().await.expect("sent");
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(header::RETRY_AFTER)
                .map(|v| v.to_str().expect("ascii").to_owned());
            (status, retry_after)
        }
    };
    let ids = conversation_ids(&sim, 8);
    assert_eq!(get(ids[0]).await.0, 200, "warm");

    shim.set(Mode::RateLimitOnce {
        retry_after_secs: 3,
    });
    let started = Instant::now();
    let (status, retry_after) = get(ids[1]).await;
    let took = started.elapsed();
    assert_eq!(
        (status, retry_after),
        (200, None),
        "the request that met the 429 is answered once Retry-After has passed"
    );
    assert_eq!(shim.answered_429(), 1);
    // Not before the freeze ends; well before a freeze of twice the Retry-After (6 s) or
    // the request's own 10 s deadline.
    assert!(
        took >= Duration::from_millis(2_900) && took <= Duration::from_millis(5_500),
        "{took:?}"
    );
    // Every uncached id answers again: no minute of 503s. A request still held by the
    // freeze or the window would take seconds; six take milliseconds.
    let after = Instant::now();
    for &id in &ids[2..8] {
        let (status, retry_after) = get(id).await;
        assert_eq!(status, 200, "retry-after {retry_after:?}");
    }
    assert!(
        after.elapsed() < Duration::from_secs(5),
        "{:?}",
        after.elapsed()
    );
    let _ = stop.send(());
}

#[tokio::test]
async fn a_401_that_a_fresh_token_does_not_cure_backs_off_instead_of_costing_calls_per_request() {
    let sim = Simulator::start(sim_config()).await.expect("sim");
    let shim = Shim::start(&sim).await;
    let client = shim_client(
        &shim,
        support::generous_budget(),
        UpstreamSettings {
            // The shortest backoff: half a second to a second.
            token_backoff_max_secs: 1,
            ..upstream_settings()
        },
    );
    let ids = conversation_ids(&sim, 30);
    shim.set(Mode::Unauthorized {
        code: "ip.not.authorized",
    });
    let error = client
        .get_conversation(ids[0], &ctx(Class::Realtime, "t", Duration::from_secs(5)))
        .await
        .expect_err("refused");
    assert_eq!(error, UpstreamError::Unauthorized);
    // The first request found out: a token, a call, a fresh token, a call.
    assert_eq!(shim.answered_401(), 2);
    assert_eq!(sim.counters().calls_to(endpoint::OAUTH_TOKEN), 2);

    // The next ones are answered at once (ready when first polled: they wait for nothing)
    // with the same classified error, costing nothing.
    for &id in &ids[1..21] {
        let answer = client
            .get_conversation(id, &ctx(Class::Realtime, "t", Duration::from_secs(5)))
            .now_or_never()
            .expect("answered at once");
        assert_eq!(answer.expect_err("refused"), UpstreamError::Unauthorized);
    }
    assert_eq!(shim.answered_401(), 2, "no API call during the backoff");
    assert_eq!(
        sim.counters().calls_to(endpoint::OAUTH_TOKEN),
        2,
        "no token request during the backoff"
    );
    assert!(client.tokens().stats().refused);

    // After the backoff, many callers at once: one of them tries again (a call, a new
    // token, a call), the others are answered at once.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let tasks: Vec<_> = ids[1..11]
        .iter()
        .map(|&id| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .get_conversation(id, &ctx(Class::Realtime, "t", Duration::from_secs(5)))
                    .await
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(
            task.await.expect("task").expect_err("still refused"),
            UpstreamError::Unauthorized
        );
    }
    assert_eq!(shim.answered_401(), 4);
    assert_eq!(sim.counters().calls_to(endpoint::OAUTH_TOKEN), 3);

    // The operator fixes the allow-list: after the next backoff, calls succeed again.
    shim.set(Mode::Pass);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    for &id in &ids[21..30] {
        client
            .get_conversation(id, &ctx(Class::Realtime, "t", Duration::from_secs(5)))
            .await
            .expect("accepted again");
    }
    assert!(!client.tokens().stats().refused);
    assert_eq!(sim.counters().calls_to(endpoint::OAUTH_TOKEN), 3);
    assert_eq!(
        sim.counters().calls_with(endpoint::GET_CONVERSATION, 200),
        9
    );
}

#[tokio::test]
async fn a_malformed_genesys_body_is_a_classified_502_and_is_not_cached() {
    let app = TestApp::default_app().await;
    let id = app.ended_id();
    let path = format!("/conversations/{id}");
    app.sim.set_faults(Faults {
        malformed_responses: 1,
        ..Faults::default()
    });

    let broken = app.get(&path).await;
    let problem = assert_problem(&broken, 502);
    assert_eq!(
        problem["type"],
        "urn:genesys-proxy:problem:upstream-bad-response"
    );
    assert_eq!(
        app.sim.state().faults().malformed_responses,
        0,
        "Genesys sent its truncated body"
    );

    // Genesys answers well again: the failure was not cached, the lookup goes upstream.
    let good = app.get(&path).await;
    assert_eq!(good.status, 200, "{}", good.text());
    let status = good.header("cache-status").expect("cache-status");
    assert!(status.contains("fwd=miss"), "{status}");
    let counters = app.sim.counters();
    assert_eq!(counters.arrivals_to(endpoint::GET_CONVERSATION), 2);
    assert_eq!(counters.calls_with(endpoint::GET_CONVERSATION, 200), 2);

    // Nothing of what Genesys sent reached the client: the truncated body was the first
    // half of this document.
    let document = app.get(&format!("{path}?view=full")).await;
    assert_eq!(document.status, 200);
    let opening = &document.body[..32];
    assert!(
        !broken
            .body
            .windows(opening.len())
            .any(|window| window == opening),
        "no raw Genesys body in {}",
        broken.text()
    );
    assert!(!broken.text().contains(&id.to_string()));
}
