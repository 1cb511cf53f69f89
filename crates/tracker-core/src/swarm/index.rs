//! The hash index of a large peer list (`address -> position`, positions `u16` or `u32`) and
//! the helpers that keep it in step with the list; the lists themselves live in `list.rs`.
//!
//! # Why our own table
//!
//! The index stores positions only and a probe compares against the peer record itself (which
//! the announce touches anyway), so a lookup costs a tag byte and the record, not a separate copy
//! of every key. This was hashbrown's `HashTable` until 2026-12-03; its bucket count
//! is a power of two at most 7/8 full: between 1.14 and 2.3 buckets per entry, and at 1000 peers
//! (just past a doubling) 2048 buckets of 3 bytes, 6.2 bytes per peer, more than half of a peer's
//! 8-byte record when peer ids are not kept. `PosTable` takes any bucket count: when 4/5 full it
//! is rebuilt with 1.5 buckets per entry (about 1.56 when first built), so it holds 1.25 to 1.56
//! buckets per entry, 3.75 to 4.7 bytes per peer with `u16` positions (DESIGN 2.6). The cost: growing by a fifth rehashes each
//! entry about five times per doubling of the list instead of about once; steady swarms
//! (re-announces) do not grow.
//!
//! # Layout and probing
//!
//! One exactly sized allocation: `cap` tag bytes, then `cap` positions of `P::WIDTH` bytes each
//! (little-endian). A tag is `EMPTY`, `DELETED` or 2..=255 taken from the hash's low byte; the
//! home bucket is the hash's high bits scaled to `cap` (`(h * cap) >> 64`, no power of two
//! needed). Linear probing from home: a probe reads consecutive tag bytes and looks at a position
//! (and so at a peer record) only when the tag matches, about one time in 254 for a wrong peer.
//! Removal leaves `DELETED` (or `EMPTY` when the next bucket is empty, which no probe passes);
//! growth, or a table full of `DELETED`, rebuilds from the list. At most 4/5 of the buckets are
//! in use (occupied or deleted), so every probe meets an `EMPTY` bucket.

use std::marker::PhantomData;

use super::list::PeerList;

/// The hash index of a large list: positions only, keyed by the hash of the peer's address.
/// Positions are `u16` while they fit (lists of up to 65,536 peers: a bucket is 3 bytes),
/// `u32` beyond (5 bytes).
#[derive(Debug)]
pub(super) enum PosIndex {
    Narrow(PosTable<u16>),
    Wide(PosTable<u32>),
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
    const WIDTH: usize;
    fn of(i: usize) -> Self;
    fn at(self) -> usize;
    fn read(b: &[u8]) -> Self;
    fn write(self, b: &mut [u8]);
}

impl Pos for u16 {
    const WIDTH: usize = 2;
    #[inline]
    fn of(i: usize) -> Self {
        i as u16
    }
    #[inline]
    fn at(self) -> usize {
        usize::from(self)
    }
    #[inline]
    fn read(b: &[u8]) -> Self {
        u16::from_le_bytes([b[0], b[1]])
    }
    #[inline]
    fn write(self, b: &mut [u8]) {
        b[..2].copy_from_slice(&self.to_le_bytes());
    }
}

impl Pos for u32 {
    const WIDTH: usize = 4;
    #[inline]
    fn of(i: usize) -> Self {
        i as u32
    }
    #[inline]
    fn at(self) -> usize {
        self as usize
    }
    #[inline]
    fn read(b: &[u8]) -> Self {
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }
    #[inline]
    fn write(self, b: &mut [u8]) {
        b[..4].copy_from_slice(&self.to_le_bytes());
    }
}

const EMPTY: u8 = 0;
const DELETED: u8 = 1;

#[inline]
fn tag(h: u64) -> u8 {
    (h as u8).max(2)
}

/// An open-addressing table of positions (see the module doc).
pub(super) struct PosTable<P> {
    /// `cap` tags, then `cap` positions.
    slots: Box<[u8]>,
    /// Occupied buckets.
    len: u32,
    /// Occupied and deleted buckets (what a probe may have to pass).
    used: u32,
    _p: PhantomData<P>,
}

impl<P> std::fmt::Debug for PosTable<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PosTable")
            .field("len", &self.len)
            .field("used", &self.used)
            .field("buckets", &self.slots.len())
            .finish()
    }
}

