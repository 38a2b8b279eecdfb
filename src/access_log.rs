//! The access log (opt-in): one `info` line per answered request, an audit trail of who
//! read what, in the configured log format (pretty or JSON lines).
//!
//! Each line (target `genesys_proxy::access_log`, message `request answered`) carries:
//! `request_id`, `method`, `route` (the route template, `/conversations/{id}`), `status`,
//! `client` (the API key's client name, `-` when none is known), `conversation_id` (for a
//! conversation lookup: the record read), `cache` (how the cache answered, `-` when it
//! did not), `upstream_calls` (HTTP attempts to Genesys made for this request, token
//! requests aside; a request that joined another's fetch made none), `latency_ms` and
//! `fast_path` (answered early, by the cache-hit answerer [`crate::routes::hit_path`]).
//!
//! It never writes bodies, query strings (report filters name agents, queues and
//! divisions: other parties), headers, tokens or API keys. This module owns the line and
//! its switch; the front door ([`crate::routes::front_door`]) writes one for every
//! request it answers, early or through the router, at the same point as the request
//! metrics.
//!
//! Upstream calls happen in fetch tasks of their own (a disconnecting client cannot
//! cancel them), which run inside the request's span: the door hangs a counter on that
//! span ([`attach_call_counter`]), and [`count_upstream_call`] finds it from wherever the
//! call runs. Without a subscriber (or with the request span filtered out) there is
//! nothing to count and nothing to log.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use axum::http::HeaderMap;
use tracing_subscriber::registry::LookupSpan as _;

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

/// How the cache answered, read back from the answer's `Cache-Status` header (which the
/// error layer keeps when it renders a problem, where response extensions are lost).
#[must_use]
pub fn cache_status(headers: &HeaderMap) -> Option<CacheStatus> {
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
pub struct UpstreamCalls(Arc<AtomicU32>);

impl UpstreamCalls {
    /// The calls counted so far.
    #[must_use]
    pub fn count(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Hangs a new counter on the current span (the request's), if spans are recorded.
#[must_use]
pub fn attach_call_counter() -> Option<UpstreamCalls> {
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
