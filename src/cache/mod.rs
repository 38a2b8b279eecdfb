//! Caching: a byte-bounded moka store with single-flight fetches and stale serving
//! ([`swr`]), the freshness rules for conversations and report pages ([`freshness`]), and
//! the cache headers of answers served from it ([`headers`]).
//! The cache never builds Genesys queries; it is handed a fetch to run.

pub mod freshness;
pub mod headers;
pub mod metrics;
pub mod swr;

pub use freshness::CacheSettings;
pub use headers::HitHeaders;
pub use swr::{CacheStats, CacheStatus, Cached, Freshness, Served, SwrCache, Weighted};
