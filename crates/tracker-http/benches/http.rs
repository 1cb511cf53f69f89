//! Query parsing and reply encoding, the CPU work of one HTTP announce outside hyper and the
//! swarm store, and the build of a full scrape at 1M torrents (`TORRENTS` to change it; its
//! sizes are printed). `cargo bench -p tracker-http`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tracker_core::{InfoHash, ScrapeCounts};
use tracker_http::bencode::{self, AnnounceReply, Peers};
use tracker_http::query;

/// What `announce.lua` sends (every info_hash byte %-encoded, plain peer_id).
const ANNOUNCE: &[u8] = b"info_hash=%9A%3B%11%C0%FF%00%12%7E%80%AB%CD%EF%01%23%45%67%89%AB%CD%EF\
&peer_id=-WR0001-000000012345&port=1056&uploaded=0&downloaded=0&left=100&compact=1&numwant=30";

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("query");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse_announce", |b| {
        b.iter(|| query::parse_announce(black_box(ANNOUNCE), 8192))
    });
    let scrape: Vec<u8> = (0..74)
        .map(|i| {
            format!("info_hash=%{i:02X}%3B%11%C0%FF%00%12%7E%80%AB%CD%EF%01%23%45%67%89%AB%CD%EF")
        })
        .collect::<Vec<_>>()
        .join("&")
        .into_bytes();
    let mut out = Vec::with_capacity(74);
    g.bench_function("parse_scrape_74", |b| {
        b.iter(|| query::parse_scrape(black_box(&scrape), 8192, 74, &mut out))
    });
    g.finish();
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(1));
    let v4: Vec<u8> = (0..30u8).flat_map(|i| [10, 0, 0, i, 0x1a, 0xe1]).collect();
    let ids: Vec<[u8; 20]> = (0..30u8).map(|i| [i; 20]).collect();
    let reply = |peers| AnnounceReply {
        complete: 75,
        incomplete: 25,
        downloaded: 12,
        interval: 1834,
        min_interval: 900,
        external_ip: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
        peers,
    };
    let mut buf = BytesMut::with_capacity(4096);
    g.bench_function("announce_compact_30", |b| {
        b.iter(|| {
            let r = reply(Peers::Compact {
                v4: black_box(&v4),
                v6: &[],
            });
            buf.reserve(bencode::announce_len(&r));
            bencode::announce(&mut buf, &r);
            black_box(buf.split().freeze())
        })
    });
    g.bench_function("announce_dicts_30", |b| {
        b.iter(|| {
            let r = reply(Peers::Dicts {
                v4: black_box(&v4),
                v6: &[],
                ids_v4: &ids,
                ids_v6: &[],
                with_ids: true,
            });
            buf.reserve(bencode::announce_len(&r));
            bencode::announce(&mut buf, &r);
            black_box(buf.split().freeze())
        })
    });
    let hashes: Vec<(InfoHash, ScrapeCounts)> = (0..74u8)
        .map(|i| {
            (
                InfoHash([i; 20]),
                ScrapeCounts {
                    seeders: 9,
                    leechers: 3,
                    downloaded: 100,
                },
            )
        })
        .collect();
    g.bench_function("scrape_74", |b| {
        b.iter(|| {
            buf.reserve(bencode::scrape_len(hashes.len()));
            bencode::scrape(&mut buf, hashes.iter().map(|(h, c)| (h, *c)));
            black_box(buf.split().freeze())
        })
    });
    g.finish();
}

/// One full-scrape build (walk, sort, encode, gzip) over a tracker of `TORRENTS` torrents
/// (default 1,000,000), one peer each.
fn full_scrape(c: &mut Criterion) {
    use tracker_core::{AnnounceRequest, Clock, CompactPeers, CoreConfig, Event, PeerId, Tracker};
    let n: u32 = std::env::var("TORRENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let now = 1_800_000_000;
    let t = Tracker::with_clock(CoreConfig::default(), Clock::manual(now));
    let mut sink = CompactPeers::default();
    for i in 0..n {
        // Hashes look random, as real ones do (and do not compress).
        let mut h = [0u8; 20];
        let mut x = u64::from(i).wrapping_add(0x9e37_79b9_7f4a_7c15);
        for chunk in h.chunks_mut(8) {
            x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            x ^= x >> 31;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        let req = AnnounceRequest {
            info_hash: InfoHash(h),
            peer_id: PeerId([7; 20]),
            ip: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (i & 0xff_ffff))),
            port: 6881,
            event: Event::Started,
            left: u64::from(i % 3),
            numwant: Some(0),
            max_peers: 50,
            both_families: true,
        };
        let _ = t.announce(&req, now, &mut sink);
    }
    let b = tracker_http::full_scrape::Bodies::build(&t, now);
    eprintln!(
        "full scrape of {} torrents: {} bytes plain ({:.1} per torrent), {} gzip ({:.1} per torrent)",
        b.torrents,
        b.plain.len(),
        b.plain.len() as f64 / b.torrents.max(1) as f64,
        b.gzip.len(),
        b.gzip.len() as f64 / b.torrents.max(1) as f64
    );
    let mut g = c.benchmark_group("full_scrape");
    g.sample_size(10);
    g.throughput(Throughput::Elements(u64::from(n)));
    g.bench_function("build", |bch| {
        bch.iter(|| black_box(tracker_http::full_scrape::Bodies::build(&t, now)))
    });
    g.finish();
}

criterion_group!(benches, parse, encode, full_scrape);
criterion_main!(benches);
