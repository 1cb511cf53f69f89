//! One torrent's swarm: its peers per address family, counters and index entry.
//!
//! # Layout (why it looks like this)
//!
//! Most swarms are small (a handful of peers) and most peers are IPv4, so the common case is
//! kept inline and tight; everything rarer sits behind one `Option<Box<SwarmExt>>`:
//!
//! ```text
//! Swarm (40 bytes, stored in the map next to its 20-byte key: 64-byte entries)
//!   v4: Box<[Peer<6>]>         up to 32 packed 28-byte records, exactly sized
//!                              (larger IPv4 lists move to the extension, split, see below)
//!   v4_seeders, downloaded, next_purge, epoch: u32
//!   ext: Option<Box<SwarmExt>> IPv6 peers, large IPv4 lists, hash indexes of large lists,
//!                              index entry (name, size)
//!
//! Peer<N> (N + 22 bytes, alignment 1, no padding)
//!   addr [u8; N]    the compact wire form: IP octets then port big-endian (6 or 18 bytes);
//!                   this is the peer's identity (DESIGN.md: (IP, port), never peer_id)
//!   peer_id [u8; 20]
//!   meta [u8; 2]    u16 LE: bit 15 seeder, bit 14 completed counted,
//!                   bits 0-13 expiry as seconds after the swarm's `epoch`
//! ```
//!
//! # Why a 14-bit relative expiry
//!
//! DESIGN.md budgets 40 bytes of resident memory per IPv4 peer. With a u32 expiry and a flags
//! byte a record is 31 bytes, which glibc rounds to 32 per peer in a 10-peer swarm; with the map
//! entry (~9 bytes per peer at 10 peers per torrent) that measured 43.5 bytes per peer. Storing
//! the expiry as an offset from a per-swarm `epoch` in 14 bits and the two flags in the same u16
//! makes the record 28 bytes. Every stored peer's expiry is in `(now, now + peer_timeout]` once
//! expired peers are purged, and `peer_timeout` is at most [`MAX_PEER_TIMEOUT`] (8191 s), half
//! the 14-bit range; when a new expiry would not fit, the swarm is re-based to `epoch = now`
//! (one pass over its peers), which happens at most once per 8192 s per swarm.
//!
//! Lists in the extension are *split*: addresses and metas (what a reply reads, 8 bytes per
//! IPv4 peer) in one array, peer ids in a parallel one, same bytes per peer in total. A compact
//! reply of 30 IPv4 peers then reads 4 cache lines instead of 14 (see `Split`).
//!
//! A list with at most [`INDEX_THRESHOLD`] peers is searched linearly (a few cache lines);
//! a larger one gets a hash index `addr -> position` so that an update is O(1) however big the
//! swarm is. Removal is `swap_remove` plus one index fix-up.
//!
//! # Expiry
//!
//! `next_purge` is a lower bound of every peer's expiry. Whenever the clock has reached it, the
//! swarm is purged (expired peers dropped, counters recomputed) before it is read or changed,
//! so counts and replies never depend on when the background sweep last ran. Read-only paths
//! (scrape) that find `now >= next_purge` count live peers instead of trusting the counters.

use std::net::{IpAddr, SocketAddr};
#[cfg(test)]
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::types::{
    Event, PeerId, PeerStatus, compact_v4, compact_v6, socket_from_v4, socket_from_v6,
};

/// Above this many peers in one family, a hash index keeps updates O(1).
pub(crate) const INDEX_THRESHOLD: usize = 64;
/// Below this many peers, the index is dropped again (hysteresis avoids flapping).
const INDEX_DROP: usize = INDEX_THRESHOLD / 2;
/// Lists up to this length grow one slot at a time: memory per peer stays exact for the
/// small swarms that are most of a tracker, and copying a few hundred bytes is cheap.
const EXACT_GROWTH_UNTIL: usize = 32;

const SEEDER: u16 = 1 << 15;
const COMPLETED: u16 = 1 << 14;
const OFFSET_MASK: u16 = (1 << 14) - 1;

/// The longest peer timeout the compact expiry can hold, in seconds (half the 14-bit range, so
/// that a swarm needs re-basing at most once per this many seconds).
pub const MAX_PEER_TIMEOUT: u32 = (OFFSET_MASK as u32) / 2;

/// The expiry (unix seconds) that a peer's meta encodes, relative to its swarm's `epoch`.
#[inline]
fn meta_expiry(meta: u16, epoch: u32) -> u32 {
    epoch.saturating_add(u32::from(meta & OFFSET_MASK))
}

/// A stored peer. All fields are byte arrays so the record is packed without `repr(packed)`.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct Peer<const N: usize> {
    addr: [u8; N],
    peer_id: [u8; 20],
    meta: [u8; 2],
}

impl<const N: usize> Peer<N> {
    #[inline]
    fn meta(&self) -> u16 {
        u16::from_le_bytes(self.meta)
    }
    #[inline]
    fn set_meta(&mut self, flags: u16, offset: u16) {
        self.meta = (flags | offset.min(OFFSET_MASK)).to_le_bytes();
    }
    #[inline]
    fn expiry(&self, epoch: u32) -> u32 {
        meta_expiry(self.meta(), epoch)
    }
    #[inline]
    fn is_seeder(&self) -> bool {
        self.meta() & SEEDER != 0
    }
    #[inline]
    fn completed(&self) -> bool {
        self.meta() & COMPLETED != 0
    }
    #[inline]
    fn alive(&self, now: u32, epoch: u32) -> bool {
        self.expiry(epoch) > now
    }
    fn view(&self, epoch: u32, addr: SocketAddr) -> PeerView {
        PeerView {
            addr,
            peer_id: PeerId(self.peer_id),
            status: if self.is_seeder() {
                PeerStatus::Seeding
            } else {
                PeerStatus::Leeching
            },
            completed: self.completed(),
            expiry: self.expiry(epoch),
        }
    }
}

impl<const N: usize> std::fmt::Debug for Peer<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("addr", &self.addr)
            .field("peer_id", &PeerId(self.peer_id))
            .field("meta", &self.meta())
            .finish()
    }
}

/// The hash index of a large list: positions only, keyed by the hash of the peer's address.
/// A probe compares against the peer record itself (which the announce touches anyway), so a
/// lookup costs the control bytes and the record, not a separate copy of every key; a bucket is
/// 4 bytes instead of 12.
#[derive(Debug)]
struct PosIndex {
    table: hashbrown::HashTable<u32>,
    hasher: ahash::RandomState,
}

impl PosIndex {
    fn hash<const N: usize>(&self, addr: &[u8; N]) -> u64 {
        self.hasher.hash_one(addr)
    }
}

type Index<const N: usize> = PosIndex;

/// An indexed torrent's descriptive entry (the torrent index lives inside the swarm record, so
/// that a whitelist check costs no extra lock on the announce path).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IndexMeta {
    /// Display name.
    pub name: String,
    /// Total payload size in bytes.
    pub size: u64,
    /// When it was added, unix seconds.
    pub added_at: u64,
    /// For a hybrid v1+v2 torrent indexed under its v1 hash: its v2 hash truncated to 20 bytes,
    /// which announces and scrapes resolve to the same swarm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v2: Option<crate::types::InfoHash>,
    /// Added from a `.torrent` file in `[access] index_dir` (and removed when the file goes).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub from_dir: bool,
}

