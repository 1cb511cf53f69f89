//! A hand-written bencode writer for exactly the replies this tracker sends: announce (compact
//! or BEP 3 dict list), scrape, and failure. Keys are written in sorted order, as bencode
//! requires. Output goes into any [`BufMut`] (the server reuses one `BytesMut` per
//! connection); nothing else is allocated.
//!
//! `serde_bencode` is the reference: the tests check that these bytes decode with it to the
//! values that were written, for random inputs.

use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::BufMut;
use tracker_core::{InfoHash, NO_PEER_ID, ScrapeCounts};

/// The peers of an announce reply.
#[derive(Debug, Clone, Copy)]
pub enum Peers<'a> {
    /// BEP 23 / BEP 7: `peers` is concatenated 6-byte IPv4 entries, `peers6` 18-byte IPv6 ones.
    Compact {
        /// Concatenated 6-byte entries.
        v4: &'a [u8],
        /// Concatenated 18-byte entries.
        v6: &'a [u8],
    },
    /// BEP 3: `peers` is a list of dicts (`ip` as text, `peer id`, `port`), both families.
    Dicts {
        /// Concatenated 6-byte entries.
        v4: &'a [u8],
        /// Concatenated 18-byte entries.
        v6: &'a [u8],
        /// Peer ids of the v4 entries, in order (empty when `no_peer_id`).
        ids_v4: &'a [[u8; 20]],
        /// Peer ids of the v6 entries, in order (empty when `no_peer_id`).
        ids_v6: &'a [[u8; 20]],
        /// Whether `peer id` is written.
        with_ids: bool,
    },
}

/// An announce reply.
#[derive(Debug, Clone, Copy)]
pub struct AnnounceReply<'a> {
    /// Seeders (`complete`).
    pub complete: u32,
    /// Leechers (`incomplete`).
    pub incomplete: u32,
    /// Completed downloads (`downloaded`).
    pub downloaded: u32,
    /// `interval`, seconds.
    pub interval: u32,
    /// `min interval`, seconds.
    pub min_interval: u32,
    /// BEP 24 `external ip`: the requester's address as the tracker sees it.
    pub external_ip: IpAddr,
    /// The selected peers.
    pub peers: Peers<'a>,
}

/// Writes `i<n>e`.
pub fn int(out: &mut impl BufMut, n: u64) {
    out.put_u8(b'i');
    uint(out, n);
    out.put_u8(b'e');
}

/// Writes the decimal digits of `n`.
fn uint(out: &mut impl BufMut, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&buf[i..]);
}

/// Writes `<len>:<bytes>`.
pub fn bytes(out: &mut impl BufMut, b: &[u8]) {
    uint(out, b.len() as u64);
    out.put_u8(b':');
    out.put_slice(b);
}

/// A fixed stack buffer that `fmt::Write` fills (for IP text and failure messages).
struct StackText<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> StackText<N> {
    fn new() -> Self {
        Self {
            buf: [0; N],
            len: 0,
        }
    }
    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
    fn push(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }
}

