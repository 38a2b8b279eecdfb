//! Stale serving, end to end: which upstream failures a cached copy may answer for
//! (`UpstreamError::may_serve_stale`), for how long (the stale-if-error window), how long a
//! client waits on a slow Genesys before its stale copy is served (the stale wait), and the
//! same for report pages (search and aggregates).
//!
//! The proxy reaches the simulator through [`GenesysFront`], a transparent forwarder that
//! can add one [`Twist`] the simulator cannot do at run time (a conversation that is gone,
//! a rotated client secret, a query Genesys refuses); every answer is still the
//! simulator's own. Entries are aged with tokio's clock (paused, advanced, resumed), not
//! by sleeping: the clock runs while requests are in flight, so no timer fires early, and
//! only the cache's own check of its windows moves with it (moka's eviction runs on the
//! real clock), so that check is what these tests prove.

mod support;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use genesys_proxy::Settings;
use genesys_proxy::routes::AppState;
use genesys_sim::faults::Storm;
use genesys_sim::{Faults, Simulator, endpoint};
use serde_json::json;
use support::{ADMIN_KEY, Reply, assert_problem, proxy_settings, sim_config};
use uuid::Uuid;

/// Freshness of every cached answer in these tests, in seconds.
const FRESH_SECS: u64 = 10;
/// The stale-if-error window after freshness ends, in seconds.
const WINDOW_SECS: u64 = 60;
/// A conversation id the simulator does not know.
const UNKNOWN_ID: &str = "00000000-0000-4000-8000-000000000000";

/// What the front changes on the way to the simulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Twist {
    /// Nothing: the front is transparent.
    #[default]
    None,
    /// Every conversation lookup asks for an unknown id (the conversation is gone).
    ConversationGone,
    /// Token requests carry another secret (the secret was rotated at Genesys).
    SecretRotated,
    /// Analytics queries lose their body (Genesys refuses the query: 400).
    QueryRefused,
}

/// A forwarder between the proxy and the simulator, for both the API and the login host.
#[derive(Clone)]
struct GenesysFront {
    sim_base: String,
    http: reqwest::Client,
    twist: Arc<Mutex<Twist>>,
}

