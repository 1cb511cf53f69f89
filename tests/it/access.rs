//! Access control end to end: whitelist and blacklist over HTTP and UDP with their files
//! reloaded on SIGHUP, private mode with passkeys over both protocols (and across a restart),
//! and the `.torrent` index directory re-read on SIGHUP and on the API's reload.

use super::api::*;
use super::harness::{Daemon, announce, bdecode, dict_get, hex, http_get, metrics, pct, sample};
use std::net::SocketAddr;

#[test]
fn whitelist_over_http_and_udp_with_lists_reloaded_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let allow = dir.path().join("allow.txt");
    std::fs::write(&allow, format!("# allowed\n{}\n", hex(&h(1)))).unwrap();
    let access = format!("mode = \"whitelist\"\nallow_file = \"{}\"", allow.display());
    let mut d = Daemon::start(dir.path(), &cfg(dir.path(), &access));

    assert_eq!(http_failure(d.http, "", &h(2)), "unregistered torrent");
    assert_eq!(
        udp_announce(d.udp, &h(2), 7001, None),
        Err("unregistered torrent".into())
    );
    announce(d.http, &h(1), b"-MT0001-white-000001", 6881, 0);
    assert_eq!(udp_announce(d.udp, &h(1), 7001, None), Ok((1, 1)));
    // Indexed through the API: allowed.
    index_add(d.admin, &h(2), "two");
    assert!(udp_announce(d.udp, &h(2), 7001, None).is_ok());
    // The file changes and SIGHUP reloads it; the swarm of torrent 1 is kept, not served.
    std::fs::write(&allow, format!("{}\n", hex(&h(3)))).unwrap();
    d.signal("HUP");
    d.wait_message(|m| m.lines().any(|l| l == "READY=1") && !m.contains("RELOADING"));
    assert_eq!(http_failure(d.http, "", &h(1)), "unregistered torrent");
    announce(d.http, &h(3), b"-MT0001-white-000003", 6881, 0);
    // Back on the list: the swarm is still there.
    assert_eq!(
        api(
            d.admin,
            "PUT",
            &format!("/api/access/allow/{}", hex(&h(1))),
            "",
            b""
        )
        .0,
        201
    );
    assert_eq!(udp_announce(d.udp, &h(1), 7002, None), Ok((1, 2)));
}

#[test]
fn blacklist_refuses_denied_torrents() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &cfg(dir.path(), "mode = \"blacklist\""));
    announce(d.http, &h(1), b"-MT0001-black-000001", 6881, 0);
    assert_eq!(
        api(
            d.admin,
            "PUT",
            &format!("/api/access/deny/{}", hex(&h(1))),
            "",
            b""
        )
        .0,
        201
    );
    assert_eq!(http_failure(d.http, "", &h(1)), "torrent is blacklisted");
    assert_eq!(
        udp_announce(d.udp, &h(1), 7001, None),
        Err("torrent is blacklisted".into())
    );
    assert!(udp_announce(d.udp, &h(2), 7001, None).is_ok());
    // Errors are counted by protocol and action.
    let m = super::harness::metrics(d.admin);
    for proto in ["http", "udp"] {
        let n = |action: &str, outcome: &str| {
            let labels = [
                ("protocol", proto),
                ("action", action),
                ("outcome", outcome),
            ];
            super::harness::sample(&m, "mini_torrust_requests_total", &labels)
        };
        assert_eq!(n("announce", "error"), 1.0, "{proto}");
        assert_eq!(n("scrape", "error"), 0.0, "{proto}");
        assert_eq!(n("other", "error"), 0.0, "{proto}");
    }
}

