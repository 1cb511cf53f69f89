//! One torrent's swarm: its peers per address family, counters and index entry.
//!
//! Where each part lives: this file holds the swarm record, where each family's list lives and
//! purge and re-basing; `ops.rs` the announce rules (insert, update, remove, completed counting)
//! as operations run on a list; `peer.rs` the 28-byte record and its meta bits; `list.rs` the
//! list layouts (with and without peer ids) and the view the rules change them through;
//! `index.rs` the hash index of large lists; `select.rs` which peers a reply gets. What protocol crates see of peers is [`crate::sink`].
//!
//! # Layout (why it looks like this)
//!
//! Most swarms are small (a handful of peers) and most peers are IPv4, so the common case is
//! kept inline and tight; everything rarer sits behind one optional boxed `SwarmExt`:
//!
//! ```text
//! Swarm (32 bytes, 4-byte aligned, stored in the map next to its 20-byte key: 52-byte entries)
//!   v4: InlineBytes            up to 32 packed 28-byte records, exactly sized (8-byte
//!                              `Hot` records when peer ids are not kept, see `NO_IDS`;
//!                              larger IPv4 lists move to the extension, split, see below);
//!                              a pointer and a u16 length, 10 bytes (`inline.rs`)
//!   v4_seeders, downloaded, epoch: u32
//!   next_purge: u16            an offset from `epoch`, like the peers' expiries
//!   ext: PackedBox<SwarmExt>   IPv6 peers, large IPv4 lists, hash indexes of large lists,
//!                              index entry (name, size); an `Option<Box>`, 4-byte aligned
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
//! A list with at most `INDEX_THRESHOLD` (64) peers is searched linearly (a few cache lines);
//! a larger one gets a hash index `addr -> position` so that an update is O(1) however big the
//! swarm is. Removal is `swap_remove` plus one index fix-up.
//!
//! # Expiry
//!
//! `next_purge` is a lower bound of every peer's expiry. Whenever the clock has reached it, the
//! swarm is purged (expired peers dropped, counters recomputed) before it is read or changed,
//! so counts and replies never depend on when the background sweep last ran. Read-only paths
//! (scrape) that find `now >= next_purge` count live peers instead of trusting the counters.

use std::net::IpAddr;
#[cfg(test)]
use std::net::Ipv4Addr;
#[cfg(test)]
use std::net::Ipv6Addr;

use crate::sink::{PeerSink, PeerView};
use crate::types::{
    Event, NO_PEER_ID, PeerStatus, compact_v4, compact_v6, socket_from_v4, socket_from_v6,
};

mod index;
mod inline;
mod list;
mod ops;
mod peer;
mod remote;
mod select;
#[cfg(test)]
mod tests;

use index::Index;
use inline::{INLINE_MAX, InlineBytes, PackedBox};
use list::{
    EXACT_GROWTH_UNTIL, Hot, Large, ListMut, ListRef, Packed, PeerList, Record, Split, records,
};
use ops::{ApplyOp, ListOp, PurgeOp, PutOp, RebaseOp};
pub use peer::MAX_PEER_TIMEOUT;
use peer::{COMPLETED, OFFSET_MASK, Peer, SEEDER};
use select::{Walk, pick_start, select_in};

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
    /// Puts the IPv6 list at the start of line 2 (the index is 32 bytes).
    _pad2: [u8; 32],
    v6: Split<18>,
    v6_index: Option<Index<18>>,
    pub(crate) meta: Option<IndexMeta>,
}

/// Bit 31 of `Swarm::v4_seeders`: this swarm keeps no peer ids (`[swarm] keep_peer_ids =
/// false`): its lists hold `Hot` records (address and meta, 8 bytes per IPv4 peer). Set from the
/// tracker's setting whenever the swarm is empty, so it never changes under stored peers. Kept
/// in a spare bit (a swarm never has 2^31 seeders) so the swarm stays 32 bytes.
const NO_IDS: u32 = 1 << 31;

/// `Swarm::next_purge` when the swarm has no peers.
const NEVER: u16 = u16::MAX;

// The largest inline list (`EXACT_GROWTH_UNTIL` records of the larger kind) fits an
// `InlineBytes`, so moving a list inline never fails.
const _: () = assert!(EXACT_GROWTH_UNTIL * std::mem::size_of::<Peer<6>>() <= INLINE_MAX);

