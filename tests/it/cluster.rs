//! Cluster mode end to end: a real `redis-server` started here (free loopback port, temporary
//! directory, no persistence) and real daemons on 127.0.0.1 port 0, talked to over HTTP and
//! UDP. Without `redis-server` on PATH the tests print `skipped: ...` and pass, unless
//! `MINI_TORRUST_REQUIRE_TOOLS=1` (set by `.ci/run`, which installs it).
//!
//! Also the contract suite (chihaya's `storage_tests.go` idea): one set of announce, scrape and
//! expiry rule checks run against a memory-only daemon and against two cluster nodes, announces
//! spread over the nodes and every node checked.

use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::harness::{
    Daemon, bdecode, config, connect_on, dict_get, http_get, int, metrics, on_path, pct, sample,
    tool_present,
};

/// How soon a change at one node must be seen at the others.
pub(super) const CONVERGE: Duration = Duration::from_secs(1);

/// What the shared checks need of a Redis deployment (a standalone server here, a Redis
/// Cluster in `redis_cluster.rs`), so that the same checks run against both.
pub(super) trait Store {
    /// The `[cluster] redis_url` that reaches this store.
    fn url(&self) -> String;
    /// One command on the server holding `args[1]` (the key); the first line of its reply.
    fn key_call(&self, args: &[&str]) -> Option<String>;
    /// SIGKILLs every server (no persistence: [`Store::restart_empty`] brings them back empty).
    fn kill_all(&mut self);
    /// Starts every server again, empty, and waits until the store serves.
    fn restart_empty(&mut self);

    /// A daemon config with `extra` and a `[cluster]` section pointing at this store.
    fn node_config(&self, dir: &std::path::Path, node: &str, extra: &str) -> String {
        format!(
            "{}{extra}\n[cluster]\nredis_url = \"{}\"\nnode_name = \"{node}\"\n",
            config(dir, "[admin]\nbind = [\"127.0.0.1:0\"]"),
            self.url()
        )
    }

    /// `ZCARD key` as the server answers it (`":3"`), wherever the key lives.
    fn zcard(&self, key: &str) -> Option<String> {
        self.key_call(&["ZCARD", key])
    }
}

impl Store for Redis {
    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn key_call(&self, args: &[&str]) -> Option<String> {
        self.call(args)
    }

    fn kill_all(&mut self) {
        self.kill();
    }

    fn restart_empty(&mut self) {
        self.restart();
    }
}

