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
//!                              (larger IPv4 lists move to a growable Vec in the extension)
//!   v4_seeders, downloaded, next_purge, epoch: u32
//!   ext: Option<Box<SwarmExt>> IPv6 peers, hash indexes of large lists, index entry (name, size)
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
    fn offset(&self) -> u32 {
        u32::from(self.meta() & OFFSET_MASK)
    }
    #[inline]
    fn expiry(&self, epoch: u32) -> u32 {
        epoch.saturating_add(self.offset())
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

#[derive(Debug, Default)]
pub(crate) struct SwarmExt {
    /// The IPv4 list when it has more than `EXACT_GROWTH_UNTIL` peers (else `Swarm::v4`).
    v4_large: Vec<Peer<6>>,
    v6: Vec<Peer<18>>,
    v6_seeders: u32,
    v4_index: Option<Index<6>>,
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

/// Mutable view of one family's list, whatever the family.
struct ListMut<'a, const N: usize> {
    peers: &'a mut Vec<Peer<N>>,
    seeders: &'a mut u32,
    index: &'a mut Option<Index<N>>,
}

impl<const N: usize> ListMut<'_, N> {
    fn find(&self, addr: &[u8; N]) -> Option<usize> {
        match self.index.as_ref() {
            Some(ix) => {
                let peers = &*self.peers;
                ix.table
                    .find(ix.hash(addr), |&i| peers[i as usize].addr == *addr)
                    .map(|&i| i as usize)
            }
            None => self.peers.iter().position(|p| &p.addr == addr),
        }
    }

    fn push(&mut self, peer: Peer<N>) {
        let len = self.peers.len();
        if len == self.peers.capacity() {
            if len < EXACT_GROWTH_UNTIL {
                self.peers.reserve_exact(1);
            } else {
                self.peers.reserve(1);
            }
        }
        if peer.is_seeder() {
            *self.seeders += 1;
        }
        self.peers.push(peer);
        match self.index.as_mut() {
            Some(ix) => {
                let (hasher, peers) = (&ix.hasher, &*self.peers);
                ix.table
                    .insert_unique(hasher.hash_one(peer.addr), len as u32, |&i| {
                        hasher.hash_one(peers[i as usize].addr)
                    });
            }
            None if self.peers.len() > INDEX_THRESHOLD => {
                *self.index = Some(build_index(self.peers));
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
            if let Some(moved) = self.peers.get(pos) {
                // The former last peer now sits at `pos`.
                if let Some(slot) = ix
                    .table
                    .find_mut(ix.hasher.hash_one(moved.addr), |&i| i == last)
                {
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
        self.peers.retain(|p| p.alive(now, epoch));
        let removed = before - self.peers.len();
        let mut seeders = 0;
        let mut min = u32::MAX;
        for p in self.peers.iter() {
            seeders += u32::from(p.is_seeder());
            min = min.min(p.expiry(epoch));
        }
        *self.seeders = seeders;
        if removed > 0 {
            *self.index = (self.peers.len() > INDEX_THRESHOLD).then(|| build_index(self.peers));
        }
        (removed, min)
    }

    /// Re-expresses every offset relative to `new_epoch` (expired ones become 0).
    fn rebase(&mut self, old_epoch: u32, new_epoch: u32) {
        for p in self.peers.iter_mut() {
            let off = p
                .expiry(old_epoch)
                .saturating_sub(new_epoch)
                .min(u32::from(OFFSET_MASK));
            let flags = p.meta() & !OFFSET_MASK;
            p.set_meta(flags, off as u16);
        }
    }
}

/// Releases memory when a growable list is far below its capacity.
fn shrink_if_sparse<T>(v: &mut Vec<T>) {
    let (len, cap) = (v.len(), v.capacity());
    if cap > 2 * len + 4 {
        v.shrink_to(len + len / 4);
    }
}

fn build_index<const N: usize>(peers: &[Peer<N>]) -> Index<N> {
    let hasher = ahash::RandomState::new();
    let mut table = hashbrown::HashTable::with_capacity(peers.len() + peers.len() / 4);
    for (i, p) in peers.iter().enumerate() {
        table.insert_unique(hasher.hash_one(p.addr), i as u32, |&j| {
            hasher.hash_one(peers[j as usize].addr)
        });
    }
    PosIndex { table, hasher }
}

/// Applies one announce to a list: insert, update or remove the announcer. `offset` is the
/// announcer's new expiry relative to the swarm's epoch. Returns what happened, the announcer's
/// position (to exclude it from the reply), whether it is a seeder now, and whether a completed
/// download must be counted.
fn apply<const N: usize>(
    list: &mut ListMut<'_, N>,
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
            let p = &mut list.peers[pos];
            let was_seeder = p.is_seeder();
            let already = p.completed();
            // Counted once per peer per torrent: an explicit `completed` with left=0, or the
            // first time a known leecher shows up as a seeder.
            let count = !already && seeder && (u.event == Event::Completed || !was_seeder);
            p.peer_id = u.peer_id;
            p.set_meta(flags | if already || count { COMPLETED } else { 0 }, offset);
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

/// Most cache lines of a reply window prefetched ahead (16 lines hold 36 IPv4 peers).
const WINDOW_PREFETCH_LINES: usize = 16;

/// Prefetches the peers a walk from `start` will read first (see [`select`]), so that their
/// misses overlap with the announcer's own lookup instead of following it.
fn prefetch_window<const N: usize>(peers: &[Peer<N>], start: usize, want: usize) {
    let Some(first) = peers.get(start..) else {
        return;
    };
    let size = std::mem::size_of::<Peer<N>>();
    let bytes = first.len().min(want) * size;
    crate::prefetch::lines(first.as_ptr() as usize, bytes, WINDOW_PREFETCH_LINES);
    let rest = want.saturating_sub(first.len()).min(start);
    if rest > 0 {
        crate::prefetch::lines(peers.as_ptr() as usize, rest * size, WINDOW_PREFETCH_LINES);
    }
}

/// Writes up to `want` live peers of `peers` to `emit`, never the one at `skip`, only leechers
/// when `leechers_only`. Starts at `start` (from [`pick_start`]) and wraps around, so the cost
/// is O(want) unless most peers are filtered out.
#[allow(clippy::too_many_arguments)]
fn select<const N: usize>(
    peers: &[Peer<N>],
    start: usize,
    epoch: u32,
    skip: Option<usize>,
    now: u32,
    leechers_only: bool,
    want: usize,
    mut emit: impl FnMut(&Peer<N>),
) -> usize {
    let len = peers.len();
    if want == 0 || len == 0 {
        return 0;
    }
    let start = if start < len { start } else { 0 };
    let mut n = 0;
    let (tail, head) = peers.split_at(start);
    let wrapped = head
        .iter()
        .enumerate()
        .map(|(i, p)| (i + start, p))
        .chain(tail.iter().enumerate());
    for (i, p) in wrapped {
        if Some(i) == skip || !p.alive(now, epoch) || (leechers_only && p.is_seeder()) {
            continue;
        }
        emit(p);
        n += 1;
        if n == want {
            break;
        }
    }
    n
}

impl Swarm {
    fn ext(&mut self) -> &mut SwarmExt {
        self.ext.get_or_insert_with(Box::default)
    }

    /// Runs `f` on the IPv4 list, wherever it lives (the inline exact-size box while small,
    /// the extension's Vec when large), and puts it back in the right home afterwards.
    fn with_v4<R>(&mut self, f: impl FnOnce(&mut ListMut<'_, 6>) -> R) -> R {
        let (mut peers, mut index) = match self.ext.as_deref_mut() {
            Some(e) if !e.v4_large.is_empty() => {
                (std::mem::take(&mut e.v4_large), e.v4_index.take())
            }
            Some(e) => (std::mem::take(&mut self.v4).into_vec(), e.v4_index.take()),
            None => (std::mem::take(&mut self.v4).into_vec(), None),
        };
        let r = f(&mut ListMut {
            peers: &mut peers,
            seeders: &mut self.v4_seeders,
            index: &mut index,
        });
        if peers.len() > EXACT_GROWTH_UNTIL {
            self.ext().v4_large = peers;
        } else {
            // No reallocation when the Vec is exactly full, which growth keeps it while small.
            self.v4 = peers.into_boxed_slice();
        }
        if index.is_some() {
            self.ext().v4_index = index;
        }
        r
    }

    fn v4(&self) -> &[Peer<6>] {
        match self.ext.as_deref() {
            Some(e) if !e.v4_large.is_empty() => &e.v4_large,
            _ => &self.v4,
        }
    }

    /// Runs `f` on the IPv6 list, creating the extension if needed.
    fn with_v6<R>(&mut self, f: impl FnOnce(&mut ListMut<'_, 18>) -> R) -> R {
        let e = self.ext();
        f(&mut ListMut {
            peers: &mut e.v6,
            seeders: &mut e.v6_seeders,
            index: &mut e.v6_index,
        })
    }

    fn v6(&self) -> &[Peer<18>] {
        self.ext.as_ref().map_or(&[], |e| e.v6.as_slice())
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
        let (r4, min4) = self.with_v4(|l| l.purge(now, epoch));
        let (r6, min6) = match self.ext.is_some() {
            true => self.with_v6(|l| l.purge(now, epoch)),
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
            self.with_v4(|l| l.rebase(old, now));
            if self.ext.is_some() {
                self.with_v6(|l| l.rebase(old, now));
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
            shrink_if_sparse(&mut e.v4_large);
            shrink_if_sparse(&mut e.v6);
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
        fn count<const N: usize>(peers: &[Peer<N>], now: u32, epoch: u32) -> (u32, u32) {
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
            (_, IpAddr::V4(_)) => {
                let peers = self.v4();
                let start = pick_start(peers.len(), u.want);
                prefetch_window(peers, start, u.want);
                start
            }
            (_, IpAddr::V6(_)) => {
                let peers = self.v6();
                let start = pick_start(peers.len(), u.want);
                prefetch_window(peers, start, u.want);
                start
            }
        };
        let (stored, own_pos, seeder, count, is_v4) = match u.ip {
            IpAddr::V4(ip) => {
                let addr = compact_v4(ip, u.port);
                let (st, pos, seeder, count) = self.with_v4(|l| apply(l, addr, u, offset, total));
                (st, pos, seeder, count, true)
            }
            IpAddr::V6(_) if u.event == Event::Stopped && self.ext.is_none() => {
                (Stored::Removed, None, u.left == 0, false, false)
            }
            IpAddr::V6(ip) => {
                let addr = compact_v6(ip, u.port);
                let (st, pos, seeder, count) = self.with_v6(|l| apply(l, addr, u, offset, total));
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
        let (skip4, skip6) = if is_v4 {
            (own_pos, None)
        } else {
            (None, own_pos)
        };
        // Written out per family (not through closures) so the sink stays a generic, not a
        // `dyn`, and every push is inlined.
        let (n4, n6);
        if is_v4 {
            n4 = select(v4, own_start, epoch, skip4, now, seeder, u.want, |p| {
                sink.push_v4(&p.addr, &p.peer_id)
            });
            n6 = match u.both_families {
                true => {
                    let start = pick_start(v6.len(), u.want - n4);
                    select(v6, start, epoch, skip6, now, seeder, u.want - n4, |p| {
                        sink.push_v6(&p.addr, &p.peer_id)
                    })
                }
                false => 0,
            };
        } else {
            n6 = select(v6, own_start, epoch, skip6, now, seeder, u.want, |p| {
                sink.push_v6(&p.addr, &p.peer_id)
            });
            n4 = match u.both_families {
                true => {
                    let start = pick_start(v4.len(), u.want - n6);
                    select(v4, start, epoch, skip4, now, seeder, u.want - n6, |p| {
                        sink.push_v4(&p.addr, &p.peer_id)
                    })
                }
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
        fn put<const N: usize>(
            l: &mut ListMut<'_, N>,
            addr: [u8; N],
            p: &PeerView,
            flags: u16,
            offset: u16,
        ) -> bool {
            if l.find(&addr).is_some() {
                return false;
            }
            let mut peer = Peer {
                addr,
                peer_id: p.peer_id.0,
                meta: [0; 2],
            };
            peer.set_meta(flags, offset);
            l.push(peer);
            true
        }
        let stored = match crate::types::canonical_ip(p.addr.ip()) {
            IpAddr::V4(ip) => self.with_v4(|l| put(l, compact_v4(ip, port), p, flags, offset)),
            IpAddr::V6(ip) => self.with_v6(|l| put(l, compact_v6(ip, port), p, flags, offset)),
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
}