impl<P: Pos> PosTable<P> {
    /// Room for `n` entries before the first growth (1.25 buckets per entry, 4/5 full).
    fn with_capacity(n: usize) -> Self {
        let cap = (n + n / 4 + 1).max(8);
        Self {
            slots: vec![0; cap * (1 + P::WIDTH)].into_boxed_slice(),
            len: 0,
            used: 0,
            _p: PhantomData,
        }
    }

    #[inline]
    fn cap(&self) -> usize {
        self.slots.len() / (1 + P::WIDTH)
    }

    #[inline]
    fn pos(&self, slot: usize) -> P {
        let at = self.cap() + slot * P::WIDTH;
        P::read(&self.slots[at..at + P::WIDTH])
    }

    #[inline]
    fn set_pos(&mut self, slot: usize, p: P) {
        let at = self.cap() + slot * P::WIDTH;
        p.write(&mut self.slots[at..at + P::WIDTH]);
    }

    #[inline]
    fn home(&self, h: u64) -> usize {
        ((u128::from(h) * self.cap() as u128) >> 64) as usize
    }

    /// The bucket holding a position with hash `h` for which `eq` holds.
    #[inline]
    fn find(&self, h: u64, eq: impl Fn(P) -> bool) -> Option<usize> {
        let (cap, t) = (self.cap(), tag(h));
        let mut i = self.home(h);
        // At most `cap` steps; an EMPTY bucket ends it long before (at most 4/5 are used).
        for _ in 0..cap {
            match self.slots[i] {
                EMPTY => return None,
                s if s == t && eq(self.pos(i)) => return Some(i),
                _ => {}
            }
            i += 1;
            if i == cap {
                i = 0;
            }
        }
        None
    }

    /// Adds `p` (not already present) with hash `h`; `hash` gives any stored position's hash
    /// when the table is rebuilt.
    fn insert_unique(&mut self, h: u64, p: P, hash: impl Fn(P) -> u64) {
        if (self.used as usize + 1) * 5 > self.cap() * 4 {
            self.rebuild(self.len as usize + 1, &hash);
        }
        self.put(h, p);
    }

    /// Stores without checking the load (the caller made room).
    fn put(&mut self, h: u64, p: P) {
        let cap = self.cap();
        let mut i = self.home(h);
        while self.slots[i] > DELETED {
            i += 1;
            if i == cap {
                i = 0;
            }
        }
        if self.slots[i] == EMPTY {
            self.used += 1;
        }
        self.slots[i] = tag(h);
        self.set_pos(i, p);
        self.len += 1;
    }

    /// A table with 1.5 buckets per entry for `n` entries (grown, or the same size without the
    /// deleted buckets), holding every entry of this one.
    fn rebuild(&mut self, n: usize, hash: impl Fn(P) -> u64) {
        let mut new = Self::with_capacity(n + n / 5);
        for i in 0..self.cap() {
            if self.slots[i] > DELETED {
                let p = self.pos(i);
                new.put(hash(p), p);
            }
        }
        *self = new;
    }

    fn remove(&mut self, slot: usize) {
        let next = if slot + 1 == self.cap() { 0 } else { slot + 1 };
        if self.slots[next] == EMPTY {
            self.slots[slot] = EMPTY;
            self.used -= 1;
        } else {
            self.slots[slot] = DELETED;
        }
        self.len -= 1;
    }
}

pub(super) fn find_in<P: Pos, const N: usize, L: PeerList<N> + ?Sized>(
    t: &PosTable<P>,
    peers: &L,
    addr: &[u8; N],
) -> Option<usize> {
    t.find(hash_addr(addr), |i| peers.addr(i.at()) == addr)
        .map(|slot| t.pos(slot).at())
}

pub(super) fn insert_in<P: Pos, const N: usize, L: PeerList<N> + ?Sized>(
    t: &mut PosTable<P>,
    peers: &L,
    pos: usize,
) {
    t.insert_unique(hash_addr(peers.addr(pos)), P::of(pos), |j| {
        hash_addr(peers.addr(j.at()))
    });
}

