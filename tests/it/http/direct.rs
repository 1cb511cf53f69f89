//! The direct path (`tracker_http::direct`): a `Connection: close` request whose head arrives
//! whole is answered from the accept loop; everything else goes to hyper with the bytes already
//! read. Seen from a client: the same answers, the server closes after a close request, a head
//! split across writes and a keep-alive connection are served as before, and a reply larger
//! than the socket takes at once still arrives whole.

use super::*;
use tracker_core::{AnnounceRequest, CompactPeers, Event, InfoHash, PeerId};

const CLOSE: &str = "connection: close\r\n";

#[tokio::test]
async fn close_requests_are_answered_and_the_server_closes() {
    let tracker = tracker();
    let s = v4(&tracker).await;
    for peer in 0..3u16 {
        let mut c = Client::connect(s.addr).await;
        let r = c
            .get_with(&announce(&ih(1), peer, 7000 + peer, 5, "&compact=1"), CLOSE)
            .await;
        let v = r.value();
        assert_eq!(r.header("connection"), Some("close"));
        assert_eq!(int(&v, "incomplete"), i64::from(peer) + 1);
        match get(&v, "peers") {
            Value::Bytes(b) => assert_eq!(b.len(), 6 * usize::from(peer)),
            other => panic!("peers {other:?}"),
        }
        assert!(
            c.closed_within(T).await,
            "the server closes after the reply"
        );
    }
    let mut c = Client::connect(s.addr).await;
    let v = c
        .get_with(&format!("/scrape?info_hash={}", enc(&ih(1))), CLOSE)
        .await
        .value();
    assert_eq!(int(&files(&v)[ih(1).as_slice()], "incomplete"), 3);
    // Bad input gets its failure reason there too, and an unknown path its 404.
    let mut c = Client::connect(s.addr).await;
    assert!(
        c.get_with("/announce?port=1", CLOSE)
            .await
            .failure()
            .contains("info_hash")
    );
    let mut c = Client::connect(s.addr).await;
    assert_eq!(c.get_with("/favicon.ico", CLOSE).await.status, 404);
    // Bytes in are counted for requests answered in the accept loop as for hyper's.
    let before = tracker.stats().read().http;
    let target = announce(&ih(1), 9, 7009, 5, "");
    let sent = format!("GET {target} HTTP/1.1\r\nhost: tracker\r\n{CLOSE}\r\n").len() as u64;
    let mut c = Client::connect(s.addr).await;
    c.get_with(&target, CLOSE).await.value();
    assert!(c.closed_within(T).await);
    let after = tracker.stats().read().http;
    assert_eq!(after.bytes_in - before.bytes_in, sent);
    assert_eq!(after.requests - before.requests, 1);
    s.stop().await;
}

#[tokio::test]
async fn a_split_head_and_keep_alive_are_served_from_the_bytes_already_read() {
    let tracker = tracker();
    let s = v4(&tracker).await;
    // The first write is read alone (the accept happens at the first bytes): hyper gets it
    // replayed, then the rest.
    let mut c = Client::connect(s.addr).await;
    let req = format!(
        "GET {} HTTP/1.1\r\nhost: t\r\n{CLOSE}\r\n",
        announce(&ih(2), 1, 7001, 0, "")
    );
    let (a, b) = req.as_bytes().split_at(40);
    c.stream.write_all(a).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    c.stream.write_all(b).await.unwrap();
    let r = c.read_response().await.expect("a reply");
    assert_eq!(int(&r.value(), "complete"), 1);
    assert!(c.closed_within(T).await);
    // Keep-alive: the first request is read by the accept loop and replayed to hyper, the
    // connection stays open for the next ones.
    let mut c = Client::connect(s.addr).await;
    for peer in 2..5u16 {
        let v = c
            .get(&announce(&ih(2), peer, 7000 + peer, 0, ""))
            .await
            .value();
        assert_eq!(int(&v, "complete"), i64::from(peer));
    }
    s.stop().await;
}

#[tokio::test]
async fn a_reply_larger_than_the_socket_takes_at_once_arrives_whole() {
    let tracker = tracker();
    let now = tracker.clock().now();
    let mut sink = CompactPeers::default();
    let torrents = 100_000u32;
    for t in 0..torrents {
        let mut hash = [7u8; 20];
        hash[..4].copy_from_slice(&t.to_be_bytes());
        let req = AnnounceRequest {
            info_hash: InfoHash(hash),
            peer_id: PeerId([1; 20]),
            ip: "10.0.0.1".parse().unwrap(),
            port: 6881,
            event: Event::Started,
            left: 1,
            numwant: Some(0),
            max_peers: 50,
            both_families: true,
        };
        tracker.announce(&req, now, &mut sink).unwrap();
        sink.clear();
    }
    let s = super::scrape::public_full_scrape(&tracker).await;
    // Build the cached full scrape first (its first request answers "building").
    let mut warm = Client::connect(s.addr).await;
    super::scrape::full_scrape(&mut warm, "").await;
    // About 6 MB, more than a socket buffer grows to (4 MiB here, `tcp_wmem`): the socket takes
    // part, a task writes the rest while the client reads late.
    let mut c = Client::connect(s.addr).await;
    c.stream
        .write_all(format!("GET /scrape HTTP/1.1\r\nhost: t\r\n{CLOSE}\r\n").as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = c.read_response().await.expect("a reply");
    assert!(r.body.len() > 5_000_000, "{} bytes", r.body.len());
    assert_eq!(files(&r.value()).len(), torrents as usize);
    assert!(c.closed_within(T).await);
    s.stop().await;
}
