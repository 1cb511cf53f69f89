//! Wire-level identifiers and small value types shared by every protocol.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a 20-byte identifier could not be parsed from hex.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected 40 hex characters (20 bytes), got {0:?}")]
pub struct HexIdError(pub String);

macro_rules! id20 {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; 20]);

        impl $name {
            /// The raw 20 bytes.
            pub fn as_bytes(&self) -> &[u8; 20] {
                &self.0
            }

            /// Takes exactly 20 bytes; anything else is `None`.
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                <[u8; 20]>::try_from(bytes).ok().map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut buf = [0u8; 40];
                // Cannot fail: the buffer is exactly twice the input length.
                hex::encode_to_slice(self.0, &mut buf).map_err(|_| fmt::Error)?;
                f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }

        impl FromStr for $name {
            type Err = HexIdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let mut out = [0u8; 20];
                hex::decode_to_slice(s, &mut out).map_err(|_| HexIdError(s.to_owned()))?;
                Ok(Self(out))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

id20!(
    /// A torrent's v1 info hash (SHA-1 of the bencoded info dict), or a v2 hash truncated to 20 bytes.
    InfoHash
);
id20!(
    /// The 20-byte peer id a client announces. An attribute of a peer, never its identity.
    PeerId
);

/// The peer id stored and handed out where the tracker does not know one: a list that keeps
/// no peer ids, a peer learned from another cluster node (ids are not replicated), a peer
/// loaded from a snapshot written without ids. Shown as none (API, snapshots) and left out of
/// `compact=0` replies.
pub const NO_PEER_ID: [u8; 20] = [0; 20];

/// The `event` of an announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Event {
    /// A regular interval announce (absent or empty `event`, UDP 0).
    #[default]
    None,
    /// UDP 1 / HTTP `completed`.
    Completed,
    /// UDP 2 / HTTP `started`.
    Started,
    /// UDP 3 / HTTP `stopped`: the peer leaves the swarm.
    Stopped,
}

/// What a peer is doing, derived from `left`: seeding exactly when `left == 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerStatus {
    /// Has the whole torrent (`left == 0`).
    Seeding,
    /// Still downloading (`left > 0`).
    Leeching,
}

impl PeerStatus {
    /// The status a peer announcing `left` bytes remaining has.
    pub fn from_left(left: u64) -> Self {
        if left == 0 {
            Self::Seeding
        } else {
            Self::Leeching
        }
    }
}

impl fmt::Display for PeerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Seeding => "seeding",
            Self::Leeching => "leeching",
        })
    }
}

/// Which protocol a request came in on (for statistics and caps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// BEP 3 / BEP 23 / BEP 48 over HTTP.
    Http,
    /// BEP 15 over UDP.
    Udp,
}

/// An address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4 (6-byte compact entries).
    V4,
    /// IPv6 (18-byte compact entries).
    V6,
}

/// Turns a v4-mapped IPv6 address (`::ffff:a.b.c.d`) into plain IPv4; leaves others alone.
/// Everything in the tracker goes through this first, so one host is one peer whichever
/// socket family it reached us on.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// The compact (BEP 23) form of an IPv4 peer: 4 address bytes then the port, big-endian.
pub fn compact_v4(ip: Ipv4Addr, port: u16) -> [u8; 6] {
    let mut out = [0u8; 6];
    out[..4].copy_from_slice(&ip.octets());
    out[4..].copy_from_slice(&port.to_be_bytes());
    out
}

/// The compact (BEP 7) form of an IPv6 peer: 16 address bytes then the port, big-endian.
pub fn compact_v6(ip: Ipv6Addr, port: u16) -> [u8; 18] {
    let mut out = [0u8; 18];
    out[..16].copy_from_slice(&ip.octets());
    out[16..].copy_from_slice(&port.to_be_bytes());
    out
}

/// Decodes a 6-byte compact IPv4 entry.
pub fn socket_from_v4(b: &[u8; 6]) -> SocketAddr {
    let ip = Ipv4Addr::new(b[0], b[1], b[2], b[3]);
    SocketAddr::new(IpAddr::V4(ip), u16::from_be_bytes([b[4], b[5]]))
}

/// Decodes an 18-byte compact IPv6 entry.
pub fn socket_from_v6(b: &[u8; 18]) -> SocketAddr {
    let mut ip = [0u8; 16];
    ip.copy_from_slice(&b[..16]);
    SocketAddr::new(
        IpAddr::V6(Ipv6Addr::from(ip)),
        u16::from_be_bytes([b[16], b[17]]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_errors() {
        let ih = InfoHash([0xab; 20]);
        let s = ih.to_string();
        assert_eq!(s, "ab".repeat(20));
        assert_eq!(s.parse::<InfoHash>().unwrap(), ih);
        assert_eq!("AB".repeat(20).parse::<InfoHash>().unwrap(), ih);
        assert!("ab".repeat(19).parse::<InfoHash>().is_err());
        assert!("zz".repeat(20).parse::<InfoHash>().is_err());
        let json = serde_json::to_string(&PeerId([1; 20])).unwrap();
        assert_eq!(json, format!("\"{}\"", "01".repeat(20)));
        assert_eq!(
            serde_json::from_str::<PeerId>(&json).unwrap(),
            PeerId([1; 20])
        );
    }

    #[test]
    fn v4_mapped_is_canonicalised() {
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(canonical_ip(mapped), "10.1.2.3".parse::<IpAddr>().unwrap());
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(canonical_ip(v6), v6);
    }

    #[test]
    fn compact_forms_round_trip() {
        let a = compact_v4(Ipv4Addr::new(1, 2, 3, 4), 6881);
        assert_eq!(a, [1, 2, 3, 4, 0x1a, 0xe1]);
        assert_eq!(socket_from_v4(&a), "1.2.3.4:6881".parse().unwrap());
        let b = compact_v6("2001:db8::1".parse().unwrap(), 443);
        assert_eq!(socket_from_v6(&b), "[2001:db8::1]:443".parse().unwrap());
    }
}