/// Drops the entry of `gone` (which was at `pos`) and points the former last peer (now at
/// `pos`, if `pos < len`) at its new position.
pub(super) fn remove_in<P: Pos, const N: usize, L: PeerList<N> + ?Sized>(
    t: &mut PosTable<P>,
    peers: &L,
    gone: &[u8; N],
    pos: usize,
) {
    let last = P::of(peers.len());
    if let Some(slot) = t.find(hash_addr(gone), |i| i.at() == pos) {
        t.remove(slot);
    }
    if pos < peers.len()
        && let Some(slot) = t.find(hash_addr(peers.addr(pos)), |i| i == last)
    {
        t.set_pos(slot, P::of(pos));
    }
}

pub(super) type Index<const N: usize> = PosIndex;

pub(super) fn build_index<const N: usize, L: PeerList<N> + ?Sized>(peers: &L) -> Index<N> {
    fn build<P: Pos, const N: usize, L: PeerList<N> + ?Sized>(peers: &L) -> PosTable<P> {
        let mut t = PosTable::with_capacity(peers.len() + peers.len() / 4);
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// A list of bare addresses, enough of a `PeerList` for the index.
    struct Addrs(Vec<[u8; 6]>);

    impl PeerList<6> for Addrs {
        const HOT_STRIDE: usize = 6;
        fn len(&self) -> usize {
            self.0.len()
        }
        fn addr(&self, i: usize) -> &[u8; 6] {
            &self.0[i]
        }
        fn meta(&self, _: usize) -> u16 {
            0
        }
        fn peer_id(&self, _: usize) -> &[u8; 20] {
            &[0; 20]
        }
        fn hot_addr(&self, _: usize) -> usize {
            0
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(u16),
        Remove(usize),
        Rebuild,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u16..KEYS).prop_map(Op::Push),
            4 => any::<usize>().prop_map(Op::Remove),
            1 => Just(Op::Rebuild),
        ]
    }

    /// Addresses drawn from this many, so pushes repeat and removals hit.
    const KEYS: u16 = 400;

    fn addr(k: u16) -> [u8; 6] {
        let [a, b] = k.to_be_bytes();
        [10, 0, a, b, 0x1a, 0xe1]
    }

    fn check<P: Pos>(ops: &[Op]) -> Result<(), TestCaseError> {
        let mut list = Addrs(Vec::new());
        let mut model: HashMap<[u8; 6], usize> = HashMap::new();
        let mut t = PosTable::<P>::with_capacity(0);
        for op in ops {
            match *op {
                Op::Push(k) if !model.contains_key(&addr(k)) => {
                    list.0.push(addr(k));
                    model.insert(addr(k), list.0.len() - 1);
                    insert_in(&mut t, &list, list.0.len() - 1);
                }
                Op::Push(_) => {}
                Op::Remove(_) if list.0.is_empty() => {}
                Op::Remove(r) => {
                    let pos = r % list.0.len();
                    let gone = list.0.swap_remove(pos);
                    model.remove(&gone);
                    if let Some(moved) = list.0.get(pos) {
                        model.insert(*moved, pos);
                    }
                    remove_in(&mut t, &list, &gone, pos);
                }
                Op::Rebuild => {
                    let n = t.len as usize;
                    t.rebuild(n, |j| hash_addr(list.addr(j.at())));
                }
            }
            prop_assert_eq!(t.len as usize, list.0.len());
            prop_assert!(t.used as usize * 5 <= t.cap() * 4, "{:?}", t);
            for k in 0..KEYS {
                prop_assert_eq!(find_in(&t, &list, &addr(k)), model.get(&addr(k)).copied());
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// The index agrees with a `HashMap` of address to position through pushes, swap
        /// removals (the list's own), and rebuilds, for present and absent addresses alike,
        /// and never uses more than 4/5 of its buckets.
        #[test]
        fn agrees_with_a_hash_map(ops in proptest::collection::vec(op(), 1..1200)) {
            check::<u16>(&ops)?;
            check::<u32>(&ops)?;
        }
    }

    #[test]
    fn bytes_per_entry_at_1000() {
        let list = Addrs((0..1000).map(addr).collect());
        let mut t = PosTable::<u16>::with_capacity(0);
        for i in 0..1000 {
            insert_in(&mut t, &list, i);
        }
        let per = t.slots.len() as f64 / 1000.0;
        assert!((3.75..=4.5).contains(&per), "{per} bytes per entry");
        for (i, a) in list.0.iter().enumerate() {
            assert_eq!(find_in(&t, &list, a), Some(i));
        }
    }
}
