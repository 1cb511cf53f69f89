//! Hostile input against the real daemon, as an attacker on the open internet would send it:
//! deeply nested bencode and JSON on every parser of untrusted bytes, connections that send
//! only blank lines, connection floods, forged UDP sources, a full disk at shutdown, request
//! floods and bad-id storms. Each test checks what a user sees (answers on the wire, the
//! daemon still serving, nothing stored lost) and what `/metrics` says.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use super::api::{TOKEN, api, fixture};
use super::harness::{Daemon, announce, bdecode, dict_get, metrics, pct, sample, udp_connect};

/// `d8:announce3:abc4:info` + `l` x n + `e` x n + `e`: a few KB that used to overflow the stack.
fn nested_torrent(n: usize) -> Vec<u8> {
    let mut b = b"d8:announce3:abc4:info".to_vec();
    b.extend(std::iter::repeat_n(b'l', n));
    b.extend(std::iter::repeat_n(b'e', n));
    b.push(b'e');
    b
}

/// `prefix` + `[` x n + `]` x n + `suffix`.
fn nested_json(prefix: &str, n: usize, suffix: &str) -> Vec<u8> {
    let mut b = prefix.as_bytes().to_vec();
    b.extend(std::iter::repeat_n(b'[', n));
    b.extend(std::iter::repeat_n(b']', n));
    b.extend_from_slice(suffix.as_bytes());
    b
}

/// A config with every listener on 127.0.0.1 port 0, the admin API on, and extra lines for
/// `[http]` and further sections.
fn hostile_config(dir: &Path, http: &str, more: &str) -> String {
    format!(
        "[udp]\nbind = [\"127.0.0.1:0\"]\nworkers = 1\n\
         [http]\nbind = [\"127.0.0.1:0\"]\n{http}\n\
         [admin]\nbind = [\"127.0.0.1:0\"]\ntoken = \"{TOKEN}\"\n\
         [snapshot]\npath = \"{}\"\ninterval = 3600\n\
         [log]\nformat = \"json\"\nfilter = \"info\"\n{more}\n",
        dir.join("state.json").display()
    )
}

fn serving(d: &Daemon, port: u16) {
    let v = announce(d.http, &[0x42; 20], &[port as u8; 20], port, 1);
    assert!(dict_get(&v, "interval").is_some(), "{v:?}");
}

#[test]
fn nested_bencode_and_json_a_million_levels_deep_are_refused_on_every_path() {
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("index");
    std::fs::create_dir(&index).unwrap();
    // A bad file in index_dir: used to abort every start (a restart loop under systemd).
    std::fs::write(index.join("deep.torrent"), nested_torrent(1_000_000)).unwrap();
    std::fs::copy(fixture("v1_single.torrent"), index.join("good.torrent")).unwrap();
    // A snapshot nested a million levels deep in a field the loader skips, and in a torrent's
    // peer list, which it reads.
    let mut snap = nested_json(
        r#"{"format":1,"written_at_unix":1,"skipped":"#,
        1_000_000,
        r#","torrents":[{"info_hash":"0101010101010101010101010101010101010101","downloaded":0,"peers":"#,
    );
    snap.extend(nested_json("", 1_000_000, "}]}"));
    std::fs::write(dir.path().join("state.json"), &snap).unwrap();
    let access = format!("[access]\nindex_dir = \"{}\"", index.display());
    let mut d = Daemon::start(dir.path(), &hostile_config(dir.path(), "", &access));
    let skipped = d.find_log("index directory: file skipped");
    let why = skipped["fields"]["error"].as_str().unwrap();
    assert!(
        why.contains("deep.torrent") && why.contains("nested deeper than"),
        "{why}"
    );
    let moved = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().contains(".corrupt-"));
    assert!(moved, "the unreadable snapshot is moved aside");
    let (status, list) = api(d.admin, "GET", "/api/torrents", "", b"");
    assert_eq!(status, 200);
    assert_eq!(list["total"], 1, "the good file is indexed: {list}");
    // The API: a raw .torrent body, and JSON bodies of both POST routes.
    for depth in [5_000, 1_000_000] {
        let (status, v) = api(
            d.admin,
            "POST",
            "/api/torrents",
            "application/x-bittorrent",
            &nested_torrent(depth),
        );
        assert_eq!(status, 400, "{v}");
        assert!(
            v["error"].as_str().unwrap().contains("nested deeper"),
            "{v}"
        );
    }
    for (route, body) in [
        (
            "/api/torrents",
            nested_json(r#"{"info_hash":"#, 1_000_000, "}"),
        ),
        ("/api/passkeys", nested_json(r#"{"label":"#, 1_000_000, "}")),
    ] {
        let (status, v) = api(d.admin, "POST", route, "application/json", &body);
        assert_eq!(status, 400, "{route}: {v}");
        assert!(v["error"].as_str().unwrap().contains("bad JSON"), "{v}");
    }
    // SIGHUP re-reads the directory: still skipped, still serving.
    d.signal("HUP");
    d.wait_log("reload: index directory file skipped");
    serving(&d, 7001);
    let (_, list) = api(d.admin, "GET", "/api/torrents", "", b"");
    assert_eq!(list["total"], 1);
}

/// Reads until EOF or error; true if that happened within `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 512];
    let end = Instant::now() + within;
    while Instant::now() < end {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return Instant::now() <= end,
            Ok(_) => {}
        }
    }
    false
}

