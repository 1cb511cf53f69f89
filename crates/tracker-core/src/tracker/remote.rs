//! The store's seam for cluster mode (its half of `impl Tracker`): the change log announces
//! write into ([`Tracker::with_change_log`], [`Tracker::drain_changes`]), applying changes
//! learned elsewhere ([`Tracker::apply_remote`], [`Tracker::set_downloaded`],
//! [`Tracker::raise_downloaded`]) without building a
//! reply or counting a request, and listing live peers for re-publishing
//! ([`Tracker::for_each_live_peer`]), and the API-made index entries the cluster shares
//! ([`Tracker::api_index_entries`]). No I/O here: the `tracker-cluster` crate does that.

use std::net::IpAddr;
use std::sync::atomic::Ordering;

use dashmap::mapref::entry::Entry;

use super::Tracker;
use crate::changes::{Change, ChangeKind, ChangeLog, CompactAddr};
use crate::sink::PeerView;
use crate::swarm::{Stored, Swarm, SwarmReply, Update};
use crate::types::{InfoHash, compact_v4, compact_v6};

/// Records what an announce changed. Called under the announce's shard lock.
#[inline]
pub(super) fn record(
    log: &ChangeLog,
    shard: usize,
    info_hash: &InfoHash,
    u: &Update,
    stored: Stored,
    reply: &SwarmReply,
) {
    let kind = match stored {
        Stored::Stored => ChangeKind::Upsert,
        Stored::Removed => ChangeKind::Remove,
        Stored::SwarmFull | Stored::TorrentLimit => return,
    };
    let addr = match u.ip {
        IpAddr::V4(ip) => CompactAddr::V4(compact_v4(ip, u.port)),
        IpAddr::V6(ip) => CompactAddr::V6(compact_v6(ip, u.port)),
    };
    log.record(
        shard,
        &Change {
            info_hash: *info_hash,
            addr,
            kind,
            expiry: if kind == ChangeKind::Upsert {
                u.expiry
            } else {
                0
            },
            seeder: reply.seeder,
            completed: reply.completed,
            counted: reply.counted,
        },
    );
}

impl Tracker {
    /// Turns on change records: every announce that stores or removes a peer leaves a
    /// [`Change`] in its shard's ring (`per_shard` records each, preallocated now) for
    /// [`Tracker::drain_changes`]. Call before sharing the tracker.
    pub fn with_change_log(mut self, per_shard: usize) -> Self {
        self.changes = Some(ChangeLog::new(self.shard_count(), per_shard));
        self
    }

    /// Moves the change records written since the last call into `out`; returns how many (0
    /// when change records are off). One drainer at a time; announces never wait for it.
    pub fn drain_changes(&self, out: &mut Vec<Change>) -> usize {
        self.changes.as_ref().map_or(0, |l| l.drain(out))
    }

    /// Change records dropped because a shard's ring was full.
    pub fn changes_dropped(&self) -> u64 {
        self.changes.as_ref().map_or(0, ChangeLog::dropped)
    }

    /// Applies a change that happened elsewhere: inserts or updates the peer with its absolute
    /// expiry (creating the swarm if needed, within `max_torrents`), or removes it. Builds no
    /// reply, counts no request and no completed download, and writes no change record. One
    /// shard lock. Returns whether the store changed.
    pub fn apply_remote(&self, c: &Change, now: u32) -> bool {
        match c.kind {
            ChangeKind::Remove => self
                .swarms
                .get_mut(&c.info_hash)
                .is_some_and(|mut s| s.remove_remote(&c.addr)),
            ChangeKind::Upsert => {
                if c.expiry <= now {
                    return false;
                }
                let max_peers = self.config.swarm.max_peers_per_swarm;
                let mut swarm = match self.swarms.entry(c.info_hash) {
                    Entry::Occupied(o) => o.into_ref(),
                    Entry::Vacant(v) => {
                        if self.torrent_count() >= self.config.swarm.max_torrents {
                            return false;
                        }
                        self.torrents.fetch_add(1, Ordering::Relaxed);
                        v.insert(Swarm::default())
                    }
                };
                swarm.upsert_remote(&c.addr, c.expiry, c.seeder, c.completed, now, max_peers)
            }
        }
    }

