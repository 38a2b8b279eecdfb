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

/// A cache metric family: name, type, help, and how to read its value.
type CacheFamily = (
    &'static str,
    &'static str,
    &'static str,
    fn(&crate::cache::CacheStats) -> u64,
);

/// The cache families, each family's samples together (as the text format requires).
fn cache_metrics(out: &mut String, caches: &[(&str, crate::cache::CacheStats)]) {
    use crate::metrics::{header, sample};
    header(
        out,
        "genesys_proxy_cache_requests_total",
        "counter",
        "Cache lookups by cache and result (hit, miss, stale, collapsed).",
    );
    for (name, stats) in caches {
        for (result, value) in [
            ("hit", stats.hits),
            ("miss", stats.misses),
            ("stale", stats.stale),
            ("collapsed", stats.collapsed),
        ] {
            sample(
                out,
                "genesys_proxy_cache_requests_total",
                &format!("cache=\"{name}\",result=\"{result}\""),
                value,
            );
        }
    }
    let families: [CacheFamily; 5] = [
        (
            "genesys_proxy_cache_fetches_total",
            "counter",
            "Upstream fetches started by the cache (one per key however many requests wait).",
            |s| s.fetches,
        ),
        (
            "genesys_proxy_cache_fetch_errors_total",
            "counter",
            "Cache fetches that failed.",
            |s| s.fetch_errors,
        ),
        (
            "genesys_proxy_cache_entries",
            "gauge",
            "Entries held.",
            |s| s.entries,
        ),
        (
            "genesys_proxy_cache_bytes",
            "gauge",
            "Bytes held (weighted size).",
            |s| s.bytes,
        ),
        (
            "genesys_proxy_cache_max_bytes",
            "gauge",
            "Configured byte budget.",
            |s| s.max_bytes,
        ),
    ];
    for (family, kind, help, value) in families {
        header(out, family, kind, help);
        for (name, stats) in caches {
            sample(out, family, &format!("cache=\"{name}\""), value(stats));
        }
    }
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
    cache_metrics(
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
