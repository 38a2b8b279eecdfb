//! Figures of the upstream calls, rendered for `/metrics`: HTTP exchanges by endpoint and
//! status (or transport error), their latency by [`Endpoint`], 429s received, retries, and
//! the time each class waited for the budget.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::budget::Class;
use super::endpoint::Endpoint;
use crate::metrics::{Histogram, header, sample};

/// Upstream figures.
#[derive(Debug, Default)]
pub struct UpstreamStats {
    /// (endpoint label, status or "error") -> count; rendered in label order.
    exchanges: Mutex<BTreeMap<(&'static str, String), u64>>,
    /// Latency per endpoint, indexed by [`Endpoint`].
    latency: [Histogram; Endpoint::ALL.len()],
    rate_limited: AtomicU64,
    retries: AtomicU64,
    /// Budget waits per class, indexed by [`Class`].
    queue_wait: [Histogram; Class::ALL.len()],
}

impl UpstreamStats {
    /// Records one HTTP exchange (`status` `None`: no answer).
    pub fn exchange(&self, endpoint: Endpoint, status: Option<u16>, latency: Duration) {
        let label = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
        *self
            .exchanges
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((endpoint.as_str(), label))
            .or_default() += 1;
        self.latency[endpoint as usize].observe(latency);
        if status == Some(429) {
            self.rate_limited.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records the budget wait of one granted permit.
    pub fn waited(&self, class: Class, wait: Duration) {
        self.queue_wait[class as usize].observe(wait);
    }

    /// Counts one attempt retried (a transient failure, a 401 refresh, a 429 freeze).
    pub fn count_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
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
        for endpoint in Endpoint::ALL {
            self.latency[endpoint as usize].render(
                out,
                "genesys_proxy_upstream_request_duration_seconds",
                &format!("endpoint=\"{}\"", endpoint.as_str()),
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
        for class in Class::ALL {
            self.queue_wait[class as usize].render(
                out,
                "genesys_proxy_budget_wait_seconds",
                &format!("class=\"{}\"", class.as_str()),
            );
        }
    }
}
