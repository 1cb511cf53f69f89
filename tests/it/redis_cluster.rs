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
    two_nodes_converge, wait_pong,
};
use super::cluster_state::{operator_edits_hold_everywhere, redis_back_empty};
use super::harness::{Daemon, on_path, tool_present};

/// A private Redis Cluster of masters only, every server killed on drop.
struct RedisCluster {
    servers: Vec<(u16, Child)>,
    dir: tempfile::TempDir,
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
        Self::start_with(masters, 0)
    }

    /// `masters` masters with `replicas` replicas each.
    fn start_with(masters: usize, replicas: usize) -> Option<RedisCluster> {
        let have = on_path("redis-server") && on_path("redis-cli");
        if !tool_present(
            have,
            "redis-server or redis-cli not on PATH (apt-get install redis-server)",
        ) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut servers = Vec::new();
        for _ in 0..masters * (1 + replicas) {
            let port = free_port_pair();
            servers.push((port, spawn_node(port, dir.path())));
        }
        let c = RedisCluster { servers, dir };
        c.wait_up();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(c.ports().iter().map(|p| format!("127.0.0.1:{p}")))
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "redis-cli --cluster create: {out:?}");
        c.wait_ok(&c.ports());
        Some(c)
    }

    /// Waits until every server answers `PING`.
    fn wait_up(&self) {
        for port in self.ports() {
            wait_pong(port);
        }
    }

    /// Waits until every server in `ports` says `cluster_state:ok`.
    fn wait_ok(&self, ports: &[u16]) {
        for &port in ports {
            let end = Instant::now() + Duration::from_secs(20);
            while !self
                .cli(port, &["CLUSTER", "INFO"])
                .contains("cluster_state:ok")
            {
                assert!(Instant::now() < end, "cluster_state not ok at {port}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// The ports of the servers still running.
    fn ports(&self) -> Vec<u16> {
        self.servers.iter().map(|(p, _)| *p).collect()
    }

    /// The master holding `key`, and its replica's port.
    fn master_and_replica_of(&self, key: &str) -> (u16, u16) {
        let master = self
            .ports()
            .into_iter()
            .find(|&p| {
                let r = call(p, &["TYPE", key]);
                r.is_some_and(|r| !r.starts_with("-MOVED") && r != "+none")
            })
            .expect("no master holds the key");
        // The master learns of its replica by gossip, shortly after the cluster is ok.
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let nodes = self.cli(master, &["CLUSTER", "NODES"]);
            let id = nodes
                .lines()
                .find(|l| l.contains("myself"))
                .and_then(|l| l.split_whitespace().next())
                .unwrap_or_default()
                .to_owned();
            let replica = nodes
                .lines()
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
                .find(|f| f.len() > 3 && f[2].contains("slave") && f[3] == id)
                .and_then(|f| f[1].split('@').next()?.rsplit_once(':')?.1.parse().ok());
            if let Some(replica) = replica {
                return (master, replica);
            }
            assert!(Instant::now() < end, "the master has no replica: {nodes}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILLs the server on `port`.
    fn kill(&mut self, port: u16) {
        let at = self.servers.iter().position(|(p, _)| *p == port).unwrap();
        let (_, mut child) = self.servers.remove(at);
        let _ = child.kill();
        let _ = child.wait();
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
    fn url(&self) -> String {
        let seeds: Vec<String> = self
            .ports()
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect();
        seeds.join(",")
    }

    /// Asks every master; the one holding the key answers (the others say `-MOVED`).
    fn key_call(&self, args: &[&str]) -> Option<String> {
        self.ports()
            .into_iter()
            .filter_map(|p| call(p, args))
            .find(|r| !r.starts_with("-MOVED"))
    }

    fn kill_all(&mut self) {
        for (_, child) in &mut self.servers {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Each server on its port again with its `nodes.conf` (the cluster's shape and slots
    /// survive), its data gone.
    fn restart_empty(&mut self) {
        let dir = self.dir.path().to_owned();
        for (port, child) in &mut self.servers {
            *child = spawn_node(*port, &dir);
        }
        self.wait_up();
        self.wait_ok(&self.ports());
    }
}

/// One cluster-enabled redis-server on `port`, its cluster config in `dir`.
fn spawn_node(port: u16, dir: &std::path::Path) -> Child {
    let conf = dir.join(format!("nodes-{port}.conf"));
    Redis::spawn_with(
        port,
        dir,
        &[
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            conf.to_str().unwrap(),
            "--cluster-node-timeout",
            "2000",
        ],
    )
}

#[test]
fn redis_cluster_three_masters_pass_the_same_checks() {
    let Some(rc) = RedisCluster::start(3) else {
        return;
    };
    two_nodes_converge(&rc);
    a_later_node_joins(&rc);
    super::cluster_keys::swarm_keys_expire_on_their_own(&rc);

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

/// Polls `f` until it holds, at most `secs` seconds.
fn within(secs: u64, what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "not within {secs} s: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    t0.elapsed()
}

#[test]
fn redis_cluster_operator_state_is_shared_and_restored_after_the_cluster_comes_back_empty() {
    let Some(mut rc) = RedisCluster::start(3) else {
        return;
    };
    // The watcher's keys share one hash tag: their pipelines stay in one slot.
    operator_edits_hold_everywhere(&rc);
    // Empty again, so that the next check counts only its own peers.
    rc.kill_all();
    rc.restart_empty();
    // Every master restarted empty (same slots): the epoch marker is gone, the nodes re-publish
    // their swarms (per slot) and state.
    redis_back_empty(&mut rc);
}

#[test]
fn redis_cluster_failover_nodes_keep_serving_and_converge_after() {
    let Some(mut rc) = RedisCluster::start_with(3, 1) else {
        return;
    };
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Daemon::start(da.path(), &rc.node_config(da.path(), "a", ""));
    let b = Daemon::start(db.path(), &rc.node_config(db.path(), "b", ""));
    let ih = [0xf0; 20];
    announce(&a, &ih, 4201, 100, "started", 50);
    eventually("A's peer at B", || scrape(&b, &ih) == (0, 1, 0));

    // Kill the master of the replication stream (every node reads and writes it).
    let (master, replica) = rc.master_and_replica_of("mt:log");
    rc.kill(master);
    // Both nodes answer at once from memory meanwhile.
    for (node, port) in [(&a, 4202), (&b, 4203)] {
        let t0 = Instant::now();
        let (peers, ..) = announce(node, &ih, port, 100, "started", 50);
        assert!(
            t0.elapsed() < Duration::from_millis(150),
            "{:?}",
            t0.elapsed()
        );
        assert!(peers.contains(&std::net::SocketAddr::from(([127, 0, 0, 1], 4201))));
    }
    // The replica takes over; the cluster is whole again.
    let out = rc.cli(replica, &["CLUSTER", "FAILOVER", "TAKEOVER"]);
    assert!(out.starts_with("OK"), "CLUSTER FAILOVER TAKEOVER: {out}");
    rc.wait_ok(&rc.ports());
    // What each node announced during the outage reaches the other, and new announces converge.
    let took = within(15, "the outage's announces converge", || {
        scrape(&a, &ih) == (0, 3, 0) && scrape(&b, &ih) == (0, 3, 0)
    });
    println!("converged {took:?} after the failover");
    announce(&b, &ih, 4204, 0, "completed", 50);
    eventually("a completion after the failover at A", || {
        scrape(&a, &ih) == (1, 3, 1)
    });
    assert_eq!(
        rc.zcard(&format!("{{mt:{}}}:l4", super::harness::hex(&ih)))
            .as_deref(),
        Some(":3")
    );
}