/// Everything rarer than a small IPv4 list. Laid out by hand (`repr(C)`, cache-line aligned) so
/// that an IPv4 announce in a large swarm touches three of its five lines: line 0 (the IPv4
/// list and the IPv6 seeder count), line 1 (the IPv4 index) and line 2 (the IPv6 list's length,
/// for the counts). With the compiler's order the same announce touched all five.
#[derive(Debug, Default)]
#[repr(C, align(64))]
pub(crate) struct SwarmExt {
    /// The IPv4 list when it has more than `EXACT_GROWTH_UNTIL` peers (else `Swarm::v4`).
    v4_large: Split<6>,
    v6_seeders: u32,
    /// Puts the index at the start of line 1 (`v4_large` is 48 bytes, `v6_seeders` 4).
    _pad: [u8; 12],
    v4_index: Option<Index<6>>,
    v6: Split<18>,
    v6_index: Option<Index<18>>,
    pub(crate) meta: Option<IndexMeta>,
}

/// One torrent.
#[derive(Debug)]
pub(crate) struct Swarm {
    /// The IPv4 list while it is small (exactly sized: no capacity word, no slack).
    v4: Box<[Peer<6>]>,
    v4_seeders: u32,
    pub(crate) downloaded: u32,
    /// A lower bound of every stored peer's expiry (unix seconds); `u32::MAX` when empty.
    next_purge: u32,
    /// Peers' expiries are stored as offsets from this (unix seconds).
    epoch: u32,
    pub(crate) ext: Option<Box<SwarmExt>>,
}

impl Default for Swarm {
    fn default() -> Self {
        Self {
            v4: Box::default(),
            v4_seeders: 0,
            downloaded: 0,
            next_purge: u32::MAX,
            epoch: 0,
            ext: None,
        }
    }
}

/// Receives the peers selected for an announce reply, in their compact wire form, so that a
/// protocol crate can serialise straight into its send buffer without allocating.
pub trait PeerSink {
    /// An IPv4 peer: 4 address bytes and the port, big-endian.
    fn push_v4(&mut self, addr: &[u8; 6], peer_id: &[u8; 20]);
    /// An IPv6 peer: 16 address bytes and the port, big-endian.
    fn push_v6(&mut self, addr: &[u8; 18], peer_id: &[u8; 20]);
    /// Whether the peer ids handed to `push_*` are used. When not, they are not read (they
    /// live apart from the addresses in large lists) and the pushes get zeros.
    fn wants_peer_ids(&self) -> bool {
        true
    }
}

/// A convenience sink collecting compact bytes (tests, benches, simple callers).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CompactPeers {
    /// Concatenated 6-byte IPv4 entries.
    pub v4: Vec<u8>,
    /// Concatenated 18-byte IPv6 entries.
    pub v6: Vec<u8>,
    /// Peer ids in the order pushed, both families.
    pub peer_ids: Vec<PeerId>,
}

impl CompactPeers {
    /// Empties the buffers, keeping their capacity.
    pub fn clear(&mut self) {
        self.v4.clear();
        self.v6.clear();
        self.peer_ids.clear();
    }

    /// Every peer as a socket address (IPv4 first).
    pub fn addrs(&self) -> Vec<SocketAddr> {
        let mut out = Vec::new();
        for c in self.v4.chunks_exact(6) {
            out.push(socket_from_v4(c.try_into().unwrap_or(&[0; 6])));
        }
        for c in self.v6.chunks_exact(18) {
            out.push(socket_from_v6(c.try_into().unwrap_or(&[0; 18])));
        }
        out
    }
}

impl PeerSink for CompactPeers {
    fn push_v4(&mut self, addr: &[u8; 6], peer_id: &[u8; 20]) {
        self.v4.extend_from_slice(addr);
        self.peer_ids.push(PeerId(*peer_id));
    }
    fn push_v6(&mut self, addr: &[u8; 18], peer_id: &[u8; 20]) {
        self.v6.extend_from_slice(addr);
        self.peer_ids.push(PeerId(*peer_id));
    }
}

/// A peer as shown to operators and written to snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerView {
    /// The peer's address (its identity in the swarm).
    pub addr: SocketAddr,
    /// The last peer id it announced.
    pub peer_id: PeerId,
    /// Seeding or leeching.
    pub status: PeerStatus,
    /// Whether its completed download was counted.
    pub completed: bool,
    /// Unix seconds at which it expires.
    pub expiry: u32,
}

/// What an announce wants from the swarm, after validation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Update {
    pub ip: IpAddr,
    pub port: u16,
    pub peer_id: [u8; 20],
    pub event: Event,
    pub left: u64,
    /// Unix seconds; at most `now + MAX_PEER_TIMEOUT`.
    pub expiry: u32,
    pub want: usize,
    pub both_families: bool,
    pub max_peers: usize,
}

/// What happened to the announcer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Inserted or updated.
    Stored,
    /// `stopped`: removed, or it was not there.
    Removed,
    /// Answered but not stored: the swarm is at `max_peers_per_swarm`.
    SwarmFull,
    /// Answered but not stored: the tracker is at `max_torrents`.
    TorrentLimit,
}

/// Counts and peers written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct SwarmReply {
    pub seeders: u32,
    pub leechers: u32,
    pub downloaded: u32,
    pub peers_v4: u32,
    pub peers_v6: u32,
}

// ---- list layouts ---------------------------------------------------------------------------
//
// A family's peers live in one of two layouts behind the same interface:
// - packed (`[Peer<N>]`): whole records side by side. Small IPv4 lists, inline in the swarm,
//   exactly sized: one allocation, no capacity word.
// - split (`Split<N>`): the part a reply reads (address and meta, 8 bytes for IPv4) in one
//   array and the peer ids (20 bytes) in a parallel one. Large IPv4 lists and all IPv6 lists,
//   in the extension. A compact reply of 30 IPv4 peers then reads 240 contiguous bytes (4 cache
//   lines) instead of 840 (14): in the 1M-torrent load benchmark, reading the reply window was
//   the largest user-space cost per announce after the table lookup.
// Same bytes per peer in both; operations are written once, generic over `PeerList`.

/// The half of a peer in a split list that a reply reads: address and meta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct Hot<const N: usize> {
    addr: [u8; N],
    meta: [u8; 2],
}

/// A growable list stored as two parallel arrays (see above). Position `i` of both is peer `i`.
#[derive(Debug, Default)]
#[repr(C)]
pub(crate) struct Split<const N: usize> {
    hot: Vec<Hot<N>>,
    ids: Vec<[u8; 20]>,
}

impl<const N: usize> Split<N> {
    fn from_peers(peers: &[Peer<N>]) -> Self {
        let mut s = Self {
            hot: Vec::with_capacity(peers.len() + peers.len() / 4),
            ids: Vec::with_capacity(peers.len() + peers.len() / 4),
        };
        for p in peers {
            s.push(*p);
        }
        s
    }

    fn to_packed(&self) -> Box<[Peer<N>]> {
        (0..self.len()).map(|i| self.get(i)).collect()
    }

    fn is_empty(&self) -> bool {
        self.hot.is_empty()
    }

    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.hot.capacity().min(self.ids.capacity())
    }

    fn shrink_if_sparse(&mut self) {
        shrink_if_sparse(&mut self.hot);
        shrink_if_sparse(&mut self.ids);
    }
}

