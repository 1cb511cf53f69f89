//! The store's change records: what announces changed, for a replicator (cluster mode) to
//! drain and publish. Off unless a tracker is built with [`crate::Tracker::with_change_log`];
//! then the announce path pays one predictable branch and nothing else.
//!
//! What lives here: [`Change`] (one peer added, updated or removed, as it is replicated), the
//! per-shard rings announces write into, and their decoding. What does not: any I/O, any
//! knowledge of where changes go (the `tracker-cluster` crate drains them).
//!
//! # Why per-shard rings written under the shard lock
//!
//! An announce already holds exactly one lock, its shard's write lock. Each shard gets one
//! preallocated, bounded ring of fixed-size records. Writers of one ring are serialized by that
//! shard lock (only an announce holding it writes), so a ring has one producer at a time and
//! one consumer (the drainer): a single-producer single-consumer queue made of atomics, with
//! no second lock, no allocation and no channel send per announce. Recording is six relaxed
//! stores and one release store. A full ring drops the record and counts it
//! ([`crate::Tracker::changes_dropped`]): the announce never waits for the drainer. A dropped
//! update only delays replication until the peer's next announce; the count says how often it
//! happens (the ring's size is `[cluster] ring_capacity`).
//!
//! The rings are padded to a cache line each so that announces to different shards never share
//! a line.

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::types::{InfoHash, compact_v4, compact_v6, socket_from_v4, socket_from_v6};

/// A peer's compact wire address, its identity in a swarm (IP octets then port big-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompactAddr {
    /// IPv4: 4 address bytes and the port.
    V4([u8; 6]),
    /// IPv6: 16 address bytes and the port.
    V6([u8; 18]),
}

impl CompactAddr {
    /// The compact form of a socket address (v4-mapped IPv6 becomes IPv4).
    pub fn from_socket(addr: SocketAddr) -> Self {
        match crate::types::canonical_ip(addr.ip()) {
            IpAddr::V4(ip) => Self::V4(compact_v4(ip, addr.port())),
            IpAddr::V6(ip) => Self::V6(compact_v6(ip, addr.port())),
        }
    }

    /// The compact bytes: 6 for IPv4, 18 for IPv6.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::V4(b) => b,
            Self::V6(b) => b,
        }
    }

    /// From 6 or 18 compact bytes; `None` for any other length.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        match b.len() {
            6 => b.try_into().ok().map(Self::V4),
            18 => b.try_into().ok().map(Self::V6),
            _ => None,
        }
    }

    /// As a socket address.
    pub fn to_socket(&self) -> SocketAddr {
        match self {
            Self::V4(b) => socket_from_v4(b),
            Self::V6(b) => socket_from_v6(b),
        }
    }

    /// Whether it is an IPv6 address.
    pub fn is_v6(&self) -> bool {
        matches!(self, Self::V6(_))
    }
}

/// What happened to a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Inserted or updated, alive until `expiry`.
    Upsert,
    /// Removed (`stopped`).
    Remove,
}

/// One change to one peer, as it is replicated between nodes. Peer ids are not replicated
/// (compact replies, the vast majority, do not carry them; peers learned from another node
/// have a zero peer id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// The torrent (after alias resolution).
    pub info_hash: InfoHash,
    /// The peer.
    pub addr: CompactAddr,
    /// Inserted/updated or removed.
    pub kind: ChangeKind,
    /// Absolute expiry, unix seconds (0 for a removal).
    pub expiry: u32,
    /// Seeding (`left == 0`).
    pub seeder: bool,
    /// The peer's completed download has been counted (by this node or another).
    pub completed: bool,
    /// This announce counted a completed download on this node (the cluster decides whether
    /// it is the peer's first).
    pub counted: bool,
}

const WORDS: usize = 6;
const F_REMOVE: u8 = 1;
const F_SEEDER: u8 = 2;
const F_COMPLETED: u8 = 4;
const F_COUNTED: u8 = 8;
const F_V6: u8 = 16;

impl Change {
    /// Packs into six words: info hash and expiry in 0-2, address, flags in 3-5.
    fn encode(&self) -> [u64; WORDS] {
        let mut b = [0u8; WORDS * 8];
        b[..20].copy_from_slice(&self.info_hash.0);
        b[20..24].copy_from_slice(&self.expiry.to_le_bytes());
        let a = self.addr.as_bytes();
        b[24..24 + a.len()].copy_from_slice(a);
        let flag = |on: bool, f: u8| if on { f } else { 0 };
        b[42] = flag(self.kind == ChangeKind::Remove, F_REMOVE)
            | flag(self.seeder, F_SEEDER)
            | flag(self.completed, F_COMPLETED)
            | flag(self.counted, F_COUNTED)
            | flag(self.addr.is_v6(), F_V6);
        let mut w = [0u64; WORDS];
        for (i, c) in b.chunks_exact(8).enumerate() {
            w[i] = u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
        }
        w
    }

    fn decode(w: &[u64; WORDS]) -> Change {
        let mut b = [0u8; WORDS * 8];
        for (i, x) in w.iter().enumerate() {
            b[i * 8..i * 8 + 8].copy_from_slice(&x.to_le_bytes());
        }
        let f = b[42];
        let mut ih = [0u8; 20];
        ih.copy_from_slice(&b[..20]);
        let addr = if f & F_V6 != 0 {
            let mut a = [0u8; 18];
            a.copy_from_slice(&b[24..42]);
            CompactAddr::V6(a)
        } else {
            let mut a = [0u8; 6];
            a.copy_from_slice(&b[24..30]);
            CompactAddr::V4(a)
        };
        Change {
            info_hash: InfoHash(ih),
            addr,
            kind: if f & F_REMOVE != 0 {
                ChangeKind::Remove
            } else {
                ChangeKind::Upsert
            },
            expiry: u32::from_le_bytes([b[20], b[21], b[22], b[23]]),
            seeder: f & F_SEEDER != 0,
            completed: f & F_COMPLETED != 0,
            counted: f & F_COUNTED != 0,
        }
    }
}

