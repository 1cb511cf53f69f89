//! Connections: keep-alive, pipelining, limits, timeouts and shutdown.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_keep_alive_clients() {
    let tracker = tracker();
    let s = v4(&tracker).await;
    let addr = s.addr;
    let mut tasks = Vec::new();
    for i in 0..200u16 {
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            for round in 0..5u16 {
                let v = c
                    .get(&announce(&ih(11), i, 20_000 + i, u64::from(round), ""))
                    .await
                    .value();
                assert!(int(&v, "complete") + int(&v, "incomplete") >= 1);
            }
        }));
    }
    for t in tasks {
        timeout(Duration::from_secs(60), t).await.unwrap().unwrap();
    }
    let v = Client::connect(addr)
        .await
        .get(&format!("/scrape?info_hash={}", enc(&ih(11))))
        .await
        .value();
    let e = &files(&v)[ih(11).as_slice()];
    assert_eq!(int(e, "complete") + int(e, "incomplete"), 200);
    let stats = tracker.stats().read().http;
    assert_eq!(stats.announces, 1000);
    s.stop().await;
}

#[tokio::test]
async fn idle_connections_do_not_block_a_new_client() {
    let tracker = tracker();
    let s = v4(&tracker).await;
    let mut idle = Vec::new();
    for i in 0..50 {
        let mut c = Client::connect(s.addr).await;
        if i % 2 == 0 {
            // Half send a partial head and stall.
            c.stream
                .write_all(b"GET /announce?info_hash=")
                .await
                .unwrap();
        }
        idle.push(c);
    }
    let mut c = Client::connect(s.addr).await;
    let v = timeout(
        Duration::from_secs(2),
        c.get(&announce(&ih(12), 1, 7001, 0, "")),
    )
    .await
    .unwrap()
    .value();
    assert_eq!(int(&v, "complete"), 1);
    drop(idle);
    s.stop().await;
}

#[tokio::test]
async fn max_connections_full_closes_the_oldest_waiting_connection() {
    let tracker = tracker();
    let config = HttpConfig {
        max_connections: 2,
        max_connections_per_ip: 2,
        ..Default::default()
    };
    let s = Server::start("127.0.0.1:0", &tracker, config)
        .await
        .unwrap();
    let mut a = Client::connect(s.addr).await;
    a.get(&announce(&ih(17), 1, 7001, 0, "")).await.value();
    let mut b = Client::connect(s.addr).await;
    b.get(&announce(&ih(17), 2, 7002, 0, "")).await.value();
    // Both slots are held by idle keep-alive connections. A third client (from another
    // address: the per-address cap is 2) is served at once: the oldest idle one made room.
    let mut c = Client::connect_from(s.addr, "127.0.0.2").await;
    let v = timeout(
        Duration::from_secs(1),
        c.get(&announce(&ih(17), 3, 7003, 5, "")),
    )
    .await
    .expect("served while every slot was held")
    .value();
    assert_eq!(int(&v, "complete"), 2);
    assert!(
        a.closed_within(Duration::from_secs(1)).await,
        "the oldest closed"
    );
    b.get(&announce(&ih(17), 2, 7002, 0, "")).await.value();
    let stats = tracker.stats().read().http;
    assert_eq!(stats.connections_evicted, 1);
    s.stop().await;
}

#[tokio::test]
async fn header_read_and_idle_timeouts_close_connections() {
    let tracker = tracker();
    let config = HttpConfig {
        header_read_timeout_ms: 300,
        idle_timeout_secs: 3,
        ..Default::default()
    };
    let s = Server::start("127.0.0.1:0", &tracker, config)
        .await
        .unwrap();
    // A stalled head is cut after the header timeout.
    let mut slow = Client::connect(s.addr).await;
    slow.stream
        .write_all(b"GET /announce?x=1 HTTP/1.1\r\n")
        .await
        .unwrap();
    let t0 = std::time::Instant::now();
    assert!(slow.closed_within(Duration::from_secs(5)).await);
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    // A keep-alive connection survives more than the header timeout between requests...
    let mut c = Client::connect(s.addr).await;
    c.get(&announce(&ih(13), 1, 7001, 0, "")).await.value();
    tokio::time::sleep(Duration::from_millis(600)).await;
    c.get(&announce(&ih(13), 1, 7001, 0, "")).await.value();
    // ...and is closed after the idle timeout.
    let t0 = std::time::Instant::now();
    assert!(c.closed_within(Duration::from_secs(5)).await);
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(2700) && took < Duration::from_millis(6000),
        "{took:?}"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_after_the_idle_timeout() {
    let tracker = tracker();
    let config = HttpConfig {
        idle_timeout_secs: 1,
        ..Default::default()
    };
    let s = Server::start("127.0.0.1:0", &tracker, config)
        .await
        .unwrap();
    let h = ih(18);
    let mut c = Client::connect(s.addr).await;
    for i in 0..200u16 {
        c.get(&announce(&h, i, 30_000 + i, 0, "")).await.value();
    }
    // Pipeline big dict replies (200 peers, ~12 KB each) and never read them: the server's
    // writes block, it stops reading our requests, and our writes block too...
    let (_read_half, mut write_half) = c.stream.into_split();
    let one = format!(
        "GET {} HTTP/1.1\r\nhost: t\r\n\r\n",
        announce(&h, 999, 9999, 5, "&compact=0&numwant=200")
    );
    let writer = tokio::spawn(async move {
        for _ in 0..50_000 {
            write_half.write_all(one.as_bytes()).await?;
        }
        Ok::<(), std::io::Error>(())
    });
    // ...until the server gives up on the stalled connection and resets it.
    let r = timeout(Duration::from_secs(20), writer)
        .await
        .expect("the server cut the stalled client");
    assert!(
        r.unwrap().is_err(),
        "all 50000 requests were accepted without reading a reply"
    );
    s.stop().await;
}

#[tokio::test]
async fn shutdown_stops_accepting_and_closes_idle_keep_alive() {
    let tracker = tracker();
    let s = v4(&tracker).await;
    let addr = s.addr;
    let mut c = Client::connect(addr).await;
    c.get(&announce(&ih(14), 1, 7001, 0, "")).await.value();
    s.stop().await;
    assert!(
        c.closed_within(T).await,
        "idle keep-alive connection closed on shutdown"
    );
    assert!(TcpStream::connect(addr).await.is_err(), "listener closed");
}
