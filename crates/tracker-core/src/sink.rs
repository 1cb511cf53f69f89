//! What the protocol crates see of stored peers: the [`PeerSink`] an announce writes its
//! selected peers into (compact wire form, no allocation), [`CompactPeers`] (a collecting sink
//! for tests and simple callers) and [`PeerView`] (a peer as operators and snapshots see it).

use std::net::SocketAddr;

use crate::types::{PeerId, PeerStatus, socket_from_v4, socket_from_v6};

/// Receives the peers selected for an announce reply, in their compact wire form, so that a
/// protocol crate can serialise straight into its send buffer without allocating.
pub trait PeerSink {
    /// An IPv4 peer: 4 address bytes and the port, big-endian.
    fn push_v4(&mut self, addr: &[u8; 6], peer_id: &[u8; 20]);
    /// An IPv6 peer: 16 address bytes and the port, big-endian.
    fn push_v6(&mut self, addr: &[u8; 18], peer_id: &[u8; 20]);
    /// Whether the peer ids handed to `push_*` are used. When not, they are not read (they
    /// live apart from the addresses in large lists) and the pushes get zeros.
    fn wants_peer_ids(&self) -> bool {
        true
    }
}

/// A convenience sink collecting compact bytes (tests, benches, simple callers).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CompactPeers {
    /// Concatenated 6-byte IPv4 entries.
    pub v4: Vec<u8>,
    /// Concatenated 18-byte IPv6 entries.
    pub v6: Vec<u8>,
    /// Peer ids in the order pushed, both families.
    pub peer_ids: Vec<PeerId>,
}

impl CompactPeers {
    /// Empties the buffers, keeping their capacity.
    pub fn clear(&mut self) {
        self.v4.clear();
        self.v6.clear();
        self.peer_ids.clear();
    }

    /// Every peer as a socket address (IPv4 first).
    pub fn addrs(&self) -> Vec<SocketAddr> {
        let mut out = Vec::new();
        for c in self.v4.chunks_exact(6) {
            out.push(socket_from_v4(c.try_into().unwrap_or(&[0; 6])));
        }
        for c in self.v6.chunks_exact(18) {
            out.push(socket_from_v6(c.try_into().unwrap_or(&[0; 18])));
        }
        out
    }
}

impl PeerSink for CompactPeers {
    fn push_v4(&mut self, addr: &[u8; 6], peer_id: &[u8; 20]) {
        self.v4.extend_from_slice(addr);
        self.peer_ids.push(PeerId(*peer_id));
    }
    fn push_v6(&mut self, addr: &[u8; 18], peer_id: &[u8; 20]) {
        self.v6.extend_from_slice(addr);
        self.peer_ids.push(PeerId(*peer_id));
    }
}

/// A peer as shown to operators and written to snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerView {
    /// The peer's address (its identity in the swarm).
    pub addr: SocketAddr,
    /// The last peer id it announced; `None` when the tracker keeps no peer ids
    /// (`[swarm] keep_peer_ids = false`) or does not know it (a peer learned from another
    /// cluster node: ids are not replicated).
    pub peer_id: Option<PeerId>,
    /// Seeding or leeching.
    pub status: PeerStatus,
    /// Whether its completed download was counted.
    pub completed: bool,
    /// Unix seconds at which it expires.
    pub expiry: u32,
}
