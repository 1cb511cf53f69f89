//! Writes the seed corpora into `fuzz/seeds/<target>/` (committed; run again after a format
//! change). UDP datagrams come from tracker-udp's own encoders, snapshots from
//! `snapshot::write` on a small populated tracker, torrents from tests/fixtures.
//!
//!     cargo run --manifest-path fuzz/Cargo.toml --example make_seeds
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use tracker_core::{
    AnnounceRequest as CoreAnnounce, Clock, CompactPeers, CoreConfig, Event, IndexMeta, InfoHash,
    PasskeyEntry, PeerId, Tracker, snapshot,
};
use tracker_udp::ConnectionValidator;
use tracker_udp::protocol::{
    AnnounceRequest, ConnectionId, Options, TransactionId, encode_announce_request,
    encode_scrape_request, write_connect_request, write_error_response, write_scrape_response,
};

fn put(dir: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
}

fn with_flags(flags: u8, pkt: &[u8]) -> Vec<u8> {
    let mut v = vec![flags];
    v.extend_from_slice(pkt);
    v
}

/// UDP seeds: flag byte, control byte (repeats, limits, clock step), datagram.
fn udp_seed(flags: u8, ctl: u8, pkt: &[u8]) -> Vec<u8> {
    let mut v = vec![flags, ctl];
    v.extend_from_slice(pkt);
    v
}

fn announce(cid: ConnectionId, event: Event, numwant: i32, port: u16) -> AnnounceRequest<'static> {
    AnnounceRequest {
        connection_id: cid,
        transaction_id: TransactionId([7, 7, 7, 7]),
        info_hash: InfoHash([0xab; 20]),
        peer_id: PeerId(*b"-qB4650-abcdefghijkl"),
        downloaded: 0,
        left: 1000,
        uploaded: 0,
        event,
        ip: [0; 4],
        key: 0x1234,
        numwant,
        port,
        options: Options::default(),
    }
}

fn udp(dir: &Path) {
    let d = dir.join("udp_request");
    let mut b = [0u8; 16];
    write_connect_request(&mut b, TransactionId([1, 2, 3, 4]));
    put(&d, "connect", &udp_seed(0, 0, &b));
    put(&d, "connect_v6", &udp_seed(0b010, 0, &b));
    // Flag bit 0 makes the target stamp a valid connection id over bytes 0-8 anyway; this one is
    // valid too (the target's key and clock, source 192.0.2.9).
    let cid = ConnectionValidator::new([7; 16], 120).issue(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9)), 1_700_000_000);
    let a = encode_announce_request(&announce(cid, Event::Started, -1, 6881), b"");
    put(&d, "announce", &udp_seed(0x01, 0, &a));
    put(&d, "announce_peers_v4", &udp_seed(0x31, 0, &a));
    put(&d, "announce_peers_v6", &udp_seed(0x33, 0, &a));
    put(&d, "announce_mapped", &udp_seed(0x17, 0, &a));
    put(&d, "announce_bad_cid", &udp_seed(0x00, 0, &a));
    put(&d, "announce_truncated", &udp_seed(0x09, 0, &a));
    put(&d, "announce_small_out", &udp_seed(0x81, 0, &a));
    let a = encode_announce_request(&announce(cid, Event::Stopped, 0, 0), b"");
    put(&d, "announce_port0", &udp_seed(0x01, 0, &a));
    let a = encode_announce_request(
        &announce(cid, Event::Completed, 30, 51413),
        b"/abcdefghijklmnopqrstuvwxyz012345/announce?x=1",
    );
    put(&d, "announce_url", &udp_seed(0x21, 0, &a));
    let mut a = encode_announce_request(&announce(cid, Event::None, 5, 1), b"");
    a.extend_from_slice(&[1, 9, 2, 0xff, 0xff, 2, 4, b'/', b'a', b'n', b'n', 0, 2, 200]);
    put(&d, "announce_bep41_mixed", &udp_seed(0x01, 0, &a));
    let hashes: Vec<InfoHash> = (0..3u8).map(|i| InfoHash([0xab ^ i; 20])).collect();
    put(
        &d,
        "scrape3",
        &udp_seed(0x11, 0, &encode_scrape_request(cid, TransactionId([5; 4]), &hashes)),
    );
    put(
        &d,
        "scrape1",
        &udp_seed(0x01, 0, &encode_scrape_request(cid, TransactionId([5; 4]), &hashes[..1])),
    );
    put(
        &d,
        "scrape1_bad_cid",
        &udp_seed(0x00, 0, &encode_scrape_request(ConnectionId([0; 8]), TransactionId([5; 4]), &hashes[..1])),
    );
    let many: Vec<InfoHash> = (0..72u8).map(|i| InfoHash([i; 20])).collect();
    put(
        &d,
        "scrape72",
        &udp_seed(0x01, 0, &encode_scrape_request(cid, TransactionId([5; 4]), &many)),
    );
    // Replies, for parse_response.
    let mut out = [0u8; 128];
    let n = write_error_response(&mut out, TransactionId([1; 4]), "invalid or expired connection id");
    put(&d, "reply_error", &out[..n]);
    let n = write_scrape_response(&mut out, TransactionId([1; 4]), [(1, 2, 3), (4, 5, 6)]);
    put(&d, "reply_scrape", &out[..n]);
    // Repeated: a bad id until banned under strict limits; a valid announce as the clock runs
    // past the id's lifetime.
    let a = encode_announce_request(&announce(cid, Event::Started, -1, 6881), b"");
    put(&d, "repeat_bad_cid_strict", &udp_seed(0x00, 0x0f, &a));
    put(&d, "repeat_valid_clock", &udp_seed(0x01, 0xf7, &a));
    put(&d, "repeat_connect_strict", &udp_seed(0x00, 0x0f, &b));
}

