//! A tiny deterministic random number generator (SplitMix64).
//!
//! The simulator's data must be identical for the same seed on every machine and every
//! version of every dependency, so it uses this fixed algorithm instead of a crate whose
//! stream may change between releases. Not for anything security related: tokens use it
//! only to be unique, never to be unguessable.

use uuid::Uuid;

/// SplitMix64: 64 bits of state, passes BigCrush, trivially reproducible.
#[derive(Debug, Clone)]
pub struct SimRng {
    state: u64,
}

impl SimRng {
    /// A generator whose stream is fully determined by `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A float uniformly distributed in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// An integer uniformly distributed in `[low, high]` (inclusive).
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        debug_assert!(low <= high);
        low + self.next_u64() % (high - low + 1)
    }

    /// An index into a slice of length `len` (which must not be zero).
    pub fn index(&mut self, len: usize) -> usize {
        (self.next_u64() % len as u64) as usize
    }

    /// An index chosen with the given relative weights.
    pub fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut pick = self.next_u64() % total;
        for (i, &w) in weights.iter().enumerate() {
            if pick < u64::from(w) {
                return i;
            }
            pick -= u64::from(w);
        }
        weights.len() - 1
    }

    /// A duration in milliseconds drawn from a log-normal-like spread around `median_ms`,
    /// clamped to `[min_ms, max_ms]`. Contact-centre durations are right-skewed: most calls
    /// are near the median, a few are very long.
    pub fn duration_ms(&mut self, median_ms: u64, min_ms: u64, max_ms: u64) -> u64 {
        // Sum of three uniforms approximates a normal; exponentiate for the skew.
        let normal = (self.unit() + self.unit() + self.unit() - 1.5) * 2.0;
        let value = (median_ms as f64) * (0.6 * normal).exp();
        (value as u64).clamp(min_ms, max_ms)
    }

    /// A random (version 4 shaped) UUID drawn from this stream.
    pub fn uuid(&mut self) -> Uuid {
        let high = u128::from(self.next_u64());
        let low = u128::from(self.next_u64());
        uuid::Builder::from_random_bytes(((high << 64) | low).to_be_bytes()).into_uuid()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_gives_same_stream() {
        let mut a = SimRng::new(42);
        let mut b = SimRng::new(42);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_ne!(SimRng::new(1).next_u64(), SimRng::new(2).next_u64());
    }

    #[test]
    fn uuids_are_version_four() {
        let mut rng = SimRng::new(7);
        let id = rng.uuid();
        assert_eq!(id.get_version_num(), 4);
    }

    #[test]
    fn durations_stay_within_bounds() {
        let mut rng = SimRng::new(3);
        for _ in 0..1000 {
            let d = rng.duration_ms(60_000, 5_000, 600_000);
            assert!((5_000..=600_000).contains(&d));
        }
    }
}