#[test]
fn private_mode_needs_a_passkey_over_http_and_udp_and_keys_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let access = "private = true\npasskey_secret = \"a-site-secret-0123456789\"";
    let mut d = Daemon::start(dir.path(), &cfg(dir.path(), access));
    let (s, v) = api(
        d.admin,
        "POST",
        "/api/passkeys",
        "application/json",
        br#"{"label":"bob"}"#,
    );
    assert_eq!(s, 201);
    let key = v["key"].as_str().unwrap().to_owned();
    let stateless = get(d.admin, "/api/passkeys/users/42/1").1["key"]
        .as_str()
        .unwrap()
        .to_owned();

    assert_eq!(http_failure(d.http, "", &h(1)), "passkey required");
    assert_eq!(
        http_failure(d.http, &format!("/{}", "x".repeat(32)), &h(1)),
        "invalid passkey"
    );
    let target = |k: &str, left: u64| {
        format!(
            "/{k}/announce?info_hash={}&peer_id={}&port=6881&uploaded=0&downloaded=0&left={left}",
            pct(&h(1)),
            pct(b"-MT0001-private-0001")
        )
    };
    for k in [&key, &stateless] {
        let (status, body) = http_get(d.http, &target(k, 0), &[]);
        assert_eq!(status, 200);
        assert!(
            dict_get(&bdecode(&body), "failure reason").is_none(),
            "{}",
            String::from_utf8_lossy(&body)
        );
    }
    let (_, body) = http_get(
        d.http,
        &format!("/{key}/scrape?info_hash={}", pct(&h(1))),
        &[],
    );
    assert!(
        dict_get(&bdecode(&body), "files").is_some(),
        "scrape with a key"
    );
    let (_, body) = http_get(d.http, &format!("/scrape?info_hash={}", pct(&h(1))), &[]);
    assert!(
        dict_get(&bdecode(&body), "failure reason").is_some(),
        "scrape without a key"
    );

    assert_eq!(
        udp_announce(d.udp, &h(1), 7001, None),
        Err("passkey required".into())
    );
    assert_eq!(
        udp_announce(
            d.udp,
            &h(1),
            7001,
            Some(&format!("/{}/announce", "y".repeat(32)))
        ),
        Err("invalid passkey".into())
    );
    assert_eq!(
        udp_announce(d.udp, &h(1), 7001, Some(&format!("/{key}/announce"))),
        Ok((1, 1))
    );

    // Revoking the user's version 1 keys.
    assert_eq!(
        api(
            d.admin,
            "PUT",
            "/api/passkeys/users/42/min_version/2",
            "",
            b""
        )
        .0,
        200
    );
    assert_eq!(
        http_failure(d.http, &format!("/{stateless}"), &h(1)),
        "invalid passkey"
    );

    // Stored keys and revocations survive a restart (snapshot).
    d.signal("TERM");
    assert_eq!(d.wait_exit().code(), Some(0));
    drop(d);
    let d = Daemon::start(dir.path(), &cfg(dir.path(), access));
    assert_eq!(
        udp_announce(d.udp, &h(1), 7002, Some(&format!("/{key}/announce"))),
        Ok((1, 2))
    );
    assert_eq!(
        http_failure(d.http, &format!("/{stateless}"), &h(1)),
        "invalid passkey"
    );
}

#[test]
fn index_dir_is_reread_on_sighup_and_api_reload() {
    let dir = tempfile::tempdir().unwrap();
    let torrents = dir.path().join("torrents");
    std::fs::create_dir(&torrents).unwrap();
    std::fs::copy(fixture("v1_single.torrent"), torrents.join("a.torrent")).unwrap();
    let access = format!(
        "mode = \"whitelist\"\nindex_dir = \"{}\"",
        torrents.display()
    );
    let mut d = Daemon::start(dir.path(), &cfg(dir.path(), &access));
    let all = expected();
    let hash_of = |file: &str| {
        hex_bytes(
            all.iter().find(|e| e["file"] == file).unwrap()["v1"]
                .as_str()
                .unwrap(),
        )
    };
    announce(
        d.http,
        &hash_of("v1_single.torrent"),
        b"-MT0001-dir-00000001",
        6881,
        0,
    );
    assert_eq!(
        http_failure(d.http, "", &hash_of("transmission.torrent")),
        "unregistered torrent"
    );

    // A new file and SIGHUP: indexed, so whitelisted; the index shows it.
    std::fs::copy(fixture("transmission.torrent"), torrents.join("b.torrent")).unwrap();
    d.signal("HUP");
    d.wait_message(|m| m.lines().any(|l| l == "READY=1") && !m.contains("RELOADING"));
    announce(
        d.http,
        &hash_of("transmission.torrent"),
        b"-MT0001-dir-00000002",
        6882,
        0,
    );
    assert_eq!(get(d.admin, "/api/torrents?q=transmission").1["total"], 1);

    // A file removed, then the API reload: its entry goes, the swarm is refused.
    std::fs::remove_file(torrents.join("a.torrent")).unwrap();
    let (s, v) = api(d.admin, "POST", "/api/access/reload", "", b"");
    assert_eq!((s, v["index_removed"].as_u64()), (200, Some(1)), "{v}");
    assert_eq!(
        http_failure(d.http, "", &hash_of("v1_single.torrent")),
        "unregistered torrent"
    );
}

