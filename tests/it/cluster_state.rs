//! Cluster mode, the rest of what nodes share and how they survive: operator state made
//! through the admin API at one node holds at every node (and across restarts), Redis restarted
//! empty gets every live peer and count back from the nodes, and a node restarted (cleanly or
//! after SIGKILL) neither loses nor double-counts anything. Real `redis-server`, real daemons on
//! 127.0.0.1 port 0 (skipped without `redis-server`, as in `cluster.rs`). The operator-state and
//! Redis-back-empty checks take a [`Store`], so `redis_cluster.rs` runs them on a Redis Cluster.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use super::api::{api, cfg};
use super::cluster::{CONVERGE, Redis, SHORT_TIMEOUT, Store, announce, local, scrape};
use super::harness::{Daemon, bdecode, dict_get, hex, http_get, metrics, pct, sample};

/// A node with an admin token and `access` as its `[access]` section.
fn node(store: &dyn Store, dir: &Path, name: &str, access: &str, extra: &str) -> Daemon {
    let text = format!(
        "{extra}\n{}[cluster]\nredis_url = \"{}\"\nnode_name = \"{name}\"\n",
        cfg(dir, access),
        store.url()
    );
    Daemon::start(dir, &text)
}

/// Polls `f` until it holds, failing after `limit`; prints and returns how long it took.
fn within(limit: Duration, what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < limit, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!("{what}: {:?}", t0.elapsed());
    t0.elapsed()
}

/// An HTTP announce with a passkey: `Ok(peers)` or `Err(failure reason)`.
fn keyed_announce(d: &Daemon, key: &str, ih: &[u8; 20], port: u16) -> Result<usize, String> {
    let target = format!(
        "/{key}/announce?info_hash={}&peer_id={}&port={port}&uploaded=0&downloaded=0&left=5&compact=1",
        pct(ih),
        pct(b"-MT0001-cluster-0001")
    );
    let (status, body) = http_get(d.http, &target, &[]);
    assert_eq!(status, 200);
    let v = bdecode(&body);
    match dict_get(&v, "failure reason") {
        Some(serde_bencode::value::Value::Bytes(b)) => Err(String::from_utf8_lossy(b).into()),
        _ => match dict_get(&v, "peers") {
            Some(serde_bencode::value::Value::Bytes(b)) => Ok(b.len() / 6),
            other => panic!("peers: {other:?}"),
        },
    }
}

fn new_passkey(d: &Daemon) -> String {
    let (s, v) = api(d.admin, "POST", "/api/passkeys", "application/json", b"{}");
    assert_eq!(s, 201, "{v}");
    v["key"].as_str().unwrap().to_owned()
}

const ACCESS: &str = "mode = \"blacklist\"\nprivate = true";

#[test]
fn operator_edits_at_one_node_hold_at_every_node_within_a_second_and_across_restarts() {
    if let Some(redis) = Redis::start() {
        operator_edits_hold_everywhere(&redis);
    }
}

