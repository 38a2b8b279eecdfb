//! Operations endpoints: liveness, readiness, and the admin view of the cache.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;

/// Liveness: the process answers. No I/O.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "The process is alive")))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: a Genesys token can be had (the login host answers and accepts the
/// credentials). 503 with per-component detail otherwise.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "Ready: a Genesys token is held"),
    (status = 503, description = "Not ready; the body says which component fails"),
))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let token = state.client.tokens().bearer().await;
    let budget = state.client.budget().stats();
    let (status, token_detail) = match &token {
        Ok(_) => (StatusCode::OK, json!({"status": "ok"})),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "failing", "detail": error.to_string(), "retry_after_secs": error.retry_after().as_secs()}),
        ),
    };
    let body = json!({
        "status": if status == StatusCode::OK { "ready" } else { "not_ready" },
        "components": {
            "genesys_token": token_detail,
            "budget": {"status": if budget.frozen { "frozen" } else { "ok" }, "in_flight": budget.in_flight, "queued": budget.queued},
        },
    });
    (status, Json(body)).into_response()
}

/// Cache figures (admin scope).
#[utoipa::path(get, path = "/admin/cache", tag = "operations", responses((status = 200, description = "Cache figures")), security(("api_key" = []), ("bearer" = [])))]
pub async fn cache_stats(State(state): State<AppState>) -> Json<serde_json::Value> {
    state.conversations.settle().await;
    Json(json!({
        "conversations": state.conversations.stats(),
        "reports": state.reports.stats(),
        "budget": state.client.budget().stats(),
        "token": state.client.tokens().stats(),
    }))
}

/// Drops every cached entry (admin scope).
#[utoipa::path(delete, path = "/admin/cache", tag = "operations", responses((status = 204, description = "Purged")), security(("api_key" = []), ("bearer" = [])))]
pub async fn purge_cache(State(state): State<AppState>) -> StatusCode {
    state.conversations.purge().await;
    state.reports.purge().await;
    StatusCode::NO_CONTENT
}
