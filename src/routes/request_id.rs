//! Request ids: 128 bits shown as a UUID, made of a random per-process prefix and a counter,
//! so every request gets a unique id without a system call (a v4 UUID per request costs
//! a `getrandom` call on the hot path). The front door takes a client's own
//! `x-request-id` and makes one only for a request without.
//!
//! Ids are made in batches: each thread takes [`BATCH`] counter values at a time and
//! writes their ids into one buffer, which its next requests' header values share (one
//! allocation per batch instead of one per request).

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::HeaderValue;
use bytes::Bytes;

/// How many ids a thread makes at a time.
const BATCH: usize = 64;

/// The length of an id as text.
const ID_LEN: usize = uuid::fmt::Hyphenated::LENGTH;

/// Makes request ids.
#[derive(Debug, Clone)]
pub struct FastRequestId {
    prefix: u64,
    counter: Arc<AtomicU64>,
}

/// A thread's ids made ahead: those of `maker` (its prefix), `used` of them taken.
struct Batch {
    maker: u64,
    text: Bytes,
    used: usize,
}

thread_local! {
    static BATCHES: RefCell<Option<Batch>> = const { RefCell::new(None) };
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
    /// The next id as a header value (from the thread's batch).
    #[must_use]
    pub fn next_header_value(&self) -> HeaderValue {
        BATCHES.with_borrow_mut(|batch| {
            let batch = match batch {
                Some(batch) if batch.maker == self.prefix && batch.used < BATCH => batch,
                _ => batch.insert(self.new_batch()),
            };
            let at = batch.used * ID_LEN;
            batch.used += 1;
            HeaderValue::from_maybe_shared(batch.text.slice(at..at + ID_LEN))
                .unwrap_or(HeaderValue::from_static("-"))
        })
    }

    /// [`BATCH`] ids, written one after the other. An id's first 64 bits (the prefix) are
    /// its first 19 characters (`xxxxxxxx-xxxx-xxxx-`), the same in every id, so only the
    /// counter's 16 hex digits are written for each.
    fn new_batch(&self) -> Batch {
        /// The two hex digits of each byte value.
        const HEX_PAIRS: [[u8; 2]; 256] = {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            let mut pairs = [[0; 2]; 256];
            let mut byte = 0;
            while byte < 256 {
                pairs[byte] = [HEX[byte >> 4], HEX[byte & 0xf]];
                byte += 1;
            }
            pairs
        };
        const PREFIX_LEN: usize = 19;
        let first = self.counter.fetch_add(BATCH as u64, Ordering::Relaxed);
        let mut prefix = [0u8; ID_LEN];
        uuid::Uuid::from_u128(u128::from(self.prefix) << 64)
            .hyphenated()
            .encode_lower(&mut prefix);
        let mut text = vec![0u8; BATCH * ID_LEN];
        let counters = (0..BATCH as u64).map(|i| first.wrapping_add(i));
        for (n, slot) in counters.zip(text.chunks_exact_mut(ID_LEN)) {
            // `xxxx-xxxxxxxxxxxx` after the prefix: the counter's digits, most significant
            // first, two (one byte's) at a time.
            let mut digits = [0u8; 16];
            for (pair, byte) in digits.chunks_exact_mut(2).zip(n.to_be_bytes()) {
                pair.copy_from_slice(&HEX_PAIRS[usize::from(byte)]);
            }
            slot[..PREFIX_LEN].copy_from_slice(&prefix[..PREFIX_LEN]);
            slot[PREFIX_LEN..PREFIX_LEN + 4].copy_from_slice(&digits[..4]);
            slot[PREFIX_LEN + 4] = b'-';
            slot[PREFIX_LEN + 5..].copy_from_slice(&digits[4..]);
        }
        Batch {
            maker: self.prefix,
            text: Bytes::from(text),
            used: 0,
        }
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

    #[test]
    fn ids_are_the_uuids_of_prefix_and_counter() {
        let maker = FastRequestId {
            prefix: 0x0123_4567_89ab_cdef,
            counter: Arc::new(AtomicU64::new(u64::MAX - 1)),
        };
        let batch = maker.new_batch();
        let ids: Vec<&[u8]> = batch.text.chunks(ID_LEN).take(3).collect();
        let expected = [
            "01234567-89ab-cdef-ffff-fffffffffffe",
            "01234567-89ab-cdef-ffff-ffffffffffff",
            "01234567-89ab-cdef-0000-000000000000",
        ];
        assert_eq!(ids, expected.map(str::as_bytes));
        for (n, id) in batch.text.chunks(ID_LEN).enumerate().skip(1).take(40) {
            let counter = (u64::MAX - 1).wrapping_add(n as u64);
            let uuid =
                uuid::Uuid::from_u128((0x0123_4567_89ab_cdef_u128 << 64) | u128::from(counter));
            assert_eq!(id, uuid.hyphenated().to_string().as_bytes());
        }
    }

    #[test]
    fn ids_stay_unique_across_batches_and_makers() {
        let (one, two) = (FastRequestId::default(), FastRequestId::default());
        let mut seen = std::collections::HashSet::new();
        for _ in 0..3 * BATCH {
            // Alternating makers on one thread: each its own ids, whatever the batch holds.
            for maker in [&one, &two] {
                let id = maker
                    .next_header_value()
                    .to_str()
                    .expect("ascii")
                    .to_owned();
                assert!(uuid::Uuid::try_parse(&id).is_ok(), "{id}");
                assert!(seen.insert(id), "an id came twice");
            }
        }
        let from_threads: Vec<String> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    scope.spawn(|| {
                        (0..BATCH + 1)
                            .map(|_| one.next_header_value().to_str().expect("ascii").to_owned())
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("thread"))
                .collect()
        });
        for id in from_threads {
            assert!(seen.insert(id), "an id came twice");
        }
    }
}