/// One shard's ring: written only under the shard's write lock, read only by the drainer.
#[derive(Debug)]
#[repr(align(64))]
struct Ring {
    /// Records written (next write position), stored with `Release` after the record.
    head: AtomicU64,
    /// Records consumed, stored with `Release` after they were read.
    tail: AtomicU64,
    slots: Box<[AtomicU64]>,
}

/// Every shard's ring, the drop counter, and the drainer's guard.
#[derive(Debug)]
pub(crate) struct ChangeLog {
    rings: Box<[Ring]>,
    capacity: u64,
    dropped: AtomicU64,
    /// Held while draining, so that two drainers can never consume the same ring at once (the
    /// rings are single-consumer). Never taken by announces.
    drain: Mutex<()>,
}

impl ChangeLog {
    /// `shards` rings of `capacity` records each (at least 1), all allocated now.
    pub(crate) fn new(shards: usize, capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let rings = (0..shards)
            .map(|_| Ring {
                head: AtomicU64::new(0),
                tail: AtomicU64::new(0),
                slots: (0..capacity * WORDS).map(|_| AtomicU64::new(0)).collect(),
            })
            .collect();
        Self {
            rings,
            capacity: capacity as u64,
            dropped: AtomicU64::new(0),
            drain: Mutex::new(()),
        }
    }

    /// Appends a record to `shard`'s ring. The caller holds that shard's write lock (which
    /// makes it the ring's only producer). Never blocks: a full ring drops the record.
    #[inline]
    pub(crate) fn record(&self, shard: usize, change: &Change) {
        let Some(ring) = self.rings.get(shard) else {
            return;
        };
        let head = ring.head.load(Ordering::Relaxed);
        if head - ring.tail.load(Ordering::Acquire) >= self.capacity {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let base = (head % self.capacity) as usize * WORDS;
        for (i, w) in change.encode().into_iter().enumerate() {
            if let Some(slot) = ring.slots.get(base + i) {
                slot.store(w, Ordering::Relaxed);
            }
        }
        ring.head.store(head + 1, Ordering::Release);
    }

    /// Moves every record written so far into `out` (shard by shard, each shard's in order).
    /// Returns how many.
    pub(crate) fn drain(&self, out: &mut Vec<Change>) -> usize {
        let _one_drainer = self.drain.lock().unwrap_or_else(|e| e.into_inner());
        let before = out.len();
        for ring in self.rings.iter() {
            let tail = ring.tail.load(Ordering::Relaxed);
            let head = ring.head.load(Ordering::Acquire);
            for n in tail..head {
                let base = (n % self.capacity) as usize * WORDS;
                let mut w = [0u64; WORDS];
                for (i, x) in w.iter_mut().enumerate() {
                    *x = ring
                        .slots
                        .get(base + i)
                        .map_or(0, |s| s.load(Ordering::Relaxed));
                }
                out.push(Change::decode(&w));
            }
            ring.tail.store(head, Ordering::Release);
        }
        out.len() - before
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(n: u8, v6: bool) -> Change {
        Change {
            info_hash: InfoHash([n; 20]),
            addr: if v6 {
                CompactAddr::V6([n; 18])
            } else {
                CompactAddr::V4([n, 2, 3, 4, 0x1a, 0xe1])
            },
            kind: if n % 2 == 0 {
                ChangeKind::Upsert
            } else {
                ChangeKind::Remove
            },
            expiry: 1_700_000_000 + u32::from(n),
            seeder: n % 3 == 0,
            completed: n % 5 == 0,
            counted: n % 7 == 0,
        }
    }

    #[test]
    fn records_round_trip_in_order_and_a_full_ring_drops_and_counts() {
        let log = ChangeLog::new(2, 4);
        for n in 0..6 {
            log.record(1, &change(n, n % 2 == 1));
        }
        log.record(0, &change(9, true));
        assert_eq!(log.dropped(), 2, "ring 1 holds 4");
        let mut out = Vec::new();
        assert_eq!(log.drain(&mut out), 5);
        assert_eq!(out[0], change(9, true));
        assert_eq!(
            &out[1..],
            &(0..4).map(|n| change(n, n % 2 == 1)).collect::<Vec<_>>()[..]
        );
        // Space again after the drain, and the positions wrap.
        for n in 10..13 {
            log.record(1, &change(n, false));
        }
        out.clear();
        assert_eq!(log.drain(&mut out), 3);
        assert_eq!(out[2], change(12, false));
        assert_eq!(log.drain(&mut out), 0);
    }

    #[test]
    fn a_drainer_on_another_thread_sees_every_record() {
        let log = std::sync::Arc::new(ChangeLog::new(1, 64));
        let producer = {
            let log = std::sync::Arc::clone(&log);
            std::thread::spawn(move || {
                let mut sent = 0u32;
                while sent < 10_000 {
                    let before = log.dropped();
                    let mut c = change(2, false);
                    c.expiry = sent;
                    log.record(0, &c);
                    if log.dropped() == before {
                        sent += 1;
                    }
                }
            })
        };
        let mut seen = Vec::new();
        while seen.len() < 10_000 {
            log.drain(&mut seen);
        }
        producer.join().expect("producer");
        assert!(seen.iter().enumerate().all(|(i, c)| c.expiry == i as u32));
    }
}
