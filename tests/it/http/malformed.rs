//! Malformed requests over HTTP: each gets a 200 with a bencoded failure reason.

use super::*;

#[tokio::test]
async fn malformed_requests_get_failure_reasons_and_change_nothing() {
    let tracker = tracker();
    let s = v4(&tracker).await;
    let mut c = Client::connect(s.addr).await;
    let good_ih = enc(&ih(8));
    let good_pid = enc(&pid(1));
    let base = |skip: &str, extra: &str| {
        let mut parts = vec![];
        if skip != "info_hash" {
            parts.push(format!("info_hash={good_ih}"));
        }
        if skip != "peer_id" {
            parts.push(format!("peer_id={good_pid}"));
        }
        if skip != "port" {
            parts.push("port=6881".to_owned());
        }
        if skip != "left" {
            parts.push("left=5".to_owned());
        }
        parts.push("uploaded=0&downloaded=0".to_owned());
        format!("/announce?{}{extra}", parts.join("&"))
    };
    let cases: Vec<(String, &str)> = vec![
        (base("info_hash", ""), "missing info_hash"),
        (
            base("info_hash", "&info_hash=abc"),
            "invalid info_hash: expected 20 bytes after percent-decoding, got 3",
        ),
        (base("info_hash", "&info_hash=%41%4"), "invalid info_hash"),
        (base("peer_id", ""), "missing peer_id"),
        (base("peer_id", "&peer_id=x"), "invalid peer_id"),
        (base("port", ""), "missing port"),
        (base("port", "&port=0"), "invalid port: 0"),
        (base("port", "&port=65536"), "invalid port"),
        (base("port", "&port=http"), "invalid port"),
        (base("left", ""), "missing left"),
        (base("left", "&left=-1"), "invalid left"),
        (base("left", "&left=ten"), "invalid left"),
        (
            base("", "&uploaded=-5").replace("uploaded=0&", ""),
            "invalid uploaded",
        ),
        (
            base("", "&downloaded=1.5").replace("downloaded=0", "x=y"),
            "invalid downloaded",
        ),
        (
            base("", &format!("&info_hash={}", enc(&ih(9)))),
            "more than one info_hash",
        ),
        (base("", "&event=finished"), "invalid event"),
        (base("", "&numwant=many"), "invalid numwant"),
        ("/scrape?info_hash=short".to_owned(), "invalid info_hash"),
        (
            format!("/announce?{}", "x".repeat(9000)),
            "query string too long: 9000 bytes",
        ),
    ];
    for (target, want) in &cases {
        let reason = c.get(target).await.failure();
        assert!(
            reason.contains(want),
            "{target}: got {reason:?}, want {want:?}"
        );
    }
    assert_eq!(tracker.torrent_count(), 0, "nothing stored");
    // The connection survived all of it.
    let v = c.get(&base("", "")).await.value();
    assert_eq!(int(&v, "incomplete"), 1);
    s.stop().await;
}

#[tokio::test]
async fn a_100_kb_query_gets_a_failure_reason() {
    let tracker = tracker();
    let s = v4(&tracker).await;
    let mut c = Client::connect(s.addr).await;
    let target = format!("/announce?info_hash={}", "A".repeat(100 * 1024));
    let r = c.get(&target).await;
    assert_eq!(r.header("connection"), Some("close"));
    let reason = r.failure();
    assert!(reason.contains("request too long"), "{reason}");
    assert!(c.closed_within(T).await);
    // The server is fine.
    let mut c = Client::connect(s.addr).await;
    let v = c.get(&announce(&ih(10), 1, 7001, 0, "")).await.value();
    assert_eq!(int(&v, "complete"), 1);
    assert_eq!(tracker.torrent_count(), 1);
    s.stop().await;
}
