//! The announce / scrape / expiry / index rules of DESIGN.md section 3, one test per rule; the
//! property tests over random sequences of announces, stops, clock advances and sweeps are in
//! `model.rs`.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;
use tracker_core::{
    AccessConfig, AccessMode, AnnounceError, AnnounceRequest, Clock, CompactPeers, CoreConfig,
    Event, IndexError, IndexMeta, IndexQuery, InfoHash, PeerId, ScrapeCounts, SortBy, Stored,
    SwarmConfig, Tracker,
};

const T0: u32 = 1_800_000_000;

mod access;
mod model;

fn tracker_with(config: CoreConfig) -> Tracker {
    Tracker::with_clock(config, Clock::manual(T0))
}

/// A config with 4 shards (so that property tests meet shard boundaries) and `swarm`'s other
/// settings as given.
fn small(swarm: SwarmConfig) -> CoreConfig {
    CoreConfig {
        swarm: SwarmConfig { shards: 4, ..swarm },
        ..CoreConfig::default()
    }
}

fn tracker() -> Tracker {
    tracker_with(CoreConfig::default())
}

fn ip4(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
}

fn ip6(last: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last))
}

fn req(ih: u8, ip: IpAddr, port: u16, left: u64, event: Event) -> AnnounceRequest {
    AnnounceRequest {
        info_hash: InfoHash([ih; 20]),
        peer_id: PeerId([port as u8; 20]),
        ip,
        port,
        event,
        left,
        numwant: None,
        max_peers: 200,
        both_families: true,
    }
}

fn announce(t: &Tracker, r: &AnnounceRequest) -> (tracker_core::AnnounceOutcome, CompactPeers) {
    let mut sink = CompactPeers::default();
    let out = t
        .announce(r, t.clock().now(), &mut sink)
        .expect("valid announce");
    (out, sink)
}

fn counts(t: &Tracker, ih: u8) -> ScrapeCounts {
    t.scrape_one(&InfoHash([ih; 20]), t.clock().now())
}

#[test]
fn identity_is_ip_and_port_not_peer_id() {
    let t = tracker();
    announce(&t, &req(1, ip4(1), 1000, 5, Event::Started));
    // Same IP, other port: another peer.
    announce(&t, &req(1, ip4(1), 1001, 5, Event::Started));
    assert_eq!(counts(&t, 1).leechers, 2);
    // Same (IP, port) with another peer id: the same peer, updated in place.
    let mut r = req(1, ip4(1), 1000, 0, Event::None);
    r.peer_id = PeerId([0xee; 20]);
    announce(&t, &r);
    let c = counts(&t, 1);
    assert_eq!((c.seeders, c.leechers), (1, 1));
    let peers = t.peers(&InfoHash([1; 20]), t.clock().now()).unwrap();
    let p = peers.iter().find(|p| p.port == 1000).unwrap();
    assert_eq!(p.peer_id, Some(PeerId([0xee; 20])));
    // A different client claiming the first one's peer id does not displace it.
    let mut other = req(1, ip4(2), 2000, 5, Event::Started);
    other.peer_id = PeerId([0xee; 20]);
    announce(&t, &other);
    assert_eq!(
        t.peers(&InfoHash([1; 20]), t.clock().now()).unwrap().len(),
        3
    );
}

#[test]
fn v4_mapped_v6_is_the_same_peer_as_v4() {
    let t = tracker();
    announce(&t, &req(1, ip4(1), 1000, 5, Event::Started));
    let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
    announce(&t, &req(1, mapped, 1000, 5, Event::None));
    assert_eq!(counts(&t, 1).leechers, 1);
    let peers = t.peers(&InfoHash([1; 20]), t.clock().now()).unwrap();
    assert_eq!(peers[0].ip, ip4(1));
}

#[test]
fn stopped_removes_and_never_creates() {
    let t = tracker();
    // Unknown torrent: answered, nothing created.
    let (out, sink) = announce(&t, &req(9, ip4(1), 1000, 5, Event::Stopped));
    assert_eq!(out.stored, Stored::Removed);
    assert_eq!((out.seeders, out.leechers), (0, 0));
    assert!(sink.addrs().is_empty());
    assert_eq!(t.torrent_count(), 0);
    // Known torrent, unknown peer: not created; counts answered, no peers.
    announce(&t, &req(1, ip4(1), 1000, 0, Event::Started));
    let (out, sink) = announce(&t, &req(1, ip4(2), 1000, 5, Event::Stopped));
    assert_eq!((out.seeders, out.leechers), (1, 0));
    assert!(sink.addrs().is_empty(), "stopped gets no peers");
    // Known peer: removed.
    let (out, _) = announce(&t, &req(1, ip4(1), 1000, 0, Event::Stopped));
    assert_eq!((out.seeders, out.leechers), (0, 0));
    assert_eq!(counts(&t, 1), ScrapeCounts::default());
    // v6 stop on a v4-only swarm.
    let (out, _) = announce(&t, &req(1, ip6(1), 1000, 0, Event::Stopped));
    assert_eq!(out.stored, Stored::Removed);
}

