//! The report caches' shapes: what they hold (an upstream response as parsed, and its
//! size: [`CachedResponse`]), how an entry is named (the digest of the upstream query:
//! [`cache_key`]), and their tiers (each replica's moka store, then Redis in shared mode,
//! under one namespace per cache; the record is `crate::shared::cache::report`).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::cache::{Cached, MokaTier, SwrCache, TwoTier, Weighted};
use crate::shared::SharedTier;
use crate::shared::cache::RedisTier;
use crate::shared::cache::codec::SharedValue;
use crate::upstream::models::DetailsResponse;

/// A cached upstream response and its size.
#[derive(Debug)]
pub struct CachedResponse<T> {
    pub body: T,
    pub size: usize,
}

impl<T> From<crate::upstream::Fetched<T>> for CachedResponse<T> {
    fn from(fetched: crate::upstream::Fetched<T>) -> Self {
        Self {
            body: fetched.body,
            size: fetched.size,
        }
    }
}

impl<T: Send + Sync + 'static> Weighted for CachedResponse<T> {
    fn weight(&self) -> u32 {
        u32::try_from(self.size)
            .unwrap_or(u32::MAX)
            .saturating_add(512)
    }
}

/// The tiers of a report cache: the replica's moka store, then Redis in shared mode (see
/// [`crate::cache::TwoTier`]).
pub type ReportTier<T> = TwoTier<String, CachedResponse<T>, RedisTier<String, CachedResponse<T>>>;

/// A report cache: keys are [`cache_key`]s of the upstream queries.
pub(super) type ReportCache<T> = Arc<SwrCache<String, CachedResponse<T>, ReportTier<T>>>;

/// The namespace of upstream details pages in the shared cache (bumped if the record
/// changes).
pub const SHARED_PAGES_NAMESPACE: &str = "report-pages:v1";
/// The namespace of upstream aggregates responses in the shared cache.
pub const SHARED_AGGREGATES_NAMESPACE: &str = "report-aggregates:v1";

/// The cache key of an upstream query: the SHA-256 of its canonical JSON, in hex. The
/// same on every replica (the query's JSON is canonical: see
/// [`crate::upstream::models::ConversationQuery`]), and 64 characters however many
/// filters the query holds, in moka and in Redis alike.
#[must_use]
pub fn cache_key(query: &impl Serialize) -> String {
    let json = serde_json::to_vec(query).unwrap_or_default();
    hex::encode(Sha256::digest(&json))
}

/// The tiers of a report cache of `max_bytes` in moka, and in `shared` (when given) under
/// `namespace`, a fetch's flight marker holding for `fetch_timeout`.
pub(super) fn report_tier<T: Send + Sync + 'static>(
    max_bytes: u64,
    shared: Option<&Arc<SharedTier>>,
    namespace: &'static str,
    fetch_timeout: Duration,
) -> ReportTier<T>
where
    CachedResponse<T>: SharedValue,
{
    let second = shared.map(|shared| RedisTier::new(shared.clone(), namespace, fetch_timeout));
    TwoTier::new(MokaTier::new(max_bytes), second)
}

/// An upstream details page as the page cache holds it.
#[derive(Debug, Clone)]
pub struct CachedPage(Arc<Cached<CachedResponse<DetailsResponse>>>);

impl CachedPage {
    /// The page of a cache entry.
    #[must_use]
    pub fn new(entry: Arc<Cached<CachedResponse<DetailsResponse>>>) -> Self {
        Self(entry)
    }
}

impl std::ops::Deref for CachedPage {
    type Target = DetailsResponse;

    fn deref(&self) -> &DetailsResponse {
        &self.0.value.body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_key_is_a_fixed_length_digest_of_the_query_json() {
        let short = serde_json::json!({"interval": "a/b"});
        let long = serde_json::json!({"interval": "a/b", "filters": vec!["queue"; 500]});
        let (a, b) = (cache_key(&short), cache_key(&long));
        assert_eq!((a.len(), b.len()), (64, 64));
        assert!(a.bytes().chain(b.bytes()).all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_eq!(a, cache_key(&serde_json::json!({"interval": "a/b"})));
    }
}
