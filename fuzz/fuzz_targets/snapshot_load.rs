//! Snapshot loading.
//!
//! The input is written to a file in a per-process directory under /dev/shm and loaded into a
//! fresh `Tracker`. Properties:
//! - `load` never panics (whatever the bytes).
//! - Round trip: when it loads, `snapshot::write` then `load` into a second fresh tracker gives
//!   the same observable state: per info hash (every 40-hex string of the input and of the
//!   written file, which covers every torrent and every v2 alias) the scrape counts, the sorted
//!   peers, the index entry and whether it is indexed; the index listing; torrent and peer
//!   counts; the connection-id key; the access state. The second load reports what the write
//!   reported (torrents, peers) and drops nothing.
#![no_main]

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use tracker_core::{Clock, CoreConfig, IndexQuery, InfoHash, LimitsConfig, Tracker, snapshot};

const T0: u32 = 1_800_000_000;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let d = base.join(format!("mini-torrust-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("create the fuzz temp dir");
        d
    })
}

fn tracker() -> Tracker {
    Tracker::with_clock(
        CoreConfig {
            swarm: tracker_core::SwarmConfig {
                shards: 16,
                ..Default::default()
            },
            // The smallest abuse table: it is allocated per tracker, two trackers per input.
            limits: LimitsConfig {
                table_entries: 1024,
                ..LimitsConfig::default()
            },
            ..CoreConfig::default()
        },
        Clock::manual(T0),
    )
}

/// Collects every string (keys included) of a JSON document, at any depth.
struct Strings<'a>(&'a mut Vec<String>);

impl<'de> DeserializeSeed<'de> for Strings<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strings<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, s: &str) -> Result<(), E> {
        self.0.push(s.to_owned());
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Strings(&mut *self.0))?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key_seed(Strings(&mut *self.0))?.is_some() {
            map.next_value_seed(Strings(&mut *self.0))?;
        }
        Ok(())
    }
}

/// Info hashes among the strings of a JSON document. serde_json does not check the strings of
/// values the loader ignores (unknown keys), so a loadable file may have invalid UTF-8 or lone
/// surrogates there: then the lossy UTF-8 form is tried, and failing that, nothing is taken
/// (the written file, read too, still names every torrent that loaded).
fn hashes_in(json: &[u8], out: &mut BTreeSet<InfoHash>) {
    let collect = |bytes: &[u8]| {
        let mut strings = Vec::new();
        let mut de = serde_json::Deserializer::from_slice(bytes);
        Strings(&mut strings)
            .deserialize(&mut de)
            .and_then(|()| de.end())
            .ok()
            .map(|()| strings)
    };
    let strings = collect(json)
        .or_else(|| collect(String::from_utf8_lossy(json).as_bytes()))
        .unwrap_or_default();
    for s in strings {
        if let Ok(h) = s.parse() {
            out.insert(h);
        }
    }
}

fn observe(t: &Tracker, hashes: &BTreeSet<InfoHash>) -> Vec<String> {
    let now = t.clock().now();
    let mut out = Vec::new();
    for h in hashes {
        out.push(format!("{h} resolves to {}", t.resolve(h)));
        out.push(format!("{h} {:?}", t.scrape_one(h, now)));
        let peers = t.peers(h, now).map(|mut p| {
            p.sort_by(|a, b| {
                (a.ip, a.port, a.peer_id.map(|p| p.0)).cmp(&(b.ip, b.port, b.peer_id.map(|p| p.0)))
            });
            p
        });
        out.push(format!("{h} peers {peers:?}"));
        out.push(format!("{h} indexed {}", t.is_indexed(h)));
        let detail = t.index_get(h, now).map(|mut d| {
            d.peers.sort_by(|a, b| {
                (a.ip, a.port, a.peer_id.map(|p| p.0)).cmp(&(b.ip, b.port, b.peer_id.map(|p| p.0)))
            });
            d
        });
        out.push(format!("{h} detail {detail:?}"));
    }
    let all = IndexQuery {
        per_page: usize::MAX,
        ..IndexQuery::default()
    };
    out.push(format!("index {:?}", t.index_list(&all, now)));
    out.push(format!("torrents {}", t.torrent_count()));
    out.push(format!("peer counts {:?}", t.peer_counts(now)));
    out.push(format!("access {:?}", t.access().state()));
    out
}

fuzz_target!(|data: &[u8]| {
    let d = dir();
    let input = d.join("in.json");
    let written = d.join("out.json");
    std::fs::write(&input, data).expect("write the input file");
    let a = tracker();
    let loaded = snapshot::load(&a, &input);
    if let Ok(report) = loaded {
        let mut hashes = BTreeSet::new();
        hashes_in(data, &mut hashes);
        // The key the file kept (the UDP crate's) is written back as it was read.
        let key = report.connection_id_key.unwrap_or([0; 16]);
        let w = snapshot::write(&a, &written, key).expect("write a loaded snapshot");
        let bytes = std::fs::read(&written).expect("read the written snapshot");
        hashes_in(&bytes, &mut hashes);
        assert!(
            serde_json::from_slice::<serde_json::Value>(&bytes).is_ok(),
            "the written snapshot is not JSON"
        );
        let now = a.clock().now();
        assert_eq!(w.peers as u64, a.peer_counts(now).total(), "peers written");

        let b = tracker();
        let r = snapshot::load(&b, &written).unwrap_or_else(|e| {
            panic!(
                "our own snapshot does not load: {e}\n{}",
                String::from_utf8_lossy(&bytes)
            )
        });
        assert_eq!(
            (r.torrents, r.peers, r.dropped),
            (w.torrents, w.peers, 0),
            "second load vs write report"
        );
        assert_eq!(
            r.connection_id_key,
            Some(key),
            "the connection-id key round trip"
        );
        let (oa, ob) = (observe(&a, &hashes), observe(&b, &hashes));
        if oa != ob {
            let diff: Vec<_> = oa.iter().zip(&ob).filter(|(x, y)| x != y).take(4).collect();
            panic!(
                "state differs after write + load:\n{diff:#?}\nwritten file:\n{}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }
    let _ = std::fs::remove_file(&input);
    let _ = std::fs::remove_file(&written);
});
