//! `GET /readyz`: whether the proxy can serve, for load balancers and orchestrators.
//!
//! Ready means the proxy can answer with data: a Genesys token is held (and Genesys
//! accepts it), or the cache holds entries within their stale bound (entries leave the
//! cache at that bound), which are served while Genesys or its login host fails. So a
//! login outage, a 401 or a token expiry does not take every replica out of the load
//! balancer at once while their caches can still answer; a replica with neither is not
//! ready. The body names each component and what fails (`genesys_token`, `cache`,
//! `budget`, `notifications`, and in shared mode `shared`), whatever the status. Neither
//! `notifications` nor `shared` ever makes the proxy unready: without events, conversations
//! are polled; without Redis, a replica runs on local state (`degraded`).
//!
//! A probe never waits on the login host inline: it reads the token's state as it is and,
//! when the token is missing or due, starts a refresh in the background. Only when
//! nothing else makes the proxy ready (no token, nothing cached) does it wait for that
//! refresh, for at most [`TOKEN_WAIT`], so a proxy that has just started is ready at its
//! first probe and a hanging login host never holds a probe past its timeout.
//!
//! [`current`] reads the same verdict without waiting for a refresh (it starts one in
//! the background as a probe does, so an instance scraped but never probed still gets its
//! token), for `/metrics` ([`render`]: `genesys_proxy_ready` and each component's status)
//! and the status page.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use crate::metrics::{header, sample};
use crate::upstream::token::TokenReadiness;

/// The longest a probe waits for a token refresh, when nothing else makes the proxy
/// ready: below the 1 s default timeout of a Kubernetes probe, and ample for a login
/// host that answers (a token request takes tens of milliseconds).
pub const TOKEN_WAIT: Duration = Duration::from_millis(750);

/// Readiness: whether the proxy can serve.
///
/// For a readiness probe or a load balancer: 200 when a Genesys token is held (and Genesys
/// accepts it) or the cache holds data within its stale bound, 503 otherwise. Whatever the
/// status, the body gives `status` (`ready` or `not_ready`) and each component's state
/// under `components`: `genesys_token`, `cache`, `budget`, `notifications` and, in shared
/// mode, `shared`, each with its own `status` and figures (and a `detail` when it fails).
/// `notifications` and `shared` never make the proxy unready. When nothing else makes it
/// ready, a probe waits at most 750 ms for a token being fetched.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "Ready: a Genesys token is held, or cached data within its stale bound can be served; the body names any failing component", body = Object, content_type = "application/json", example = json!({
        "status": "ready",
        "components": {
            "genesys_token": {"status": "ok", "held": true, "refreshing": false, "expires_in_secs": 86120},
            "cache": {"status": "ok", "entries": 42},
            "budget": {"status": "ok", "in_flight": 1, "queued": [0, 0, 0]},
            "notifications": {"status": "ok", "channels": 1, "connected": 1, "topics": 12},
        },
    })),
    (status = 503, description = "Not ready: no Genesys token and nothing cached; the body says which component fails", body = Object, content_type = "application/json", example = json!({
        "status": "not_ready",
        "components": {
            "genesys_token": {"status": "failing", "held": false, "refreshing": true, "detail": "the Genesys login service is unavailable (connection refused)", "retry_after_secs": 5},
            "cache": {"status": "empty", "entries": 0},
            "budget": {"status": "ok", "in_flight": 0, "queued": [0, 0, 0]},
            "notifications": {"status": "off", "channels": 0, "connected": 0, "topics": 0},
        },
    })),
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
    let (ready, body) = report(&state, &token, cached_entries);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Readiness as it stands (whether `/readyz` would answer 200, and its body), without
/// waiting for a token refresh (one is started in the background when the token is
/// missing or due, as a probe does): for `/metrics` and the status page.
pub async fn current(state: &AppState) -> (bool, serde_json::Value) {
    let tokens = state.client.tokens();
    // The refresh runs in a task of its own: nobody waits for it here.
    let _ = tokens.refresh_in_background();
    let cached_entries = cached_entries(state).await;
    report(state, &tokens.readiness(), cached_entries)
}

/// The verdict and the body of `/readyz`.
fn report(
    state: &AppState,
    token: &TokenReadiness,
    cached_entries: u64,
) -> (bool, serde_json::Value) {
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
            // Informative only: without events, conversations are polled.
            "notifications": state.notifications.stats().readiness(),
        },
    });
    if let Some(shared) = state.client.tokens().shared() {
        // Shared mode's Redis: `degraded` (local fallback) does not make the replica unready.
        body["components"]["shared"] = shared.stats().report();
    }
    (ready, body)
}

/// Appends `genesys_proxy_ready` (1 when `/readyz` would answer 200) and
/// `genesys_proxy_ready_component{component,status}` (1 for each component of the
/// `/readyz` body, labelled with its status), from a [`current`] reading.
pub fn render(out: &mut String, ready: bool, body: &serde_json::Value) {
    header(
        out,
        "genesys_proxy_ready",
        "gauge",
        "1 when /readyz answers 200 (a Genesys token is held, or cached data within its stale bound).",
    );
    sample(out, "genesys_proxy_ready", "", u8::from(ready));
    header(
        out,
        "genesys_proxy_ready_component",
        "gauge",
        "The status of each readiness component (as /readyz names it): 1 for its current status.",
    );
    if let Some(components) = body["components"].as_object() {
        for (component, detail) in components {
            let status = detail["status"].as_str().unwrap_or("unknown");
            sample(
                out,
                "genesys_proxy_ready_component",
                &format!("component=\"{component}\",status=\"{status}\""),
                1,
            );
        }
    }
}

/// Entries the caches hold (conversations, report pages, aggregates), all within their
/// stale bound once moka has applied its pending evictions.
async fn cached_entries(state: &AppState) -> u64 {
    state.conversations.settle().await;
    state.reports.settle().await;
    let reports = state.reports.stats();
    state.conversations.stats().entries + reports.pages.entries + reports.aggregates.entries
}
