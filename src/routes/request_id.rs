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

    /// [`BATCH`] ids, written one after the other: the first in full, each next one as a
    /// copy of the one before with its counter's hex digits counted up by one in place
    /// (most ids change only in their last digit).
    fn new_batch(&self) -> Batch {
        let first = self.counter.fetch_add(BATCH as u64, Ordering::Relaxed);
        let mut id = [0u8; ID_LEN];
        uuid::Uuid::from_u64_pair(self.prefix, first)
            .hyphenated()
            .encode_lower(&mut id);
        let mut text = Vec::with_capacity(BATCH * ID_LEN);
        for _ in 0..BATCH {
            text.extend_from_slice(&id);
            count_up(&mut id);
        }
        Batch {
            maker: self.prefix,
            text: Bytes::from(text),
            used: 0,
        }
    }
}

/// Adds one to the counter written in `id` (its last 64 bits, the hex digits after the
/// third hyphen, `xxxx-xxxxxxxxxxxx`), wrapping as the counter does.
fn count_up(id: &mut [u8]) {
    /// Where the counter's digits start: after `xxxxxxxx-xxxx-xxxx-`.
    const COUNTER_AT: usize = 19;
    for digit in id[COUNTER_AT..].iter_mut().rev() {
        match *digit {
            b'-' => {}
            b'f' => *digit = b'0',
            b'9' => {
                *digit = b'a';
                return;
            }
            _ => {
                *digit += 1;
                return;
            }
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
        // Every id of a batch, from starts whose counting carries across digits, the
        // counter's hyphen, and the wrap.
        for start in [
            u64::MAX - 1,
            0x0000_ffff_ffff_ffe0,
            0x0009_9999_9999_99f0,
            0,
        ] {
            let maker = FastRequestId {
                prefix: 0x0123_4567_89ab_cdef,
                counter: Arc::new(AtomicU64::new(start)),
            };
            let batch = maker.new_batch();
            assert_eq!(batch.text.len(), BATCH * ID_LEN);
            for (n, id) in batch.text.chunks(ID_LEN).enumerate() {
                let counter = start.wrapping_add(n as u64);
                let uuid = uuid::Uuid::from_u64_pair(0x0123_4567_89ab_cdef, counter);
                assert_eq!(
                    id,
                    uuid.hyphenated().to_string().as_bytes(),
                    "{start:x} + {n}"
                );
            }
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
