//! Cluster mode, what lands in Redis: a swarm's keys carry their own expiry (so an abandoned
//! swarm goes by Redis's key expiry, with no scan), member scores are the peers' expiries,
//! expired members are trimmed when the set grows, a key's expiry is raised and never lowered,
//! a completion moves the peer to the seeders and into the `done` set. Checked on one Redis
//! (the writer's `flush.lua` path) here and on a Redis Cluster (its per-swarm pipelines) in
//! `redis_cluster.rs`, through the same function. Also: a node that falls behind the
//! replication log further than it is kept reloads the swarms instead of missing changes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::process::Command;

use super::cluster::{Redis, Store, announce, call, eventually, scrape};
use super::harness::{Daemon, config, hex, metrics, sample};

/// `[swarm] peer_timeout` of the node (the shipped default).
const PEER_TIMEOUT_MS: i64 = 2_700_000;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// An integer reply (`":123"`) as a number.
fn int(reply: Option<String>) -> i64 {
    let r = reply.unwrap_or_default();
    r.strip_prefix(':')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not an integer reply: {r:?}"))
}

#[test]
fn swarm_keys_in_redis_expire_on_their_own() {
    let Some(redis) = Redis::start() else { return };
    swarm_keys_expire_on_their_own(&redis);
}

/// The checks of this module against `store`.
pub(super) fn swarm_keys_expire_on_their_own(store: &dyn Store) {
    let d = tempfile::tempdir().unwrap();
    let a = Daemon::start(d.path(), &store.node_config(d.path(), "keys", ""));
    let ih = [0x5a; 20];
    let tag = format!("{{mt:{}}}", hex(&ih));
    let (l4, s4, done) = (
        format!("{tag}:l4"),
        format!("{tag}:s4"),
        format!("{tag}:done"),
    );
    let call = |args: &[&str]| int(store.key_call(args));
    let written = || {
        sample(
            &metrics(a.admin),
            "mini_torrust_cluster_changes_written_total",
            &[],
        )
    };
    // An announce at A, and its write in Redis (the writer's counter moved past it).
    let announce_written = |port: u16, left: u64, event: &str| {
        // The counter settled first (an earlier write may land in Redis a moment before the
        // node counts it), so that the next step is this announce's write.
        let mut before = written();
        loop {
            std::thread::sleep(Duration::from_millis(60));
            let now = written();
            if now == before {
                break;
            }
            before = now;
        }
        announce(&a, &ih, port, left, event, 0);
        eventually("the change written", || written() > before);
    };
    // Within 3 s of `now + peer_timeout` (the announce happened a moment before).
    let near_expiry = |ms: i64| (ms - (now_ms() + PEER_TIMEOUT_MS)).abs() < 3_000;

    // A leecher: one member, scored with its expiry; the key expires with it.
    announce(&a, &ih, 2001, 100, "started", 0);
    eventually("the leecher in Redis", || call(&["ZCARD", &l4]) == 1);
    let low = (now_ms() + PEER_TIMEOUT_MS - 3_000).to_string();
    assert_eq!(call(&["ZCOUNT", &l4, &low, "+inf"]), 1, "score = expiry");
    let ttl = call(&["PEXPIRETIME", &l4]);
    assert!(near_expiry(ttl), "the key's expiry {ttl} is its peer's");

    // An expired member (as a node that died long ago leaves it) goes when the set grows.
    let past = (now_ms() - 60_000).to_string();
    call(&["ZADD", &l4, &past, "expired-member"]);
    announce(&a, &ih, 2002, 100, "started", 0);
    let now = now_ms().to_string();
    eventually("expired members trimmed when the set grows", || {
        call(&["ZCARD", &l4]) == 2 && call(&["ZCOUNT", &l4, "-inf", &now]) == 0
    });

    // A key's expiry is raised by a later announce, never lowered by an earlier expiry.
    let far = (now_ms() + 10 * PEER_TIMEOUT_MS).to_string();
    call(&["PEXPIREAT", &l4, &far]);
    announce_written(2001, 100, "");
    assert_eq!(
        call(&["PEXPIRETIME", &l4]).to_string(),
        far,
        "a later expiry set elsewhere was lowered"
    );
    call(&["PEXPIRE", &l4, "60000"]);
    announce(&a, &ih, 2001, 100, "", 0);
    eventually("a short expiry raised to the peer's", || {
        near_expiry(call(&["PEXPIRETIME", &l4]))
    });

    // A completion: the peer moves to the seeders and into `done`, which expires too.
    announce(&a, &ih, 2001, 0, "completed", 0);
    eventually("the seeder and its completion in Redis", || {
        call(&["ZCARD", &s4]) == 1 && call(&["ZCARD", &l4]) == 1 && call(&["SCARD", &done]) == 1
    });
    for key in [&s4, &done] {
        let ttl = call(&["PEXPIRETIME", key]);
        assert!(near_expiry(ttl), "{key} expires at {ttl}");
    }
    // `done` lives as long as the swarm's peers, not only until its last completion: any
    // stored peer raises its expiry.
    call(&["PEXPIRE", &done, "60000"]);
    announce(&a, &ih, 2002, 100, "", 0);
    eventually("done's expiry raised by a peer's announce", || {
        near_expiry(call(&["PEXPIRETIME", &done]))
    });

    // A role change without a count moves the member (a new seeder turning leecher).
    announce_written(2003, 0, "");
    assert_eq!(call(&["ZCARD", &s4]), 2);
    announce(&a, &ih, 2003, 100, "", 0);
    eventually("the member moved to the leechers", || {
        call(&["ZCARD", &s4]) == 1 && call(&["ZCARD", &l4]) == 2
    });

    // `stopped` removes the member; the last one gone takes its key with it.
    announce(&a, &ih, 2002, 100, "stopped", 0);
    announce(&a, &ih, 2003, 100, "stopped", 0);
    eventually("the stopped leechers gone", || call(&["EXISTS", &l4]) == 0);
    assert_eq!(call(&["ZCARD", &s4]), 1);
}

