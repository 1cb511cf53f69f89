//! Snapshot round trips, the crash-safe write, and refusals of bad or newer files.

use super::*;

/// The connection-id key the tests' snapshots keep.
const KEY: [u8; 16] = [0x4b; 16];
use crate::sink::CompactPeers;
use crate::swarm::{v4, v6};
use crate::{AnnounceRequest, Clock, CoreConfig, Event, IndexQuery};

const T0: u32 = 1_800_000_000;

fn tracker() -> Tracker {
    Tracker::with_clock(
        CoreConfig {
            swarm: crate::SwarmConfig {
                shards: 16,
                ..Default::default()
            },
            ..CoreConfig::default()
        },
        Clock::manual(T0),
    )
}

fn ann(t: &Tracker, ih: u8, ip: IpAddr, port: u16, left: u64, event: Event) {
    let req = AnnounceRequest {
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
    t.announce(&req, t.clock().now(), &mut CompactPeers::default())
        .unwrap();
}

fn populate(t: &Tracker) {
    for ih in 1..=30u8 {
        for port in 1..=(u16::from(ih) * 3) {
            ann(
                t,
                ih,
                v4(10, 0, ih, 1),
                port,
                u64::from(port % 3),
                Event::Started,
            );
        }
        ann(t, ih, v6(u16::from(ih)), 7000, 0, Event::Started);
        ann(t, ih, v4(10, 0, ih, 1), 2, 0, Event::Completed);
    }
    t.index_add(
        InfoHash([5; 20]),
        IndexMeta {
            name: "Five".into(),
            size: 5,
            added_at: 1_700_000_000,
            v2: None,
            from_dir: false,
        },
    )
    .unwrap();
    t.index_add(
        InfoHash([99; 20]),
        IndexMeta {
            name: "Only indexed".into(),
            size: 9,
            added_at: 1_700_000_001,
            v2: None,
            from_dir: false,
        },
    )
    .unwrap();
    t.index_add(
        InfoHash([7; 20]),
        IndexMeta {
            name: "Hybrid".into(),
            size: 7,
            added_at: 1_700_000_002,
            v2: Some(InfoHash([0x77; 20])),
            from_dir: false,
        },
    )
    .unwrap();
    t.access().allow(InfoHash([0xa1; 20]));
    t.access().deny(InfoHash([0xd1; 20]));
    t.access().add_passkey(crate::PasskeyEntry {
        key: "abcdefghijklmnopqrstuvwxyz012345".parse().unwrap(),
        expires_at: Some(1_900_000_000),
        label: "alice".into(),
    });
    t.access().set_min_version(42, 3);
}

/// Everything a client or operator can observe, in a comparable form.
fn observe(t: &Tracker) -> Vec<String> {
    let now = t.clock().now();
    let mut out = Vec::new();
    for ih in (1..=30u8).chain([99]) {
        let h = InfoHash([ih; 20]);
        out.push(format!("{h} {:?}", t.scrape_one(&h, now)));
        let mut peers = t.peers(&h, now).unwrap_or_default();
        peers.sort_by_key(|p| (p.ip, p.port));
        out.push(format!("{peers:?}"));
    }
    out.push(format!("{:?}", t.index_list(&IndexQuery::default(), now)));
    out.push(format!("{:?}", t.access().state()));
    out.push(format!(
        "alias {:?}",
        t.scrape_one(&InfoHash([0x77; 20]), now)
    ));
    out.push(format!("torrents {}", t.torrent_count()));
    out
}

#[test]
fn round_trip_keeps_swarms_counts_index_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snap.json");
    let a = tracker();
    populate(&a);
    let w = write(&a, &path, KEY).unwrap();
    assert_eq!(w.torrents, 31);
    assert!(!tmp_path(&path).exists());

    let b = tracker();
    let r = load(&b, &path).unwrap();
    assert_eq!((r.torrents, r.peers, r.dropped), (31, w.peers, 0));
    assert_eq!(r.connection_id_key, Some(KEY));
    assert_eq!(observe(&a), observe(&b));
}

#[test]
fn restore_drops_expired_peers_and_keeps_remaining_lifetime() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snap.json");
    let a = tracker();
    ann(&a, 1, v4(10, 0, 0, 1), 1, 5, Event::Started);
    a.clock().advance(1000);
    ann(&a, 1, v4(10, 0, 0, 2), 2, 5, Event::Started);
    write(&a, &path, KEY).unwrap();
    // Down for long enough that the first peer (timeout 2700 s, 1000 s old) expires.
    let b = tracker();
    b.clock().set(T0 + 1000 + 1800);
    let r = load(&b, &path).unwrap();
    assert_eq!((r.peers, r.dropped), (1, 1));
    let peers = b.peers(&InfoHash([1; 20]), b.clock().now()).unwrap();
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].port, 2);
    assert_eq!(peers[0].expires_in, 2700 - 1800);
}

