//! `GET /metrics`: the Prometheus text exposition format (version 0.0.4), rendered from the
//! tracker's counters, a peer count walk and the daemon's own figures.
//!
//! Metric families (all prefixed `mini_torrust_`):
//! - `requests_received_total{protocol}`: requests (packets or HTTP requests) received.
//! - `requests_total{protocol,action,outcome}`: answered requests; `action` is `connect`,
//!   `announce` or `scrape` with `outcome="ok"`, and `announce`, `scrape` or `other` (unparseable
//!   requests, unknown paths) with `outcome="error"`.
//! - `bad_connection_ids_total{protocol}`, `dropped_total{protocol}`, `access_denied_total{protocol}`,
//!   `not_stored_total{protocol,what}`, `bytes_total{protocol,direction}`.
//! - `announces_by_client_total{protocol,client}`: answered announces by client family, the
//!   Azureus-style code of the peer id (`qB`, `TR`, `lt`, ...; a fixed list plus `other`, so
//!   at most 25 values per protocol).
//! - `rate_limited_total{protocol}`, `banned_requests_total{protocol}`, `bans_total{protocol}`,
//!   `limits_table_entries{state}` (`used`, `banned`, `capacity`): the `[limits]` section.
//! - `connections_closed_total{protocol,reason}`: HTTP connections the guards closed
//!   (`per_ip_limit`, `head_timeout`, `evicted`, `tls_handshake`).
//! - `torrents`, `peers{family,role}`, `downloads` (completed downloads counted by the torrents
//!   held): gauges.
//! - `snapshot_duration_seconds`, `snapshot_age_seconds` (only after a first write),
//!   `snapshot_bytes`, `snapshot_writes_total{outcome}`.
//! - `sweep_duration_seconds`, `sweeps_total`, `sweep_removed_total{what}`.
//! - `uptime_seconds`, `start_time_seconds`, `ready`, `build_info{version}`.

use std::fmt::Write as _;

use tracker_core::{CounterValues, Tracker};

