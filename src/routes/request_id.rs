//! Request ids: 128 bits shown as a UUID, made of a random per-process prefix and a counter,
//! so every request gets a unique id without a system call (a v4 UUID per request costs
//! a `getrandom` call on the hot path). A client's own `x-request-id` is kept.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{HeaderValue, Request};
use tower_http::request_id::{MakeRequestId, RequestId};

/// Makes request ids.
#[derive(Debug, Clone)]
pub struct FastRequestId {
    prefix: u64,
    counter: Arc<AtomicU64>,
}

impl Default for FastRequestId {
    fn default() -> Self {
        let (mut prefix, mut start) = ([0u8; 8], [0u8; 8]);
        let _ = getrandom::fill(&mut prefix);
        let _ = getrandom::fill(&mut start);
        Self {
            prefix: u64::from_le_bytes(prefix),
            counter: Arc::new(AtomicU64::new(u64::from_le_bytes(start))),
        }
    }
}

impl FastRequestId {
    /// The next id, formatted as a UUID.
    #[must_use]
    pub fn next_id(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let value = (u128::from(self.prefix) << 64) | u128::from(n);
        uuid::Uuid::from_u128(value).hyphenated().to_string()
    }
}

impl MakeRequestId for FastRequestId {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&self.next_id())
            .ok()
            .map(RequestId::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_uuid_shaped() {
        let maker = FastRequestId::default();
        let a = maker.next_id();
        let b = maker.next_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert!(uuid::Uuid::try_parse(&a).is_ok());
        assert_ne!(
            FastRequestId::default().next_id()[..18],
            a[..18],
            "processes differ by prefix"
        );
    }
}
