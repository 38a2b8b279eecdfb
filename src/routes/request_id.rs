//! Request ids: 128 bits shown as a UUID, made of a random per-process prefix and a counter,
//! so every request gets a unique id without a system call (a v4 UUID per request costs
//! a `getrandom` call on the hot path). The front door takes a client's own
//! `x-request-id` and makes one only for a request without.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::HeaderValue;

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
    /// The next id as a header value (formatted on the stack, copied once).
    #[must_use]
    pub fn next_header_value(&self) -> HeaderValue {
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let text = self.next_uuid().hyphenated().encode_lower(&mut text);
        HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static("-"))
    }

    fn next_uuid(&self) -> uuid::Uuid {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        uuid::Uuid::from_u128((u128::from(self.prefix) << 64) | u128::from(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_uuid_shaped() {
        let maker = FastRequestId::default();
        let text = |value: HeaderValue| value.to_str().expect("ascii").to_owned();
        let a = text(maker.next_header_value());
        let b = text(maker.next_header_value());
        let c = text(maker.next_header_value());
        assert_ne!(a, b);
        assert_ne!(c, b);
        assert_eq!(a.len(), 36);
        assert!(uuid::Uuid::try_parse(&a).is_ok());
        assert!(uuid::Uuid::try_parse(&c).is_ok());
        assert_ne!(
            text(FastRequestId::default().next_header_value())[..18],
            a[..18],
            "processes differ by prefix"
        );
    }
}
