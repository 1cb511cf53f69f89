//! The client's side of the wire, for tests, benches and load tools: request encoders and
//! the reply parser. The server never calls these.

use std::net::SocketAddr;

use tracker_core::InfoHash;

use super::*;

/// Writes a connect request into `out` (which must hold 16 bytes); returns 16 (0 if too short).
pub fn write_connect_request(out: &mut [u8], tid: TransactionId) -> usize {
    let mut h = [0u8; CONNECT_LEN];
    h[..8].copy_from_slice(&PROTOCOL_ID.to_be_bytes());
    h[8..12].copy_from_slice(&ACTION_CONNECT.to_be_bytes());
    h[12..].copy_from_slice(&tid.0);
    if put(out, 0, &h) { CONNECT_LEN } else { 0 }
}

/// Encodes an announce request; `url` becomes URLData chunks of at most 255 bytes after the
/// 98 fixed bytes (no options when empty). `req.options` is ignored.
pub fn encode_announce_request(req: &AnnounceRequest<'_>, url: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(ANNOUNCE_LEN + url.len() + url.len() / 255 * 2 + 3);
    v.extend_from_slice(&req.connection_id.0);
    v.extend_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
    v.extend_from_slice(&req.transaction_id.0);
    v.extend_from_slice(&req.info_hash.0);
    v.extend_from_slice(&req.peer_id.0);
    v.extend_from_slice(&req.downloaded.to_be_bytes());
    v.extend_from_slice(&req.left.to_be_bytes());
    v.extend_from_slice(&req.uploaded.to_be_bytes());
    v.extend_from_slice(&event_to_u32(req.event).to_be_bytes());
    v.extend_from_slice(&req.ip);
    v.extend_from_slice(&req.key.to_be_bytes());
    v.extend_from_slice(&req.numwant.to_be_bytes());
    v.extend_from_slice(&req.port.to_be_bytes());
    for chunk in url.chunks(255) {
        v.push(OPTION_URL_DATA);
        v.push(chunk.len() as u8);
        v.extend_from_slice(chunk);
    }
    if !url.is_empty() {
        v.push(OPTION_END);
    }
    v
}

/// Encodes a scrape request.
pub fn encode_scrape_request(
    cid: ConnectionId,
    tid: TransactionId,
    hashes: &[InfoHash],
) -> Vec<u8> {
    let mut v = Vec::with_capacity(SCRAPE_HEADER_LEN + 20 * hashes.len());
    v.extend_from_slice(&cid.0);
    v.extend_from_slice(&ACTION_SCRAPE.to_be_bytes());
    v.extend_from_slice(&tid.0);
    for h in hashes {
        v.extend_from_slice(&h.0);
    }
    v
}

/// A reply as a client decodes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// action 0.
    Connect {
        /// Echoed.
        transaction_id: TransactionId,
        /// To use in announces and scrapes.
        connection_id: ConnectionId,
    },
    /// action 1.
    Announce {
        /// Echoed.
        transaction_id: TransactionId,
        /// Seconds.
        interval: u32,
        /// Leechers.
        leechers: u32,
        /// Seeders.
        seeders: u32,
        /// The peers.
        peers: Vec<SocketAddr>,
    },
    /// action 2: (seeders, completed, leechers) per hash.
    Scrape {
        /// Echoed.
        transaction_id: TransactionId,
        /// Per hash, in request order.
        entries: Vec<(u32, u32, u32)>,
    },
    /// action 3.
    Error {
        /// Echoed.
        transaction_id: TransactionId,
        /// The message (lossy UTF-8).
        message: String,
    },
}

/// Decodes a reply; announce peers are 18-byte entries when `v6`, else 6-byte ones.
pub fn parse_response(b: &[u8], v6: bool) -> Option<Response> {
    if b.len() < 8 {
        return None;
    }
    let transaction_id = TransactionId(read_array(b, 4));
    match u32_at(b, 0) {
        ACTION_CONNECT if b.len() == CONNECT_LEN => Some(Response::Connect {
            transaction_id,
            connection_id: ConnectionId(read_array(b, 8)),
        }),
        ACTION_ANNOUNCE if b.len() >= ANNOUNCE_HEADER_LEN => {
            let entry = if v6 { 18 } else { 6 };
            let body = &b[ANNOUNCE_HEADER_LEN..];
            if body.len() % entry != 0 {
                return None;
            }
            let peers = body
                .chunks_exact(entry)
                .map(|c| {
                    if v6 {
                        tracker_core::types::socket_from_v6(&read_array(c, 0))
                    } else {
                        tracker_core::types::socket_from_v4(&read_array(c, 0))
                    }
                })
                .collect();
            Some(Response::Announce {
                transaction_id,
                interval: u32_at(b, 8),
                leechers: u32_at(b, 12),
                seeders: u32_at(b, 16),
                peers,
            })
        }
        ACTION_SCRAPE if (b.len() - 8) % 12 == 0 => Some(Response::Scrape {
            transaction_id,
            entries: b[8..]
                .chunks_exact(12)
                .map(|c| (u32_at(c, 0), u32_at(c, 4), u32_at(c, 8)))
                .collect(),
        }),
        ACTION_ERROR => Some(Response::Error {
            transaction_id,
            message: String::from_utf8_lossy(&b[8..]).into_owned(),
        }),
        _ => None,
    }
}
