//! One datagram in, at most one reply out: the protocol logic between the codec and
//! [`tracker_core::Tracker`]. Used by the socket workers, and public for tests and benches.
//!
//! No allocation, no lock besides the tracker's one shard lock per announce or scrape entry, no
//! logging per packet. Counts are kept in plain integers ([`LocalCounts`]) and added to the
//! worker's shared atomic [`tracker_core::Counters`] once per batch.

use std::net::SocketAddr;
use std::sync::Arc;

use tracker_core::access::AccessError;
use tracker_core::{
    AnnounceError, AnnounceRequest as CoreAnnounce, Stored, Tracker, Verdict, canonical_ip,
};

use crate::connection_id::ConnectionValidator;
use crate::protocol::{
    self, AnnounceRequest, AnnounceWriter, ConnectionId, ParseError, Request, ScrapeRequest,
    TransactionId,
};

/// Error text for an announce or scrape whose connection id is wrong or expired. Its reply (8
/// bytes of header and these 21) fits in the smallest scrape that names a torrent (36 bytes);
/// a shorter datagram gets the text cut to its own length, so a reply to a datagram whose
/// connection id is not valid is never larger than that datagram: a forged source address
/// gains the attacker no amplification.
pub const MSG_BAD_CONNECTION_ID: &str = "invalid connection id";
/// Error text for a datagram longer than the receive buffer.
pub const MSG_TOO_LONG: &str = "request too long";

/// How many datagrams ahead of the one being answered a worker calls [`Handler::prefetch`]:
/// enough to cover a memory round trip with a few answers' work, few enough that the lines are
/// still in cache when their turn comes.
pub const PREFETCH_AHEAD: usize = 4;

/// Per-worker counts in plain integers, flushed into the shared [`tracker_core::Counters`] once
/// per batch:
/// the core's one list of counters.
pub use tracker_core::stats::LocalCounts;

/// Answers datagrams for one worker.
#[derive(Debug)]
pub struct Handler {
    tracker: Arc<Tracker>,
    validator: ConnectionValidator,
    max_v4: u32,
    max_v6: u32,
    /// Private mode: announces must carry a passkey in their BEP 41 URL data.
    private: bool,
    /// What it did since the last flush.
    pub counts: LocalCounts,
}

impl Handler {
    /// A handler on `tracker`, signing ids with `validator`, capping replies at `max_v4` IPv4
    /// or `max_v6` IPv6 peers. The reply buffers handed to [`Handler::handle`] must hold
    /// [`Handler::reply_capacity`] bytes.
    pub fn new(
        tracker: Arc<Tracker>,
        validator: ConnectionValidator,
        max_v4: u32,
        max_v6: u32,
    ) -> Self {
        let private = tracker.access().config().private;
        Self {
            tracker,
            validator,
            max_v4,
            max_v6,
            private,
            counts: LocalCounts::default(),
        }
    }

    /// The largest reply this handler writes, in bytes.
    pub fn reply_capacity(&self) -> usize {
        protocol::reply_capacity(self.max_v4, self.max_v6)
    }

    /// Starts loading what answering `packet` will read first, if it looks like an announce
    /// (see [`Tracker::prefetch_announce`]). The worker calls this a few datagrams ahead of the
    /// one it answers. Nothing is validated, counted or changed: a bogus packet only wastes a
    /// prefetch.
    #[inline]
    pub fn prefetch(&self, packet: &[u8]) {
        if let Some(info_hash) = protocol::peek_announce_info_hash(packet) {
            self.tracker.prefetch_announce(&info_hash);
        }
    }

    /// Handles one datagram from `src` at unix time `now`; `truncated` says the datagram was
    /// longer than the buffer holding it. Writes the reply into `out` and returns its length,
    /// or 0 when the datagram is dropped. Never panics, whatever the bytes.
    #[inline]
    pub fn handle(
        &mut self,
        packet: &[u8],
        truncated: bool,
        src: SocketAddr,
        now: u32,
        out: &mut [u8],
    ) -> usize {
        self.counts.requests += 1;
        self.counts.bytes_in += packet.len() as u64;
        let len = self.answer(packet, truncated, src, now, out);
        if len == 0 {
            self.counts.dropped += 1;
        }
        self.counts.bytes_out += len as u64;
        len
    }