    /// Sets a torrent's completed-downloads count to what the cluster counted. Only for a
    /// torrent held; returns whether it was.
    pub fn set_downloaded(&self, info_hash: &InfoHash, downloaded: u32) -> bool {
        match self.swarms.get_mut(info_hash) {
            Some(mut s) => {
                s.downloaded = downloaded;
                true
            }
            None => false,
        }
    }

    /// Raises a torrent's completed-downloads count to `downloaded` if it is below (a count
    /// another node read from the shared store: such counts only grow, and one may arrive after
    /// a newer one). Only for a torrent held; returns whether it changed.
    pub fn raise_downloaded(&self, info_hash: &InfoHash, downloaded: u32) -> bool {
        match self.swarms.get_mut(info_hash) {
            Some(mut s) if s.downloaded < downloaded => {
                s.downloaded = downloaded;
                true
            }
            _ => false,
        }
    }

    /// Calls `f` for every live peer of every torrent (for re-publishing to a shared store),
    /// one shard read lock at a time. `f` runs under the lock: it must only copy.
    pub fn for_each_live_peer(&self, now: u32, mut f: impl FnMut(&InfoHash, &PeerView)) {
        for shard in 0..self.shard_count() {
            self.for_each_live_peer_in_shard(shard, now, &mut f);
        }
    }

    /// How many swarm shards there are (for walking them one at a time).
    pub fn shards(&self) -> usize {
        self.shard_count()
    }

    /// [`Tracker::for_each_live_peer`] for one shard (`0..shards()`), so that a re-publisher
    /// holds one shard's peers at a time.
    pub fn for_each_live_peer_in_shard(
        &self,
        shard: usize,
        now: u32,
        mut f: impl FnMut(&InfoHash, &PeerView),
    ) {
        self.for_each_in_shard(shard, |ih, swarm| {
            for p in swarm.peers(now) {
                f(ih, &p);
            }
        });
    }

