//! Metrics in the Prometheus text format (`GET /metrics`): inbound requests by route,
//! method and status with latency histograms; cache hits, misses, stale and collapsed
//! answers, entries and bytes; upstream calls by endpoint and status, 429s received,
//! latencies; the budget's queue depth, in-flight calls and waits per class; token
//! requests. Each `App` has its own registry (no global state), so tests stay isolated.
//! Nothing secret is ever a label.
//!
//! [`HttpMetrics`] also carries the switch of the access log ([`crate::access_log`]).
//! Both are recorded at one point, by the front door ([`crate::routes::front_door`]), for
//! every request it answers, with the route label it derives in one place.

pub mod histogram;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

pub use histogram::Histogram;

use crate::access_log::AccessLog;

/// One series of inbound requests (a route, method and status).
#[derive(Debug, Default)]
pub struct RequestSeries {
    key: RequestKey,
    /// The latency of its requests; its count is the series' request count.
    latency: Histogram,
}

type RequestKey = (String, String, u16);

/// The inbound request metrics. Series are found by a hash of their labels, so recording
/// a request allocates nothing once its series exists.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    series: RwLock<HashMap<u64, Arc<RequestSeries>>>,
    /// Requests answered by the cache-hit fast path (also counted in their series).
    fast_path_answers: AtomicU64,
    /// The access log of the same requests (off by default).
    access_log: Arc<AccessLog>,
}

fn series_hash(route: &str, method: &str, status: u16) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (route, method, status).hash(&mut hasher);
    hasher.finish()
}

impl RequestSeries {
    /// Records one answered request of this series.
    pub fn observe(&self, latency: Duration) {
        self.latency.observe(latency);
    }
}

impl HttpMetrics {
    /// Request metrics, with the access log on when `access_log` is set
    /// (`[telemetry] access_log`).
    #[must_use]
    pub fn new(access_log: bool) -> Self {
        Self {
            access_log: Arc::new(AccessLog::new(access_log)),
            ..Self::default()
        }
    }

    /// The access log of the requests these metrics count.
    #[must_use]
    pub fn access_log(&self) -> &Arc<AccessLog> {
        &self.access_log
    }

    /// Records one answered request.
    pub fn record(&self, route: &str, method: &str, status: u16, latency: Duration) {
        self.series(route, method, status).observe(latency);
    }

    /// The series of `route`, `method` and `status`, created when new. A caller that
    /// answers the same kind of request again and again keeps it and calls
    /// [`RequestSeries::observe`], skipping the lookup.
    pub fn series(&self, route: &str, method: &str, status: u16) -> Arc<RequestSeries> {
        let hash = series_hash(route, method, status);
        let existing = self
            .series
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&hash)
            .cloned();
        existing.unwrap_or_else(|| {
            self.series
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(hash)
                .or_insert_with(|| {
                    Arc::new(RequestSeries {
                        key: (route.to_owned(), method.to_owned(), status),
                        ..RequestSeries::default()
                    })
                })
                .clone()
        })
    }

    /// Counts one request answered by the cache-hit fast path.
    pub fn count_fast_path_answer(&self) {
        self.fast_path_answers.fetch_add(1, Ordering::Relaxed);
    }

    /// Appends the request series.
    pub fn render(&self, out: &mut String) {
        let series = self.series.read().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<&Arc<RequestSeries>> = series.values().collect();
        all.sort_by(|a, b| a.key.cmp(&b.key));
        header(
            out,
            "genesys_proxy_http_requests_total",
            "counter",
            "Inbound requests answered, by route, method and status.",
        );
        for one in &all {
            let (route, method, status) = &one.key;
            let count = one.latency.count();
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
        for one in &all {
            let (route, method, status) = &one.key;
            one.latency.render(
                out,
                "genesys_proxy_http_request_duration_seconds",
                &format!("route=\"{route}\",method=\"{method}\",status=\"{status}\""),
            );
        }
        header(
            out,
            "genesys_proxy_http_fast_path_answers_total",
            "counter",
            "Requests answered by the cache-hit fast path of GET /conversations/{id} (also counted in genesys_proxy_http_requests_total).",
        );
        sample(
            out,
            "genesys_proxy_http_fast_path_answers_total",
            "",
            self.fast_path_answers.load(Ordering::Relaxed),
        );
    }
}

/// Writes the `# HELP` and `# TYPE` lines of a metric.
pub fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Writes a counter family with one label: its `# HELP` and `# TYPE` lines, then one
/// sample per `(label value, count)`.
pub fn counter_by(out: &mut String, name: &str, help: &str, label: &str, counts: &[(&str, u64)]) {
    header(out, name, "counter", help);
    for (value, count) in counts {
        sample(out, name, &format!("{label}=\"{value}\""), count);
    }
}

/// Writes one sample.
pub fn sample(out: &mut String, name: &str, labels: &str, value: impl std::fmt::Display) {
    if labels.is_empty() {
        let _ = writeln!(out, "{name} {value}");
    } else {
        let _ = writeln!(out, "{name}{{{labels}}} {value}");
    }
}
