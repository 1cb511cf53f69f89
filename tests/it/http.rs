//! HTTP tracker end-to-end: `tracker_http::serve` in-process on 127.0.0.1:0 and [::1]:0, a
//! minimal HTTP/1.1 client over `tokio::net::TcpStream`, replies decoded with `serde_bencode`.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde_bencode::value::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tracker_core::{Clock, CoreConfig, Tracker};
use tracker_http::HttpConfig;

const T: Duration = Duration::from_secs(10);

// ---- harness -------------------------------------------------------------------------------

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(bind: &str, tracker: &Arc<Tracker>, config: HttpConfig) -> Option<Server> {
        let listener = match TcpListener::bind(bind).await {
            Ok(l) => l,
            Err(e) if bind.starts_with('[') => {
                println!("skipping IPv6 part: cannot bind {bind}: {e}");
                return None;
            }
            Err(e) => panic!("bind {bind}: {e}"),
        };
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(tracker_http::serve(
            listener,
            Arc::clone(tracker),
            Arc::new(config),
            async {
                let _ = rx.await;
            },
        ));
        Some(Server {
            addr,
            stop: Some(tx),
            task,
        })
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        timeout(T, &mut self.task)
            .await
            .expect("serve returns after shutdown")
            .unwrap()
            .unwrap();
    }
}

fn tracker() -> Arc<Tracker> {
    Arc::new(Tracker::with_clock(
        CoreConfig::default(),
        Clock::manual(1_700_000_000),
    ))
}

async fn v4(tracker: &Arc<Tracker>) -> Server {
    Server::start("127.0.0.1:0", tracker, HttpConfig::default())
        .await
        .unwrap()
}

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn value(&self) -> Value {
        assert_eq!(
            self.status,
            200,
            "body {:?}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.header("content-type"), Some("text/plain"));
        serde_bencode::from_bytes(&self.body)
            .unwrap_or_else(|e| panic!("bencode {e}: {:?}", String::from_utf8_lossy(&self.body)))
    }
    fn failure(&self) -> String {
        let v = self.value();
        match get(&v, "failure reason") {
            Value::Bytes(b) => String::from_utf8(b.clone()).unwrap(),
            other => panic!("failure reason is {other:?}"),
        }
    }
}

/// A keep-alive HTTP/1.1 client.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        let stream = timeout(T, TcpStream::connect(addr)).await.unwrap().unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    /// Connects from another loopback address (127.0.0.0/8 is all local on Linux), so that
    /// per-address limits see a different client.
    async fn connect_from(addr: SocketAddr, local: &str) -> Client {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(SocketAddr::new(local.parse().unwrap(), 0))
            .unwrap();
        let stream = timeout(T, sock.connect(addr)).await.unwrap().unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    async fn get(&mut self, target: &str) -> Resp {
        self.get_with(target, "").await
    }

    async fn get_with(&mut self, target: &str, headers: &str) -> Resp {
        let req = format!("GET {target} HTTP/1.1\r\nhost: tracker\r\n{headers}\r\n");
        timeout(T, self.stream.write_all(req.as_bytes()))
            .await
            .unwrap()
            .unwrap();
        self.read_response().await.expect("a response")
    }

    /// Reads one response; `None` on EOF before a full head.
    async fn read_response(&mut self) -> Option<Resp> {
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 65536];
            let n = timeout(T, self.stream.read(&mut chunk))
                .await
                .expect("read in time")
                .ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8(self.buf[..head_end].to_vec()).unwrap();
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (k, v) = l.split_once(':').unwrap();
                (k.trim().to_owned(), v.trim().to_owned())
            })
            .collect();
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse().unwrap())
            .unwrap_or(0);
        while self.buf.len() < head_end + len {
            let mut chunk = [0u8; 65536];
            let n = timeout(T, self.stream.read(&mut chunk))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "EOF inside a body");
            self.buf.extend_from_slice(&chunk[..n]);
        }
        let body = self.buf[head_end..head_end + len].to_vec();
        self.buf.drain(..head_end + len);
        Some(Resp {
            status,
            headers,
            body,
        })
    }

    /// Waits for the server to close the connection (EOF or reset), within `within`.
    async fn closed_within(&mut self, within: Duration) -> bool {
        let mut chunk = [0u8; 1024];
        matches!(
            timeout(within, self.stream.read(&mut chunk)).await,
            Ok(Ok(0) | Err(_))
        )
    }
}

