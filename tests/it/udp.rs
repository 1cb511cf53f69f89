//! UDP tracker end to end: real sockets on 127.0.0.1 and ::1, real bytes, decoded replies.

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use tracker_core::{Clock, CoreConfig, Event, InfoHash, PeerId, Tracker, unix_now};
use tracker_udp::protocol::{
    self, AnnounceRequest, ConnectionId, Options, Response, TransactionId,
};
use tracker_udp::{UdpConfig, UdpServer, UdpSockets, UdpStopper};

/// A running server with its tracker and stop flag; stopped (and joined) on drop.
struct Server {
    tracker: Arc<Tracker>,
    stop: UdpStopper,
    server: Option<UdpServer>,
    addrs: Vec<SocketAddr>,
}

impl Server {
    fn start(tracker: Arc<Tracker>, bind: &[&str], workers: usize) -> Self {
        Self::start_with_key(tracker, bind, workers, rand::random())
    }

    /// Same, signing connection ids with `key` (as the daemon does with a restored one).
    fn start_with_key(tracker: Arc<Tracker>, bind: &[&str], workers: usize, key: [u8; 16]) -> Self {
        let config = UdpConfig {
            bind: bind.iter().map(|a| a.parse().unwrap()).collect(),
            workers,
            read_timeout_ms: 50,
            // Room for the garbage test's bursts of 100 datagrams of up to 3 KB, whatever the
            // default (the kernel still caps it at net.core.rmem_max).
            recv_buffer_bytes: 4 << 20,
            ..UdpConfig::default()
        };
        let sockets = UdpSockets::bind(&config).unwrap();
        let server = UdpServer::start(Arc::clone(&tracker), &config, key, sockets).unwrap();
        let stop = server.stopper();
        let addrs = server.local_addrs();
        Self {
            tracker,
            stop,
            server: Some(server),
            addrs,
        }
    }

    fn manual_clock(bind: &[&str]) -> Self {
        let t = Tracker::with_clock(CoreConfig::default(), Clock::manual(unix_now()));
        Self::start(Arc::new(t), bind, 2)
    }

    /// Stops the workers and checks they exit promptly and cleanly.
    fn stop(mut self) -> Arc<Tracker> {
        self.stop.stop();
        let started = Instant::now();
        let res = self.server.take().map(UdpServer::join);
        assert!(matches!(res, Some(Ok(()))), "{res:?}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "workers took {:?}",
            started.elapsed()
        );
        Arc::clone(&self.tracker)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.stop();
        if let Some(s) = self.server.take() {
            let _ = s.join();
        }
    }
}

struct Client {
    sock: UdpSocket,
    to: SocketAddr,
}

static NEXT_TID: AtomicU32 = AtomicU32::new(1);

impl Client {
    fn new(to: SocketAddr) -> Self {
        let sock = UdpSocket::bind(if to.is_ipv4() {
            "127.0.0.1:0"
        } else {
            "[::1]:0"
        })
        .unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        Self { sock, to }
    }

    fn tid() -> TransactionId {
        TransactionId(NEXT_TID.fetch_add(1, Ordering::Relaxed).to_be_bytes())
    }

    /// Sends `pkt` (whose transaction id is `tid`) and waits for the reply carrying that id,
    /// resending a few times (UDP). `None` if nothing came back.
    fn call(&self, pkt: &[u8], tid: TransactionId) -> Option<Response> {
        let mut buf = [0u8; 2048];
        for _ in 0..6 {
            self.sock.send_to(pkt, self.to).unwrap();
            let deadline = Instant::now() + Duration::from_millis(500);
            while Instant::now() < deadline {
                let Ok((n, from)) = self.sock.recv_from(&mut buf) else {
                    break;
                };
                assert_eq!(from, self.to);
                let r = protocol::parse_response(&buf[..n], self.to.is_ipv6())
                    .unwrap_or_else(|| panic!("undecodable reply {:?}", &buf[..n]));
                let got = match &r {
                    Response::Connect { transaction_id, .. }
                    | Response::Announce { transaction_id, .. }
                    | Response::Scrape { transaction_id, .. }
                    | Response::Error { transaction_id, .. } => *transaction_id,
                };
                if got == tid {
                    return Some(r);
                }
            }
        }
        None
    }

    fn connect(&self) -> ConnectionId {
        let tid = Self::tid();
        let mut b = [0u8; 16];
        protocol::write_connect_request(&mut b, tid);
        match self.call(&b, tid) {
            Some(Response::Connect { connection_id, .. }) => connection_id,
            other => panic!("connect: {other:?}"),
        }
    }