/// A private redis-server, killed on drop.
pub(super) struct Redis {
    child: Child,
    pub(super) port: u16,
    _dir: tempfile::TempDir,
    /// The extra `redis-server` arguments it was started with (again at a restart).
    extra: Vec<String>,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Redis {
    /// Starts one, or `None` (test skipped) when redis-server is not installed.
    pub(super) fn start() -> Option<Redis> {
        Self::start_with(&[])
    }

    /// [`Redis::start`] with extra `redis-server` arguments.
    pub(super) fn start_with(extra: &[&str]) -> Option<Redis> {
        let have = on_path("redis-server");
        if !tool_present(
            have,
            "redis-server not on PATH (apt-get install redis-server)",
        ) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Self::spawn_with(port, dir.path(), extra);
        let r = Redis {
            child,
            port,
            _dir: dir,
            extra: extra.iter().map(|a| (*a).to_owned()).collect(),
        };
        r.wait_up();
        Some(r)
    }

    /// redis-server on `port` in `dir`, no persistence, with `extra` arguments.
    pub(super) fn spawn_with(port: u16, dir: &std::path::Path, extra: &[&str]) -> Child {
        Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(extra)
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    fn wait_up(&self) {
        wait_pong(self.port);
    }

    /// Kills it (no persistence: it comes back empty with [`Redis::restart`]).
    pub(super) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port.
    pub(super) fn restart(&mut self) {
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        self.child = Self::spawn_with(self.port, self._dir.path(), &extra);
        self.wait_up();
    }

    /// One command; the first line of the reply (`None` when it cannot connect).
    pub(super) fn call(&self, args: &[&str]) -> Option<String> {
        call(self.port, args)
    }
}

/// One command to the Redis on 127.0.0.1 `port`; the first line of the reply (`None` when it
/// cannot connect).
/// Waits (at most 10 s) until the redis-server on `port` answers `PING`.
pub(super) fn wait_pong(port: u16) {
    let end = Instant::now() + Duration::from_secs(10);
    while call(port, &["PING"]).as_deref() != Some("+PONG") {
        assert!(Instant::now() < end, "redis-server {port} did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(super) fn call(port: u16, args: &[&str]) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    use std::io::{BufRead, BufReader, Write};
    s.write_all(req.as_bytes()).ok()?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).ok()?;
    Some(line.trim_end().to_owned())
}

/// Polls `f` until it holds or [`CONVERGE`] passes; returns how long it took.
pub(super) fn eventually(what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    loop {
        if f() {
            return t0.elapsed();
        }
        assert!(t0.elapsed() < CONVERGE, "not within {CONVERGE:?}: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// An HTTP announce from 127.0.0.1 `port`: (peers, complete, incomplete, downloaded).
pub(super) fn announce(
    d: &Daemon,
    ih: &[u8; 20],
    port: u16,
    left: u64,
    event: &str,
    numwant: u32,
) -> (Vec<SocketAddr>, i64, i64, i64) {
    let target = format!(
        "/announce?info_hash={}&peer_id={}&port={port}&uploaded=0&downloaded=0&left={left}&compact=1&numwant={numwant}{}",
        pct(ih),
        pct(&[port as u8; 20]),
        if event.is_empty() {
            String::new()
        } else {
            format!("&event={event}")
        }
    );
    let (status, body) = http_get(d.http, &target, &[]);
    assert_eq!(status, 200);
    let v = bdecode(&body);
    assert!(dict_get(&v, "failure reason").is_none(), "{v:?}");
    let peers = match dict_get(&v, "peers") {
        Some(serde_bencode::value::Value::Bytes(b)) => b
            .chunks_exact(6)
            .map(|c| SocketAddr::from(([c[0], c[1], c[2], c[3]], u16::from_be_bytes([c[4], c[5]]))))
            .collect(),
        other => panic!("peers: {other:?}"),
    };
    (
        peers,
        int(dict_get(&v, "complete")),
        int(dict_get(&v, "incomplete")),
        int(dict_get(&v, "downloaded")),
    )
}

/// An HTTP scrape: (complete, incomplete, downloaded).
pub(super) fn scrape(d: &Daemon, ih: &[u8; 20]) -> (i64, i64, i64) {
    let (status, body) = http_get(d.http, &format!("/scrape?info_hash={}", pct(ih)), &[]);
    assert_eq!(status, 200);
    let v = bdecode(&body);
    let Some(serde_bencode::value::Value::Dict(files)) = dict_get(&v, "files") else {
        panic!("files: {v:?}");
    };
    match files.get(&ih[..]) {
        Some(f) => (
            int(dict_get(f, "complete")),
            int(dict_get(f, "incomplete")),
            int(dict_get(f, "downloaded")),
        ),
        None => (0, 0, 0),
    }
}

pub(super) fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A BEP 15 announce on `s` with connection id `cid`: Ok(peers) or Err(error message).
fn udp_announce(
    s: &UdpSocket,
    to: SocketAddr,
    cid: u64,
    ih: &[u8; 20],
    port: u16,
) -> Result<Vec<SocketAddr>, String> {
    let mut p = Vec::with_capacity(98);
    p.extend_from_slice(&cid.to_be_bytes());
    p.extend_from_slice(&1u32.to_be_bytes());
    p.extend_from_slice(&7u32.to_be_bytes());
    p.extend_from_slice(ih);
    p.extend_from_slice(&[9; 20]);
    p.extend_from_slice(&[0; 8]);
    p.extend_from_slice(&100u64.to_be_bytes());
    p.extend_from_slice(&[0; 8]);
    p.extend_from_slice(&2u32.to_be_bytes()); // started
    p.extend_from_slice(&[0; 8]);
    p.extend_from_slice(&50i32.to_be_bytes());
    p.extend_from_slice(&port.to_be_bytes());
    s.send_to(&p, to).unwrap();
    let mut buf = [0u8; 2048];
    let (n, _) = s.recv_from(&mut buf).unwrap();
    match u32::from_be_bytes(buf[..4].try_into().unwrap()) {
        1 => Ok(buf[20..n]
            .chunks_exact(6)
            .map(|c| SocketAddr::from(([c[0], c[1], c[2], c[3]], u16::from_be_bytes([c[4], c[5]]))))
            .collect()),
        _ => Err(String::from_utf8_lossy(&buf[8..n]).into_owned()),
    }
}

#[test]
fn two_nodes_converge_on_peers_stops_and_one_completed_count() {
    let Some(redis) = Redis::start() else { return };
    two_nodes_converge(&redis);
}

/// Two nodes on `redis`: peers, stops and completions announced at one reach the other within
/// [`CONVERGE`], counted once, and the counts agree.
pub(super) fn two_nodes_converge(redis: &dyn Store) {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Daemon::start(da.path(), &redis.node_config(da.path(), "a", ""));
    let b = Daemon::start(db.path(), &redis.node_config(db.path(), "b", ""));
    let ih = [0x31; 20];

    // A peer announced at A shows in B's scrape, then in B's announce reply.
    announce(&a, &ih, 1001, 100, "started", 50);
    let took = eventually("A's leecher counted at B", || scrape(&b, &ih) == (0, 1, 0));
    println!("A -> B scrape convergence: {took:?}");
    let (peers, _, incomplete, _) = announce(&b, &ih, 1002, 100, "started", 50);
    assert_eq!(peers, vec![local(1001)], "B's reply holds A's peer");
    assert_eq!(incomplete, 2);
    // With `compact=0`, A's peer comes without a `peer id` (ids are not replicated), not with
    // a made-up one.
    let target = format!(
        "/announce?info_hash={}&peer_id={}&port=1002&uploaded=0&downloaded=0&left=100&compact=0",
        pct(&ih),
        pct(&[0xea; 20])
    );
    let (_, body) = http_get(b.http, &target, &[]);
    let v = bdecode(&body);
    let Some(serde_bencode::value::Value::List(list)) = dict_get(&v, "peers") else {
        panic!("peers: {v:?}");
    };
    assert_eq!(list.len(), 1, "{v:?}");
    assert_eq!(int(dict_get(&list[0], "port")), 1001);
    assert!(dict_get(&list[0], "peer id").is_none(), "{v:?}");
    eventually("B's leecher counted at A", || scrape(&a, &ih) == (0, 2, 0));

    // `stopped` at B removes the peer that announced at A, at A too.
    announce(&b, &ih, 1001, 100, "stopped", 50);
    eventually("the stop reaches A", || scrape(&a, &ih) == (0, 1, 0));
    let (peers, ..) = announce(&a, &ih, 1002, 100, "", 50);
    assert!(
        peers.is_empty(),
        "A still hands out the stopped peer: {peers:?}"
    );

    // The same peer completes at A and at once at B: counted once, on both nodes.
    announce(&a, &ih, 1002, 0, "completed", 50);
    announce(&b, &ih, 1002, 0, "completed", 50);
    eventually("one completion on both", || {
        scrape(&a, &ih) == (1, 0, 1) && scrape(&b, &ih) == (1, 0, 1)
    });
    // A completion at A alone reaches B's count (B counted nothing itself).
    announce(&a, &ih, 1003, 100, "started", 50);
    announce(&a, &ih, 1003, 0, "completed", 50);
    eventually("the second completion reaches B", || {
        scrape(&b, &ih) == (2, 0, 2)
    });
    // Stable, and equal to the live peers (two seeders) on both nodes.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(scrape(&a, &ih), (2, 0, 2));
    assert_eq!(scrape(&b, &ih), (2, 0, 2));
    let (peers, ..) = announce(&b, &ih, 1004, 100, "started", 50);
    let mut peers = peers;
    peers.sort();
    assert_eq!(peers, vec![local(1002), local(1003)]);

    // Latency, one change at a time (not under load): announce at A, poll B's scrape.
    let ih = [0x32; 20];
    let mut took: Vec<Duration> = (0..40u16)
        .map(|i| {
            announce(&a, &ih, 5000 + i, 100, "started", 0);
            eventually("each new peer reaches B", || {
                scrape(&b, &ih).1 == i64::from(i) + 1
            })
        })
        .collect();
    took.sort();
    // What the nodes say about the link.
    let (ma, mb) = (metrics(a.admin), metrics(b.admin));
    assert_eq!(sample(&ma, "mini_torrust_cluster_redis_up", &[]), 1.0);
    assert!(sample(&ma, "mini_torrust_cluster_changes_written_total", &[]) >= 40.0);
    assert!(sample(&mb, "mini_torrust_cluster_changes_applied_total", &[]) >= 40.0);
    for m in [&ma, &mb] {
        for w in ["ring", "queue"] {
            let dropped = sample(
                m,
                "mini_torrust_cluster_changes_dropped_total",
                &[("where", w)],
            );
            assert_eq!(dropped, 0.0, "{w}");
        }
    }
    println!(
        "A -> B convergence over {} announces: p50 {:?}, p99 {:?}",
        took.len(),
        took[took.len() / 2],
        took[took.len() * 99 / 100]
    );
}

#[test]
fn a_completion_announced_at_two_nodes_at_once_is_counted_once() {
    let Some(redis) = Redis::start() else { return };
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Slow flushes, so that neither node has heard of the other's completion when it counts its
    // own: only Redis can tell that it is the same peer.
    let slow = "\n[cluster]\nflush_interval_ms = 300\n";
    let cfg =
        |d: &std::path::Path, n: &str| redis.node_config(d, n, "").replace("\n[cluster]\n", slow);
    let a = Daemon::start(da.path(), &cfg(da.path(), "a"));
    let b = Daemon::start(db.path(), &cfg(db.path(), "b"));
    let ih = [0x41; 20];
    announce(&a, &ih, 1500, 0, "completed", 50);
    let (_, _, _, at_b) = announce(&b, &ih, 1500, 0, "completed", 50);
    assert_eq!(at_b, 1, "B counted it locally first");
    eventually("counted once on both", || {
        scrape(&a, &ih) == (1, 0, 1) && scrape(&b, &ih) == (1, 0, 1)
    });
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!((scrape(&a, &ih), scrape(&b, &ih)), ((1, 0, 1), (1, 0, 1)));
}

#[test]
fn a_clean_stop_sends_the_last_changes() {
    let Some(redis) = Redis::start() else { return };
    let d = tempfile::tempdir().unwrap();
    // Flushes far apart: only the last flush at the stop can have sent the announce.
    let text = redis
        .node_config(d.path(), "a", "")
        .replace("\n[cluster]\n", "\n[cluster]\nflush_interval_ms = 1000\n");
    let mut a = Daemon::start(d.path(), &text);
    let ih = [0x63; 20];
    std::thread::sleep(Duration::from_millis(1100));
    announce(&a, &ih, 2501, 100, "started", 50);
    a.signal("TERM");
    assert!(a.wait_exit().success());
    let key = format!("{{mt:{}}}:l4", super::harness::hex(&ih));
    assert_eq!(redis.call(&["ZCARD", &key]).as_deref(), Some(":1"));
}

#[test]
fn redis_down_the_node_answers_from_memory_and_sends_its_changes_when_redis_returns() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let text = redis
        .node_config(d.path(), "a", "")
        .replace("\n[cluster]\n", "\n[cluster]\ntimeout_ms = 200\n");
    let mut a = Daemon::start(d.path(), &text);
    let ih = [0x64; 20];
    announce(&a, &ih, 2601, 100, "started", 50);
    let key = format!("{{mt:{}}}:l4", super::harness::hex(&ih));
    eventually("the first peer in Redis", || {
        redis.call(&["ZCARD", &key]).as_deref() == Some(":1")
    });
    redis.kill();
    // Announces are answered from memory at once, with the right peers and counts.
    for port in [2602, 2603] {
        let t0 = Instant::now();
        let (peers, _, incomplete, _) = announce(&a, &ih, port, 100, "started", 50);
        assert!(
            t0.elapsed() < Duration::from_millis(150),
            "{:?}",
            t0.elapsed()
        );
        assert_eq!(incomplete, i64::from(port - 2600));
        assert!(peers.contains(&local(2601)));
    }
    let end = Instant::now() + Duration::from_secs(5);
    while sample(&metrics(a.admin), "mini_torrust_cluster_redis_up", &[]) != 0.0 {
        assert!(Instant::now() < end, "redis_up still 1");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The reader may notice first; the writer's failed flush follows within its timeout.
    let end = Instant::now() + Duration::from_secs(5);
    while sample(
        &metrics(a.admin),
        "mini_torrust_cluster_write_errors_total",
        &[],
    ) < 1.0
    {
        assert!(Instant::now() < end, "no write error counted");
        std::thread::sleep(Duration::from_millis(50));
    }
    let health = |d: &Daemon| {
        let (status, body) = http_get(d.admin, "/health", &[]);
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    let degraded = "degraded: Redis unreachable, serving from memory\n".to_owned();
    assert_eq!(health(&a), (200, degraded));
    a.wait_message(|m| m.contains("; degraded: Redis unreachable"));
    // Redis comes back empty: the two changes queued meanwhile arrive, and the first peer,
    // written before and lost with Redis's memory, is re-published (see cluster_state.rs).
    redis.restart();
    let end = Instant::now() + Duration::from_secs(10);
    while redis.call(&["ZCARD", &key]).as_deref() != Some(":3") {
        assert!(
            Instant::now() < end,
            "queued changes not sent: {:?}",
            redis.call(&["ZCARD", &key])
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let end = Instant::now() + Duration::from_secs(5);
    while sample(&metrics(a.admin), "mini_torrust_cluster_redis_up", &[]) != 1.0 {
        assert!(Instant::now() < end, "redis_up still 0");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(health(&a), (200, "ok\n".to_owned()));
}

#[test]
fn redis_down_the_queue_is_bounded_and_counts_what_it_drops() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let text = redis.node_config(d.path(), "a", "").replace(
        "\n[cluster]\n",
        "\n[cluster]\ntimeout_ms = 200\nmax_pending = 2\n",
    );
    let a = Daemon::start(d.path(), &text);
    redis.kill();
    let ih = [0x65; 20];
    for port in 2701..2706 {
        announce(&a, &ih, port, 100, "started", 50);
    }
    // Five changes, room for two: the three oldest are dropped and counted.
    let dropped = || {
        let m = metrics(a.admin);
        sample(
            &m,
            "mini_torrust_cluster_changes_dropped_total",
            &[("where", "queue")],
        )
    };
    let end = Instant::now() + Duration::from_secs(5);
    while dropped() != 3.0 {
        assert!(Instant::now() < end, "dropped {}", dropped());
        std::thread::sleep(Duration::from_millis(20));
    }
    // Redis returns (empty): the two queued changes are sent, and the re-publish of what
    // memory holds brings back the three the queue dropped.
    redis.restart();
    let key = format!("{{mt:{}}}:l4", super::harness::hex(&ih));
    let end = Instant::now() + Duration::from_secs(10);
    while redis.call(&["ZCARD", &key]).as_deref() != Some(":5") {
        assert!(Instant::now() < end, "{:?}", redis.call(&["ZCARD", &key]));
        std::thread::sleep(Duration::from_millis(50));
    }
    // Memory kept everything: the node still serves all five.
    assert_eq!(scrape(&a, &ih), (0, 5, 0));
}

#[test]
fn a_node_started_later_serves_the_swarm_and_accepts_ids_issued_elsewhere() {
    let Some(redis) = Redis::start() else { return };
    a_later_node_joins(&redis);
}

/// A node started after the swarm formed serves it at once, and accepts UDP connection ids
/// issued by the other node (and the other way round).
pub(super) fn a_later_node_joins(redis: &dyn Store) {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Daemon::start(da.path(), &redis.node_config(da.path(), "a", ""));
    let ih = [0x52; 20];
    for port in [2001, 2002, 2003] {
        announce(&a, &ih, port, 100, "started", 50);
    }
    let key = format!("{{mt:{}}}:l4", super::harness::hex(&ih));
    eventually("A's peers in Redis", || {
        redis.zcard(&key).as_deref() == Some(":3")
    });

    // B starts after that and has never seen the swarm. A client connects at A and announces
    // at B (DNS round robin): the id is accepted and the first reply holds A's peers.
    let b = Daemon::start(db.path(), &redis.node_config(db.path(), "b", ""));
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let cid = connect_on(&s, a.udp);
    let mut peers = udp_announce(&s, b.udp, cid, &ih, 2009).expect("B accepts A's id");
    peers.sort();
    assert_eq!(peers, vec![local(2001), local(2002), local(2003)]);
    // And the other way round.
    let cid = connect_on(&s, b.udp);
    assert!(udp_announce(&s, a.udp, cid, &ih, 2009).is_ok());
}

/// The rules every deployment keeps, checked at every node after each step (a change made at
/// one node must hold at all of them within [`CONVERGE`]).
pub(super) fn contract(nodes: &[&Daemon]) {
    let first = nodes[0];
    let last = nodes[nodes.len() - 1];
    let all = |what: &str, ih: &[u8; 20], want: (i64, i64, i64)| {
        for (i, n) in nodes.iter().enumerate() {
            eventually(&format!("{what} at node {i}"), || scrape(n, ih) == want);
        }
    };
    let ih = [0x77; 20];
    // An unknown torrent scrapes as zeros.
    all("unknown torrent", &[0x78; 20], (0, 0, 0));
    // A new leecher is counted as a leecher; a stopped announce of an unknown peer creates
    // nothing.
    announce(first, &ih, 3001, 10, "started", 50);
    announce(last, &[0x79; 20], 3009, 10, "stopped", 50);
    all("one leecher", &ih, (0, 1, 0));
    all("stopped creates nothing", &[0x79; 20], (0, 0, 0));
    // A seeder gets only leechers, and never itself.
    let (peers, complete, incomplete, _) = announce(last, &ih, 3002, 0, "started", 50);
    assert_eq!(peers, vec![local(3001)]);
    assert_eq!((complete, incomplete), (1, 1));
    // A leecher gets seeders and leechers, not itself; numwant caps the reply.
    announce(first, &ih, 3003, 10, "started", 50);
    for n in nodes {
        eventually("a leecher gets both", || {
            let (mut p, ..) = announce(n, &ih, 3003, 10, "", 50);
            p.sort();
            p == vec![local(3001), local(3002)]
        });
        assert_eq!(announce(n, &ih, 3003, 10, "", 1).0.len(), 1);
    }
    all("two leechers, one seeder", &ih, (1, 2, 0));
    // `stopped` removes the peer everywhere.
    announce(last, &ih, 3001, 10, "stopped", 50);
    all("stopped removes", &ih, (1, 1, 0));
    // A completed download is counted once per peer, wherever it is announced.
    announce(first, &ih, 3003, 0, "completed", 50);
    announce(last, &ih, 3003, 0, "completed", 50);
    all("completed once", &ih, (2, 0, 1));
    // Peers expire (peer_timeout 4 s here) on every node, with nobody announcing.
    std::thread::sleep(Duration::from_secs(5));
    all("expired peers are not counted", &ih, (0, 0, 1));
    let (peers, ..) = announce(first, &ih, 3004, 10, "started", 50);
    assert!(peers.is_empty(), "expired peers handed out: {peers:?}");
}

pub(super) const SHORT_TIMEOUT: &str =
    "[protocol]\ninterval = 2\nmin_interval = 1\n[swarm]\npeer_timeout = 4\n";

#[test]
fn contract_memory_only() {
    let d = tempfile::tempdir().unwrap();
    let text = format!(
        "{}{SHORT_TIMEOUT}",
        config(d.path(), "[admin]\nbind = [\"127.0.0.1:0\"]")
    );
    let node = Daemon::start(d.path(), &text);
    contract(&[&node]);
    // Memory-only shows no cluster link.
    let (_, body) = http_get(node.admin, "/metrics", &[]);
    assert!(!String::from_utf8_lossy(&body).contains("cluster_"));
}

#[test]
fn contract_cluster_two_nodes() {
    let Some(redis) = Redis::start() else { return };
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Daemon::start(da.path(), &redis.node_config(da.path(), "a", SHORT_TIMEOUT));
    let b = Daemon::start(db.path(), &redis.node_config(db.path(), "b", SHORT_TIMEOUT));
    contract(&[&a, &b]);
}