/// API edits at one node in force at the other within 1 s, and after a restart.
pub(super) fn operator_edits_hold_everywhere(redis: &dyn Store) {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = node(redis, da.path(), "a", ACCESS, "");
    let mut b = node(redis, db.path(), "b", ACCESS, "");
    let (ih, other) = ([0x71; 20], [0x72; 20]);

    // A passkey made at A works at B.
    assert_eq!(
        keyed_announce(&b, &"0".repeat(32), &ih, 4001),
        Err("invalid passkey".into()),
        "private mode refuses an unknown key"
    );
    let key = new_passkey(&a);
    within(CONVERGE, "A's passkey accepted at B", || {
        keyed_announce(&b, &key, &ih, 4001).is_ok()
    });
    let applied = || {
        sample(
            &metrics(b.admin),
            "mini_torrust_cluster_state_applied_total",
            &[],
        )
    };
    assert_eq!(applied(), 1.0);

    // A torrent denied at A is refused at B.
    let (s, _) = api(
        a.admin,
        "PUT",
        &format!("/api/access/deny/{}", hex(&ih)),
        "",
        b"",
    );
    assert_eq!(s, 201);
    within(CONVERGE, "A's deny in force at B", || {
        keyed_announce(&b, &key, &ih, 4002) == Err("torrent is blacklisted".into())
    });
    assert!(keyed_announce(&b, &key, &other, 4002).is_ok());

    // A torrent indexed at A is listed at B; a client prefix denied at B is listed at A.
    let body = format!(
        r#"{{"info_hash":"{}","name":"Shared","size":7}}"#,
        hex(&other)
    );
    let (s, _) = api(
        a.admin,
        "POST",
        "/api/torrents",
        "application/json",
        body.as_bytes(),
    );
    assert_eq!(s, 201);
    let at_b = format!("/api/torrents/{}", hex(&other));
    within(CONVERGE, "A's index entry listed at B", || {
        let (s, v) = api(b.admin, "GET", &at_b, "", b"");
        s == 200 && v["name"] == "Shared"
    });
    let (s, _) = api(b.admin, "PUT", "/api/access/clients/deny/-XX", "", b"");
    assert_eq!(s, 201);
    within(CONVERGE, "B's client deny listed at A", || {
        let v = api(a.admin, "GET", "/api/access/clients", "", b"").1;
        v["deny"]
            .as_array()
            .is_some_and(|l| l.iter().any(|p| p == "-XX"))
    });

    // Edits at both nodes at the same moment, to different entries: both hold everywhere.
    let (x, y) = ("7a".repeat(20), "7b".repeat(20));
    std::thread::scope(|sc| {
        sc.spawn(|| api(a.admin, "PUT", &format!("/api/access/allow/{x}"), "", b""));
        sc.spawn(|| api(b.admin, "PUT", &format!("/api/access/allow/{y}"), "", b""));
    });
    within(CONVERGE, "both allow entries at both nodes", || {
        [&a, &b].iter().all(|d| {
            let v = api(d.admin, "GET", "/api/access", "", b"").1;
            v["allow"] == serde_json::json!([x, y])
        })
    });

    // Revoked at B: refused at A.
    let (s, _) = api(b.admin, "DELETE", &format!("/api/passkeys/{key}"), "", b"");
    assert_eq!(s, 204);
    within(CONVERGE, "B's revocation in force at A", || {
        keyed_announce(&a, &key, &other, 4003) == Err("invalid passkey".into())
    });

    // B stops (its snapshot keeps the deny); meanwhile A lifts the deny and makes a new key.
    b.signal("TERM");
    assert!(b.wait_exit().success());
    let (s, _) = api(
        a.admin,
        "DELETE",
        &format!("/api/access/deny/{}", hex(&ih)),
        "",
        b"",
    );
    assert_eq!(s, 204);
    let key2 = new_passkey(&a);
    std::thread::sleep(Duration::from_millis(300));
    // Restarted, B holds the cluster's state from its first answer: Redis wins over its
    // snapshot, and nothing revoked comes back.
    let b = node(redis, db.path(), "b", ACCESS, "");
    assert!(
        keyed_announce(&b, &key2, &ih, 4004).is_ok(),
        "undenied, new key"
    );
    assert_eq!(
        keyed_announce(&b, &key, &other, 4004),
        Err("invalid passkey".into())
    );
    assert_eq!(api(b.admin, "GET", &at_b, "", b"").0, 200);
    // And A has not been given back B's old state.
    let v = api(a.admin, "GET", "/api/access", "", b"").1;
    assert_eq!(v["deny"], serde_json::json!([]), "{v}");
    assert_eq!(
        keyed_announce(&a, &key, &other, 4005),
        Err("invalid passkey".into())
    );
}

#[test]
fn redis_restarted_empty_gets_the_live_peers_counts_and_state_back_from_the_nodes() {
    if let Some(mut redis) = Redis::start() {
        redis_back_empty(&mut redis);
    }
}

