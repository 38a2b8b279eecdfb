//! Operations endpoints: liveness, metrics, and the admin view of the cache (readiness
//! is [`super::readiness`], the status page [`super::status`]). `/metrics` only assembles
//! the families each component renders of itself: inbound HTTP, the caches, upstream
//! calls, the budget, the token, readiness.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
pub use super::readiness::readyz;

/// The body of `/healthz` (documentation only: the handler writes the same JSON).
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct Liveness {
    /// Always `ok`: the process answers.
    #[schema(example = "ok")]
    status: String,
}

/// Liveness: the process answers.
///
/// For a liveness probe: answers 200 as long as the process runs its HTTP server, without
/// any I/O (no Genesys call, no cache read, no Redis), so a Genesys or Redis outage never
/// gets a healthy replica restarted. Whether the proxy can serve data is `/readyz`.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses(
    (status = 200, description = "The process is alive", body = Liveness, example = json!({"status": "ok"})),
))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Cache, budget and token figures (admin scope).
///
/// The counters `/metrics` exports, as one JSON object, read now: `conversations` (the
/// conversation cache), `reports` (its `pages` and `aggregates` caches: hits, misses,
/// stale answers, collapsed requests, fetches, entries and bytes), `budget` (the request
/// budget: the effective rate, queued and in-flight calls, waits, refusals by class and
/// whether it is frozen after a Genesys 429), `token` (Genesys token requests and
/// failures) and `shared` (the shared mode's Redis state; `null` when the proxy runs
/// alone). Needs an API key with the `admin` scope.
#[utoipa::path(get, path = "/admin/cache", tag = "operations", responses(
    (status = 200, description = "Cache, budget and token figures", body = Object, content_type = "application/json"),
    (status = 401, description = "No or unknown API key", body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 403, description = "The key lacks the admin scope", body = crate::error::Problem, content_type = "application/problem+json"),
), security(("api_key" = []), ("bearer" = [])))]
pub async fn cache_stats(State(state): State<AppState>) -> Json<serde_json::Value> {
    state.conversations.settle().await;
    state.reports.settle().await;
    // The budget's refusals are recorded where callers receive them (the upstream
    // figures, as `/metrics` renders them), by class.
    let mut budget = json!(state.client.budget().stats());
    let refused = state.client.stats().refusals().counts();
    budget["refused"] = crate::upstream::Class::ALL
        .iter()
        .map(|class| (class.as_str().to_owned(), json!(refused[*class as usize])))
        .collect::<serde_json::Map<_, _>>()
        .into();
    let tokens = state.client.tokens();
    let shared = match tokens.shared() {
        Some(shared) => Some(shared.view(|sealed| tokens.uses_sealed(sealed)).await),
        None => None,
    };
    Json(json!({
        "conversations": state.conversations.stats(),
        "reports": state.reports.stats(),
        "budget": budget,
        "token": state.client.tokens().stats(),
        "shared": shared,
    }))
}

/// Drops every cached entry (admin scope).
///
/// Empties the conversation, report page and aggregates caches of this replica: the next
/// request for each goes to Genesys. Figures and the token are kept. Needs an API key with
/// the `admin` scope.
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
///
/// For a Prometheus scraper: inbound HTTP requests, the caches, upstream Genesys calls,
/// the request budget (waits and refusals by class), the Genesys token, notifications,
/// the shared mode (when on) and readiness, each family with its `# HELP` line. Open to
/// anyone, like the probes: it carries no key, client name or secret.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses(
    (status = 200, description = "Prometheus text exposition (version 0.0.4)", content_type = "text/plain"),
))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    // Each component renders its own families; this only assembles them, in the order
    // inbound HTTP, caches, upstream calls (with the budget's waits and refusals), budget,
    // token, readiness.
    let mut out = String::with_capacity(16 * 1024);
    state.http_metrics.render(&mut out);

    crate::cache::metrics::render(&mut out, &caches(&state).await);

    state.client.stats().render(&mut out);
    state.client.budget().stats().render(&mut out);
    state.client.tokens().stats().render(&mut out);
    state.notifications.stats().render(&mut out);
    if let Some(shared) = state.client.tokens().shared() {
        shared.stats().render(&mut out);
    }

    let (ready, body) = super::readiness::current(&state).await;
    super::readiness::render(&mut out, ready, &body);

    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

/// The caches by their `cache` label (conversations, report pages, aggregates), their
/// pending evictions applied: what `/metrics` and the status page show.
pub async fn caches(state: &AppState) -> Vec<(&'static str, crate::cache::CacheStats)> {
    state.conversations.settle().await;
    state.reports.settle().await;
    let reports = state.reports.stats();
    vec![
        ("conversations", state.conversations.stats()),
        ("report_pages", reports.pages),
        ("aggregates", reports.aggregates),
    ]
}