impl GenesysFront {
    fn twist(&self) -> Twist {
        *self.twist.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Headers that belong to one hop and are not forwarded.
const HOP_HEADERS: [HeaderName; 4] = [
    header::HOST,
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::CONNECTION,
];

async fn forward(State(front): State<GenesysFront>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let mut body = axum::body::to_bytes(body, usize::MAX)
        .await
        .expect("request body");
    let mut path = parts.uri.path().to_owned();
    let mut headers = parts.headers;
    for name in &HOP_HEADERS {
        headers.remove(name);
    }
    let twist = front.twist();
    let mut rotated_secret = false;
    match twist {
        Twist::ConversationGone if path.starts_with("/api/v2/conversations/") => {
            path = format!("/api/v2/conversations/{UNKNOWN_ID}");
        }
        Twist::SecretRotated if path == "/oauth/token" => {
            headers.remove(header::AUTHORIZATION);
            rotated_secret = true;
        }
        Twist::QueryRefused if path.ends_with("/query") => body = Bytes::from_static(b"{}"),
        _ => {}
    }
    let query = parts
        .uri
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let mut upstream = front
        .http
        .request(parts.method, format!("{}{path}{query}", front.sim_base))
        .headers(headers)
        .body(body);
    if rotated_secret {
        upstream = upstream.basic_auth(
            genesys_sim::config::DEFAULT_CLIENT_ID,
            Some("a-secret-rotated-since"),
        );
    }
    let Ok(answer) = upstream.send().await else {
        return Response::builder()
            .status(StatusCode::BAD_GATEWAY)
            .body(Body::empty())
            .expect("response");
    };
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if !HOP_HEADERS.contains(name) {
            response = response.header(name, value);
        }
    }
    let bytes = answer.bytes().await.unwrap_or_default();
    response.body(Body::from(bytes)).expect("response")
}

/// A simulator, the front and a proxy behind it, all on port 0.
struct StaleApp {
    sim: Simulator,
    twist: Arc<Mutex<Twist>>,
    base: String,
    http: reqwest::Client,
    state: AppState,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for StaleApp {
    fn drop(&mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
    }
}

impl StaleApp {
    async fn start(settings: Settings) -> Self {
        let sim = Simulator::start(sim_config()).await.expect("sim starts");
        let twist = Arc::new(Mutex::new(Twist::None));
        let front = GenesysFront {
            sim_base: sim.base_url(),
            http: reqwest::Client::new(),
            twist: twist.clone(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("front binds");
        let front_url = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop_front, front_stopped) = tokio::sync::oneshot::channel::<()>();
        let router = axum::Router::new().fallback(forward).with_state(front);
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = front_stopped.await;
                })
                .await
        });
        let (base, state, stop_proxy) = support::serve_proxy(
            settings,
            &front_url,
            genesys_sim::config::DEFAULT_CLIENT_SECRET,
        )
        .await;
        Self {
            sim,
            twist,
            base,
            http: reqwest::Client::new(),
            state,
            stops: vec![stop_front, stop_proxy],
        }
    }

    fn set_twist(&self, twist: Twist) {
        *self.twist.lock().unwrap_or_else(PoisonError::into_inner) = twist;
    }

    async fn reply(request: reqwest::RequestBuilder) -> Reply {
        let response = request
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .expect("request sent");
        Reply::read(response).await
    }

    async fn get(&self, path: &str) -> Reply {
        Self::reply(self.http.get(format!("{}{path}", self.base))).await
    }

    async fn post(&self, path: &str, body: &serde_json::Value) -> Reply {
        Self::reply(self.http.post(format!("{}{path}", self.base)).json(body)).await
    }

    /// An ended conversation's full document path (Genesys' bytes, as cached).
    fn ended_conversation(&self) -> String {
        let now = self.sim.state().now();
        let id = self
            .sim
            .data()
            .conversations
            .iter()
            .find(|c| c.is_over_at(now))
            .expect("an ended conversation")
            .id;
        format!("/conversations/{id}?view=full")
    }

    fn upstream_calls(&self, endpoint: &str) -> u64 {
        self.sim.counters().calls_to(endpoint)
    }
}

/// Every answer fresh for [`FRESH_SECS`], then served stale on errors for [`WINDOW_SECS`];
/// no stale-while-revalidate; a stale wait longer than the request's deadline, so the
/// error's class decides whether the copy is served, never the stale wait; and a deadline
/// no loaded machine reaches before Genesys' answer (the answers here are immediate).
fn stale_settings() -> Settings {
    let mut settings = proxy_settings();
    settings.server.request_timeout_ms = 10_000;
    let cache = &mut settings.cache;
    cache.active_fresh_secs = FRESH_SECS;
    cache.ended_fresh_secs = FRESH_SECS;
    cache.settled_fresh_secs = FRESH_SECS;
    cache.report_recent_fresh_secs = FRESH_SECS;
    cache.report_old_fresh_secs = FRESH_SECS;
    cache.stale_while_revalidate_secs = 0;
    cache.stale_if_error_secs = WINDOW_SECS;
    cache.stale_wait_ms = 30_000;
    settings
}

/// Moves tokio's clock `by` (the cache's freshness and stale windows move with it), then
/// lets it run on.
async fn age_cache(by: Duration) {
    tokio::time::pause();
    tokio::time::advance(by).await;
    tokio::time::resume();
}

/// Past freshness, well inside the stale-if-error window.
async fn age_past_freshness() {
    age_cache(Duration::from_secs(FRESH_SECS + 1)).await;
}

fn cache_status(reply: &Reply) -> String {
    reply.header("cache-status").unwrap_or_default()
}

/// Asserts `reply` is `cached` served stale because Genesys failed.
fn assert_stale_copy(reply: &Reply, cached: &Reply) {
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(
        cache_status(reply).contains("detail=stale-if-error"),
        "{:?}",
        reply.header("cache-status")
    );
    assert_eq!(reply.body, cached.body, "the cached body, byte for byte");
}

