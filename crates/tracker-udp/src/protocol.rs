//! The BEP 15 wire codec, with BEP 41 options. Pure: bytes in, typed values out, and replies
//! written into a caller's buffer. No I/O, no allocation on the server side.
//!
//! Server side: [`parse_request`] and the `write_*_response` functions. Client side (tests,
//! benches, load tools): the `write_*_request` functions and [`parse_response`].
//!
//! Parsing never panics on any input; [`ParseError`] says whether the packet carried enough
//! to answer with an error (a connection id and a transaction id the server can check) or must
//! be dropped.

use std::net::SocketAddr;

use tracker_core::{Event, InfoHash, PeerId, PeerSink};

/// The magic `protocol_id` of a connect request.
pub const PROTOCOL_ID: u64 = 0x0417_2710_1980;
/// `action` of connect.
pub const ACTION_CONNECT: u32 = 0;
/// `action` of announce.
pub const ACTION_ANNOUNCE: u32 = 1;
/// `action` of scrape.
pub const ACTION_SCRAPE: u32 = 2;
/// `action` of an error reply.
pub const ACTION_ERROR: u32 = 3;

/// Length of a connect request and of a connect reply.
pub const CONNECT_LEN: usize = 16;
/// Length of an announce request without BEP 41 options.
pub const ANNOUNCE_LEN: usize = 98;
/// Length of an announce reply before its peers.
pub const ANNOUNCE_HEADER_LEN: usize = 20;
/// Length of a scrape request or reply header.
pub const SCRAPE_HEADER_LEN: usize = 16;
/// Most info hashes in one scrape request (so the reply, 8 + 12 n bytes, stays small).
pub const MAX_SCRAPE_HASHES: usize = 72;
/// Length of a scrape reply to [`MAX_SCRAPE_HASHES`] hashes.
pub const MAX_SCRAPE_REPLY_LEN: usize = 8 + 12 * MAX_SCRAPE_HASHES;
/// Longest error message we send.
pub const MAX_ERROR_MESSAGE_LEN: usize = 64;
/// Length of the longest error reply.
pub const MAX_ERROR_REPLY_LEN: usize = ERROR_HEADER_LEN + MAX_ERROR_MESSAGE_LEN;
/// Bytes of an error reply before its message (action, transaction id).
pub const ERROR_HEADER_LEN: usize = 8;

/// BEP 41 option: end of options (the rest of the packet is ignored).
pub const OPTION_END: u8 = 0;
/// BEP 41 option: one byte of padding.
pub const OPTION_NOP: u8 = 1;
/// BEP 41 option: a chunk of URL data (length byte, then up to 255 bytes).
pub const OPTION_URL_DATA: u8 = 2;

/// A connection id as it travels: 8 opaque bytes (see [`crate::connection_id`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ConnectionId(pub [u8; 8]);

/// A transaction id: 4 bytes chosen by the client and echoed back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TransactionId(pub [u8; 4]);

/// A request the server can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request<'a> {
    /// action 0.
    Connect(ConnectRequest),
    /// action 1.
    Announce(AnnounceRequest<'a>),
    /// action 2.
    Scrape(ScrapeRequest<'a>),
}

/// A connect request (exactly 16 bytes, with the magic protocol id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectRequest {
    /// Echoed.
    pub transaction_id: TransactionId,
}

/// An announce request (98 bytes, then BEP 41 options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnounceRequest<'a> {
    /// Must be one we issued to this IP, recently.
    pub connection_id: ConnectionId,
    /// Echoed.
    pub transaction_id: TransactionId,
    /// The torrent.
    pub info_hash: InfoHash,
    /// The client's peer id.
    pub peer_id: PeerId,
    /// Bytes downloaded (read, not used).
    pub downloaded: u64,
    /// Bytes left; 0 means seeder.
    pub left: u64,
    /// Bytes uploaded (read, not used).
    pub uploaded: u64,
    /// 0 none, 1 completed, 2 started, 3 stopped; any other value reads as none.
    pub event: Event,
    /// The IP field (ignored by the server: DESIGN.md section 3).
    pub ip: [u8; 4],
    /// The client's `key`.
    pub key: u32,
    /// Peers wanted; -1 (or any negative) means the default.
    pub numwant: i32,
    /// The port the client listens on.
    pub port: u16,
    /// The BEP 41 options that followed byte 98, already checked to be well formed.
    pub options: Options<'a>,
}