#[test]
fn port_zero_is_rejected_and_changes_nothing() {
    let t = tracker();
    let err = t.announce(
        &req(1, ip4(1), 0, 5, Event::Started),
        T0,
        &mut CompactPeers::default(),
    );
    assert_eq!(err.unwrap_err().to_string(), "invalid port: 0");
    assert_eq!(t.torrent_count(), 0);
}

#[test]
fn completed_is_counted_once_per_peer_and_only_with_left_zero() {
    let t = tracker();
    announce(&t, &req(1, ip4(1), 1000, 100, Event::Started));
    // `completed` with bytes left is not a completion.
    announce(&t, &req(1, ip4(1), 1000, 50, Event::Completed));
    assert_eq!(counts(&t, 1).downloaded, 0);
    announce(&t, &req(1, ip4(1), 1000, 0, Event::Completed));
    assert_eq!(counts(&t, 1).downloaded, 1);
    // Repeats do not count again.
    announce(&t, &req(1, ip4(1), 1000, 0, Event::Completed));
    announce(&t, &req(1, ip4(1), 1000, 0, Event::None));
    assert_eq!(counts(&t, 1).downloaded, 1);
    // A leecher that shows up as a seeder without sending `completed` counts once.
    announce(&t, &req(1, ip4(2), 1000, 100, Event::Started));
    announce(&t, &req(1, ip4(2), 1000, 0, Event::None));
    announce(&t, &req(1, ip4(2), 1000, 0, Event::Completed));
    assert_eq!(counts(&t, 1).downloaded, 2);
    // A peer that starts as a seeder never downloaded anything here.
    announce(&t, &req(1, ip4(3), 1000, 0, Event::Started));
    announce(&t, &req(1, ip4(3), 1000, 0, Event::None));
    assert_eq!(counts(&t, 1).downloaded, 2);
}

#[test]
fn numwant_default_zero_and_caps() {
    let t = tracker();
    for i in 1..=120u8 {
        announce(&t, &req(1, ip4(i), 1000, 5, Event::Started));
    }
    let mut r = req(1, ip4(200), 1000, 5, Event::Started);
    assert_eq!(announce(&t, &r).1.addrs().len(), 50, "default");
    r.numwant = Some(0);
    assert_eq!(announce(&t, &r).1.addrs().len(), 0);
    r.numwant = Some(80);
    assert_eq!(announce(&t, &r).1.addrs().len(), 80);
    r.numwant = Some(100_000);
    r.max_peers = 100;
    assert_eq!(
        announce(&t, &r).1.addrs().len(),
        100,
        "capped by the protocol's max"
    );
    r.numwant = None;
    r.max_peers = 30;
    assert_eq!(
        announce(&t, &r).1.addrs().len(),
        30,
        "default is capped too"
    );
}

#[test]
fn announcer_is_never_in_its_reply_and_peers_are_distinct() {
    let t = tracker();
    for i in 1..=10u8 {
        announce(&t, &req(1, ip4(i), 1000, 5, Event::Started));
    }
    for _ in 0..50 {
        let (_, sink) = announce(&t, &req(1, ip4(3), 1000, 5, Event::None));
        let addrs = sink.addrs();
        assert_eq!(addrs.len(), 9);
        assert!(!addrs.contains(&SocketAddr::new(ip4(3), 1000)));
        assert_eq!(addrs.iter().collect::<HashSet<_>>().len(), 9);
    }
}

#[test]
fn large_swarm_selection_is_random_and_covers_everyone() {
    let t = tracker();
    for i in 0..500u16 {
        announce(&t, &req(1, ip4(1), 1000 + i, 5, Event::Started));
    }
    let mut seen = HashSet::new();
    for _ in 0..200 {
        let mut r = req(1, ip4(2), 1, 5, Event::None);
        r.numwant = Some(30);
        let (_, sink) = announce(&t, &r);
        assert_eq!(sink.addrs().len(), 30);
        seen.extend(sink.addrs());
    }
    // 200 draws of 30 consecutive-from-a-random-start out of 501: all but a few seen.
    assert!(seen.len() > 450, "only {} distinct peers seen", seen.len());
}

