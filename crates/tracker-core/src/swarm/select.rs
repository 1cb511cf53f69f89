//! Reply selection: where a reply's walk over a list starts, the prefetch of its first lines,
//! and the walk itself (live peers only, the announcer skipped, seeders given only leechers).

use super::list::{ListRef, PeerList};
use super::peer::{SEEDER, meta_expiry};
use crate::types::NO_PEER_ID;

/// Where a reply's walk over a list of `len` peers starts: a random position when the list
/// holds more than `want`, so every peer has the same chance to be in a reply.
pub(super) fn pick_start(len: usize, want: usize) -> usize {
    if len > want && want > 0 {
        crate::fast_rng::below(len)
    } else {
        0
    }
}

/// Most cache lines of a reply window prefetched ahead (16 lines hold 36 packed IPv4 peers,
/// 128 split ones).
const WINDOW_PREFETCH_LINES: usize = 16;

/// Prefetches the peers a walk from `start` will read first (see [`select`]), so that their
/// misses overlap with the announcer's own lookup instead of following it.
fn prefetch_window<const N: usize, L: PeerList<N> + ?Sized>(peers: &L, start: usize, want: usize) {
    let len = peers.len();
    if start >= len {
        return;
    }
    let first = (len - start).min(want);
    crate::prefetch::lines(
        peers.hot_addr(start),
        first * L::HOT_STRIDE,
        WINDOW_PREFETCH_LINES,
    );
    let rest = (want - first).min(start);
    if rest > 0 {
        crate::prefetch::lines(
            peers.hot_addr(0),
            rest * L::HOT_STRIDE,
            WINDOW_PREFETCH_LINES,
        );
    }
}

/// How a reply walks one list: from `start` (from [`pick_start`]), wrapping around, taking up
/// to `want` live peers, never the one at `skip`, only leechers when `leechers_only`, reading
/// peer ids only `with_ids` (a compact reply has none, and in a split list they live apart).
#[derive(Debug, Clone, Copy)]
pub(super) struct Walk {
    pub(super) start: usize,
    pub(super) want: usize,
    pub(super) skip: Option<usize>,
    pub(super) leechers_only: bool,
    pub(super) with_ids: bool,
    pub(super) now: u32,
    pub(super) epoch: u32,
}

/// Writes the peers `w` selects from `peers` to `emit`; returns how many. The cost is O(want)
/// unless most peers are filtered out.
#[inline]
pub(super) fn select<const N: usize, L: PeerList<N> + ?Sized>(
    peers: &L,
    w: Walk,
    mut emit: impl FnMut(&[u8; N], &[u8; 20]),
) -> usize {
    let len = peers.len();
    if w.want == 0 || len == 0 {
        return 0;
    }
    let mut n = 0;
    let mut i = if w.start < len { w.start } else { 0 };
    for _ in 0..len {
        let m = peers.meta(i);
        if Some(i) != w.skip
            && meta_expiry(m, w.epoch) > w.now
            && !(w.leechers_only && m & SEEDER != 0)
        {
            let id = if w.with_ids {
                peers.peer_id(i)
            } else {
                &NO_PEER_ID
            };
            emit(peers.addr(i), id);
            n += 1;
            if n == w.want {
                break;
            }
        }
        i += 1;
        if i == len {
            i = 0;
        }
    }
    n
}

/// [`select`] on a list as stored, dispatching on its layout once, not per peer.
#[inline]
pub(super) fn select_in<const N: usize>(
    list: ListRef<'_, N>,
    w: Walk,
    emit: impl FnMut(&[u8; N], &[u8; 20]),
) -> usize {
    match list {
        ListRef::Packed(p) => select(p, w, emit),
        ListRef::Split(s) => select(s, w, emit),
        ListRef::Hot(h) => select(h, w, emit),
    }
}

impl<const N: usize> ListRef<'_, N> {
    /// Picks where a reply's walk over this list starts ([`pick_start`]) and prefetches the
    /// first lines of that window ([`prefetch_window`]).
    pub(super) fn start_window(self, want: usize) -> usize {
        let start = pick_start(self.len(), want);
        match self {
            Self::Packed(p) => prefetch_window(p, start, want),
            Self::Split(s) => prefetch_window(s, start, want),
            Self::Hot(h) => prefetch_window(h, start, want),
        }
        start
    }
}
