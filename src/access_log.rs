//! The access log (opt-in): one `info` line per answered request, an audit trail of who
//! read what, in the configured log format (pretty or JSON lines).
//!
//! Each line (target `genesys_proxy::access_log`, message `request answered`) carries:
//! `request_id`, `method`, `route` (the route template, `/conversations/{id}`), `status`,
//! `client` (the API key's client name, `-` when none is known), `conversation_id` (for a
//! conversation lookup: the record read), `cache` (how the cache answered, `-` when it
//! did not), `upstream_calls` (HTTP attempts to Genesys made for this request, token
//! requests aside; a request that joined another's fetch made none), `latency_ms` and
//! `fast_path` (answered before the router, [`crate::routes::hit_path`]).
//!
//! It never writes bodies, query strings (report filters name agents, queues and
//! divisions: other parties), headers, tokens or API keys. Requests answered on the hit
//! fast path and by the router are logged alike: the fast path calls [`AccessLog::write`]
//! itself, the router's middleware ([`record`]) does it for everything else.
//!
//! Upstream calls happen in fetch tasks of their own (a disconnecting client cannot
//! cancel them), which run inside the request's span: the middleware hangs a counter on
//! that span, and [`count_upstream_call`] finds it from wherever the call runs. Without a
//! subscriber (or with the request span filtered out) there is nothing to count and
//! nothing to log.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use tokio::time::Instant;
use tracing_subscriber::registry::LookupSpan as _;

use crate::auth::{ApiKeys, presented_key};
use crate::cache::CacheStatus;

/// Whether the access log is written. Off by default (`[telemetry] access_log`).
#[derive(Debug, Default)]
pub struct AccessLog {
    enabled: AtomicBool,
}

/// One answered request, as the access log writes it.
#[derive(Debug, Clone, Copy)]
pub struct AccessEntry<'a> {
    pub request_id: &'a str,
    pub method: &'a str,
    pub route: &'a str,
    pub status: u16,
    pub client: Option<&'a str>,
    pub conversation_id: Option<&'a str>,
    pub cache: Option<CacheStatus>,
    /// `None` when the calls could not be counted (no request span).
    pub upstream_calls: Option<u32>,
    pub latency: Duration,
    pub fast_path: bool,
}

impl AccessLog {
    /// An access log, written when `enabled`.
    #[must_use]
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled: AtomicBool::new(enabled),
        }
    }

    /// Whether lines are written.
    #[must_use]
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Turns the log on or off from now on (the setting gives its state at start).
    pub fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::Relaxed);
    }

    /// Writes `entry` when the log is on.
    pub fn write(&self, entry: &AccessEntry<'_>) {
        if !self.enabled() {
            return;
        }
        // Microsecond resolution, as milliseconds.
        let latency_ms = u32::try_from(entry.latency.as_micros())
            .map_or(f64::from(u32::MAX), f64::from)
            / 1000.0;
        tracing::info!(
            request_id = entry.request_id,
            method = entry.method,
            route = entry.route,
            status = entry.status,
            client = entry.client.unwrap_or("-"),
            conversation_id = entry.conversation_id,
            cache = entry.cache.map_or("-", CacheStatus::label),
            upstream_calls = entry.upstream_calls,
            latency_ms,
            fast_path = entry.fast_path,
            "request answered"
        );
    }
}

/// What the router's access-log middleware needs.
#[derive(Debug, Clone)]
pub struct RouterAccessLog {
    pub log: Arc<AccessLog>,
    pub keys: Arc<ApiKeys>,
}

/// Middleware: writes the access line of every request the router answers. It runs
/// inside the request's span (the counter of upstream calls hangs there) and outside the
/// error and timeout layers (it logs the status the client gets).
pub async fn record(
    State(access): State<RouterAccessLog>,
    request: Request,
    next: Next,
) -> Response {
    if !access.log.enabled() {
        return next.run(request).await;
    }
    let started = Instant::now();
    let route = route_template(&request);
    let conversation_id = (route == CONVERSATION_ROUTE)
        .then(|| {
            request
                .uri()
                .path()
                .strip_prefix("/conversations/")
                .filter(|id| uuid::Uuid::try_parse(id).is_ok())
                .map(str::to_owned)
        })
        .flatten();
    let method = request.method().as_str().to_owned();
    let request_id = header_text(request.headers(), "x-request-id").to_owned();
    let client = presented_key(request.headers())
        .and_then(|key| access.keys.authenticate(key))
        .map(|caller| caller.name.clone());
    let calls = attach_call_counter();
    let response = next.run(request).await;
    access.log.write(&AccessEntry {
        request_id: &request_id,
        method: &method,
        route: &route,
        status: response.status().as_u16(),
        client: client.as_deref(),
        conversation_id: conversation_id.as_deref(),
        cache: cache_status(response.headers()),
        upstream_calls: calls.map(|c| c.0.load(Ordering::Relaxed)),
        latency: started.elapsed(),
        fast_path: false,
    });
    response
}

