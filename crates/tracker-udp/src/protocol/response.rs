//! Replies as the server writes them, into a caller's buffer, without allocating: connect,
//! error, announce (header, then peers through [`AnnounceWriter`], a `PeerSink`) and scrape.

use tracker_core::PeerSink;

use super::*;

/// Most peers of `entry_len` bytes an announce reply of at most `max_len` bytes can carry.
pub const fn max_peers_fitting(max_len: usize, entry_len: usize) -> u32 {
    let n = max_len.saturating_sub(ANNOUNCE_HEADER_LEN) / entry_len;
    if n > u32::MAX as usize {
        u32::MAX
    } else {
        n as u32
    }
}

/// Bytes of an announce reply carrying `v4` IPv4 or `v6` IPv6 peers at most, of a scrape
/// reply, and of an error reply: the send buffer size a worker needs.
pub const fn reply_capacity(max_v4: u32, max_v6: u32) -> usize {
    let a = ANNOUNCE_HEADER_LEN + 6 * max_v4 as usize;
    let b = ANNOUNCE_HEADER_LEN + 18 * max_v6 as usize;
    let mut m = if a > b { a } else { b };
    if MAX_SCRAPE_REPLY_LEN > m {
        m = MAX_SCRAPE_REPLY_LEN;
    }
    if MAX_ERROR_REPLY_LEN > m {
        m = MAX_ERROR_REPLY_LEN;
    }
    m
}

/// Writes a connect reply; returns its length (0 if `out` is shorter than 16 bytes).
pub fn write_connect_response(out: &mut [u8], tid: TransactionId, cid: ConnectionId) -> usize {
    let mut h = [0u8; CONNECT_LEN];
    h[..4].copy_from_slice(&ACTION_CONNECT.to_be_bytes());
    h[4..8].copy_from_slice(&tid.0);
    h[8..].copy_from_slice(&cid.0);
    if put(out, 0, &h) { CONNECT_LEN } else { 0 }
}

/// Writes an error reply; the message is cut at [`MAX_ERROR_MESSAGE_LEN`] bytes. Returns its
/// length (0 if `out` is too short).
pub fn write_error_response(out: &mut [u8], tid: TransactionId, message: &str) -> usize {
    let msg = &message.as_bytes()[..message.len().min(MAX_ERROR_MESSAGE_LEN)];
    if !put(out, 0, &ACTION_ERROR.to_be_bytes()) || !put(out, 4, &tid.0) || !put(out, 8, msg) {
        return 0;
    }
    ERROR_HEADER_LEN + msg.len()
}

/// Writes an announce reply's 20-byte header; the peers follow it (see [`AnnounceWriter`]).
pub fn write_announce_header(
    out: &mut [u8],
    tid: TransactionId,
    interval: u32,
    leechers: u32,
    seeders: u32,
) -> usize {
    let mut h = [0u8; ANNOUNCE_HEADER_LEN];
    h[..4].copy_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
    h[4..8].copy_from_slice(&tid.0);
    h[8..12].copy_from_slice(&interval.to_be_bytes());
    h[12..16].copy_from_slice(&leechers.to_be_bytes());
    h[16..20].copy_from_slice(&seeders.to_be_bytes());
    if put(out, 0, &h) {
        ANNOUNCE_HEADER_LEN
    } else {
        0
    }
}

/// A [`PeerSink`] writing compact peers of one family straight into a reply buffer after
/// the 20-byte header. Entries of the other family, and entries that do not fit, are dropped
/// (the tracker never sends either when asked for one family with a fitting cap).
#[derive(Debug)]
pub struct AnnounceWriter<'b> {
    out: &'b mut [u8],
    len: usize,
    v6: bool,
}

impl<'b> AnnounceWriter<'b> {
    /// Peers go to `out[ANNOUNCE_HEADER_LEN..]`; `v6` picks the 18-byte family.
    pub fn new(out: &'b mut [u8], v6: bool) -> Self {
        Self {
            out,
            len: ANNOUNCE_HEADER_LEN,
            v6,
        }
    }

    /// Writes the header over the first 20 bytes and returns the reply's total length
    /// (0 if the buffer cannot even hold the header).
    pub fn finish(self, tid: TransactionId, interval: u32, leechers: u32, seeders: u32) -> usize {
        if write_announce_header(self.out, tid, interval, leechers, seeders) == 0 {
            return 0;
        }
        self.len
    }
}

impl PeerSink for AnnounceWriter<'_> {
    #[inline]
    fn push_v4(&mut self, addr: &[u8; 6], _peer_id: &[u8; 20]) {
        if !self.v6 && put(self.out, self.len, addr) {
            self.len += 6;
        }
    }
    #[inline]
    fn push_v6(&mut self, addr: &[u8; 18], _peer_id: &[u8; 20]) {
        if self.v6 && put(self.out, self.len, addr) {
            self.len += 18;
        }
    }
    /// BEP 15 replies carry addresses only.
    #[inline]
    fn wants_peer_ids(&self) -> bool {
        false
    }
}

/// Writes a scrape reply; `counts` yields (seeders, completed, leechers) per hash, in request
/// order. Returns its length; entries that do not fit are left out.
pub fn write_scrape_response(
    out: &mut [u8],
    tid: TransactionId,
    counts: impl IntoIterator<Item = (u32, u32, u32)>,
) -> usize {
    if !put(out, 0, &ACTION_SCRAPE.to_be_bytes()) || !put(out, 4, &tid.0) {
        return 0;
    }
    let mut len = 8;
    for (s, c, l) in counts {
        let mut e = [0u8; 12];
        e[..4].copy_from_slice(&s.to_be_bytes());
        e[4..8].copy_from_slice(&c.to_be_bytes());
        e[8..].copy_from_slice(&l.to_be_bytes());
        if !put(out, len, &e) {
            break;
        }
        len += 12;
    }
    len
}