#[test]
fn truncated_file_at_every_tenth_is_moved_aside_and_tracker_starts_empty() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.json");
    let a = tracker();
    populate(&a);
    write(&a, &good, KEY).unwrap();
    let bytes = fs::read(&good).unwrap();
    for tenth in 0..10 {
        let path = dir.path().join(format!("cut{tenth}.json"));
        fs::write(&path, &bytes[..bytes.len() * tenth / 10]).unwrap();
        let b = tracker();
        match restore(&b, &path).unwrap() {
            RestoreOutcome::MovedAside { moved_to, error } => {
                assert!(moved_to.exists(), "{tenth}: moved file must exist");
                assert!(!path.exists(), "{tenth}: original must be gone");
                assert!(error.to_string().contains("corrupt"), "{error}");
            }
            other => panic!("{tenth}0%: expected MovedAside, got {other:?}"),
        }
        assert_eq!(b.torrent_count(), 0, "{tenth}0%");
        assert_eq!(b.peer_counts(b.clock().now()).total(), 0);
    }
}

#[test]
fn a_failed_write_removes_its_temp_file_and_keeps_the_old_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snap.json");
    let a = tracker();
    populate(&a);
    write(&a, &path, KEY).unwrap();
    let before = std::fs::read(&path).unwrap();
    // The temp file is a link to /dev/full: every write fails with ENOSPC, as on a full disk.
    std::os::unix::fs::symlink("/dev/full", tmp_path(&path)).unwrap();
    ann(&a, 78, v4(10, 9, 9, 8), 1, 1, Event::Started);
    assert!(matches!(
        write(&a, &path, KEY),
        Err(SnapshotError::Io { .. })
    ));
    assert!(
        std::fs::symlink_metadata(tmp_path(&path)).is_err(),
        "temp file left behind"
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);
    // A rename that fails (the target became a directory) also cleans up.
    let dir_path = dir.path().join("is_a_dir");
    std::fs::create_dir(&dir_path).unwrap();
    std::fs::write(dir_path.join("x"), b"x").unwrap();
    assert!(write(&a, &dir_path, KEY).is_err());
    assert!(
        !tmp_path(&dir_path).exists(),
        "temp file left behind after a failed rename"
    );
}

#[test]
fn crash_between_write_and_rename_leaves_previous_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snap.json");
    let a = tracker();
    populate(&a);
    write(&a, &path, KEY).unwrap();
    let before = observe(&a);
    // More state, then a "crash" after the temp file is complete but before the rename.
    for port in 1..50 {
        ann(&a, 77, v4(10, 9, 9, 9), port, 1, Event::Started);
    }
    let (tmp, _) = write_temp(&a, &path, KEY).unwrap();
    assert!(tmp.exists());
    let b = tracker();
    assert!(matches!(
        restore(&b, &path).unwrap(),
        RestoreOutcome::Loaded(LoadReport {
            connection_id_key: Some(KEY),
            ..
        })
    ));
    assert_eq!(observe(&b), before);
    // The next write replaces the stale temp file.
    write(&a, &path, KEY).unwrap();
    assert!(!tmp.exists());
}

#[test]
fn concurrent_writers_take_turns_on_the_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snap.json");
    let a = tracker();
    populate(&a);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..10 {
                    write(&a, &path, KEY).unwrap();
                }
            });
        }
    });
    let b = tracker();
    assert_eq!(load(&b, &path).unwrap().connection_id_key, Some(KEY));
    assert_eq!(observe(&a), observe(&b));
}

#[test]
fn future_version_is_refused_and_left_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snap.json");
    fs::write(&path, br#"{"format":2,"written_at_unix":1,"torrents":[]}"#).unwrap();
    let t = tracker();
    let err = restore(&t, &path).unwrap_err();
    assert!(
        matches!(err, SnapshotError::FutureVersion { found: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("format version 2"));
    assert!(path.exists());
}

#[test]
fn missing_file_is_a_clean_start() {
    let dir = tempfile::tempdir().unwrap();
    let t = tracker();
    assert!(matches!(
        restore(&t, &dir.path().join("none.json")).unwrap(),
        RestoreOutcome::Missing
    ));
}
