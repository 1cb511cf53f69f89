//! Scrapes over HTTP (BEP 48): counts per hash, many hashes, unknown hashes.

use super::*;

#[tokio::test]
async fn scrape_one_and_74_hashes() {
    let tracker = tracker();
    let s = v4(&tracker).await;
    let mut c = Client::connect(s.addr).await;
    let h = ih(7);
    c.get(&announce(&h, 1, 7001, 0, "")).await.value();
    c.get(&announce(&h, 2, 7002, 3, "")).await.value();
    c.get(&announce(&h, 2, 7002, 0, "&event=completed"))
        .await
        .value();
    c.get(&announce(&h, 3, 7003, 3, "")).await.value();
    let v = c
        .get(&format!("/scrape?info_hash={}", enc(&h)))
        .await
        .value();
    let f = files(&v);
    assert_eq!(f.len(), 1);
    let e = &f[h.as_slice()];
    assert_eq!(
        (
            int(e, "complete"),
            int(e, "incomplete"),
            int(e, "downloaded")
        ),
        (2, 1, 1)
    );

    // 74 hashes: the known one plus 73 unknown (zeros).
    let mut target = format!("/scrape?info_hash={}", enc(&h));
    let mut unknown = Vec::new();
    for i in 0..73u8 {
        let mut u = [i; 20];
        u[5] = 0xfe;
        unknown.push(u);
        target.push_str(&format!("&info_hash={}", enc(&u)));
    }
    let v = c.get(&target).await.value();
    let f = files(&v);
    assert_eq!(f.len(), 74);
    assert_eq!(int(&f[h.as_slice()], "complete"), 2);
    for u in &unknown {
        let e = &f[u.as_slice()];
        assert_eq!(
            (
                int(e, "complete"),
                int(e, "incomplete"),
                int(e, "downloaded")
            ),
            (0, 0, 0)
        );
    }
    // 75 is refused, nothing stored changes.
    target.push_str(&format!("&info_hash={}", enc(&[0xAA; 20])));
    let r = c.get(&target).await;
    assert!(r.failure().contains("at most 74"), "{}", r.failure());
    // No info_hash: no full scrape.
    assert!(
        c.get("/scrape")
            .await
            .failure()
            .contains("at least one info_hash")
    );
    // The same hash twice answers once.
    let v = c
        .get(&format!("/scrape?info_hash={0}&info_hash={0}", enc(&h)))
        .await
        .value();
    assert_eq!(files(&v).len(), 1);
    assert_eq!(tracker.torrent_count(), 1, "scrapes create nothing");
    s.stop().await;
}

/// `/scrape` without `info_hash` with `full_scrape` on, decoded to (hash -> counts).
fn full_files(body: &[u8]) -> HashMap<Vec<u8>, (i64, i64, i64)> {
    let v: Value = serde_bencode::from_bytes(body)
        .unwrap_or_else(|e| panic!("bencode {e}: {:?}", String::from_utf8_lossy(body)));
    files(&v)
        .iter()
        .map(|(k, e)| {
            let c = (
                int(e, "complete"),
                int(e, "incomplete"),
                int(e, "downloaded"),
            );
            (k.clone(), c)
        })
        .collect()
}

/// A full scrape, once the first build has finished (until then the tracker asks to retry).
/// A server with `full_scrape = "public"`, cached for 60 s.
pub(super) async fn public_full_scrape(tracker: &Arc<Tracker>) -> Server {
    let config = HttpConfig {
        full_scrape: tracker_http::FullScrape::Public,
        full_scrape_cache_secs: 60,
        ..HttpConfig::default()
    };
    Server::start("127.0.0.1:0", tracker, config).await.unwrap()
}

