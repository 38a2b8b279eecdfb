//! Inbound HTTP only: the router, its shared state and the middleware stack. Handlers
//! call services (conversations, reports); they never call reqwest or know Genesys URLs.
//! Every answered request is counted in the metrics and, when it is on, written to the
//! access log ([`crate::access_log`]), on the hit fast path as through the router.

pub mod conversations;
pub mod docs;
pub mod hit_path;
pub mod ops;
pub mod readiness;
pub mod reports;
pub mod request_id;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware;
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::auth::{self, ApiKeys, Guard, Scope};
use crate::config::Settings;
use crate::conversations::ConversationService;
use crate::reports::ReportService;
use crate::upstream::GenesysClient;
pub use hit_path::ProxyService;

/// Everything handlers share. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub conversations: Arc<ConversationService>,
    pub reports: Arc<ReportService>,
    pub client: Arc<GenesysClient>,
    pub keys: Arc<ApiKeys>,
    pub http_metrics: Arc<crate::metrics::HttpMetrics>,
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

/// The whole proxy: the router with its middleware, behind the cache-hit fast path of
/// `GET /conversations/{id}` ([`hit_path`]).
pub fn service(state: &AppState) -> ProxyService {
    let request_ids = request_id::FastRequestId::default();
    let cors = cors(&state.settings.server.cors_allowed_origins);
    let router = router(state.clone(), request_ids.clone(), cors.clone());
    ProxyService::new(state, router, request_ids, cors)
}

/// The complete router with its middleware (`cors`: the CORS layer, when configured).
fn router(
    state: AppState,
    request_ids: request_id::FastRequestId,
    cors: Option<CorsLayer>,
) -> Router {
    let guard = |scope| Guard {
        keys: state.keys.clone(),
        scope,
    };
    let conversations = Router::new()
        // A wildcard, so that an id with `/` in it (`..%2F..%2Fusers`) is a 400, not a 404.
        .route("/conversations/{*id}", get(conversations::get_conversation))
        .route_layer(middleware::from_fn_with_state(
            guard(Scope::ConversationsRead),
            auth::require,
        ));
    let reports = Router::new()
        .route(
            "/reports/search",
            get(reports::search_get).post(reports::search_post),
        )
        .route(
            "/reports/aggregates",
            get(reports::aggregates_get).post(reports::aggregates_post),
        )
        .route_layer(middleware::from_fn_with_state(
            guard(Scope::ReportsRead),
            auth::require,
        ));
    let admin = Router::new()
        .route(
            "/admin/cache",
            get(ops::cache_stats).delete(ops::purge_cache),
        )
        .route_layer(middleware::from_fn_with_state(
            guard(Scope::Admin),
            auth::require,
        ));
    let mut open = Router::new()
        .route("/healthz", get(ops::healthz))
        .merge(docs::routes());
    // With a separate ops listener, readiness and metrics are served there only
    // (`/healthz` stays here too: the image's HEALTHCHECK asks the API port).
    if state.settings.server.ops_listen.is_none() {
        open = open
            .route("/readyz", get(readiness::readyz))
            .route("/metrics", get(ops::metrics));
    }
    let settings = state.settings.server.clone();
    let http_metrics = state.http_metrics.clone();
    let access = crate::access_log::RouterAccessLog {
        log: state.http_metrics.access_log().clone(),
        keys: state.keys.clone(),
    };
    // One stack, applied once: axum boxes each `Router::layer` separately, which costs
    // allocations and clones on every request. Outermost first.
    let stack = tower::ServiceBuilder::new()
        .layer(SetSensitiveRequestHeadersLayer::new([
            axum::http::header::AUTHORIZATION,
            HeaderName::from_static("x-api-key"),
        ]))
        .layer(SetRequestIdLayer::new(REQUEST_ID, request_ids))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                // Metrics count every request; no log event per request and response.
                .on_request(())
                .on_response(())
                .on_body_chunk(())
                .on_eos(())
                // A 5xx is already a problem answer with its cause logged where it arose
                // (and /readyz answers 503 by design while not ready).
                .on_failure(
                    tower_http::trace::DefaultOnFailure::new().level(tracing::Level::DEBUG),
                ),
        )
        // Inside the request's span, outside every layer that may change the status.
        .layer(middleware::from_fn_with_state(
            access,
            crate::access_log::record,
        ))
        .option_layer(cors)
        .layer(CatchPanicLayer::new())
        .layer(middleware::from_fn(crate::error::problem_layer))
        .layer(middleware::from_fn_with_state(
            http_metrics,
            crate::metrics::track,
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            settings.request_timeout(),
        ))
        .layer(RequestBodyLimitLayer::new(settings.body_limit_bytes));
    Router::new()
        .merge(conversations)
        .merge(reports)
        .merge(admin)
        .merge(open)
        .with_state(state)
        .layer(stack)
}

/// The span of one request: method, path, request id, and (filled in later) the client
/// and the cache status. An inbound W3C `traceparent` becomes its parent.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %id,
        cache.status = tracing::field::Empty,
        client = tracing::field::Empty,
    );
    if crate::telemetry::tracing_enabled() {
        let _ = span.set_parent(crate::telemetry::extract_context(request.headers()));
    }
    span
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
