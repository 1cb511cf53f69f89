//! Unit and property tests of the codec: round trips, bounds, and no panic on any input.

use std::net::SocketAddr;

use tracker_core::{Event, InfoHash, PeerId, PeerSink};

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
        1, 2, 4, b'/', b'a', b'n', b'n', 9, 2, 0xff, 0xff, 1, 2, 4, b'?', b'k', b'=', b'1', 0, 2,
        200,
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
