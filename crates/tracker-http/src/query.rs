//! The announce and scrape query strings, parsed from raw bytes.
//!
//! The query is split on `&` and `=` over its bytes; values are percent-decoded byte by byte
//! (upper- or lower-case hex; unescaped bytes pass through; `+` is a plus, never a space; a `%`
//! not followed by two hex digits is kept as is) straight into fixed-size stack buffers. Nothing
//! is allocated per parameter. Keys are compared raw. Unknown keys are ignored.
//!
//! The [`QueryError`] `Display` text is the `failure reason` the client is told.

use std::net::IpAddr;

use percent_encoding::percent_decode;
use tracker_core::{Event, InfoHash, PeerId};

/// What is wrong with a query. Its `Display` is the failure reason sent to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The query string is longer than `max_query_bytes`.
    #[error("query string too long: {len} bytes, at most {max} accepted")]
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// A required parameter is absent.
    #[error("missing {0}")]
    Missing(&'static str),
    /// `info_hash` or `peer_id` does not decode to exactly 20 bytes.
    #[error("invalid {field}: expected 20 bytes after percent-decoding, got {len}")]
    BadId {
        /// `info_hash` or `peer_id`.
        field: &'static str,
        /// Bytes it decoded to.
        len: usize,
    },
    /// A parameter that may appear once appeared twice.
    #[error("more than one {0} in an announce")]
    Duplicate(&'static str),
    /// A counter or the port is not a non-negative decimal integer (or overflows 64 bits).
    #[error("invalid {0}: expected a non-negative integer")]
    BadNumber(&'static str),
    /// `numwant` is not a decimal integer.
    #[error("invalid numwant: expected an integer")]
    BadNumwant,
    /// `port=0`.
    #[error("{}", tracker_core::tracker::MSG_PORT_ZERO)]
    PortZero,
    /// `port` above 65535.
    #[error("invalid port: above 65535")]
    PortRange,
    /// `event` is not one of the known values.
    #[error("invalid event: expected started, completed, stopped or empty")]
    BadEvent,
    /// A scrape with more `info_hash` values than `max_scrape`.
    #[error("too many info_hash values: at most {max} per scrape")]
    TooManyHashes {
        /// The configured limit.
        max: usize,
    },
    /// A scrape without `info_hash` (full scrape is not offered).
    #[error("scrape needs at least one info_hash (full scrape is disabled)")]
    NoHashes,
}

/// A parsed announce. Counters the rules do not use are validated and kept for completeness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announce {
    /// The torrent.
    pub info_hash: InfoHash,
    /// The client's peer id.
    pub peer_id: PeerId,
    /// The port it listens on (never 0).
    pub port: u16,
    /// Bytes uploaded, if given.
    pub uploaded: Option<u64>,
    /// Bytes downloaded, if given.
    pub downloaded: Option<u64>,
    /// Bytes left; 0 means seeder. Required.
    pub left: u64,
    /// started / completed / stopped / none.
    pub event: Event,
    /// Peers wanted; `None` when absent or negative (the configured default applies).
    pub numwant: Option<u32>,
    /// `compact` is not `0`: BEP 23 compact peers (the default).
    pub compact: bool,
    /// `no_peer_id=1`: drop `peer id` from the dict list (only matters with `compact=0`).
    pub no_peer_id: bool,
    /// The `ip=` parameter, if it is a valid address (used only when config allows it).
    pub ip: Option<IpAddr>,
}

/// Iterates `key=value` pairs of a raw query (empty pairs skipped; a pair without `=` has an
/// empty value).
pub fn pairs(query: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    query
        .split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.iter().position(|&b| b == b'=') {
            Some(i) => (&p[..i], &p[i + 1..]),
            None => (p, &p[p.len()..]),
        })
}

/// Percent-decodes exactly 20 bytes, or reports how many there were.
pub fn decode20(raw: &[u8]) -> Result<[u8; 20], usize> {
    let mut out = [0u8; 20];
    let mut n = 0usize;
    for b in percent_decode(raw) {
        if let Some(slot) = out.get_mut(n) {
            *slot = b;
        }
        n += 1;
    }
    if n == 20 { Ok(out) } else { Err(n) }
}

/// Percent-decodes into `buf`; `None` if it does not fit.
fn decode_small<'b>(raw: &[u8], buf: &'b mut [u8]) -> Option<&'b [u8]> {
    let mut n = 0usize;
    for b in percent_decode(raw) {
        *buf.get_mut(n)? = b;
        n += 1;
    }
    buf.get(..n)
}