/// Percent-encodes every byte that is not alphanumeric, alternating upper- and lower-case hex.
fn enc(bytes: &[u8]) -> String {
    let mut s = String::new();
    for (i, &b) in bytes.iter().enumerate() {
        if b.is_ascii_alphanumeric() {
            s.push(b as char);
        } else if i % 2 == 0 {
            s.push_str(&format!("%{b:02X}"));
        } else {
            s.push_str(&format!("%{b:02x}"));
        }
    }
    s
}

fn ih(n: u8) -> [u8; 20] {
    let mut h = [0xC3u8; 20];
    h[0] = n;
    h[19] = b'&';
    h[10] = b'%';
    h
}

fn pid(n: u16) -> [u8; 20] {
    let mut p = *b"-MT0001-\x00\xff+ =&?/%abc";
    p[16..18].copy_from_slice(&n.to_be_bytes());
    p
}

fn announce(hash: &[u8; 20], peer: u16, port: u16, left: u64, extra: &str) -> String {
    format!(
        "/announce?info_hash={}&peer_id={}&port={port}&uploaded=0&downloaded=0&left={left}{extra}",
        enc(hash),
        enc(&pid(peer))
    )
}

fn get<'v>(v: &'v Value, key: &str) -> &'v Value {
    match v {
        Value::Dict(d) => d
            .get(key.as_bytes())
            .unwrap_or_else(|| panic!("no {key:?} in {v:?}")),
        other => panic!("not a dict: {other:?}"),
    }
}

fn has(v: &Value, key: &str) -> bool {
    matches!(v, Value::Dict(d) if d.contains_key(key.as_bytes()))
}

fn int(v: &Value, key: &str) -> i64 {
    match get(v, key) {
        Value::Int(i) => *i,
        other => panic!("{key} is {other:?}"),
    }
}

fn bytes<'v>(v: &'v Value, key: &str) -> &'v [u8] {
    match get(v, key) {
        Value::Bytes(b) => b,
        other => panic!("{key} is {other:?}"),
    }
}

fn compact_ports_v4(peers: &[u8]) -> BTreeSet<u16> {
    assert_eq!(peers.len() % 6, 0);
    peers
        .chunks_exact(6)
        .map(|c| {
            assert_eq!(&c[..4], &[127, 0, 0, 1]);
            u16::from_be_bytes([c[4], c[5]])
        })
        .collect()
}

fn compact_ports_v6(peers: &[u8]) -> BTreeSet<u16> {
    assert_eq!(peers.len() % 18, 0);
    peers
        .chunks_exact(18)
        .map(|c| {
            assert_eq!(&c[..16], &std::net::Ipv6Addr::LOCALHOST.octets());
            u16::from_be_bytes([c[16], c[17]])
        })
        .collect()
}

// ---- announce --------------------------------------------------------------------------------

#[tokio::test]
async fn compact_reply_peers6_and_external_ip() {
    let tracker = tracker();
    let s4 = v4(&tracker).await;
    let s6 = Server::start("[::1]:0", &tracker, HttpConfig::default()).await;
    let h = ih(1);
    let mut c4 = Client::connect(s4.addr).await;
    // Two IPv4 seeders.
    for port in [7001u16, 7002] {
        let v = c4
            .get(&announce(&h, port, port, 0, "&event=started"))
            .await
            .value();
        assert_eq!(bytes(&v, "external ip"), &[127, 0, 0, 1]);
    }
    let mut v6_ports = BTreeSet::new();
    if let Some(s6) = &s6 {
        let mut c6 = Client::connect(s6.addr).await;
        let v = c6.get(&announce(&h, 8001, 8001, 0, "")).await.value();
        assert_eq!(
            bytes(&v, "external ip"),
            &std::net::Ipv6Addr::LOCALHOST.octets()
        );
        assert_eq!(bytes(&v, "peers6"), b"", "a seeder gets no seeders");
        v6_ports.insert(8001);
    }
    // An IPv4 leecher gets every seeder, v4 in `peers`, v6 in `peers6`.
    let v = c4
        .get(&announce(&h, 9000, 9000, 100, "&compact=1"))
        .await
        .value();
    assert_eq!(int(&v, "complete"), 2 + v6_ports.len() as i64);
    assert_eq!(int(&v, "incomplete"), 1);
    assert_eq!(int(&v, "downloaded"), 0);
    let interval = int(&v, "interval");
    assert!(
        (1620..=1980).contains(&interval),
        "interval {interval} is 1800 +- 10 %"
    );
    assert_eq!(int(&v, "min interval"), 900);
    assert_eq!(
        compact_ports_v4(bytes(&v, "peers")),
        BTreeSet::from([7001, 7002])
    );
    assert_eq!(compact_ports_v6(bytes(&v, "peers6")), v6_ports);
    assert_eq!(bytes(&v, "external ip"), &[127, 0, 0, 1]);
    s4.stop().await;
    if let Some(s6) = s6 {
        s6.stop().await;
    }
}

