//! Inbound HTTP only: the router, its shared state, and the front door every request
//! passes ([`front_door`]). Handlers call services (conversations, reports); they never
//! call reqwest or know Genesys URLs. Every answered request is counted in the metrics
//! and, when it is on, written to the access log ([`crate::access_log`]) by the door,
//! whether the cache-hit answerer ([`hit_path`]) or the router answered it.

pub mod conversations;
mod dispatch;
pub mod docs;
pub mod front_door;
pub mod hit_path;
pub mod ops;
pub mod readiness;
pub mod reports;
pub mod request_id;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware;
use axum::routing::get;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::auth::{self, ApiKeys, Scope};
use crate::config::Settings;
use crate::conversations::ConversationService;
use crate::reports::ReportService;
use crate::upstream::GenesysClient;
pub use front_door::{DoorAnswer, DoorParts, FrontDoor};

/// Everything handlers share. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub conversations: Arc<ConversationService>,
    pub reports: Arc<ReportService>,
    pub client: Arc<GenesysClient>,
    pub keys: Arc<ApiKeys>,
    pub http_metrics: Arc<crate::metrics::HttpMetrics>,
    /// The Genesys notification subscriber (its figures and `/readyz` component).
    pub notifications: Arc<crate::notifications::Notifications>,
}

impl AppState {
    /// How long a request may wait on Genesys: the inbound timeout less a margin to answer
    /// (with a stale copy or a 503) before the inbound timeout fires.
    #[must_use]
    pub fn upstream_wait(&self) -> Duration {
        self.settings.server.request_timeout().mul_f64(0.9)
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The route of conversation lookups. A wildcard, so that an id with `/` in it
/// (`..%2F..%2Fusers`) is a 400, not a 404.
const CONVERSATION_ROUTE: &str = "/conversations/{*id}";

/// The path of a conversation lookup before its id (`/conversations/`).
fn conversation_prefix() -> &'static str {
    CONVERSATION_ROUTE
        .strip_suffix("{*id}")
        .unwrap_or(CONVERSATION_ROUTE)
}

/// The whole proxy of the API listener: the front door ([`front_door`]: request id,
/// authentication, CORS, metrics, access log, panics, and the cache-hit answerer inside
/// it) in front of the router.
pub fn service(state: &AppState) -> FrontDoor {
    let server = &state.settings.server;
    let parts = DoorParts {
        keys: Some(state.keys.clone()),
        metrics: state.http_metrics.clone(),
        access_log: Some(state.http_metrics.access_log().clone()),
        cors: cors(&server.cors_allowed_origins),
        hits: server
            .hit_fast_path
            .then(|| hit_path::HitPath::new(state.conversations.clone())),
        spans: true,
    };
    FrontDoor::new(parts, router(state.clone()))
}

/// The routes of the API listener, behind the door.
fn router(state: AppState) -> Router {
    let scope = |scope| middleware::from_fn_with_state(scope, auth::require);
    let conversations = Router::new()
        .route(CONVERSATION_ROUTE, get(conversations::get_conversation))
        .route_layer(scope(Scope::ConversationsRead));
    let reports = Router::new()
        .route(
            "/reports/search",
            get(reports::search_get).post(reports::search_post),
        )
        .route(
            "/reports/aggregates",
            get(reports::aggregates_get).post(reports::aggregates_post),
        )
        .route_layer(scope(Scope::ReportsRead));
    let admin = Router::new()
        .route(
            "/admin/cache",
            get(ops::cache_stats).delete(ops::purge_cache),
        )
        .route_layer(scope(Scope::Admin));
    let mut open = Router::new()
        .route("/healthz", get(ops::healthz))
        .merge(docs::routes());
    // With a separate ops listener, readiness, metrics and the status page are served
    // there only (`/healthz` stays here too: the image's HEALTHCHECK asks the API port).
    if state.settings.server.ops_listen.is_none() {
        open = open
            .route("/readyz", get(readiness::readyz))
            .route("/metrics", get(ops::metrics))
            .route("/status", get(status::status_page));
    }
    let settings = state.settings.server.clone();
    let routes = Router::new()
        .merge(conversations)
        .merge(reports)
        .merge(admin)
        .merge(open)
        .with_state(state);
    behind_the_door(
        routes,
        settings.request_timeout(),
        settings.body_limit_bytes,
    )
}

/// `routes` as the front door expects them: each route notes itself for the door's
/// route label (outermost, so it is noted before anything can fail), then renders error
/// answers as problems, answers `504` past `timeout` and `413` past `body_limit` bytes
/// (`usize::MAX`: no limit). One stack, applied once: axum boxes each `Router::layer`
/// separately.
pub fn behind_the_door(routes: Router, timeout: Duration, body_limit: usize) -> Router {
    let stack = tower::ServiceBuilder::new()
        .layer(dispatch::NoteRouteLayer)
        .layer(middleware::from_fn(crate::error::problem_layer))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            timeout,
        ))
        .layer(RequestBodyLimitLayer::new(body_limit));
    routes.layer(stack)
}

fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let list: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(list)
    };
    let layer = CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            axum::http::header::AUTHORIZATION,
            axum::http::header::CONTENT_TYPE,
            axum::http::header::IF_NONE_MATCH,
            HeaderName::from_static("x-api-key"),
        ])
        .expose_headers([
            axum::http::header::ETAG,
            axum::http::header::AGE,
            axum::http::header::RETRY_AFTER,
            HeaderName::from_static("cache-status"),
            REQUEST_ID,
        ]);
    Some(layer)
}
