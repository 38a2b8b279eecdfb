//! The router of the operations listener (`server.ops_listen`): `/healthz`, `/readyz` and
//! `/metrics` for probes and scrapes, with the same handlers as the API port and a short
//! stack of its own (request id, panic catching, problem+json errors, request metrics, the
//! request timeout). Nothing else is served there: no API route, no API key.

use axum::Router;
use axum::http::{HeaderName, StatusCode};
use axum::middleware;
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;

use crate::routes::request_id::FastRequestId;
use crate::routes::{AppState, ops, readiness};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The operations endpoints over `state`.
pub(super) fn router(state: &AppState) -> Router {
    let stack = tower::ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(REQUEST_ID, FastRequestId::default()))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(CatchPanicLayer::new())
        .layer(middleware::from_fn(crate::error::problem_layer))
        .layer(middleware::from_fn_with_state(
            state.http_metrics.clone(),
            crate::metrics::track,
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            state.settings.server.request_timeout(),
        ));
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(readiness::readyz))
        .route("/metrics", get(ops::metrics))
        .with_state(state.clone())
        .layer(stack)
}
