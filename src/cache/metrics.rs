//! The caches' figures in the Prometheus text format: lookups by result, fetches, fetch
//! errors, entries, bytes and the byte budget, one sample per cache in each family.

use super::CacheStats;
use crate::metrics::{header, sample};

/// A cache metric family: name, type, help, and how to read its value.
type CacheFamily = (
    &'static str,
    &'static str,
    &'static str,
    fn(&CacheStats) -> u64,
);

/// The cache families, each family's samples together (as the text format requires).
pub fn render(out: &mut String, caches: &[(&str, CacheStats)]) {
    header(
        out,
        "genesys_proxy_cache_requests_total",
        "counter",
        "Cache lookups by cache and result (hit, miss, stale, collapsed).",
    );
    for (name, stats) in caches {
        for (result, value) in [
            ("hit", stats.hits),
            ("miss", stats.misses),
            ("stale", stats.stale),
            ("collapsed", stats.collapsed),
        ] {
            sample(
                out,
                "genesys_proxy_cache_requests_total",
                &format!("cache=\"{name}\",result=\"{result}\""),
                value,
            );
        }
    }
    let families: [CacheFamily; 5] = [
        (
            "genesys_proxy_cache_fetches_total",
            "counter",
            "Upstream fetches started by the cache (one per key however many requests wait).",
            |s| s.fetches,
        ),
        (
            "genesys_proxy_cache_fetch_errors_total",
            "counter",
            "Cache fetches that failed.",
            |s| s.fetch_errors,
        ),
        (
            "genesys_proxy_cache_entries",
            "gauge",
            "Entries held.",
            |s| s.entries,
        ),
        (
            "genesys_proxy_cache_bytes",
            "gauge",
            "Bytes held (weighted size).",
            |s| s.bytes,
        ),
        (
            "genesys_proxy_cache_max_bytes",
            "gauge",
            "Configured byte budget.",
            |s| s.max_bytes,
        ),
    ];
    for (family, kind, help, value) in families {
        header(out, family, kind, help);
        for (name, stats) in caches {
            sample(out, family, &format!("cache=\"{name}\""), value(stats));
        }
    }
}