/// Sends `\r\n` every 200 ms until the server closes the connection: how long that took, or
/// `None` if it was still open after 5 s.
fn crlf_until_closed(s: &mut TcpStream) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(5) {
        if s.write_all(b"\r\n").is_err() || closed_within(s, Duration::from_millis(200)) {
            return Some(t0.elapsed());
        }
    }
    None
}

#[test]
fn blank_lines_never_hold_a_connection_past_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let http = "header_read_timeout_ms = 1000\nidle_timeout_secs = 60";
    let d = Daemon::start(dir.path(), &hostile_config(dir.path(), http, ""));
    // From the accept: only CRLFs, one every 200 ms.
    let mut s = TcpStream::connect(d.http).unwrap();
    let took = crlf_until_closed(&mut s).expect("a CRLF-only connection was still open after 5 s");
    assert!(took < Duration::from_millis(2000), "{took:?}");
    // After a served request: the clock runs from the first CRLF, and CRLFs do not restart it.
    let mut s = TcpStream::connect(d.http).unwrap();
    let req = format!(
        "GET /announce?info_hash={}&peer_id={}&port=7002&left=1 HTTP/1.1\r\nhost: t\r\n\r\n",
        pct(&[1; 20]),
        pct(&[2; 20])
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = [0u8; 4096];
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert!(s.read(&mut buf).unwrap() > 0, "answered");
    std::thread::sleep(Duration::from_millis(1500));
    let took = crlf_until_closed(&mut s).expect("still open after 5 s of CRLFs");
    assert!(took < Duration::from_millis(2000), "{took:?}");
    let m = metrics(d.admin);
    let timed_out = sample(
        &m,
        "mini_torrust_connections_closed_total",
        &[("reason", "head_timeout")],
    );
    assert!(timed_out >= 2.0, "{timed_out}");
}

/// An HTTP announce from `local` (another loopback address), timed.
fn announce_from(local: &str, http: SocketAddr, port: u16) -> (Duration, Vec<u8>) {
    let t0 = Instant::now();
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&SocketAddr::new(local.parse().unwrap(), 0).into())
        .unwrap();
    sock.connect_timeout(&http.into(), Duration::from_secs(5))
        .unwrap();
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let req = format!(
        "GET /announce?info_hash={}&peer_id={}&port={port}&left=1&compact=1 HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n",
        pct(&[7; 20]),
        pct(&[port as u8; 20])
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    (t0.elapsed(), resp)
}