/// Read access to a family's list, whatever its layout.
pub(crate) trait PeerList<const N: usize> {
    /// Bytes between the reply data of consecutive peers (for prefetching).
    const HOT_STRIDE: usize;
    fn len(&self) -> usize;
    fn addr(&self, i: usize) -> &[u8; N];
    fn meta(&self, i: usize) -> u16;
    fn peer_id(&self, i: usize) -> &[u8; 20];
    /// Address of peer `i`'s reply data (`i <= len`); only ever prefetched, never read.
    fn hot_addr(&self, i: usize) -> usize;
    fn get(&self, i: usize) -> Peer<N> {
        Peer {
            addr: *self.addr(i),
            peer_id: *self.peer_id(i),
            meta: self.meta(i).to_le_bytes(),
        }
    }
}

/// Write access to a family's list.
pub(crate) trait PeerListMut<const N: usize>: PeerList<N> {
    fn set(&mut self, i: usize, peer_id: [u8; 20], meta: u16);
    fn set_meta(&mut self, i: usize, meta: u16);
    fn push(&mut self, p: Peer<N>);
    fn swap_remove(&mut self, i: usize) -> Peer<N>;
    fn retain_meta(&mut self, keep: impl FnMut(u16) -> bool);
}

impl<const N: usize> PeerList<N> for [Peer<N>] {
    const HOT_STRIDE: usize = std::mem::size_of::<Peer<N>>();
    #[inline]
    fn len(&self) -> usize {
        <[Peer<N>]>::len(self)
    }
    #[inline]
    fn addr(&self, i: usize) -> &[u8; N] {
        &self[i].addr
    }
    #[inline]
    fn meta(&self, i: usize) -> u16 {
        self[i].meta()
    }
    #[inline]
    fn peer_id(&self, i: usize) -> &[u8; 20] {
        &self[i].peer_id
    }
    #[inline]
    fn hot_addr(&self, i: usize) -> usize {
        self.as_ptr() as usize + i * Self::HOT_STRIDE
    }
    #[inline]
    fn get(&self, i: usize) -> Peer<N> {
        self[i]
    }
}

impl<const N: usize> PeerList<N> for Vec<Peer<N>> {
    const HOT_STRIDE: usize = std::mem::size_of::<Peer<N>>();
    #[inline]
    fn len(&self) -> usize {
        Vec::len(self)
    }
    #[inline]
    fn addr(&self, i: usize) -> &[u8; N] {
        self.as_slice().addr(i)
    }
    #[inline]
    fn meta(&self, i: usize) -> u16 {
        self.as_slice().meta(i)
    }
    #[inline]
    fn peer_id(&self, i: usize) -> &[u8; 20] {
        self.as_slice().peer_id(i)
    }
    #[inline]
    fn hot_addr(&self, i: usize) -> usize {
        self.as_slice().hot_addr(i)
    }
    #[inline]
    fn get(&self, i: usize) -> Peer<N> {
        self[i]
    }
}

impl<const N: usize> PeerListMut<N> for Vec<Peer<N>> {
    #[inline]
    fn set(&mut self, i: usize, peer_id: [u8; 20], meta: u16) {
        self[i].peer_id = peer_id;
        self[i].meta = meta.to_le_bytes();
    }
    #[inline]
    fn set_meta(&mut self, i: usize, meta: u16) {
        self[i].meta = meta.to_le_bytes();
    }
    fn push(&mut self, p: Peer<N>) {
        reserve_for_push(self);
        Vec::push(self, p);
    }
    fn swap_remove(&mut self, i: usize) -> Peer<N> {
        Vec::swap_remove(self, i)
    }
    fn retain_meta(&mut self, mut keep: impl FnMut(u16) -> bool) {
        self.retain(|p| keep(p.meta()));
    }
}

impl<const N: usize> PeerList<N> for Split<N> {
    const HOT_STRIDE: usize = std::mem::size_of::<Hot<N>>();
    #[inline]
    fn len(&self) -> usize {
        self.hot.len()
    }
    #[inline]
    fn addr(&self, i: usize) -> &[u8; N] {
        &self.hot[i].addr
    }
    #[inline]
    fn meta(&self, i: usize) -> u16 {
        u16::from_le_bytes(self.hot[i].meta)
    }
    #[inline]
    fn peer_id(&self, i: usize) -> &[u8; 20] {
        &self.ids[i]
    }
    #[inline]
    fn hot_addr(&self, i: usize) -> usize {
        self.hot.as_ptr() as usize + i * Self::HOT_STRIDE
    }
}

impl<const N: usize> PeerListMut<N> for Split<N> {
    #[inline]
    fn set(&mut self, i: usize, peer_id: [u8; 20], meta: u16) {
        self.ids[i] = peer_id;
        self.hot[i].meta = meta.to_le_bytes();
    }
    #[inline]
    fn set_meta(&mut self, i: usize, meta: u16) {
        self.hot[i].meta = meta.to_le_bytes();
    }
    fn push(&mut self, p: Peer<N>) {
        reserve_for_push(&mut self.hot);
        reserve_for_push(&mut self.ids);
        self.hot.push(Hot {
            addr: p.addr,
            meta: p.meta,
        });
        self.ids.push(p.peer_id);
    }
    fn swap_remove(&mut self, i: usize) -> Peer<N> {
        let h = self.hot.swap_remove(i);
        let id = self.ids.swap_remove(i);
        Peer {
            addr: h.addr,
            peer_id: id,
            meta: h.meta,
        }
    }
    fn retain_meta(&mut self, mut keep: impl FnMut(u16) -> bool) {
        // Both arrays compacted in one pass, in the same order.
        let mut w = 0;
        for r in 0..self.hot.len() {
            if keep(u16::from_le_bytes(self.hot[r].meta)) {
                self.hot[w] = self.hot[r];
                self.ids[w] = self.ids[r];
                w += 1;
            }
        }
        self.hot.truncate(w);
        self.ids.truncate(w);
    }
}

/// A family's list as stored in a swarm, for reading.
#[derive(Debug, Clone, Copy)]
enum ListRef<'a, const N: usize> {
    Packed(&'a [Peer<N>]),
    Split(&'a Split<N>),
}

impl<const N: usize> ListRef<'_, N> {
    fn len(&self) -> usize {
        match self {
            Self::Packed(p) => p.len(),
            Self::Split(s) => s.len(),
        }
    }

    fn get(&self, i: usize) -> Peer<N> {
        match self {
            Self::Packed(p) => p[i],
            Self::Split(s) => s.get(i),
        }
    }

    fn iter(self) -> impl Iterator<Item = Peer<N>> {
        (0..self.len()).map(move |i| self.get(i))
    }

    /// Picks where a reply's walk over this list starts ([`pick_start`]) and prefetches the
    /// first lines of that window ([`prefetch_window`]).
    fn start_window(self, want: usize) -> usize {
        let start = pick_start(self.len(), want);
        match self {
            Self::Packed(p) => prefetch_window(p, start, want),
            Self::Split(s) => prefetch_window(s, start, want),
        }
        start
    }
}

/// Mutable view of one family's list, whatever the family and layout.
struct ListMut<'a, const N: usize, L: PeerListMut<N>> {
    peers: &'a mut L,
    seeders: &'a mut u32,
    index: &'a mut Option<Index<N>>,
}

