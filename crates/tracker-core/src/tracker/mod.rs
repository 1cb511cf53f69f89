//! The swarm store and the operations both protocols call: announce, scrape, sweep, counts,
//! snapshot restore. The torrent index and its `.torrent` directory are in `index.rs` (its half of
//! `impl Tracker`); everything that reaches into dashmap's shards directly (locate, hints,
//! prefetch, the shard walk) in `shards.rs`.
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
use crate::changes::ChangeLog;
use crate::clock::Clock;
use crate::config::CoreConfig;
use crate::limits::Limiter;
use crate::sink::{PeerSink, PeerView};
use crate::stats::Stats;
use crate::swarm::{IndexMeta, MAX_PEER_TIMEOUT, Stored, Swarm, SwarmReply, Update};
use crate::types::{Event, InfoHash, PeerId, canonical_ip};

mod index;
mod remote;
mod shards;
mod top;

pub use index::{
    IndexError, IndexPage, IndexQuery, MAX_NAME_LEN, PeerInfo, ReloadError, ReloadReport, SortBy,
    TorrentDetail, TorrentSummary, parse_rfc3339, rfc3339,
};
use shards::ShardHint;
pub use top::TopTorrent;

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
    /// Completed downloads counted by the torrents held (the sum of their scrape
    /// `downloaded`).
    pub downloads: u64,
}

impl PeerCounts {
    /// All peers.
    pub fn total(&self) -> u64 {
        self.v4_seeders + self.v4_leechers + self.v6_seeders + self.v6_leechers
    }
}

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
    /// Change records for a replicator (cluster mode); `None` (the default) costs the announce
    /// one predictable branch. See [`crate::changes`].
    changes: Option<ChangeLog>,
}

impl Tracker {
    /// An empty tracker with a random connection-id key and the system clock.
    pub fn new(config: CoreConfig) -> Self {
        Self::with_clock(config, Clock::system())
    }

    /// An empty tracker on the given clock (tests pass [`Clock::manual`]).
    pub fn with_clock(mut config: CoreConfig, clock: Clock) -> Self {
        if config.swarm.peer_timeout > MAX_PEER_TIMEOUT {
            tracing::warn!(
                "peer_timeout {} s is above the supported {MAX_PEER_TIMEOUT} s; using {MAX_PEER_TIMEOUT} s",
                config.swarm.peer_timeout
            );
            config.swarm.peer_timeout = MAX_PEER_TIMEOUT;
        }
        let shards = config.swarm.shards.max(2).next_power_of_two();
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
            changes: None,
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
        let base = self.config.protocol.interval;
        let spread = base / 100 * self.config.protocol.interval_jitter_percent.min(100)
            + base % 100 * self.config.protocol.interval_jitter_percent.min(100) / 100;
        if spread == 0 {
            return base;
        }
        let lo = base - spread;
        (lo + crate::fast_rng::below(2 * spread as usize + 1) as u32).max(1)
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
        if !self.access.clients().allows(&req.peer_id) {
            return Err(AnnounceError::Access(AccessError::ClientNotAllowed));
        }
        let want = req
            .numwant
            .unwrap_or(self.config.protocol.default_numwant)
            .min(req.max_peers) as usize;
        let update = Update {
            ip: canonical_ip(req.ip),
            port: req.port,
            peer_id: req.peer_id.0,
            event: req.event,
            left: req.left,
            expiry: now.saturating_add(self.config.swarm.peer_timeout),
            want,
            both_families: req.both_families,
            max_peers: self.config.swarm.max_peers_per_swarm,
            keep_ids: self.config.swarm.keep_peer_ids,
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
                if self.torrents.load(Ordering::Relaxed) >= self.config.swarm.max_torrents {
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
        // Cluster mode: what changed, recorded under the same shard lock (no second lock, no
        // allocation). One predictable branch when off.
        if let Some(log) = &self.changes {
            remote::record(log, shard, &info_hash, &update, stored, &reply);
        }
        // After a possible insert (which may have moved the table).
        self.hints[shard].update(table.data_end().as_ptr() as usize, table.buckets() - 1);
        drop(table);
        Ok(AnnounceOutcome {
            seeders: reply.seeders,
            leechers: reply.leechers,
            downloaded: reply.downloaded,
            interval: self.interval(),
            min_interval: self.config.protocol.min_interval,
            peers_v4: reply.peers_v4,
            peers_v6: reply.peers_v6,
            stored,
        })
    }

    /// Counts of one torrent; zeros when unknown. One shard read lock.
    /// A torrent the access rules refuse scrapes as unknown (zeros).
    pub fn scrape_one(&self, info_hash: &InfoHash, now: u32) -> ScrapeCounts {
        let info_hash = self.resolve(info_hash);
        self.swarms
            .get(&info_hash)
            .and_then(|s| self.visible_counts(&info_hash, &s, self.access.is_open(), now))
            .unwrap_or_default()
    }

    /// A swarm's live counts, or `None` when the access rules refuse the torrent (`open`:
    /// [`Access::is_open`], read once by the caller).
    fn visible_counts(
        &self,
        info_hash: &InfoHash,
        s: &Swarm,
        open: bool,
        now: u32,
    ) -> Option<ScrapeCounts> {
        if !open
            && self
                .access
                .check_torrent(info_hash, s.meta().is_some())
                .is_err()
        {
            return None;
        }
        let (seeders, leechers) = s.live_counts(now);
        Some(ScrapeCounts {
            seeders,
            leechers,
            downloaded: s.downloaded,
        })
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

    /// Counts of every torrent held that the access rules allow (a full scrape), in no
    /// particular order. Walks every shard, one read lock at a time; `out` runs under it, so it
    /// must only copy (no I/O, no call into the tracker).
    pub fn scrape_all(&self, now: u32, mut out: impl FnMut(&InfoHash, ScrapeCounts)) {
        let open = self.access.is_open();
        for r in self.swarms.iter() {
            if let Some(c) = self.visible_counts(r.key(), r.value(), open, now) {
                out(r.key(), c);
            }
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

    /// Live peers by family and role, and torrents held. Walks every shard (read locks): the walk
    /// of [`Tracker::counts_and_top`] with no list kept.
    pub fn peer_counts(&self, now: u32) -> PeerCounts {
        self.counts_and_top(0, now).0
    }

    // ---- torrent index -------------------------------------------------------------------

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
                if meta.is_none() && self.torrent_count() >= self.config.swarm.max_torrents {
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
            stored += usize::from(swarm.restore(
                p,
                now,
                self.config.swarm.max_peers_per_swarm,
                self.config.swarm.keep_peer_ids,
            ));
        }
        drop(swarm);
        if let Some(v2) = v2 {
            self.edit_aliases(|a| a.insert(v2, info_hash));
        }
        stored
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::CompactPeers;

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