/// BEP 41 options of an announce, borrowed from the packet and checked well formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options<'a>(&'a [u8]);

impl<'a> Options<'a> {
    /// Checks `bytes` (everything after byte 98) and keeps them. Errors name what is wrong.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, &'static str> {
        let mut i = 0;
        while let Some(&kind) = bytes.get(i) {
            match kind {
                OPTION_END => return Ok(Self(&bytes[..i])),
                OPTION_NOP => i += 1,
                _ => {
                    // URLData and unknown options alike: a length byte, then that many bytes.
                    let Some(&len) = bytes.get(i + 1) else {
                        return Err("truncated BEP 41 option");
                    };
                    let end = i + 2 + usize::from(len);
                    if end > bytes.len() {
                        return Err("truncated BEP 41 option");
                    }
                    i = end;
                }
            }
        }
        Ok(Self(bytes))
    }

    /// The raw option bytes (up to, not including, EndOfOptions).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// The URLData chunks, in order; concatenated they are the URL's path and query.
    pub fn url_chunks(&self) -> UrlChunks<'a> {
        UrlChunks(self.0)
    }

    /// Total URL data length in bytes.
    pub fn url_len(&self) -> usize {
        self.url_chunks().map(<[u8]>::len).sum()
    }

    /// Concatenates the URL data into `buf`; `None` when it does not fit.
    pub fn url_data<'b>(&self, buf: &'b mut [u8]) -> Option<&'b [u8]> {
        let mut n = 0;
        for c in self.url_chunks() {
            buf.get_mut(n..n + c.len())?.copy_from_slice(c);
            n += c.len();
        }
        buf.get(..n)
    }
}

/// Iterator over the URLData chunks of [`Options`].
#[derive(Debug, Clone)]
pub struct UrlChunks<'a>(&'a [u8]);

impl<'a> Iterator for UrlChunks<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            let (&kind, rest) = self.0.split_first()?;
            if kind == OPTION_END {
                self.0 = &[];
                return None;
            }
            if kind == OPTION_NOP {
                self.0 = rest;
                continue;
            }
            let (&len, rest) = rest.split_first()?;
            let len = usize::from(len).min(rest.len());
            let (data, rest) = rest.split_at(len);
            self.0 = rest;
            if kind == OPTION_URL_DATA {
                return Some(data);
            }
        }
    }
}

/// A scrape request: 1 to 72 info hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScrapeRequest<'a> {
    /// Must be one we issued to this IP, recently.
    pub connection_id: ConnectionId,
    /// Echoed.
    pub transaction_id: TransactionId,
    hashes: &'a [u8],
}

impl<'a> ScrapeRequest<'a> {
    /// The info hashes, in request order.
    pub fn info_hashes(&self) -> impl ExactSizeIterator<Item = InfoHash> + 'a {
        self.hashes
            .chunks_exact(20)
            .map(|c| InfoHash(read_array(c, 0)))
    }

    /// How many info hashes.
    pub fn len(&self) -> usize {
        self.hashes.len() / 20
    }

    /// Never true for a parsed request (at least one hash is required).
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
}

/// Why a packet is not a request we act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Malformed, but it carries a connection id and a transaction id: answer with an error
    /// if the connection id is valid for the source.
    Sendable {
        /// The packet's connection id (still to be checked).
        connection_id: ConnectionId,
        /// To echo.
        transaction_id: TransactionId,
        /// The error text (at most [`MAX_ERROR_MESSAGE_LEN`] bytes).
        message: &'static str,
    },
    /// Not even a header (too short, or a connect without the magic): drop it.
    Unsendable,
}

#[inline]
fn read_array<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(s) = b.get(at..at + N) {
        out.copy_from_slice(s);
    }
    out
}

#[inline]
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(read_array(b, at))
}

#[inline]
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(read_array(b, at))
}