    fn announce_with(
        &self,
        cid: ConnectionId,
        f: impl FnOnce(&mut AnnounceRequest<'_>),
        url: &[u8],
    ) -> Response {
        let tid = Self::tid();
        let mut req = AnnounceRequest {
            connection_id: cid,
            transaction_id: tid,
            info_hash: InfoHash([0x11; 20]),
            peer_id: PeerId(*b"-MT0001-abcdefghijkl"),
            downloaded: 0,
            left: 1000,
            uploaded: 0,
            event: Event::Started,
            ip: [0; 4],
            key: 0,
            numwant: -1,
            port: 6881,
            options: Options::default(),
        };
        f(&mut req);
        let b = protocol::encode_announce_request(&req, url);
        self.call(&b, tid).expect("no reply to announce")
    }

    fn scrape(&self, cid: ConnectionId, hashes: &[InfoHash]) -> Response {
        let tid = Self::tid();
        self.call(&protocol::encode_scrape_request(cid, tid, hashes), tid)
            .expect("no reply to scrape")
    }
}

fn peers_of(r: Response) -> (u32, u32, Vec<SocketAddr>) {
    match r {
        Response::Announce {
            seeders,
            leechers,
            peers,
            interval,
            ..
        } => {
            assert!((1620..=1980).contains(&interval), "interval {interval}");
            (seeders, leechers, peers)
        }
        other => panic!("expected an announce reply, got {other:?}"),
    }
}

#[test]
fn ipv4_connect_announce_scrape() {
    let s = Server::manual_clock(&["127.0.0.1:0"]);
    let a = Client::new(s.addrs[0]);
    let b = Client::new(s.addrs[0]);
    let cid_a = a.connect();
    let (seeders, leechers, peers) = peers_of(a.announce_with(cid_a, |r| r.left = 0, b""));
    assert_eq!((seeders, leechers), (1, 0));
    assert!(peers.is_empty(), "never the announcer itself");
    let cid_b = b.connect();
    let (seeders, leechers, peers) = peers_of(b.announce_with(cid_b, |r| r.port = 7000, b""));
    assert_eq!((seeders, leechers), (1, 1));
    // The IP field is ignored: the source address is what gets stored.
    assert_eq!(peers, vec!["127.0.0.1:6881".parse::<SocketAddr>().unwrap()]);
    // Completed by B: counted once.
    b.announce_with(
        cid_b,
        |r| {
            r.port = 7000;
            r.left = 0;
            r.event = Event::Completed;
            r.ip = [8, 8, 8, 8];
        },
        b"",
    );
    let unknown = InfoHash([0x99; 20]);
    assert_eq!(
        b.scrape(cid_b, &[unknown, InfoHash([0x11; 20]), unknown]),
        Response::Scrape {
            transaction_id: TransactionId((NEXT_TID.load(Ordering::Relaxed) - 1).to_be_bytes()),
            entries: vec![(0, 0, 0), (2, 1, 0), (0, 0, 0)],
        }
    );
    let peers = s
        .tracker
        .peers(&InfoHash([0x11; 20]), s.tracker.clock().now())
        .unwrap();
    assert!(
        peers.iter().all(|p| p.ip.to_string() == "127.0.0.1"),
        "{peers:?}"
    );
    // Stopped removes B.
    let (seeders, _, _) = peers_of(b.announce_with(
        cid_b,
        |r| {
            r.port = 7000;
            r.event = Event::Stopped;
        },
        b"",
    ));
    assert_eq!(seeders, 1);
    let stats = s.tracker.stats().read().udp;
    assert_eq!(
        (stats.connects, stats.announces, stats.scrapes, stats.errors),
        (2, 4, 1, 0)
    );
    s.stop();
}

#[test]
fn ipv6_gets_18_byte_peers_and_families_stay_apart() {
    let s = Server::manual_clock(&["127.0.0.1:0", "[::1]:0"]);
    assert!(s.addrs[0].is_ipv4() && s.addrs[1].is_ipv6());
    let v4 = Client::new(s.addrs[0]);
    let cid = v4.connect();
    v4.announce_with(cid, |_| {}, b"");
    let a = Client::new(s.addrs[1]);
    let b = Client::new(s.addrs[1]);
    let cid_a = a.connect();
    let (_, leechers, peers) = peers_of(a.announce_with(cid_a, |r| r.port = 5001, b""));
    assert_eq!(leechers, 2, "counts cover both families");
    assert!(
        peers.is_empty(),
        "an IPv6 client is never sent IPv4 peers: {peers:?}"
    );
    let cid_b = b.connect();
    // `Client::call` decodes 18-byte entries for IPv6 and fails on a length that is not 20 + 18n.
    let (_, leechers, peers) = peers_of(b.announce_with(cid_b, |r| r.port = 5002, b""));
    assert_eq!(leechers, 3);
    assert_eq!(peers, vec!["[::1]:5001".parse::<SocketAddr>().unwrap()]);
    // An id issued to ::1 is not valid from 127.0.0.1.
    match v4.announce_with(cid_a, |_| {}, b"") {
        Response::Error { message, .. } => {
            assert_eq!(message, tracker_udp::handler::MSG_BAD_CONNECTION_ID)
        }
        other => panic!("{other:?}"),
    }
    s.stop();
}

#[test]
fn bep41_url_data_is_accepted() {
    let s = Server::manual_clock(&["127.0.0.1:0"]);
    let c = Client::new(s.addrs[0]);
    let cid = c.connect();
    let long_url: Vec<u8> = b"/announce?passkey="
        .iter()
        .copied()
        .chain(std::iter::repeat_n(b'k', 600))
        .collect();
    for url in [&b"/announce?passkey=0123456789abcdef"[..], &long_url] {
        let (_, leechers, _) = peers_of(c.announce_with(cid, |_| {}, url));
        assert_eq!(leechers, 1);
    }
    // NOP and unknown options before the URL data, then EndOfOptions and trailing junk.
    let tid = Client::tid();
    let mut pkt = protocol::encode_announce_request(
        &AnnounceRequest {
            connection_id: cid,
            transaction_id: tid,
            info_hash: InfoHash([0x22; 20]),
            peer_id: PeerId([1; 20]),
            downloaded: 0,
            left: 5,
            uploaded: 0,
            event: Event::None,
            ip: [0; 4],
            key: 0,
            numwant: 10,
            port: 9000,
            options: Options::default(),
        },
        b"",
    );
    pkt.extend_from_slice(&[
        1, 1, 0x7f, 3, 1, 2, 3, 2, 5, b'/', b'a', b'?', b'x', b'=', 0, 0xde, 0xad,
    ]);
    assert!(matches!(c.call(&pkt, tid), Some(Response::Announce { .. })));
    // An option whose length runs past the end: an error (the id is valid).
    let mut bad = pkt[..98].to_vec();
    bad.extend_from_slice(&[2, 200, b'/']);
    match c.call(&bad, tid) {
        Some(Response::Error { message, .. }) => assert!(message.contains("BEP 41"), "{message}"),
        other => panic!("{other:?}"),
    }
    s.stop();
}

#[test]
fn bad_or_expired_connection_id_gets_an_error_never_peers() {
    let s = Server::manual_clock(&["127.0.0.1:0"]);
    let seeder = Client::new(s.addrs[0]);
    let cid = seeder.connect();
    peers_of(seeder.announce_with(cid, |r| r.left = 0, b""));
    let c = Client::new(s.addrs[0]);
    let good = c.connect();
    let mut forged = good;
    forged.0[7] ^= 0x40;
    for cid in [ConnectionId([0; 8]), forged] {
        match c.announce_with(cid, |_| {}, b"") {
            Response::Error { message, .. } => {
                assert_eq!(message, tracker_udp::handler::MSG_BAD_CONNECTION_ID)
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            c.scrape(cid, &[InfoHash([0x11; 20])]),
            Response::Error { .. }
        ));
    }
    // Expiry: valid for 120 s after issue, not after.
    s.tracker.clock().advance(120);
    let (_, _, peers) = peers_of(c.announce_with(good, |r| r.port = 7001, b""));
    assert_eq!(peers, vec!["127.0.0.1:6881".parse::<SocketAddr>().unwrap()]);
    s.tracker.clock().advance(1);
    assert!(matches!(
        c.announce_with(good, |r| r.port = 1234, b""),
        Response::Error { .. }
    ));
    // Port 0 announced: an error.
    let fresh = c.connect();
    match c.announce_with(fresh, |r| r.port = 0, b"") {
        Response::Error { message, .. } => assert_eq!(message, "invalid port: 0"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        s.tracker
            .peers(&InfoHash([0x11; 20]), s.tracker.clock().now())
            .unwrap()
            .len(),
        2
    );
    let stats = s.tracker.stats().read().udp;
    assert_eq!(stats.bad_connection_ids, 5);
    s.stop();
}

#[test]
fn ten_thousand_garbage_packets_then_a_normal_announce() {
    // `[limits]` off: this is about what garbage does to the codec and the store; from one
    // address, 10,000 bad packets would (rightly) get it banned after 1,000.
    let config = CoreConfig {
        limits: tracker_core::LimitsConfig {
            requests_per_sec: 0,
            ban_threshold: 0,
            ..Default::default()
        },
        ..CoreConfig::default()
    };
    let t = Tracker::with_clock(config, Clock::manual(unix_now()));
    let s = Server::start(Arc::new(t), &["127.0.0.1:0", "[::1]:0"], 2);
    let c = Client::new(s.addrs[0]);
    let c6 = Client::new(s.addrs[1]);
    let cid = c.connect();
    let valid = protocol::encode_announce_request(
        &AnnounceRequest {
            connection_id: cid,
            transaction_id: TransactionId([0; 4]),
            info_hash: InfoHash([0x33; 20]),
            peer_id: PeerId([2; 20]),
            downloaded: 0,
            left: 1,
            uploaded: 0,
            event: Event::Started,
            ip: [0; 4],
            key: 0,
            numwant: 5,
            port: 4000,
            options: Options::default(),
        },
        b"/x",
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let before = s.tracker.stats().read().udp.requests;
    let total = 10_000u64;
    let mut sent = 0u64;
    while sent < total {
        // Bursts of 100, then wait until the workers have taken them, so the socket buffer never
        // overflows and every packet is really handled.
        for _ in 0..100 {
            let pkt: Vec<u8> = match rng.random_range(0..4) {
                // Random bytes, any length up to 3000 (longer than the receive buffer).
                0 => {
                    let len = rng.random_range(0..3000);
                    (0..len).map(|_| rng.random()).collect()
                }
                // A valid id and header, then the announce cut anywhere before byte 98.
                1 => valid[..rng.random_range(0..98)].to_vec(),
                // A valid id with a wrong action, or a scrape of the wrong length.
                2 => {
                    let mut p = valid[..rng.random_range(16..valid.len())].to_vec();
                    let action: u32 = if rng.random() {
                        rng.random_range(3..1000)
                    } else {
                        2
                    };
                    p[8..12].copy_from_slice(&action.to_be_bytes());
                    if action == 2 && (p.len() - 16) % 20 == 0 {
                        p.push(0);
                    }
                    p
                }
                // A valid announce with broken BEP 41 options (a length running past the end).
                _ => {
                    let mut p = valid[..98].to_vec();
                    p.extend_from_slice(&[2, 255]);
                    p.extend((0..rng.random_range(0..200)).map(|_| b'a'));
                    p
                }
            };
            let to = s.addrs[usize::from(rng.random::<bool>() && pkt.len() % 2 == 0)];
            let sock = if to.is_ipv4() { &c.sock } else { &c6.sock };
            sock.send_to(&pkt, to).unwrap();
        }
        sent += 100;
        let deadline = Instant::now() + Duration::from_secs(10);
        while s.tracker.stats().read().udp.requests < before + sent {
            assert!(
                Instant::now() < deadline,
                "workers stopped taking packets at {sent}"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let stats = s.tracker.stats().read().udp;
    assert_eq!(stats.requests, before + total);
    assert!(
        stats.errors > 1000,
        "malformed packets with a valid id are answered: {stats:?}"
    );
    assert!(stats.dropped > 1000, "the rest are dropped: {stats:?}");
    assert_eq!(stats.announces, 0);
    assert_eq!(s.tracker.torrent_count(), 0, "garbage changed state");
    // The server still works, on both families.
    for addr in &s.addrs {
        let fresh = Client::new(*addr);
        let cid = fresh.connect();
        peers_of(fresh.announce_with(cid, |_| {}, b""));
    }
    s.stop();
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("mini-torrust-it-udp-{}-{name}", std::process::id()))
}

#[test]
fn restart_with_snapshot_keeps_issued_connection_ids_valid() {
    let path = temp_path("restart.json");
    let s = Server::start(
        Arc::new(Tracker::new(CoreConfig::default())),
        &["127.0.0.1:0"],
        1,
    );
    let c = Client::new(s.addrs[0]);
    let cid = c.connect();
    peers_of(c.announce_with(cid, |r| r.left = 0, b""));
    let key = s.server.as_ref().unwrap().connection_id_key();
    let t1 = s.stop();
    tracker_core::snapshot::write(&t1, &path, key).unwrap();
    let t2 = Arc::new(Tracker::new(CoreConfig::default()));
    let restored = tracker_core::snapshot::restore(&t2, &path);
    let _ = std::fs::remove_file(&path);
    let kept = match restored {
        Ok(tracker_core::snapshot::RestoreOutcome::Loaded(r)) => r.connection_id_key,
        other => panic!("{other:?}"),
    };
    assert_eq!(kept, Some(key));
    let s2 = Server::start_with_key(t2, &["127.0.0.1:0"], 1, key);
    let c2 = Client::new(s2.addrs[0]);
    // The id issued by the first server is accepted by the second, and the swarm came back.
    let (seeders, leechers, peers) = peers_of(c2.announce_with(cid, |r| r.port = 6999, b""));
    assert_eq!((seeders, leechers), (1, 1));
    assert_eq!(peers, vec!["127.0.0.1:6881".parse::<SocketAddr>().unwrap()]);
    s2.stop();
}

#[test]
fn configured_key_is_shared_by_instances_and_bad_config_is_refused() {
    let key = "000102030405060708090a0b0c0d0e0f";
    let cfg = |bind: &str| UdpConfig {
        bind: vec![bind.parse().unwrap()],
        workers: 1,
        connection_id_key: key.into(),
        read_timeout_ms: 50,
        ..UdpConfig::default()
    };
    let t1 = Arc::new(Tracker::new(CoreConfig::default()));
    let t2 = Arc::new(Tracker::new(CoreConfig::default()));
    let start = |t: &Arc<Tracker>, key: [u8; 16]| {
        let c = cfg("127.0.0.1:0");
        UdpServer::start(Arc::clone(t), &c, key, UdpSockets::bind(&c).unwrap())
    };
    // Two different start keys: the configured one wins on both.
    let a = start(&t1, [1; 16]).unwrap();
    let b = start(&t2, [2; 16]).unwrap();
    assert_eq!(a.connection_id_key()[15], 15);
    let cid = Client::new(a.local_addrs()[0]).connect();
    peers_of(Client::new(b.local_addrs()[0]).announce_with(cid, |_| {}, b""));
    a.stop();
    b.stop();
    a.join().unwrap();
    b.join().unwrap();
    let bad = UdpConfig {
        connection_id_key: "nothex".into(),
        ..cfg("127.0.0.1:0")
    };
    let err = UdpSockets::bind(&bad).unwrap_err();
    assert!(err.to_string().contains("connection_id_key"), "{err}");
}

#[test]
fn config_rejects_unknown_keys_and_fills_defaults() {
    let c: UdpConfig = toml::from_str("workers = 3\nbind = [\"127.0.0.1:1\"]").unwrap();
    assert_eq!(
        (c.workers, c.max_numwant_v4, c.max_numwant_v6),
        (3, 200, 66)
    );
    assert!(toml::from_str::<UdpConfig>("wrokers = 3").is_err());
    let round: UdpConfig =
        toml::from_str(&toml::to_string(&UdpConfig::default()).unwrap()).unwrap();
    assert_eq!(round, UdpConfig::default());
}

#[test]
fn private_mode_reads_the_passkey_from_bep41_url_data() {
    use tracker_core::AccessConfig;
    use tracker_core::access::{Passkey, PasskeyEntry};
    let config = CoreConfig {
        access: AccessConfig {
            private: true,
            ..AccessConfig::default()
        },
        ..CoreConfig::default()
    };
    let tracker = Arc::new(Tracker::new(config));
    let key = Passkey::random();
    tracker.access().add_passkey(PasskeyEntry {
        key,
        expires_at: None,
        label: "it".into(),
    });
    let s = Server::start(tracker, &["127.0.0.1:0"], 1);
    let c = Client::new(s.addrs[0]);
    let cid = c.connect();
    for (url, want) in [
        (String::new(), "passkey required"),
        (
            format!("/{}/announce", Passkey::random()),
            "invalid passkey",
        ),
    ] {
        match c.announce_with(cid, |_| {}, url.as_bytes()) {
            Response::Error { message, .. } => assert_eq!(message, want),
            other => panic!("{other:?}"),
        }
    }
    // URL data longer than one URLData chunk (255 bytes) with the key in front.
    let url = format!("/{key}/announce?{}", "a=1&".repeat(80));
    peers_of(c.announce_with(cid, |_| {}, url.as_bytes()));
    assert_eq!(s.tracker.stats().read().udp.access_denied, 2);
    s.stop();
}
