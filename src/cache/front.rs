//! [`FrontTable`]: the entries a [`MokaTier`](super::MokaTier) answered lately, kept in a
//! sharded map that a fresh hit reads with one shared lock and no bookkeeping.
//!
//! A moka lookup records the read for its eviction policy, runs its upkeep and checks the
//! entry's expiry: about a tenth of a fresh hit's whole cost. Dashboards read the same
//! conversations many times a second, so the first read of an entry is moka's and, while
//! the entry is fresh, the next ones, for up to [`FRONT_LIFE`], are the front's. Then the
//! front lets the entry go to moka again, so moka still hears of every entry in use about
//! once a second and its eviction keeps seeing what is popular.
//!
//! **Exact.** Once an insert, an invalidation or a purge has returned, the front never
//! answers what it replaced or dropped. Every change of an entry goes to moka first, then
//! to the front
//! ([`FrontTable::forget`]: the key's slot removed and its shard's version counted up):
//! an insert, an invalidation, a purge, and moka's own evictions and expiries (its
//! eviction listener). A read that missed the front notes its shard's version before it
//! asks moka, and puts what moka answered into the front only if that version is
//! unchanged. So either the change came after the read's fill (and its `forget` removes
//! the filled slot), or it came before moka answered (and the read saw it), or it came
//! between (and the fill is refused). An entry moka evicts for room leaves the front when
//! moka's listener hears of it (in the same housekeeping pass); until then it is still a
//! right answer, only one moka no longer keeps. The front answers an entry only while it
//! is fresh, so never past its stale end, when moka expires it.
//!
//! **Bounded.** The front holds only entries moka holds (its slots are removed when moka
//! lets an entry go), each slot a key, an `Arc` and a deadline: about 50 bytes per entry
//! read in its fresh window, next to the kilobytes of the entry itself.

use std::hash::Hash;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use hashbrown::HashTable;
use tokio::time::Instant;

use super::moka_tier::KeyHasher;
use super::swr::Cached;

/// How long the front answers an entry before moka is asked again (and records the read).
pub const FRONT_LIFE: Duration = Duration::from_secs(1);

/// Shards of the table: readers of different keys rarely share a lock.
const SHARDS: usize = 32;

/// What a lookup found in the front.
#[derive(Debug)]
pub enum FrontLookup<V> {
    /// A fresh entry the front may answer.
    Hit(Arc<Cached<V>>),
    /// Nothing to answer: ask moka, then fill the front with this version
    /// ([`FrontTable::fill`]).
    Miss(u64),
}

/// The recently answered entries of a tier (see the module doc).
pub struct FrontTable<K, V> {
    shards: Box<[ShardLock<K, V>]>,
    hasher: KeyHasher,
}

/// One shard's lock, on its own cache lines, so that readers of two shards do not share one.
#[repr(align(128))]
struct ShardLock<K, V>(RwLock<Shard<K, V>>);

struct Shard<K, V> {
    /// Found by the key's hash, which also picks the shard: a lookup hashes once.
    slots: HashTable<Slot<K, V>>,
    /// Counted up by every change of one of the shard's keys.
    version: u64,
}

struct Slot<K, V> {
    key: K,
    /// The key's hash (for the table's growth).
    hash: u64,
    entry: Arc<Cached<V>>,
    /// Answered by the front until then: the entry's fresh end or [`FRONT_LIFE`] after
    /// the fill, whichever comes first.
    until: Instant,
}

impl<K, V> std::fmt::Debug for FrontTable<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrontTable")
            .field("slots", &self.slots())
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq + Clone, V> Default for FrontTable<K, V> {
    fn default() -> Self {
        let shards = (0..SHARDS)
            .map(|_| {
                ShardLock(RwLock::new(Shard {
                    slots: HashTable::new(),
                    version: 0,
                }))
            })
            .collect();
        Self {
            shards,
            hasher: KeyHasher::new(),
        }
    }
}

impl<K, V> FrontTable<K, V> {
    /// The number of slots held (entries answered lately).
    pub fn slots(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| read(&shard.0).slots.len())
            .sum()
    }

    /// Drops every slot (after a purge of moka).
    pub fn clear(&self) {
        for shard in &self.shards {
            let mut shard = write(&shard.0);
            shard.slots.clear();
            shard.version += 1;
        }
    }
}

