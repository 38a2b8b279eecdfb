//! `GET /readyz`: whether the proxy can serve, for load balancers and orchestrators.
//!
//! Ready means the proxy can answer with data: a Genesys token is held (and Genesys
//! accepts it), or the cache holds entries within their stale bound (entries leave the
//! cache at that bound), which are served while Genesys or its login host fails. So a
//! login outage, a 401 or a token expiry does not take every replica out of the load
//! balancer at once while their caches can still answer; a replica with neither is not
//! ready. The body names each component and what fails (`genesys_token`, `cache`,
//! `budget`, and in shared mode `shared`: Redis in use, or `degraded` on local fallback,
//! which does not make a replica unready), whatever the status.
//!
//! A probe never waits on the login host inline: it reads the token's state as it is and,
//! when the token is missing or due, starts a refresh in the background. Only when
//! nothing else makes the proxy ready (no token, nothing cached) does it wait for that
//! refresh, for at most [`TOKEN_WAIT`], so a proxy that has just started is ready at its
//! first probe and a hanging login host never holds a probe past its timeout.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;

/// The longest a probe waits for a token refresh, when nothing else makes the proxy
/// ready: below the 1 s default timeout of a Kubernetes probe, and ample for a login
/// host that answers (a token request takes tens of milliseconds).
pub const TOKEN_WAIT: Duration = Duration::from_millis(750);

/// Readiness: the proxy can serve (a Genesys token is held, or cached data within its
/// stale bound). 503 with per-component detail otherwise.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "Ready: a Genesys token is held, or cached data within its stale bound can be served; the body names any failing component"),
    (status = 503, description = "Not ready: no Genesys token and nothing cached; the body says which component fails"),
))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let tokens = state.client.tokens();
    let refresh = tokens.refresh_in_background();
    let cached_entries = cached_entries(&state).await;
    let mut token = tokens.readiness();
    if !token.usable() && cached_entries == 0 {
        if let Some(mut finished) = refresh {
            let _ = tokio::time::timeout(TOKEN_WAIT, finished.changed()).await;
            token = tokens.readiness();
        }
    }
    let ready = token.usable() || cached_entries > 0;
    let budget = state.client.budget().stats();
    let mut body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "components": {
            "genesys_token": token.report(),
            "cache": {
                "status": if cached_entries > 0 { "ok" } else { "empty" },
                "entries": cached_entries,
            },
            "budget": {"status": if budget.frozen { "frozen" } else { "ok" }, "in_flight": budget.in_flight, "queued": budget.queued},
        },
    });
    if let Some(shared) = tokens.shared() {
        // Shared mode's Redis: `degraded` (local fallback) does not make the replica unready.
        body["components"]["shared"] = shared.stats().report();
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Entries the caches hold (conversations, report pages, aggregates), all within their
/// stale bound once moka has applied its pending evictions.
async fn cached_entries(state: &AppState) -> u64 {
    state.conversations.settle().await;
    state.reports.settle().await;
    let reports = state.reports.stats();
    state.conversations.stats().entries + reports.pages.entries + reports.aggregates.entries
}
