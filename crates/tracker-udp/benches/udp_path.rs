//! The per-packet cost of the UDP hot path without the sockets: parse + connection-id check +
//! announce (one shard lock, 30 peers selected) + reply written into a preallocated buffer.
//!
//! The tracker is pre-filled with 10,000 torrents of 20 peers each (200,000 IPv4 peers); the
//! announces come from a fixed pool of 50,000 (IP, port) pairs over those torrents, so after the
//! first pass every announce updates a peer in place (the steady state of a busy tracker).
//!
//! Run: `cargo bench -p tracker-udp --bench udp_path` (add `-- announce` to pick one).
//!
//! The `udp_batch_1m` group is the socket worker's inner loop at the scale of the side-by-side
//! benchmark: aquatic_udp_load_test's mix (1M torrents, 2M peers, torrents drawn with its
//! weights, so a few thousand swarms are large and most are tiny), batches of 64 announces
//! answered one after another, with and without the worker's prefetch of the datagrams
//! `PREFETCH_AHEAD` ahead. Filling takes a few seconds and about 130 MB, and happens even when a
//! filter selects only the first group (`BATCH_TORRENTS`, `BATCH_PEERS` and `BATCH_NUMWANT`,
//! default 30, change the scale and the peers asked for).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use rand::{Rng, SeedableRng};
use tracker_core::{
    AnnounceRequest as CoreAnnounce, Clock, CompactPeers, CoreConfig, Event, InfoHash, PeerId,
    Tracker,
};
use tracker_udp::handler::PREFETCH_AHEAD;
use tracker_udp::protocol::{self, AnnounceRequest, ConnectionId, Options, TransactionId};
use tracker_udp::{ConnectionValidator, Handler};

const T0: u32 = 1_800_000_000;
const TORRENTS: u32 = 10_000;
const KEY: [u8; 16] = [42; 16];

fn info_hash(t: u32) -> InfoHash {
    let mut ih = [0x5a; 20];
    ih[..4].copy_from_slice(&t.to_le_bytes());
    InfoHash(ih)
}

fn source(i: u32) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (i >> 4))),
        1024 + (i & 0xf) as u16,
    )
}

/// The limiter on, at rates that never refuse: every packet pays for its check, and none is
/// dropped (the clock stands still here, so default rates would soon drop every packet of a
/// source address that the bench repeats).
fn config() -> CoreConfig {
    CoreConfig {
        limits: tracker_core::LimitsConfig {
            requests_per_sec: u32::MAX,
            burst: u32::MAX,
            ..Default::default()
        },
        ..CoreConfig::default()
    }
}

fn filled() -> Arc<Tracker> {
    let t = Tracker::with_clock(config(), Clock::manual(T0));
    let mut sink = CompactPeers::default();
    for torrent in 0..TORRENTS {
        for p in 0..20u32 {
            let n = 1_000_000 + torrent * 20 + p;
            let src = source(n);
            let req = CoreAnnounce {
                info_hash: info_hash(torrent),
                peer_id: PeerId([p as u8; 20]),
                ip: src.ip(),
                port: src.port(),
                event: Event::Started,
                left: u64::from(p % 3),
                numwant: Some(0),
                max_peers: 200,
                both_families: false,
            };
            sink.clear();
            let _ = t.announce(&req, T0, &mut sink);
        }
    }
    Arc::new(t)
}

fn bench(c: &mut Criterion) {
    let tracker = filled();
    let validator = ConnectionValidator::new(KEY, 120);
    let mut handler = Handler::new(Arc::clone(&tracker), validator.clone(), 200, 66);
    let mut out = vec![0u8; handler.reply_capacity()];

    // 50,000 announce packets, each from its own source, with a valid connection id.
    let packets: Vec<(SocketAddr, Vec<u8>)> = (0..50_000u32)
        .map(|i| {
            let src = source(i);
            let req = AnnounceRequest {
                connection_id: validator.issue(src.ip(), T0),
                transaction_id: TransactionId(i.to_be_bytes()),
                info_hash: info_hash(i.wrapping_mul(2_654_435_761) % TORRENTS),
                peer_id: PeerId([7; 20]),
                downloaded: 0,
                left: u64::from(i % 2),
                uploaded: 0,
                event: Event::None,
                ip: [0; 4],
                key: i,
                numwant: 30,
                port: src.port(),
                options: Options::default(),
            };
            (src, protocol::encode_announce_request(&req, b""))
        })
        .collect();

    let mut g = c.benchmark_group("udp_packet");
    g.throughput(Throughput::Elements(1));
    let mut i = 0;
    g.bench_function("announce_v4_numwant30", |b| {
        b.iter(|| {
            let (src, pkt) = &packets[i % packets.len()];
            i += 1;
            black_box(handler.handle(black_box(pkt), false, *src, T0, &mut out))
        })
    });
    let mut connect = [0u8; 16];
    protocol::write_connect_request(&mut connect, TransactionId([1; 4]));
    g.bench_function("connect", |b| {
        b.iter(|| black_box(handler.handle(black_box(&connect), false, source(1), T0, &mut out)))
    });
    let scrape = protocol::encode_scrape_request(
        validator.issue(source(1).ip(), T0),
        TransactionId([2; 4]),
        &[info_hash(1)],
    );
    g.bench_function("scrape_1", |b| {
        b.iter(|| black_box(handler.handle(black_box(&scrape), false, source(1), T0, &mut out)))
    });
    let bad = protocol::encode_scrape_request(
        ConnectionId([0; 8]),
        TransactionId([2; 4]),
        &[info_hash(1)],
    );
    g.bench_function("bad_connection_id", |b| {
        b.iter(|| black_box(handler.handle(black_box(&bad), false, source(1), T0, &mut out)))
    });
    g.finish();
}