/// One torrent.
#[derive(Debug)]
pub(crate) struct Swarm {
    /// The IPv4 list while it is small (exactly sized: no capacity word, no slack): packed
    /// `Peer<6>` records (28 bytes), or `Hot<6>` (8 bytes) when the swarm keeps no peer ids.
    /// A pointer and a `u16` length, 2-byte aligned (`inline.rs`).
    v4: InlineBytes,
    /// IPv4 seeders in bits 0-30, [`NO_IDS`] in bit 31.
    v4_seeders: u32,
    pub(crate) downloaded: u32,
    /// A lower bound of every stored peer's expiry, as an offset from `epoch` like the peers'
    /// own ([`NEVER`] when empty); read and written through `next_purge()` and
    /// `set_next_purge()`, which convert from and to unix seconds.
    next_purge: u16,
    /// Peers' expiries are stored as offsets from this (unix seconds).
    epoch: u32,
    /// `Option<Box<SwarmExt>>`, 4-byte aligned (`inline.rs`).
    pub(crate) ext: PackedBox<SwarmExt>,
}

impl Default for Swarm {
    fn default() -> Self {
        Self {
            v4: InlineBytes::new(),
            v4_seeders: 0,
            downloaded: 0,
            next_purge: NEVER,
            epoch: 0,
            ext: PackedBox::none(),
        }
    }
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
    /// `[swarm] keep_peer_ids`: followed by a swarm whenever it is empty.
    pub keep_ids: bool,
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
    /// The announcer is a seeder now.
    pub seeder: bool,
    /// The announcer's completed download has been counted (now or before).
    pub completed: bool,
    /// This announce counted a completed download.
    pub counted: bool,
}

impl Swarm {
    fn ext(&mut self) -> &mut SwarmExt {
        self.ext.get_or_insert_with(Box::default)
    }

    /// Whether this swarm stores peer ids (see [`NO_IDS`]).
    #[inline]
    fn keeps_ids(&self) -> bool {
        self.v4_seeders & NO_IDS == 0
    }

    /// Follows the tracker's `keep_peer_ids` while the swarm is empty (never under stored peers).
    fn set_keep_ids(&mut self, keep: bool) {
        if self.len() == 0 {
            self.v4_seeders = if keep { 0 } else { NO_IDS };
        }
    }

    /// Runs `op` on the IPv4 list, wherever it lives (packed in the inline exact-size box while
    /// small, in the extension when large: split, or the hot half alone without peer ids), and
    /// puts it back in the right home and layout afterwards (converting only when it crosses
    /// `EXACT_GROWTH_UNTIL`).
    fn with_v4<O: ListOp<6>>(&mut self, op: O) -> O::Out {
        fn split(e: &mut SwarmExt) -> (&mut Split<6>, &mut Option<Index<6>>) {
            (&mut e.v4_large, &mut e.v4_index)
        }
        fn hot(e: &mut SwarmExt) -> (&mut Vec<Hot<6>>, &mut Option<Index<6>>) {
            (&mut e.v4_large.hot, &mut e.v4_index)
        }
        match self.keeps_ids() {
            true => self.v4_in::<Peer<6>, _, O>(op, split),
            false => self.v4_in::<Hot<6>, _, O>(op, hot),
        }
    }