/// The store restarted empty: the nodes write back every live peer, count and operator entry.
pub(super) fn redis_back_empty(redis: &mut dyn Store) {
    let (da, db, dc) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let open = "mode = \"blacklist\"";
    // Two swarm shards (the fewest) and three swarms: one shard holds two, so the re-publish
    // sends two swarms in one round (two slots on a Cluster).
    let two_shards = "[swarm]\nshards = 2";
    let a = node(redis, da.path(), "a", open, two_shards);
    let b = node(redis, db.path(), "b", open, two_shards);
    // Two more swarms (other slots on a Redis Cluster).
    let (ih, denied, second, third) = ([0x81; 20], [0x82; 20], [0x84; 20], [0x85; 20]);
    announce(&a, &second, 5005, 100, "started", 50);
    announce(&a, &third, 5006, 100, "started", 50);
    announce(&a, &ih, 5001, 100, "started", 50);
    announce(&a, &ih, 5002, 0, "completed", 50);
    announce(&b, &ih, 5003, 100, "started", 50);
    announce(&b, &ih, 5004, 0, "completed", 50);
    let (s, _) = api(
        a.admin,
        "PUT",
        &format!("/api/access/deny/{}", hex(&denied)),
        "",
        b"",
    );
    assert_eq!(s, 201);
    within(CONVERGE, "both nodes agree", || {
        scrape(&a, &ih) == (2, 2, 2)
            && scrape(&b, &ih) == (2, 2, 2)
            && scrape(&b, &second).1 == 1
            && scrape(&b, &third).1 == 1
    });
    // One of the counted peers leaves: the count stays 2 with one counted peer alive.
    announce(&b, &ih, 5004, 0, "stopped", 50);
    within(CONVERGE, "the stop reached A", || {
        scrape(&a, &ih) == (1, 2, 2)
    });

    redis.kill_all();
    // An edit while Redis is away holds here at once and reaches Redis when it returns.
    let late = [0x83; 20];
    let (s, _) = api(
        b.admin,
        "PUT",
        &format!("/api/access/deny/{}", hex(&late)),
        "",
        b"",
    );
    assert_eq!(s, 201);
    std::thread::sleep(Duration::from_millis(300));
    redis.restart_empty();
    let peers_key = format!("{{mt:{}}}:l4", hex(&ih));
    let second_key = format!("{{mt:{}}}:l4", hex(&second));
    let third_key = format!("{{mt:{}}}:l4", hex(&third));
    within(Duration::from_secs(5), "the nodes re-published", || {
        redis.zcard(&peers_key).as_deref() == Some(":2")
            && redis.zcard(&second_key).as_deref() == Some(":1")
            && redis.zcard(&third_key).as_deref() == Some(":1")
    });
    // Each node wrote back the five live peers it holds (a node whose last exchange failed
    // waits a second before the next).
    let republished = |d: &Daemon| {
        sample(
            &metrics(d.admin),
            "mini_torrust_cluster_peers_republished_total",
            &[],
        )
    };
    within(Duration::from_secs(5), "both nodes re-published", || {
        republished(&a) == 5.0 && republished(&b) == 5.0
    });
    within(
        Duration::from_secs(2),
        "the operator state written back",
        || redis.key_call(&["HLEN", "{mt:state}:deny"]).as_deref() == Some(":2"),
    );

    // A node started now, from Redis alone, sees every live peer, the count, and the deny.
    let c = node(redis, dc.path(), "c", open, "");
    assert_eq!(scrape(&c, &ih), (1, 2, 2));
    assert_eq!(scrape(&c, &second), (0, 1, 0));
    assert_eq!(scrape(&c, &third), (0, 1, 0));
    let (mut peers, ..) = announce(&c, &ih, 5009, 100, "started", 50);
    peers.sort();
    assert_eq!(peers, vec![local(5001), local(5002), local(5003)]);
    let refused = |d: &Daemon, ih: &[u8; 20]| {
        let target = format!(
            "/announce?info_hash={}&peer_id={}&port=5010&uploaded=0&downloaded=0&left=1",
            pct(ih),
            pct(&[7; 20])
        );
        let body = bdecode(&http_get(d.http, &target, &[]).1);
        dict_get(&body, "failure reason").is_some()
    };
    assert!(refused(&c, &denied) && refused(&c, &late));
    within(
        CONVERGE,
        "A holds B's edit made while Redis was away",
        || refused(&a, &late),
    );
    // And a completion after the loss is counted on top, once.
    announce(&c, &ih, 5001, 0, "completed", 50);
    within(CONVERGE, "3 completed everywhere", || {
        [&a, &b, &c].iter().all(|d| scrape(d, &ih).2 == 3)
    });
}

