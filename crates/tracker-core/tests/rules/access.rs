//! The access rules as announces meet them: whitelist, blacklist, hybrid aliases, the index
//! directory, client prefixes.

use super::*;

#[test]
fn whitelist_refuses_unlisted_torrents_and_admits_indexed_and_allowed_ones() {
    let t = tracker_with(CoreConfig {
        access: AccessConfig {
            mode: AccessMode::Whitelist,
            ..Default::default()
        },
        ..CoreConfig::default()
    });
    let err = t.announce(
        &req(1, ip4(1), 1000, 5, Event::Started),
        T0,
        &mut CompactPeers::default(),
    );
    assert_eq!(err.unwrap_err().to_string(), "unregistered torrent");
    let err = t.announce(
        &req(1, ip4(1), 1000, 5, Event::Stopped),
        T0,
        &mut CompactPeers::default(),
    );
    assert!(matches!(err, Err(AnnounceError::Access(_))));
    assert_eq!(t.torrent_count(), 0, "a refused announce stores nothing");
    t.index_add(
        InfoHash([1; 20]),
        IndexMeta {
            name: "one".into(),
            ..Default::default()
        },
    )
    .unwrap();
    announce(&t, &req(1, ip4(1), 1000, 5, Event::Started));
    t.access().allow(InfoHash([2; 20]));
    announce(&t, &req(2, ip4(1), 1000, 5, Event::Started));
    assert_eq!(counts(&t, 2).leechers, 1);
    // Unlisting keeps the swarm but refuses announces and scrapes it as unknown.
    t.access().unallow(&InfoHash([2; 20]));
    assert_eq!(counts(&t, 2), ScrapeCounts::default());
    assert!(
        t.announce(
            &req(2, ip4(1), 1000, 5, Event::None),
            T0,
            &mut CompactPeers::default()
        )
        .is_err()
    );
}

#[test]
fn blacklist_refuses_listed_torrents() {
    let t = tracker_with(CoreConfig {
        access: AccessConfig {
            mode: AccessMode::Blacklist,
            ..Default::default()
        },
        ..CoreConfig::default()
    });
    announce(&t, &req(1, ip4(1), 1000, 5, Event::Started));
    t.access().deny(InfoHash([1; 20]));
    let err = t.announce(
        &req(1, ip4(2), 1000, 5, Event::Started),
        T0,
        &mut CompactPeers::default(),
    );
    assert_eq!(err.unwrap_err().to_string(), "torrent is blacklisted");
    assert_eq!(counts(&t, 1), ScrapeCounts::default());
    announce(&t, &req(3, ip4(1), 1000, 5, Event::Started));
}

#[test]
fn a_linked_v2_hash_is_the_same_torrent() {
    let t = tracker();
    let v1 = InfoHash([1; 20]);
    let v2 = InfoHash([0x22; 20]);
    t.index_add(
        v1,
        IndexMeta {
            name: "hybrid".into(),
            v2: Some(v2),
            ..Default::default()
        },
    )
    .unwrap();
    announce(&t, &req(1, ip4(1), 1000, 0, Event::Started));
    // The same client announcing the v2 hash is the same peer, not a second one.
    let (out, sink) = announce(&t, &req(0x22, ip4(1), 1000, 0, Event::None));
    assert_eq!((out.seeders, out.leechers), (1, 0));
    assert!(sink.addrs().is_empty());
    announce(&t, &req(0x22, ip4(2), 1000, 5, Event::Started));
    assert_eq!(counts(&t, 1), counts(&t, 0x22));
    assert_eq!(counts(&t, 1).leechers, 1);
    assert_eq!(t.index_get(&v2, T0).unwrap().summary.info_hash, v1);
    assert_eq!(
        t.index_add(
            InfoHash([9; 20]),
            IndexMeta {
                name: "x".into(),
                v2: Some(v2),
                ..Default::default()
            }
        ),
        Err(IndexError::Duplicate(v2))
    );
    assert_eq!(
        t.index_add(
            v2,
            IndexMeta {
                name: "x".into(),
                ..Default::default()
            }
        ),
        Err(IndexError::Duplicate(v2))
    );
    t.index_remove(&v2).unwrap();
    assert!(!t.is_indexed(&v1));
    assert_eq!(
        counts(&t, 0x22),
        ScrapeCounts::default(),
        "the link goes with the entry"
    );
}

#[test]
fn index_dir_is_synced_on_reload_and_api_entries_are_left_alone() {
    let fixtures =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    let dir = tempfile::tempdir().unwrap();
    for f in ["v1_single.torrent", "hybrid.torrent"] {
        std::fs::copy(fixtures.join(f), dir.path().join(f)).unwrap();
    }
    let t = tracker_with(CoreConfig {
        access: AccessConfig {
            mode: AccessMode::Whitelist,
            index_dir: dir.path().to_str().unwrap().to_owned(),
            ..Default::default()
        },
        ..CoreConfig::default()
    });
    let r = t.reload_files().unwrap();
    assert_eq!(
        (r.index_added, r.index_removed, r.index_errors.len()),
        (2, 0, 0)
    );
    let single: InfoHash = "83ebfd62bc046a31149def00299b41ea02fa228f".parse().unwrap();
    let mut a = req(0, ip4(1), 1000, 5, Event::Started);
    a.info_hash = single;
    t.announce(&a, T0, &mut CompactPeers::default()).unwrap();
    t.index_add(
        InfoHash([9; 20]),
        IndexMeta {
            name: "api".into(),
            ..Default::default()
        },
    )
    .unwrap();
    // Unchanged directory: nothing happens.
    assert_eq!(t.reload_files().unwrap().index_added, 0);
    // A file goes, a broken one arrives.
    std::fs::remove_file(dir.path().join("v1_single.torrent")).unwrap();
    std::fs::write(dir.path().join("broken.torrent"), b"not bencode").unwrap();
    let r = t.reload_files().unwrap();
    assert_eq!((r.index_added, r.index_removed), (0, 1));
    assert!(
        r.index_errors[0].contains("broken.torrent"),
        "{:?}",
        r.index_errors
    );
    assert!(
        t.announce(&a, T0, &mut CompactPeers::default()).is_err(),
        "no longer whitelisted"
    );
    assert_eq!(t.scrape_one(&single, T0), ScrapeCounts::default());
    assert!(t.is_indexed(&InfoHash([9; 20])), "API entries stay");
    assert!(t.is_indexed(&"c25589e77db1a4393553febde86534b46f030251".parse().unwrap()));
    // An unreadable directory is an error, not an empty index.
    let gone = tracker_with(CoreConfig {
        access: AccessConfig {
            index_dir: dir.path().join("missing").to_str().unwrap().to_owned(),
            ..Default::default()
        },
        ..CoreConfig::default()
    });
    assert!(gone.reload_files().is_err());
}

#[test]
fn a_denied_client_is_refused_before_anything_is_stored() {
    let t = tracker_with(CoreConfig {
        access: AccessConfig {
            client_deny: vec!["-UT2".into()],
            ..Default::default()
        },
        ..CoreConfig::default()
    });
    let mut r = req(1, ip4(1), 1000, 5, Event::Started);
    r.peer_id = PeerId(*b"-UT2210-utorrent-old");
    let err = t
        .announce(&r, T0, &mut CompactPeers::default())
        .unwrap_err();
    assert_eq!(err.to_string(), "client not allowed");
    assert_eq!(t.torrent_count(), 0);
    r.peer_id = PeerId(*b"-UT3550-utorrent-new");
    announce(&t, &r);
    assert_eq!(counts(&t, 1).leechers, 1);
}
