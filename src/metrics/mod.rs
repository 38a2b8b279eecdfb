//! Metrics in the Prometheus text format (`GET /metrics`): inbound requests by route,
//! method and status with latency histograms; cache hits, misses, stale and collapsed
//! answers, entries and bytes; upstream calls by endpoint and status, 429s received,
//! latencies; the budget's queue depth, in-flight calls and waits per class; token
//! requests. Each `App` has its own registry (no global state), so tests stay isolated.
//! Nothing secret is ever a label.

pub mod histogram;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tokio::time::Instant;

pub use histogram::Histogram;

/// One series of inbound requests.
#[derive(Debug, Default)]
struct RequestSeries {
    count: AtomicU64,
    latency: Histogram,
}

type RequestKey = (String, String, u16);

/// The inbound request metrics.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    series: RwLock<HashMap<RequestKey, Arc<RequestSeries>>>,
}

impl HttpMetrics {
    /// Records one answered request.
    pub fn record(&self, route: &str, method: &str, status: u16, latency: Duration) {
        let key = (route.to_owned(), method.to_owned(), status);
        let existing = self
            .series
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .cloned();
        let series = existing.unwrap_or_else(|| {
            self.series
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(key)
                .or_default()
                .clone()
        });
        series.count.fetch_add(1, Ordering::Relaxed);
        series.latency.observe(latency);
    }

    /// Appends the request series.
    pub fn render(&self, out: &mut String) {
        let series = self.series.read().unwrap_or_else(PoisonError::into_inner);
        let mut keys: Vec<&RequestKey> = series.keys().collect();
        keys.sort();
        header(
            out,
            "genesys_proxy_http_requests_total",
            "counter",
            "Inbound requests answered, by route, method and status.",
        );
        for key in &keys {
            let (route, method, status) = key;
            let count = series[*key].count.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "genesys_proxy_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {count}"
            );
        }
        header(
            out,
            "genesys_proxy_http_request_duration_seconds",
            "histogram",
            "Inbound request latency, by route, method and status.",
        );
        for key in &keys {
            let (route, method, status) = key;
            series[*key].latency.render(
                out,
                "genesys_proxy_http_request_duration_seconds",
                &format!("route=\"{route}\",method=\"{method}\",status=\"{status}\""),
            );
        }
    }
}

/// Writes the `# HELP` and `# TYPE` lines of a metric.
pub fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Writes one sample.
pub fn sample(out: &mut String, name: &str, labels: &str, value: impl std::fmt::Display) {
    if labels.is_empty() {
        let _ = writeln!(out, "{name} {value}");
    } else {
        let _ = writeln!(out, "{name}{{{labels}}} {value}");
    }
}

/// The route label of a matched path (the id wildcard reads as `{id}`).
fn route_label(request: &Request) -> String {
    request.extensions().get::<MatchedPath>().map_or_else(
        || "unmatched".to_owned(),
        |p| p.as_str().replace("{*id}", "{id}"),
    )
}

/// Middleware recording every answered request.
pub async fn track(
    State(metrics): State<Arc<HttpMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let route = route_label(&request);
    let method = request.method().as_str().to_owned();
    let response = next.run(request).await;
    metrics.record(
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}