/// The failure reason of an HTTP announce, or None when it was answered.
fn http_refusal(http: SocketAddr, ih: &[u8; 20], peer_id: &[u8; 20], port: u16) -> Option<String> {
    let target = format!(
        "/announce?info_hash={}&peer_id={}&port={port}&uploaded=0&downloaded=0&left=5&compact=1",
        pct(ih),
        pct(peer_id)
    );
    let (status, body) = http_get(http, &target, &[]);
    assert_eq!(status, 200);
    match dict_get(&bdecode(&body), "failure reason") {
        Some(serde_bencode::value::Value::Bytes(b)) => {
            Some(String::from_utf8_lossy(b).into_owned())
        }
        _ => None,
    }
}

#[test]
fn client_filters_over_http_and_udp_reloaded_on_sighup_edited_by_the_api_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let text = |deny: &str| cfg(dir.path(), &format!("client_deny = [{deny}]"));
    let mut d = Daemon::start(dir.path(), &text("\"-UT2\""));
    let (ut2, ut3, qb) = (
        *b"-UT2210-utorrent-old",
        *b"-UT3550-utorrent-new",
        *b"-qB4650-qbittorrent1",
    );
    // Denied by the config, over both protocols; other clients are served.
    assert_eq!(
        http_refusal(d.http, &h(1), &ut2, 7001).as_deref(),
        Some("client not allowed")
    );
    assert_eq!(
        udp_announce_as(d.udp, &h(1), 7002, None, &ut2),
        Err("client not allowed".into())
    );
    assert_eq!(http_refusal(d.http, &h(1), &ut3, 7003), None);
    assert_eq!(http_refusal(d.http, &h(1), &qb, 7004), None);
    assert!(udp_announce_as(d.udp, &h(1), 7005, None, &qb).is_ok());
    // Counted by family, with a bounded label set.
    let m = metrics(d.admin);
    let by = |p: &str, c: &str| {
        sample(
            &m,
            "mini_torrust_announces_by_client_total",
            &[("protocol", p), ("client", c)],
        )
    };
    assert_eq!(by("http", "qB"), 1.0);
    assert_eq!(by("http", "UT"), 1.0);
    assert_eq!(by("udp", "qB"), 1.0);
    assert_eq!(by("udp", "other"), 0.0);
    // The API adds to the lists (and shows both sources).
    assert_eq!(
        api(d.admin, "PUT", "/api/access/clients/deny/-qB", "", b"").0,
        201
    );
    assert_eq!(
        api(
            d.admin,
            "PUT",
            "/api/access/clients/deny/-a-prefix-longer-than-twenty-bytes",
            "",
            b""
        )
        .0,
        400
    );
    let (status, lists) = api(d.admin, "GET", "/api/access/clients", "", b"");
    assert_eq!(status, 200);
    assert_eq!(lists["deny"], serde_json::json!(["-UT2", "-qB"]));
    assert_eq!(
        http_refusal(d.http, &h(1), &qb, 7004).as_deref(),
        Some("client not allowed")
    );
    // SIGHUP replaces the config's prefixes; the API's stay.
    std::fs::write(dir.path().join("config.toml"), text("")).unwrap();
    d.signal("HUP");
    d.wait_message(|m| m.lines().any(|l| l == "READY=1") && !m.contains("RELOADING"));
    assert_eq!(http_refusal(d.http, &h(1), &ut2, 7001), None);
    assert_eq!(
        http_refusal(d.http, &h(1), &qb, 7004).as_deref(),
        Some("client not allowed")
    );
    assert_eq!(
        api(d.admin, "DELETE", "/api/access/clients/deny/-qB", "", b"").0,
        204
    );
    assert_eq!(
        api(d.admin, "DELETE", "/api/access/clients/deny/-qB", "", b"").0,
        404
    );
    assert_eq!(http_refusal(d.http, &h(1), &qb, 7004), None);
}
