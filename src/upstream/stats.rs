//! Figures of the upstream calls, for `/metrics`: HTTP exchanges by endpoint and status
//! (or transport error), their latency, 429s received, retries, and the time each class
//! waited for the budget.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::budget::Class;
use crate::metrics::{Histogram, header, sample};

/// Upstream figures.
#[derive(Debug, Default)]
pub struct UpstreamStats {
    /// (endpoint, status or "error") -> count.
    exchanges: Mutex<BTreeMap<(&'static str, String), u64>>,
    latency: [Histogram; 4],
    pub rate_limited: AtomicU64,
    pub retries: AtomicU64,
    queue_wait: [Histogram; 3],
}

/// Endpoint labels, indexes into the latency histograms.
pub const ENDPOINTS: [&str; 4] = [
    "get_conversation",
    "details_query",
    "multi_get",
    "aggregates_query",
];

impl UpstreamStats {
    /// Records one HTTP exchange (`status` `None`: no answer).
    pub fn exchange(&self, endpoint: usize, status: Option<u16>, latency: Duration) {
        let label = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
        *self
            .exchanges
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((ENDPOINTS[endpoint], label))
            .or_default() += 1;
        self.latency[endpoint].observe(latency);
        if status == Some(429) {
            self.rate_limited.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records the budget wait of one granted permit.
    pub fn waited(&self, class: Class, wait: Duration) {
        self.queue_wait[class as usize].observe(wait);
    }

    /// Exchanges with `status` (any endpoint); for tests and readiness.
    pub fn exchanges_with(&self, status: &str) -> u64 {
        self.exchanges
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|((_, s), _)| s == status)
            .map(|(_, n)| n)
            .sum()
    }

    /// Appends the upstream metrics.
    pub fn render(&self, out: &mut String) {
        header(
            out,
            "genesys_proxy_upstream_requests_total",
            "counter",
            "HTTP exchanges with Genesys, by endpoint and status (error: no answer).",
        );
        for ((endpoint, status), count) in self
            .exchanges
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            sample(
                out,
                "genesys_proxy_upstream_requests_total",
                &format!("endpoint=\"{endpoint}\",status=\"{status}\""),
                count,
            );
        }
        header(
            out,
            "genesys_proxy_upstream_request_duration_seconds",
            "histogram",
            "Latency of HTTP exchanges with Genesys, by endpoint.",
        );
        for (endpoint, histogram) in ENDPOINTS.iter().zip(&self.latency) {
            histogram.render(
                out,
                "genesys_proxy_upstream_request_duration_seconds",
                &format!("endpoint=\"{endpoint}\""),
            );
        }
        header(
            out,
            "genesys_proxy_upstream_rate_limited_total",
            "counter",
            "429 answers received from Genesys (never passed on to clients).",
        );
        sample(
            out,
            "genesys_proxy_upstream_rate_limited_total",
            "",
            self.rate_limited.load(Ordering::Relaxed),
        );
        header(
            out,
            "genesys_proxy_upstream_retries_total",
            "counter",
            "Upstream attempts retried (transient failures, 401 refreshes, 429 freezes).",
        );
        sample(
            out,
            "genesys_proxy_upstream_retries_total",
            "",
            self.retries.load(Ordering::Relaxed),
        );
        header(
            out,
            "genesys_proxy_budget_wait_seconds",
            "histogram",
            "Time calls waited for the rate budget, by class.",
        );
        for (class, histogram) in Class::ALL.iter().zip(&self.queue_wait) {
            histogram.render(
                out,
                "genesys_proxy_budget_wait_seconds",
                &format!("class=\"{}\"", class.as_str()),
            );
        }
        let _ = write!(out, "");
    }
}