pub(super) async fn full_scrape(c: &mut Client, headers: &str) -> Resp {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = c.get_with("/scrape", headers).await;
        let building = serde_bencode::from_bytes::<Value>(&r.body).is_ok_and(|v| {
            matches!(v, Value::Dict(ref d) if d.get(&b"failure reason"[..]).is_some_and(|f| {
                matches!(f, Value::Bytes(b) if b == tracker_http::handler::MSG_FULL_SCRAPE_BUILDING.as_bytes())
            }))
        });
        if !building {
            return r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the first full scrape was never built"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    use std::io::Read as _;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .read_to_end(&mut out)
        .expect("a gzip body");
    out
}

#[tokio::test]
async fn full_scrape_is_off_by_default_and_public_lists_every_torrent_from_a_cache() {
    // Off (the default): a failure reason, as before.
    let tracker = tracker();
    let s = v4(&tracker).await;
    let mut c = Client::connect(s.addr).await;
    assert!(c.get("/scrape").await.failure().contains("info_hash"));
    s.stop().await;

    let s = public_full_scrape(&tracker).await;
    let mut c = Client::connect(s.addr).await;
    for t in 1..=3u8 {
        for p in 0..u16::from(t) {
            let left = u64::from(p % 2);
            c.get(&announce(&ih(t), p, 7000 + p, left, ""))
                .await
                .value();
        }
    }
    let full = full_scrape(&mut c, "").await;
    assert_eq!(full.header("content-encoding"), None);
    assert_eq!(full.header("vary"), Some("accept-encoding"));
    let files = full_files(&full.value_bytes());
    assert_eq!(files.len(), 3);
    // Each torrent's counts equal its own scrape.
    for t in 1..=3u8 {
        let one = c
            .get(&format!("/scrape?info_hash={}", enc(&ih(t))))
            .await
            .value();
        let e = &super::files(&one)[ih(t).as_slice()];
        let want = (
            int(e, "complete"),
            int(e, "incomplete"),
            int(e, "downloaded"),
        );
        assert_eq!(files[ih(t).as_slice()], want, "torrent {t}");
    }
    // gzip when accepted: the same bytes, compressed.
    let gz = c
        .get_with("/scrape", "accept-encoding: gzip, deflate\r\n")
        .await;
    assert_eq!(gz.status, 200);
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&gz.body), full.body);

    // Cached: a new torrent does not show until the cache is older than 60 s, and then the
    // stale reply is served at once while it is rebuilt in the background.
    c.get(&announce(&ih(4), 1, 7100, 0, "")).await.value();
    assert_eq!(full_files(&c.get("/scrape").await.body).len(), 3);
    tracker.clock().advance(60);
    assert_eq!(full_files(&c.get("/scrape").await.body).len(), 3);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while full_files(&c.get("/scrape").await.body).len() != 4 {
        assert!(std::time::Instant::now() < deadline, "never rebuilt");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.stop().await;
}

#[tokio::test]
async fn full_scrape_is_refused_on_a_private_tracker_and_without_the_token() {
    use tracker_core::access::{Passkey, PasskeyEntry};
    let private = Arc::new(Tracker::with_clock(
        CoreConfig {
            access: tracker_core::AccessConfig {
                private: true,
                ..Default::default()
            },
            ..CoreConfig::default()
        },
        Clock::manual(1_700_000_000),
    ));
    let key = Passkey::random();
    private.access().add_passkey(PasskeyEntry {
        key,
        expires_at: None,
        label: String::new(),
    });
    let public = HttpConfig {
        full_scrape: tracker_http::FullScrape::Public,
        ..HttpConfig::default()
    };
    let s = Server::start("127.0.0.1:0", &private, public)
        .await
        .unwrap();
    let mut c = Client::connect(s.addr).await;
    assert_eq!(
        c.get(&format!("/{}/scrape", key.as_str())).await.failure(),
        tracker_http::handler::MSG_FULL_SCRAPE_PRIVATE
    );
    s.stop().await;

    // Token mode through HttpServer, as the daemon starts it with its admin token.
    let tracker = tracker();
    let config = HttpConfig {
        full_scrape: tracker_http::FullScrape::Token,
        ..HttpConfig::default()
    };
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let token = "full-scrape-token-0123";
    let server =
        tracker_http::HttpServer::start(vec![l], Arc::clone(&tracker), Arc::new(config), token)
            .unwrap();
    let addr = server.local_addrs()[0];
    let mut c = Client::connect(addr).await;
    c.get(&announce(&ih(9), 1, 7001, 0, "")).await.value();
    assert_eq!(
        c.get("/scrape").await.failure(),
        tracker_http::handler::MSG_FULL_SCRAPE_TOKEN
    );
    assert_eq!(
        c.get_with("/scrape", "authorization: Bearer wrong-token-0123456\r\n")
            .await
            .failure(),
        tracker_http::handler::MSG_FULL_SCRAPE_TOKEN
    );
    let ok = full_scrape(&mut c, &format!("authorization: Bearer {token}\r\n")).await;
    assert_eq!(full_files(&ok.value_bytes()).len(), 1);
    server.stop();
    timeout(T, server.join()).await.unwrap().unwrap();
}
