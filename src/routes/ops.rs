//! Operations endpoints: liveness, metrics, and the admin view of the cache (readiness
//! is [`super::readiness`]).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
pub use super::readiness::readyz;

/// Liveness: the process answers. No I/O.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "The process is alive")))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Cache figures (admin scope).
#[utoipa::path(get, path = "/admin/cache", tag = "operations", responses(
    (status = 200, description = "Cache, budget and token figures (JSON)"),
    (status = 401, description = "No or unknown API key", body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 403, description = "The key lacks the admin scope", body = crate::error::Problem, content_type = "application/problem+json"),
), security(("api_key" = []), ("bearer" = [])))]
pub async fn cache_stats(State(state): State<AppState>) -> Json<serde_json::Value> {
    state.conversations.settle().await;
    state.reports.settle().await;
    Json(json!({
        "conversations": state.conversations.stats(),
        "reports": state.reports.stats(),
        "budget": state.client.budget().stats(),
        "token": state.client.tokens().stats(),
    }))
}

/// Drops every cached entry (admin scope).
#[utoipa::path(delete, path = "/admin/cache", tag = "operations", responses(
    (status = 204, description = "Purged"),
    (status = 401, description = "No or unknown API key", body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 403, description = "The key lacks the admin scope", body = crate::error::Problem, content_type = "application/problem+json"),
), security(("api_key" = []), ("bearer" = [])))]
pub async fn purge_cache(State(state): State<AppState>) -> StatusCode {
    state.conversations.purge().await;
    state.reports.purge().await;
    StatusCode::NO_CONTENT
}

/// Metrics in the Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses(
    (status = 200, description = "Prometheus text exposition (version 0.0.4)", content_type = "text/plain"),
))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    use crate::metrics::{header, sample};
    let mut out = String::with_capacity(16 * 1024);
    state.http_metrics.render(&mut out);

    state.conversations.settle().await;
    state.reports.settle().await;
    let reports = state.reports.stats();
    crate::cache::metrics::render(
        &mut out,
        &[
            ("conversations", state.conversations.stats()),
            ("report_pages", reports.pages),
            ("aggregates", reports.aggregates),
        ],
    );

    state.client.stats().render(&mut out);

    let budget = state.client.budget().stats();
    header(
        &mut out,
        "genesys_proxy_budget_queue_depth",
        "gauge",
        "Calls waiting for the rate budget, by class.",
    );
    for class in crate::upstream::Class::ALL {
        sample(
            &mut out,
            "genesys_proxy_budget_queue_depth",
            &format!("class=\"{}\"", class.as_str()),
            budget.queued[class as usize],
        );
    }
    header(
        &mut out,
        "genesys_proxy_budget_in_flight",
        "gauge",
        "Upstream calls in flight.",
    );
    sample(
        &mut out,
        "genesys_proxy_budget_in_flight",
        "",
        budget.in_flight,
    );
    header(
        &mut out,
        "genesys_proxy_budget_granted_total",
        "counter",
        "Permits granted.",
    );
    sample(
        &mut out,
        "genesys_proxy_budget_granted_total",
        "",
        budget.granted,
    );
    header(
        &mut out,
        "genesys_proxy_budget_refused_total",
        "counter",
        "Demands refused (deadline unreachable or queue full).",
    );
    sample(
        &mut out,
        "genesys_proxy_budget_refused_total",
        "",
        budget.refused,
    );
    header(
        &mut out,
        "genesys_proxy_budget_effective_rate",
        "gauge",
        "Requests per period the budget paces at (lowered to Genesys' reported limit).",
    );
    sample(
        &mut out,
        "genesys_proxy_budget_effective_rate",
        "",
        budget.effective_rate,
    );
    header(
        &mut out,
        "genesys_proxy_budget_frozen",
        "gauge",
        "1 while upstream calls are frozen after a 429.",
    );
    sample(
        &mut out,
        "genesys_proxy_budget_frozen",
        "",
        u8::from(budget.frozen),
    );

    let token = state.client.tokens().stats();
    header(
        &mut out,
        "genesys_proxy_token_requests_total",
        "counter",
        "Token requests sent to the Genesys login host (refreshes included).",
    );
    sample(
        &mut out,
        "genesys_proxy_token_requests_total",
        "",
        token.requests,
    );
    header(
        &mut out,
        "genesys_proxy_token_failures_total",
        "counter",
        "Token requests that failed.",
    );
    sample(
        &mut out,
        "genesys_proxy_token_failures_total",
        "",
        token.failures,
    );
    header(
        &mut out,
        "genesys_proxy_token_valid",
        "gauge",
        "1 while a valid Genesys token is held.",
    );
    sample(
        &mut out,
        "genesys_proxy_token_valid",
        "",
        u8::from(token.has_token),
    );

    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}