#[test]
fn seeders_get_only_leechers_and_leechers_get_both() {
    let t = tracker();
    for i in 1..=5u8 {
        announce(&t, &req(1, ip4(i), 1000, 0, Event::Started)); // seeders .1-.5
    }
    for i in 6..=10u8 {
        announce(&t, &req(1, ip4(i), 1000, 7, Event::Started)); // leechers .6-.10
    }
    let (_, sink) = announce(&t, &req(1, ip4(1), 1000, 0, Event::None));
    let got: HashSet<_> = sink.addrs().into_iter().collect();
    let leechers: HashSet<_> = (6..=10u8).map(|i| SocketAddr::new(ip4(i), 1000)).collect();
    assert_eq!(got, leechers);
    let (_, sink) = announce(&t, &req(1, ip4(6), 1000, 7, Event::None));
    assert_eq!(sink.addrs().len(), 9);
}

#[test]
fn families_are_kept_apart_and_own_family_comes_first() {
    let t = tracker();
    for i in 1..=3u8 {
        announce(&t, &req(1, ip4(i), 1000, 5, Event::Started));
        announce(&t, &req(1, ip6(u16::from(i)), 1000, 5, Event::Started));
    }
    // HTTP-style (both families): 3 v4 + 2 other v6.
    let (out, sink) = announce(&t, &req(1, ip6(1), 1000, 5, Event::None));
    assert_eq!((out.peers_v4, out.peers_v6), (3, 2));
    assert_eq!((sink.v4.len(), sink.v6.len()), (18, 36));
    // numwant 2 from a v6 announcer: own family first.
    let mut r = req(1, ip6(1), 1000, 5, Event::None);
    r.numwant = Some(2);
    let (out, _) = announce(&t, &r);
    assert_eq!((out.peers_v4, out.peers_v6), (0, 2));
    // UDP-style: only the requester's family.
    let mut r = req(1, ip4(1), 1000, 5, Event::None);
    r.both_families = false;
    let (out, sink) = announce(&t, &r);
    assert_eq!((out.peers_v4, out.peers_v6), (2, 0));
    assert!(sink.v6.is_empty());
    assert_eq!(
        (out.seeders, out.leechers),
        (0, 6),
        "counts cover both families"
    );
}

#[test]
fn expired_peers_vanish_without_a_sweep_and_the_sweep_frees_them() {
    let t = tracker();
    let timeout = t.config().swarm.peer_timeout;
    announce(&t, &req(1, ip4(1), 1000, 0, Event::Started));
    t.clock().advance(timeout / 2);
    announce(&t, &req(1, ip4(2), 1000, 5, Event::Started));
    announce(&t, &req(2, ip4(3), 1000, 5, Event::Started));
    t.clock().advance(timeout / 2 + 1); // peer .1 expired, the others not
    let c = counts(&t, 1);
    assert_eq!(
        (c.seeders, c.leechers),
        (0, 1),
        "scrape skips expired peers before any sweep"
    );
    let (_, sink) = announce(&t, &req(1, ip4(9), 1000, 5, Event::Started));
    assert_eq!(sink.addrs(), vec![SocketAddr::new(ip4(2), 1000)]);
    t.clock().advance(timeout);
    let report = t.sweep(t.clock().now());
    assert_eq!(report.torrents_removed, 2);
    assert_eq!(t.torrent_count(), 0);
    assert_eq!(t.peer_counts(t.clock().now()).total(), 0);
}

#[test]
fn sweep_keeps_indexed_torrents_and_their_download_counts() {
    let t = tracker();
    let ih = InfoHash([1; 20]);
    t.index_add(
        ih,
        IndexMeta {
            name: "A".into(),
            size: 1,
            added_at: 0,
            v2: None,
            from_dir: false,
        },
    )
    .unwrap();
    announce(&t, &req(1, ip4(1), 1000, 5, Event::Started));
    announce(&t, &req(1, ip4(1), 1000, 0, Event::Completed));
    t.clock().advance(t.config().swarm.peer_timeout + 1);
    t.sweep(t.clock().now());
    assert_eq!(t.torrent_count(), 1);
    assert_eq!(
        counts(&t, 1),
        ScrapeCounts {
            seeders: 0,
            leechers: 0,
            downloaded: 1
        }
    );
}