    /// [`Self::with_v4`] for one record type `R` and its large home `L` (found by `home`).
    fn v4_in<R: Record<6>, L: Large<6, R>, O: ListOp<6>>(
        &mut self,
        op: O,
        home: fn(&mut SwarmExt) -> (&mut L, &mut Option<Index<6>>),
    ) -> O::Out {
        let flag = self.v4_seeders & NO_IDS;
        let mut seeders = self.v4_seeders & !NO_IDS;
        if let Some(e) = self.ext.as_deref_mut() {
            let (large, index) = home(e);
            if !large.is_empty() {
                let r = op.run(&mut ListMut {
                    peers: large,
                    seeders: &mut seeders,
                    index,
                });
                if large.len() <= EXACT_GROWTH_UNTIL
                    && let Ok(bytes) = InlineBytes::from_vec(large.to_bytes())
                {
                    self.v4 = bytes;
                    large.clear();
                    *index = None;
                }
                self.v4_seeders = seeders | flag;
                return r;
            }
        }
        let mut peers = Packed::<R>::from_bytes(self.v4.take());
        // A list this small never has an index (INDEX_THRESHOLD is above EXACT_GROWTH_UNTIL).
        let mut index = None;
        let r = op.run(&mut ListMut {
            peers: &mut peers,
            seeders: &mut seeders,
            index: &mut index,
        });
        self.v4_seeders = seeders | flag;
        let peers = match peers.len() <= EXACT_GROWTH_UNTIL {
            // No reallocation when the bytes are exactly full, which growth keeps them while
            // small. (`from_vec` never gives them back here: see the assertion at `NEVER`.)
            true => match InlineBytes::from_vec(peers.into_bytes()) {
                Ok(bytes) => {
                    self.v4 = bytes;
                    return r;
                }
                Err(bytes) => Packed::<R>::from_bytes(bytes),
            },
            false => peers,
        };
        let (large, ix) = home(self.ext());
        *large = L::from_records(peers.recs());
        *ix = index;
        r
    }

