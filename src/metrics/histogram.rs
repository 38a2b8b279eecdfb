//! A lock-free latency histogram with fixed buckets, rendered as a Prometheus histogram.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bucket upper bounds in seconds: sub-millisecond cache hits up to slow upstream calls.
pub const BUCKETS: [f64; 16] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0, 30.0,
];

/// Observation counts per bucket and the sum of the observed values. The count of
/// observations is the sum of the buckets' counts (one atomic add fewer per observation,
/// and a rendered `_count` always equals the `+Inf` bucket).
#[derive(Debug, Default)]
pub struct Histogram {
    /// Per bucket of [`BUCKETS`], then one for the observations above the last bound.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    /// Sum in nanoseconds.
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, value: Duration) {
        let secs = value.as_secs_f64();
        let index = BUCKETS
            .iter()
            .position(|&upper| secs <= upper)
            .unwrap_or(BUCKETS.len());
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(
            u64::try_from(value.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// Appends `name_bucket`, `name_sum` and `name_count` lines with `labels` (already
    /// formatted as `a="b",c="d"`, possibly empty).
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (upper, bucket) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{upper}\"}} {cumulative}"
            );
        }
        let count = cumulative + self.buckets[BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_cumulative_buckets() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(800));
        h.observe(Duration::from_millis(30));
        h.observe(Duration::from_secs(60));
        let mut out = String::new();
        h.render(&mut out, "x", "route=\"/a\"");
        assert!(out.contains("x_bucket{route=\"/a\",le=\"0.001\"} 1\n"));
        assert!(out.contains("x_bucket{route=\"/a\",le=\"0.05\"} 2\n"));
        // The minute is above every bound: only in `+Inf` and the count.
        assert!(out.contains("x_bucket{route=\"/a\",le=\"30\"} 2\n"));
        assert!(out.contains("x_bucket{route=\"/a\",le=\"+Inf\"} 3\n"));
        assert!(out.contains("x_count{route=\"/a\"} 3\n"));
        assert_eq!(h.count(), 3);
    }
}
