//! Property tests: random sequences of announces, stops, clock advances and sweeps, checked
//! against the tracker's own counts and a naive model of every live peer.

use super::*;

#[derive(Debug, Clone)]
enum Op {
    Announce {
        ih: u8,
        host: u8,
        v6: bool,
        port: u16,
        seeder: bool,
        event: u8,
        numwant: Option<u32>,
    },
    Advance(u32),
    Sweep,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..4u8, 0..6u8, any::<bool>(), 1..4u16, any::<bool>(), 0..4u8, proptest::option::of(0..10u32))
            .prop_map(|(ih, host, v6, port, seeder, event, numwant)| Op::Announce { ih, host, v6, port, seeder, event, numwant }),
        1 => (0..2000u32).prop_map(Op::Advance),
        1 => Just(Op::Sweep),
    ]
}

fn event(e: u8) -> Event {
    [
        Event::None,
        Event::Started,
        Event::Completed,
        Event::Stopped,
    ][usize::from(e % 4)]
}

/// A naive model: every live peer keyed by (torrent, address).
#[derive(Default)]
struct Model {
    peers: HashMap<(u8, SocketAddr), (bool, u32)>,
}

impl Model {
    fn live(&self, ih: u8, now: u32) -> (u32, u32) {
        let mut c = (0, 0);
        for ((i, _), (seeder, exp)) in &self.peers {
            if *i == ih && *exp > now {
                if *seeder { c.0 += 1 } else { c.1 += 1 }
            }
        }
        c
    }
}

fn run_ops(ops: &[Op], config: CoreConfig, check_model: bool) -> Result<usize, TestCaseError> {
    let mut largest = 0;
    let max_torrents = config.swarm.max_torrents;
    let max_peers = config.swarm.max_peers_per_swarm;
    let timeout = config.swarm.peer_timeout;
    let t = tracker_with(config);
    let mut model = Model::default();
    for op in ops {
        let now = t.clock().now();
        match *op {
            Op::Announce {
                ih,
                host,
                v6,
                port,
                seeder,
                event: e,
                numwant,
            } => {
                let ip = if v6 { ip6(u16::from(host)) } else { ip4(host) };
                let mut r = req(ih, ip, port, u64::from(!seeder), event(e));
                r.numwant = numwant;
                r.max_peers = 7;
                let (out, sink) = announce(&t, &r);
                let me = SocketAddr::new(ip, port);
                let addrs = sink.addrs();
                prop_assert!(!addrs.contains(&me), "announcer in its own reply");
                prop_assert!(addrs.len() <= numwant.unwrap_or(50).min(7) as usize);
                prop_assert_eq!(addrs.iter().collect::<HashSet<_>>().len(), addrs.len());
                if seeder {
                    for a in &addrs {
                        let p = t.peers(&InfoHash([ih; 20]), now).unwrap();
                        let st = p
                            .iter()
                            .find(|p| SocketAddr::new(p.ip, p.port) == *a)
                            .map(|p| p.status);
                        prop_assert_eq!(
                            st,
                            Some(tracker_core::PeerStatus::Leeching),
                            "seeder got a seeder"
                        );
                    }
                }
                if event(e) == Event::Stopped {
                    model.peers.remove(&(ih, me));
                } else if out.stored == Stored::Stored {
                    model.peers.insert((ih, me), (seeder, now + timeout));
                }
                if check_model {
                    prop_assert_eq!((out.seeders, out.leechers), model.live(ih, now));
                }
            }
            Op::Advance(s) => t.clock().advance(s),
            Op::Sweep => {
                t.sweep(now);
            }
        }
        let now = t.clock().now();
        // Reported counts equal the live peers actually stored.
        for ih in 0..4u8 {
            let c = counts(&t, ih);
            let stored = t.peers(&InfoHash([ih; 20]), now).unwrap_or_default();
            let s = stored
                .iter()
                .filter(|p| p.status == tracker_core::PeerStatus::Seeding)
                .count() as u32;
            prop_assert_eq!((c.seeders, c.leechers), (s, stored.len() as u32 - s));
            prop_assert!(stored.len() <= max_peers);
            largest = largest.max(stored.len());
            if check_model {
                prop_assert_eq!((c.seeders, c.leechers), model.live(ih, now));
            }
        }
        prop_assert!(t.torrent_count() <= max_torrents);
        // The metrics' whole-store counts agree with the peers listed one by one.
        let mut by_role = [0u64; 4];
        for ih in 0..4u8 {
            for p in t.peers(&InfoHash([ih; 20]), now).unwrap_or_default() {
                let seeder = p.status == tracker_core::PeerStatus::Seeding;
                by_role[usize::from(p.ip.is_ipv6()) * 2 + usize::from(!seeder)] += 1;
            }
        }
        let c = t.peer_counts(now);
        prop_assert_eq!(
            [c.v4_seeders, c.v4_leechers, c.v6_seeders, c.v6_leechers],
            by_role
        );
    }
    Ok(largest)
}

/// One torrent, mostly IPv4, many ports, short clock steps: the IPv4 list grows well past the
/// hash-index threshold (64), shrinks below it through stops and expiry, and grows again.
fn op_large() -> impl Strategy<Value = Op> {
    prop_oneof![
        16 => (0..2u8, proptest::bool::weighted(0.1), 1..120u16, any::<bool>(), 0..4u8, proptest::option::of(0..40u32))
            .prop_map(|(host, v6, port, seeder, event, numwant)| Op::Announce { ih: 0, host, v6, port, seeder, event, numwant }),
        1 => (0..400u32).prop_map(Op::Advance),
        1 => Just(Op::Sweep),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn large_swarms_with_a_hash_index_match_the_model(ops in proptest::collection::vec(op_large(), 300..700)) {
        // Every case starts above the index threshold, then random ops shrink and regrow it.
        let mut all: Vec<Op> = (1..=100u16)
            .map(|port| Op::Announce { ih: 0, host: 0, v6: false, port, seeder: port % 2 == 0, event: 1, numwant: Some(5) })
            .collect();
        all.extend(ops);
        let max = run_ops(&all, small(SwarmConfig::default()), true)?;
        prop_assert!(max >= 100, "the swarm never grew past the index threshold: {max}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn counts_match_the_stored_peers_and_a_naive_model(ops in proptest::collection::vec(op(), 1..120)) {
        run_ops(&ops, small(SwarmConfig::default()), true)?;
    }

    #[test]
    fn limits_are_never_exceeded(ops in proptest::collection::vec(op(), 1..120)) {
        run_ops(&ops, small(SwarmConfig { max_torrents: 2, max_peers_per_swarm: 3, ..SwarmConfig::default() }), false)?;
    }
}