#[test]
fn a_node_further_behind_than_the_log_keeps_reloads_the_swarms() {
    // Small stream nodes, so that `MAXLEN ~ 2` really trims to a few entries.
    let Some(redis) = Redis::start_with(&["--stream-node-max-entries", "2"]) else {
        return;
    };
    let port = redis.port;
    let node = |name: &str| {
        let d = tempfile::tempdir().unwrap();
        let text = format!(
            "{}\n[cluster]\nredis_url = \"redis://127.0.0.1:{port}\"\nnode_name = \"{name}\"\n\
             stream_max_len = 2\nflush_interval_ms = 1\n",
            config(d.path(), "[admin]\nbind = [\"127.0.0.1:0\"]")
        );
        (Daemon::start(d.path(), &text), d)
    };
    let (a, _da) = node("a");
    let (b, _db) = node("b");
    let ih = [0x6b; 20];
    announce(&a, &ih, 4001, 100, "started", 0);
    eventually("the first peer at B", || scrape(&b, &ih) == (0, 1, 0));

    // B stops reading (paused); A writes ten batches, far more than the log keeps.
    let signal = |sig: &str| {
        let ok = Command::new("kill")
            .args([sig, &b.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    };
    signal("-STOP");
    for p in 4002..4012u16 {
        announce(&a, &ih, p, 100, "started", 0);
        std::thread::sleep(Duration::from_millis(30));
    }
    let len = int(call(port, &["XLEN", "mt:log"]));
    assert!(len <= 6, "the log was not trimmed ({len} entries)");
    signal("-CONT");
    eventually("every peer at B after it reloaded", || {
        scrape(&b, &ih) == (0, 11, 0)
    });
    // Once: the batch numbers seen before the reload do not count as a gap after it.
    std::thread::sleep(Duration::from_millis(300));
    let reloads = sample(&metrics(b.admin), "mini_torrust_cluster_reloads_total", &[]);
    assert_eq!(reloads, 1.0);
    // A later batch of A still reaches B the normal way.
    announce(&a, &ih, 4012, 100, "started", 0);
    eventually("a later peer at B", || scrape(&b, &ih) == (0, 12, 0));
    assert_eq!(
        sample(&metrics(b.admin), "mini_torrust_cluster_reloads_total", &[]),
        1.0
    );
    assert_eq!(
        sample(&metrics(a.admin), "mini_torrust_cluster_reloads_total", &[]),
        0.0
    );

    // A sender B has never seen: node C starts while B is paused and writes ten batches; B
    // first meets C at a number past 1 (A's next batch, first in the log after B's position,
    // is what B's blocked read returns first, without a gap), and the log's first entry is
    // newer than B's position, so B reloads again.
    signal("-STOP");
    let (c, _dc) = node("c");
    announce(&a, &ih, 4013, 100, "started", 0);
    std::thread::sleep(Duration::from_millis(30));
    let ih2 = [0x6c; 20];
    for p in 4100..4110u16 {
        announce(&c, &ih2, p, 100, "started", 0);
        std::thread::sleep(Duration::from_millis(30));
    }
    signal("-CONT");
    eventually("C's peers at B after a second reload", || {
        scrape(&b, &ih2) == (0, 10, 0) && scrape(&b, &ih) == (0, 13, 0)
    });
    assert_eq!(
        sample(&metrics(b.admin), "mini_torrust_cluster_reloads_total", &[]),
        2.0
    );
}
