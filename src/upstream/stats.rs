//! Figures of the upstream calls, rendered for `/metrics` and read by the status page:
//! HTTP exchanges by endpoint and status (or transport error), their latency by
//! [`Endpoint`], 429s received and when the last one came, retries, the time each class
//! waited for the budget, and the budget's refusals as the callers received them
//! ([`RefusalLog`]).

mod refusals;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::budget::Class;
use super::endpoint::Endpoint;
use crate::metrics::{Histogram, header, sample};
pub use refusals::{RECENT, RecentRefusal, RefusalLog};

/// Upstream figures.
#[derive(Debug, Default)]
pub struct UpstreamStats {
    /// (endpoint label, status or "error") -> count; rendered in label order.
    exchanges: Mutex<BTreeMap<(&'static str, String), u64>>,
    /// Latency per endpoint, indexed by [`Endpoint`].
    latency: [Histogram; Endpoint::ALL.len()],
    rate_limited: AtomicU64,
    /// When the last 429 came, in Unix seconds (0: never).
    last_rate_limited: AtomicI64,
    retries: AtomicU64,
    /// Budget waits per class, indexed by [`Class`].
    queue_wait: [Histogram; Class::ALL.len()],
    refusals: RefusalLog,
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
            self.last_rate_limited
                .store(chrono::Utc::now().timestamp(), Ordering::Relaxed);
        }
    }

    /// Records a call the budget refused: its class, its endpoint, the wait it was given.
    pub fn refused(&self, class: Class, endpoint: Endpoint, retry_after: Duration) {
        self.refusals.record(class, endpoint, retry_after);
    }

    /// The budget's refusals as the callers received them.
    #[must_use]
    pub fn refusals(&self) -> &RefusalLog {
        &self.refusals
    }

    /// HTTP exchanges so far: (endpoint label, status or `error`, count), in label order.
    #[must_use]
    pub fn exchanges(&self) -> Vec<(&'static str, String, u64)> {
        self.exchanges
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|((endpoint, status), count)| (*endpoint, status.clone(), *count))
            .collect()
    }

    /// 429s received so far, and when the last one came.
    #[must_use]
    pub fn rate_limited(&self) -> (u64, Option<chrono::DateTime<chrono::Utc>>) {
        let last = self.last_rate_limited.load(Ordering::Relaxed);
        (
            self.rate_limited.load(Ordering::Relaxed),
            (last > 0)
                .then(|| chrono::DateTime::from_timestamp(last, 0))
                .flatten(),
        )
    }

    /// Attempts retried so far.
    #[must_use]
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Permits granted so far, by class (one budget wait is observed per permit).
    #[must_use]
    pub fn permits_by_class(&self) -> [u64; Class::ALL.len()] {
        Class::ALL.map(|class| self.queue_wait[class as usize].count())
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
            "genesys_proxy_upstream_last_rate_limited_timestamp_seconds",
            "gauge",
            "When Genesys last answered 429, in Unix seconds (0: never since the start).",
        );
        sample(
            out,
            "genesys_proxy_upstream_last_rate_limited_timestamp_seconds",
            "",
            self.last_rate_limited.load(Ordering::Relaxed),
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
        self.refusals.render(out);
    }
}
