//! Query parsing and reply encoding, the CPU work of one HTTP announce outside hyper and the
//! swarm store. `cargo bench -p tracker-http`.

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

criterion_group!(benches, parse, encode);
criterion_main!(benches);