fn http(dir: &Path) {
    let d = dir.join("http_query");
    // Bytes 0-1: max query length (u16 LE); byte 2: max scrape hashes; then the query.
    let q = |max: u16, ms: u8, s: &str| {
        let mut v = max.to_le_bytes().to_vec();
        v.push(ms);
        v.extend_from_slice(s.as_bytes());
        v
    };
    let ih = "%12%34%56%78%9a%bc%de%f1%23%45%67%89%ab%cd%ef%12%34%56%78%9A";
    put(&d, "announce_full", &q(4096, 74, &format!("info_hash={ih}&peer_id=-qB4650-abcdefghij%2B%2b&port=6881&uploaded=0&downloaded=0&left=10&event=started&numwant=30&compact=1&key=x&ip=1.2.3.4")));
    put(&d, "announce_min", &q(4096, 74, "info_hash=abcdefghij%2D%2eklm+o.q_&peer_id=AAAAAAAAAAAAAAAAAAAA&port=1&left=0"));
    put(&d, "announce_opts", &q(4096, 74, &format!("info_hash={ih}&peer_id=AAAAAAAAAAAAAAAAAAAA&port=65535&left=0&compact=0&no_peer_id=1&numwant=-5&event=&num_want=99999999999&ip=%3A%3A1")));
    put(&d, "announce_dup", &q(4096, 74, "info_hash=AAAAAAAAAAAAAAAAAAAA&info_hash=BBBBBBBBBBBBBBBBBBBB&peer_id=AAAAAAAAAAAAAAAAAAAA&port=1&left=0"));
    put(&d, "announce_too_long", &q(40, 74, "info_hash=AAAAAAAAAAAAAAAAAAAA&peer_id=AAAAAAAAAAAAAAAAAAAA&port=1&left=0"));
    put(&d, "scrape", &q(4096, 2, &format!("info_hash={ih}&info_hash=BBBBBBBBBBBBBBBBBBBB&foo=bar")));
    put(&d, "scrape_many", &q(4096, 2, &"info_hash=BBBBBBBBBBBBBBBBBBBB&".repeat(3)));
    put(&d, "path_announce", &q(0, 0, "/announce"));
    put(&d, "path_passkey", &q(0, 0, "/abcdefghijklmnopqrstuvwxyz012345/scrape?info_hash=x"));
    put(&d, "path_bad", &q(0, 0, "//announce"));
    put(&d, "heads", b"\x02\x05\x10GET /announce?info_hash=AAAAAAAAAAAAAAAAAAAA HTTP/1.1\r\nHost: t\r\n\r\nGET /scrape HTTP/1.1\r\nHost: t\r\n\r\nGET /a");
    put(&d, "heads_lf", b"\x01\x00\x00GET / HTTP/1.1\nHost: t\n\nGET / HTTP/1.1\r\n\r\n\r\n");
}