#[test]
fn a_restarted_node_neither_loses_nor_double_counts() {
    let Some(redis) = Redis::start() else { return };
    let (da, da2, db) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let mut a = node(&redis, da.path(), "a", "", "");
    let mut b = node(&redis, db.path(), "b", "", "");
    let ih = [0x91; 20];
    announce(&a, &ih, 6001, 100, "started", 50);
    announce(&b, &ih, 6002, 0, "completed", 50);
    within(CONVERGE, "converged", || scrape(&a, &ih) == (1, 1, 1));

    // B restarts from its snapshot, A from an empty directory (Redis alone). At each, the
    // peer that completed says `completed` again: the reply and every count stay at 1.
    b.signal("TERM");
    assert!(b.wait_exit().success());
    let b = node(&redis, db.path(), "b", "", "");
    assert_eq!(
        scrape(&b, &ih),
        (1, 1, 1),
        "restarted B: same swarm, same count"
    );
    assert_eq!(announce(&b, &ih, 6002, 0, "completed", 50).3, 1);
    a.signal("TERM");
    assert!(a.wait_exit().success());
    let a = node(&redis, da2.path(), "a", "", "");
    assert_eq!(
        scrape(&a, &ih),
        (1, 1, 1),
        "A restarted empty: the swarm from Redis"
    );
    assert_eq!(announce(&a, &ih, 6002, 0, "completed", 50).3, 1);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(scrape(&b, &ih), (1, 1, 1));
    assert_eq!(scrape(&a, &ih), (1, 1, 1));
    // A new completion is counted once, everywhere.
    announce(&a, &ih, 6001, 0, "completed", 50);
    within(CONVERGE, "2 completed at both", || {
        scrape(&a, &ih) == (2, 0, 2) && scrape(&b, &ih) == (2, 0, 2)
    });
}

#[test]
fn a_node_killed_with_sigkill_its_peers_stay_until_they_expire_and_it_rejoins_whole() {
    let Some(redis) = Redis::start() else { return };
    let (da, db, db2) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let a = node(&redis, da.path(), "a", "", SHORT_TIMEOUT);
    let mut b = node(&redis, db.path(), "b", "", SHORT_TIMEOUT);
    let ih = [0xa1; 20];
    for port in [7001, 7002, 7003] {
        announce(&b, &ih, port, 100, "started", 50);
    }
    within(CONVERGE, "B's peers at A", || scrape(&a, &ih) == (0, 3, 0));
    b.signal("KILL");
    assert!(!b.wait_exit().success());
    let killed_at = Instant::now();

    // The survivor keeps B's peers (they did not stop) and serves them.
    announce(&a, &ih, 7004, 100, "started", 50);
    let (peers, ..) = announce(&a, &ih, 7005, 100, "started", 50);
    assert_eq!(peers.len(), 4, "{peers:?}");

    // B comes back (fresh directory: no snapshot) with the full swarm from Redis.
    let b = node(&redis, db2.path(), "b", "", SHORT_TIMEOUT);
    assert_eq!(scrape(&b, &ih), (0, 5, 0));
    let (mut peers, ..) = announce(&b, &ih, 7006, 100, "started", 50);
    peers.sort();
    let want: Vec<SocketAddr> = (7001..=7005).map(local).collect();
    assert_eq!(peers, want);

    // Nobody re-announces B's first three peers: they expire (peer_timeout 4 s) at every node.
    let left = Duration::from_secs(5).saturating_sub(killed_at.elapsed());
    std::thread::sleep(left);
    announce(&a, &ih, 7004, 100, "", 50);
    announce(&a, &ih, 7005, 100, "", 50);
    announce(&b, &ih, 7006, 100, "", 50);
    within(
        Duration::from_secs(2),
        "the killed node's peers expired",
        || scrape(&a, &ih) == (0, 3, 0) && scrape(&b, &ih) == (0, 3, 0),
    );
}