impl<const N: usize> fmt::Write for StackText<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Truncates rather than failing: a failure reason cut short is better than none.
        let room = N - self.len;
        let mut take = s.len().min(room);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        self.buf[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

/// Writes `d14:failure reason<len>:<msg>e`. The message is cut at 256 bytes.
pub fn failure(out: &mut impl BufMut, msg: &dyn fmt::Display) {
    let mut text = StackText::<256>::new();
    let _ = write!(text, "{msg}");
    out.put_slice(b"d14:failure reason");
    bytes(out, text.as_bytes());
    out.put_u8(b'e');
}

/// Upper bound of the bytes [`announce`] writes for `r` (to reserve once).
pub fn announce_len(r: &AnnounceReply<'_>) -> usize {
    const FIXED: usize = 200;
    FIXED
        + match r.peers {
            Peers::Compact { v4, v6 } => v4.len() + v6.len(),
            // Per peer: "d2:ip<2+39>:...7:peer id20:...4:porti65535ee" < 110 bytes.
            Peers::Dicts { v4, v6, .. } => (v4.len() / 6 + v6.len() / 18 + 1) * 110,
        }
}

/// Writes an announce reply dict.
pub fn announce(out: &mut impl BufMut, r: &AnnounceReply<'_>) {
    out.put_slice(b"d8:complete");
    int(out, r.complete.into());
    out.put_slice(b"10:downloaded");
    int(out, r.downloaded.into());
    out.put_slice(b"11:external ip");
    match r.external_ip {
        IpAddr::V4(ip) => bytes(out, &ip.octets()),
        IpAddr::V6(ip) => bytes(out, &ip.octets()),
    }
    out.put_slice(b"10:incomplete");
    int(out, r.incomplete.into());
    out.put_slice(b"8:interval");
    int(out, r.interval.into());
    out.put_slice(b"12:min interval");
    int(out, r.min_interval.into());
    match r.peers {
        Peers::Compact { v4, v6 } => {
            out.put_slice(b"5:peers");
            bytes(out, v4);
            out.put_slice(b"6:peers6");
            bytes(out, v6);
        }
        Peers::Dicts {
            v4,
            v6,
            ids_v4,
            ids_v6,
            with_ids,
        } => {
            out.put_slice(b"5:peersl");
            for (i, c) in v4.chunks_exact(6).enumerate() {
                let ip = Ipv4Addr::new(c[0], c[1], c[2], c[3]);
                let port = u16::from_be_bytes([c[4], c[5]]);
                peer_dict(
                    out,
                    IpAddr::V4(ip),
                    port,
                    with_ids.then(|| ids_v4.get(i)).flatten(),
                );
            }
            for (i, c) in v6.chunks_exact(18).enumerate() {
                let mut a = [0u8; 16];
                a.copy_from_slice(&c[..16]);
                let port = u16::from_be_bytes([c[16], c[17]]);
                let ip = IpAddr::V6(Ipv6Addr::from(a));
                peer_dict(out, ip, port, with_ids.then(|| ids_v6.get(i)).flatten());
            }
            out.put_u8(b'e');
        }
    }
    out.put_u8(b'e');
}

/// One `compact=0` peer dict. A [`NO_PEER_ID`] (a peer learned from another cluster node: ids
/// are not replicated) gets no `peer id`, rather than a made-up one, as with `no_peer_id`.
fn peer_dict(out: &mut impl BufMut, ip: IpAddr, port: u16, id: Option<&[u8; 20]>) {
    let id = id.filter(|id| **id != NO_PEER_ID);
    let mut text = StackText::<48>::new();
    match ip {
        // Dotted quad by hand: `fmt` costs more than the rest of the entry.
        IpAddr::V4(v4) => {
            for (i, o) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    text.push(b'.');
                }
                if o >= 100 {
                    text.push(b'0' + o / 100);
                }
                if o >= 10 {
                    text.push(b'0' + o / 10 % 10);
                }
                text.push(b'0' + o % 10);
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(text, "{v6}");
        }
    }
    out.put_slice(b"d2:ip");
    bytes(out, text.as_bytes());
    if let Some(id) = id {
        out.put_slice(b"7:peer id");
        bytes(out, id);
    }
    out.put_slice(b"4:port");
    int(out, port.into());
    out.put_u8(b'e');
}

/// Upper bound of the bytes [`scrape`] writes for `n` hashes.
pub fn scrape_len(n: usize) -> usize {
    // "23:<20>" + "d8:completei4294967295e10:downloadedi..e10:incompletei..ee" < 110.
    16 + n * 110
}

