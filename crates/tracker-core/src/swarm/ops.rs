//! The operations a swarm runs on one family's list through `Swarm::with_v4` / `with_v6`
//! (announce, purge, re-base, snapshot restore), written once for every list layout, and the
//! announce rules themselves (`apply`).

use super::list::{ListMut, PeerListMut};
use super::peer::{COMPLETED, OFFSET_MASK, Peer, SEEDER};
use super::{Stored, Update};
use crate::types::Event;

/// An operation on one family's list, run by `Swarm::with_v4` / `with_v6` on whichever layout
/// holds the list (a closure cannot be generic over the layout; a trait method can).
pub(super) trait ListOp<const N: usize> {
    type Out;
    fn run<L: PeerListMut<N>>(self, l: &mut ListMut<'_, N, L>) -> Self::Out;
}

/// Announce: insert, update or remove the announcer (see [`apply`]).
pub(super) struct ApplyOp<'u, const N: usize> {
    pub(super) addr: [u8; N],
    pub(super) u: &'u Update,
    pub(super) offset: u16,
    pub(super) total: usize,
}

impl<const N: usize> ListOp<N> for ApplyOp<'_, N> {
    type Out = (Stored, Option<usize>, bool, bool, bool);
    fn run<L: PeerListMut<N>>(self, l: &mut ListMut<'_, N, L>) -> Self::Out {
        apply(l, self.addr, self.u, self.offset, self.total)
    }
}

pub(super) struct PurgeOp {
    pub(super) now: u32,
    pub(super) epoch: u32,
}

impl<const N: usize> ListOp<N> for PurgeOp {
    type Out = (usize, u32);
    fn run<L: PeerListMut<N>>(self, l: &mut ListMut<'_, N, L>) -> Self::Out {
        l.purge(self.now, self.epoch)
    }
}

pub(super) struct RebaseOp {
    pub(super) old: u32,
    pub(super) new: u32,
}

impl<const N: usize> ListOp<N> for RebaseOp {
    type Out = ();
    fn run<L: PeerListMut<N>>(self, l: &mut ListMut<'_, N, L>) {
        l.rebase(self.old, self.new);
    }
}

/// Snapshot restore: add a peer unless it is already there.
pub(super) struct PutOp<const N: usize> {
    pub(super) peer: Peer<N>,
}

impl<const N: usize> ListOp<N> for PutOp<N> {
    type Out = bool;
    fn run<L: PeerListMut<N>>(self, l: &mut ListMut<'_, N, L>) -> bool {
        if l.find(&self.peer.addr).is_some() {
            return false;
        }
        l.push(self.peer);
        true
    }
}

/// Applies one announce to a list: insert, update or remove the announcer. `offset` is the
/// announcer's new expiry relative to the swarm's epoch. Returns what happened, the announcer's
/// position (to exclude it from the reply), whether it is a seeder now, whether a completed
/// download must be counted, and whether the peer's completed download is counted now.
fn apply<const N: usize, L: PeerListMut<N>>(
    list: &mut ListMut<'_, N, L>,
    addr: [u8; N],
    u: &Update,
    offset: u16,
    total_peers: usize,
) -> (Stored, Option<usize>, bool, bool, bool) {
    let seeder = u.left == 0;
    let pos = list.find(&addr);
    if u.event == Event::Stopped {
        if let Some(pos) = pos {
            list.remove(pos);
        }
        return (Stored::Removed, None, seeder, false, false);
    }
    let flags = if seeder { SEEDER } else { 0 };
    match pos {
        Some(pos) => {
            let m = list.peers.meta(pos);
            let was_seeder = m & SEEDER != 0;
            let already = m & COMPLETED != 0;
            // Counted once per peer per torrent: an explicit `completed` with left=0, or the
            // first time a known leecher shows up as a seeder.
            let count = !already && seeder && (u.event == Event::Completed || !was_seeder);
            let flags = flags | if already || count { COMPLETED } else { 0 };
            list.peers
                .set(pos, u.peer_id, flags | offset.min(OFFSET_MASK));
            match (was_seeder, seeder) {
                (false, true) => *list.seeders += 1,
                (true, false) => *list.seeders -= 1,
                _ => {}
            }
            (Stored::Stored, Some(pos), seeder, count, already || count)
        }
        None => {
            let count = seeder && u.event == Event::Completed;
            if total_peers >= u.max_peers {
                return (Stored::SwarmFull, None, seeder, count, count);
            }
            let mut peer = Peer {
                addr,
                peer_id: u.peer_id,
                meta: [0; 2],
            };
            peer.set_meta(flags | if count { COMPLETED } else { 0 }, offset);
            list.push(peer);
            (
                Stored::Stored,
                Some(list.peers.len() - 1),
                seeder,
                count,
                count,
            )
        }
    }
}
