//! One stored peer: the packed record and its meta bits (flags and the 14-bit expiry offset).
//!
//! The layout and the reason for it are in the parent module's doc.

use std::net::SocketAddr;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::sink::PeerView;
use crate::types::{NO_PEER_ID, PeerId, PeerStatus};

pub(super) const SEEDER: u16 = 1 << 15;
pub(super) const COMPLETED: u16 = 1 << 14;
pub(super) const OFFSET_MASK: u16 = (1 << 14) - 1;

/// The longest peer timeout the compact expiry can hold, in seconds (half the 14-bit range, so
/// that a swarm needs re-basing at most once per this many seconds).
pub const MAX_PEER_TIMEOUT: u32 = (OFFSET_MASK as u32) / 2;

/// The expiry (unix seconds) that a peer's meta encodes, relative to its swarm's `epoch`.
#[inline]
pub(super) fn meta_expiry(meta: u16, epoch: u32) -> u32 {
    epoch.saturating_add(u32::from(meta & OFFSET_MASK))
}

/// A stored peer. All fields are byte arrays so the record is packed without `repr(packed)`
/// (and a run of records can be viewed as bytes and back, see `list::Packed`).
#[derive(Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub(super) struct Peer<const N: usize> {
    pub(super) addr: [u8; N],
    pub(super) peer_id: [u8; 20],
    pub(super) meta: [u8; 2],
}

impl<const N: usize> Peer<N> {
    #[inline]
    pub(super) fn meta(&self) -> u16 {
        u16::from_le_bytes(self.meta)
    }
    #[inline]
    pub(super) fn set_meta(&mut self, flags: u16, offset: u16) {
        self.meta = (flags | offset.min(OFFSET_MASK)).to_le_bytes();
    }
    #[inline]
    pub(super) fn expiry(&self, epoch: u32) -> u32 {
        meta_expiry(self.meta(), epoch)
    }
    #[inline]
    pub(super) fn is_seeder(&self) -> bool {
        self.meta() & SEEDER != 0
    }
    #[inline]
    pub(super) fn completed(&self) -> bool {
        self.meta() & COMPLETED != 0
    }
    #[inline]
    pub(super) fn alive(&self, now: u32, epoch: u32) -> bool {
        self.expiry(epoch) > now
    }
    /// As operators and snapshots see it; `with_id` false when the swarm keeps no peer ids. A
    /// [`NO_PEER_ID`] (a peer learned from another cluster node) shows as none.
    pub(super) fn view(&self, epoch: u32, addr: SocketAddr, with_id: bool) -> PeerView {
        PeerView {
            addr,
            peer_id: (with_id && self.peer_id != NO_PEER_ID).then_some(PeerId(self.peer_id)),
            status: if self.is_seeder() {
                PeerStatus::Seeding
            } else {
                PeerStatus::Leeching
            },
            completed: self.completed(),
            expiry: self.expiry(epoch),
        }
    }
}

impl<const N: usize> std::fmt::Debug for Peer<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("addr", &self.addr)
            .field("peer_id", &PeerId(self.peer_id))
            .field("meta", &self.meta())
            .finish()
    }
}