fn torrents(dir: &Path, fixtures: &Path) {
    for target in ["torrent_file", "admin_api"] {
        let d = dir.join(target);
        for e in fs::read_dir(fixtures).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "torrent") {
                let bytes = fs::read(&p).unwrap();
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                if target == "torrent_file" {
                    put(&d, &name, &bytes);
                } else {
                    // flags: torrents endpoint, content type x-bittorrent.
                    put(&d, &name, &with_flags(0b100, &bytes));
                }
            }
        }
    }
    let d = dir.join("torrent_file");
    let single = b"d6:lengthi12345e4:name5:hello12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaa7:privatei1ee";
    put(&d, "unit_single", &[b"d8:announce14:http://t/annce4:info".as_slice(), single, b"e"].concat());
    let multi = b"d5:filesld6:lengthi3e4:pathl1:aeed6:lengthi4e4:pathl1:beed4:attr1:p6:lengthi9e4:pathl1:ceee4:name3:dir12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae";
    put(&d, "unit_multi_pad", &[b"d4:info".as_slice(), multi, b"e"].concat());
    let hybrid = b"d9:file treed1:ad0:d6:lengthi5e11:pieces root32:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbeee6:lengthi5e12:meta versioni2e4:name1:a12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae";
    put(&d, "unit_hybrid", &[b"d4:info".as_slice(), hybrid, b"e"].concat());
    let v2 = b"d9:file treed1:ad0:d6:lengthi5e11:pieces root32:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbeee12:meta versioni2e4:name1:a12:piece lengthi16384ee";
    put(&d, "unit_v2", &[b"d4:info".as_slice(), v2, b"e"].concat());
    put(&d, "unit_not_canonical", b"d4:infod4:name1:a6:lengthi1e12:piece lengthi1e6:pieces20:aaaaaaaaaaaaaaaaaaaaee");
    put(&d, "nested_lists", &[b"d4:infod4:name1:a6:pieces0:1:xl".as_slice(), &[b'l'; 32], &[b'e'; 33], b"ee"].concat());
}

