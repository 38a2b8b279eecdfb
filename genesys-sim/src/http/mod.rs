//! The simulator's HTTP surface: the token endpoint, the Platform API routes behind the
//! guard (auth, rate limit, faults, counters, Genesys headers) and the `/sim` control API.

mod api;
mod control;
mod guard;
mod oauth;

use std::sync::Arc;

use axum::Router;
use axum::middleware;
use axum::routing::{get, post};

use crate::state::SimState;

/// The complete router for one simulated org.
pub fn router(state: Arc<SimState>) -> Router {
    let api = Router::new()
        .route("/api/v2/conversations/{id}", get(api::get_conversation))
        .route(
            "/api/v2/analytics/conversations/details/query",
            post(api::details_query),
        )
        .route(
            "/api/v2/analytics/conversations/details",
            get(api::details_multi_get),
        )
        .route(
            "/api/v2/analytics/conversations/{id}/details",
            get(api::details_get),
        )
        .route(
            "/api/v2/analytics/conversations/aggregates/query",
            post(api::aggregates_query),
        )
        .route("/api/v2/{*rest}", axum::routing::any(api::unknown_route))
        .layer(middleware::from_fn_with_state(state.clone(), guard::guard));
    Router::new()
        .route("/oauth/token", post(oauth::token))
        .merge(api)
        .merge(control::routes())
        .with_state(state)
}
