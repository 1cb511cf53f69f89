//! The swarm store and the operations both protocols call: announce, scrape, sweep, and the
//! torrent index.
//!
//! # Locking
//!
//! Swarms live in one `DashMap` with an explicit shard count and a keyed hasher (info hashes
//! are chosen by clients, so an unkeyed hash would let anyone aim every torrent at one shard).
//! Every operation on one torrent takes exactly one shard lock, through dashmap's `entry` /
//! `get` / `remove_if_mut` (the announce goes through the raw API, `shards()`, to the same
//! shard with the same hash, see [`Tracker::announce`]), and releases it before returning: no
//! `Ref` or `RefMut` leaves this crate, and no map call is made while one is held. Whole-map
//! walks (sweep through `retain`, snapshot, index listing) take one shard lock at a time.
//!
//! [`Tracker::prefetch_announce`] takes no lock at all: it reads a per-shard hint of where the
//! table lives (published under the lock by announces) and only issues prefetch instructions.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use dashmap::mapref::entry::Entry;
use dashmap::{DashMap, SharedValue};

use crate::access::{Access, AccessError};
use crate::clock::Clock;
use crate::config::CoreConfig;
use crate::limits::Limiter;
use crate::stats::Stats;
use crate::swarm::{
    IndexMeta, MAX_PEER_TIMEOUT, PeerSink, PeerView, Stored, Swarm, SwarmReply, Update,
};
use crate::types::{Event, InfoHash, PeerId, PeerStatus, canonical_ip};

/// One announce, after the protocol crate has parsed and validated its own syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnounceRequest {
    /// The torrent.
    pub info_hash: InfoHash,
    /// The client's peer id (an attribute, not its identity).
    pub peer_id: PeerId,
    /// The client's address as the tracker sees it (socket address, or resolved through trusted
    /// proxies). v4-mapped IPv6 is canonicalised here.
    pub ip: IpAddr,
    /// The port the client listens on.
    pub port: u16,
    /// started / completed / stopped / none.
    pub event: Event,
    /// Bytes left to download; 0 means seeder.
    pub left: u64,
    /// Peers wanted; `None` for "not given" or negative, which means the configured default.
    pub numwant: Option<u32>,
    /// The protocol's cap on peers in one reply (HTTP `max_numwant`; UDP 200 for v4, 66 for v6).
    pub max_peers: u32,
    /// Whether the reply carries both families (HTTP `peers` + `peers6`) or only the
    /// requester's (UDP, where 6- and 18-byte entries are never mixed).
    pub both_families: bool,
}

/// What an announce answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnounceOutcome {
    /// Live seeders, both families.
    pub seeders: u32,
    /// Live leechers, both families.
    pub leechers: u32,
    /// Completed downloads counted for this torrent.
    pub downloaded: u32,
    /// Seconds until the next announce, with jitter.
    pub interval: u32,
    /// Minimum seconds between announces.
    pub min_interval: u32,
    /// IPv4 peers written to the sink.
    pub peers_v4: u32,
    /// IPv6 peers written to the sink.
    pub peers_v6: u32,
    /// What happened to the announcer.
    pub stored: Stored,
}

/// The text a client is told for an announce with port 0, by both protocols.
pub const MSG_PORT_ZERO: &str = "invalid port: 0";

/// Announces the rules refuse. The message is what the client is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AnnounceError {
    /// Port 0 cannot be connected to.
    #[error("{}", MSG_PORT_ZERO)]
    PortZero,
    /// Refused by the access rules (whitelist, blacklist).
    #[error(transparent)]
    Access(#[from] AccessError),
}

/// Scrape counts of one torrent (zeros for an unknown one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScrapeCounts {
    /// Live seeders.
    pub seeders: u32,
    /// Live leechers.
    pub leechers: u32,
    /// Completed downloads counted.
    pub downloaded: u32,
}

/// What a sweep did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SweepReport {
    /// Expired peers dropped.
    pub peers_removed: usize,
    /// Empty, unindexed torrents dropped.
    pub torrents_removed: usize,
}

