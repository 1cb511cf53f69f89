//! Everything that reaches into dashmap's shards directly: where a torrent's shard and slot
//! are (`locate`), the per-shard table hints and the lock-free prefetch built on them, and the
//! whole-shard walk with this crate's one `unsafe` block. The announce's own raw entry lives
//! beside the rules in [`Tracker::announce`] and uses `locate` and the hints from here.
//! dashmap is pinned (`=6.2.1`): its raw API is documented as unstable across releases.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::SharedValue;

use super::Tracker;
use crate::swarm::Swarm;
use crate::types::InfoHash;

/// Where a shard's hash table lives, published for prefetching only: `ctrl` is the address of
/// the table's control bytes (slots lie just below it, slot `i` at `ctrl - (i + 1) * slot`),
/// `mask` its slot count minus one. Written (relaxed) under the shard's write lock whenever an
/// announce sees a different value; read without a lock. A stale value only wastes a
/// prefetch: nothing is ever read through it.
#[derive(Debug, Default)]
pub(super) struct ShardHint {
    pub(super) ctrl: AtomicUsize,
    pub(super) mask: AtomicUsize,
}

impl ShardHint {
    #[inline]
    pub(super) fn update(&self, ctrl: usize, mask: usize) {
        if self.ctrl.load(Ordering::Relaxed) != ctrl {
            self.ctrl.store(ctrl, Ordering::Relaxed);
        }
        if self.mask.load(Ordering::Relaxed) != mask {
            self.mask.store(mask, Ordering::Relaxed);
        }
    }
}

impl Tracker {
    /// The hash dashmap gives `info_hash` (its raw table is probed with the whole of it) and the
    /// shard it picks from that hash: where an announce looks, and so where a prefetch aims.
    #[inline]
    pub(super) fn locate(&self, info_hash: &InfoHash) -> (u64, usize) {
        let hash = self.swarms.hash_usize(info_hash);
        (hash as u64, self.swarms.determine_shard(hash))
    }

    /// Starts loading, without taking any lock, the cache lines an announce for `info_hash`
    /// will need first: the shard's lock, the table's control bytes at the hash's home slot,
    /// and the two slots an entry most often sits in. A socket worker calls this for the next
    /// few datagrams of a batch while it answers the current one, so their table misses
    /// overlap instead of coming one after another. Changes nothing and never blocks; a stale
    /// hint only wastes the prefetch.
    #[inline]
    pub fn prefetch_announce(&self, info_hash: &InfoHash) {
        let (hash, shard) = self.locate(&self.resolve(info_hash));
        let (Some(lock), Some(hint)) = (self.swarms.shards().get(shard), self.hints.get(shard))
        else {
            return;
        };
        crate::prefetch::line(std::ptr::from_ref(lock) as usize);
        let ctrl = hint.ctrl.load(Ordering::Relaxed);
        if ctrl == 0 {
            return;
        }
        let pos = hash as usize & hint.mask.load(Ordering::Relaxed);
        let slot = std::mem::size_of::<(InfoHash, SharedValue<Swarm>)>();
        crate::prefetch::line(ctrl.wrapping_add(pos));
        crate::prefetch::line(ctrl.wrapping_sub((pos + 1).wrapping_mul(slot)));
        crate::prefetch::line(ctrl.wrapping_sub((pos + 2).wrapping_mul(slot)));
    }

    /// Drops everything (a snapshot load that failed half-way).
    pub(crate) fn clear(&self) {
        self.swarms.clear();
        self.torrents.store(0, Ordering::Relaxed);
        self.aliases.store(std::sync::Arc::new(HashMap::new()));
        self.has_aliases.store(false, Ordering::Release);
    }

    pub(crate) fn shard_count(&self) -> usize {
        self.swarms.shards().len()
    }

    /// Calls `f` for every torrent of one shard while holding that shard's read lock. `f` must
    /// not touch the map (it would deadlock) and must not do I/O (it would stall announces).
    #[allow(unsafe_code)]
    pub(crate) fn for_each_in_shard(&self, shard: usize, mut f: impl FnMut(&InfoHash, &Swarm)) {
        let Some(lock) = self.swarms.shards().get(shard) else {
            return;
        };
        let table = lock.read();
        // SAFETY: `table` is a read guard on this shard for the whole loop, so the raw table can
        // be neither mutated nor freed while its buckets are iterated and dereferenced; the
        // references handed to `f` do not outlive the loop body.
        unsafe {
            for bucket in table.iter() {
                let (key, value) = bucket.as_ref();
                f(key, value.get());
            }
        }
    }
}
