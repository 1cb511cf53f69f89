//! Changes learned from elsewhere (another cluster node, the shared store at start) applied to
//! one swarm: insert or update a peer with an absolute expiry, remove one. No reply is built,
//! nothing is counted: the node where the announce happened counted it.

use super::list::{ListMut, PeerListMut};
use super::peer::{COMPLETED, OFFSET_MASK, Peer, SEEDER, meta_expiry};
use super::{ListOp, MAX_PEER_TIMEOUT, Swarm};
use crate::changes::CompactAddr;
use crate::types::NO_PEER_ID;

/// Insert or update; an update that would move the expiry backwards is older than what the
/// list holds and is ignored, so replicated records may arrive in any order.
struct UpsertOp<const N: usize> {
    addr: [u8; N],
    args: UpsertArgs,
}

/// What an upsert needs besides the address (the same for both families).
#[derive(Clone, Copy)]
struct UpsertArgs {
    /// `SEEDER` and `COMPLETED` bits.
    flags: u16,
    offset: u16,
    epoch: u32,
    total: usize,
    max_peers: usize,
}

impl<const N: usize> ListOp<N> for UpsertOp<N> {
    type Out = bool;
    fn run<L: PeerListMut<N>>(self, l: &mut ListMut<'_, N, L>) -> bool {
        let a = self.args;
        let new_meta = a.flags | a.offset.min(OFFSET_MASK);
        match l.find(&self.addr) {
            Some(pos) => {
                let m = l.peers.meta(pos);
                if meta_expiry(m, a.epoch) > meta_expiry(new_meta, a.epoch) {
                    return false;
                }
                // Once counted anywhere, a completion stays counted for this peer.
                let meta = new_meta | (m & COMPLETED);
                l.peers.set_meta(pos, meta);
                match (m & SEEDER != 0, meta & SEEDER != 0) {
                    (false, true) => *l.seeders += 1,
                    (true, false) => *l.seeders -= 1,
                    _ => {}
                }
                true
            }
            None if a.total >= a.max_peers => false,
            None => {
                l.push(Peer {
                    addr: self.addr,
                    peer_id: NO_PEER_ID,
                    meta: new_meta.to_le_bytes(),
                });
                true
            }
        }
    }
}

struct RemoveOp<const N: usize> {
    addr: [u8; N],
}

impl<const N: usize> ListOp<N> for RemoveOp<N> {
    type Out = bool;
    fn run<L: PeerListMut<N>>(self, l: &mut ListMut<'_, N, L>) -> bool {
        match l.find(&self.addr) {
            Some(pos) => {
                l.remove(pos);
                true
            }
            None => false,
        }
    }
}

impl Swarm {
    /// Inserts or updates a peer known elsewhere, alive until `expiry` (unix seconds, capped at
    /// `now + MAX_PEER_TIMEOUT`). A new peer gets a zero peer id. Returns whether anything
    /// changed (not for an expired record, a full swarm, or an older record than the one held).
    pub(crate) fn upsert_remote(
        &mut self,
        addr: &CompactAddr,
        expiry: u32,
        seeder: bool,
        completed: bool,
        now: u32,
        max_peers: usize,
    ) -> bool {
        self.purge_if_due(now);
        if expiry <= now {
            return false;
        }
        let expiry = expiry.min(now.saturating_add(MAX_PEER_TIMEOUT));
        let offset = self.offset_for(expiry, now);
        let flags = if seeder { SEEDER } else { 0 } | if completed { COMPLETED } else { 0 };
        let args = UpsertArgs {
            flags,
            offset,
            epoch: self.epoch,
            total: self.len(),
            max_peers,
        };
        let changed = match *addr {
            CompactAddr::V4(addr) => self.with_v4(UpsertOp { addr, args }),
            CompactAddr::V6(addr) => self.with_v6(UpsertOp { addr, args }),
        };
        if changed {
            self.note_expiry(offset);
        }
        self.drop_empty_ext();
        changed
    }

    /// Removes a peer; returns whether it was there.
    pub(crate) fn remove_remote(&mut self, addr: &CompactAddr) -> bool {
        let removed = match *addr {
            CompactAddr::V4(addr) => self.with_v4(RemoveOp { addr }),
            CompactAddr::V6(_) if self.ext.is_none() => false,
            CompactAddr::V6(addr) => self.with_v6(RemoveOp { addr }),
        };
        self.drop_empty_ext();
        removed
    }
}