impl<const N: usize, L: PeerListMut<N>> ListMut<'_, N, L> {
    fn find(&self, addr: &[u8; N]) -> Option<usize> {
        let peers = &*self.peers;
        match self.index.as_ref() {
            Some(ix) => ix
                .table
                .find(ix.hash(addr), |&i| peers.addr(i as usize) == addr)
                .map(|&i| i as usize),
            None => (0..peers.len()).find(|&i| peers.addr(i) == addr),
        }
    }

    fn push(&mut self, peer: Peer<N>) {
        let len = self.peers.len();
        if peer.is_seeder() {
            *self.seeders += 1;
        }
        self.peers.push(peer);
        match self.index.as_mut() {
            Some(ix) => {
                let (hasher, peers) = (&ix.hasher, &*self.peers);
                ix.table
                    .insert_unique(hasher.hash_one(peer.addr), len as u32, |&i| {
                        hasher.hash_one(peers.addr(i as usize))
                    });
            }
            None if self.peers.len() > INDEX_THRESHOLD => {
                *self.index = Some(build_index(&*self.peers));
            }
            None => {}
        }
    }

    fn remove(&mut self, pos: usize) {
        let gone = self.peers.swap_remove(pos);
        if gone.is_seeder() {
            *self.seeders -= 1;
        }
        if let Some(ix) = self.index.as_mut() {
            let last = self.peers.len() as u32;
            if let Ok(e) = ix
                .table
                .find_entry(ix.hasher.hash_one(gone.addr), |&i| i as usize == pos)
            {
                e.remove();
            }
            if pos < self.peers.len() {
                // The former last peer now sits at `pos`.
                let moved = *self.peers.addr(pos);
                if let Some(slot) = ix.table.find_mut(ix.hasher.hash_one(moved), |&i| i == last) {
                    *slot = pos as u32;
                }
            }
            if self.peers.len() < INDEX_DROP {
                *self.index = None;
            }
        }
    }

    /// Drops expired peers; returns how many, and the lowest remaining expiry.
    fn purge(&mut self, now: u32, epoch: u32) -> (usize, u32) {
        let before = self.peers.len();
        self.peers.retain_meta(|m| meta_expiry(m, epoch) > now);
        let removed = before - self.peers.len();
        let mut seeders = 0;
        let mut min = u32::MAX;
        for i in 0..self.peers.len() {
            let m = self.peers.meta(i);
            seeders += u32::from(m & SEEDER != 0);
            min = min.min(meta_expiry(m, epoch));
        }
        *self.seeders = seeders;
        if removed > 0 {
            *self.index = (self.peers.len() > INDEX_THRESHOLD).then(|| build_index(&*self.peers));
        }
        (removed, min)
    }

    /// Re-expresses every offset relative to `new_epoch` (expired ones become 0).
    fn rebase(&mut self, old_epoch: u32, new_epoch: u32) {
        for i in 0..self.peers.len() {
            let m = self.peers.meta(i);
            let off = meta_expiry(m, old_epoch)
                .saturating_sub(new_epoch)
                .min(u32::from(OFFSET_MASK));
            self.peers.set_meta(i, (m & !OFFSET_MASK) | off as u16);
        }
    }
}

/// An operation on one family's list, run by `Swarm::with_v4` / `with_v6` on whichever layout
/// holds the list (a closure cannot be generic over the layout; a trait method can).
trait ListOp<const N: usize> {
    type Out;
    fn run<L: PeerListMut<N>>(self, l: &mut ListMut<'_, N, L>) -> Self::Out;
}

/// Announce: insert, update or remove the announcer (see [`apply`]).
struct ApplyOp<'u, const N: usize> {
    addr: [u8; N],
    u: &'u Update,
    offset: u16,
    total: usize,
}

impl<const N: usize> ListOp<N> for ApplyOp<'_, N> {
    type Out = (Stored, Option<usize>, bool, bool);
    fn run<L: PeerListMut<N>>(self, l: &mut ListMut<'_, N, L>) -> Self::Out {
        apply(l, self.addr, self.u, self.offset, self.total)
    }
}

struct PurgeOp {
    now: u32,
    epoch: u32,
}

impl<const N: usize> ListOp<N> for PurgeOp {
    type Out = (usize, u32);
    fn run<L: PeerListMut<N>>(self, l: &mut ListMut<'_, N, L>) -> Self::Out {
        l.purge(self.now, self.epoch)
    }
}

struct RebaseOp {
    old: u32,
    new: u32,
}

impl<const N: usize> ListOp<N> for RebaseOp {
    type Out = ();
    fn run<L: PeerListMut<N>>(self, l: &mut ListMut<'_, N, L>) {
        l.rebase(self.old, self.new);
    }
}

/// Snapshot restore: add a peer unless it is already there.
struct PutOp<const N: usize> {
    peer: Peer<N>,
}

impl<const N: usize> ListOp<N> for PutOp<N> {
    type Out = bool;
    fn run<L: PeerListMut<N>>(self, l: &mut ListMut<'_, N, L>) -> bool {
        if l.find(&self.peer.addr).is_some() {
            return false;
        }
        l.push(self.peer);
        true
    }
}

/// Makes room for one more element: one slot at a time while the list is small, so that memory
/// per peer stays exact in the small swarms that are most of a tracker; amortised growth after.
fn reserve_for_push<T>(v: &mut Vec<T>) {
    if v.len() == v.capacity() && v.len() < EXACT_GROWTH_UNTIL {
        v.reserve_exact(1);
    }
}

/// Releases memory when a growable list is far below its capacity.
fn shrink_if_sparse<T>(v: &mut Vec<T>) {
    let (len, cap) = (v.len(), v.capacity());
    if cap > 2 * len + 4 {
        v.shrink_to(len + len / 4);
    }
}

fn build_index<const N: usize, L: PeerList<N> + ?Sized>(peers: &L) -> Index<N> {
    let hasher = ahash::RandomState::new();
    let mut table = hashbrown::HashTable::with_capacity(peers.len() + peers.len() / 4);
    for i in 0..peers.len() {
        table.insert_unique(hasher.hash_one(peers.addr(i)), i as u32, |&j| {
            hasher.hash_one(peers.addr(j as usize))
        });
    }
    PosIndex { table, hasher }
}

/// Applies one announce to a list: insert, update or remove the announcer. `offset` is the
/// announcer's new expiry relative to the swarm's epoch. Returns what happened, the announcer's
/// position (to exclude it from the reply), whether it is a seeder now, and whether a completed
/// download must be counted.
fn apply<const N: usize, L: PeerListMut<N>>(
    list: &mut ListMut<'_, N, L>,
    addr: [u8; N],
    u: &Update,
    offset: u16,
    total_peers: usize,
) -> (Stored, Option<usize>, bool, bool) {
    let seeder = u.left == 0;
    let pos = list.find(&addr);
    if u.event == Event::Stopped {
        if let Some(pos) = pos {
            list.remove(pos);
        }
        return (Stored::Removed, None, seeder, false);
    }
    let flags = if seeder { SEEDER } else { 0 };
    match pos {
        Some(pos) => {
            let m = list.peers.meta(pos);
            let was_seeder = m & SEEDER != 0;
            let already = m & COMPLETED != 0;
            // Counted once per peer per torrent: an explicit `completed` with left=0, or the
            // first time a known leecher shows up as a seeder.
            let count = !already && seeder && (u.event == Event::Completed || !was_seeder);
            let flags = flags | if already || count { COMPLETED } else { 0 };
            list.peers
                .set(pos, u.peer_id, flags | offset.min(OFFSET_MASK));
            match (was_seeder, seeder) {
                (false, true) => *list.seeders += 1,
                (true, false) => *list.seeders -= 1,
                _ => {}
            }
            (Stored::Stored, Some(pos), seeder, count)
        }
        None => {
            let count = seeder && u.event == Event::Completed;
            if total_peers >= u.max_peers {
                return (Stored::SwarmFull, None, seeder, count);
            }
            let mut peer = Peer {
                addr,
                peer_id: u.peer_id,
                meta: [0; 2],
            };
            peer.set_meta(flags | if count { COMPLETED } else { 0 }, offset);
            list.push(peer);
            (Stored::Stored, Some(list.peers.len() - 1), seeder, count)
        }
    }
}