    fn answer(
        &mut self,
        packet: &[u8],
        truncated: bool,
        src: SocketAddr,
        now: u32,
        out: &mut [u8],
    ) -> usize {
        if src.port() == 0 {
            return 0;
        }
        // Over its rate or banned: dropped without a word (an answer is what a flood wants).
        match self.tracker.limiter().check(src.ip(), now) {
            Verdict::Allow => {}
            Verdict::Limited => {
                self.counts.rate_limited += 1;
                return 0;
            }
            Verdict::Banned => {
                self.counts.banned_requests += 1;
                return 0;
            }
        }
        if truncated {
            return match protocol::parse_header(packet) {
                Some((cid, action, tid)) if action != protocol::ACTION_CONNECT => {
                    self.error_if_valid(cid, tid, MSG_TOO_LONG, src, now, out)
                }
                _ => 0,
            };
        }
        match protocol::parse_request(packet) {
            Ok(Request::Connect(c)) => {
                let cid = self.validator.issue(src.ip(), now);
                self.counts.connects += 1;
                protocol::write_connect_response(out, c.transaction_id, cid)
            }
            Ok(Request::Announce(a)) => {
                let before = self.counts.errors;
                let n = if self.validator.is_valid(a.connection_id, src.ip(), now) {
                    self.announce(&a, src, now, out)
                } else {
                    self.bad_connection_id(a.transaction_id, packet.len(), src, now, out)
                };
                self.counts.announce_errors += self.counts.errors - before;
                n
            }
            Ok(Request::Scrape(s)) => {
                let before = self.counts.errors;
                let n = if self.validator.is_valid(s.connection_id, src.ip(), now) {
                    self.scrape(&s, now, out)
                } else {
                    self.bad_connection_id(s.transaction_id, packet.len(), src, now, out)
                };
                self.counts.scrape_errors += self.counts.errors - before;
                n
            }
            Err(ParseError::Sendable {
                connection_id,
                transaction_id,
                message,
            }) => {
                self.strike(src, now);
                self.error_if_valid(connection_id, transaction_id, message, src, now, out)
            }
            Err(ParseError::Unsendable) => {
                self.strike(src, now);
                0
            }
        }
    }

    /// The reply to a datagram of `len` bytes whose connection id is not valid: at most `len`
    /// bytes (see [`MSG_BAD_CONNECTION_ID`]).
    fn bad_connection_id(
        &mut self,
        tid: TransactionId,
        len: usize,
        src: SocketAddr,
        now: u32,
        out: &mut [u8],
    ) -> usize {
        self.counts.bad_connection_ids += 1;
        self.strike(src, now);
        let room = len.saturating_sub(protocol::ERROR_HEADER_LEN);
        let msg = &MSG_BAD_CONNECTION_ID[..MSG_BAD_CONNECTION_ID.len().min(room)];
        self.error(tid, msg, out)
    }

    /// One bad request from `src` towards a ban (`[limits]`).
    fn strike(&mut self, src: SocketAddr, now: u32) {
        if self.tracker.limiter().strike(src.ip(), now) {
            self.counts.bans += 1;
        }
    }

    fn error(&mut self, tid: TransactionId, message: &str, out: &mut [u8]) -> usize {
        self.counts.errors += 1;
        protocol::write_error_response(out, tid, message)
    }

    /// Malformed packets are answered only when they prove the source saw one of our ids:
    /// otherwise a spoofer could aim our error replies at anyone.
    fn error_if_valid(
        &mut self,
        cid: ConnectionId,
        tid: TransactionId,
        message: &str,
        src: SocketAddr,
        now: u32,
        out: &mut [u8],
    ) -> usize {
        if self.validator.is_valid(cid, src.ip(), now) {
            self.error(tid, message, out)
        } else {
            0
        }
    }

