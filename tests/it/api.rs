//! The torrent index, admin API and CLI end to end: the real binary, real sockets, real
//! `.torrent` files made by libtorrent (`tests/fixtures`). Access control is in `access.rs`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::harness::{
    Daemon, announce, bdecode, config, dict_get, hex, http_get, pct, run_cli, udp_connect,
};

pub(super) const TOKEN: &str = "api-test-token-0123456789";

pub(super) fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub(super) fn expected() -> Vec<Value> {
    serde_json::from_slice(&std::fs::read(fixture("expected.json")).unwrap()).unwrap()
}

pub(super) fn cfg(dir: &Path, access: &str) -> String {
    format!(
        "{}\n[access]\n{access}\n",
        config(
            dir,
            &format!("[admin]\nbind = [\"127.0.0.1:0\"]\ntoken = \"{TOKEN}\"")
        )
    )
}

/// One authorised API call with `Connection: close`: (status, JSON or Null).
pub(super) fn api(
    admin: SocketAddr,
    method: &str,
    target: &str,
    ctype: &str,
    body: &[u8],
) -> (u16, Value) {
    let mut s = TcpStream::connect(admin).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!(
        "{method} {target} HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !ctype.is_empty() {
        req.push_str(&format!("Content-Type: {ctype}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of head");
    let head = String::from_utf8_lossy(&resp[..split]).into_owned();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let body = &resp[split + 4..];
    let v = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
    };
    if status >= 400 {
        assert!(v["error"].is_string(), "errors carry a message: {v}");
    }
    (status, v)
}

/// Adds `info_hash` to the index under `name` through the API (expects `201`).
pub(super) fn index_add(admin: SocketAddr, info_hash: &[u8; 20], name: &str) {
    let body = serde_json::json!({"info_hash": hex(info_hash), "name": name, "size": 1});
    let (status, v) = api(
        admin,
        "POST",
        "/api/torrents",
        "application/json",
        body.to_string().as_bytes(),
    );
    assert_eq!(status, 201, "{v}");
}

pub(super) fn get(admin: SocketAddr, target: &str) -> (u16, Value) {
    api(admin, "GET", target, "", b"")
}

/// An HTTP announce that is expected to fail: the failure reason.
pub(super) fn http_failure(http: SocketAddr, prefix: &str, info_hash: &[u8; 20]) -> String {
    let target = format!(
        "{prefix}/announce?info_hash={}&peer_id={}&port=7000&uploaded=0&downloaded=0&left=5",
        pct(info_hash),
        pct(b"-MT0001-api-test-000")
    );
    let (status, body) = http_get(http, &target, &[]);
    assert_eq!(status, 200);
    match dict_get(&bdecode(&body), "failure reason") {
        Some(serde_bencode::value::Value::Bytes(b)) => String::from_utf8_lossy(b).into_owned(),
        other => panic!("expected a failure reason, got {other:?}"),
    }
}

/// A BEP 15 announce (with BEP 41 URL data if given): Ok(seeders, leechers) or Err(message).
pub(super) fn udp_announce(
    udp: SocketAddr,
    info_hash: &[u8; 20],
    port: u16,
    url_data: Option<&str>,
) -> Result<(u32, u32), String> {
    udp_announce_as(udp, info_hash, port, url_data, b"-MT0001-udp-api-0000")
}

/// [`udp_announce`] with the given peer id.
pub(super) fn udp_announce_as(
    udp: SocketAddr,
    info_hash: &[u8; 20],
    port: u16,
    url_data: Option<&str>,
    peer_id: &[u8; 20],
) -> Result<(u32, u32), String> {
    let conn = udp_connect(udp);
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut p = Vec::new();
    p.extend_from_slice(&conn.to_be_bytes());
    p.extend_from_slice(&1u32.to_be_bytes());
    p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    p.extend_from_slice(info_hash);
    p.extend_from_slice(peer_id);
    p.extend_from_slice(&0u64.to_be_bytes()); // downloaded
    p.extend_from_slice(&5u64.to_be_bytes()); // left
    p.extend_from_slice(&0u64.to_be_bytes()); // uploaded
    p.extend_from_slice(&2u32.to_be_bytes()); // started
    p.extend_from_slice(&0u32.to_be_bytes()); // ip
    p.extend_from_slice(&7u32.to_be_bytes()); // key
    p.extend_from_slice(&(-1i32).to_be_bytes()); // numwant
    p.extend_from_slice(&port.to_be_bytes());
    if let Some(url) = url_data {
        for chunk in url.as_bytes().chunks(255) {
            p.push(2);
            p.push(chunk.len() as u8);
            p.extend_from_slice(chunk);
        }
        p.push(0);
    }
    s.send_to(&p, udp).unwrap();
    let mut buf = [0u8; 2048];
    let (n, _) = s.recv_from(&mut buf).unwrap();
    let action = u32::from_be_bytes(buf[0..4].try_into().unwrap());
    assert_eq!(
        &buf[4..8],
        &0x1234_5678u32.to_be_bytes(),
        "transaction id echoed"
    );
    match action {
        1 => Ok((
            u32::from_be_bytes(buf[16..20].try_into().unwrap()),
            u32::from_be_bytes(buf[12..16].try_into().unwrap()),
        )),
        3 => Err(String::from_utf8_lossy(&buf[8..n]).into_owned()),
        other => panic!("unexpected action {other}"),
    }
}

pub(super) fn h(b: u8) -> [u8; 20] {
    [b; 20]
}

#[test]
fn api_endpoints_and_error_statuses_over_the_wire() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &cfg(dir.path(), "mode = \"open\""));
    let a = d.admin;

    // Token missing or wrong: 401 on every endpoint.
    for target in ["/api/torrents", "/api/access", "/api/passkeys"] {
        assert_eq!(http_get(a, target, &[]).0, 401, "{target}");
        assert_eq!(
            http_get(
                a,
                target,
                &[("Authorization", "Bearer wrong-wrong-wrong-wrong")]
            )
            .0,
            401,
            "{target}"
        );
    }

    // Add from explicit values and from a real .torrent (hybrid v1+v2).
    let ih = "0123456789abcdef0123456789abcdef01234567";
    let body = format!(r#"{{"info_hash":"{ih}","name":"Example Torrent","size":734003200}}"#);
    let (s, v) = api(
        a,
        "POST",
        "/api/torrents",
        "application/json",
        body.as_bytes(),
    );
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["name"], "Example Torrent");
    assert_eq!(
        api(
            a,
            "POST",
            "/api/torrents",
            "application/json",
            body.as_bytes()
        )
        .0,
        409
    );
    assert_eq!(
        api(
            a,
            "POST",
            "/api/torrents",
            "application/json",
            b"{\"name\":1}"
        )
        .0,
        400
    );
    assert_eq!(
        api(
            a,
            "POST",
            "/api/torrents",
            "application/x-bittorrent",
            b"garbage"
        )
        .0,
        400
    );
    let hybrid = expected()
        .into_iter()
        .find(|e| e["file"] == "hybrid.torrent")
        .unwrap();
    let (s, v) = api(
        a,
        "POST",
        "/api/torrents",
        "application/x-bittorrent",
        &std::fs::read(fixture("hybrid.torrent")).unwrap(),
    );
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["info_hash"], hybrid["v1"]);
    assert_eq!(
        v["info_hash_v2"].as_str().unwrap(),
        &hybrid["v2"].as_str().unwrap()[..40]
    );
    assert_eq!(v["size"], hybrid["size"]);

    // List, search (name, hex prefix), sort, paginate.
    let (s, v) = get(a, "/api/torrents?sort=name");
    assert_eq!((s, v["total"].as_u64()), (200, Some(2)));
    assert_eq!(v["torrents"][0]["name"], "Example Torrent");
    assert_eq!(get(a, "/api/torrents?q=EXAMPLE").1["total"], 1);
    assert_eq!(
        get(a, "/api/torrents?q=0123456").1["torrents"][0]["info_hash"],
        ih
    );
    assert_eq!(
        get(a, "/api/torrents?q=hyb").1["torrents"][0]["name"],
        "hybrid"
    );
    assert_eq!(
        get(a, "/api/torrents?per_page=1&page=2").1["torrents"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(get(a, "/api/torrents?sort=size").0, 400);

    // Show with peers: a seeder announces to the v1 hash, a leecher to the truncated v2 hash.
    let v1: [u8; 20] = hex_bytes(hybrid["v1"].as_str().unwrap());
    let v2: [u8; 20] = hex_bytes(&hybrid["v2"].as_str().unwrap()[..40]);
    announce(d.http, &v1, b"-MT0001-seeder-00001", 6881, 0);
    let reply = announce(d.http, &v2, b"-MT0001-leecher-0001", 6882, 10);
    assert_eq!(
        super::harness::int(dict_get(&reply, "complete")),
        1,
        "v2 hash is the same swarm"
    );
    let (s, v) = get(
        a,
        &format!(
            "/api/torrents/{}",
            hybrid["v2"].as_str().unwrap()[..40].to_owned()
        ),
    );
    assert_eq!(s, 200);
    assert_eq!(
        (v["seeders"].as_u64(), v["leechers"].as_u64()),
        (Some(1), Some(1))
    );
    let mut statuses: Vec<_> = v["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["status"].as_str().unwrap().to_owned())
        .collect();
    statuses.sort();
    assert_eq!(statuses, ["leeching", "seeding"]);
    assert_eq!(
        get(a, &format!("/api/peers/{}", hybrid["v1"].as_str().unwrap()))
            .1
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(get(a, &format!("/api/peers/{}", "ee".repeat(20))).0, 404);
    assert_eq!(get(a, "/api/torrents/not-a-hash").0, 400);
    assert_eq!(get(a, &format!("/api/torrents/{}", "ee".repeat(20))).0, 404);

    // Remove.
    assert_eq!(
        api(a, "DELETE", &format!("/api/torrents/{ih}"), "", b"").0,
        204
    );
    assert_eq!(
        api(a, "DELETE", &format!("/api/torrents/{ih}"), "", b"").0,
        404
    );
    assert_eq!(api(a, "PATCH", "/api/torrents", "", b"").0, 405);
    assert_eq!(get(a, "/api/unknown").0, 404);

    // Access lists and passkeys.
    let x = "ab".repeat(20);
    assert_eq!(
        api(a, "PUT", &format!("/api/access/deny/{x}"), "", b"").0,
        201
    );
    assert_eq!(get(a, "/api/access").1["deny"][0], x);
    assert_eq!(
        api(a, "DELETE", &format!("/api/access/deny/{x}"), "", b"").0,
        204
    );
    assert_eq!(
        api(a, "DELETE", &format!("/api/access/allow/{x}"), "", b"").0,
        404
    );
    assert_eq!(api(a, "POST", "/api/access/reload", "", b"").0, 200);
    let (s, v) = api(
        a,
        "POST",
        "/api/passkeys",
        "application/json",
        br#"{"label":"alice","expires_in":3600}"#,
    );
    assert_eq!(s, 201);
    let key = v["key"].as_str().unwrap().to_owned();
    assert_eq!(key.len(), 32);
    assert_eq!(get(a, "/api/passkeys").1[0]["label"], "alice");
    assert_eq!(
        api(
            a,
            "POST",
            "/api/passkeys",
            "application/json",
            br#"{"key":"bad"}"#
        )
        .0,
        400
    );
    assert_eq!(
        api(a, "DELETE", &format!("/api/passkeys/{key}"), "", b"").0,
        204
    );
    assert_eq!(
        api(a, "DELETE", &format!("/api/passkeys/{key}"), "", b"").0,
        404
    );
    assert_eq!(
        get(a, "/api/passkeys/users/1/1").0,
        404,
        "no secret configured"
    );
}

pub(super) fn hex_bytes(s: &str) -> [u8; 20] {
    let mut out = [0u8; 20];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

#[test]
fn cli_talks_to_the_running_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &cfg(dir.path(), "mode = \"open\""));
    let admin = d.admin.to_string();
    let cli = |args: &[&str]| {
        let mut all = vec!["--admin", admin.as_str(), "--token", TOKEN];
        all.extend_from_slice(args);
        run_cli(dir.path(), &all, &[])
    };
    let single = expected()
        .into_iter()
        .find(|e| e["file"] == "v1_single.torrent")
        .unwrap();
    let file = fixture("v1_single.torrent");
    let (code, out, err) = cli(&["torrent", "add", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("Info Hash: {}", single["v1"].as_str().unwrap())),
        "{out}"
    );
    let (code, _, err) = cli(&[
        "torrent",
        "add",
        "--info-hash",
        &"cd".repeat(20),
        "--name",
        "Example Torrent",
        "--size",
        "734003200",
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = cli(&["torrent", "list"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("Torrents:\n  Name: Example Torrent\n"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "  Info Hash: {}\n  Size: 734003200 bytes\n  Added At: ",
            "cd".repeat(20)
        )),
        "{out}"
    );
    assert!(out.contains("  Name: single.bin\n"), "{out}");
    let (code, out, _) = cli(&["torrent", "search", "SINGLE"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("single.bin") && !out.contains("Example"),
        "{out}"
    );
    let (code, out, _) = cli(&["--json", "torrent", "search", "cdcd"]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["torrents"][0]["name"], "Example Torrent");

    announce(
        d.http,
        &hex_bytes(single["v1"].as_str().unwrap()),
        b"-MT0001-cli-seeder01",
        6881,
        0,
    );
    let (code, out, _) = cli(&["torrent", "show", single["v1"].as_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(
        out.contains("Peers:\n  ") && out.contains("127.0.0.1:6881  seeding"),
        "{out}"
    );
    let (code, out, _) = cli(&["peers", single["v1"].as_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!(
            "{}  127.0.0.1:6881  seeding",
            hex(b"-MT0001-cli-seeder01")
        )),
        "{out}"
    );
    let (code, out, _) = cli(&["torrent", "remove", &"cd".repeat(20)]);
    assert_eq!((code, out.contains("Removed")), (0, true));
    let (code, _, err) = cli(&["torrent", "remove", &"cd".repeat(20)]);
    assert_eq!(code, 1);
    assert!(err.contains("not in the index"), "{err}");

    // Wrong token and an unreachable daemon: a clear message and exit code 1.
    let (code, _, err) = run_cli(
        dir.path(),
        &[
            "--admin",
            &admin,
            "--token",
            "wrong-token-wrong-token",
            "torrent",
            "list",
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("refused the token"), "{err}");
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let (code, _, err) = run_cli(
        dir.path(),
        &["--admin", &dead, "--token", TOKEN, "torrent", "list"],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("cannot reach the admin API"), "{err}");
}
