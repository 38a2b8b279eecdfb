//! Keys already verified once, recognised again without SHA-256.
//!
//! The configuration holds only the SHA-256 of each client's key, so the first request
//! with a key pays for a SHA-256 and a constant-time comparison with every configured hash
//! ([`super::ApiKeys::authenticate`]). Dashboards then present the same key on every
//! request; this memo keeps, per client, the key that matched its hash, tagged with a
//! keyed hash (SipHash-1-3 with a random key chosen at start-up, std's `RandomState`),
//! so a repeat costs one short hash, one tag comparison per client and one constant-time
//! comparison of the key itself.
//!
//! Timing: the tag is keyed with a secret the process never shows, so whether a presented
//! key's tag equals a remembered one tells an attacker nothing they could steer; the key
//! bytes are then compared in constant time (`subtle`). Only keys that matched a
//! configured hash are remembered (one per client at most), so unknown keys cannot grow
//! it. The remembered keys live only in memory and `Debug` never shows them.

use std::hash::{BuildHasher, RandomState};
use std::sync::OnceLock;

use subtle::ConstantTimeEq;

/// A verified key and its tag.
struct Remembered {
    tag: u64,
    key: Box<[u8]>,
}

/// The verified key of each configured client, by the client's index.
pub(super) struct Recognised {
    tagger: RandomState,
    slots: Box<[OnceLock<Remembered>]>,
}

impl Recognised {
    /// A memo for `clients` configured clients, empty.
    pub(super) fn new(clients: usize) -> Self {
        Self {
            tagger: RandomState::new(),
            slots: (0..clients).map(|_| OnceLock::new()).collect(),
        }
    }

    /// The index of the client whose verified key `key` is, if it was verified before.
    pub(super) fn find(&self, key: &[u8]) -> Option<usize> {
        let tag = self.tagger.hash_one(key);
        self.slots.iter().position(|slot| {
            slot.get()
                .is_some_and(|seen| seen.tag == tag && bool::from(seen.key.ct_eq(key)))
        })
    }

    /// Remembers `key` as client `index`'s, verified against its configured hash. A client
    /// has one key (the preimage of its hash), so a slot once set stays right.
    pub(super) fn remember(&self, index: usize, key: &[u8]) {
        if let Some(slot) = self.slots.get(index) {
            let _ = slot.set(Remembered {
                tag: self.tagger.hash_one(key),
                key: key.into(),
            });
        }
    }
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
    fn debug_never_shows_a_key() {
        let memo = Recognised::new(1);
        memo.remember(0, b"gp_secret_key");
        let shown = format!("{memo:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("remembered: 1"), "{shown}");
    }
}
