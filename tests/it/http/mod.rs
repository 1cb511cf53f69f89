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

mod announce;
mod client_ip;
mod connections;
mod direct;
mod malformed;
mod scrape;

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
    /// The body of a `200 text/plain` reply.
    fn value_bytes(&self) -> Vec<u8> {
        assert_eq!(self.status, 200);
        assert_eq!(self.header("content-type"), Some("text/plain"));
        self.body.clone()
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

/// A scrape reply's `files` dictionary.
fn files(v: &Value) -> &HashMap<Vec<u8>, Value> {
    match get(v, "files") {
        Value::Dict(d) => d,
        other => panic!("files is {other:?}"),
    }
}