/// One simulated client of the load test: its torrent and address.
#[derive(Clone, Copy)]
struct SimPeer {
    torrent: u32,
    ip: u32,
    port: u16,
}

fn env_or(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const BATCH: usize = 64;

fn bench_batch(c: &mut Criterion) {
    let torrents = env_or("BATCH_TORRENTS", 1_000_000);
    let peers = env_or("BATCH_PEERS", 2_000_000);
    let numwant = env_or("BATCH_NUMWANT", 30) as i32;
    // aquatic_udp_load_test 0.9.0's torrent weights: floor + exp(6.5 - 500 i / torrents).
    let floor = f64::from(torrents) / f64::from(peers);
    let weights =
        (0..torrents).map(|i| floor + (6.5 - 500.0 * f64::from(i) / f64::from(torrents)).exp());
    let dist = WeightedIndex::new(weights).expect("weights");
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    let sim: Vec<SimPeer> = (0..peers)
        .map(|_| SimPeer {
            torrent: dist.sample(&mut rng) as u32,
            ip: 0x7f00_0001 + rng.random_range(0..4u32),
            port: rng.random_range(1..=u16::MAX),
        })
        .collect();
    let tracker = Arc::new(Tracker::with_clock(config(), Clock::manual(T0)));
    let validator = ConnectionValidator::new(KEY, 120);
    let mut handler = Handler::new(Arc::clone(&tracker), validator.clone(), 200, 66);
    let mut out = vec![0u8; handler.reply_capacity() * BATCH];
    let cap = handler.reply_capacity();
    let packet = |p: &SimPeer, seeder: bool| {
        let src = SocketAddr::new(IpAddr::V4(Ipv4Addr::from(p.ip)), 40_000);
        let req = AnnounceRequest {
            connection_id: validator.issue(src.ip(), T0),
            transaction_id: TransactionId([1; 4]),
            info_hash: info_hash(p.torrent),
            peer_id: PeerId([0; 20]),
            downloaded: 50,
            left: if seeder { 0 } else { 50 },
            uploaded: 50,
            event: if seeder {
                Event::Completed
            } else {
                Event::Started
            },
            ip: [0; 4],
            key: 0,
            numwant,
            port: p.port,
            options: Options::default(),
        };
        (src, protocol::encode_announce_request(&req, b""))
    };
    // Fill: every simulated peer announces once.
    for p in &sim {
        let (src, pkt) = packet(p, rng.random_bool(0.75));
        handler.handle(&pkt, false, src, T0, &mut out[..cap]);
    }

    let mut g = c.benchmark_group("udp_batch_1m");
    g.throughput(Throughput::Elements(BATCH as u64));
    for prefetch in [false, true] {
        let name = if prefetch { "prefetch" } else { "no_prefetch" };
        let mut next = 0usize;
        g.bench_function(name, |b| {
            b.iter_batched_ref(
                || {
                    (0..BATCH)
                        .map(|_| {
                            next = (next + 1) % sim.len();
                            packet(&sim[next], next % 4 != 0)
                        })
                        .collect::<Vec<_>>()
                },
                |batch| {
                    if prefetch {
                        for (_, pkt) in batch.iter().take(PREFETCH_AHEAD) {
                            handler.prefetch(pkt);
                        }
                    }
                    let mut total = 0;
                    for i in 0..batch.len() {
                        if prefetch && let Some((_, pkt)) = batch.get(i + PREFETCH_AHEAD) {
                            handler.prefetch(pkt);
                        }
                        let (src, pkt) = &batch[i];
                        let o = &mut out[i * cap..(i + 1) * cap];
                        total += handler.handle(pkt, false, *src, T0, o);
                    }
                    black_box(total)
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench, bench_batch);
criterion_main!(benches);