/// Where a reply's walk over a list of `len` peers starts: a random position when the list
/// holds more than `want`, so every peer has the same chance to be in a reply.
fn pick_start(len: usize, want: usize) -> usize {
    if len > want && want > 0 {
        crate::fast_rng::below(len)
    } else {
        0
    }
}

/// Most cache lines of a reply window prefetched ahead (16 lines hold 36 packed IPv4 peers,
/// 128 split ones).
const WINDOW_PREFETCH_LINES: usize = 16;

/// Prefetches the peers a walk from `start` will read first (see [`select`]), so that their
/// misses overlap with the announcer's own lookup instead of following it.
fn prefetch_window<const N: usize, L: PeerList<N> + ?Sized>(peers: &L, start: usize, want: usize) {
    let len = peers.len();
    if start >= len {
        return;
    }
    let first = (len - start).min(want);
    crate::prefetch::lines(
        peers.hot_addr(start),
        first * L::HOT_STRIDE,
        WINDOW_PREFETCH_LINES,
    );
    let rest = (want - first).min(start);
    if rest > 0 {
        crate::prefetch::lines(
            peers.hot_addr(0),
            rest * L::HOT_STRIDE,
            WINDOW_PREFETCH_LINES,
        );
    }
}

/// How a reply walks one list: from `start` (from [`pick_start`]), wrapping around, taking up
/// to `want` live peers, never the one at `skip`, only leechers when `leechers_only`, reading
/// peer ids only `with_ids` (a compact reply has none, and in a split list they live apart).
#[derive(Debug, Clone, Copy)]
struct Walk {
    start: usize,
    want: usize,
    skip: Option<usize>,
    leechers_only: bool,
    with_ids: bool,
    now: u32,
    epoch: u32,
}

/// Writes the peers `w` selects from `peers` to `emit`; returns how many. The cost is O(want)
/// unless most peers are filtered out.
#[inline]
fn select<const N: usize, L: PeerList<N> + ?Sized>(
    peers: &L,
    w: Walk,
    mut emit: impl FnMut(&[u8; N], &[u8; 20]),
) -> usize {
    const NO_ID: [u8; 20] = [0; 20];
    let len = peers.len();
    if w.want == 0 || len == 0 {
        return 0;
    }
    let mut n = 0;
    let mut i = if w.start < len { w.start } else { 0 };
    for _ in 0..len {
        let m = peers.meta(i);
        if Some(i) != w.skip
            && meta_expiry(m, w.epoch) > w.now
            && !(w.leechers_only && m & SEEDER != 0)
        {
            let id = if w.with_ids { peers.peer_id(i) } else { &NO_ID };
            emit(peers.addr(i), id);
            n += 1;
            if n == w.want {
                break;
            }
        }
        i += 1;
        if i == len {
            i = 0;
        }
    }
    n
}

/// [`select`] on a list as stored, dispatching on its layout once, not per peer.
#[inline]
fn select_in<const N: usize>(
    list: ListRef<'_, N>,
    w: Walk,
    emit: impl FnMut(&[u8; N], &[u8; 20]),
) -> usize {
    match list {
        ListRef::Packed(p) => select(p, w, emit),
        ListRef::Split(s) => select(s, w, emit),
    }
}

impl Swarm {
    fn ext(&mut self) -> &mut SwarmExt {
        self.ext.get_or_insert_with(Box::default)
    }

    /// Runs `op` on the IPv4 list, wherever it lives (packed in the inline exact-size box while
    /// small, split in the extension when large), and puts it back in the right home and
    /// layout afterwards (converting only when it crosses `EXACT_GROWTH_UNTIL`).
    fn with_v4<O: ListOp<6>>(&mut self, op: O) -> O::Out {
        if let Some(e) = self.ext.as_deref_mut()
            && !e.v4_large.is_empty()
        {
            let r = op.run(&mut ListMut {
                peers: &mut e.v4_large,
                seeders: &mut self.v4_seeders,
                index: &mut e.v4_index,
            });
            if e.v4_large.len() <= EXACT_GROWTH_UNTIL {
                self.v4 = e.v4_large.to_packed();
                e.v4_large = Split::default();
                e.v4_index = None;
            }
            return r;
        }
        let mut peers = std::mem::take(&mut self.v4).into_vec();
        // A list this small never has an index (INDEX_THRESHOLD is above EXACT_GROWTH_UNTIL).
        let mut index = None;
        let r = op.run(&mut ListMut {
            peers: &mut peers,
            seeders: &mut self.v4_seeders,
            index: &mut index,
        });
        if peers.len() > EXACT_GROWTH_UNTIL {
            let e = self.ext();
            e.v4_large = Split::from_peers(&peers);
            e.v4_index = index;
        } else {
            // No reallocation when the Vec is exactly full, which growth keeps it while small.
            self.v4 = peers.into_boxed_slice();
        }
        r
    }