/// Caches an ended conversation, ages it past freshness, applies `fault`, and asks again.
async fn cached_then_asked_under(app: &StaleApp, fault: impl FnOnce(&StaleApp)) -> (Reply, Reply) {
    let path = app.ended_conversation();
    let cached = app.get(&path).await;
    assert_eq!(cached.status, 200, "{}", cached.text());
    age_past_freshness().await;
    fault(app);
    let again = app.get(&path).await;
    (cached, again)
}

#[tokio::test]
async fn a_slow_genesys_gets_the_stale_copy_after_the_stale_wait_and_the_fetch_still_refreshes_it()
{
    // Arrange: a cached conversation past freshness, and a Genesys slower than the wait.
    const STALE_WAIT_MS: u64 = 300;
    const LATENCY_MS: u64 = 2_500;
    let mut settings = stale_settings();
    settings.cache.stale_wait_ms = STALE_WAIT_MS;
    settings.server.request_timeout_ms = 6_000;
    settings.upstream.request_timeout_ms = 10_000;
    let app = StaleApp::start(settings).await;
    let path = app.ended_conversation();
    let cached = app.get(&path).await;
    assert_eq!(cached.status, 200);
    age_past_freshness().await;
    app.sim.set_faults(Faults {
        latency_ms: LATENCY_MS,
        ..Faults::default()
    });

    // Act
    let started = std::time::Instant::now();
    let stale = app.get(&path).await;
    let waited = started.elapsed();

    // Assert: the copy after the stale wait, not after Genesys' latency.
    assert_stale_copy(&stale, &cached);
    assert!(
        waited >= Duration::from_millis(STALE_WAIT_MS),
        "waited {waited:?}: at least the stale wait"
    );
    assert!(
        waited < Duration::from_millis(LATENCY_MS - 800),
        "waited {waited:?}: not Genesys' {LATENCY_MS} ms"
    );
    // The slow fetch goes on, and refreshes the entry.
    let id: Uuid = path
        .trim_start_matches("/conversations/")
        .trim_end_matches("?view=full")
        .parse()
        .expect("uuid");
    let refreshed_by = std::time::Instant::now() + Duration::from_secs(10);
    while app.state.conversations.fresh_hit(id).await.is_none() {
        assert!(
            std::time::Instant::now() < refreshed_by,
            "the slow fetch never refreshed the entry"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.sim.set_faults(Faults::default());
    let fresh = app.get(&path).await;
    assert_eq!(fresh.status, 200);
    assert!(
        cache_status(&fresh).contains("; hit;"),
        "{:?}",
        cache_status(&fresh)
    );
    let age = |reply: &Reply| -> u64 { reply.header("age").expect("age").parse().expect("secs") };
    assert!(age(&fresh) < age(&stale), "the entry was fetched again");
    assert_eq!(
        app.upstream_calls(endpoint::GET_CONVERSATION),
        2,
        "the first fetch and the slow refresh; no other"
    );
}

#[tokio::test]
async fn during_an_outage_the_stale_copy_is_served_until_the_stale_if_error_window_ends_then_the_503()
 {
    // Arrange
    let app = StaleApp::start(stale_settings()).await;

    // Act and assert: within the window (just after freshness, and just before its end).
    let (cached, early) = cached_then_asked_under(&app, |app| {
        app.sim.set_faults(Faults {
            outage: true,
            ..Faults::default()
        });
    })
    .await;
    assert_stale_copy(&early, &cached);
    age_cache(Duration::from_secs(WINDOW_SECS - 3)).await; // 2 s before the end
    assert_stale_copy(&app.get(&app.ended_conversation()).await, &cached);

    // After it: the classified error, not the old copy.
    age_cache(Duration::from_secs(3)).await; // 1 s after the end
    let late = app.get(&app.ended_conversation()).await;
    let problem = assert_problem(&late, 503);
    assert_eq!(
        problem["type"],
        "urn:genesys-proxy:problem:upstream-unavailable"
    );
    assert!(late.header("retry-after").is_some());
    assert!(!cache_status(&late).contains("stale"));
}

#[tokio::test]
async fn a_conversation_genesys_says_is_gone_is_a_404_not_the_stale_copy() {
    let app = StaleApp::start(stale_settings()).await;
    let (_, gone) =
        cached_then_asked_under(&app, |app| app.set_twist(Twist::ConversationGone)).await;
    let problem = assert_problem(&gone, 404);
    assert_eq!(problem["type"], "urn:genesys-proxy:problem:not-found");
}

#[tokio::test]
async fn a_permission_genesys_revoked_is_a_502_not_the_stale_copy() {
    let app = StaleApp::start(stale_settings()).await;
    let (_, refused) = cached_then_asked_under(&app, |app| {
        app.sim.set_faults(Faults {
            forbidden: true,
            ..Faults::default()
        });
    })
    .await;
    let problem = assert_problem(&refused, 502);
    assert_eq!(
        problem["type"],
        "urn:genesys-proxy:problem:upstream-permission-missing"
    );
}

#[tokio::test]
async fn a_revoked_permission_ends_stale_while_revalidate_too() {
    // Arrange: a stale-while-revalidate window, and a permission revoked meanwhile.
    let mut settings = stale_settings();
    settings.cache.stale_while_revalidate_secs = 30;
    let app = StaleApp::start(settings).await;
    let (cached, revalidating) = cached_then_asked_under(&app, |app| {
        app.sim.set_faults(Faults {
            forbidden: true,
            ..Faults::default()
        });
    })
    .await;
    assert_eq!(
        revalidating.body,
        cached.body,
        "{:?}: {}",
        revalidating.header("cache-status"),
        revalidating.text()
    );
    assert!(
        cache_status(&revalidating).contains("detail=stale-while-revalidate"),
        "{:?}: {}",
        revalidating.header("cache-status"),
        revalidating.text()
    );

    // Act: once the background refresh has heard the 403, ask again in the same window.
    let refused_by = std::time::Instant::now() + Duration::from_secs(10);
    while app.state.conversations.stats().fetch_errors == 0 {
        assert!(std::time::Instant::now() < refused_by, "no refresh failed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = app.get(&app.ended_conversation()).await;

    // Assert: the copy Genesys refused is not served again.
    let problem = assert_problem(&after, 502);
    assert_eq!(
        problem["type"],
        "urn:genesys-proxy:problem:upstream-permission-missing"
    );
}

#[tokio::test]
async fn a_malformed_body_from_genesys_gets_the_stale_copy() {
    let app = StaleApp::start(stale_settings()).await;
    let (cached, stale) = cached_then_asked_under(&app, |app| {
        app.sim.set_faults(Faults {
            malformed_responses: 1,
            ..Faults::default()
        });
    })
    .await;
    assert_stale_copy(&stale, &cached);
    assert_eq!(
        app.sim.state().faults().malformed_responses,
        0,
        "one was sent"
    );
}

#[tokio::test]
async fn a_genesys_500_gets_the_stale_copy() {
    let app = StaleApp::start(stale_settings()).await;
    let (cached, stale) = cached_then_asked_under(&app, |app| {
        app.sim.set_faults(Faults {
            error_rates: [(500, 1.0)].into(),
            ..Faults::default()
        });
    })
    .await;
    assert_stale_copy(&stale, &cached);
    assert_eq!(
        app.sim
            .counters()
            .calls_with(endpoint::GET_CONVERSATION, 500),
        1
    );
}

#[tokio::test]
async fn a_429_storm_gets_the_stale_copy_and_no_more_calls() {
    let app = StaleApp::start(stale_settings()).await;
    let (cached, stale) = cached_then_asked_under(&app, |app| {
        app.sim.set_faults(Faults {
            storm: Some(Storm {
                retry_after_secs: 60,
                remaining: None,
            }),
            ..Faults::default()
        });
    })
    .await;
    assert_stale_copy(&stale, &cached);
    let again = app.get(&app.ended_conversation()).await;
    assert_stale_copy(&again, &cached);
    assert_eq!(
        app.sim
            .counters()
            .calls_with(endpoint::GET_CONVERSATION, 429),
        1,
        "the budget holds every further call until Retry-After"
    );
}

#[tokio::test]
async fn a_rotated_client_secret_gets_the_stale_copy() {
    // Arrange: the proxy's token is revoked and its secret no longer matches.
    let app = StaleApp::start(stale_settings()).await;
    let (cached, stale) = cached_then_asked_under(&app, |app| {
        app.set_twist(Twist::SecretRotated);
        app.sim.revoke_tokens();
    })
    .await;

    // Assert: the stale copy; an uncached conversation shows the cause.
    assert_stale_copy(&stale, &cached);
    assert!(
        app.sim.counters().calls_with(endpoint::OAUTH_TOKEN, 401) >= 1,
        "the login host refused the secret"
    );
    let uncached = app.get(&format!("/conversations/{UNKNOWN_ID}")).await;
    let problem = assert_problem(&uncached, 502);
    assert_eq!(
        problem["type"],
        "urn:genesys-proxy:problem:upstream-credentials-rejected"
    );
}

/// A search over one whole past day of the simulated org.
fn day_search() -> serde_json::Value {
    json!({
        "from": "2025-03-10T00:00:00Z",
        "to": "2025-03-11T00:00:00Z",
        "page_size": 20,
    })
}

/// Caches a search page (a repeat costs no upstream call), and ages it past freshness.
async fn cached_search(app: &StaleApp) -> Reply {
    let cached = app.post("/reports/search", &day_search()).await;
    assert_eq!(cached.status, 200, "{}", cached.text());
    let calls = app.upstream_calls(endpoint::DETAILS_QUERY);
    assert!(calls >= 1);
    let repeat = app.post("/reports/search", &day_search()).await;
    assert_eq!(repeat.body, cached.body);
    assert_eq!(
        app.upstream_calls(endpoint::DETAILS_QUERY),
        calls,
        "the page is served from the cache"
    );
    age_past_freshness().await;
    cached
}

#[tokio::test]
async fn a_report_page_is_served_stale_during_an_outage_until_the_window_ends() {
    let app = StaleApp::start(stale_settings()).await;
    let cached = cached_search(&app).await;
    app.sim.set_faults(Faults {
        outage: true,
        ..Faults::default()
    });

    let stale = app.post("/reports/search", &day_search()).await;
    assert_eq!(stale.status, 200, "{}", stale.text());
    assert_eq!(stale.body, cached.body, "the cached page, byte for byte");

    age_cache(Duration::from_secs(WINDOW_SECS)).await;
    let late = app.post("/reports/search", &day_search()).await;
    assert_eq!(
        assert_problem(&late, 503)["type"],
        "urn:genesys-proxy:problem:upstream-unavailable"
    );
}

#[tokio::test]
async fn a_report_query_genesys_refuses_is_a_502_not_the_stale_page() {
    let app = StaleApp::start(stale_settings()).await;
    cached_search(&app).await;
    app.set_twist(Twist::QueryRefused);
    let refused = app.post("/reports/search", &day_search()).await;
    assert_eq!(
        assert_problem(&refused, 502)["type"],
        "urn:genesys-proxy:problem:upstream-rejected-query"
    );
}

#[tokio::test]
async fn aggregates_are_served_stale_during_an_outage_until_the_window_ends() {
    let app = StaleApp::start(stale_settings()).await;
    let path = "/reports/aggregates?from=2025-03-10T00:00:00Z&to=2025-03-11T00:00:00Z\
                &granularity=PT6H&group_by=queue_id&metrics=offered,handle";
    let cached = app.get(path).await;
    assert_eq!(cached.status, 200, "{}", cached.text());
    assert_eq!(app.upstream_calls(endpoint::AGGREGATES_QUERY), 1);
    age_past_freshness().await;
    app.sim.set_faults(Faults {
        outage: true,
        ..Faults::default()
    });

    let stale = app.get(path).await;
    assert_eq!(stale.status, 200, "{}", stale.text());
    assert_eq!(stale.body, cached.body, "the cached answer, byte for byte");

    age_cache(Duration::from_secs(WINDOW_SECS)).await;
    let late = app.get(path).await;
    assert_eq!(
        assert_problem(&late, 503)["type"],
        "urn:genesys-proxy:problem:upstream-unavailable"
    );
}