/// Live peers by family and role (a whole-map walk: for metrics, not per request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PeerCounts {
    /// Torrents held (with peers or indexed).
    pub torrents: usize,
    /// IPv4 seeders.
    pub v4_seeders: u64,
    /// IPv4 leechers.
    pub v4_leechers: u64,
    /// IPv6 seeders.
    pub v6_seeders: u64,
    /// IPv6 leechers.
    pub v6_leechers: u64,
}

impl PeerCounts {
    /// All peers.
    pub fn total(&self) -> u64 {
        self.v4_seeders + self.v4_leechers + self.v6_seeders + self.v6_leechers
    }
}

/// Errors of the torrent index.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    /// The info hash is indexed already.
    #[error("torrent {0} is already in the index")]
    Duplicate(InfoHash),
    /// The info hash is not indexed.
    #[error("torrent {0} is not in the index")]
    NotFound(InfoHash),
    /// The name is empty or too long.
    #[error("invalid torrent name: {0}")]
    BadName(&'static str),
}

/// An index entry with its swarm's current counts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TorrentSummary {
    /// Info hash (hex in JSON).
    pub info_hash: InfoHash,
    /// Display name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// RFC 3339, UTC.
    pub added_at: String,
    /// The truncated v2 hash of a hybrid torrent, which resolves to this entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info_hash_v2: Option<InfoHash>,
    /// Live seeders.
    pub seeders: u32,
    /// Live leechers.
    pub leechers: u32,
    /// Completed downloads.
    pub downloaded: u32,
}

/// One peer of a torrent, as operators see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PeerInfo {
    /// Peer id (hex in JSON).
    pub peer_id: PeerId,
    /// IP address.
    pub ip: IpAddr,
    /// Port.
    pub port: u16,
    /// seeding / leeching.
    pub status: PeerStatus,
    /// Seconds until it expires unless it announces again.
    pub expires_in: u32,
}

/// A torrent with its peers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TorrentDetail {
    /// The index entry and counts.
    #[serde(flatten)]
    pub summary: TorrentSummary,
    /// Every live peer.
    pub peers: Vec<PeerInfo>,
}

/// How to order an index listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortBy {
    /// By name, case-insensitively (ties by info hash).
    #[default]
    Name,
    /// Newest first.
    Added,
}

/// An index query: filter, order, page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexQuery {
    /// Case-insensitive name substring, or an info-hash hex prefix. Empty matches all.
    pub q: String,
    /// Order.
    pub sort: SortBy,
    /// 1-based page number.
    pub page: usize,
    /// Entries per page (at least 1).
    pub per_page: usize,
}

impl Default for IndexQuery {
    fn default() -> Self {
        Self {
            q: String::new(),
            sort: SortBy::Name,
            page: 1,
            per_page: 50,
        }
    }
}

/// One page of an index listing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IndexPage {
    /// Entries matching the query, all pages.
    pub total: usize,
    /// This page's number.
    pub page: usize,
    /// Entries per page.
    pub per_page: usize,
    /// This page.
    pub torrents: Vec<TorrentSummary>,
}

/// What re-reading the list files and the index directory did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReloadReport {
    /// Entries in the allow-list file.
    pub allow_file_entries: usize,
    /// Entries in the deny-list file.
    pub deny_file_entries: usize,
    /// Index entries added from new `.torrent` files.
    pub index_added: usize,
    /// Index entries removed because their file is gone.
    pub index_removed: usize,
    /// `.torrent` files that could not be used, with the reason (they are skipped).
    pub index_errors: Vec<String>,
}