    fn v4(&self) -> ListRef<'_, 6> {
        match self.ext.as_deref() {
            Some(e) if !e.v4_large.is_empty() => ListRef::Split(&e.v4_large),
            _ => ListRef::Packed(&self.v4),
        }
    }

    /// Runs `op` on the IPv6 list, creating the extension if needed.
    fn with_v6<O: ListOp<18>>(&mut self, op: O) -> O::Out {
        let e = self.ext();
        op.run(&mut ListMut {
            peers: &mut e.v6,
            seeders: &mut e.v6_seeders,
            index: &mut e.v6_index,
        })
    }

    fn v6(&self) -> ListRef<'_, 18> {
        match self.ext.as_deref() {
            Some(e) => ListRef::Split(&e.v6),
            None => ListRef::Packed(&[]),
        }
    }

    /// Number of peers stored (both families, live or not yet purged).
    pub(crate) fn len(&self) -> usize {
        self.v4().len() + self.v6().len()
    }

    /// Nothing worth keeping: no peers and no index entry. (Download counts of torrents that are
    /// not indexed go with their last peer, as in every tracker that keeps memory bounded.)
    pub(crate) fn is_disposable(&self) -> bool {
        self.len() == 0 && self.meta().is_none()
    }

    pub(crate) fn meta(&self) -> Option<&IndexMeta> {
        self.ext.as_ref().and_then(|e| e.meta.as_ref())
    }

    pub(crate) fn set_meta(&mut self, meta: Option<IndexMeta>) {
        if meta.is_some() || self.ext.is_some() {
            self.ext().meta = meta;
        }
        self.drop_empty_ext();
    }

    fn drop_empty_ext(&mut self) {
        if let Some(e) = &self.ext {
            if e.v6.is_empty() && e.meta.is_none() && e.v4_index.is_none() && e.v4_large.is_empty()
            {
                self.ext = None;
            }
        }
    }

    /// Purges expired peers if any may have expired. Returns the number removed. Afterwards
    /// every stored peer's expiry is after `now`.
    pub(crate) fn purge_if_due(&mut self, now: u32) -> usize {
        if now < self.next_purge {
            return 0;
        }
        let epoch = self.epoch;
        let (r4, min4) = self.with_v4(PurgeOp { now, epoch });
        let (r6, min6) = match self.ext.is_some() {
            true => self.with_v6(PurgeOp { now, epoch }),
            false => (0, u32::MAX),
        };
        self.next_purge = min4.min(min6);
        self.drop_empty_ext();
        r4 + r6
    }

    /// The offset of `expiry` from the epoch, re-basing the swarm first if it does not fit.
    /// Call after [`Self::purge_if_due`], so that every stored peer is alive at `now`.
    fn offset_for(&mut self, expiry: u32, now: u32) -> u16 {
        if self.len() == 0 {
            self.epoch = now;
        } else if expiry < self.epoch || expiry - self.epoch > u32::from(OFFSET_MASK) {
            let old = self.epoch;
            self.with_v4(RebaseOp { old, new: now });
            if self.ext.is_some() {
                self.with_v6(RebaseOp { old, new: now });
            }
            self.epoch = now;
        }
        expiry
            .saturating_sub(self.epoch)
            .min(u32::from(OFFSET_MASK)) as u16
    }

    /// Shrinks lists that are far below their capacity (sweep only).
    /// Only the extension's lists can have spare capacity: a small IPv4 list is an exactly
    /// sized box, and every change goes through `with_v4`, which moves a large list that
    /// shrank back inline.
    pub(crate) fn maybe_shrink(&mut self) {
        if let Some(e) = self.ext.as_deref_mut() {
            e.v4_large.shrink_if_sparse();
            e.v6.shrink_if_sparse();
        }
    }

    /// Seeders and leechers that are alive at `now`, without changing anything.
    pub(crate) fn live_counts(&self, now: u32) -> (u32, u32) {
        let [(s4, l4), (s6, l6)] = self.live_counts_by_family(now);
        (s4 + s6, l4 + l6)
    }

    /// Live (seeders, leechers) for IPv4 and IPv6: from the counters while no peer can have
    /// expired, else by looking at each peer (without changing anything).
    pub(crate) fn live_counts_by_family(&self, now: u32) -> [(u32, u32); 2] {
        if now < self.next_purge {
            let s4 = self.v4_seeders;
            let s6 = self.ext.as_ref().map_or(0, |e| e.v6_seeders);
            return [
                (s4, self.v4().len() as u32 - s4),
                (s6, self.v6().len() as u32 - s6),
            ];
        }
        fn count<const N: usize>(peers: ListRef<'_, N>, now: u32, epoch: u32) -> (u32, u32) {
            peers
                .iter()
                .filter(|p| p.alive(now, epoch))
                .fold((0, 0), |(s, l), p| {
                    if p.is_seeder() {
                        (s + 1, l)
                    } else {
                        (s, l + 1)
                    }
                })
        }
        [
            count(self.v4(), now, self.epoch),
            count(self.v6(), now, self.epoch),
        ]
    }

    /// Applies an announce and writes the selected peers. One call per announce, under the
    /// one shard lock the caller holds.
    pub(crate) fn announce(
        &mut self,
        u: &Update,
        now: u32,
        sink: &mut impl PeerSink,
    ) -> (Stored, SwarmReply) {
        // Expired peers go first, so counts and the reply never depend on sweep timing.
        self.purge_if_due(now);
        let total = self.len();
        let offset = if u.event == Event::Stopped {
            0
        } else {
            self.offset_for(u.expiry, now)
        };
        // The reply's walk over the announcer's own family starts at a position chosen now,
        // from the list as it is before the announce (the announcer, if new, is appended after
        // it and skipped anyway), and its first lines are requested before the announcer's own
        // lookup, so both sets of misses overlap. A stopped announce gets no peers.
        let own_start = match (u.event, u.ip) {
            (Event::Stopped, _) => 0,
            (_, IpAddr::V4(_)) => self.v4().start_window(u.want),
            (_, IpAddr::V6(_)) => self.v6().start_window(u.want),
        };
        let (stored, own_pos, seeder, count, is_v4) = match u.ip {
            IpAddr::V4(ip) => {
                let addr = compact_v4(ip, u.port);
                let (st, pos, seeder, count) = self.with_v4(ApplyOp {
                    addr,
                    u,
                    offset,
                    total,
                });
                (st, pos, seeder, count, true)
            }
            IpAddr::V6(_) if u.event == Event::Stopped && self.ext.is_none() => {
                (Stored::Removed, None, u.left == 0, false, false)
            }
            IpAddr::V6(ip) => {
                let addr = compact_v6(ip, u.port);
                let (st, pos, seeder, count) = self.with_v6(ApplyOp {
                    addr,
                    u,
                    offset,
                    total,
                });
                (st, pos, seeder, count, false)
            }
        };
        if count {
            self.downloaded = self.downloaded.saturating_add(1);
        }
        if stored == Stored::Stored {
            self.next_purge = self.next_purge.min(self.epoch + u32::from(offset));
        }
        let (seeders, leechers) = self.live_counts(now);
        let mut reply = SwarmReply {
            seeders,
            leechers,
            downloaded: self.downloaded,
            ..Default::default()
        };
        if stored == Stored::Removed {
            self.drop_empty_ext();
            return (stored, reply);
        }
        // Seeders get only leechers; leechers get both. Own family first, then (HTTP) the other.
        let epoch = self.epoch;
        let v4 = self.v4();
        let v6 = self.v6();
        // Written out per family (not through closures) so the sink stays a generic, not a
        // `dyn`, and every push is inlined.
        let walk = Walk {
            start: own_start,
            want: u.want,
            skip: own_pos,
            leechers_only: seeder,
            with_ids: sink.wants_peer_ids(),
            now,
            epoch,
        };
        // The other family (HTTP only) gets what the own family left of `want`.
        let other = |len: usize, taken: usize| Walk {
            start: pick_start(len, u.want - taken),
            want: u.want - taken,
            skip: None,
            ..walk
        };
        let (n4, n6);
        if is_v4 {
            n4 = select_in(v4, walk, |a, id| sink.push_v4(a, id));
            n6 = match u.both_families {
                true => select_in(v6, other(v6.len(), n4), |a, id| sink.push_v6(a, id)),
                false => 0,
            };
        } else {
            n6 = select_in(v6, walk, |a, id| sink.push_v6(a, id));
            n4 = match u.both_families {
                true => select_in(v4, other(v4.len(), n6), |a, id| sink.push_v4(a, id)),
                false => 0,
            };
        }
        reply.peers_v4 = n4 as u32;
        reply.peers_v6 = n6 as u32;
        (stored, reply)
    }

    /// Every stored live peer, IPv4 first.
    pub(crate) fn peers(&self, now: u32) -> impl Iterator<Item = PeerView> + '_ {
        let epoch = self.epoch;
        let v4 = self
            .v4()
            .iter()
            .filter(move |p| p.alive(now, epoch))
            .map(move |p| p.view(epoch, socket_from_v4(&p.addr)));
        let v6 = self
            .v6()
            .iter()
            .filter(move |p| p.alive(now, epoch))
            .map(move |p| p.view(epoch, socket_from_v6(&p.addr)));
        v4.chain(v6)
    }

    /// Puts a peer back from a snapshot (no counting; limits still apply; the expiry is capped
    /// at `now + MAX_PEER_TIMEOUT`). Returns whether it was stored.
    pub(crate) fn restore(&mut self, p: &PeerView, now: u32, max_peers: usize) -> bool {
        self.purge_if_due(now);
        if self.len() >= max_peers || p.expiry <= now {
            return false;
        }
        let expiry = p.expiry.min(now.saturating_add(MAX_PEER_TIMEOUT));
        let flags = match p.status {
            PeerStatus::Seeding => SEEDER,
            PeerStatus::Leeching => 0,
        } | if p.completed { COMPLETED } else { 0 };
        let offset = self.offset_for(expiry, now);
        let port = p.addr.port();
        let meta = (flags | offset.min(OFFSET_MASK)).to_le_bytes();
        let stored = match crate::types::canonical_ip(p.addr.ip()) {
            IpAddr::V4(ip) => self.with_v4(PutOp {
                peer: Peer {
                    addr: compact_v4(ip, port),
                    peer_id: p.peer_id.0,
                    meta,
                },
            }),
            IpAddr::V6(ip) => self.with_v6(PutOp {
                peer: Peer {
                    addr: compact_v6(ip, port),
                    peer_id: p.peer_id.0,
                    meta,
                },
            }),
        };
        if stored {
            self.next_purge = self.next_purge.min(self.epoch + u32::from(offset));
        }
        stored
    }
}