#[test]
fn limits_answer_but_do_not_store() {
    let t = tracker_with(CoreConfig {
        swarm: SwarmConfig {
            max_torrents: 2,
            max_peers_per_swarm: 3,
            ..Default::default()
        },
        ..CoreConfig::default()
    });
    announce(&t, &req(1, ip4(1), 1000, 5, Event::Started));
    announce(&t, &req(2, ip4(1), 1000, 5, Event::Started));
    let (out, _) = announce(&t, &req(3, ip4(1), 1000, 5, Event::Started));
    assert_eq!(out.stored, Stored::TorrentLimit);
    assert_eq!(t.torrent_count(), 2);
    assert_eq!(counts(&t, 3), ScrapeCounts::default());
    for i in 2..=3u8 {
        announce(&t, &req(1, ip4(i), 1000, 5, Event::Started));
    }
    let (out, sink) = announce(&t, &req(1, ip6(1), 1000, 5, Event::Started));
    assert_eq!(out.stored, Stored::SwarmFull);
    assert_eq!(
        sink.addrs().len(),
        3,
        "a peer that is not stored still gets peers"
    );
    assert_eq!(counts(&t, 1).leechers, 3);
    // Existing peers still update when the swarm is full.
    let (out, _) = announce(&t, &req(1, ip4(1), 1000, 0, Event::None));
    assert_eq!(out.stored, Stored::Stored);
    assert_eq!(counts(&t, 1).seeders, 1);
}

#[test]
fn interval_has_bounded_jitter() {
    let t = tracker();
    let mut seen = HashSet::new();
    for i in 0..200u16 {
        let (out, _) = announce(&t, &req(1, ip4(1), 1000 + i, 5, Event::Started));
        assert!((1620..=1980).contains(&out.interval), "{}", out.interval);
        assert_eq!(out.min_interval, 900);
        seen.insert(out.interval);
    }
    assert!(seen.len() > 20, "jitter should spread intervals");
}

#[test]
fn index_add_list_search_show_remove() {
    let t = tracker();
    let a = "0123456789abcdef0123456789abcdef01234567"
        .parse::<InfoHash>()
        .unwrap();
    let b = InfoHash([0xbb; 20]);
    let c = InfoHash([0xcc; 20]);
    t.index_add(
        a,
        IndexMeta {
            name: "Example Torrent".into(),
            size: 734_003_200,
            added_at: 1_761_739_200,
            v2: None,
            from_dir: false,
        },
    )
    .unwrap();
    t.index_add(
        b,
        IndexMeta {
            name: "another ONE".into(),
            size: 2,
            added_at: 1_761_739_300,
            v2: None,
            from_dir: false,
        },
    )
    .unwrap();
    t.index_add(
        c,
        IndexMeta {
            name: "Zed".into(),
            size: 3,
            added_at: 1_761_739_400,
            v2: None,
            from_dir: false,
        },
    )
    .unwrap();
    assert_eq!(
        t.index_add(
            a,
            IndexMeta {
                name: "dup".into(),
                size: 1,
                added_at: 0,
                ..Default::default()
            }
        ),
        Err(IndexError::Duplicate(a))
    );
    assert!(
        t.index_add(
            InfoHash([1; 20]),
            IndexMeta {
                name: " ".into(),
                size: 1,
                added_at: 0,
                ..Default::default()
            }
        )
        .is_err()
    );
    let now = t.clock().now();
    let names = |q: &IndexQuery| -> Vec<String> {
        t.index_list(q, now)
            .torrents
            .into_iter()
            .map(|s| s.name)
            .collect()
    };
    assert_eq!(
        names(&IndexQuery::default()),
        ["another ONE", "Example Torrent", "Zed"]
    );
    assert_eq!(
        names(&IndexQuery {
            sort: SortBy::Added,
            ..Default::default()
        }),
        ["Zed", "another ONE", "Example Torrent"]
    );
    assert_eq!(
        names(&IndexQuery {
            q: "one".into(),
            ..Default::default()
        }),
        ["another ONE"]
    );
    assert_eq!(
        names(&IndexQuery {
            q: "EXAMPLE".into(),
            ..Default::default()
        }),
        ["Example Torrent"]
    );
    assert_eq!(
        names(&IndexQuery {
            q: "0123456".into(),
            ..Default::default()
        }),
        ["Example Torrent"]
    );
    let page2 = t.index_list(
        &IndexQuery {
            per_page: 2,
            page: 2,
            ..Default::default()
        },
        now,
    );
    assert_eq!((page2.total, page2.torrents.len()), (3, 1));
    assert_eq!(page2.torrents[0].name, "Zed");

    announce(&t, &req(0xbb, ip4(1), 1000, 0, Event::Started));
    let d = t.index_get(&b, now).unwrap();
    assert_eq!((d.summary.seeders, d.peers.len()), (1, 1));
    assert_eq!(d.peers[0].status, tracker_core::PeerStatus::Seeding);
    assert_eq!(d.summary.added_at, "2025-10-29T12:01:40Z");

    t.index_remove(&b).unwrap();
    assert_eq!(t.index_remove(&b), Err(IndexError::NotFound(b)));
    assert!(t.index_get(&b, now).is_none());
    assert_eq!(
        counts(&t, 0xbb).seeders,
        1,
        "removing the entry keeps the live swarm"
    );
    t.index_remove(&c).unwrap();
    assert_eq!(t.torrent_count(), 2);
}