/// A decimal integer, optionally negative. `None` if empty, not decimal or beyond 64 bits.
fn decode_int(raw: &[u8]) -> Option<(bool, u64)> {
    let mut neg = false;
    let mut digits = 0usize;
    let mut v: u64 = 0;
    for (i, b) in percent_decode(raw).enumerate() {
        match b {
            b'-' if i == 0 => neg = true,
            b'0'..=b'9' => {
                v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
                digits += 1;
            }
            _ => return None,
        }
    }
    (digits > 0).then_some((neg, v))
}

fn counter(raw: &[u8], name: &'static str) -> Result<u64, QueryError> {
    match decode_int(raw) {
        Some((false, v)) => Ok(v),
        Some((true, 0)) => Ok(0),
        _ => Err(QueryError::BadNumber(name)),
    }
}

fn id(raw: &[u8], field: &'static str) -> Result<[u8; 20], QueryError> {
    decode20(raw).map_err(|len| QueryError::BadId { field, len })
}

fn check_len(query: &[u8], max: usize) -> Result<(), QueryError> {
    if query.len() > max {
        return Err(QueryError::TooLong {
            len: query.len(),
            max,
        });
    }
    Ok(())
}

/// Parses an announce query (the bytes after `?`).
pub fn parse_announce(query: &[u8], max_query_bytes: usize) -> Result<Announce, QueryError> {
    check_len(query, max_query_bytes)?;
    let mut info_hash = None;
    let mut peer_id = None;
    let mut port = None;
    let mut uploaded = None;
    let mut downloaded = None;
    let mut left = None;
    let mut event = Event::None;
    let mut numwant = None;
    let mut compact = true;
    let mut no_peer_id = false;
    let mut ip = None;
    for (k, v) in pairs(query) {
        match k {
            b"info_hash" => {
                if info_hash.is_some() {
                    return Err(QueryError::Duplicate("info_hash"));
                }
                info_hash = Some(InfoHash(id(v, "info_hash")?));
            }
            b"peer_id" => peer_id = Some(PeerId(id(v, "peer_id")?)),
            b"port" => {
                let p = counter(v, "port")?;
                port = Some(match u16::try_from(p) {
                    Ok(0) => return Err(QueryError::PortZero),
                    Ok(p) => p,
                    Err(_) => return Err(QueryError::PortRange),
                });
            }
            b"uploaded" => uploaded = Some(counter(v, "uploaded")?),
            b"downloaded" => downloaded = Some(counter(v, "downloaded")?),
            b"left" => left = Some(counter(v, "left")?),
            b"event" => {
                let mut buf = [0u8; 16];
                event = match decode_small(v, &mut buf) {
                    Some(b"started") => Event::Started,
                    Some(b"completed") => Event::Completed,
                    Some(b"stopped") => Event::Stopped,
                    // BEP 3: "empty" is the same as absent; BEP 21 `paused` is a regular announce.
                    Some(b"" | b"empty" | b"paused") => Event::None,
                    _ => return Err(QueryError::BadEvent),
                };
            }
            b"numwant" | b"num_want" => {
                numwant = match decode_int(v) {
                    Some((true, _)) => None,
                    Some((false, n)) => Some(u32::try_from(n).unwrap_or(u32::MAX)),
                    None => return Err(QueryError::BadNumwant),
                };
            }
            b"compact" => compact = v != b"0",
            b"no_peer_id" => no_peer_id = v == b"1",
            b"ip" => {
                let mut buf = [0u8; 64];
                ip = decode_small(v, &mut buf)
                    .and_then(|b| std::str::from_utf8(b).ok())
                    .and_then(|s| s.parse().ok());
            }
            _ => {}
        }
    }
    Ok(Announce {
        info_hash: info_hash.ok_or(QueryError::Missing("info_hash"))?,
        peer_id: peer_id.ok_or(QueryError::Missing("peer_id"))?,
        port: port.ok_or(QueryError::Missing("port"))?,
        uploaded,
        downloaded,
        left: left.ok_or(QueryError::Missing("left"))?,
        event,
        numwant,
        compact,
        no_peer_id,
        ip,
    })
}

