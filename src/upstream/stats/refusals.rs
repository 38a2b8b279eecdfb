//! [`RefusalLog`]: the budget's refusals as the callers received them, one record per
//! refused call, whatever the budget's implementation and whichever way it refused
//! (queue full, deadline unreachable, deadline passed while queued). It keeps a count and
//! a histogram of the `Retry-After` given, by class, for `/metrics`, and the last
//! [`RECENT`] refusals (time, class, endpoint, `Retry-After`) for the status page. No
//! client name, key or token is kept.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::metrics::{counter_by, header};
use crate::upstream::budget::Class;
use crate::upstream::endpoint::Endpoint;

/// How many refusals the log keeps for the status page.
pub const RECENT: usize = 20;

/// Upper bounds, in seconds, of the `Retry-After` histogram: a `Retry-After` is whole
/// seconds, from one (a busy pacing slot) to a window's reset or a long freeze.
pub const RETRY_AFTER_BUCKETS: [u64; 9] = [1, 2, 5, 10, 15, 30, 60, 120, 300];

/// One refused call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentRefusal {
    pub at: DateTime<Utc>,
    pub class: Class,
    pub endpoint: Endpoint,
    /// The wait given with the refusal, in whole seconds (at least 1): the `Retry-After`
    /// a client answered 503 for it is told.
    pub retry_after_secs: u64,
}

/// Refusals of one class: count and `Retry-After` histogram.
#[derive(Debug, Default, Clone, Copy)]
struct ClassFigures {
    /// Non-cumulative counts per bucket of [`RETRY_AFTER_BUCKETS`].
    buckets: [u64; RETRY_AFTER_BUCKETS.len()],
    count: u64,
    sum_secs: u64,
}

#[derive(Debug, Default)]
struct Log {
    classes: [ClassFigures; Class::ALL.len()],
    recent: VecDeque<RecentRefusal>,
}

/// The refusals' figures (refusals are rare: one lock is enough).
#[derive(Debug, Default)]
pub struct RefusalLog {
    log: Mutex<Log>,
}

/// `wait` as a `Retry-After` value: whole seconds, rounded up, at least 1 (as
/// [`crate::error::ApiError::unavailable`] renders it).
fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

impl RefusalLog {
    /// Records one refused call of `class` to `endpoint`, told to come back after `wait`.
    pub fn record(&self, class: Class, endpoint: Endpoint, wait: Duration) {
        let secs = retry_after_secs(wait);
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let figures = &mut log.classes[class as usize];
        figures.count += 1;
        figures.sum_secs = figures.sum_secs.saturating_add(secs);
        if let Some(bucket) = RETRY_AFTER_BUCKETS.iter().position(|&upper| secs <= upper) {
            figures.buckets[bucket] += 1;
        }
        if log.recent.len() == RECENT {
            log.recent.pop_front();
        }
        log.recent.push_back(RecentRefusal {
            at: Utc::now(),
            class,
            endpoint,
            retry_after_secs: secs,
        });
    }

    /// Refusals so far, by class (indexed by [`Class`]).
    #[must_use]
    pub fn counts(&self) -> [u64; Class::ALL.len()] {
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        log.classes.map(|figures| figures.count)
    }

    /// The last [`RECENT`] refusals, newest first.
    #[must_use]
    pub fn recent(&self) -> Vec<RecentRefusal> {
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        log.recent.iter().rev().cloned().collect()
    }

    /// Appends `genesys_proxy_budget_refused_total{class}` and
    /// `genesys_proxy_budget_refusal_retry_after_seconds{class}`.
    pub fn render(&self, out: &mut String) {
        let classes = self
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .classes;
        counter_by(
            out,
            "genesys_proxy_budget_refused_total",
            "Upstream calls the rate budget refused (queue full, deadline unreachable or passed while queued), by class.",
            "class",
            &Class::ALL.map(|class| (class.as_str(), classes[class as usize].count)),
        );
        let name = "genesys_proxy_budget_refusal_retry_after_seconds";
        header(
            out,
            name,
            "histogram",
            "Retry-After given with the budget's refusals (whole seconds), by class.",
        );
        for class in Class::ALL {
            let figures = classes[class as usize];
            let label = class.as_str();
            let mut cumulative = 0;
            for (upper, count) in RETRY_AFTER_BUCKETS.iter().zip(figures.buckets) {
                cumulative += count;
                let _ = writeln!(
                    out,
                    "{name}_bucket{{class=\"{label}\",le=\"{upper}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "{name}_bucket{{class=\"{label}\",le=\"+Inf\"}} {}",
                figures.count
            );
            let _ = writeln!(out, "{name}_sum{{class=\"{label}\"}} {}", figures.sum_secs);
            let _ = writeln!(out, "{name}_count{{class=\"{label}\"}} {}", figures.count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_counted_by_class_with_their_retry_after_and_the_last_ones_kept() {
        let log = RefusalLog::default();
        log.record(
            Class::Report,
            Endpoint::DetailsQuery,
            Duration::from_millis(1_200),
        );
        for _ in 0..RECENT {
            log.record(Class::Realtime, Endpoint::GetConversation, Duration::ZERO);
        }
        assert_eq!(log.counts(), [RECENT as u64, 1, 0]);
        let recent = log.recent();
        assert_eq!(recent.len(), RECENT, "the oldest left the ring");
        assert!(recent.iter().all(|r| r.class == Class::Realtime));
        assert_eq!(recent[0].retry_after_secs, 1, "at least one second");

        let mut out = String::new();
        log.render(&mut out);
        for line in [
            "genesys_proxy_budget_refused_total{class=\"realtime\"} 20",
            "genesys_proxy_budget_refused_total{class=\"report\"} 1",
            "genesys_proxy_budget_refused_total{class=\"hydrate\"} 0",
            "genesys_proxy_budget_refusal_retry_after_seconds_bucket{class=\"report\",le=\"1\"} 0",
            "genesys_proxy_budget_refusal_retry_after_seconds_bucket{class=\"report\",le=\"2\"} 1",
            "genesys_proxy_budget_refusal_retry_after_seconds_bucket{class=\"report\",le=\"+Inf\"} 1",
            "genesys_proxy_budget_refusal_retry_after_seconds_sum{class=\"report\"} 2",
            "genesys_proxy_budget_refusal_retry_after_seconds_count{class=\"realtime\"} 20",
        ] {
            assert!(out.lines().any(|l| l == line), "missing `{line}` in\n{out}");
        }
        assert_eq!(out.matches("# TYPE").count(), 2);
    }
}