/// Writes a scrape reply: `files` keyed by raw hash. `entries` must be sorted by hash and free
/// of duplicates (bencode dict keys are unique and sorted); the caller sorts.
pub fn scrape<'h>(
    out: &mut impl BufMut,
    entries: impl IntoIterator<Item = (&'h InfoHash, ScrapeCounts)>,
) {
    out.put_slice(b"d5:filesd");
    for (h, c) in entries {
        bytes(out, h.as_bytes());
        out.put_slice(b"d8:complete");
        int(out, c.seeders.into());
        out.put_slice(b"10:downloaded");
        int(out, c.downloaded.into());
        out.put_slice(b"10:incomplete");
        int(out, c.leechers.into());
        out.put_u8(b'e');
    }
    out.put_slice(b"ee");
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;
    use serde_bencode::value::Value;

    use super::*;

    fn dict(pairs: Vec<(&str, Value)>) -> Value {
        Value::Dict(
            pairs
                .into_iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v))
                .collect::<HashMap<_, _>>(),
        )
    }

    fn decode(b: &[u8]) -> Value {
        serde_bencode::from_bytes::<Value>(b).expect("serde_bencode decodes our bytes")
    }

    #[test]
    fn failure_reply_exact_bytes() {
        let mut out = Vec::new();
        failure(&mut out, &"missing info_hash");
        assert_eq!(out, b"d14:failure reason17:missing info_hashe");
        let mut out = Vec::new();
        failure(&mut out, &"x".repeat(1000));
        assert_eq!(
            decode(&out),
            dict(vec![("failure reason", Value::Bytes(vec![b'x'; 256]))])
        );
    }

    #[test]
    fn compact_reply_exact_bytes() {
        let mut out = Vec::new();
        let r = AnnounceReply {
            complete: 1,
            incomplete: 2,
            downloaded: 3,
            interval: 1800,
            min_interval: 900,
            external_ip: IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4)),
            peers: Peers::Compact {
                v4: &[10, 0, 0, 1, 0x1a, 0xe1],
                v6: &[],
            },
        };
        announce(&mut out, &r);
        assert_eq!(
            out,
            b"d8:completei1e10:downloadedi3e11:external ip4:\x01\x02\x03\x0410:incompletei2e8:intervali1800e12:min intervali900e5:peers6:\x0a\x00\x00\x01\x1a\xe16:peers60:e"
        );
        assert!(out.len() <= announce_len(&r));
    }

    fn arb_ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(|b| IpAddr::V4(Ipv4Addr::from(b))),
            any::<[u8; 16]>().prop_map(|b| IpAddr::V6(Ipv6Addr::from(b))),
        ]
    }

    proptest! {
        #[test]
        fn announce_decodes_with_serde_bencode(
            counts in any::<[u32; 5]>(),
            ext in arb_ip(),
            v4 in proptest::collection::vec((any::<[u8; 6]>(), any::<[u8; 20]>()), 0..40),
            v6 in proptest::collection::vec((any::<[u8; 18]>(), any::<[u8; 20]>()), 0..40),
            compact in any::<bool>(),
            with_ids in any::<bool>(),
        ) {
            let v4_bytes: Vec<u8> = v4.iter().flat_map(|(a, _)| *a).collect();
            let v6_bytes: Vec<u8> = v6.iter().flat_map(|(a, _)| *a).collect();
            let ids4: Vec<[u8; 20]> = v4.iter().map(|(_, i)| *i).collect();
            let ids6: Vec<[u8; 20]> = v6.iter().map(|(_, i)| *i).collect();
            let peers = if compact {
                Peers::Compact { v4: &v4_bytes, v6: &v6_bytes }
            } else {
                Peers::Dicts { v4: &v4_bytes, v6: &v6_bytes, ids_v4: &ids4, ids_v6: &ids6, with_ids }
            };
            let r = AnnounceReply {
                complete: counts[0], incomplete: counts[1], downloaded: counts[2],
                interval: counts[3], min_interval: counts[4], external_ip: ext, peers,
            };
            let mut out = Vec::new();
            announce(&mut out, &r);
            prop_assert!(out.len() <= announce_len(&r));
            let ext_bytes = match ext { IpAddr::V4(i) => i.octets().to_vec(), IpAddr::V6(i) => i.octets().to_vec() };
            let mut want = vec![
                ("complete", Value::Int(counts[0].into())),
                ("incomplete", Value::Int(counts[1].into())),
                ("downloaded", Value::Int(counts[2].into())),
                ("interval", Value::Int(counts[3].into())),
                ("min interval", Value::Int(counts[4].into())),
                ("external ip", Value::Bytes(ext_bytes)),
            ];
            if compact {
                want.push(("peers", Value::Bytes(v4_bytes.clone())));
                want.push(("peers6", Value::Bytes(v6_bytes.clone())));
            } else {
                let mut list = Vec::new();
                for (a, id) in &v4 {
                    let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string();
                    let mut d = vec![("ip", Value::Bytes(ip.into_bytes())), ("port", Value::Int(u16::from_be_bytes([a[4], a[5]]).into()))];
                    if with_ids && *id != NO_PEER_ID { d.push(("peer id", Value::Bytes(id.to_vec()))); }
                    list.push(dict(d));
                }
                for (a, id) in &v6 {
                    let mut ip = [0u8; 16];
                    ip.copy_from_slice(&a[..16]);
                    let ip = Ipv6Addr::from(ip).to_string();
                    let mut d = vec![("ip", Value::Bytes(ip.into_bytes())), ("port", Value::Int(u16::from_be_bytes([a[16], a[17]]).into()))];
                    if with_ids && *id != NO_PEER_ID { d.push(("peer id", Value::Bytes(id.to_vec()))); }
                    list.push(dict(d));
                }
                want.push(("peers", Value::List(list)));
            }
            prop_assert_eq!(decode(&out), dict(want));
            // Round trip: serde_bencode re-encodes a dict with sorted keys; ours must already be.
            prop_assert_eq!(serde_bencode::to_bytes(&decode(&out)).unwrap(), out);
        }

        #[test]
        fn scrape_decodes_with_serde_bencode(
            entries in proptest::collection::btree_map(any::<[u8; 20]>(), any::<[u32; 3]>(), 0..80),
        ) {
            let hashes: Vec<(InfoHash, ScrapeCounts)> = entries.iter().map(|(h, c)| {
                (InfoHash(*h), ScrapeCounts { seeders: c[0], leechers: c[1], downloaded: c[2] })
            }).collect();
            let mut out = Vec::new();
            scrape(&mut out, hashes.iter().map(|(h, c)| (h, *c)));
            prop_assert!(out.len() <= scrape_len(hashes.len()));
            let files: HashMap<Vec<u8>, Value> = entries.iter().map(|(h, c)| {
                (h.to_vec(), dict(vec![
                    ("complete", Value::Int(c[0].into())),
                    ("incomplete", Value::Int(c[1].into())),
                    ("downloaded", Value::Int(c[2].into())),
                ]))
            }).collect();
            prop_assert_eq!(decode(&out), dict(vec![("files", Value::Dict(files))]));
            prop_assert_eq!(serde_bencode::to_bytes(&decode(&out)).unwrap(), out);
        }

        #[test]
        fn failure_decodes_with_serde_bencode(msg in "\\PC{0,200}") {
            let mut out = Vec::new();
            failure(&mut out, &msg);
            let want = dict(vec![("failure reason", Value::Bytes(msg.as_bytes().iter().copied().take(256).collect()))]);
            if msg.len() <= 256 {
                prop_assert_eq!(decode(&out), want);
            } else {
                let _ = decode(&out);
            }
        }
    }
}