#[tokio::test]
async fn dict_reply_with_and_without_peer_ids() {
    let tracker = tracker();
    let s = v4(&tracker).await;
    let h = ih(2);
    let mut c = Client::connect(s.addr).await;
    c.get(&announce(&h, 1, 7001, 0, "")).await.value();
    let v = c.get(&announce(&h, 2, 7002, 5, "&compact=0")).await.value();
    let Value::List(list) = get(&v, "peers") else {
        panic!("peers is not a list: {v:?}")
    };
    assert_eq!(list.len(), 1);
    assert_eq!(bytes(&list[0], "ip"), b"127.0.0.1");
    assert_eq!(int(&list[0], "port"), 7001);
    assert_eq!(bytes(&list[0], "peer id"), &pid(1));
    assert!(!has(&v, "peers6"));
    // An IPv6 peer appears in the same list with its address as text.
    if let Some(s6) = Server::start("[::1]:0", &tracker, HttpConfig::default()).await {
        let mut c6 = Client::connect(s6.addr).await;
        c6.get(&announce(&h, 3, 7003, 0, "")).await.value();
        let v = c.get(&announce(&h, 2, 7002, 5, "&compact=0")).await.value();
        let Value::List(list) = get(&v, "peers") else {
            panic!("peers is not a list: {v:?}")
        };
        let mut seen: Vec<(Vec<u8>, i64)> = list
            .iter()
            .map(|p| (bytes(p, "ip").to_vec(), int(p, "port")))
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            vec![(b"127.0.0.1".to_vec(), 7001), (b"::1".to_vec(), 7003)]
        );
        let v6 = list.iter().find(|p| bytes(p, "ip") == b"::1").unwrap();
        assert_eq!(bytes(v6, "peer id"), &pid(3));
        c6.get(&announce(&h, 3, 7003, 0, "&event=stopped"))
            .await
            .value();
        s6.stop().await;
    }
    let v = c
        .get(&announce(&h, 2, 7002, 5, "&compact=0&no_peer_id=1"))
        .await
        .value();
    let Value::List(list) = get(&v, "peers") else {
        panic!()
    };
    assert_eq!(list.len(), 1);
    assert!(!has(&list[0], "peer id"));
    assert_eq!(int(&list[0], "port"), 7001);
    s.stop().await;
}

