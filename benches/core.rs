//! tracker-core benchmarks: announce (empty and 10k-peer swarm), scrape of 74 hashes, a sweep
//! over 1M peers, snapshot write and load of 1M peers in 100k torrents, announces served
//! while a snapshot is being written, and the per-address limiter's check (one hot address,
//! and 1M addresses cycling through the 65,536-slot table).
//!
//! Run: `cargo bench --bench core` (add `-- announce` etc. to pick one).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use tracker_core::{
    AnnounceRequest, Clock, CompactPeers, CoreConfig, Event, InfoHash, PeerId, Tracker, snapshot,
};

const T0: u32 = 1_800_000_000;

fn req(torrent: u32, peer: u32, left: u64) -> AnnounceRequest {
    let mut ih = [0u8; 20];
    ih[..4].copy_from_slice(&torrent.to_le_bytes());
    ih[4] = 0x5a;
    let mut id = [0u8; 20];
    id[..4].copy_from_slice(&peer.to_le_bytes());
    AnnounceRequest {
        info_hash: InfoHash(ih),
        peer_id: PeerId(id),
        ip: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (peer >> 8))),
        port: 1024 + (peer & 0xff) as u16,
        event: Event::Started,
        left,
        numwant: Some(30),
        max_peers: 200,
        both_families: true,
    }
}

fn tracker() -> Tracker {
    Tracker::with_clock(CoreConfig::default(), Clock::manual(T0))
}

/// `peers` peers spread evenly over `torrents` torrents, a third of them seeders.
fn fill(t: &Tracker, torrents: u32, peers: u32) {
    let mut sink = CompactPeers::default();
    for p in 0..peers {
        sink.clear();
        let r = req(p % torrents, p, u64::from(p % 3 != 0));
        t.announce(&r, T0, &mut sink).unwrap();
    }
}

fn announce(c: &mut Criterion) {
    let mut g = c.benchmark_group("announce");
    let t = tracker();
    let mut sink = CompactPeers::default();
    let mut n = 0u32;
    g.bench_function("new torrent (empty swarm)", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            sink.clear();
            black_box(t.announce(&req(n, n, 1), T0, &mut sink).unwrap());
        })
    });
    let t = tracker();
    fill(&t, 1, 10_000);
    let mut p = 0u32;
    g.bench_function("re-announce in 10k-peer swarm, 30 peers back", |b| {
        b.iter(|| {
            p = (p + 7919) % 10_000;
            sink.clear();
            black_box(t.announce(&req(0, p, 1), T0, &mut sink).unwrap());
        })
    });
    g.finish();
}

fn scrape(c: &mut Criterion) {
    let t = tracker();
    fill(&t, 100_000, 1_000_000);
    let hashes: Vec<InfoHash> = (0..74u32).map(|i| req(i * 1000, 0, 0).info_hash).collect();
    c.bench_function("scrape 74 hashes (100k torrents)", |b| {
        b.iter(|| {
            let mut sum = 0u32;
            t.scrape(&hashes, T0, |_, c| sum += c.seeders + c.leechers);
            black_box(sum)
        })
    });
}

fn heavy(c: &mut Criterion) {
    let mut g = c.benchmark_group("1M peers in 100k torrents");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.bench_function("sweep, all expired", |b| {
        b.iter_batched(
            || {
                let t = tracker();
                fill(&t, 100_000, 1_000_000);
                t
            },
            |t| {
                let r = t.sweep(T0 + 1_000_000);
                assert_eq!(r.peers_removed, 1_000_000);
                t
            },
            BatchSize::PerIteration,
        )
    });
    let t = tracker();
    fill(&t, 100_000, 1_000_000);
    let g_noop = t.sweep(T0 + 1);
    assert_eq!(g_noop.peers_removed, 0);
    g.bench_function("sweep, none expired", |b| {
        b.iter(|| black_box(t.sweep(T0 + 1)))
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.json");
    g.bench_function("snapshot write", |b| {
        b.iter(|| black_box(snapshot::write(&t, &path, [0; 16]).unwrap()))
    });
    g.bench_function("snapshot load", |b| {
        b.iter_batched(
            tracker,
            |fresh| {
                let r = snapshot::load(&fresh, &path).unwrap();
                assert_eq!(r.peers, 1_000_000);
                fresh
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();

    // Announces keep being served while a snapshot is written: measure announce latency on
    // this thread while another thread writes snapshots back to back.
    let t = Arc::new(t);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (t, stop, path) = (Arc::clone(&t), Arc::clone(&stop), path.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                snapshot::write(&t, &path, [0; 16]).unwrap();
                n += 1;
            }
            n
        })
    };
    let mut sink = CompactPeers::default();
    let mut p = 0u32;
    let mut worst = Duration::ZERO;
    c.bench_function("announce while snapshots are written", |b| {
        b.iter(|| {
            p = (p + 7919) % 1_000_000;
            sink.clear();
            let start = Instant::now();
            black_box(t.announce(&req(p % 100_000, p, 1), T0, &mut sink).unwrap());
            worst = worst.max(start.elapsed());
        })
    });
    stop.store(true, Ordering::Relaxed);
    let writes = writer.join().unwrap();
    println!(
        "announce while snapshots are written: {writes} snapshots completed, worst single announce {worst:?}"
    );
}

fn limiter(c: &mut Criterion) {
    let mut g = c.benchmark_group("limiter");
    // Rates that never refuse, so that every call takes the full path (load, refill, CAS).
    let config = tracker_core::LimitsConfig {
        requests_per_sec: u32::MAX,
        burst: u32::MAX,
        ..Default::default()
    };
    let l = tracker_core::Limiter::new(&config);
    let one = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
    g.bench_function("check, one address", |b| {
        b.iter(|| black_box(l.check(black_box(one), T0)))
    });
    let mut n = 0u32;
    g.bench_function(
        "check, 1M addresses round robin (table misses, evictions)",
        |b| {
            b.iter(|| {
                n = (n + 1) % 1_000_000;
                black_box(l.check(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n)), T0))
            })
        },
    );
    g.finish();
}

criterion_group!(benches, announce, scrape, heavy, limiter);
criterion_main!(benches);
