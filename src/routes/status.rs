//! `GET /status`: the status page ([`crate::status`]), served where `/metrics` and
//! `/readyz` are (the operations listener, or the API listener when there is none) and,
//! like them, without an API key: it shows the figures `/metrics` exports, read from the
//! same components, and nothing more (no key, no client name, no token, no secret).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::{AppState, ops, readiness};
use crate::status::{Figures, Upstream, render};

/// The page's Content-Security-Policy: its own inline style, nothing else (no script, no
/// image, no font, no connection, no frame).
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The status page (HTML): a page for people, not an API operation, so not in the
/// OpenAPI document.
pub async fn status_page(State(state): State<AppState>) -> Response {
    let figures = figures(&state).await;
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        render(&figures),
    )
        .into_response()
}

/// The page's figures, read now.
async fn figures(state: &AppState) -> Figures {
    let (ready, body) = readiness::current(state).await;
    let components = body["components"]
        .as_object()
        .map(|all| {
            all.iter()
                .map(|(name, detail)| {
                    let status = detail["status"].as_str().unwrap_or("unknown");
                    (name.clone(), status.to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    let upstream = state.client.stats();
    Figures {
        generated_at: chrono::Utc::now(),
        ready,
        components,
        budget: state.client.budget().stats(),
        permits_by_class: upstream.permits_by_class(),
        refused_by_class: upstream.refusals().counts(),
        caches: ops::caches(state).await,
        token: state.client.tokens().readiness(),
        token_stats: state.client.tokens().stats(),
        upstream: Upstream::of(upstream),
        recent_refusals: upstream.refusals().recent(),
    }
}
