//! Announces over HTTP: compact and dictionary replies, numwant, families, events, counts.

use super::*;

#[tokio::test]
async fn compact_reply_peers6_and_external_ip() {
    let tracker = tracker();
    let s4 = v4(&tracker).await;
    let s6 = Server::start("[::1]:0", &tracker, HttpConfig::default()).await;
    let h = ih(1);
    let mut c4 = Client::connect(s4.addr).await;
    // Two IPv4 seeders.
    for port in [7001u16, 7002] {
        let v = c4
            .get(&announce(&h, port, port, 0, "&event=started"))
            .await
            .value();
        assert_eq!(bytes(&v, "external ip"), &[127, 0, 0, 1]);
    }
    let mut v6_ports = BTreeSet::new();
    if let Some(s6) = &s6 {
        let mut c6 = Client::connect(s6.addr).await;
        let v = c6.get(&announce(&h, 8001, 8001, 0, "")).await.value();
        assert_eq!(
            bytes(&v, "external ip"),
            &std::net::Ipv6Addr::LOCALHOST.octets()
        );
        assert_eq!(bytes(&v, "peers6"), b"", "a seeder gets no seeders");
        v6_ports.insert(8001);
    }
    // An IPv4 leecher gets every seeder, v4 in `peers`, v6 in `peers6`.
    let v = c4
        .get(&announce(&h, 9000, 9000, 100, "&compact=1"))
        .await
        .value();
    assert_eq!(int(&v, "complete"), 2 + v6_ports.len() as i64);
    assert_eq!(int(&v, "incomplete"), 1);
    assert_eq!(int(&v, "downloaded"), 0);
    let interval = int(&v, "interval");
    assert!(
        (1620..=1980).contains(&interval),
        "interval {interval} is 1800 +- 10 %"
    );
    assert_eq!(int(&v, "min interval"), 900);
    assert_eq!(
        compact_ports_v4(bytes(&v, "peers")),
        BTreeSet::from([7001, 7002])
    );
    assert_eq!(compact_ports_v6(bytes(&v, "peers6")), v6_ports);
    assert_eq!(bytes(&v, "external ip"), &[127, 0, 0, 1]);
    s4.stop().await;
    if let Some(s6) = s6 {
        s6.stop().await;
    }
}

#[tokio::test]
async fn dict_reply_with_and_without_peer_ids() {
    let tracker = tracker();
    let s = v4(&tracker).await;
    let h = ih(2);
    let mut c = Client::connect(s.addr).await;
    c.get(&announce(&h, 1, 7001, 0, "")).await.value();
    let v = c.get(&announce(&h, 2, 7002, 5, "&compact=0")).await.value();
    let Value::List(list) = get(&v, "peers") else {
        panic!("peers is not a list: {v:?}")
    };
    assert_eq!(list.len(), 1);
    assert_eq!(bytes(&list[0], "ip"), b"127.0.0.1");
    assert_eq!(int(&list[0], "port"), 7001);
    assert_eq!(bytes(&list[0], "peer id"), &pid(1));
    assert!(!has(&v, "peers6"));
    // An IPv6 peer appears in the same list with its address as text.
    if let Some(s6) = Server::start("[::1]:0", &tracker, HttpConfig::default()).await {
        let mut c6 = Client::connect(s6.addr).await;
        c6.get(&announce(&h, 3, 7003, 0, "")).await.value();
        let v = c.get(&announce(&h, 2, 7002, 5, "&compact=0")).await.value();
        let Value::List(list) = get(&v, "peers") else {
            panic!("peers is not a list: {v:?}")
        };
        let mut seen: Vec<(Vec<u8>, i64)> = list
            .iter()
            .map(|p| (bytes(p, "ip").to_vec(), int(p, "port")))
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            vec![(b"127.0.0.1".to_vec(), 7001), (b"::1".to_vec(), 7003)]
        );
        let v6 = list.iter().find(|p| bytes(p, "ip") == b"::1").unwrap();
        assert_eq!(bytes(v6, "peer id"), &pid(3));
        c6.get(&announce(&h, 3, 7003, 0, "&event=stopped"))
            .await
            .value();
        s6.stop().await;
    }
    let v = c
        .get(&announce(&h, 2, 7002, 5, "&compact=0&no_peer_id=1"))
        .await
        .value();
    let Value::List(list) = get(&v, "peers") else {
        panic!()
    };
    assert_eq!(list.len(), 1);
    assert!(!has(&list[0], "peer id"));
    assert_eq!(int(&list[0], "port"), 7001);
    s.stop().await;
}

