//! Caching: a byte-bounded moka store with single-flight fetches and stale serving
//! ([`swr`]), and the freshness rules for conversations and report pages ([`freshness`]).
//! The cache never builds Genesys queries; it is handed a fetch to run.

pub mod freshness;
pub mod swr;

pub use freshness::CacheSettings;
pub use swr::{CacheStats, CacheStatus, Cached, Freshness, Served, SwrCache, Weighted};