/// Reads the 16-byte header (connection id, action, transaction id), if there is one.
pub fn parse_header(b: &[u8]) -> Option<(ConnectionId, u32, TransactionId)> {
    if b.len() < 16 {
        return None;
    }
    Some((
        ConnectionId(read_array(b, 0)),
        u32_at(b, 8),
        TransactionId(read_array(b, 12)),
    ))
}

/// The info hash of what looks like an announce (action 1, at least 98 bytes), without any
/// other check: for prefetching only, never for answering.
#[inline]
pub fn peek_announce_info_hash(b: &[u8]) -> Option<InfoHash> {
    if b.len() < ANNOUNCE_LEN || u32_at(b, 8) != ACTION_ANNOUNCE {
        return None;
    }
    Some(InfoHash(read_array(b, 16)))
}

/// Maps the BEP 15 event number: 0 none, 1 completed, 2 started, 3 stopped, others none.
pub fn event_from_u32(e: u32) -> Event {
    match e {
        1 => Event::Completed,
        2 => Event::Started,
        3 => Event::Stopped,
        _ => Event::None,
    }
}

/// The BEP 15 number of an event.
pub fn event_to_u32(e: Event) -> u32 {
    match e {
        Event::None => 0,
        Event::Completed => 1,
        Event::Started => 2,
        Event::Stopped => 3,
    }
}

/// Parses one datagram. Never panics; see [`ParseError`] for what may be answered.
pub fn parse_request(b: &[u8]) -> Result<Request<'_>, ParseError> {
    let Some((connection_id, action, transaction_id)) = parse_header(b) else {
        return Err(ParseError::Unsendable);
    };
    let err = |message| ParseError::Sendable {
        connection_id,
        transaction_id,
        message,
    };
    match action {
        ACTION_CONNECT => {
            // The "connection id" of a connect is the magic number, which proves nothing about
            // the source: anything malformed here is dropped, never answered.
            if u64::from_be_bytes(connection_id.0) != PROTOCOL_ID || b.len() != CONNECT_LEN {
                return Err(ParseError::Unsendable);
            }
            Ok(Request::Connect(ConnectRequest { transaction_id }))
        }
        ACTION_ANNOUNCE => {
            if b.len() < ANNOUNCE_LEN {
                return Err(err("announce request too short"));
            }
            let options = Options::parse(&b[ANNOUNCE_LEN..]).map_err(err)?;
            Ok(Request::Announce(AnnounceRequest {
                connection_id,
                transaction_id,
                info_hash: InfoHash(read_array(b, 16)),
                peer_id: PeerId(read_array(b, 36)),
                downloaded: u64_at(b, 56),
                left: u64_at(b, 64),
                uploaded: u64_at(b, 72),
                event: event_from_u32(u32_at(b, 80)),
                ip: read_array(b, 84),
                key: u32_at(b, 88),
                numwant: u32_at(b, 92) as i32,
                port: u16::from_be_bytes(read_array(b, 96)),
                options,
            }))
        }
        ACTION_SCRAPE => {
            let hashes = &b[SCRAPE_HEADER_LEN..];
            if hashes.is_empty() {
                return Err(err("scrape request without info hashes"));
            }
            if hashes.len() % 20 != 0 {
                return Err(err("scrape request length is not 16 + 20n"));
            }
            if hashes.len() / 20 > MAX_SCRAPE_HASHES {
                return Err(err("too many info hashes (at most 72)"));
            }
            Ok(Request::Scrape(ScrapeRequest {
                connection_id,
                transaction_id,
                hashes,
            }))
        }
        _ => Err(err("invalid action")),
    }
}

// ---- server replies ------------------------------------------------------------------------

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