/// Parses a scrape query into `out` (cleared first; reused by the caller so that no
/// allocation happens per request). Hashes keep their request order, duplicates included.
pub fn parse_scrape(
    query: &[u8],
    max_query_bytes: usize,
    max_scrape: usize,
    out: &mut Vec<InfoHash>,
) -> Result<(), QueryError> {
    out.clear();
    check_len(query, max_query_bytes)?;
    for (k, v) in pairs(query) {
        if k == b"info_hash" {
            if out.len() >= max_scrape {
                return Err(QueryError::TooManyHashes { max: max_scrape });
            }
            out.push(InfoHash(id(v, "info_hash")?));
        }
    }
    if out.is_empty() {
        return Err(QueryError::NoHashes);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const IH: &str = "%12%34%56%78%9a%bc%de%f1%23%45%67%89%ab%cd%ef%12%34%56%78%9A";
    const IH_BYTES: [u8; 20] = [
        0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf1, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
        0x12, 0x34, 0x56, 0x78, 0x9a,
    ];

    fn q(extra: &str) -> String {
        format!(
            "info_hash={IH}&peer_id=-qB4650-abcdefghij%2B%2b&port=6881&uploaded=0&downloaded=0&left=10{extra}"
        )
    }

    #[test]
    fn a_full_announce_parses() {
        let a = parse_announce(
            q("&event=started&numwant=30&compact=1&key=x&ip=1.2.3.4").as_bytes(),
            4096,
        )
        .unwrap();
        assert_eq!(a.info_hash.0, IH_BYTES);
        assert_eq!(&a.peer_id.0, b"-qB4650-abcdefghij++");
        assert_eq!(a.port, 6881);
        assert_eq!(a.left, 10);
        assert_eq!(a.uploaded, Some(0));
        assert_eq!(a.event, Event::Started);
        assert_eq!(a.numwant, Some(30));
        assert!(a.compact);
        assert!(!a.no_peer_id);
        assert_eq!(a.ip, Some("1.2.3.4".parse().unwrap()));
    }

    #[test]
    fn safe_bytes_pass_through_and_plus_is_not_space() {
        let raw = "info_hash=abcdefghij%2D%2eklm+o.q_&peer_id=AAAAAAAAAAAAAAAAAAAA&port=1&left=0";
        let a = parse_announce(raw.as_bytes(), 4096).unwrap();
        assert_eq!(&a.info_hash.0, b"abcdefghij-.klm+o.q_");
    }

    #[test]
    fn options() {
        let a = parse_announce(
            q("&compact=0&no_peer_id=1&numwant=-5&event=").as_bytes(),
            4096,
        )
        .unwrap();
        assert!(!a.compact);
        assert!(a.no_peer_id);
        assert_eq!(a.numwant, None);
        assert_eq!(a.event, Event::None);
        let a = parse_announce(q("&numwant=99999999999&event=empty").as_bytes(), 4096).unwrap();
        assert_eq!(a.numwant, Some(u32::MAX));
        let a = parse_announce(q("&event=stopped&ip=nonsense").as_bytes(), 4096).unwrap();
        assert_eq!(a.event, Event::Stopped);
        assert_eq!(a.ip, None);
        let a = parse_announce(q("&event=completed&left=0").as_bytes(), 4096).unwrap();
        assert_eq!((a.event, a.left), (Event::Completed, 0));
    }

    #[test]
    fn malformed_announces() {
        use QueryError::*;
        let cases: &[(&str, QueryError)] = &[
            (
                "peer_id=AAAAAAAAAAAAAAAAAAAA&port=1&left=0",
                Missing("info_hash"),
            ),
            (
                "info_hash=short&peer_id=AAAAAAAAAAAAAAAAAAAA&port=1&left=0",
                BadId {
                    field: "info_hash",
                    len: 5,
                },
            ),
            (
                "info_hash=AAAAAAAAAAAAAAAAAAAAA&peer_id=AAAAAAAAAAAAAAAAAAAA&port=1&left=0",
                BadId {
                    field: "info_hash",
                    len: 21,
                },
            ),
            (
                "info_hash=AAAAAAAAAAAAAAAAAAAA&port=1&left=0",
                Missing("peer_id"),
            ),
            (
                "info_hash=AAAAAAAAAAAAAAAAAAAA&peer_id=AAAAAAAAAAAAAAAAAAAA&left=0",
                Missing("port"),
            ),
            (
                "info_hash=AAAAAAAAAAAAAAAAAAAA&peer_id=AAAAAAAAAAAAAAAAAAAA&port=1",
                Missing("left"),
            ),
            (
                "info_hash=AAAAAAAAAAAAAAAAAAAA&peer_id=AAAAAAAAAAAAAAAAAAAA&port=0&left=0",
                PortZero,
            ),
            (
                "info_hash=AAAAAAAAAAAAAAAAAAAA&peer_id=AAAAAAAAAAAAAAAAAAAA&port=65536&left=0",
                PortRange,
            ),
            (
                "info_hash=AAAAAAAAAAAAAAAAAAAA&peer_id=AAAAAAAAAAAAAAAAAAAA&port=x&left=0",
                BadNumber("port"),
            ),
            (
                "info_hash=AAAAAAAAAAAAAAAAAAAA&peer_id=AAAAAAAAAAAAAAAAAAAA&port=1&left=-1",
                BadNumber("left"),
            ),
            (
                "info_hash=AAAAAAAAAAAAAAAAAAAA&peer_id=AAAAAAAAAAAAAAAAAAAA&port=1&left=",
                BadNumber("left"),
            ),
            (
                "info_hash=AAAAAAAAAAAAAAAAAAAA&peer_id=AAAAAAAAAAAAAAAAAAAA&port=1&left=1e3",
                BadNumber("left"),
            ),
            (
                "info_hash=AAAAAAAAAAAAAAAAAAAA&peer_id=AAAAAAAAAAAAAAAAAAAA&port=1&left=99999999999999999999",
                BadNumber("left"),
            ),
            (
                "info_hash=AAAAAAAAAAAAAAAAAAAA&peer_id=AAAAAAAAAAAAAAAAAAAA&port=1&left=0&uploaded=-3",
                BadNumber("uploaded"),
            ),
            (
                "info_hash=AAAAAAAAAAAAAAAAAAAA&peer_id=AAAAAAAAAAAAAAAAAAAA&port=1&left=0&downloaded=abc",
                BadNumber("downloaded"),
            ),
            (
                "info_hash=AAAAAAAAAAAAAAAAAAAA&peer_id=AAAAAAAAAAAAAAAAAAAA&port=1&left=0&event=paws",
                BadEvent,
            ),
            (
                "info_hash=AAAAAAAAAAAAAAAAAAAA&peer_id=AAAAAAAAAAAAAAAAAAAA&port=1&left=0&numwant=lots",
                BadNumwant,
            ),
            (
                "info_hash=AAAAAAAAAAAAAAAAAAAA&info_hash=BBBBBBBBBBBBBBBBBBBB&peer_id=AAAAAAAAAAAAAAAAAAAA&port=1&left=0",
                Duplicate("info_hash"),
            ),
            (
                "info_hash=AAAAAAAAAAAAAAAAAAA%zz&peer_id=AAAAAAAAAAAAAAAAAAAA&port=1&left=0",
                BadId {
                    field: "info_hash",
                    len: 22,
                },
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(parse_announce(raw.as_bytes(), 4096), Err(*want), "{raw}");
        }
        let long = "a".repeat(5000);
        assert_eq!(
            parse_announce(long.as_bytes(), 4096),
            Err(TooLong {
                len: 5000,
                max: 4096
            })
        );
        assert_eq!(
            TooLong {
                len: 5000,
                max: 4096
            }
            .to_string(),
            "query string too long: 5000 bytes, at most 4096 accepted"
        );
    }

    #[test]
    fn scrape_collects_hashes_in_order() {
        let mut out = Vec::new();
        let raw = format!("info_hash={IH}&info_hash=BBBBBBBBBBBBBBBBBBBB&foo=bar");
        parse_scrape(raw.as_bytes(), 4096, 74, &mut out).unwrap();
        assert_eq!(out, vec![InfoHash(IH_BYTES), InfoHash([b'B'; 20])]);
        assert_eq!(
            parse_scrape(b"", 4096, 74, &mut out),
            Err(QueryError::NoHashes)
        );
        assert!(out.is_empty());
        let raw = "info_hash=BBBBBBBBBBBBBBBBBBBB&".repeat(3);
        assert_eq!(
            parse_scrape(raw.as_bytes(), 4096, 2, &mut out),
            Err(QueryError::TooManyHashes { max: 2 })
        );
        assert_eq!(
            parse_scrape(b"info_hash=x", 4096, 2, &mut out),
            Err(QueryError::BadId {
                field: "info_hash",
                len: 1
            })
        );
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_percent_encoded_decode_back(bytes in proptest::array::uniform20(proptest::num::u8::ANY), upper in proptest::bool::ANY) {
            let mut enc = String::new();
            for b in bytes {
                if b.is_ascii_alphanumeric() { enc.push(b as char) }
                else if upper { enc.push_str(&format!("%{b:02X}")) } else { enc.push_str(&format!("%{b:02x}")) }
            }
            proptest::prop_assert_eq!(decode20(enc.as_bytes()), Ok(bytes));
        }

        #[test]
        fn never_panics(raw in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = parse_announce(&raw, 4096);
            let mut out = Vec::new();
            let _ = parse_scrape(&raw, 4096, 74, &mut out);
        }
    }
}