#[test]
fn max_connections_idle_or_slow_sockets_from_one_address_do_not_lock_out_a_new_client() {
    let dir = tempfile::tempdir().unwrap();
    // A long header timeout: it is not what saves the new client here.
    let http = "max_connections = 100\nheader_read_timeout_ms = 60000";
    let d = Daemon::start(dir.path(), &hostile_config(dir.path(), http, ""));
    let mut held = Vec::new();
    // A connection that sends nothing is not accepted before its first byte (TCP_DEFER_ACCEPT:
    // it waits in the kernel, not in a slot), so the idle half sends one byte and stops.
    for i in 0..100 {
        let mut s = TcpStream::connect(d.http).unwrap();
        match i % 2 {
            1 => s.write_all(b"GET /announce?info").unwrap(),
            _ => s.write_all(b"G").unwrap(),
        }
        held.push(s);
    }
    // The attacker keeps the slow half trickling, one byte a second, while the client asks.
    std::thread::sleep(Duration::from_millis(300));
    for s in held.iter_mut().skip(1).step_by(2) {
        let _ = s.write_all(b"_");
    }
    let (took, resp) = announce_from("127.0.0.2", d.http, 7100);
    let body = &resp[resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4..];
    let v = bdecode(body);
    assert!(dict_get(&v, "interval").is_some(), "{v:?}");
    assert!(took < Duration::from_secs(1), "answered after {took:?}");
    let evicted = sample(
        &metrics(d.admin),
        "mini_torrust_connections_closed_total",
        &[("reason", "evicted")],
    );
    assert!(evicted >= 1.0, "{evicted}");
    drop(held);
}

#[test]
fn one_address_gets_at_most_max_connections_per_ip() {
    let dir = tempfile::tempdir().unwrap();
    let http = "max_connections = 100\nmax_connections_per_ip = 10\nheader_read_timeout_ms = 60000";
    let d = Daemon::start(dir.path(), &hostile_config(dir.path(), http, ""));
    // Each sends a byte: a connection is accepted at its first byte (TCP_DEFER_ACCEPT).
    let open = || {
        let mut s = TcpStream::connect(d.http).unwrap();
        s.write_all(b"G").unwrap();
        s
    };
    let mut held: Vec<TcpStream> = (0..10).map(|_| open()).collect();
    // The eleventh from the same address is closed at once, without an answer.
    let mut extra = open();
    assert!(closed_within(&mut extra, Duration::from_secs(2)));
    // Another address is served, and the ten are still open.
    let (took, resp) = announce_from("127.0.0.3", d.http, 7200);
    assert!(resp.starts_with(b"HTTP/1.1 200"), "{took:?}");
    for s in &mut held {
        s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let mut b = [0u8; 1];
        assert!(
            matches!(s.read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "a held connection was closed"
        );
    }
    let refused = sample(
        &metrics(d.admin),
        "mini_torrust_connections_closed_total",
        &[("reason", "per_ip_limit")],
    );
    assert_eq!(refused, 1.0);
}

#[test]
fn udp_replies_to_forged_connection_ids_are_never_larger_than_the_datagram() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &hostile_config(dir.path(), "", ""));
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 2048];
    // The 36-byte scrape of the report (forged id, one hash), and scrapes of every size.
    for hashes in [1usize, 0, 2, 72] {
        let mut pkt = vec![0x5a; 8];
        pkt.extend_from_slice(&2u32.to_be_bytes());
        pkt.extend_from_slice(&[9, 9, 9, 9]);
        pkt.extend(std::iter::repeat_n(0x11, 20 * hashes));
        s.send_to(&pkt, d.udp).unwrap();
        match s.recv_from(&mut buf) {
            // A scrape naming no torrent is malformed: with a forged id, it is not answered.
            Err(_) if hashes == 0 => {}
            Ok((n, _)) => {
                assert!(n <= pkt.len(), "{} bytes answered with {n}", pkt.len());
                assert_eq!(&buf[0..4], &3u32.to_be_bytes(), "an error reply");
                assert_eq!(&buf[4..8], &[9, 9, 9, 9]);
            }
            Err(e) => panic!("{hashes} hashes: no reply ({e})"),
        }
    }
    // A real client with a real id still gets its full answer.
    let cid = udp_connect(d.udp);
    assert_ne!(cid, 0);
}