/// The route template of conversation lookups.
pub const CONVERSATION_ROUTE: &str = "/conversations/{id}";

/// The matched route's template (the id wildcard reads as `{id}`), `unmatched` for none.
fn route_template(request: &Request) -> String {
    request.extensions().get::<MatchedPath>().map_or_else(
        || "unmatched".to_owned(),
        |p| p.as_str().replace("{*id}", "{id}"),
    )
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
}

/// How the cache answered, read back from the answer's `Cache-Status` header (which the
/// error layer keeps when it renders a problem, where response extensions are lost).
fn cache_status(headers: &HeaderMap) -> Option<CacheStatus> {
    // Those with a suffix first: a plain hit's prefix is also theirs.
    const ORDER: [CacheStatus; 6] = [
        CacheStatus::StaleWhileRevalidate,
        CacheStatus::StaleIfError,
        CacheStatus::Collapsed,
        CacheStatus::Refreshed,
        CacheStatus::Miss,
        CacheStatus::Hit,
    ];
    let value = headers.get("cache-status")?.to_str().ok()?;
    ORDER.into_iter().find(|status| {
        let (before, after) = status.header_parts();
        value
            .strip_prefix(before)
            .and_then(|rest| rest.strip_suffix(after))
            .is_some_and(|ttl| ttl.parse::<i64>().is_ok())
    })
}

/// The counter of upstream calls hung on a request's span.
#[derive(Debug, Clone, Default)]
struct UpstreamCalls(Arc<AtomicU32>);

/// Hangs a new counter on the current span (the request's), if spans are recorded.
fn attach_call_counter() -> Option<UpstreamCalls> {
    let counter = UpstreamCalls::default();
    tracing::Span::current()
        .with_subscriber(|(id, dispatch)| {
            let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
            let span = registry.span(id)?;
            span.extensions_mut().replace(counter.clone());
            Some(())
        })
        .flatten()
        .map(|()| counter)
}

/// Counts one HTTP attempt to Genesys for the request whose span encloses the current
/// one (none when the access log is off: no counter hangs there).
pub fn count_upstream_call() {
    tracing::Span::current().with_subscriber(|(id, dispatch)| {
        let Some(registry) = dispatch.downcast_ref::<tracing_subscriber::Registry>() else {
            return;
        };
        let Some(span) = registry.span(id) else {
            return;
        };
        for span in span.scope() {
            if let Some(calls) = span.extensions().get::<UpstreamCalls>() {
                calls.0.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_cache_status_is_read_back_from_its_header() {
        for (value, expected) in [
            ("genesys-proxy; hit; ttl=5", Some(CacheStatus::Hit)),
            (
                "genesys-proxy; hit; ttl=0; detail=stale-if-error",
                Some(CacheStatus::StaleIfError),
            ),
            (
                "genesys-proxy; hit; ttl=-3; detail=stale-while-revalidate",
                Some(CacheStatus::StaleWhileRevalidate),
            ),
            (
                "genesys-proxy; fwd=miss; stored; ttl=30",
                Some(CacheStatus::Miss),
            ),
            (
                "genesys-proxy; fwd=stale; stored; ttl=30",
                Some(CacheStatus::Refreshed),
            ),
            (
                "genesys-proxy; fwd=miss; collapsed; ttl=30",
                Some(CacheStatus::Collapsed),
            ),
            ("something else", None),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert("cache-status", HeaderValue::from_static(value));
            assert_eq!(cache_status(&headers), expected, "{value}");
        }
        assert_eq!(cache_status(&HeaderMap::new()), None);
    }
}
