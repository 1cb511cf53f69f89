//! The hash index of a large peer list (`address -> position`, positions `u16` or `u32`) and
//! the helpers that keep it in step with the list; the lists themselves live in `list.rs`.

use super::list::PeerList;

/// The hash index of a large list: positions only, keyed by the hash of the peer's address.
/// A probe compares against the peer record itself (which the announce touches anyway), so a
/// lookup costs the control bytes and the record, not a separate copy of every key. Positions
/// are `u16` while they fit (lists of up to 65,536 peers: a bucket is 3 bytes, at 1000 peers
/// 6 bytes per peer instead of 10), `u32` beyond.
#[derive(Debug)]
pub(super) enum PosIndex {
    Narrow(hashbrown::HashTable<u16>),
    Wide(hashbrown::HashTable<u32>),
}

/// The largest list a narrow index can hold.
pub(super) const NARROW_MAX: usize = u16::MAX as usize + 1;

/// The index's hash of an address: keyed, random per process (addresses are chosen by clients).
fn hash_addr<const N: usize>(addr: &[u8; N]) -> u64 {
    static KEY: std::sync::OnceLock<ahash::RandomState> = std::sync::OnceLock::new();
    KEY.get_or_init(ahash::RandomState::new).hash_one(addr)
}

/// A position as an index stores it.
pub(super) trait Pos: Copy + Eq {
    fn of(i: usize) -> Self;
    fn at(self) -> usize;
}

impl Pos for u16 {
    #[inline]
    fn of(i: usize) -> Self {
        i as u16
    }
    #[inline]
    fn at(self) -> usize {
        usize::from(self)
    }
}

impl Pos for u32 {
    #[inline]
    fn of(i: usize) -> Self {
        i as u32
    }
    #[inline]
    fn at(self) -> usize {
        self as usize
    }
}

pub(super) fn find_in<P: Pos, const N: usize, L: PeerList<N> + ?Sized>(
    t: &hashbrown::HashTable<P>,
    peers: &L,
    addr: &[u8; N],
) -> Option<usize> {
    t.find(hash_addr(addr), |&i| peers.addr(i.at()) == addr)
        .map(|&i| i.at())
}

pub(super) fn insert_in<P: Pos, const N: usize, L: PeerList<N> + ?Sized>(
    t: &mut hashbrown::HashTable<P>,
    peers: &L,
    pos: usize,
) {
    t.insert_unique(hash_addr(peers.addr(pos)), P::of(pos), |&j| {
        hash_addr(peers.addr(j.at()))
    });
}

/// Drops the entry of `gone` (which was at `pos`) and points the former last peer (now at
/// `pos`, if `pos < len`) at its new position.
pub(super) fn remove_in<P: Pos, const N: usize, L: PeerList<N> + ?Sized>(
    t: &mut hashbrown::HashTable<P>,
    peers: &L,
    gone: &[u8; N],
    pos: usize,
) {
    let last = P::of(peers.len());
    if let Ok(e) = t.find_entry(hash_addr(gone), |&i| i.at() == pos) {
        e.remove();
    }
    if pos < peers.len()
        && let Some(slot) = t.find_mut(hash_addr(peers.addr(pos)), |&i| i == last)
    {
        *slot = P::of(pos);
    }
}

pub(super) type Index<const N: usize> = PosIndex;

pub(super) fn build_index<const N: usize, L: PeerList<N> + ?Sized>(peers: &L) -> Index<N> {
    fn build<P: Pos, const N: usize, L: PeerList<N> + ?Sized>(
        peers: &L,
    ) -> hashbrown::HashTable<P> {
        let mut t = hashbrown::HashTable::with_capacity(peers.len() + peers.len() / 4);
        for i in 0..peers.len() {
            insert_in(&mut t, peers, i);
        }
        t
    }
    if peers.len() <= NARROW_MAX {
        PosIndex::Narrow(build(peers))
    } else {
        PosIndex::Wide(build(peers))
    }
}
