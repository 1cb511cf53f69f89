//! The torrents with the most live peers, for the daemon's status page: one walk of the map
//! (one shard read lock at a time) keeping the best `n` in a bounded heap, so that the walk's
//! memory is `n` entries whatever the number of torrents. The same walk gives the peer counts
//! ([`Tracker::counts_and_top`]; [`Tracker::peer_counts`] is that walk with no list). Callers run
//! it rarely (the daemon once per status sample, once per `/metrics` scrape), never per request.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::{PeerCounts, Tracker};
use crate::types::InfoHash;

/// One torrent of [`Tracker::top_by_peers`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TopTorrent {
    /// Info hash (hex in JSON).
    pub info_hash: InfoHash,
    /// Its name in the torrent index, when it is indexed.
    pub name: Option<String>,
    /// Live seeders.
    pub seeders: u32,
    /// Live leechers.
    pub leechers: u32,
    /// Completed downloads counted.
    pub downloaded: u32,
}

impl TopTorrent {
    /// Seeders and leechers.
    pub fn peers(&self) -> u64 {
        u64::from(self.seeders) + u64::from(self.leechers)
    }
}

/// Heap order: more peers first, then the smaller info hash (a stable order for equal counts).
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Rank(u64, Reverse<InfoHash>);

impl Tracker {
    /// The `n` torrents with the most live peers, most first (ties: by info hash), with their
    /// index names. Walks every shard; holds at most `n` entries.
    pub fn top_by_peers(&self, n: usize, now: u32) -> Vec<TopTorrent> {
        self.counts_and_top(n, now).1
    }

    /// [`Tracker::peer_counts`] and [`Tracker::top_by_peers`] from one walk of the map (the
    /// status page's sampler needs both each tick; two walks would cost twice as much).
    pub fn counts_and_top(&self, n: usize, now: u32) -> (PeerCounts, Vec<TopTorrent>) {
        let mut c = PeerCounts {
            torrents: self.torrent_count(),
            ..PeerCounts::default()
        };
        // A min-heap of the best n so far: its top is the one to drop first (none kept, and
        // nothing allocated, for peer_counts).
        let mut best: BinaryHeap<Reverse<(Rank, u32, u32, u32)>> =
            BinaryHeap::with_capacity(if n == 0 { 0 } else { n + 1 });
        for r in self.swarms.iter() {
            let swarm = r.value();
            let [(s4, l4), (s6, l6)] = swarm.live_counts_by_family(now);
            c.v4_seeders += u64::from(s4);
            c.v4_leechers += u64::from(l4);
            c.v6_seeders += u64::from(s6);
            c.v6_leechers += u64::from(l6);
            c.downloads += u64::from(swarm.downloaded);
            if n == 0 {
                continue;
            }
            let (seeders, leechers) = (s4 + s6, l4 + l6);
            let rank = Rank(u64::from(seeders) + u64::from(leechers), Reverse(*r.key()));
            if best.len() == n && best.peek().is_some_and(|Reverse(w)| w.0 >= rank) {
                continue;
            }
            best.push(Reverse((rank, seeders, leechers, swarm.downloaded)));
            if best.len() > n {
                best.pop();
            }
        }
        let mut out: Vec<TopTorrent> = best
            .into_sorted_vec()
            .into_iter()
            .map(
                |Reverse((Rank(_, Reverse(info_hash)), seeders, leechers, downloaded))| {
                    TopTorrent {
                        info_hash,
                        name: None,
                        seeders,
                        leechers,
                        downloaded,
                    }
                },
            )
            .collect();
        // Names afterwards: n lookups instead of a clone per heap insertion.
        for t in &mut out {
            t.name = self
                .swarms
                .get(&t.info_hash)
                .and_then(|s| s.meta().map(|m| m.name.clone()));
        }
        (c, out)
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::config::CoreConfig;
    use crate::sink::CompactPeers;
    use crate::swarm::IndexMeta;
    use crate::tracker::AnnounceRequest;
    use crate::types::{Event, PeerId};

    fn ih(n: u8) -> InfoHash {
        InfoHash([n; 20])
    }

    fn peers(t: &Tracker, n: u8, count: u8, seeders: u8) {
        for p in 0..count {
            let req = AnnounceRequest {
                info_hash: ih(n),
                peer_id: PeerId([p; 20]),
                ip: IpAddr::from([10, 0, n, p]),
                port: 6881,
                event: Event::None,
                left: u64::from(p >= seeders),
                numwant: Some(0),
                max_peers: 200,
                both_families: false,
            };
            t.announce(&req, 1_000, &mut CompactPeers::default())
                .expect("announce");
        }
    }

    #[test]
    fn keeps_the_n_largest_swarms_in_order_with_names() {
        let t = Tracker::new(CoreConfig::default());
        // Torrent k has k peers (k seeders among them when k is even); 9 and 8 tie with 3 at 3.
        for k in 1..=7u8 {
            peers(&t, k, k, if k % 2 == 0 { k } else { 0 });
        }
        peers(&t, 9, 3, 1);
        peers(&t, 8, 3, 0);
        t.index_add(
            ih(6),
            IndexMeta {
                name: "six <b>".into(),
                ..IndexMeta::default()
            },
        )
        .unwrap();
        let top = t.top_by_peers(5, 1_000);
        let got: Vec<(u8, u64)> = top.iter().map(|x| (x.info_hash.0[0], x.peers())).collect();
        assert_eq!(got, [(7, 7), (6, 6), (5, 5), (4, 4), (3, 3)]);
        assert_eq!(top[1].name.as_deref(), Some("six <b>"));
        assert_eq!((top[1].seeders, top[1].leechers), (6, 0));
        assert_eq!((top[0].seeders, top[0].leechers), (0, 7));
        assert!(
            top.iter()
                .filter(|x| x.info_hash != ih(6))
                .all(|x| x.name.is_none())
        );
        // Ties by info hash: 3 before 8 before 9, all with 3 peers.
        let ties: Vec<u8> = t.top_by_peers(7, 1_000)[4..]
            .iter()
            .map(|x| x.info_hash.0[0])
            .collect();
        assert_eq!(ties, [3, 8, 9]);
        // More asked than held: every torrent, still in order; none asked: none.
        let all = t.top_by_peers(100, 1_000);
        assert_eq!(all.len(), 9);
        assert!(all.windows(2).all(|w| w[0].peers() >= w[1].peers()));
        assert!(t.top_by_peers(0, 1_000).is_empty());
        // One walk for both: the counts are peer_counts', the list top_by_peers'.
        let (counts, top5) = t.counts_and_top(5, 1_000);
        assert_eq!(counts, t.peer_counts(1_000));
        assert_eq!((counts.torrents, counts.total()), (9, 34));
        assert_eq!(top5, top);
    }

    #[test]
    fn expired_peers_do_not_count() {
        let t = Tracker::new(CoreConfig::default());
        peers(&t, 1, 4, 0);
        let later = 1_000 + crate::swarm::MAX_PEER_TIMEOUT + 1;
        let top = t.top_by_peers(3, later);
        assert_eq!(top.len(), 1);
        assert_eq!(top[0].peers(), 0);
    }
}
