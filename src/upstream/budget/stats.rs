//! [`BudgetStats`]: a point-in-time view of a budget (any [`super::Budget`]), for `/admin`
//! and readiness as JSON, and for `/metrics` in the Prometheus text format: queue depth by
//! class, calls in flight, permits granted, the effective rate and its period, the freeze.
//! The time calls waited for a permit and the refusals (by class, with their
//! `Retry-After`) are upstream figures ([`crate::upstream::stats::UpstreamStats`]),
//! recorded where each permit is granted or refused, whatever the budget's implementation.

use super::Class;
use crate::metrics::{header, sample};

/// A point-in-time view of the budget, for metrics and `/admin`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct BudgetStats {
    /// Queued demands per class (realtime, report, hydrate).
    pub queued: [usize; 3],
    pub in_flight: usize,
    pub granted: u64,
    /// 429s reported by calls.
    pub rate_limited: u64,
    /// The rate currently used, in requests per period.
    pub effective_rate: u32,
    /// The period of the rate, in seconds (`budget.period_secs`).
    pub period_secs: f64,
    /// Whether calls are frozen after a 429.
    pub frozen: bool,
    /// Sum of queue waits of granted permits, in milliseconds.
    pub total_wait_ms: u64,
    /// Permits granted per class (realtime, report, hydrate): the classes' shares.
    pub granted_by_class: [u64; 3],
}

impl BudgetStats {
    /// Appends the budget's metric families.
    pub fn render(&self, out: &mut String) {
        header(
            out,
            "genesys_proxy_budget_queue_depth",
            "gauge",
            "Calls waiting for the rate budget, by class.",
        );
        for class in Class::ALL {
            sample(
                out,
                "genesys_proxy_budget_queue_depth",
                &format!("class=\"{}\"", class.as_str()),
                self.queued[class as usize],
            );
        }
        let families: [(&str, &str, &str, u64); 4] = [
            (
                "genesys_proxy_budget_in_flight",
                "gauge",
                "Upstream calls in flight.",
                u64::try_from(self.in_flight).unwrap_or(u64::MAX),
            ),
            (
                "genesys_proxy_budget_granted_total",
                "counter",
                "Permits granted.",
                self.granted,
            ),
            (
                "genesys_proxy_budget_effective_rate",
                "gauge",
                "Requests per period the budget paces at (lowered to Genesys' reported limit).",
                u64::from(self.effective_rate),
            ),
            (
                "genesys_proxy_budget_frozen",
                "gauge",
                "1 while upstream calls are frozen after a 429.",
                u64::from(self.frozen),
            ),
        ];
        for (name, kind, help, value) in families {
            header(out, name, kind, help);
            sample(out, name, "", value);
        }
        header(
            out,
            "genesys_proxy_budget_period_seconds",
            "gauge",
            "The period, in seconds, the effective rate counts requests over (budget.period_secs).",
        );
        sample(
            out,
            "genesys_proxy_budget_period_seconds",
            "",
            self.period_secs,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_renders_each_family_once_with_its_samples() {
        let stats = BudgetStats {
            queued: [1, 2, 3],
            in_flight: 4,
            granted: 5,
            effective_rate: 280,
            period_secs: 60.0,
            frozen: true,
            ..BudgetStats::default()
        };
        let mut out = String::new();
        stats.render(&mut out);
        for line in [
            "# TYPE genesys_proxy_budget_queue_depth gauge",
            "genesys_proxy_budget_queue_depth{class=\"realtime\"} 1",
            "genesys_proxy_budget_queue_depth{class=\"report\"} 2",
            "genesys_proxy_budget_queue_depth{class=\"hydrate\"} 3",
            "genesys_proxy_budget_in_flight 4",
            "genesys_proxy_budget_granted_total 5",
            "genesys_proxy_budget_effective_rate 280",
            "genesys_proxy_budget_period_seconds 60",
            "genesys_proxy_budget_frozen 1",
        ] {
            assert!(out.lines().any(|l| l == line), "missing `{line}` in\n{out}");
        }
        assert_eq!(out.matches("# TYPE").count(), 6);
    }
}
