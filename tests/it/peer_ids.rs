//! `[swarm] keep_peer_ids = false` through the daemon: compact replies unchanged, `compact=0`
//! replies without `peer id`, UDP announces stored, the API and CLI listing say the ids are not
//! kept, snapshots omit them (and a snapshot with ids loads without them).

use std::collections::BTreeSet;
use std::net::SocketAddr;

use serde_bencode::value::Value as B;
use serde_json::Value;

use super::api::{TOKEN, cfg, get, udp_announce_as};
use super::harness::{Daemon, bdecode, dict_get, hex, http_get, pct, run_cli};

const HASH: [u8; 20] = [0x5a; 20];

fn peer_id(n: u8) -> [u8; 20] {
    let mut id = *b"-MT0001-peerids-0000";
    id[19] = b'0' + n;
    id
}

/// An HTTP announce (a leecher on 127.0.0.1) with `compact`: the decoded reply.
fn announce(http: SocketAddr, n: u8, compact: bool) -> B {
    let target = format!(
        "/announce?info_hash={}&peer_id={}&port={}&uploaded=0&downloaded=0&left=5&compact={}",
        pct(&HASH),
        pct(&peer_id(n)),
        7000 + u16::from(n),
        u8::from(compact)
    );
    let (status, body) = http_get(http, &target, &[]);
    assert_eq!(status, 200);
    let v = bdecode(&body);
    assert!(dict_get(&v, "failure reason").is_none(), "{v:?}");
    v
}

/// Ports of a compact `peers` string.
fn compact_ports(v: &B) -> BTreeSet<u16> {
    let Some(B::Bytes(b)) = dict_get(v, "peers") else {
        panic!("no compact peers: {v:?}")
    };
    assert_eq!(b.len() % 6, 0);
    b.chunks(6)
        .map(|c| {
            assert_eq!(&c[..4], &[127, 0, 0, 1]);
            u16::from_be_bytes([c[4], c[5]])
        })
        .collect()
}

/// The dictionaries of a `compact=0` reply.
fn dict_peers(v: &B) -> Vec<&std::collections::HashMap<Vec<u8>, B>> {
    let Some(B::List(l)) = dict_get(v, "peers") else {
        panic!("no peer list: {v:?}")
    };
    l.iter()
        .map(|p| match p {
            B::Dict(d) => d,
            other => panic!("not a dict: {other:?}"),
        })
        .collect()
}

/// `/api/peers/<hash>`: port -> peer_id as JSON.
fn listed(admin: SocketAddr) -> Vec<(u16, Value)> {
    let (s, v) = get(admin, &format!("/api/peers/{}", hex(&HASH)));
    assert_eq!(s, 200, "{v}");
    let mut out: Vec<_> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["port"].as_u64().unwrap() as u16, p["peer_id"].clone()))
        .collect();
    out.sort_by_key(|p| p.0);
    out
}

fn config(dir: &std::path::Path, keep: bool) -> String {
    format!(
        "{}\n[swarm]\nkeep_peer_ids = {keep}\n",
        cfg(dir, "mode = \"open\"")
    )
}

fn stop(mut d: Daemon) {
    d.signal("TERM");
    assert_eq!(d.wait_exit().code(), Some(0));
}

#[test]
fn without_peer_ids_replies_listings_and_snapshots_carry_none() {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("state.json");

    // Ids kept (the default): the listing and the snapshot have them.
    let d = Daemon::start(dir.path(), &config(dir.path(), true));
    announce(d.http, 1, true);
    assert_eq!(listed(d.admin), [(7001, Value::String(hex(&peer_id(1))))]);
    let v = announce(d.http, 2, false);
    let peers = dict_peers(&v);
    assert_eq!(peers.len(), 1);
    assert_eq!(
        peers[0].get(&b"peer id"[..]),
        Some(&B::Bytes(peer_id(1).to_vec()))
    );
    stop(d);
    let text = std::fs::read_to_string(&snapshot).unwrap();
    assert!(text.contains(&hex(&peer_id(1))), "{text}");

    // Not kept: the snapshot's peers load without their ids.
    let d = Daemon::start(dir.path(), &config(dir.path(), false));
    assert_eq!(listed(d.admin), [(7001, Value::Null), (7002, Value::Null)]);
    // Compact replies are unchanged.
    let v = announce(d.http, 3, true);
    assert_eq!(compact_ports(&v), BTreeSet::from([7001, 7002]));
    // UDP announces are stored (and counted).
    let (seeders, leechers) =
        udp_announce_as(d.udp, &HASH, 7004, None, &peer_id(4)).expect("udp announce");
    assert_eq!((seeders, leechers), (0, 4));
    // A dictionary reply has addresses and no `peer id`, as with `no_peer_id=1`.
    let v = announce(d.http, 5, false);
    let peers = dict_peers(&v);
    let ports: BTreeSet<i64> = peers
        .iter()
        .map(|p| match p.get(&b"port"[..]) {
            Some(B::Int(i)) => *i,
            other => panic!("port {other:?}"),
        })
        .collect();
    assert_eq!(ports, BTreeSet::from([7001, 7002, 7003, 7004]));
    for p in &peers {
        assert_eq!(p.get(&b"ip"[..]), Some(&B::Bytes(b"127.0.0.1".to_vec())));
        assert!(p.get(&b"peer id"[..]).is_none(), "{p:?}");
    }
    // The API lists every peer with a null id; the CLI says the ids are not kept.
    let l = listed(d.admin);
    assert_eq!(
        l.iter().map(|p| p.0).collect::<Vec<_>>(),
        [7001, 7002, 7003, 7004, 7005]
    );
    assert!(l.iter().all(|p| p.1.is_null()), "{l:?}");
    let admin = d.admin.to_string();
    let (code, out, err) = run_cli(
        dir.path(),
        &["--admin", &admin, "--token", TOKEN, "peers", &hex(&HASH)],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.matches("(peer id not kept)").count(), 5, "{out}");
    assert!(!out.contains(&hex(&peer_id(1))), "{out}");
    stop(d);

    // The snapshot has the peers and no ids.
    let snap: Value = serde_json::from_str(&std::fs::read_to_string(&snapshot).unwrap()).unwrap();
    let peers = snap["torrents"][0]["peers"].as_array().unwrap();
    assert_eq!(peers.len(), 5);
    assert!(
        peers.iter().all(|p| p.get("peer_id").is_none()),
        "{peers:?}"
    );
    assert!(peers.iter().all(|p| p["port"].as_u64().is_some()));
}