    /// The index entries made through the API (not those from `[access] index_dir`, which
    /// each node reads from its own directory), for sharing through the cluster.
    pub fn api_index_entries(&self) -> Vec<(InfoHash, crate::IndexMeta)> {
        let mut out = Vec::new();
        for shard in 0..self.shard_count() {
            self.for_each_in_shard(shard, |ih, swarm| {
                if let Some(m) = swarm.meta().filter(|m| !m.from_dir) {
                    out.push((*ih, m.clone()));
                }
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::clock::Clock;
    use crate::config::CoreConfig;
    use crate::sink::CompactPeers;
    use crate::tracker::AnnounceRequest;
    use crate::types::{Event, PeerId, PeerStatus};

    const NOW: u32 = 1_000_000;

    fn tracker() -> Tracker {
        Tracker::with_clock(CoreConfig::default(), Clock::manual(NOW)).with_change_log(16)
    }

    fn req(port: u16, event: Event, left: u64) -> AnnounceRequest {
        AnnounceRequest {
            info_hash: InfoHash([3; 20]),
            peer_id: PeerId([1; 20]),
            ip: "10.0.0.1".parse().expect("ip"),
            port,
            event,
            left,
            numwant: Some(50),
            max_peers: 200,
            both_families: true,
        }
    }

    fn announce(t: &Tracker, r: &AnnounceRequest) -> CompactPeers {
        let mut sink = CompactPeers::default();
        t.announce(r, NOW, &mut sink).expect("announce");
        sink
    }

    #[test]
    fn announces_leave_one_record_each_with_what_changed() {
        let t = tracker();
        announce(&t, &req(1, Event::Started, 5));
        announce(&t, &req(1, Event::Completed, 0));
        announce(&t, &req(1, Event::Stopped, 0));
        let mut out = Vec::new();
        assert_eq!(t.drain_changes(&mut out), 3);
        let addr = CompactAddr::V4([10, 0, 0, 1, 0, 1]);
        assert_eq!(out[0].kind, ChangeKind::Upsert);
        assert_eq!(out[0].addr, addr);
        assert_eq!(out[0].expiry, NOW + t.config().swarm.peer_timeout);
        assert!(!out[0].seeder && !out[0].completed && !out[0].counted);
        assert!(out[1].seeder && out[1].completed && out[1].counted);
        assert_eq!(out[2].kind, ChangeKind::Remove);
        // Without the log, nothing is recorded.
        let plain = Tracker::with_clock(CoreConfig::default(), Clock::manual(NOW));
        announce(&plain, &req(1, Event::Started, 5));
        assert_eq!(plain.drain_changes(&mut out), 0);
    }

    #[test]
    fn remote_changes_are_served_not_counted_and_not_recorded() {
        let t = tracker();
        let peer = Change {
            info_hash: InfoHash([3; 20]),
            addr: CompactAddr::from_socket("10.9.9.9:7000".parse().expect("addr")),
            kind: ChangeKind::Upsert,
            expiry: NOW + 100,
            seeder: true,
            completed: true,
            counted: true,
        };
        assert!(t.apply_remote(&peer, NOW));
        let mut out = Vec::new();
        assert_eq!(
            t.drain_changes(&mut out),
            0,
            "a remote change is not re-recorded"
        );
        let c = t.scrape_one(&InfoHash([3; 20]), NOW);
        assert_eq!((c.seeders, c.leechers, c.downloaded), (1, 0, 0));
        // A leecher announcing here gets the remote seeder.
        let sink = announce(&t, &req(2, Event::Started, 5));
        assert_eq!(
            sink.addrs(),
            vec!["10.9.9.9:7000".parse::<SocketAddr>().expect("addr")]
        );
        // Its completed bit came along: completing here later counts nothing more.
        let mut again = req(7000, Event::Completed, 0);
        again.ip = "10.9.9.9".parse().expect("ip");
        announce(&t, &again);
        assert_eq!(t.scrape_one(&InfoHash([3; 20]), NOW).downloaded, 0);
        // An older record does not move the expiry back; a removal removes.
        let older = Change {
            expiry: NOW + 1,
            seeder: false,
            ..peer
        };
        assert!(!t.apply_remote(&older, NOW));
        assert!(t.set_downloaded(&InfoHash([3; 20]), 4));
        assert_eq!(t.scrape_one(&InfoHash([3; 20]), NOW).downloaded, 4);
        assert!(!t.raise_downloaded(&InfoHash([3; 20]), 3), "a stale count");
        assert!(t.raise_downloaded(&InfoHash([3; 20]), 5));
        assert_eq!(t.scrape_one(&InfoHash([3; 20]), NOW).downloaded, 5);
        assert!(
            t.set_downloaded(&InfoHash([3; 20]), 4),
            "an exact count may lower it"
        );
        let mut seen = Vec::new();
        t.for_each_live_peer(NOW, |ih, p| seen.push((*ih, p.addr, p.status)));
        assert_eq!(seen.len(), 2);
        assert!(seen.contains(&(
            InfoHash([3; 20]),
            "10.9.9.9:7000".parse().expect("addr"),
            PeerStatus::Seeding
        )));
        let gone = Change {
            kind: ChangeKind::Remove,
            ..peer
        };
        assert!(t.apply_remote(&gone, NOW));
        assert_eq!(t.scrape_one(&InfoHash([3; 20]), NOW).seeders, 0);
        // Expired records are not stored.
        assert!(!t.apply_remote(
            &Change {
                expiry: NOW,
                ..peer
            },
            NOW
        ));
    }
}