/// Unused-address helpers kept for tests.
#[cfg(test)]
pub(crate) fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

#[cfg(test)]
pub(crate) fn v6(last: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_packed() {
        assert_eq!(std::mem::size_of::<Peer<6>>(), 28);
        assert_eq!(std::mem::size_of::<Peer<18>>(), 40);
        assert_eq!(std::mem::align_of::<Peer<6>>(), 1);
        assert!(
            std::mem::size_of::<Swarm>() <= 40,
            "{}",
            std::mem::size_of::<Swarm>()
        );
    }

    fn upd(ip: IpAddr, port: u16, left: u64, event: Event) -> Update {
        Update {
            ip,
            port,
            peer_id: [port as u8; 20],
            event,
            left,
            expiry: 1000,
            want: 50,
            both_families: true,
            max_peers: 10_000,
        }
    }

    #[test]
    fn index_is_built_and_kept_consistent_through_removals() {
        let mut s = Swarm::default();
        let mut sink = CompactPeers::default();
        for port in 1..=200u16 {
            s.announce(
                &upd(v4(10, 0, 0, 1), port, 5, Event::Started),
                10,
                &mut sink,
            );
        }
        assert!(s.ext.as_ref().unwrap().v4_index.is_some());
        // Remove every other peer through `stopped` and check each remaining one is found.
        for port in (1..=200u16).step_by(2) {
            s.announce(
                &upd(v4(10, 0, 0, 1), port, 5, Event::Stopped),
                10,
                &mut sink,
            );
        }
        assert_eq!(s.len(), 100);
        for port in (2..=200u16).step_by(2) {
            let (st, _) = s.announce(&upd(v4(10, 0, 0, 1), port, 5, Event::None), 10, &mut sink);
            assert_eq!(st, Stored::Stored);
        }
        assert_eq!(s.len(), 100, "updates must not duplicate peers");
        for port in (2..=200u16).step_by(2).take(80) {
            s.announce(
                &upd(v4(10, 0, 0, 1), port, 5, Event::Stopped),
                10,
                &mut sink,
            );
        }
        assert_eq!(s.len(), 20);
        assert!(s.ext.is_none() || s.ext.as_ref().unwrap().v4_index.is_none());
    }

    #[test]
    fn ipv4_lists_change_layout_at_the_boundary_and_keep_every_peer() {
        let mut s = Swarm::default();
        let mut sink = CompactPeers::default();
        let ports = |s: &Swarm| {
            let mut v: Vec<u16> = s.peers(10).map(|p| p.addr.port()).collect();
            v.sort_unstable();
            v
        };
        let split = |s: &Swarm| matches!(s.v4(), ListRef::Split(_));
        for port in 1..=40u16 {
            s.announce(
                &upd(v4(10, 0, 0, 1), port, u64::from(port % 2), Event::Started),
                10,
                &mut sink,
            );
            assert_eq!(
                split(&s),
                port > EXACT_GROWTH_UNTIL as u16,
                "after {port} peers"
            );
            assert_eq!(ports(&s), (1..=port).collect::<Vec<_>>());
        }
        for port in (1..=40u16).rev().take(10) {
            s.announce(
                &upd(v4(10, 0, 0, 1), port, 0, Event::Stopped),
                10,
                &mut sink,
            );
        }
        assert!(!split(&s));
        assert_eq!(ports(&s), (1..=30).collect::<Vec<_>>());
        let (seeders, leechers) = s.live_counts(10);
        assert_eq!((seeders, leechers), (15, 15));
        // Every remaining peer is found (updated in place, not duplicated) after the moves.
        for port in 1..=30u16 {
            s.announce(&upd(v4(10, 0, 0, 1), port, 0, Event::None), 10, &mut sink);
        }
        assert_eq!(ports(&s), (1..=30).collect::<Vec<_>>());
        assert_eq!(s.live_counts(10), (30, 0));
    }

    #[test]
    fn v6_peers_live_apart() {
        let mut s = Swarm::default();
        let mut sink = CompactPeers::default();
        s.announce(&upd(v4(10, 0, 0, 1), 1, 5, Event::Started), 10, &mut sink);
        s.announce(&upd(v6(1), 1, 0, Event::Started), 10, &mut sink);
        sink.clear();
        let (_, r) = s.announce(&upd(v6(2), 2, 5, Event::Started), 10, &mut sink);
        assert_eq!(
            (r.seeders, r.leechers, r.peers_v4, r.peers_v6),
            (1, 2, 1, 1)
        );
        assert_eq!(sink.v6.len(), 18);
        assert_eq!(sink.v4.len(), 6);
    }

    #[test]
    fn rebasing_keeps_every_expiry() {
        let mut s = Swarm::default();
        let mut sink = CompactPeers::default();
        let mut now = 1_000_000u32;
        // Keep one long-lived swarm busy for far longer than the 14-bit offset range, with
        // peers re-announcing at different times, and check each peer's expiry exactly.
        let mut expect = std::collections::HashMap::new();
        for step in 0..400u32 {
            now += 97;
            let port = (step % 13) as u16 + 1;
            let mut u = upd(v4(10, 0, 0, 1), port, u64::from(step % 2), Event::None);
            u.expiry = now + MAX_PEER_TIMEOUT;
            s.announce(&u, now, &mut sink);
            expect.insert(port, now + MAX_PEER_TIMEOUT);
            for p in s.peers(now) {
                assert_eq!(p.expiry, expect[&p.addr.port()], "step {step}");
            }
        }
        assert!(
            s.epoch > 1_000_000 + u32::from(OFFSET_MASK),
            "the swarm must have been re-based"
        );
    }

    #[test]
    fn sweep_shrinks_large_lists_far_below_capacity() {
        let mut s = Swarm::default();
        let mut sink = CompactPeers::default();
        for port in 1..=200u16 {
            s.announce(&upd(v6(1), port, 5, Event::Started), 10, &mut sink);
            s.announce(
                &upd(v4(10, 0, 0, 1), port, 5, Event::Started),
                10,
                &mut sink,
            );
        }
        for port in 1..=160u16 {
            s.announce(&upd(v6(1), port, 5, Event::Stopped), 10, &mut sink);
            s.announce(
                &upd(v4(10, 0, 0, 1), port, 5, Event::Stopped),
                10,
                &mut sink,
            );
        }
        let ext = s.ext.as_ref().unwrap();
        assert!(ext.v6.capacity() >= 200 && ext.v4_large.capacity() >= 200);
        s.maybe_shrink();
        let ext = s.ext.as_ref().unwrap();
        assert_eq!((ext.v6.len(), ext.v4_large.len()), (40, 40));
        assert!(ext.v6.capacity() <= 50 && ext.v4_large.capacity() <= 50);
    }

    /// One contract for both list layouts: the same operations through `ListMut` (announce
    /// apply, purge, rebase, restore) leave a packed and a split list holding the same peers at
    /// the same positions, with the same seeder counts, indexes that find every peer, and the
    /// same reply for the same start.
    mod layouts {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            Announce {
                port: u16,
                left: u64,
                event: u8,
                expiry: u16,
            },
            Purge {
                now: u16,
            },
            Rebase {
                by: u16,
            },
            Put {
                port: u16,
                expiry: u16,
            },
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                8 => (0..150u16, 0..2u64, 0..4u8, 1..3000u16).prop_map(|(port, left, event, expiry)| {
                    Op::Announce { port, left, event, expiry }
                }),
                1 => (0..3000u16).prop_map(|now| Op::Purge { now }),
                1 => (0..100u16).prop_map(|by| Op::Rebase { by }),
                1 => (0..150u16, 1..3000u16).prop_map(|(port, expiry)| Op::Put { port, expiry }),
            ]
        }

        struct Both {
            packed: Vec<Peer<6>>,
            split: Split<6>,
            seeders: [u32; 2],
            index: (Option<Index<6>>, Option<Index<6>>),
        }

        impl Both {
            fn run<O: ListOp<6> + Clone>(&mut self, op: O) -> (O::Out, O::Out) {
                let a = op.clone().run(&mut ListMut {
                    peers: &mut self.packed,
                    seeders: &mut self.seeders[0],
                    index: &mut self.index.0,
                });
                let b = op.run(&mut ListMut {
                    peers: &mut self.split,
                    seeders: &mut self.seeders[1],
                    index: &mut self.index.1,
                });
                (a, b)
            }
        }

        impl Clone for PurgeOp {
            fn clone(&self) -> Self {
                Self {
                    now: self.now,
                    epoch: self.epoch,
                }
            }
        }
        impl Clone for RebaseOp {
            fn clone(&self) -> Self {
                Self {
                    old: self.old,
                    new: self.new,
                }
            }
        }
        impl<const N: usize> Clone for PutOp<N> {
            fn clone(&self) -> Self {
                Self { peer: self.peer }
            }
        }
        impl<const N: usize> Clone for ApplyOp<'_, N> {
            fn clone(&self) -> Self {
                Self {
                    addr: self.addr,
                    u: self.u,
                    offset: self.offset,
                    total: self.total,
                }
            }
        }

        proptest! {
            #[test]
            fn packed_and_split_lists_behave_the_same(ops in proptest::collection::vec(op(), 1..400)) {
                let mut b = Both {
                    packed: Vec::new(),
                    split: Split::default(),
                    seeders: [0, 0],
                    index: (None, None),
                };
                let mut epoch = 1000u32;
                for op in ops {
                    match op {
                        Op::Announce { port, left, event, expiry } => {
                            let ev = [Event::None, Event::Completed, Event::Started, Event::Stopped][event as usize];
                            let u = upd(v4(10, 0, 0, 1), port, left, ev);
                            let total = b.packed.len();
                            let (x, y) = b.run(ApplyOp { addr: compact_v4(std::net::Ipv4Addr::new(10, 0, 0, 1), port), u: &u, offset: expiry & OFFSET_MASK, total });
                            prop_assert_eq!(x, y);
                        }
                        Op::Purge { now } => {
                            let (x, y) = b.run(PurgeOp { now: epoch + u32::from(now), epoch });
                            prop_assert_eq!(x, y);
                        }
                        Op::Rebase { by } => {
                            b.run(RebaseOp { old: epoch, new: epoch + u32::from(by) });
                            epoch += u32::from(by);
                        }
                        Op::Put { port, expiry } => {
                            let mut peer = Peer { addr: compact_v4(std::net::Ipv4Addr::new(10, 0, 0, 2), port), peer_id: [9; 20], meta: [0; 2] };
                            peer.set_meta(SEEDER, expiry);
                            let (x, y) = b.run(PutOp { peer });
                            prop_assert_eq!(x, y);
                        }
                    }
                    prop_assert_eq!(b.packed.len(), PeerList::len(&b.split));
                    for i in 0..b.packed.len() {
                        prop_assert_eq!(b.packed[i], b.split.get(i));
                    }
                    prop_assert_eq!(b.seeders[0], b.seeders[1]);
                    let seeders = b.packed.iter().filter(|p| p.is_seeder()).count() as u32;
                    prop_assert_eq!(b.seeders[0], seeders);
                    prop_assert_eq!(b.index.0.is_some(), b.index.1.is_some());
                    let l = ListMut { peers: &mut b.split, seeders: &mut b.seeders[1], index: &mut b.index.1 };
                    for i in 0..PeerList::len(&*l.peers) {
                        let addr = *l.peers.addr(i);
                        prop_assert_eq!(l.find(&addr), Some(i));
                    }
                    let l = ListMut { peers: &mut b.packed, seeders: &mut b.seeders[0], index: &mut b.index.0 };
                    for i in 0..PeerList::len(&*l.peers) {
                        let addr = *l.peers.addr(i);
                        prop_assert_eq!(l.find(&addr), Some(i));
                    }
                    for start in [0, 7, 31] {
                        let (mut r1, mut r2) = (Vec::new(), Vec::new());
                        let now = epoch + 500;
                        let w = Walk { start, want: 30, skip: Some(3), leechers_only: start == 7, with_ids: true, now, epoch };
                        select(b.packed.as_slice(), w, |a, id| r1.push((*a, *id)));
                        select(&b.split, w, |a, id| r2.push((*a, *id)));
                        prop_assert_eq!(r1, r2);
                    }
                }
            }
        }
    }
}
#[cfg(test)]
mod ext_layout {
    use super::*;
    use std::mem::{align_of, offset_of, size_of};

    /// The field placement `SwarmExt`'s doc promises: what an IPv4 announce in a large swarm
    /// reads sits in lines 0 to 2.
    #[test]
    fn an_ipv4_announce_reads_three_lines_of_the_extension() {
        let line = |off: usize| off / 64;
        assert_eq!(align_of::<SwarmExt>(), 64);
        assert_eq!(size_of::<Split<6>>(), 48);
        assert_eq!(line(offset_of!(SwarmExt, v4_large)), 0);
        assert_eq!(
            line(offset_of!(SwarmExt, v4_large) + size_of::<Split<6>>() - 1),
            0
        );
        assert_eq!(line(offset_of!(SwarmExt, v6_seeders)), 0);
        assert_eq!(offset_of!(SwarmExt, v4_index), 64);
        assert_eq!(size_of::<Option<Index<6>>>(), 64);
        assert_eq!(offset_of!(SwarmExt, v6), 128);
        assert_eq!(size_of::<SwarmExt>(), 320);
    }
}
