//! The router of the operations listener (`server.ops_listen`): `/healthz`, `/readyz` and
//! `/metrics` for probes and scrapes, and the status page `/status` for people, with the
//! same handlers as the API port, behind a
//! door of its own that ids, labels and counts requests and catches panics (no keys, no
//! CORS, no access log), and the same problem rendering, request timeout and body limit
//! (`server.body_limit_bytes`) as the API's routes. Nothing else is served there: no API route, no API key.

use axum::Router;
use axum::routing::get;

use crate::routes::{AppState, DoorParts, FrontDoor, behind_the_door, ops, readiness, status};

/// The operations endpoints over `state`.
pub(super) fn router(state: &AppState) -> FrontDoor {
    let routes = Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(readiness::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/status", get(status::status_page))
        .with_state(state.clone());
    FrontDoor::new(
        DoorParts::plain(state.http_metrics.clone()),
        behind_the_door(
            routes,
            state.settings.server.request_timeout(),
            state.settings.server.body_limit_bytes,
        ),
    )
}