/// Why reloading failed (nothing was changed by the failing part).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// A list file is unreadable or malformed.
    #[error(transparent)]
    Lists(#[from] crate::access::AccessListError),
    /// The index directory cannot be read.
    #[error("cannot read the index directory {path}: {source}")]
    IndexDir {
        /// The directory.
        path: std::path::PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Longest torrent name accepted in the index, in bytes.
pub const MAX_NAME_LEN: usize = 1024;

type SwarmMap = DashMap<InfoHash, Swarm, ahash::RandomState>;

/// The tracker's state: swarms, index, clock, counters.
#[derive(Debug)]
pub struct Tracker {
    config: CoreConfig,
    swarms: SwarmMap,
    /// Swarm records held; kept beside the map because `DashMap::len` locks every shard.
    torrents: AtomicUsize,
    clock: Clock,
    stats: Stats,
    /// Held by `snapshot::write` for a whole write: every writer uses the same `<path>.tmp`.
    pub(crate) snapshot_write: Mutex<()>,
    access: Access,
    /// Per-address request rates and bans (`[limits]`), asked once per request by both
    /// protocols.
    limiter: Limiter,
    /// v2 info hashes (truncated) of indexed hybrid torrents -> their v1 hash. Read lock-free
    /// on every announce and scrape; rebuilt on the rare index edit.
    aliases: ArcSwap<HashMap<InfoHash, InfoHash>>,
    has_aliases: std::sync::atomic::AtomicBool,
    /// Per shard: where its table's slots are, as last seen under the shard's lock, so that
    /// [`Tracker::prefetch_announce`] can aim a prefetch without taking a lock.
    hints: Box<[ShardHint]>,
}

/// Where a shard's hash table lives, published for prefetching only: `ctrl` is the address of
/// the table's control bytes (slots lie just below it, slot `i` at `ctrl - (i + 1) * slot`),
/// `mask` its slot count minus one. Written (relaxed) under the shard's write lock whenever an
/// announce sees a different value; read without a lock. A stale value only wastes a
/// prefetch: nothing is ever read through it.
#[derive(Debug, Default)]
struct ShardHint {
    ctrl: AtomicUsize,
    mask: AtomicUsize,
}

impl ShardHint {
    #[inline]
    fn update(&self, ctrl: usize, mask: usize) {
        if self.ctrl.load(Ordering::Relaxed) != ctrl {
            self.ctrl.store(ctrl, Ordering::Relaxed);
        }
        if self.mask.load(Ordering::Relaxed) != mask {
            self.mask.store(mask, Ordering::Relaxed);
        }
    }
}

impl Tracker {
    /// An empty tracker with a random connection-id key and the system clock.
    pub fn new(config: CoreConfig) -> Self {
        Self::with_clock(config, Clock::system())
    }

    /// An empty tracker on the given clock (tests pass [`Clock::manual`]).
    pub fn with_clock(mut config: CoreConfig, clock: Clock) -> Self {
        if config.peer_timeout > MAX_PEER_TIMEOUT {
            tracing::warn!(
                "peer_timeout {} s is above the supported {MAX_PEER_TIMEOUT} s; using {MAX_PEER_TIMEOUT} s",
                config.peer_timeout
            );
            config.peer_timeout = MAX_PEER_TIMEOUT;
        }
        let shards = config.shards.max(2).next_power_of_two();
        let swarms = DashMap::with_capacity_and_hasher_and_shard_amount(
            0,
            ahash::RandomState::new(),
            shards,
        );
        let hints = (0..swarms.shards().len())
            .map(|_| ShardHint::default())
            .collect();
        Self {
            access: Access::new(config.access.clone()),
            limiter: Limiter::new(&config.limits),
            aliases: ArcSwap::from_pointee(HashMap::new()),
            has_aliases: std::sync::atomic::AtomicBool::new(false),
            config,
            swarms,
            torrents: AtomicUsize::new(0),
            clock,
            stats: Stats::default(),
            snapshot_write: Mutex::new(()),
            hints,
        }
    }

    /// The settings it was built with.
    pub fn config(&self) -> &CoreConfig {
        &self.config
    }

    /// The coarse clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Access control (lists, passkeys).
    pub fn access(&self) -> &Access {
        &self.access
    }

    /// The per-address limiter.
    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }

    /// Checks a request's passkey (private mode); `Ok` when the tracker is not private.
    pub fn check_passkey(&self, key: Option<&[u8]>) -> Result<(), AccessError> {
        self.access.check_passkey(key, u64::from(self.clock.now()))
    }

    /// The torrent a hash stands for: a linked v2 hash resolves to its v1 hash.
    #[inline]
    pub fn resolve(&self, info_hash: &InfoHash) -> InfoHash {
        // One relaxed-cost flag read on the hot path while no hybrid torrent is indexed.
        if !self.has_aliases.load(Ordering::Acquire) {
            return *info_hash;
        }
        let aliases = self.aliases.load();
        if aliases.is_empty() {
            return *info_hash;
        }
        aliases.get(info_hash).copied().unwrap_or(*info_hash)
    }

    /// The statistics registry.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Torrents held (with peers, or indexed).
    pub fn torrent_count(&self) -> usize {
        self.torrents.load(Ordering::Relaxed)
    }

    fn interval(&self) -> u32 {
        let base = self.config.interval;
        let spread = base / 100 * self.config.interval_jitter_percent.min(100)
            + base % 100 * self.config.interval_jitter_percent.min(100) / 100;
        if spread == 0 {
            return base;
        }
        let lo = base - spread;
        (lo + crate::fast_rng::below(2 * spread as usize + 1) as u32).max(1)
    }

    /// The hash dashmap gives `info_hash` (its raw table is probed with the whole of it) and the
    /// shard it picks from that hash: where an announce looks, and so where a prefetch aims.
    #[inline]
    fn locate(&self, info_hash: &InfoHash) -> (u64, usize) {
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

    /// Applies one announce and writes the selected peers to `sink`. Takes one shard lock.
    pub fn announce(
        &self,
        req: &AnnounceRequest,
        now: u32,
        sink: &mut impl PeerSink,
    ) -> Result<AnnounceOutcome, AnnounceError> {
        if req.port == 0 {
            return Err(AnnounceError::PortZero);
        }
        let want = req
            .numwant
            .unwrap_or(self.config.default_numwant)
            .min(req.max_peers) as usize;
        let update = Update {
            ip: canonical_ip(req.ip),
            port: req.port,
            peer_id: req.peer_id.0,
            event: req.event,
            left: req.left,
            expiry: now.saturating_add(self.config.peer_timeout),
            want,
            both_families: req.both_families,
            max_peers: self.config.max_peers_per_swarm,
        };
        let info_hash = self.resolve(&req.info_hash);
        // Whitelist / blacklist: checked under the same shard lock that serves the announce
        // (being in the index is a field of the swarm record), so it costs no extra lock.
        // `indexed` is a closure so that open mode never reads the swarm's extension box (a cache
        // miss for large swarms) just to ignore the answer.
        let open = self.access.is_open();
        let check = |indexed: &dyn Fn() -> bool| match open {
            true => Ok(()),
            false => self.access.check_torrent(&info_hash, indexed()),
        };
        // The one shard lock of this announce, taken through dashmap's raw API (the same hash
        // and shard choice as its `entry`) so that the table's location can be published for
        // `prefetch_announce` while the lock is held anyway.
        let (hash, shard) = self.locate(&info_hash);
        let mut table = self.swarms.shards()[shard].write();
        let (stored, reply) = match table.get_mut(hash, |(k, _)| *k == info_hash) {
            Some((_, swarm)) => {
                let swarm = swarm.get_mut();
                check(&|| swarm.meta().is_some())?;
                swarm.announce(&update, now, sink)
            }
            // `stopped` never creates a torrent.
            None if req.event == Event::Stopped => {
                check(&|| false)?;
                (Stored::Removed, SwarmReply::default())
            }
            None => {
                check(&|| false)?;
                if self.torrents.load(Ordering::Relaxed) >= self.config.max_torrents {
                    (Stored::TorrentLimit, SwarmReply::default())
                } else {
                    self.torrents.fetch_add(1, Ordering::Relaxed);
                    let (_, swarm) = table.insert_entry(
                        hash,
                        (info_hash, SharedValue::new(Swarm::default())),
                        |(k, _)| self.swarms.hash_usize(k) as u64,
                    );
                    swarm.get_mut().announce(&update, now, sink)
                }
            }
        };
        // After a possible insert (which may have moved the table).
        self.hints[shard].update(table.data_end().as_ptr() as usize, table.buckets() - 1);
        drop(table);
        Ok(AnnounceOutcome {
            seeders: reply.seeders,
            leechers: reply.leechers,
            downloaded: reply.downloaded,
            interval: self.interval(),
            min_interval: self.config.min_interval,
            peers_v4: reply.peers_v4,
            peers_v6: reply.peers_v6,
            stored,
        })
    }

    /// Counts of one torrent; zeros when unknown. One shard read lock.
    /// A torrent the access rules refuse scrapes as unknown (zeros).
    pub fn scrape_one(&self, info_hash: &InfoHash, now: u32) -> ScrapeCounts {
        let info_hash = self.resolve(info_hash);
        let open = self.access.is_open();
        match self.swarms.get(&info_hash) {
            Some(s)
                if open
                    || self
                        .access
                        .check_torrent(&info_hash, s.meta().is_some())
                        .is_ok() =>
            {
                let (seeders, leechers) = s.live_counts(now);
                ScrapeCounts {
                    seeders,
                    leechers,
                    downloaded: s.downloaded,
                }
            }
            _ => ScrapeCounts::default(),
        }
    }

    /// Counts of each hash, in order, handed to `out` (no allocation).
    pub fn scrape(
        &self,
        hashes: &[InfoHash],
        now: u32,
        mut out: impl FnMut(&InfoHash, ScrapeCounts),
    ) {
        for h in hashes {
            out(h, self.scrape_one(h, now));
        }
    }

    /// Drops expired peers and torrents left with nothing, one shard lock at a time.
    pub fn sweep(&self, now: u32) -> SweepReport {
        let mut report = SweepReport::default();
        // `retain` write-locks one shard, walks it, and unlocks it before the next one, so
        // announces to other shards proceed meanwhile.
        self.swarms.retain(|_, swarm| {
            report.peers_removed += swarm.purge_if_due(now);
            swarm.maybe_shrink();
            let keep = !swarm.is_disposable();
            report.torrents_removed += usize::from(!keep);
            keep
        });
        self.torrents
            .fetch_sub(report.torrents_removed, Ordering::Relaxed);
        report
    }

    /// Live peers by family and role, and torrents held. Walks every shard (read locks).
    pub fn peer_counts(&self, now: u32) -> PeerCounts {
        let mut c = PeerCounts {
            torrents: self.torrent_count(),
            ..Default::default()
        };
        for r in self.swarms.iter() {
            let [(s4, l4), (s6, l6)] = r.value().live_counts_by_family(now);
            c.v4_seeders += u64::from(s4);
            c.v4_leechers += u64::from(l4);
            c.v6_seeders += u64::from(s6);
            c.v6_leechers += u64::from(l6);
        }
        c
    }

    /// Live peers of one torrent (operators' view). `None` if the torrent is unknown.
    pub fn peers(&self, info_hash: &InfoHash, now: u32) -> Option<Vec<PeerInfo>> {
        let s = self.swarms.get(&self.resolve(info_hash))?;
        Some(s.peers(now).map(|p| peer_info(&p, now)).collect())
    }

    // ---- torrent index -------------------------------------------------------------------

    /// Adds an entry to the index. The torrent counts towards `max_torrents` but is never refused
    /// for it: the operator asked for it explicitly.
    pub fn index_add(&self, info_hash: InfoHash, meta: IndexMeta) -> Result<(), IndexError> {
        if meta.name.trim().is_empty() {
            return Err(IndexError::BadName("empty"));
        }
        if meta.name.len() > MAX_NAME_LEN {
            return Err(IndexError::BadName("longer than 1024 bytes"));
        }
        let v2 = meta.v2.filter(|v2| *v2 != info_hash);
        if let Some(v2) = v2 {
            // The v2 hash must not already stand for another torrent.
            if self.aliases.load().contains_key(&v2) || self.is_indexed(&v2) {
                return Err(IndexError::Duplicate(v2));
            }
        }
        if self.aliases.load().contains_key(&info_hash) {
            return Err(IndexError::Duplicate(info_hash));
        }
        match self.swarms.entry(info_hash) {
            Entry::Occupied(mut o) => {
                if o.get().meta().is_some() {
                    return Err(IndexError::Duplicate(info_hash));
                }
                o.get_mut().set_meta(Some(meta));
            }
            Entry::Vacant(v) => {
                self.torrents.fetch_add(1, Ordering::Relaxed);
                v.insert(Swarm::default()).set_meta(Some(meta));
            }
        }
        if let Some(v2) = v2 {
            self.edit_aliases(|a| a.insert(v2, info_hash));
        }
        Ok(())
    }

    fn edit_aliases<R>(&self, f: impl FnOnce(&mut HashMap<InfoHash, InfoHash>) -> R) -> R {
        // Index edits are rare and come from the admin API; copy-on-write keeps every announce
        // lock-free on this map.
        let mut map = HashMap::clone(&self.aliases.load());
        let r = f(&mut map);
        let any = !map.is_empty();
        self.aliases.store(std::sync::Arc::new(map));
        self.has_aliases.store(any, Ordering::Release);
        r
    }

    /// Removes an index entry (the swarm, if any, stays until its peers leave).
    pub fn index_remove(&self, info_hash: &InfoHash) -> Result<(), IndexError> {
        let info_hash = &self.resolve(info_hash);
        let mut gone = None;
        let removed = self.swarms.remove_if_mut(info_hash, |_, s| {
            let Some(meta) = s.meta() else { return false };
            gone = Some(meta.v2);
            s.set_meta(None);
            s.is_disposable()
        });
        if let Some(Some(v2)) = gone {
            self.edit_aliases(|a| a.remove(&v2));
        }
        let gone = gone.is_some();
        if removed.is_some() {
            self.torrents.fetch_sub(1, Ordering::Relaxed);
        }
        if gone {
            Ok(())
        } else {
            Err(IndexError::NotFound(*info_hash))
        }
    }

    /// Whether the torrent is in the index.
    pub fn is_indexed(&self, info_hash: &InfoHash) -> bool {
        self.swarms
            .get(&self.resolve(info_hash))
            .is_some_and(|s| s.meta().is_some())
    }

    /// One indexed torrent with its peers.
    pub fn index_get(&self, info_hash: &InfoHash, now: u32) -> Option<TorrentDetail> {
        let info_hash = &self.resolve(info_hash);
        let s = self.swarms.get(info_hash)?;
        let meta = s.meta()?;
        Some(TorrentDetail {
            summary: summary(info_hash, meta, &s, now),
            peers: s.peers(now).map(|p| peer_info(&p, now)).collect(),
        })
    }

    /// Lists, filters and pages the index. Walks every shard (read locks, one at a time).
    pub fn index_list(&self, query: &IndexQuery, now: u32) -> IndexPage {
        let q = query.q.trim().to_lowercase();
        let mut all: Vec<TorrentSummary> = Vec::new();
        for r in self.swarms.iter() {
            let Some(meta) = r.value().meta() else {
                continue;
            };
            if !q.is_empty()
                && !meta.name.to_lowercase().contains(&q)
                && !r.key().to_string().starts_with(&q)
                && !meta.v2.is_some_and(|v2| v2.to_string().starts_with(&q))
            {
                continue;
            }
            all.push(summary(r.key(), meta, r.value(), now));
        }
        match query.sort {
            SortBy::Name => all.sort_by(|a, b| {
                a.name
                    .to_lowercase()
                    .cmp(&b.name.to_lowercase())
                    .then(a.info_hash.cmp(&b.info_hash))
            }),
            SortBy::Added => all.sort_by(|a, b| {
                b.added_at
                    .cmp(&a.added_at)
                    .then(a.info_hash.cmp(&b.info_hash))
            }),
        }
        let per_page = query.per_page.max(1);
        let page = query.page.max(1);
        let total = all.len();
        let torrents = all
            .into_iter()
            .skip((page - 1).saturating_mul(per_page))
            .take(per_page)
            .collect();
        IndexPage {
            total,
            page,
            per_page,
            torrents,
        }
    }

    /// Re-reads the access list files and syncs the index directory (start, SIGHUP, API). Swarms
    /// are never touched.
    pub fn reload_files(&self) -> Result<ReloadReport, ReloadError> {
        let (allow, deny) = self.access.reload_files()?;
        let mut report = ReloadReport {
            allow_file_entries: allow,
            deny_file_entries: deny,
            ..Default::default()
        };
        if let Some(dir) = self.config.access.index_dir.clone() {
            self.sync_index_dir(&dir, &mut report)?;
        }
        Ok(report)
    }

    /// Makes the index hold exactly one entry per usable `.torrent` file in `dir` among the
    /// entries that came from it: new files are added, entries whose file is gone removed.
    /// Entries added through the API are left alone.
    fn sync_index_dir(
        &self,
        dir: &std::path::Path,
        report: &mut ReloadReport,
    ) -> Result<(), ReloadError> {
        let io = |source| ReloadError::IndexDir {
            path: dir.to_owned(),
            source,
        };
        let mut present = std::collections::HashSet::new();
        let now = u64::from(self.clock.now());
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "torrent"))
            .collect();
        files.sort();
        for path in files {
            let parsed = read_bounded(&path, crate::torrent_file::MAX_TORRENT_BYTES)
                .map_err(|e| e.to_string())
                .and_then(|b| crate::torrent_file::parse(&b).map_err(|e| e.to_string()));
            let t = match parsed {
                Ok(t) => t,
                Err(e) => {
                    report.index_errors.push(format!("{}: {e}", path.display()));
                    continue;
                }
            };
            let ih = t.primary();
            present.insert(ih);
            if self.is_indexed(&ih) {
                continue;
            }
            let meta = IndexMeta {
                name: t.name.clone(),
                size: t.size,
                added_at: now,
                v2: t.linked_v2(),
                from_dir: true,
            };
            match self.index_add(ih, meta) {
                Ok(()) => report.index_added += 1,
                Err(e) => report.index_errors.push(format!("{}: {e}", path.display())),
            }
        }
        // Collected first, removed after: no map call while a shard is locked.
        let gone: Vec<InfoHash> = self
            .swarms
            .iter()
            .filter(|r| r.value().meta().is_some_and(|m| m.from_dir) && !present.contains(r.key()))
            .map(|r| *r.key())
            .collect();
        for ih in gone {
            if self.index_remove(&ih).is_ok() {
                report.index_removed += 1;
            }
        }
        Ok(())
    }

    // ---- for the snapshot module ---------------------------------------------------------

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

    /// Puts a torrent back from a snapshot. Returns the number of peers stored.
    pub(crate) fn restore_torrent(
        &self,
        info_hash: InfoHash,
        downloaded: u32,
        meta: Option<IndexMeta>,
        peers: &[PeerView],
    ) -> usize {
        if meta.is_none() && peers.is_empty() {
            return 0;
        }
        let now = self.clock.now();
        let mut stored = 0;
        let mut swarm = match self.swarms.entry(info_hash) {
            Entry::Occupied(o) => o.into_ref(),
            Entry::Vacant(v) => {
                if meta.is_none() && self.torrent_count() >= self.config.max_torrents {
                    return 0;
                }
                self.torrents.fetch_add(1, Ordering::Relaxed);
                v.insert(Swarm::default())
            }
        };
        swarm.downloaded = swarm.downloaded.max(downloaded);
        let v2 = meta
            .as_ref()
            .and_then(|m| m.v2)
            .filter(|v2| *v2 != info_hash);
        if meta.is_some() {
            swarm.set_meta(meta);
        }
        for p in peers {
            stored += usize::from(swarm.restore(p, now, self.config.max_peers_per_swarm));
        }
        drop(swarm);
        if let Some(v2) = v2 {
            self.edit_aliases(|a| a.insert(v2, info_hash));
        }
        stored
    }
}