use crate::state::DaemonState;

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders every metric. Walks the swarm map for the peer counts (read locks, one shard at a
/// time): call from a blocking thread.
pub fn render(tracker: &Tracker, state: &DaemonState) -> String {
    let stats = tracker.stats().read();
    let peers = tracker.peer_counts(tracker.clock().now());
    let protos: [(&str, &CounterValues); 2] = [("udp", &stats.udp), ("http", &stats.http)];
    let mut o = String::with_capacity(4096);

    family(
        &mut o,
        "requests_received_total",
        "counter",
        "Requests (UDP packets, HTTP requests) received.",
    );
    for (p, c) in protos {
        sample(
            &mut o,
            "requests_received_total",
            &[("protocol", p)],
            c.requests,
        );
    }
    family(
        &mut o,
        "requests_total",
        "counter",
        "Requests answered, by protocol, action and outcome.",
    );
    for (p, c) in protos {
        if p == "udp" {
            sample(
                &mut o,
                "requests_total",
                &[("protocol", p), ("action", "connect"), ("outcome", "ok")],
                c.connects,
            );
        }
        sample(
            &mut o,
            "requests_total",
            &[("protocol", p), ("action", "announce"), ("outcome", "ok")],
            c.announces,
        );
        sample(
            &mut o,
            "requests_total",
            &[("protocol", p), ("action", "scrape"), ("outcome", "ok")],
            c.scrapes,
        );
        sample(
            &mut o,
            "requests_total",
            &[
                ("protocol", p),
                ("action", "announce"),
                ("outcome", "error"),
            ],
            c.announce_errors,
        );
        sample(
            &mut o,
            "requests_total",
            &[("protocol", p), ("action", "scrape"), ("outcome", "error")],
            c.scrape_errors,
        );
        // Errors to anything else: unparseable requests, unknown paths, over-long packets.
        sample(
            &mut o,
            "requests_total",
            &[("protocol", p), ("action", "other"), ("outcome", "error")],
            c.errors.saturating_sub(c.announce_errors + c.scrape_errors),
        );
    }
    family(
        &mut o,
        "bad_connection_ids_total",
        "counter",
        "UDP announces and scrapes with a wrong or expired connection id.",
    );
    sample(
        &mut o,
        "bad_connection_ids_total",
        &[("protocol", "udp")],
        stats.udp.bad_connection_ids,
    );
    family(
        &mut o,
        "dropped_total",
        "counter",
        "Packets or requests dropped without an answer.",
    );
    for (p, c) in protos {
        sample(&mut o, "dropped_total", &[("protocol", p)], c.dropped);
    }
    family(
        &mut o,
        "access_denied_total",
        "counter",
        "Requests refused by the access rules.",
    );
    for (p, c) in protos {
        sample(
            &mut o,
            "access_denied_total",
            &[("protocol", p)],
            c.access_denied,
        );
    }
    family(
        &mut o,
        "announces_by_client_total",
        "counter",
        "Announces answered, by client family (the peer id's Azureus-style code, or other).",
    );
    for (p, c) in protos {
        for (client, n) in tracker_core::clients::CLIENT_FAMILIES.iter().zip(c.clients) {
            sample(
                &mut o,
                "announces_by_client_total",
                &[("protocol", p), ("client", client)],
                n,
            );
        }
    }
    for (name, help, get) in [
        (
            "rate_limited_total",
            "Requests refused because their address was over limits.requests_per_sec.",
            (|c: &CounterValues| c.rate_limited) as fn(&CounterValues) -> u64,
        ),
        (
            "banned_requests_total",
            "Requests refused because their address was banned.",
            |c| c.banned_requests,
        ),
        (
            "bans_total",
            "Bans imposed (limits.ban_threshold bad requests within limits.ban_window_secs).",
            |c| c.bans,
        ),
    ] {
        family(&mut o, name, "counter", help);
        for (p, c) in protos {
            sample(&mut o, name, &[("protocol", p)], get(c));
        }
    }
    let fill = tracker.limiter().fill(tracker.clock().now());
    family(
        &mut o,
        "limits_table_entries",
        "gauge",
        "The per-address limits table: slots in use, of which banned now, and its fixed capacity.",
    );
    for (state, v) in [
        ("used", fill.used),
        ("banned", fill.banned),
        ("capacity", fill.capacity),
    ] {
        sample(
            &mut o,
            "limits_table_entries",
            &[("state", state)],
            v as u64,
        );
    }
    family(
        &mut o,
        "connections_closed_total",
        "counter",
        "HTTP connections closed by the guards: over http.max_connections_per_ip, no complete request head within http.header_read_timeout_ms, closed while waiting to make room when every http.max_connections slot was taken, or a failed TLS handshake on an https listener.",
    );
    for (why, v) in [
        ("per_ip_limit", stats.http.connections_refused),
        ("head_timeout", stats.http.connections_timed_out),
        ("evicted", stats.http.connections_evicted),
        ("tls_handshake", stats.http.tls_handshake_failures),
    ] {
        sample(
            &mut o,
            "connections_closed_total",
            &[("protocol", "http"), ("reason", why)],
            v,
        );
    }
    family(
        &mut o,
        "not_stored_total",
        "counter",
        "Announces answered but not stored (swarm or torrent limit).",
    );
    for (p, c) in protos {
        sample(
            &mut o,
            "not_stored_total",
            &[("protocol", p), ("what", "peer")],
            c.peers_not_stored,
        );
        sample(
            &mut o,
            "not_stored_total",
            &[("protocol", p), ("what", "torrent")],
            c.torrents_not_stored,
        );
    }
    family(
        &mut o,
        "bytes_total",
        "counter",
        "Bytes received and sent by the tracker listeners.",
    );
    for (p, c) in protos {
        sample(
            &mut o,
            "bytes_total",
            &[("protocol", p), ("direction", "in")],
            c.bytes_in,
        );
        sample(
            &mut o,
            "bytes_total",
            &[("protocol", p), ("direction", "out")],
            c.bytes_out,
        );
    }

    family(
        &mut o,
        "torrents",
        "gauge",
        "Torrents held (with peers or indexed).",
    );
    sample(&mut o, "torrents", &[], peers.torrents as u64);
    family(
        &mut o,
        "downloads",
        "gauge",
        "Completed downloads counted by the torrents held (the sum of their scrape downloaded).",
    );
    sample(&mut o, "downloads", &[], peers.downloads);
    family(
        &mut o,
        "peers",
        "gauge",
        "Live peers by address family and role.",
    );
    sample(
        &mut o,
        "peers",
        &[("family", "ipv4"), ("role", "seeder")],
        peers.v4_seeders,
    );
    sample(
        &mut o,
        "peers",
        &[("family", "ipv4"), ("role", "leecher")],
        peers.v4_leechers,
    );
    sample(
        &mut o,
        "peers",
        &[("family", "ipv6"), ("role", "seeder")],
        peers.v6_seeders,
    );
    sample(
        &mut o,
        "peers",
        &[("family", "ipv6"), ("role", "leecher")],
        peers.v6_leechers,
    );

    let snap = state.snapshot();
    family(
        &mut o,
        "snapshot_duration_seconds",
        "gauge",
        "Duration of the last successful snapshot write.",
    );
    sample_f(
        &mut o,
        "snapshot_duration_seconds",
        &[],
        snap.last_duration.as_secs_f64(),
    );
    if let Some(at) = snap.last_success {
        family(
            &mut o,
            "snapshot_age_seconds",
            "gauge",
            "Seconds since the last successful snapshot write.",
        );
        sample_f(
            &mut o,
            "snapshot_age_seconds",
            &[],
            at.elapsed().as_secs_f64(),
        );
    }
    family(
        &mut o,
        "snapshot_bytes",
        "gauge",
        "Size of the last snapshot written.",
    );
    sample(&mut o, "snapshot_bytes", &[], snap.last_bytes);
    family(
        &mut o,
        "snapshot_writes_total",
        "counter",
        "Snapshot writes by outcome.",
    );
    sample(
        &mut o,
        "snapshot_writes_total",
        &[("outcome", "ok")],
        snap.writes,
    );
    sample(
        &mut o,
        "snapshot_writes_total",
        &[("outcome", "error")],
        snap.failures,
    );

    let sweep = state.sweep();
    family(
        &mut o,
        "sweep_duration_seconds",
        "gauge",
        "Duration of the last sweep of expired peers.",
    );
    sample_f(
        &mut o,
        "sweep_duration_seconds",
        &[],
        sweep.last_duration.as_secs_f64(),
    );
    family(&mut o, "sweeps_total", "counter", "Sweeps run.");
    sample(&mut o, "sweeps_total", &[], sweep.runs);
    family(
        &mut o,
        "sweep_removed_total",
        "counter",
        "Expired peers and empty torrents removed by sweeps.",
    );
    sample(
        &mut o,
        "sweep_removed_total",
        &[("what", "peers")],
        sweep.peers_removed,
    );
    sample(
        &mut o,
        "sweep_removed_total",
        &[("what", "torrents")],
        sweep.torrents_removed,
    );

    if let Some(c) = state.cluster() {
        cluster(&mut o, c, tracker.changes_dropped());
    }
    family(
        &mut o,
        "uptime_seconds",
        "gauge",
        "Seconds since the process started.",
    );
    sample_f(
        &mut o,
        "uptime_seconds",
        &[],
        state.started.elapsed().as_secs_f64(),
    );
    family(
        &mut o,
        "start_time_seconds",
        "gauge",
        "Process start time, unix seconds.",
    );
    sample(&mut o, "start_time_seconds", &[], state.started_unix);
    family(
        &mut o,
        "ready",
        "gauge",
        "1 while serving (after READY=1, before STOPPING=1).",
    );
    sample(&mut o, "ready", &[], u64::from(state.is_ready()));
    family(
        &mut o,
        "build_info",
        "gauge",
        "Always 1; the version is a label.",
    );
    sample(
        &mut o,
        "build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1,
    );
    o
}

/// The cluster link (cluster mode only).
fn cluster(o: &mut String, c: &tracker_cluster::ClusterStatus, ring_dropped: u64) {
    let get = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    family(
        o,
        "cluster_redis_up",
        "gauge",
        "1 when the last exchange with Redis succeeded (cluster mode).",
    );
    let up = c.redis_up.load(std::sync::atomic::Ordering::Relaxed);
    sample(o, "cluster_redis_up", &[], u64::from(up));
    for (name, help, v) in [
        (
            "cluster_changes_written_total",
            "Peer changes sent to Redis.",
            get(&c.changes_written),
        ),
        (
            "cluster_batches_written_total",
            "Pipelines sent to Redis.",
            get(&c.batches_written),
        ),
        (
            "cluster_changes_applied_total",
            "Other nodes' changes applied to memory.",
            get(&c.changes_applied),
        ),
        (
            "cluster_write_errors_total",
            "Failed writes to Redis.",
            get(&c.write_errors),
        ),
        (
            "cluster_read_errors_total",
            "Failed reads of the replication log.",
            get(&c.read_errors),
        ),
        (
            "cluster_peers_republished_total",
            "Live peers written back to Redis after it lost the swarms (came back empty).",
            get(&c.peers_republished),
        ),
        (
            "cluster_reloads_total",
            "Times this node reloaded the swarms from Redis after it fell further behind the replication log than stream_max_len.",
            get(&c.reloads),
        ),
        (
            "cluster_state_applied_total",
            "Operator-state entries (access lists, passkeys, index) changed here to match the cluster.",
            get(&c.state_applied),
        ),
    ] {
        family(o, name, "counter", help);
        sample(o, name, &[], v);
    }
    family(
        o,
        "cluster_changes_dropped_total",
        "counter",
        "Peer changes never sent to Redis: ring = a shard's ring was full between two flushes, queue = the queue for an unreachable Redis was full.",
    );
    sample(
        o,
        "cluster_changes_dropped_total",
        &[("where", "ring")],
        ring_dropped,
    );
    sample(
        o,
        "cluster_changes_dropped_total",
        &[("where", "queue")],
        get(&c.pending_dropped),
    );
}

fn family(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(
        o,
        "# HELP mini_torrust_{name} {help}\n# TYPE mini_torrust_{name} {kind}"
    );
}

fn labels(o: &mut String, labels: &[(&str, &str)]) {
    if labels.is_empty() {
        return;
    }
    o.push('{');
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        // Label values here are fixed words and the crate version: nothing to escape.
        let _ = write!(o, "{k}=\"{v}\"");
    }
    o.push('}');
}

