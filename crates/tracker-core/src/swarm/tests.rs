//! Unit tests of the swarm record: layout, index consistency, expiry, selection.

use super::list::PeerListMut;
use super::select::select;
use super::*;
use crate::sink::CompactPeers;
use crate::types::PeerId;

#[test]
fn records_are_packed() {
    assert_eq!(std::mem::size_of::<Peer<6>>(), 28);
    assert_eq!(std::mem::size_of::<Peer<18>>(), 40);
    assert_eq!(std::mem::align_of::<Peer<6>>(), 1);
    assert_eq!(std::mem::size_of::<Swarm>(), 32);
    assert_eq!(std::mem::align_of::<Swarm>(), 4);
    assert_eq!(std::mem::size_of::<(crate::types::InfoHash, Swarm)>(), 52);
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
        keep_ids: true,
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
    assert!(s.ext.as_deref().unwrap().v4_index.is_some());
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
    assert!(s.ext.is_none() || s.ext.as_deref().unwrap().v4_index.is_none());
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

/// `keep_peer_ids = false`: 8 bytes per small-list IPv4 peer, every peer kept through the
/// 32/33 move and the index, ids read as absent; the swarm follows the setting only while empty.
#[test]
fn a_swarm_without_peer_ids_stores_addresses_and_meta_only() {
    let mut s = Swarm::default();
    let mut sink = CompactPeers::default();
    let no_ids = |ip, port, left, ev| Update {
        keep_ids: false,
        ..upd(ip, port, left, ev)
    };
    let ports = |s: &Swarm| {
        let mut v: Vec<u16> = s.peers(10).map(|p| p.addr.port()).collect();
        v.sort_unstable();
        v
    };
    for port in 1..=100u16 {
        s.announce(
            &no_ids(v4(10, 0, 0, 1), port, u64::from(port % 2), Event::Started),
            10,
            &mut sink,
        );
        if port <= EXACT_GROWTH_UNTIL as u16 {
            assert_eq!(s.v4.len(), usize::from(port) * 8, "after {port} peers");
        }
        assert_eq!(ports(&s), (1..=port).collect::<Vec<_>>());
    }
    assert!(matches!(s.v4(), ListRef::Hot(_)));
    assert!(s.ext.as_deref().unwrap().v4_index.is_some());
    assert!(s.ext.as_deref().unwrap().v4_large.ids.is_empty());
    assert!(s.peers(10).all(|p| p.peer_id.is_none()));
    assert_eq!(s.live_counts(10), (50, 50));
    // A re-announce from an id-keeping setting does not switch a swarm that has peers.
    s.announce(&upd(v4(10, 0, 0, 1), 1, 0, Event::None), 10, &mut sink);
    assert!(s.peers(10).all(|p| p.peer_id.is_none()));
    assert_eq!(s.live_counts(10), (51, 49));
    s.announce(&no_ids(v6(1), 7, 0, Event::Started), 10, &mut sink);
    assert_eq!(s.v6().len(), 1);
    assert!(s.ext.as_deref().unwrap().v6.ids.is_empty());
    for port in (1..=100u16).rev() {
        s.announce(
            &no_ids(v4(10, 0, 0, 1), port, 0, Event::Stopped),
            10,
            &mut sink,
        );
        assert_eq!(ports(&s).len(), usize::from(port)); // the v6 peer stays
    }
    s.announce(&no_ids(v6(1), 7, 0, Event::Stopped), 10, &mut sink);
    assert_eq!(s.len(), 0);
    // Empty: the next announce sets the mode again.
    s.announce(&upd(v4(10, 0, 0, 1), 1, 0, Event::Started), 10, &mut sink);
    assert_eq!(s.v4.len(), 28);
    assert_eq!(s.peers(10).next().unwrap().peer_id, Some(PeerId([1; 20])));
}

/// A list past 65,536 peers moves its index from `u16` to `u32` positions and still finds every
/// peer, through removals too.
#[test]
fn the_index_widens_past_u16_positions() {
    let mut hot: Vec<Hot<6>> = Vec::new();
    let (mut seeders, mut index) = (0, None);
    let mut l = ListMut {
        peers: &mut hot,
        seeders: &mut seeders,
        index: &mut index,
    };
    let addr = |k: u32| compact_v4(std::net::Ipv4Addr::from(0x0a00_0000 + k), 6881);
    let n = 65_600u32;
    for k in 0..n {
        let mut p = Peer {
            addr: addr(k),
            peer_id: [0; 20],
            meta: [0; 2],
        };
        p.set_meta(0, 100);
        l.push(p);
        if k == 1000 {
            assert!(matches!(l.index, Some(index::PosIndex::Narrow(_))));
        }
    }
    assert!(matches!(l.index, Some(index::PosIndex::Wide(_))));
    for k in (0..n).step_by(7) {
        assert_eq!(l.find(&addr(k)), Some(k as usize));
    }
    // Removing from the front moves the last peers into the holes.
    for k in 0..100 {
        let pos = l.find(&addr(k)).unwrap();
        l.remove(pos);
    }
    assert_eq!(l.find(&addr(5)), None);
    for k in 100..n {
        let pos = l.find(&addr(k)).expect("every remaining peer is found");
        assert_eq!(l.peers.addr(pos), &addr(k));
    }
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
    let ext = s.ext.as_deref().unwrap();
    assert!(ext.v6.capacity() >= 200 && ext.v4_large.capacity() >= 200);
    s.maybe_shrink();
    let ext = s.ext.as_deref().unwrap();
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

    /// The same list in every layout: packed records (`Vec` and the inline box's bytes), split,
    /// and without peer ids (inline bytes and the large `Vec<Hot>`).
    struct Both {
        packed: Vec<Peer<6>>,
        split: Split<6>,
        bytes: Packed<Peer<6>>,
        hot_bytes: Packed<Hot<6>>,
        hot: Vec<Hot<6>>,
        seeders: [u32; 5],
        index: [Option<Index<6>>; 5],
    }

    impl Both {
        /// Runs `op` on every layout; returns the packed and the split result, and checks
        /// the other three agree with the packed one.
        fn run<O: ListOp<6> + Clone>(&mut self, op: O) -> (O::Out, O::Out)
        where
            O::Out: PartialEq + std::fmt::Debug,
        {
            let [i0, i1, i2, i3, i4] = &mut self.index;
            let [s0, s1, s2, s3, s4] = &mut self.seeders;
            let a = op.clone().run(&mut ListMut {
                peers: &mut self.packed,
                seeders: s0,
                index: i0,
            });
            let b = op.clone().run(&mut ListMut {
                peers: &mut self.split,
                seeders: s1,
                index: i1,
            });
            let c = op.clone().run(&mut ListMut {
                peers: &mut self.bytes,
                seeders: s2,
                index: i2,
            });
            let d = op.clone().run(&mut ListMut {
                peers: &mut self.hot_bytes,
                seeders: s3,
                index: i3,
            });
            let e = op.run(&mut ListMut {
                peers: &mut self.hot,
                seeders: s4,
                index: i4,
            });
            assert_eq!(a, c);
            assert_eq!(a, d);
            assert_eq!(a, e);
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

    /// Whether `find` returns every peer's own position.
    fn finds_every_peer<L: PeerListMut<6>>(l: ListMut<'_, 6, L>) -> bool {
        (0..PeerList::len(&*l.peers)).all(|i| l.find(l.peers.addr(i)) == Some(i))
    }

    proptest! {
        #[test]
        fn packed_and_split_lists_behave_the_same(ops in proptest::collection::vec(op(), 1..400)) {
            let mut b = Both {
                packed: Vec::new(),
                split: Split::default(),
                bytes: Packed::from_bytes(Vec::new()),
                hot_bytes: Packed::from_bytes(Vec::new()),
                hot: Vec::new(),
                seeders: [0; 5],
                index: Default::default(),
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
                prop_assert_eq!(b.packed.len(), PeerList::len(&b.bytes));
                prop_assert_eq!(b.packed.len(), PeerList::len(&b.hot_bytes));
                prop_assert_eq!(b.packed.len(), PeerList::len(&b.hot));
                for i in 0..b.packed.len() {
                    prop_assert_eq!(b.packed[i], b.split.get(i));
                    prop_assert_eq!(b.packed[i], PeerList::get(&b.bytes, i));
                    // Without ids: the same address and meta, and a zero id.
                    let no_id = Peer { peer_id: [0; 20], ..b.packed[i] };
                    prop_assert_eq!(no_id, PeerList::get(&b.hot_bytes, i));
                    prop_assert_eq!(no_id, PeerList::get(&b.hot, i));
                }
                prop_assert!(b.seeders.iter().all(|&x| x == b.seeders[0]));
                prop_assert!(b.index.iter().all(|ix| ix.is_some() == b.index[0].is_some()));
                let seeders = b.packed.iter().filter(|p| p.is_seeder()).count() as u32;
                prop_assert_eq!(b.seeders[0], seeders);
                let [i0, i1, i2, i3, i4] = &mut b.index;
                let [s0, s1, s2, s3, s4] = &mut b.seeders;
                let found = finds_every_peer(ListMut { peers: &mut b.split, seeders: s1, index: i1 });
                prop_assert!(found);
                let found = finds_every_peer(ListMut { peers: &mut b.packed, seeders: s0, index: i0 });
                prop_assert!(found);
                let found = finds_every_peer(ListMut { peers: &mut b.bytes, seeders: s2, index: i2 });
                prop_assert!(found);
                let found = finds_every_peer(ListMut { peers: &mut b.hot_bytes, seeders: s3, index: i3 });
                prop_assert!(found);
                let found = finds_every_peer(ListMut { peers: &mut b.hot, seeders: s4, index: i4 });
                prop_assert!(found);
                for start in [0, 7, 31] {
                    let (mut r1, mut r2) = (Vec::new(), Vec::new());
                    let now = epoch + 500;
                    let w = Walk { start, want: 30, skip: Some(3), leechers_only: start == 7, with_ids: true, now, epoch };
                    select(b.packed.as_slice(), w, |a, id| r1.push((*a, *id)));
                    select(&b.split, w, |a, id| r2.push((*a, *id)));
                    prop_assert_eq!(&r1, &r2);
                    let (mut r3, mut r4) = (Vec::new(), Vec::new());
                    select(&b.bytes, w, |a, id| r3.push((*a, *id)));
                    select(b.hot.as_slice(), w, |a, _| r4.push(*a));
                    prop_assert_eq!(&r1, &r3);
                    prop_assert_eq!(r1.iter().map(|x| x.0).collect::<Vec<_>>(), r4);
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
        assert_eq!(size_of::<Option<Index<6>>>(), 32);
        assert_eq!(offset_of!(SwarmExt, v6), 128);
        assert_eq!(size_of::<SwarmExt>(), 320);
    }
}

/// `next_purge` is kept as a `u16` offset from `epoch`, which moves (re-basing, an empty
/// swarm's new epoch). Whatever the order of announces, times and intervals, a reply's counts
/// are the live peers of a model (a `next_purge` stored too late would let an expired peer be
/// counted) and `next_purge()` stays at or below every stored peer's expiry.
mod next_purge {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn counts_follow_the_live_peers(steps in proptest::collection::vec(
            (0u32..4000, 1u16..24, 1u32..=MAX_PEER_TIMEOUT, any::<bool>(), 0u8..8), 1..200)) {
            let mut s = Swarm::default();
            let mut sink = CompactPeers::default();
            let mut model = std::collections::HashMap::<u16, (u32, bool)>::new();
            let mut now = 1_000_000u32;
            for (gap, port, interval, seed, ev) in steps {
                now += gap;
                let event = if ev == 0 { Event::Stopped } else { Event::None };
                let mut u = upd(v4(10, 0, 0, 1), port, u64::from(!seed), event);
                u.expiry = now + interval;
                let (_, r) = s.announce(&u, now, &mut sink);
                model.retain(|_, (exp, _)| *exp > now);
                match event {
                    Event::Stopped => model.remove(&port),
                    _ => model.insert(port, (now + interval, seed)),
                };
                let seeders = model.values().filter(|(_, sd)| *sd).count() as u32;
                prop_assert_eq!((r.seeders, r.leechers), (seeders, model.len() as u32 - seeders));
                for p in s.peers(now) {
                    prop_assert!(s.next_purge() <= p.expiry, "{} > {}", s.next_purge(), p.expiry);
                }
            }
        }
    }
}