fn summary(info_hash: &InfoHash, meta: &IndexMeta, s: &Swarm, now: u32) -> TorrentSummary {
    let (seeders, leechers) = s.live_counts(now);
    TorrentSummary {
        info_hash: *info_hash,
        name: meta.name.clone(),
        size: meta.size,
        added_at: rfc3339(meta.added_at),
        info_hash_v2: meta.v2,
        seeders,
        leechers,
        downloaded: s.downloaded,
    }
}

fn peer_info(p: &PeerView, now: u32) -> PeerInfo {
    PeerInfo {
        peer_id: p.peer_id,
        ip: p.addr.ip(),
        port: p.addr.port(),
        status: p.status,
        expires_in: p.expiry.saturating_sub(now),
    }
}

/// Unix seconds as RFC 3339 in UTC, e.g. `2025-10-29T12:00:00Z`.
pub fn rfc3339(unix: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Parses RFC 3339 (as written by [`rfc3339`]) into unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339(s).ok()?;
    t.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

/// Reads at most `max + 1` bytes of `path`: enough for the parser to refuse an oversized file
/// without the whole of it ever being held in memory.
fn read_bounded(path: &std::path::Path, max: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut out = Vec::new();
    std::fs::File::open(path)?
        .take(max as u64 + 1)
        .read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::swarm::CompactPeers;

    fn ih(n: u32) -> InfoHash {
        let mut b = [7u8; 20];
        b[..4].copy_from_slice(&n.to_be_bytes());
        InfoHash(b)
    }

    fn announce(t: &Tracker, n: u32, event: Event) -> AnnounceOutcome {
        let req = AnnounceRequest {
            info_hash: ih(n),
            peer_id: PeerId([1; 20]),
            ip: IpAddr::from([10, 0, (n >> 8) as u8, n as u8]),
            port: 6881,
            event,
            left: 1,
            numwant: Some(5),
            max_peers: 200,
            both_families: false,
        };
        t.announce(&req, 1_000, &mut CompactPeers::default())
            .expect("announce")
    }

    /// The announce reaches the map through the raw API: what it stores must be what the
    /// regular API (scrape, `get`) finds, through every resize, and the published hints must
    /// describe each shard's current table.
    #[test]
    fn raw_announce_path_agrees_with_the_map_and_publishes_hints() {
        let t = Tracker::with_clock(CoreConfig::default(), Clock::manual(1_000));
        let n = 20_000;
        for i in 0..n {
            t.prefetch_announce(&ih(i));
            announce(&t, i, Event::Started);
        }
        assert_eq!(t.torrent_count(), n as usize);
        for i in 0..n {
            assert_eq!(t.scrape_one(&ih(i), 1_000).leechers, 1, "torrent {i}");
        }
        // A stopped announce for an unknown torrent creates nothing.
        announce(&t, n + 1, Event::Stopped);
        assert!(t.swarms.get(&ih(n + 1)).is_none());
        // Re-announce everything so every shard published its final table.
        for i in 0..n {
            announce(&t, i, Event::None);
        }
        for (shard, lock) in t.swarms.shards().iter().enumerate() {
            let table = lock.read();
            let hint = &t.hints[shard];
            assert_eq!(
                hint.ctrl.load(Ordering::Relaxed),
                table.data_end().as_ptr() as usize
            );
            assert_eq!(hint.mask.load(Ordering::Relaxed), table.buckets() - 1);
        }
        // Stopping everyone empties the swarms through the same path.
        for i in 0..n {
            let out = announce(&t, i, Event::Stopped);
            assert_eq!(out.stored, Stored::Removed);
            assert_eq!(t.scrape_one(&ih(i), 1_000).leechers, 0);
        }
    }

    #[test]
    fn prefetch_changes_nothing() {
        let t = Tracker::with_clock(CoreConfig::default(), Clock::manual(1_000));
        for i in 0..1_000 {
            t.prefetch_announce(&ih(i));
        }
        assert_eq!(t.torrent_count(), 0);
        announce(&t, 1, Event::Started);
        for i in 0..1_000 {
            t.prefetch_announce(&ih(i));
        }
        assert_eq!(t.torrent_count(), 1);
        assert_eq!(t.scrape_one(&ih(1), 1_000).leechers, 1);
    }
}
