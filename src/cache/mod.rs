//! Caching: the policy of single-flight fetches and stale serving ([`swr`]) over a tier
//! that holds the entries ([`tier`]: the interface; [`moka_tier`]: the byte-bounded moka
//! store of each process, with its `front` table of entries answered lately; [`two_tier`]: moka before a tier shared by replicas), the
//! freshness rules for conversations and report pages ([`freshness`]), and the cache
//! headers of answers served from it ([`headers`]).
//! The cache never builds Genesys queries; it is handed a fetch to run.

pub mod freshness;
mod front;
pub mod headers;
pub mod metrics;
pub mod moka_tier;
pub mod swr;
pub mod tier;
pub mod two_tier;

pub use freshness::CacheSettings;
pub use headers::HitHeaders;
pub use moka_tier::MokaTier;
pub use swr::{CacheStats, CacheStatus, Cached, Freshness, Served, SwrCache, Weighted};
pub use tier::{CacheTier, FlightClaim, FlightWait, TierSize};
pub use two_tier::TwoTier;