#[tokio::test]
async fn numwant_absent_zero_large_and_capped() {
    let tracker = tracker();
    let s = v4(&tracker).await;
    let capped = Server::start(
        "127.0.0.1:0",
        &tracker,
        HttpConfig {
            max_numwant: 10,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let h = ih(3);
    let mut c = Client::connect(s.addr).await;
    for i in 0..70u16 {
        c.get(&announce(&h, i, 10_000 + i, 0, "")).await.value();
    }
    let count = |v: &Value| bytes(v, "peers").len() / 6;
    let v = c.get(&announce(&h, 999, 9999, 1, "")).await.value();
    assert_eq!(count(&v), 50, "absent numwant is the default 50");
    let v = c
        .get(&announce(&h, 999, 9999, 1, "&numwant=-1"))
        .await
        .value();
    assert_eq!(count(&v), 50, "negative numwant is the default");
    let v = c
        .get(&announce(&h, 999, 9999, 1, "&numwant=0"))
        .await
        .value();
    assert_eq!(count(&v), 0);
    assert_eq!(int(&v, "complete"), 70);
    let v = c
        .get(&announce(&h, 999, 9999, 1, "&numwant=100000"))
        .await
        .value();
    assert_eq!(count(&v), 70, "everyone, under the 200 cap");
    let mut cc = Client::connect(capped.addr).await;
    let v = cc
        .get(&announce(&h, 999, 9999, 1, "&numwant=100000"))
        .await
        .value();
    assert_eq!(count(&v), 10, "max_numwant caps");
    s.stop().await;
    capped.stop().await;
}

#[tokio::test]
async fn announcer_not_in_reply_and_seeders_get_only_leechers() {
    let tracker = tracker();
    let s = v4(&tracker).await;
    let h = ih(4);
    let mut c = Client::connect(s.addr).await;
    // Leechers 7001..7003, seeders 8001..8002.
    for p in 7001..=7003u16 {
        c.get(&announce(&h, p, p, 10, "")).await.value();
    }
    for p in 8001..=8002u16 {
        c.get(&announce(&h, p, p, 0, "")).await.value();
    }
    let v = c.get(&announce(&h, 7001, 7001, 10, "")).await.value();
    assert_eq!(
        compact_ports_v4(bytes(&v, "peers")),
        BTreeSet::from([7002, 7003, 8001, 8002])
    );
    let v = c.get(&announce(&h, 8001, 8001, 0, "")).await.value();
    assert_eq!(
        compact_ports_v4(bytes(&v, "peers")),
        BTreeSet::from([7001, 7002, 7003])
    );
    assert_eq!((int(&v, "complete"), int(&v, "incomplete")), (2, 3));
    s.stop().await;
}

#[tokio::test]
async fn stopped_removes_and_completed_counts_once() {
    let tracker = tracker();
    let s = v4(&tracker).await;
    let h = ih(5);
    let mut c = Client::connect(s.addr).await;
    c.get(&announce(&h, 1, 7001, 10, "&event=started"))
        .await
        .value();
    c.get(&announce(&h, 2, 7002, 10, "&event=started"))
        .await
        .value();
    let v = c
        .get(&announce(&h, 1, 7001, 0, "&event=completed"))
        .await
        .value();
    assert_eq!(
        (
            int(&v, "complete"),
            int(&v, "incomplete"),
            int(&v, "downloaded")
        ),
        (1, 1, 1)
    );
    let v = c
        .get(&announce(&h, 1, 7001, 0, "&event=completed"))
        .await
        .value();
    assert_eq!(
        int(&v, "downloaded"),
        1,
        "completed is counted once per peer"
    );
    let v = c
        .get(&announce(&h, 1, 7001, 0, "&event=stopped"))
        .await
        .value();
    assert_eq!((int(&v, "complete"), int(&v, "incomplete")), (0, 1));
    assert_eq!(bytes(&v, "peers"), b"", "a stopped announce gets no peers");
    let v = c.get(&announce(&h, 2, 7002, 10, "")).await.value();
    assert_eq!(bytes(&v, "peers"), b"", "the stopped peer is gone");
    // A stopped announce for an unknown torrent creates nothing.
    let before = tracker.torrent_count();
    let v = c
        .get(&announce(&ih(55), 3, 7003, 10, "&event=stopped"))
        .await
        .value();
    assert_eq!((int(&v, "complete"), int(&v, "incomplete")), (0, 0));
    assert_eq!(tracker.torrent_count(), before);
    s.stop().await;
}

#[tokio::test]
async fn passkey_paths_are_routed_and_unknown_paths_404() {
    let tracker = tracker();
    let s = v4(&tracker).await;
    let h = ih(6);
    let mut c = Client::connect(s.addr).await;
    let target = announce(&h, 1, 7001, 0, "").replacen("/announce", "/0123abcdef/announce", 1);
    let v = c.get(&target).await.value();
    assert_eq!(int(&v, "complete"), 1);
    let v = c
        .get(&format!("/0123abcdef/scrape?info_hash={}", enc(&h)))
        .await
        .value();
    assert_eq!(int(&files(&v)[h.as_slice()], "complete"), 1);
    for path in [
        "/",
        "/announce/",
        "/a/b/announce",
        "/favicon.ico",
        "/scrapes?info_hash=x",
    ] {
        let r = c.get(path).await;
        assert_eq!(r.status, 404, "{path}");
    }
    // Still usable after 404s.
    let v = c.get(&announce(&h, 2, 7002, 5, "")).await.value();
    assert_eq!(int(&v, "complete"), 1);
    s.stop().await;
}

// ---- scrape ----------------------------------------------------------------------------------

fn files(v: &Value) -> &HashMap<Vec<u8>, Value> {
    match get(v, "files") {
        Value::Dict(d) => d,
        other => panic!("files is {other:?}"),
    }
}

#[tokio::test]
async fn scrape_one_and_74_hashes() {
    let tracker = tracker();
    let s = v4(&tracker).await;
    let mut c = Client::connect(s.addr).await;
    let h = ih(7);
    c.get(&announce(&h, 1, 7001, 0, "")).await.value();
    c.get(&announce(&h, 2, 7002, 3, "")).await.value();
    c.get(&announce(&h, 2, 7002, 0, "&event=completed"))
        .await
        .value();
    c.get(&announce(&h, 3, 7003, 3, "")).await.value();
    let v = c
        .get(&format!("/scrape?info_hash={}", enc(&h)))
        .await
        .value();
    let f = files(&v);
    assert_eq!(f.len(), 1);
    let e = &f[h.as_slice()];
    assert_eq!(
        (
            int(e, "complete"),
            int(e, "incomplete"),
            int(e, "downloaded")
        ),
        (2, 1, 1)
    );

    // 74 hashes: the known one plus 73 unknown (zeros).
    let mut target = format!("/scrape?info_hash={}", enc(&h));
    let mut unknown = Vec::new();
    for i in 0..73u8 {
        let mut u = [i; 20];
        u[5] = 0xfe;
        unknown.push(u);
        target.push_str(&format!("&info_hash={}", enc(&u)));
    }
    let v = c.get(&target).await.value();
    let f = files(&v);
    assert_eq!(f.len(), 74);
    assert_eq!(int(&f[h.as_slice()], "complete"), 2);
    for u in &unknown {
        let e = &f[u.as_slice()];
        assert_eq!(
            (
                int(e, "complete"),
                int(e, "incomplete"),
                int(e, "downloaded")
            ),
            (0, 0, 0)
        );
    }
    // 75 is refused, nothing stored changes.
    target.push_str(&format!("&info_hash={}", enc(&[0xAA; 20])));
    let r = c.get(&target).await;
    assert!(r.failure().contains("at most 74"), "{}", r.failure());
    // No info_hash: no full scrape.
    assert!(
        c.get("/scrape")
            .await
            .failure()
            .contains("at least one info_hash")
    );
    // The same hash twice answers once.
    let v = c
        .get(&format!("/scrape?info_hash={0}&info_hash={0}", enc(&h)))
        .await
        .value();
    assert_eq!(files(&v).len(), 1);
    assert_eq!(tracker.torrent_count(), 1, "scrapes create nothing");
    s.stop().await;
}

// ---- malformed -------------------------------------------------------------------------------

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

// ---- connections -----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_keep_alive_clients() {
    let tracker = tracker();
    let s = v4(&tracker).await;
    let addr = s.addr;
    let mut tasks = Vec::new();
    for i in 0..200u16 {
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            for round in 0..5u16 {
                let v = c
                    .get(&announce(&ih(11), i, 20_000 + i, u64::from(round), ""))
                    .await
                    .value();
                assert!(int(&v, "complete") + int(&v, "incomplete") >= 1);
            }
        }));
    }
    for t in tasks {
        timeout(Duration::from_secs(60), t).await.unwrap().unwrap();
    }
    let v = Client::connect(addr)
        .await
        .get(&format!("/scrape?info_hash={}", enc(&ih(11))))
        .await
        .value();
    let e = &files(&v)[ih(11).as_slice()];
    assert_eq!(int(e, "complete") + int(e, "incomplete"), 200);
    let stats = tracker.stats().read().http;
    assert_eq!(stats.announces, 1000);
    s.stop().await;
}

