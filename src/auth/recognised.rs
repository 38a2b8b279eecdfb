//! Keys already verified once, recognised again without SHA-256.
//!
//! The configuration holds only the SHA-256 of each client's key, so the first request
//! with a key pays for a SHA-256 and a constant-time comparison with every configured hash
//! ([`super::ApiKeys::authenticate`]). Dashboards then present the same key on every
//! request; this memo keeps, per client, the key that matched its hash, so a repeat costs
//! one constant-time comparison with each remembered key (a few machine words each: keys
//! are some forty bytes, and there are a handful of clients).
//!
//! Timing: every remembered key of the presented key's length is compared, whole, in time
//! that depends only on the lengths ([`same_bytes`]): how long a look-up takes says
//! nothing about how much of a remembered key a guess got right. Only keys that matched a
//! configured hash are remembered (one per client at most), so unknown keys cannot grow
//! it. The remembered keys live only in memory and `Debug` never shows them.

use std::sync::OnceLock;

/// The verified key of each configured client, by the client's index.
pub(super) struct Recognised {
    slots: Box<[OnceLock<Box<[u8]>>]>,
}

impl Recognised {
    /// A memo for `clients` configured clients, empty.
    pub(super) fn new(clients: usize) -> Self {
        Self {
            slots: (0..clients).map(|_| OnceLock::new()).collect(),
        }
    }

    /// The index of the client whose verified key `key` is, if it was verified before.
    pub(super) fn find(&self, key: &[u8]) -> Option<usize> {
        // No early exit: each remembered key is compared whole.
        let mut found = None;
        for (index, slot) in self.slots.iter().enumerate() {
            if slot.get().is_some_and(|seen| same_bytes(seen, key)) {
                found = Some(index);
            }
        }
        found
    }

    /// Remembers `key` as client `index`'s, verified against its configured hash. A client
    /// has one key (the preimage of its hash), so a slot once set stays right.
    pub(super) fn remember(&self, index: usize, key: &[u8]) {
        if let Some(slot) = self.slots.get(index) {
            let _ = slot.set(key.into());
        }
    }
}

/// Whether `a` and `b` hold the same bytes, in a time that depends only on their lengths:
/// the differences of all eight-byte words (then of the last bytes) are gathered without a
/// branch on the data, and looked at once, behind `black_box`.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (a_words, b_words) = (a.chunks_exact(8), b.chunks_exact(8));
    let mut difference = 0_u64;
    for (x, y) in a_words.remainder().iter().zip(b_words.remainder()) {
        difference |= u64::from(x ^ y);
    }
    for (x, y) in a_words.zip(b_words) {
        let word = |bytes: &[u8]| u64::from_ne_bytes(bytes.try_into().unwrap_or_default());
        difference |= word(x) ^ word(y);
    }
    std::hint::black_box(difference) == 0
}

impl std::fmt::Debug for Recognised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let remembered = self.slots.iter().filter(|s| s.get().is_some()).count();
        f.debug_struct("Recognised")
            .field("clients", &self.slots.len())
            .field("remembered", &remembered)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_key_is_found_and_others_are_not() {
        let memo = Recognised::new(3);
        assert_eq!(memo.find(b"gp_a"), None);
        memo.remember(1, b"gp_a");
        assert_eq!(memo.find(b"gp_a"), Some(1));
        assert_eq!(memo.find(b"gp_b"), None);
        assert_eq!(memo.find(b"gp_"), None);
        assert_eq!(memo.find(b"gp_a "), None);
        // Out of range is ignored, never a panic.
        memo.remember(7, b"gp_c");
        assert_eq!(memo.find(b"gp_c"), None);
    }

    #[test]
    fn bytes_are_the_same_only_when_all_are() {
        let key = b"gp_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG";
        assert!(same_bytes(key, key));
        assert!(same_bytes(b"", b""));
        for at in 0..key.len() {
            let mut other = *key;
            other[at] ^= 1;
            assert!(!same_bytes(key, &other), "a difference at byte {at}");
        }
        assert!(!same_bytes(key, &key[..key.len() - 1]));
    }

    #[test]
    fn debug_never_shows_a_key() {
        let memo = Recognised::new(1);
        memo.remember(0, b"gp_secret_key");
        let shown = format!("{memo:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("remembered: 1"), "{shown}");
    }
}