impl<K: Hash + Eq + Clone, V> FrontTable<K, V> {
    /// `key`'s hash and shard. The table inside a shard places slots by the hash's low
    /// bits and tags them with its top 7: the shard is picked by bits of neither.
    fn shard(&self, key: &K) -> (u64, &RwLock<Shard<K, V>>) {
        let hash = self.hasher.hash_one(key);
        let index = (hash >> 32) as usize % SHARDS;
        (hash, &self.shards[index].0)
    }

    /// The entry for `key` if the front may answer it at `now`, else the version to fill
    /// with.
    pub fn lookup(&self, key: &K, now: Instant) -> FrontLookup<V> {
        let (hash, shard) = self.shard(key);
        let shard = read(shard);
        match shard.slots.find(hash, |slot| slot.key == *key) {
            Some(slot) if now < slot.until => FrontLookup::Hit(slot.entry.clone()),
            _ => FrontLookup::Miss(shard.version),
        }
    }

    /// Puts `entry`, which moka answered for `key` after a lookup that saw `version`, into
    /// the front, unless the shard changed since or the entry is not fresh at `now`.
    pub fn fill(&self, key: &K, entry: &Arc<Cached<V>>, version: u64, now: Instant) {
        if now >= entry.fresh_until {
            return;
        }
        let until = entry.fresh_until.min(now + FRONT_LIFE);
        let (hash, shard) = self.shard(key);
        let mut shard = write(shard);
        if shard.version != version {
            return;
        }
        let slot = Slot {
            key: key.clone(),
            hash,
            entry: entry.clone(),
            until,
        };
        shard
            .slots
            .entry(hash, |slot| slot.key == *key, |slot| slot.hash)
            .insert(slot);
    }

    /// Drops `key`'s slot, after moka's entry for it changed or went.
    pub fn forget(&self, key: &K) {
        let (hash, shard) = self.shard(key);
        let mut shard = write(shard);
        if let Ok(held) = shard.slots.find_entry(hash, |slot| slot.key == *key) {
            held.remove();
        }
        shard.version += 1;
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // A panic while holding the lock leaves a map of whole slots: nothing half-written.
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(value: u32, fresh_for: u64) -> Arc<Cached<u32>> {
        let now = Instant::now();
        Arc::new(Cached {
            value,
            fetched_at: now,
            fresh_until: now + Duration::from_secs(fresh_for),
            stale_until: now + Duration::from_secs(fresh_for + 600),
        })
    }

    fn hit(front: &FrontTable<u32, u32>, key: u32) -> Option<u32> {
        match front.lookup(&key, Instant::now()) {
            FrontLookup::Hit(entry) => Some(entry.value),
            FrontLookup::Miss(_) => None,
        }
    }

    fn version(front: &FrontTable<u32, u32>, key: u32) -> u64 {
        match front.lookup(&key, Instant::now()) {
            FrontLookup::Hit(_) => panic!("expected a miss"),
            FrontLookup::Miss(version) => version,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_filled_entry_is_answered_until_its_life_or_its_freshness_ends() {
        let front = FrontTable::default();
        let seen = version(&front, 1);
        front.fill(&1, &entry(10, 60), seen, Instant::now());
        assert_eq!(hit(&front, 1), Some(10));
        tokio::time::advance(FRONT_LIFE).await;
        assert_eq!(
            hit(&front, 1),
            None,
            "moka is asked again after the front's life"
        );

        let seen = version(&front, 2);
        front.fill(&2, &entry(20, 0), seen, Instant::now());
        assert_eq!(hit(&front, 2), None, "a stale entry is not put in front");

        let short = entry(30, 1);
        tokio::time::advance(Duration::from_millis(500)).await;
        let seen = version(&front, 3);
        front.fill(&3, &short, seen, Instant::now());
        assert_eq!(hit(&front, 3), Some(30));
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(hit(&front, 3), None, "not past the entry's own fresh end");
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_between_the_lookup_and_the_fill_refuses_the_fill() {
        let front = FrontTable::default();
        let seen = version(&front, 1);
        front.forget(&1); // moka's entry changed while the reader asked it
        front.fill(&1, &entry(10, 60), seen, Instant::now());
        assert_eq!(hit(&front, 1), None);
        // A change after the fill removes the slot.
        let seen = version(&front, 1);
        front.fill(&1, &entry(11, 60), seen, Instant::now());
        assert_eq!(hit(&front, 1), Some(11));
        front.forget(&1);
        assert_eq!(hit(&front, 1), None);
        assert_eq!(front.slots(), 0);
        // A purge refuses the fills of every read under way.
        let seen = version(&front, 2);
        front.clear();
        front.fill(&2, &entry(20, 60), seen, Instant::now());
        assert_eq!(hit(&front, 2), None);
    }
}