#[tokio::test]
async fn idle_connections_do_not_block_a_new_client() {
    let tracker = tracker();
    let s = v4(&tracker).await;
    let mut idle = Vec::new();
    for i in 0..50 {
        let mut c = Client::connect(s.addr).await;
        if i % 2 == 0 {
            // Half send a partial head and stall.
            c.stream
                .write_all(b"GET /announce?info_hash=")
                .await
                .unwrap();
        }
        idle.push(c);
    }
    let mut c = Client::connect(s.addr).await;
    let v = timeout(
        Duration::from_secs(2),
        c.get(&announce(&ih(12), 1, 7001, 0, "")),
    )
    .await
    .unwrap()
    .value();
    assert_eq!(int(&v, "complete"), 1);
    drop(idle);
    s.stop().await;
}

#[tokio::test]
async fn max_connections_full_closes_the_oldest_waiting_connection() {
    let tracker = tracker();
    let config = HttpConfig {
        max_connections: 2,
        max_connections_per_ip: 2,
        ..Default::default()
    };
    let s = Server::start("127.0.0.1:0", &tracker, config)
        .await
        .unwrap();
    let mut a = Client::connect(s.addr).await;
    a.get(&announce(&ih(17), 1, 7001, 0, "")).await.value();
    let mut b = Client::connect(s.addr).await;
    b.get(&announce(&ih(17), 2, 7002, 0, "")).await.value();
    // Both slots are held by idle keep-alive connections. A third client (from another
    // address: the per-address cap is 2) is served at once: the oldest idle one made room.
    let mut c = Client::connect_from(s.addr, "127.0.0.2").await;
    let v = timeout(
        Duration::from_secs(1),
        c.get(&announce(&ih(17), 3, 7003, 5, "")),
    )
    .await
    .expect("served while every slot was held")
    .value();
    assert_eq!(int(&v, "complete"), 2);
    assert!(
        a.closed_within(Duration::from_secs(1)).await,
        "the oldest closed"
    );
    b.get(&announce(&ih(17), 2, 7002, 0, "")).await.value();
    let stats = tracker.stats().read().http;
    assert_eq!(stats.connections_evicted, 1);
    s.stop().await;
}

