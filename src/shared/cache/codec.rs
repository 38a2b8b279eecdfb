//! How a cache entry travels through Redis: a compact binary record of the entry's
//! timestamps and its value ([`SharedValue`]). Instants are private to a process, so the
//! timestamps travel as wall-clock Unix milliseconds ([`WallClock`] converts both ways);
//! replicas are expected to keep their clocks in sync (NTP), a skew shifts the freshness
//! another replica sees by as much.
//!
//! Layout (little-endian): a version byte, `fetched_at`, `fresh_until`, `stale_until` as
//! `i64` milliseconds, then the value's own bytes.

use tokio::time::Instant;

use crate::cache::Cached;

/// Bumped when the layout changes: a replica ignores (misses on) a record of another.
const VERSION: u8 = 1;

/// A moment read on both clocks, to convert instants to Unix milliseconds and back.
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    pub instant: Instant,
    pub unix_ms: i64,
}

impl WallClock {
    /// Now, on both clocks.
    #[must_use]
    pub fn now() -> Self {
        let unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Self {
            instant: Instant::now(),
            unix_ms,
        }
    }

    /// `instant` in Unix milliseconds.
    #[must_use]
    pub fn to_unix(&self, instant: Instant) -> i64 {
        let millis = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        if instant >= self.instant {
            self.unix_ms.saturating_add(millis(instant - self.instant))
        } else {
            self.unix_ms.saturating_sub(millis(self.instant - instant))
        }
    }

    /// Unix milliseconds `unix_ms` as an instant of this process (a moment before the
    /// process's clock began reads as now).
    #[must_use]
    pub fn to_instant(&self, unix_ms: i64) -> Instant {
        let delta = std::time::Duration::from_millis(unix_ms.abs_diff(self.unix_ms));
        if unix_ms >= self.unix_ms {
            self.instant + delta
        } else {
            self.instant.checked_sub(delta).unwrap_or(self.instant)
        }
    }
}

/// A cached value that can be kept in the shared tier.
pub trait SharedValue: Send + Sync + Sized + 'static {
    /// Appends the value's bytes (instants it holds converted with `clock`).
    fn encode(&self, clock: &WallClock, out: &mut Vec<u8>);

    /// The value of `bytes`, or `None` when they are not one.
    fn decode(bytes: &[u8], clock: &WallClock) -> Option<Self>;
}

/// The record of `entry`.
#[must_use]
pub fn encode_entry<V: SharedValue>(entry: &Cached<V>, clock: &WallClock) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(VERSION);
    for instant in [entry.fetched_at, entry.fresh_until, entry.stale_until] {
        out.extend_from_slice(&clock.to_unix(instant).to_le_bytes());
    }
    entry.value.encode(clock, &mut out);
    out
}

/// The entry of a record, or `None` when it is not one (another version, truncated).
#[must_use]
pub fn decode_entry<V: SharedValue>(bytes: &[u8], clock: &WallClock) -> Option<Cached<V>> {
    let mut reader = Reader(bytes);
    if reader.u8()? != VERSION {
        return None;
    }
    let fetched_at = clock.to_instant(reader.i64()?);
    let fresh_until = clock.to_instant(reader.i64()?);
    let stale_until = clock.to_instant(reader.i64()?);
    Some(Cached {
        value: V::decode(reader.0, clock)?,
        fetched_at,
        fresh_until,
        stale_until,
    })
}

/// Reads a record front to back; every read is `None` past the end.
#[derive(Debug)]
pub struct Reader<'a>(pub &'a [u8]);

impl<'a> Reader<'a> {
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    pub fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    pub fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    pub fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    /// A byte string preceded by its `u32` length.
    pub fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = u32::from_le_bytes(self.take(4)?.try_into().ok()?);
        self.take(usize::try_from(len).ok()?)
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Appends `bytes` preceded by its `u32` length.
pub fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&bytes[..len as usize]);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[derive(Debug, PartialEq)]
    struct Word(Vec<u8>);

    impl SharedValue for Word {
        fn encode(&self, _clock: &WallClock, out: &mut Vec<u8>) {
            put_bytes(out, &self.0);
        }
        fn decode(bytes: &[u8], _clock: &WallClock) -> Option<Self> {
            let mut reader = Reader(bytes);
            let word = reader.bytes()?.to_vec();
            reader.is_empty().then_some(Self(word))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_entry_comes_back_with_its_times_on_another_clock() {
        tokio::time::advance(Duration::from_secs(3_600)).await;
        let writer = WallClock {
            instant: Instant::now(),
            unix_ms: 1_800_000_000_000,
        };
        let now = Instant::now();
        let entry = Cached {
            value: Word(b"hello".to_vec()),
            fetched_at: now - Duration::from_millis(1_500),
            fresh_until: now + Duration::from_secs(30),
            stale_until: now + Duration::from_secs(330),
        };
        let record = encode_entry(&entry, &writer);
        assert_eq!(record.len(), 1 + 24 + 4 + 5);
        // Another process reads it 2 s of wall-clock time later, its own instants apart.
        tokio::time::advance(Duration::from_secs(2)).await;
        let reader = WallClock {
            instant: Instant::now(),
            unix_ms: 1_800_000_002_000,
        };
        let read: Cached<Word> = decode_entry(&record, &reader).expect("decoded");
        assert_eq!(read.value, entry.value);
        assert_eq!(read.fetched_at, entry.fetched_at);
        assert_eq!(read.fresh_until, entry.fresh_until);
        assert_eq!(read.stale_until, entry.stale_until);
        assert_eq!(read.fresh_secs(Instant::now()), 28);
    }

    #[test]
    fn a_record_of_another_version_or_cut_short_is_not_an_entry() {
        let clock = WallClock::now();
        let entry = Cached {
            value: Word(b"x".to_vec()),
            fetched_at: clock.instant,
            fresh_until: clock.instant,
            stale_until: clock.instant,
        };
        let record = encode_entry(&entry, &clock);
        for cut in 0..record.len() {
            assert!(
                decode_entry::<Word>(&record[..cut], &clock).is_none(),
                "{cut}"
            );
        }
        let mut other = record.clone();
        other[0] = VERSION + 1;
        assert!(decode_entry::<Word>(&other, &clock).is_none());
        assert!(decode_entry::<Word>(&record, &clock).is_some());
    }
}