#[test]
fn a_final_snapshot_on_a_full_disk_exits_1_and_leaves_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(dir.path(), &hostile_config(dir.path(), "", ""));
    serving(&d, 7300);
    // Every write to the temp file fails with ENOSPC, as on a full disk.
    let tmp = dir.path().join("state.json.tmp");
    std::os::unix::fs::symlink("/dev/full", &tmp).unwrap();
    d.signal("TERM");
    let status = d.wait_exit();
    assert_eq!(status.code(), Some(1), "{status}");
    assert!(
        std::fs::symlink_metadata(&tmp).is_err(),
        "the partial temp file is removed"
    );
    assert!(!dir.path().join("state.json").exists());
}

#[test]
fn request_floods_are_limited_and_bad_id_storms_banned_per_address() {
    let dir = tempfile::tempdir().unwrap();
    let limits = "[limits]\nrequests_per_sec = 5\nburst = 20\nban_threshold = 30\nban_window_secs = 60\nban_secs = 600";
    let d = Daemon::start(dir.path(), &hostile_config(dir.path(), "", limits));
    // HTTP: 40 announces at once from one address; the burst passes, the rest get a reason.
    let mut limited = 0;
    for i in 0..40u16 {
        let (_, resp) = announce_from("127.0.0.4", d.http, 8000 + i);
        let body = &resp[resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4..];
        if let Some(serde_bencode::value::Value::Bytes(r)) =
            dict_get(&bdecode(body), "failure reason")
        {
            assert!(String::from_utf8_lossy(r).contains("rate limited"));
            limited += 1;
        }
    }
    assert!((15..=20).contains(&limited), "{limited} of 40 limited");
    // Another address is not affected.
    let (_, resp) = announce_from("127.0.0.5", d.http, 8100);
    assert!(!String::from_utf8_lossy(&resp).contains("failure reason"));
    // UDP: 30 forged ids from one address ban it; its next connect is dropped.
    let s = UdpSocket::bind("127.0.0.6:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 256];
    let mut pkt = vec![0x5a; 8];
    pkt.extend_from_slice(&2u32.to_be_bytes());
    pkt.extend_from_slice(&[1; 4]);
    pkt.extend_from_slice(&[3; 20]);
    for _ in 0..15 {
        // Paced under the rate, so that it is the ban, not the bucket, that stops it.
        s.send_to(&pkt, d.udp).unwrap();
        s.send_to(&pkt, d.udp).unwrap();
        assert!(s.recv_from(&mut buf).is_ok() && s.recv_from(&mut buf).is_ok());
        std::thread::sleep(Duration::from_millis(450));
    }
    let mut connect = 0x0417_2710_1980u64.to_be_bytes().to_vec();
    connect.extend_from_slice(&[0, 0, 0, 0, 1, 2, 3, 4]);
    s.send_to(&connect, d.udp).unwrap();
    assert!(
        s.recv_from(&mut buf).is_err(),
        "a banned address is answered"
    );
    // ... while another address connects.
    assert_ne!(udp_connect(d.udp), 0);
    let m = metrics(d.admin);
    let udp = [("protocol", "udp")];
    let http = [("protocol", "http")];
    assert_eq!(sample(&m, "mini_torrust_bans_total", &udp), 1.0);
    assert!(sample(&m, "mini_torrust_banned_requests_total", &udp) >= 1.0);
    assert_eq!(
        sample(&m, "mini_torrust_rate_limited_total", &http),
        f64::from(limited)
    );
    assert_eq!(
        sample(
            &m,
            "mini_torrust_limits_table_entries",
            &[("state", "banned")]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &m,
            "mini_torrust_limits_table_entries",
            &[("state", "capacity")]
        ),
        65536.0
    );
}