    fn v4(&self) -> ListRef<'_, 6> {
        match self.ext.as_deref() {
            Some(e) if !e.v4_large.is_empty() => match self.keeps_ids() {
                true => ListRef::Split(&e.v4_large),
                false => ListRef::Hot(&e.v4_large.hot),
            },
            _ => match self.keeps_ids() {
                true => ListRef::Packed(records(self.v4.as_slice())),
                false => ListRef::Hot(records(self.v4.as_slice())),
            },
        }
    }

    /// Runs `op` on the IPv6 list, creating the extension if needed.
    fn with_v6<O: ListOp<18>>(&mut self, op: O) -> O::Out {
        let ids = self.keeps_ids();
        let e = self.ext();
        match ids {
            true => op.run(&mut ListMut {
                peers: &mut e.v6,
                seeders: &mut e.v6_seeders,
                index: &mut e.v6_index,
            }),
            false => op.run(&mut ListMut {
                peers: &mut e.v6.hot,
                seeders: &mut e.v6_seeders,
                index: &mut e.v6_index,
            }),
        }
    }

    fn v6(&self) -> ListRef<'_, 18> {
        match self.ext.as_deref() {
            Some(e) if self.keeps_ids() => ListRef::Split(&e.v6),
            Some(e) => ListRef::Hot(&e.v6.hot),
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
        self.ext.as_deref().and_then(|e| e.meta.as_ref())
    }

    pub(crate) fn set_meta(&mut self, meta: Option<IndexMeta>) {
        if meta.is_some() || self.ext.is_some() {
            self.ext().meta = meta;
        }
        self.drop_empty_ext();
    }

    fn drop_empty_ext(&mut self) {
        if let Some(e) = self.ext.as_deref() {
            if e.v6.is_empty() && e.meta.is_none() && e.v4_index.is_none() && e.v4_large.is_empty()
            {
                self.ext.clear();
            }
        }
    }

    /// Purges expired peers if any may have expired. Returns the number removed. Afterwards
    /// every stored peer's expiry is after `now`.
    pub(crate) fn purge_if_due(&mut self, now: u32) -> usize {
        if now < self.next_purge() {
            return 0;
        }
        let epoch = self.epoch;
        let (r4, min4) = self.with_v4(PurgeOp { now, epoch });
        let (r6, min6) = match self.ext.is_some() {
            true => self.with_v6(PurgeOp { now, epoch }),
            false => (0, u32::MAX),
        };
        self.set_next_purge(min4.min(min6));
        self.drop_empty_ext();
        r4 + r6
    }

    /// `next_purge` in unix seconds (`u32::MAX`: no peers).
    #[inline]
    fn next_purge(&self) -> u32 {
        match self.next_purge {
            NEVER => u32::MAX,
            off => self.epoch.saturating_add(u32::from(off)),
        }
    }

    /// Stores `at` (unix seconds, `u32::MAX` for none) as `next_purge`. It stays a lower bound
    /// of every peer's expiry: a time before `epoch` is stored as `epoch` (no stored expiry is
    /// earlier: peers' offsets are unsigned), one beyond the `u16` range as the range's end,
    /// lower than asked (a stored expiry is at most `OFFSET_MASK` after `epoch`, so neither
    /// happens with a real expiry).
    fn set_next_purge(&mut self, at: u32) {
        self.next_purge = match at {
            u32::MAX => NEVER,
            at => at.saturating_sub(self.epoch).min(u32::from(NEVER - 1)) as u16,
        };
    }

    /// Lowers `next_purge` to a new peer's expiry offset (same epoch).
    #[inline]
    fn note_expiry(&mut self, offset: u16) {
        self.next_purge = self.next_purge.min(offset);
    }

    /// Moves the epoch, keeping `next_purge` at the same time.
    fn set_epoch(&mut self, epoch: u32) {
        let at = self.next_purge();
        self.epoch = epoch;
        self.set_next_purge(at);
    }

    /// The offset of `expiry` from the epoch, re-basing the swarm first if it does not fit.
    /// Call after [`Self::purge_if_due`], so that every stored peer is alive at `now`.
    fn offset_for(&mut self, expiry: u32, now: u32) -> u16 {
        if self.len() == 0 {
            self.set_epoch(now);
        } else if expiry < self.epoch || expiry - self.epoch > u32::from(OFFSET_MASK) {
            let old = self.epoch;
            self.with_v4(RebaseOp { old, new: now });
            if self.ext.is_some() {
                self.with_v6(RebaseOp { old, new: now });
            }
            self.set_epoch(now);
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
        if now < self.next_purge() {
            let s4 = self.v4_seeders & !NO_IDS;
            let s6 = self.ext.as_deref().map_or(0, |e| e.v6_seeders);
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
        if total == 0 {
            self.set_keep_ids(u.keep_ids);
        }
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
        let (stored, own_pos, seeder, count, completed, is_v4) = match u.ip {
            IpAddr::V4(ip) => {
                let addr = compact_v4(ip, u.port);
                let (st, pos, seeder, count, done) = self.with_v4(ApplyOp {
                    addr,
                    u,
                    offset,
                    total,
                });
                (st, pos, seeder, count, done, true)
            }
            IpAddr::V6(_) if u.event == Event::Stopped && self.ext.is_none() => {
                (Stored::Removed, None, u.left == 0, false, false, false)
            }
            IpAddr::V6(ip) => {
                let addr = compact_v6(ip, u.port);
                let (st, pos, seeder, count, done) = self.with_v6(ApplyOp {
                    addr,
                    u,
                    offset,
                    total,
                });
                (st, pos, seeder, count, done, false)
            }
        };
        if count {
            self.downloaded = self.downloaded.saturating_add(1);
        }
        if stored == Stored::Stored {
            self.note_expiry(offset);
        }
        let (seeders, leechers) = self.live_counts(now);
        let mut reply = SwarmReply {
            seeders,
            leechers,
            downloaded: self.downloaded,
            seeder,
            completed,
            counted: count,
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
        let ids = self.keeps_ids();
        let v4 = self
            .v4()
            .iter()
            .filter(move |p| p.alive(now, epoch))
            .map(move |p| p.view(epoch, socket_from_v4(&p.addr), ids));
        let v6 = self
            .v6()
            .iter()
            .filter(move |p| p.alive(now, epoch))
            .map(move |p| p.view(epoch, socket_from_v6(&p.addr), ids));
        v4.chain(v6)
    }

    /// Puts a peer back from a snapshot (no counting; limits still apply; the expiry is capped
    /// at `now + MAX_PEER_TIMEOUT`; a peer without an id gets zeros if ids are kept, and ids
    /// are dropped if not). Returns whether it was stored.
    pub(crate) fn restore(
        &mut self,
        p: &PeerView,
        now: u32,
        max_peers: usize,
        keep_ids: bool,
    ) -> bool {
        self.purge_if_due(now);
        if self.len() >= max_peers || p.expiry <= now {
            return false;
        }
        self.set_keep_ids(keep_ids);
        let peer_id = p.peer_id.map_or(NO_PEER_ID, |id| id.0);
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
                    peer_id,
                    meta,
                },
            }),
            IpAddr::V6(ip) => self.with_v6(PutOp {
                peer: Peer {
                    addr: compact_v6(ip, port),
                    peer_id,
                    meta,
                },
            }),
        };
        if stored {
            self.note_expiry(offset);
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
