//! Cluster mode on a Redis Cluster: three masters started here (`redis-server --cluster-enabled
//! yes` on free loopback ports, temporary directory, no persistence, joined with `redis-cli
//! --cluster create`), and the same checks as on one Redis (`cluster.rs`'s shared checks and
//! contract suite), plus that the swarms really spread over the masters. Without `redis-server`
//! and `redis-cli` on PATH the test prints `skipped: ...` and passes, unless
//! `MINI_TORRUST_REQUIRE_TOOLS=1`.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::cluster::{
    Redis, SHORT_TIMEOUT, Store, a_later_node_joins, announce, call, contract, eventually, scrape,
    two_nodes_converge,
};
use super::harness::{Daemon, config, on_path, tool_present};

/// A private Redis Cluster of masters only, every server killed on drop.
struct RedisCluster {
    servers: Vec<(u16, Child)>,
    _dir: tempfile::TempDir,
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.servers {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A free loopback port whose cluster-bus port (+10000) is free too.
fn free_port_pair() -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

impl RedisCluster {
    /// Starts `masters` servers and makes them one cluster, or `None` (test skipped) when
    /// redis-server or redis-cli is not installed.
    fn start(masters: usize) -> Option<RedisCluster> {
        let have = on_path("redis-server") && on_path("redis-cli");
        if !tool_present(
            have,
            "redis-server or redis-cli not on PATH (apt-get install redis-server)",
        ) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut servers = Vec::new();
        for _ in 0..masters {
            let port = free_port_pair();
            let conf = dir.path().join(format!("nodes-{port}.conf"));
            let child = Redis::spawn_with(
                port,
                dir.path(),
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    conf.to_str().unwrap(),
                ],
            );
            servers.push((port, child));
        }
        let c = RedisCluster { servers, _dir: dir };
        for port in c.ports() {
            let end = Instant::now() + Duration::from_secs(10);
            while call(port, &["PING"]).as_deref() != Some("+PONG") {
                assert!(Instant::now() < end, "redis-server {port} did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(c.ports().iter().map(|p| format!("127.0.0.1:{p}")))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "redis-cli --cluster create: {out:?}");
        for port in c.ports() {
            let end = Instant::now() + Duration::from_secs(20);
            while !c
                .cli(port, &["CLUSTER", "INFO"])
                .contains("cluster_state:ok")
            {
                assert!(Instant::now() < end, "cluster_state not ok at {port}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Some(c)
    }

    fn ports(&self) -> Vec<u16> {
        self.servers.iter().map(|(p, _)| *p).collect()
    }

    /// `redis-cli -p port args...`: its whole output.
    fn cli(&self, port: u16, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Store for RedisCluster {
    fn node_config(&self, dir: &std::path::Path, node: &str, extra: &str) -> String {
        let seeds: Vec<String> = self
            .ports()
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect();
        format!(
            "{}{extra}\n[cluster]\nredis_url = \"{}\"\nnode_name = \"{node}\"\n",
            config(dir, "[admin]\nbind = [\"127.0.0.1:0\"]"),
            seeds.join(",")
        )
    }

    /// Asks every master; the one holding the key answers (the others say `-MOVED`).
    fn zcard(&self, key: &str) -> Option<String> {
        self.ports()
            .into_iter()
            .filter_map(|p| call(p, &["ZCARD", key]))
            .find(|r| !r.starts_with("-MOVED"))
    }
}

#[test]
fn redis_cluster_three_masters_pass_the_same_checks() {
    let Some(rc) = RedisCluster::start(3) else {
        return;
    };
    two_nodes_converge(&rc);
    a_later_node_joins(&rc);

    // The swarms really spread: announce 24 torrents at one node; their keys land on more than
    // one master, each swarm's keys on one (its hash tag's slot).
    let d = tempfile::tempdir().unwrap();
    let a = Daemon::start(d.path(), &rc.node_config(d.path(), "spread", ""));
    let hashes: Vec<[u8; 20]> = (0..24u8)
        .map(|i| {
            let mut ih = [0xcc; 20];
            ih[1] = i;
            ih
        })
        .collect();
    for ih in &hashes {
        announce(&a, ih, 4100, 0, "completed", 50);
    }
    let per_master = || -> Vec<Vec<String>> {
        rc.ports()
            .into_iter()
            .map(|p| {
                rc.cli(p, &["--scan", "--pattern", "{mt:cc*"])
                    .lines()
                    .map(str::to_owned)
                    .collect()
            })
            .collect()
    };
    // Each swarm has a seeder set and a `done` set.
    eventually("every swarm's keys in Redis", || {
        per_master().iter().map(Vec::len).sum::<usize>() == 2 * hashes.len()
    });
    let keys = per_master();
    let used = keys.iter().filter(|k| !k.is_empty()).count();
    assert!(used >= 2, "every swarm on one master: {keys:?}");
    for ih in &hashes {
        let tag = format!("{{mt:{}}}", super::harness::hex(ih));
        let holders = keys
            .iter()
            .filter(|k| k.iter().any(|k| k.starts_with(&tag)))
            .count();
        assert_eq!(holders, 1, "{tag} on {holders} masters");
    }
    println!(
        "swarm keys per master: {:?}",
        keys.iter().map(Vec::len).collect::<Vec<_>>()
    );
    // A node started now (empty) loads the swarms of every master before it serves: its first
    // scrape of each already counts the seeder and the completion.
    let dl = tempfile::tempdir().unwrap();
    let late = Daemon::start(dl.path(), &rc.node_config(dl.path(), "late", ""));
    for ih in &hashes {
        assert_eq!(scrape(&late, ih), (1, 0, 1), "{}", super::harness::hex(ih));
    }
    drop((a, late));

    // The contract suite, with nodes on the Redis Cluster.
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Daemon::start(da.path(), &rc.node_config(da.path(), "a", SHORT_TIMEOUT));
    let b = Daemon::start(db.path(), &rc.node_config(db.path(), "b", SHORT_TIMEOUT));
    contract(&[&a, &b]);
}
