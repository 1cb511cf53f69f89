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