    fn announce(
        &mut self,
        a: &AnnounceRequest<'_>,
        src: SocketAddr,
        now: u32,
        out: &mut [u8],
    ) -> usize {
        // The IP field of the packet is ignored (DESIGN.md section 3): the source address counts.
        let ip = canonical_ip(src.ip());
        let v6 = ip.is_ipv6();
        if self.private {
            let mut buf = [0u8; MAX_URL_PREFIX];
            let key = passkey(&a.options, &mut buf);
            if let Err(e) = self.tracker.check_passkey(key) {
                return self.denied(a.transaction_id, e, out);
            }
        }
        let req = CoreAnnounce {
            info_hash: a.info_hash,
            peer_id: a.peer_id,
            ip,
            port: a.port,
            event: a.event,
            left: a.left,
            numwant: u32::try_from(a.numwant).ok(),
            max_peers: if v6 { self.max_v6 } else { self.max_v4 },
            both_families: false,
        };
        let mut w = AnnounceWriter::new(out, v6);
        match self.tracker.announce(&req, now, &mut w) {
            Ok(o) => {
                match o.stored {
                    Stored::SwarmFull => self.counts.peers_not_stored += 1,
                    Stored::TorrentLimit => self.counts.torrents_not_stored += 1,
                    Stored::Stored | Stored::Removed => {}
                }
                self.counts.announces += 1;
                w.finish(a.transaction_id, o.interval, o.leechers, o.seeders)
            }
            Err(AnnounceError::PortZero) => {
                self.error(a.transaction_id, tracker_core::tracker::MSG_PORT_ZERO, out)
            }
            Err(AnnounceError::Access(e)) => self.denied(a.transaction_id, e, out),
        }
    }

    fn denied(&mut self, tid: TransactionId, e: AccessError, out: &mut [u8]) -> usize {
        self.counts.access_denied += 1;
        self.error(tid, e.message(), out)
    }

    fn scrape(&mut self, s: &ScrapeRequest<'_>, now: u32, out: &mut [u8]) -> usize {
        if self.private {
            // A UDP scrape has no room for a passkey (BEP 41 options follow announces only).
            return self.denied(s.transaction_id, AccessError::PasskeyMissing, out);
        }
        self.counts.scrapes += 1;
        let tracker = &self.tracker;
        protocol::write_scrape_response(
            out,
            s.transaction_id,
            s.info_hashes().map(|h| {
                let c = tracker.scrape_one(&h, now);
                (c.seeders, c.downloaded, c.leechers)
            }),
        )
    }
}

/// How much of the URL data is read for the passkey, in bytes (a passkey path is 42 bytes).
pub const MAX_URL_PREFIX: usize = 256;