fn snapshots(dir: &Path) {
    let d = dir.join("snapshot_load");
    let t0 = 1_800_000_000;
    let t = Tracker::with_clock(CoreConfig { shards: 16, ..CoreConfig::default() }, Clock::manual(t0));
    let ann = |ih: u8, ip: IpAddr, port: u16, left: u64, event: Event| {
        let req = CoreAnnounce {
            info_hash: InfoHash([ih; 20]),
            peer_id: PeerId([port as u8; 20]),
            ip,
            port,
            event,
            left,
            numwant: None,
            max_peers: 200,
            both_families: true,
        };
        t.announce(&req, t0, &mut CompactPeers::default()).unwrap();
    };
    ann(1, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 6881, 0, Event::Started);
    ann(1, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 6882, 5, Event::Started);
    ann(1, IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)), 7000, 0, Event::Completed);
    ann(2, IpAddr::V4(Ipv4Addr::new(10, 0, 2, 1)), 1, 9, Event::None);
    let tmp = std::env::temp_dir().join(format!("make-seeds-{}", std::process::id()));
    fs::create_dir_all(&tmp).unwrap();
    let path = tmp.join("snap.json");
    snapshot::write(&t, &path, [0x11; 16]).unwrap();
    let swarms = fs::read(&path).unwrap();
    put(&d, "swarms", &swarms);
    t.index_add(
        InfoHash([5; 20]),
        IndexMeta { name: "Five".into(), size: 5, added_at: 1_700_000_000, v2: None, from_dir: false },
    )
    .unwrap();
    t.index_add(
        InfoHash([7; 20]),
        IndexMeta { name: "Hybrid".into(), size: 7, added_at: 1_700_000_002, v2: Some(InfoHash([0x77; 20])), from_dir: false },
    )
    .unwrap();
    t.access().allow(InfoHash([0xa1; 20]));
    t.access().deny(InfoHash([0xd1; 20]));
    t.access().add_passkey(PasskeyEntry {
        key: "abcdefghijklmnopqrstuvwxyz012345".parse().unwrap(),
        expires_at: Some(1_900_000_000),
        label: "alice".into(),
    });
    t.access().set_min_version(42, 3);
    snapshot::write(&t, &path, [0x11; 16]).unwrap();
    let full = fs::read(&path).unwrap();
    put(&d, "full", &full);
    put(&d, "full_truncated", &full[..full.len() / 2]);
    fs::remove_dir_all(&tmp).unwrap();
    put(&d, "empty", br#"{"format":1,"written_at_unix":1800000000,"torrents":[]}"#);
    put(&d, "future", br#"{"format":2,"written_at_unix":1,"torrents":[]}"#);
    put(&d, "expired_peer", br#"{"format":1,"written_at_unix":1799990000,"torrents":[{"info_hash":"0101010101010101010101010101010101010101","downloaded":3,"peers":[{"ip":"10.0.0.1","port":1,"peer_id":"0101010101010101010101010101010101010101","status":"seeding","expires_in":100},{"ip":"::ffff:10.0.0.2","port":2,"peer_id":"0202020202020202020202020202020202020202","status":"leeching","completed":true,"expires_in":20000}]}]}"#);
    put(&d, "index_only", br#"{"format":1,"written_at_unix":1800000000,"torrents":[{"info_hash":"0707070707070707070707070707070707070707","index":{"name":"x","size":1,"added_at":"2025-10-29T12:00:00Z","info_hash_v2":"7777777777777777777777777777777777777777"},"peers":[]}]}"#);
}

fn admin(dir: &Path) {
    let d = dir.join("admin_api");
    let h = "0123456789abcdef0123456789abcdef01234567";
    // byte 0: bit 0 passkeys, bits 1-2 content type (1 = application/json), bit 3 private,
    // bit 4 also list with the body as query.
    put(&d, "torrent_json", &with_flags(0b010, format!(r#"{{"info_hash":"{h}","name":"Example Torrent","size":734003200}}"#).as_bytes()));
    put(&d, "torrent_json_v2", &with_flags(0b000, format!(r#"{{"info_hash":"{h}","name":"Hybrid","size":1,"info_hash_v2":"{}"}}"#, "77".repeat(20)).as_bytes()));
    put(&d, "torrent_json_self_v2", &with_flags(0b1010, format!(r#"{{"info_hash":"{h}","name":"Self","size":1,"info_hash_v2":"{h}"}}"#).as_bytes()));
    put(&d, "torrent_bad_hash", &with_flags(0b010, br#"{"info_hash":"zz","name":"x","size":1}"#));
    put(&d, "torrent_unknown_field", &with_flags(0b110, format!(r#"{{"info_hash":"{h}","name":"x","size":1,"extra":1}}"#).as_bytes()));
    put(&d, "torrent_empty_name", &with_flags(0b010, format!(r#"{{"info_hash":"{h}","name":"  ","size":1}}"#).as_bytes()));
    put(&d, "torrent_bencode_junk", &with_flags(0b100, b"d3:fooi1ee"));
    put(&d, "list_query", &with_flags(0b1_0000, b"q=example&sort=added&page=1&per_page=10"));
    put(&d, "passkey_empty", &with_flags(0b1001, b""));
    put(&d, "passkey_full", &with_flags(0b1011, br#"{"key":"abcdefghijklmnopqrstuvwxyz012345","expires_in":60,"label":"alice"}"#));
    put(&d, "passkey_short", &with_flags(0b1001, br#"{"key":"short"}"#));
    put(&d, "passkey_expired", &with_flags(0b1001, br#"{"expires_in":0,"label":""}"#));
    put(&d, "passkey_huge_expiry", &with_flags(0b1001, br#"{"expires_in":18446744073709551615}"#));
}

fn main() {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let seeds = std::env::args().nth(1).map(PathBuf::from).unwrap_or_else(|| fuzz.join("seeds"));
    let fixtures = fuzz.join("../tests/fixtures");
    udp(&seeds);
    http(&seeds);
    torrents(&seeds, &fixtures);
    snapshots(&seeds);
    admin(&seeds);
    println!("seeds written to {}", seeds.display());
}