#[tokio::test]
async fn numwant_absent_zero_large_and_capped() {
    let tracker = tracker();
    let s = v4(&tracker).await;
    let capped = Server::start(
        "127.0.0.1:0",
        &tracker,
        HttpConfig {
            max_numwant: 10,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let h = ih(3);
    let mut c = Client::connect(s.addr).await;
    for i in 0..70u16 {
        c.get(&announce(&h, i, 10_000 + i, 0, "")).await.value();
    }
    let count = |v: &Value| bytes(v, "peers").len() / 6;
    let v = c.get(&announce(&h, 999, 9999, 1, "")).await.value();
    assert_eq!(count(&v), 50, "absent numwant is the default 50");
    let v = c
        .get(&announce(&h, 999, 9999, 1, "&numwant=-1"))
        .await
        .value();
    assert_eq!(count(&v), 50, "negative numwant is the default");
    let v = c
        .get(&announce(&h, 999, 9999, 1, "&numwant=0"))
        .await
        .value();
    assert_eq!(count(&v), 0);
    assert_eq!(int(&v, "complete"), 70);
    let v = c
        .get(&announce(&h, 999, 9999, 1, "&numwant=100000"))
        .await
        .value();
    assert_eq!(count(&v), 70, "everyone, under the 200 cap");
    let mut cc = Client::connect(capped.addr).await;
    let v = cc
        .get(&announce(&h, 999, 9999, 1, "&numwant=100000"))
        .await
        .value();
    assert_eq!(count(&v), 10, "max_numwant caps");
    s.stop().await;
    capped.stop().await;
}

#[tokio::test]
async fn announcer_not_in_reply_and_seeders_get_only_leechers() {
    let tracker = tracker();
    let s = v4(&tracker).await;
    let h = ih(4);
    let mut c = Client::connect(s.addr).await;
    // Leechers 7001..7003, seeders 8001..8002.
    for p in 7001..=7003u16 {
        c.get(&announce(&h, p, p, 10, "")).await.value();
    }
    for p in 8001..=8002u16 {
        c.get(&announce(&h, p, p, 0, "")).await.value();
    }
    let v = c.get(&announce(&h, 7001, 7001, 10, "")).await.value();
    assert_eq!(
        compact_ports_v4(bytes(&v, "peers")),
        BTreeSet::from([7002, 7003, 8001, 8002])
    );
    let v = c.get(&announce(&h, 8001, 8001, 0, "")).await.value();
    assert_eq!(
        compact_ports_v4(bytes(&v, "peers")),
        BTreeSet::from([7001, 7002, 7003])
    );
    assert_eq!((int(&v, "complete"), int(&v, "incomplete")), (2, 3));
    s.stop().await;
}

#[tokio::test]
async fn stopped_removes_and_completed_counts_once() {
    let tracker = tracker();
    let s = v4(&tracker).await;
    let h = ih(5);
    let mut c = Client::connect(s.addr).await;
    c.get(&announce(&h, 1, 7001, 10, "&event=started"))
        .await
        .value();
    c.get(&announce(&h, 2, 7002, 10, "&event=started"))
        .await
        .value();
    let v = c
        .get(&announce(&h, 1, 7001, 0, "&event=completed"))
        .await
        .value();
    assert_eq!(
        (
            int(&v, "complete"),
            int(&v, "incomplete"),
            int(&v, "downloaded")
        ),
        (1, 1, 1)
    );
    let v = c
        .get(&announce(&h, 1, 7001, 0, "&event=completed"))
        .await
        .value();
    assert_eq!(
        int(&v, "downloaded"),
        1,
        "completed is counted once per peer"
    );
    let v = c
        .get(&announce(&h, 1, 7001, 0, "&event=stopped"))
        .await
        .value();
    assert_eq!((int(&v, "complete"), int(&v, "incomplete")), (0, 1));
    assert_eq!(bytes(&v, "peers"), b"", "a stopped announce gets no peers");
    let v = c.get(&announce(&h, 2, 7002, 10, "")).await.value();
    assert_eq!(bytes(&v, "peers"), b"", "the stopped peer is gone");
    // A stopped announce for an unknown torrent creates nothing.
    let before = tracker.torrent_count();
    let v = c
        .get(&announce(&ih(55), 3, 7003, 10, "&event=stopped"))
        .await
        .value();
    assert_eq!((int(&v, "complete"), int(&v, "incomplete")), (0, 0));
    assert_eq!(tracker.torrent_count(), before);
    s.stop().await;
}

#[tokio::test]
async fn passkey_paths_are_routed_and_unknown_paths_404() {
    let tracker = tracker();
    let s = v4(&tracker).await;
    let h = ih(6);
    let mut c = Client::connect(s.addr).await;
    let target = announce(&h, 1, 7001, 0, "").replacen("/announce", "/0123abcdef/announce", 1);
    let v = c.get(&target).await.value();
    assert_eq!(int(&v, "complete"), 1);
    let v = c
        .get(&format!("/0123abcdef/scrape?info_hash={}", enc(&h)))
        .await
        .value();
    assert_eq!(int(&files(&v)[h.as_slice()], "complete"), 1);
    for path in [
        "/",
        "/announce/",
        "/a/b/announce",
        "/favicon.ico",
        "/scrapes?info_hash=x",
    ] {
        let r = c.get(path).await;
        assert_eq!(r.status, 404, "{path}");
    }
    // Still usable after 404s.
    let v = c.get(&announce(&h, 2, 7002, 5, "")).await.value();
    assert_eq!(int(&v, "complete"), 1);
    s.stop().await;
}
