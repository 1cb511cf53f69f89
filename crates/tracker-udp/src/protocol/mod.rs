//! The BEP 15 wire codec, with BEP 41 options. Pure: bytes in, typed values out, and replies
//! written into a caller's buffer. No I/O, no allocation on the server side.
//!
//! Server side: [`parse_request`] and the `write_*_response` functions. Client side (tests,
//! benches, load tools): the `write_*_request` functions and [`parse_response`].
//!
//! Parsing never panics on any input; [`ParseError`] says whether the packet carried enough
//! to answer with an error (a connection id and a transaction id the server can check) or must
//! be dropped.
//!
//! Where each part lives: this file holds the constants and ids both directions share;
//! `request.rs` the requests and their parser (what the server reads); `response.rs` the reply
//! writers (what the server sends); `client.rs` the other direction (request encoders and the
//! reply parser, for tests, benches and load tools).

mod client;
mod request;
mod response;
#[cfg(test)]
mod tests;

pub use client::*;
pub use request::*;
pub use response::*;

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