fn sample(o: &mut String, name: &str, l: &[(&str, &str)], v: u64) {
    let _ = write!(o, "mini_torrust_{name}");
    labels(o, l);
    let _ = writeln!(o, " {v}");
}

fn sample_f(o: &mut String, name: &str, l: &[(&str, &str)], v: f64) {
    let _ = write!(o, "mini_torrust_{name}");
    labels(o, l);
    let _ = writeln!(o, " {v:.6}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use tracker_core::{CoreConfig, Counters, Protocol};

    /// Every counter the core declares reaches `/metrics`: one set alone (on a UDP and an HTTP
    /// block) to a value nothing else has must show up as a sample. Fails when a counter is
    /// added to the list in `stats.rs` but not rendered here.
    #[test]
    fn every_declared_counter_is_exported() {
        let names: Vec<&str> = Counters::default()
            .named()
            .iter()
            .map(|(n, _)| *n)
            .collect();
        assert!(names.len() >= 19, "{names:?}");
        for name in names {
            let t = Tracker::new(CoreConfig::default());
            for p in [Protocol::Udp, Protocol::Http] {
                let block = t.stats().register(p);
                let (_, counter) = block.named().into_iter().find(|(n, _)| *n == name).unwrap();
                Counters::add(counter, 7_777_777);
            }
            let text = render(&t, &DaemonState::new(Instant::now()));
            assert!(
                text.lines().any(|l| l.ends_with(" 7777777")),
                "counter `{name}` is not exported by /metrics"
            );
        }
    }

    #[test]
    fn renders_counters_and_every_line_is_well_formed() {
        let t = Tracker::new(CoreConfig::default());
        let c = t.stats().register(Protocol::Udp);
        Counters::add(&c.connects, 3);
        let state = DaemonState::new(Instant::now());
        let text = render(&t, &state);
        assert!(text.contains(
            "mini_torrust_requests_total{protocol=\"udp\",action=\"connect\",outcome=\"ok\"} 3\n"
        ));
        assert!(text.contains("mini_torrust_peers{family=\"ipv6\",role=\"leecher\"} 0\n"));
        assert!(!text.contains("snapshot_age_seconds"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(name.starts_with("mini_torrust_"), "{line}");
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