#[tokio::test]
async fn header_read_and_idle_timeouts_close_connections() {
    let tracker = tracker();
    let config = HttpConfig {
        header_read_timeout_ms: 300,
        idle_timeout_secs: 3,
        ..Default::default()
    };
    let s = Server::start("127.0.0.1:0", &tracker, config)
        .await
        .unwrap();
    // A stalled head is cut after the header timeout.
    let mut slow = Client::connect(s.addr).await;
    slow.stream
        .write_all(b"GET /announce?x=1 HTTP/1.1\r\n")
        .await
        .unwrap();
    let t0 = std::time::Instant::now();
    assert!(slow.closed_within(Duration::from_secs(5)).await);
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    // A keep-alive connection survives more than the header timeout between requests...
    let mut c = Client::connect(s.addr).await;
    c.get(&announce(&ih(13), 1, 7001, 0, "")).await.value();
    tokio::time::sleep(Duration::from_millis(600)).await;
    c.get(&announce(&ih(13), 1, 7001, 0, "")).await.value();
    // ...and is closed after the idle timeout.
    let t0 = std::time::Instant::now();
    assert!(c.closed_within(Duration::from_secs(5)).await);
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(2700) && took < Duration::from_millis(6000),
        "{took:?}"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_after_the_idle_timeout() {
    let tracker = tracker();
    let config = HttpConfig {
        idle_timeout_secs: 1,
        ..Default::default()
    };
    let s = Server::start("127.0.0.1:0", &tracker, config)
        .await
        .unwrap();
    let h = ih(18);
    let mut c = Client::connect(s.addr).await;
    for i in 0..200u16 {
        c.get(&announce(&h, i, 30_000 + i, 0, "")).await.value();
    }
    // Pipeline big dict replies (200 peers, ~12 KB each) and never read them: the server's
    // writes block, it stops reading our requests, and our writes block too...
    let (_read_half, mut write_half) = c.stream.into_split();
    let one = format!(
        "GET {} HTTP/1.1\r\nhost: t\r\n\r\n",
        announce(&h, 999, 9999, 5, "&compact=0&numwant=200")
    );
    let writer = tokio::spawn(async move {
        for _ in 0..50_000 {
            write_half.write_all(one.as_bytes()).await?;
        }
        Ok::<(), std::io::Error>(())
    });
    // ...until the server gives up on the stalled connection and resets it.
    let r = timeout(Duration::from_secs(20), writer)
        .await
        .expect("the server cut the stalled client");
    assert!(
        r.unwrap().is_err(),
        "all 50000 requests were accepted without reading a reply"
    );
    s.stop().await;
}

#[tokio::test]
async fn shutdown_stops_accepting_and_closes_idle_keep_alive() {
    let tracker = tracker();
    let s = v4(&tracker).await;
    let addr = s.addr;
    let mut c = Client::connect(addr).await;
    c.get(&announce(&ih(14), 1, 7001, 0, "")).await.value();
    s.stop().await;
    assert!(
        c.closed_within(T).await,
        "idle keep-alive connection closed on shutdown"
    );
    assert!(TcpStream::connect(addr).await.is_err(), "listener closed");
}

// ---- client IP -------------------------------------------------------------------------------

#[tokio::test]
async fn x_forwarded_for_from_trusted_and_untrusted_peers() {
    let tracker = tracker();
    let trusted = Server::start(
        "127.0.0.1:0",
        &tracker,
        HttpConfig {
            trusted_proxies: vec![
                "127.0.0.0/8".parse().unwrap(),
                "10.0.0.0/8".parse().unwrap(),
            ],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let untrusted = v4(&tracker).await;
    let h = ih(15);
    let xff = "x-forwarded-for: 203.0.113.9, 198.51.100.7\r\nx-forwarded-for: 10.1.2.3\r\n";
    let mut c = Client::connect(trusted.addr).await;
    let v = c.get_with(&announce(&h, 1, 7001, 0, ""), xff).await.value();
    assert_eq!(
        bytes(&v, "external ip"),
        &[198, 51, 100, 7],
        "rightmost untrusted entry"
    );
    // Stored under that address: another peer sees it.
    let mut u = Client::connect(untrusted.addr).await;
    let v = u.get_with(&announce(&h, 2, 7002, 5, ""), xff).await.value();
    assert_eq!(
        bytes(&v, "external ip"),
        &[127, 0, 0, 1],
        "untrusted peer: header ignored"
    );
    assert_eq!(bytes(&v, "peers"), &[198, 51, 100, 7, 0x1b, 0x59]);
    // IPv6 entry through the trusted proxy.
    let v = c
        .get_with(
            &announce(&h, 3, 7003, 0, ""),
            "x-forwarded-for: 2001:db8::5\r\n",
        )
        .await
        .value();
    let want: IpAddr = "2001:db8::5".parse().unwrap();
    let IpAddr::V6(w) = want else { unreachable!() };
    assert_eq!(bytes(&v, "external ip"), &w.octets());
    trusted.stop().await;
    untrusted.stop().await;
}

#[tokio::test]
async fn ip_param_is_ignored_unless_allowed() {
    let tracker = tracker();
    let plain = v4(&tracker).await;
    let allowing = Server::start(
        "127.0.0.1:0",
        &tracker,
        HttpConfig {
            allow_ip_param: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let h = ih(16);
    let mut c = Client::connect(plain.addr).await;
    c.get(&announce(&h, 1, 7001, 0, "&ip=192.0.2.1"))
        .await
        .value();
    let mut a = Client::connect(allowing.addr).await;
    // Loopback source and allowed: stored as 192.0.2.50.
    a.get(&announce(&h, 2, 7002, 0, "&ip=192.0.2.50"))
        .await
        .value();
    let v = c.get(&announce(&h, 3, 7003, 5, "")).await.value();
    let peers: BTreeSet<[u8; 6]> = bytes(&v, "peers")
        .chunks_exact(6)
        .map(|c| c.try_into().unwrap())
        .collect();
    assert_eq!(
        peers,
        BTreeSet::from([[127, 0, 0, 1, 0x1b, 0x59], [192, 0, 2, 50, 0x1b, 0x5a]])
    );
    plain.stop().await;
    allowing.stop().await;
}
