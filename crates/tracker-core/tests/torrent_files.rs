//! `.torrent` parsing against files made by real tools (libtorrent's `create_torrent` and
//! `transmission-create`): see `tests/fixtures/make_torrents.py` for the command that made them
//! and `tests/fixtures/expected.json` for the hashes libtorrent itself computed.

use std::path::PathBuf;

use tracker_core::torrent_file::{parse, truncate};

#[derive(serde::Deserialize)]
struct Expected {
    file: String,
    made_by: String,
    name: String,
    size: u64,
    v1: Option<String>,
    v2: Option<String>,
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

#[test]
fn hashes_names_and_sizes_match_what_libtorrent_computed() {
    let expected: Vec<Expected> =
        serde_json::from_slice(&std::fs::read(fixtures().join("expected.json")).unwrap()).unwrap();
    assert_eq!(expected.len(), 5);
    for e in expected {
        let bytes = std::fs::read(fixtures().join(&e.file)).unwrap();
        let t = parse(&bytes).unwrap_or_else(|err| panic!("{} ({}): {err}", e.file, e.made_by));
        assert_eq!(t.name, e.name, "{}", e.file);
        assert_eq!(t.size, e.size, "{}", e.file);
        assert_eq!(t.v1.map(|h| h.to_string()), e.v1, "{}", e.file);
        assert_eq!(t.v2.map(hex::encode), e.v2, "{}", e.file);
        assert!(t.private, "{}: made with the private flag", e.file);
        match (&e.v1, &e.v2) {
            (Some(v1), Some(v2)) => {
                assert_eq!(t.primary().to_string(), *v1);
                assert_eq!(t.linked_v2().unwrap().to_string(), v2[..40]);
            }
            (None, Some(v2)) => assert_eq!(t.primary(), truncate(&t.v2.unwrap()), "{v2}"),
            _ => assert_eq!(t.linked_v2(), None),
        }
    }
}