/// The passkey of BEP 41 URL data `/{passkey}/announce[?query]`, as in HTTP; `None` when the
/// path has another shape. Reads at most [`MAX_URL_PREFIX`] bytes into `buf`.
pub fn passkey<'b>(
    options: &protocol::Options<'_>,
    buf: &'b mut [u8; MAX_URL_PREFIX],
) -> Option<&'b [u8]> {
    let mut n = 0;
    for c in options.url_chunks() {
        let take = c.len().min(MAX_URL_PREFIX - n);
        buf[n..n + take].copy_from_slice(&c[..take]);
        n += take;
        if n == MAX_URL_PREFIX {
            break;
        }
    }
    let url = &buf[..n];
    let path = url.split(|&b| b == b'?').next()?;
    let rest = path.strip_prefix(b"/")?;
    let slash = rest.iter().position(|&b| b == b'/')?;
    let (key, last) = (&rest[..slash], &rest[slash + 1..]);
    (!key.is_empty() && last == b"announce").then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{
        Options, Response, encode_announce_request, encode_scrape_request, parse_response,
        write_connect_request,
    };
    use tracker_core::{Clock, CoreConfig, Event, InfoHash, PeerId};

    const NOW: u32 = 1_700_000_000;

    fn setup() -> (Arc<Tracker>, Handler) {
        let t = Arc::new(Tracker::with_clock(
            CoreConfig::default(),
            Clock::manual(NOW),
        ));
        let h = Handler::new(
            Arc::clone(&t),
            ConnectionValidator::new([3; 16], 120),
            200,
            66,
        );
        (t, h)
    }

    fn ask(h: &mut Handler, pkt: &[u8], src: &str) -> Option<Response> {
        let src: SocketAddr = src.parse().unwrap();
        let mut out = vec![0u8; h.reply_capacity()];
        let n = h.handle(pkt, false, src, NOW, &mut out);
        (n > 0).then(|| parse_response(&out[..n], src.is_ipv6()).unwrap())
    }

    fn connect(h: &mut Handler, src: &str) -> ConnectionId {
        let mut b = [0u8; 16];
        write_connect_request(&mut b, TransactionId([1; 4]));
        match ask(h, &b, src) {
            Some(Response::Connect { connection_id, .. }) => connection_id,
            other => panic!("{other:?}"),
        }
    }

    fn announce_bytes(cid: ConnectionId, port: u16, left: u64, numwant: i32) -> Vec<u8> {
        let req = AnnounceRequest {
            connection_id: cid,
            transaction_id: TransactionId([7; 4]),
            info_hash: InfoHash([1; 20]),
            peer_id: PeerId([2; 20]),
            downloaded: 0,
            left,
            uploaded: 0,
            event: Event::Started,
            ip: [9, 9, 9, 9],
            key: 0,
            numwant,
            port,
            options: Options::default(),
        };
        encode_announce_request(&req, b"/announce?passkey=abc")
    }

    #[test]
    fn families_numwant_and_counts() {
        let (_t, mut h) = setup();
        for i in 1..=3u8 {
            let src = format!("10.0.0.{i}:5000");
            let cid = connect(&mut h, &src);
            ask(&mut h, &announce_bytes(cid, 6881, 1, 0), &src).unwrap();
        }
        let src = "[2001:db8::1]:5000";
        let cid = connect(&mut h, src);
        ask(&mut h, &announce_bytes(cid, 6881, 1, 0), src).unwrap();
        // A v4 leecher asking for the default gets the other v4 peers only, 6 bytes each.
        let cid = connect(&mut h, "10.0.0.9:1");
        match ask(&mut h, &announce_bytes(cid, 7000, 1, -1), "10.0.0.9:1") {
            Some(Response::Announce {
                peers,
                leechers,
                seeders,
                transaction_id,
                ..
            }) => {
                assert_eq!(transaction_id, TransactionId([7; 4]));
                assert_eq!(peers.len(), 3);
                assert!(peers.iter().all(|p| p.is_ipv4() && p.port() == 6881));
                assert_eq!((leechers, seeders), (5, 0));
            }
            other => panic!("{other:?}"),
        }
        // numwant 0 means none.
        match ask(&mut h, &announce_bytes(cid, 7000, 1, 0), "10.0.0.9:1") {
            Some(Response::Announce { peers, .. }) => assert!(peers.is_empty()),
            other => panic!("{other:?}"),
        }
        // A v6 leecher gets only its own family, 18 bytes each.
        let src = "[2001:db8::2]:5000";
        let cid = connect(&mut h, src);
        match ask(&mut h, &announce_bytes(cid, 6881, 1, 50), src) {
            Some(Response::Announce { peers, .. }) => {
                assert_eq!(peers, vec!["[2001:db8::1]:6881".parse().unwrap()]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(h.counts.connects, 6);
        assert_eq!(h.counts.announces, 7);
        assert_eq!(h.counts.errors, 0);
    }

    /// No datagram without a valid connection id gets a reply larger than itself, whatever
    /// its kind and length (a forged source must not turn us into an amplifier).
    #[test]
    fn replies_without_a_valid_id_are_never_larger_than_the_datagram() {
        let (_t, mut h) = setup();
        let mut out = vec![0u8; h.reply_capacity()];
        let forged = ConnectionId([0x5a; 8]);
        let mut checked = 0;
        for hashes in 0..=protocol::MAX_SCRAPE_HASHES + 1 {
            // One source per size, so that `[limits]` bans do not hide the replies.
            let src = SocketAddr::from(([192, 0, 2, hashes as u8], 4000));
            let list: Vec<InfoHash> = (0..hashes).map(|i| InfoHash([i as u8; 20])).collect();
            let pkt = protocol::encode_scrape_request(forged, TransactionId([3; 4]), &list);
            for len in protocol::SCRAPE_HEADER_LEN..=pkt.len() {
                let n = h.handle(&pkt[..len], false, src, NOW, &mut out);
                assert!(n <= len, "scrape of {len} bytes answered with {n}");
                checked += usize::from(n > 0);
            }
        }
        let ann = announce_bytes(forged, 6881, 1, 10);
        let src = SocketAddr::from(([198, 51, 100, 1], 4000));
        for len in 0..=ann.len() {
            for truncated in [false, true] {
                let n = h.handle(&ann[..len], truncated, src, NOW, &mut out);
                assert!(n <= len, "announce of {len} bytes answered with {n}");
            }
        }
        // The 36-byte scrape of the report, and a full announce, still get the (whole) text.
        let pkt =
            protocol::encode_scrape_request(forged, TransactionId([3; 4]), &[InfoHash([1; 20])]);
        assert_eq!(pkt.len(), 36);
        match ask(&mut h, &pkt, "198.51.100.2:4000") {
            Some(Response::Error { message, .. }) => assert_eq!(message, MSG_BAD_CONNECTION_ID),
            other => panic!("{other:?}"),
        }
        assert!(checked > 0, "some replies were sent");
    }

    #[test]
    fn bad_ids_malformed_and_port_zero() {
        let (t, mut h) = setup();
        let src = "192.0.2.1:4000";
        let cid = connect(&mut h, src);
        // Wrong IP, wrong id, expired id: an error, never peers.
        for (pkt, from) in [
            (announce_bytes(cid, 1, 1, -1), "192.0.2.2:4000"),
            (announce_bytes(ConnectionId([0; 8]), 1, 1, -1), src),
            (
                encode_scrape_request(
                    ConnectionId([0; 8]),
                    TransactionId([7; 4]),
                    &[InfoHash([1; 20])],
                ),
                src,
            ),
        ] {
            match ask(&mut h, &pkt, from) {
                Some(Response::Error {
                    message,
                    transaction_id,
                }) => {
                    assert_eq!(message, MSG_BAD_CONNECTION_ID);
                    assert_eq!(transaction_id, TransactionId([7; 4]));
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(h.counts.bad_connection_ids, 3);
        // Port 0 in the announce: an error, nothing stored.
        match ask(&mut h, &announce_bytes(cid, 0, 1, -1), src) {
            Some(Response::Error { message, .. }) => assert_eq!(message, "invalid port: 0"),
            other => panic!("{other:?}"),
        }
        assert_eq!(t.torrent_count(), 0);
        // Malformed with a valid id: an error; with an invalid id: dropped.
        let short = &announce_bytes(cid, 1, 1, -1)[..60];
        assert!(matches!(
            ask(&mut h, short, src),
            Some(Response::Error { .. })
        ));
        assert_eq!(ask(&mut h, short, "192.0.2.3:4000"), None);
        // Source port 0: dropped, even with a valid id.
        assert_eq!(
            ask(&mut h, &announce_bytes(cid, 1, 1, -1), "192.0.2.1:0"),
            None
        );
        // Truncated (longer than the buffer): an error when the id is valid.
        let mut out = vec![0u8; h.reply_capacity()];
        let pkt = announce_bytes(cid, 1, 1, -1);
        let n = h.handle(&pkt, true, src.parse().unwrap(), NOW, &mut out);
        assert_eq!(
            parse_response(&out[..n], false),
            Some(Response::Error {
                transaction_id: TransactionId([7; 4]),
                message: MSG_TOO_LONG.into()
            })
        );
        assert_eq!(t.torrent_count(), 0);
        // Expired.
        let mut out = vec![0u8; h.reply_capacity()];
        let n = h.handle(&pkt, false, src.parse().unwrap(), NOW + 121, &mut out);
        assert!(matches!(
            parse_response(&out[..n], false),
            Some(Response::Error { .. })
        ));
        assert_eq!(t.torrent_count(), 0);
    }

    #[test]
    fn scrape_in_request_order_with_zeros_for_unknown() {
        let (_t, mut h) = setup();
        let src = "192.0.2.1:4000";
        let cid = connect(&mut h, src);
        ask(&mut h, &announce_bytes(cid, 1000, 0, -1), src).unwrap();
        let pkt = encode_scrape_request(
            cid,
            TransactionId([5; 4]),
            &[InfoHash([9; 20]), InfoHash([1; 20]), InfoHash([9; 20])],
        );
        assert_eq!(
            ask(&mut h, &pkt, src),
            Some(Response::Scrape {
                transaction_id: TransactionId([5; 4]),
                entries: vec![(0, 0, 0), (1, 0, 0), (0, 0, 0)]
            })
        );
    }

    #[test]
    fn counts_flush_into_shared_counters() {
        let (t, mut h) = setup();
        let c = t.stats().register(tracker_core::Protocol::Udp);
        connect(&mut h, "192.0.2.1:1");
        assert_eq!(ask(&mut h, b"garbage", "192.0.2.1:1"), None);
        h.counts.flush(&c);
        assert_eq!(h.counts, LocalCounts::default());
        let r = t.stats().read().udp;
        assert_eq!(
            (r.requests, r.connects, r.dropped, r.bytes_in, r.bytes_out),
            (2, 1, 1, 23, 16)
        );
    }

    #[test]
    fn passkey_is_read_from_url_data() {
        use crate::protocol::Options;
        let with = |url: &[u8]| {
            let mut opts = Vec::new();
            for c in url.chunks(5) {
                opts.push(2);
                opts.push(c.len() as u8);
                opts.extend_from_slice(c);
            }
            opts
        };
        let key = |url: &[u8]| {
            let bytes = with(url);
            let opts = Options::parse(&bytes).unwrap();
            let mut buf = [0u8; MAX_URL_PREFIX];
            passkey(&opts, &mut buf).map(<[u8]>::to_vec)
        };
        assert_eq!(key(b"/abc/announce"), Some(b"abc".to_vec()));
        assert_eq!(key(b"/abc/announce?info_hash=x&y=/"), Some(b"abc".to_vec()));
        for none in [
            &b""[..],
            b"/announce",
            b"//announce",
            b"/a/b/announce",
            b"abc/announce",
            b"/abc/scrape",
        ] {
            assert_eq!(key(none), None, "{:?}", String::from_utf8_lossy(none));
        }
    }

    #[test]
    fn private_mode_needs_a_valid_passkey_and_whitelist_refuses() {
        use tracker_core::access::{AccessConfig, AccessMode, Passkey, PasskeyEntry};
        let config = CoreConfig {
            access: AccessConfig {
                private: true,
                ..AccessConfig::default()
            },
            ..CoreConfig::default()
        };
        let t = Arc::new(Tracker::with_clock(config, Clock::manual(NOW)));
        let key = Passkey::random();
        t.access().add_passkey(PasskeyEntry {
            key,
            expires_at: None,
            label: String::new(),
        });
        let mut h = Handler::new(
            Arc::clone(&t),
            ConnectionValidator::new([3; 16], 120),
            200,
            66,
        );
        let src = "192.0.2.1:4000";
        let cid = connect(&mut h, src);
        let req = |url: &str| {
            let mut b = announce_bytes(cid, 6881, 1, -1);
            b.truncate(98);
            let a = match protocol::parse_request(&b) {
                Ok(Request::Announce(a)) => a,
                other => panic!("{other:?}"),
            };
            encode_announce_request(&a, url.as_bytes())
        };
        let message = |r: Option<Response>| match r {
            Some(Response::Error { message, .. }) => message,
            other => panic!("{other:?}"),
        };
        assert_eq!(message(ask(&mut h, &req(""), src)), "passkey required");
        assert_eq!(
            message(ask(&mut h, &req("/announce"), src)),
            "passkey required"
        );
        let wrong = Passkey::random();
        assert_eq!(
            message(ask(&mut h, &req(&format!("/{wrong}/announce")), src)),
            "invalid passkey"
        );
        assert_eq!(t.torrent_count(), 0);
        let ok = ask(&mut h, &req(&format!("/{key}/announce?x=1")), src);
        assert!(matches!(ok, Some(Response::Announce { .. })), "{ok:?}");
        let scrape = encode_scrape_request(cid, TransactionId([1; 4]), &[InfoHash([1; 20])]);
        assert_eq!(message(ask(&mut h, &scrape, src)), "passkey required");
        assert_eq!(h.counts.access_denied, 4);

        let config = CoreConfig {
            access: AccessConfig {
                mode: AccessMode::Whitelist,
                ..AccessConfig::default()
            },
            ..CoreConfig::default()
        };
        let t = Arc::new(Tracker::with_clock(config, Clock::manual(NOW)));
        let mut h = Handler::new(
            Arc::clone(&t),
            ConnectionValidator::new([3; 16], 120),
            200,
            66,
        );
        let cid = connect(&mut h, src);
        assert_eq!(
            message(ask(&mut h, &announce_bytes(cid, 6881, 1, -1), src)),
            "unregistered torrent"
        );
        assert!(t.access().allow(InfoHash([1; 20])));
        assert!(matches!(
            ask(&mut h, &announce_bytes(cid, 6881, 1, -1), src),
            Some(Response::Announce { .. })
        ));
    }
}
