//! Cluster mode over TLS (`rediss://`): a redis-server started here with a TLS port and a
//! certificate from a CA made in the test (openssl CLI), two nodes that trust that CA
//! (`SSL_CERT_FILE`, which the system certificate store honours) sharing a swarm through it,
//! and a node that does not trust it refused (degraded, serving from memory). Skipped with a
//! printed reason without redis-server or openssl, unless `MINI_TORRUST_REQUIRE_TOOLS=1`.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use super::cluster::{Redis, announce, call, eventually, scrape};
use super::harness::{Daemon, config, hex, http_get, metrics, on_path, sample, tool_present};
use super::https::{make_ca, make_server};

#[test]
fn rediss_nodes_share_swarms_over_tls_and_refuse_an_unknown_ca() {
    if !tool_present(
        on_path("redis-server") && on_path("openssl"),
        "the rediss:// test needs redis-server and openssl (apt-get install redis-server openssl)",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca(dir.path(), "ca");
    let (cert, key) = make_server(dir.path(), "redis", "ca");
    // A plain port (`redis.port`) for the test's own checks, a TLS port for the nodes.
    let tls = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tls_s = tls.to_string();
    let (cert_s, key_s, ca_s) = (
        cert.display().to_string(),
        key.display().to_string(),
        ca.display().to_string(),
    );
    let Some(redis) = Redis::start_with(&[
        "--tls-port",
        &tls_s,
        "--tls-cert-file",
        &cert_s,
        "--tls-key-file",
        &key_s,
        "--tls-ca-cert-file",
        &ca_s,
        "--tls-auth-clients",
        "no",
    ]) else {
        return;
    };
    let plain = redis.port;

    let node = |name: &str, trust: bool| {
        let d = tempfile::tempdir().unwrap();
        let text = format!(
            "{}\n[cluster]\nredis_url = \"rediss://127.0.0.1:{tls}\"\nnode_name = \"{name}\"\nstartup_timeout_secs = 2\n",
            config(d.path(), "[admin]\nbind = [\"127.0.0.1:0\"]")
        );
        let env: &[(&str, &str)] = if trust {
            &[("SSL_CERT_FILE", &ca_s)]
        } else {
            &[]
        };
        let daemon = Daemon::start_with(d.path(), &text, env);
        (daemon, d)
    };
    let (a, _da) = node("a", true);
    let (b, _db) = node("b", true);
    let ih = [0x7e; 20];
    announce(&a, &ih, 3301, 100, "started", 50);
    eventually("A's peer at B, through Redis over TLS", || {
        scrape(&b, &ih) == (0, 1, 0)
    });
    let (peers, ..) = announce(&b, &ih, 3302, 100, "started", 50);
    assert_eq!(peers, vec![super::cluster::local(3301)]);
    let key = format!("{{mt:{}}}:l4", hex(&ih));
    eventually("both peers in Redis", || {
        call(plain, &["ZCARD", &key]).as_deref() == Some(":2")
    });
    for d in [&a, &b] {
        assert_eq!(
            sample(&metrics(d.admin), "mini_torrust_cluster_redis_up", &[]),
            1.0
        );
    }

    // A node without the CA: the handshake fails, it serves from memory and says degraded.
    let (c, _dc) = node("c", false);
    let ih2 = [0x7f; 20];
    let (_, _, incomplete, _) = announce(&c, &ih2, 3303, 100, "started", 50);
    assert_eq!(incomplete, 1, "answered from memory");
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = http_get(c.admin, "/health", &[]);
        let up = sample(&metrics(c.admin), "mini_torrust_cluster_redis_up", &[]);
        if status == 200 && String::from_utf8_lossy(&body).starts_with("degraded") && up == 0.0 {
            break;
        }
        assert!(Instant::now() < end, "the untrusted node is not degraded");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        scrape(&b, &ih2),
        (0, 0, 0),
        "a write from the untrusted node arrived"
    );
    assert_eq!(
        call(plain, &["EXISTS", &format!("{{mt:{}}}:l4", hex(&ih2))]).as_deref(),
        Some(":0")
    );
}
