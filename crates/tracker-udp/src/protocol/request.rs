//! Requests as the server reads them: the typed views over a datagram, BEP 41 options and URL
//! data, and [`parse_request`] with the [`ParseError`] that says what may be sent back.

use tracker_core::{Event, InfoHash, PeerId};

use super::*;

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
pub struct Options<'a>(pub(super) &'a [u8]);

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
