//! Resident memory per peer: fills the store with N IPv4 peers in T torrents (each peer k has a
//! distinct peer id and port, torrent k mod T, like `benches/compare/mem_compare.sh`) and prints
//! (VmRSS after - VmRSS before) / N.
//!
//! Run: `cargo bench --bench memory` (env PEERS, TORRENTS; defaults 1M and 100k; KEEP_PEER_IDS=0
//! for `[swarm] keep_peer_ids = false`).

use std::net::{IpAddr, Ipv4Addr};

use tracker_core::{AnnounceRequest, CompactPeers, CoreConfig, Event, InfoHash, PeerId, Tracker};

fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn env(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let peers = env("PEERS", 1_000_000);
    let torrents = env("TORRENTS", 100_000);
    let before = vm_rss_kib();
    let mut config = CoreConfig::default();
    config.swarm.keep_peer_ids = env("KEEP_PEER_IDS", 1) != 0;
    let t = Tracker::new(config);
    let now = t.clock().now();
    let mut sink = CompactPeers::default();
    for k in 0..peers {
        let mut ih = [0u8; 20];
        ih[..4].copy_from_slice(&(k % torrents).to_be_bytes());
        ih[19] = 1;
        let mut id = [0u8; 20];
        id[..4].copy_from_slice(&k.to_be_bytes());
        let r = AnnounceRequest {
            info_hash: InfoHash(ih),
            peer_id: PeerId(id),
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 1 + (k % 65_000) as u16,
            event: Event::Started,
            left: 1,
            numwant: Some(0),
            max_peers: 200,
            both_families: false,
        };
        // Distinct (ip, port) per peer: vary the address beyond 65k ports.
        let r = AnnounceRequest {
            ip: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + k / 65_000)),
            ..r
        };
        sink.clear();
        t.announce(&r, now, &mut sink).unwrap();
    }
    let after = vm_rss_kib();
    let counts = t.peer_counts(now);
    assert_eq!(counts.total(), u64::from(peers));
    let bytes = (after.saturating_sub(before)) * 1024;
    println!(
        "memory: {peers} IPv4 peers in {torrents} torrents: RSS {before} KiB -> {after} KiB, {:.1} bytes/peer",
        bytes as f64 / f64::from(peers)
    );
}