#[inline]
fn put(out: &mut [u8], at: usize, bytes: &[u8]) -> bool {
    match out.get_mut(at..at + bytes.len()) {
        Some(s) => {
            s.copy_from_slice(bytes);
            true
        }
        None => false,
    }
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

// ---- client side ---------------------------------------------------------------------------

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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn announce(url_opts: &[u8]) -> AnnounceRequest<'_> {
        AnnounceRequest {
            connection_id: ConnectionId([1, 2, 3, 4, 5, 6, 7, 8]),
            transaction_id: TransactionId([9, 9, 9, 9]),
            info_hash: InfoHash([0xaa; 20]),
            peer_id: PeerId([0xbb; 20]),
            downloaded: 1,
            left: 2,
            uploaded: 3,
            event: Event::Started,
            ip: [0; 4],
            key: 77,
            numwant: -1,
            port: 6881,
            options: Options(url_opts),
        }
    }

    fn parse_announce(b: &[u8]) -> AnnounceRequest<'_> {
        match parse_request(b) {
            Ok(Request::Announce(a)) => a,
            other => panic!("not an announce: {other:?}"),
        }
    }

    fn url_of(a: &AnnounceRequest<'_>) -> Vec<u8> {
        a.options.url_chunks().flatten().copied().collect()
    }

    #[test]
    fn connect_round_trip_and_strictness() {
        let mut b = [0u8; 32];
        assert_eq!(
            write_connect_request(&mut b, TransactionId([1, 2, 3, 4])),
            16
        );
        assert_eq!(
            parse_request(&b[..16]),
            Ok(Request::Connect(ConnectRequest {
                transaction_id: TransactionId([1, 2, 3, 4])
            }))
        );
        // Over-long, short, or without the magic: dropped, never answered.
        assert_eq!(parse_request(&b[..17]), Err(ParseError::Unsendable));
        assert_eq!(parse_request(&b[..15]), Err(ParseError::Unsendable));
        b[0] ^= 1;
        assert_eq!(parse_request(&b[..16]), Err(ParseError::Unsendable));
        let mut out = [0u8; 16];
        let n = write_connect_response(&mut out, TransactionId([1, 2, 3, 4]), ConnectionId([5; 8]));
        assert_eq!(
            parse_response(&out[..n], false),
            Some(Response::Connect {
                transaction_id: TransactionId([1, 2, 3, 4]),
                connection_id: ConnectionId([5; 8])
            })
        );
    }

    #[test]
    fn announce_fields_and_events() {
        let bytes = encode_announce_request(&announce(&[]), b"");
        assert_eq!(bytes.len(), ANNOUNCE_LEN);
        let a = parse_announce(&bytes);
        assert_eq!(a, announce(&[]));
        // Event 4 and beyond read as none; the IP field is carried but never used.
        let mut b = bytes.clone();
        b[80..84].copy_from_slice(&4u32.to_be_bytes());
        b[84..88].copy_from_slice(&[10, 0, 0, 1]);
        let a = parse_announce(&b);
        assert_eq!(a.event, Event::None);
        assert_eq!(a.ip, [10, 0, 0, 1]);
        for e in 0..4 {
            assert_eq!(event_to_u32(event_from_u32(e)), e);
        }
        // 97 bytes: too short, but the header is there.
        assert!(matches!(
            parse_request(&bytes[..97]),
            Err(ParseError::Sendable {
                transaction_id: TransactionId([9, 9, 9, 9]),
                ..
            })
        ));
    }

    #[test]
    fn bep41_options() {
        let base = encode_announce_request(&announce(&[]), b"");
        let with = |opts: &[u8]| {
            let mut b = base.clone();
            b.extend_from_slice(opts);
            b
        };
        // NOP, URLData "/ann", unknown type 9 with 2 bytes skipped, URLData "?k=1", end, junk.
        let b = with(&[
            1, 2, 4, b'/', b'a', b'n', b'n', 9, 2, 0xff, 0xff, 1, 2, 4, b'?', b'k', b'=', b'1', 0,
            2, 200,
        ]);
        let a = parse_announce(&b);
        assert_eq!(url_of(&a), b"/ann?k=1");
        assert_eq!(a.options.url_len(), 8);
        let mut buf = [0u8; 8];
        assert_eq!(a.options.url_data(&mut buf), Some(&b"/ann?k=1"[..]));
        let mut small = [0u8; 7];
        assert_eq!(a.options.url_data(&mut small), None);
        // Options without EndOfOptions are fine; a length running past the end is not.
        assert_eq!(url_of(&parse_announce(&with(&[2, 1, b'x']))), b"x");
        for bad in [&[2u8][..], &[2, 5, b'x'], &[7], &[1, 1, 9, 3, 0]] {
            assert!(
                matches!(parse_request(&with(bad)), Err(ParseError::Sendable { .. })),
                "{bad:?}"
            );
        }
        // Long URLs are split into 255-byte chunks and come back whole.
        let url: Vec<u8> = (0..700u32).map(|i| b'a' + (i % 26) as u8).collect();
        let b = encode_announce_request(&announce(&[]), &url);
        let a = parse_announce(&b);
        assert_eq!(a.options.url_chunks().count(), 3);
        assert_eq!(url_of(&a), url);
    }

    #[test]
    fn scrape_limits() {
        let cid = ConnectionId([1; 8]);
        let tid = TransactionId([2; 4]);
        let hashes: Vec<InfoHash> = (0..73u8).map(|i| InfoHash([i; 20])).collect();
        let ok = encode_scrape_request(cid, tid, &hashes[..72]);
        match parse_request(&ok) {
            Ok(Request::Scrape(s)) => {
                assert_eq!(s.len(), 72);
                assert!(s.info_hashes().eq(hashes[..72].iter().copied()));
            }
            other => panic!("{other:?}"),
        }
        for bad in [
            encode_scrape_request(cid, tid, &[]),
            encode_scrape_request(cid, tid, &hashes),
            ok[..ok.len() - 1].to_vec(),
        ] {
            assert!(matches!(
                parse_request(&bad),
                Err(ParseError::Sendable { .. })
            ));
        }
        let mut b = ok.clone();
        b[8..12].copy_from_slice(&9u32.to_be_bytes());
        assert_eq!(
            parse_request(&b),
            Err(ParseError::Sendable {
                connection_id: cid,
                transaction_id: tid,
                message: "invalid action"
            })
        );
    }

    #[test]
    fn largest_replies_fit_their_buffer() {
        let cap = reply_capacity(DEFAULT_V4, DEFAULT_V6);
        // One packet even at the IPv6 minimum MTU: 1280 - 40 (IPv6) - 8 (UDP).
        assert!(cap <= 1232, "{cap}");
        let mut buf = vec![0u8; cap];
        let mut w = AnnounceWriter::new(&mut buf, false);
        for i in 0..DEFAULT_V4 + 5 {
            w.push_v4(&[1, 2, 3, 4, (i >> 8) as u8, i as u8], &[0; 20]);
        }
        let n = w.finish(TransactionId([0; 4]), 1, 2, 3);
        assert_eq!(n, 20 + 6 * DEFAULT_V4 as usize);
        let mut w = AnnounceWriter::new(&mut buf, true);
        for _ in 0..DEFAULT_V6 + 5 {
            w.push_v6(&[7; 18], &[0; 20]);
        }
        assert_eq!(
            w.finish(TransactionId([0; 4]), 1, 2, 3),
            20 + 18 * DEFAULT_V6 as usize
        );
        let n = write_scrape_response(&mut buf, TransactionId([0; 4]), (0..72).map(|i| (i, i, i)));
        assert_eq!(n, MAX_SCRAPE_REPLY_LEN);
        let long = "x".repeat(500);
        assert_eq!(
            write_error_response(&mut buf, TransactionId([0; 4]), &long),
            MAX_ERROR_REPLY_LEN
        );
        // A buffer too small for a header gets nothing written, never a panic.
        assert_eq!(
            write_error_response(&mut buf[..7], TransactionId([0; 4]), "x"),
            0
        );
        assert_eq!(
            AnnounceWriter::new(&mut buf[..19], false).finish(TransactionId([0; 4]), 1, 1, 1),
            0
        );
        assert_eq!(max_peers_fitting(crate::config::MAX_UDP_PAYLOAD, 6), 10_914);
    }

    const DEFAULT_V4: u32 = crate::config::DEFAULT_MAX_NUMWANT_V4;
    const DEFAULT_V6: u32 = crate::config::DEFAULT_MAX_NUMWANT_V6;

    fn event_strategy() -> impl Strategy<Value = Event> {
        prop_oneof![
            Just(Event::None),
            Just(Event::Completed),
            Just(Event::Started),
            Just(Event::Stopped)
        ]
    }

    proptest! {
        #[test]
        fn any_bytes_parse_or_error_without_panic(b in proptest::collection::vec(any::<u8>(), 0..400)) {
            let r = parse_request(&b);
            if b.len() < 16 {
                prop_assert_eq!(r, Err(ParseError::Unsendable));
            }
            if let Ok(Request::Announce(a)) = r {
                let _ = a.options.url_chunks().count();
            }
            let _ = parse_response(&b, false);
            let _ = parse_response(&b, true);
        }

        #[test]
        fn any_options_parse_or_error_without_panic(
            head in proptest::collection::vec(any::<u8>(), 98..=98),
            opts in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            let mut b = head;
            b[8..12].copy_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
            b.extend_from_slice(&opts);
            if let Ok(Request::Announce(a)) = parse_request(&b) {
                prop_assert!(a.options.url_len() <= opts.len());
            }
        }

        #[test]
        fn announce_round_trips(
            cid in any::<[u8; 8]>(), tid in any::<[u8; 4]>(), ih in any::<[u8; 20]>(),
            pid in any::<[u8; 20]>(), downloaded in any::<u64>(), left in any::<u64>(),
            uploaded in any::<u64>(), event in event_strategy(), ip in any::<[u8; 4]>(),
            key in any::<u32>(), numwant in any::<i32>(), port in any::<u16>(),
            url in proptest::collection::vec(any::<u8>(), 0..800),
        ) {
            let req = AnnounceRequest {
                connection_id: ConnectionId(cid), transaction_id: TransactionId(tid),
                info_hash: InfoHash(ih), peer_id: PeerId(pid), downloaded, left, uploaded, event,
                ip, key, numwant, port, options: Options::default(),
            };
            let bytes = encode_announce_request(&req, &url);
            let got = parse_announce(&bytes);
            prop_assert_eq!(url_of(&got), url);
            prop_assert_eq!(AnnounceRequest { options: Options::default(), ..got }, req);
        }

        #[test]
        fn scrape_and_replies_round_trip(
            cid in any::<[u8; 8]>(), tid in any::<[u8; 4]>(),
            hashes in proptest::collection::vec(any::<[u8; 20]>(), 1..=72),
            counts in proptest::collection::vec(any::<(u32, u32, u32)>(), 0..=72),
            peers in proptest::collection::vec(any::<[u8; 6]>(), 0..=200),
            message in "[ -~]{0,64}",
        ) {
            let hashes: Vec<InfoHash> = hashes.into_iter().map(InfoHash).collect();
            let b = encode_scrape_request(ConnectionId(cid), TransactionId(tid), &hashes);
            match parse_request(&b) {
                Ok(Request::Scrape(s)) => {
                    prop_assert_eq!(s.connection_id, ConnectionId(cid));
                    prop_assert_eq!(s.transaction_id, TransactionId(tid));
                    prop_assert!(s.info_hashes().eq(hashes.iter().copied()));
                }
                other => prop_assert!(false, "{:?}", other),
            }
            let mut out = vec![0u8; reply_capacity(DEFAULT_V4, DEFAULT_V6)];
            let n = write_scrape_response(&mut out, TransactionId(tid), counts.iter().copied());
            prop_assert_eq!(
                parse_response(&out[..n], false),
                Some(Response::Scrape { transaction_id: TransactionId(tid), entries: counts })
            );
            let mut w = AnnounceWriter::new(&mut out, false);
            for p in &peers {
                w.push_v4(p, &[0; 20]);
            }
            let n = w.finish(TransactionId(tid), 1800, 3, 4);
            let want: Vec<SocketAddr> =
                peers.iter().map(tracker_core::types::socket_from_v4).collect();
            prop_assert_eq!(
                parse_response(&out[..n], false),
                Some(Response::Announce {
                    transaction_id: TransactionId(tid), interval: 1800, leechers: 3, seeders: 4,
                    peers: want,
                })
            );
            let n = write_error_response(&mut out, TransactionId(tid), &message);
            prop_assert_eq!(
                parse_response(&out[..n], false),
                Some(Response::Error { transaction_id: TransactionId(tid), message })
            );
        }
    }
}
