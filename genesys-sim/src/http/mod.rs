//! The simulator's HTTP surface: the token endpoint, the Platform API routes behind the
//! guard (auth, rate limit, faults, counters, Genesys headers), the notification WebSocket
//! (`/channels/{id}`, the channels' `connectUri`) and the `/sim` control API.
//! Every call to the token endpoint or the API is counted the moment it arrives, before
//! any latency, fault or handler runs.

mod api;
mod control;
mod control_notifications;
mod guard;
mod oauth;
mod queues;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};

use crate::counters::endpoint;
use crate::notifications::routes as notifications;
use crate::state::SimState;

/// The path of the token endpoint.
const TOKEN_PATH: &str = "/oauth/token";

/// Counts a call on arrival: a call whose client goes away before the answer (the
/// handler is then dropped mid-flight and never counts its response) still counts here,
/// as Genesys would still have received and charged it.
async fn count_arrival(State(sim): State<Arc<SimState>>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let label = if path == TOKEN_PATH {
        endpoint::OAUTH_TOKEN
    } else {
        guard::label(request.method(), path)
    };
    sim.counters.arrived(label);
    next.run(request).await
}

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
        .route("/api/v2/routing/queues", get(queues::list))
        .route(
            "/api/v2/notifications/channels",
            post(notifications::create_channel).get(notifications::list_channels),
        )
        .route(
            "/api/v2/notifications/channels/{id}",
            axum::routing::head(notifications::head_channel),
        )
        .route(
            "/api/v2/notifications/channels/{id}/subscriptions",
            get(notifications::get_subscriptions)
                .post(notifications::post_subscriptions)
                .put(notifications::put_subscriptions)
                .delete(notifications::delete_subscriptions),
        )
        .route("/api/v2/{*rest}", axum::routing::any(api::unknown_route))
        .layer(middleware::from_fn_with_state(state.clone(), guard::guard));
    let counted = Router::new()
        .route(TOKEN_PATH, post(oauth::token))
        .merge(api)
        .layer(middleware::from_fn_with_state(state.clone(), count_arrival));
    Router::new()
        .merge(counted)
        .merge(control::routes())
        .merge(control_notifications::routes())
        .route("/channels/{id}", get(notifications::connect))
        .with_state(state)
}
