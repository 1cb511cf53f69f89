//! The client's address: X-Forwarded-For from trusted proxies, the ip= parameter.

use super::*;

#[tokio::test]
async fn x_forwarded_for_from_trusted_and_untrusted_peers() {
    let tracker = tracker();
    let trusted = Server::start(
        "127.0.0.1:0",
        &tracker,
        HttpConfig {
            trusted_proxies: vec![
                "127.0.0.0/8".parse().unwrap(),
                "10.0.0.0/8".parse().unwrap(),
            ],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let untrusted = v4(&tracker).await;
    let h = ih(15);
    let xff = "x-forwarded-for: 203.0.113.9, 198.51.100.7\r\nx-forwarded-for: 10.1.2.3\r\n";
    let mut c = Client::connect(trusted.addr).await;
    let v = c.get_with(&announce(&h, 1, 7001, 0, ""), xff).await.value();
    assert_eq!(
        bytes(&v, "external ip"),
        &[198, 51, 100, 7],
        "rightmost untrusted entry"
    );
    // Stored under that address: another peer sees it.
    let mut u = Client::connect(untrusted.addr).await;
    let v = u.get_with(&announce(&h, 2, 7002, 5, ""), xff).await.value();
    assert_eq!(
        bytes(&v, "external ip"),
        &[127, 0, 0, 1],
        "untrusted peer: header ignored"
    );
    assert_eq!(bytes(&v, "peers"), &[198, 51, 100, 7, 0x1b, 0x59]);
    // IPv6 entry through the trusted proxy.
    let v = c
        .get_with(
            &announce(&h, 3, 7003, 0, ""),
            "x-forwarded-for: 2001:db8::5\r\n",
        )
        .await
        .value();
    let want: IpAddr = "2001:db8::5".parse().unwrap();
    let IpAddr::V6(w) = want else { unreachable!() };
    assert_eq!(bytes(&v, "external ip"), &w.octets());
    trusted.stop().await;
    untrusted.stop().await;
}

#[tokio::test]
async fn ip_param_is_ignored_unless_allowed() {
    let tracker = tracker();
    let plain = v4(&tracker).await;
    let allowing = Server::start(
        "127.0.0.1:0",
        &tracker,
        HttpConfig {
            allow_ip_param: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let h = ih(16);
    let mut c = Client::connect(plain.addr).await;
    c.get(&announce(&h, 1, 7001, 0, "&ip=192.0.2.1"))
        .await
        .value();
    let mut a = Client::connect(allowing.addr).await;
    // Loopback source and allowed: stored as 192.0.2.50.
    a.get(&announce(&h, 2, 7002, 0, "&ip=192.0.2.50"))
        .await
        .value();
    let v = c.get(&announce(&h, 3, 7003, 5, "")).await.value();
    let peers: BTreeSet<[u8; 6]> = bytes(&v, "peers")
        .chunks_exact(6)
        .map(|c| c.try_into().unwrap())
        .collect();
    assert_eq!(
        peers,
        BTreeSet::from([[127, 0, 0, 1, 0x1b, 0x59], [192, 0, 2, 50, 0x1b, 0x5a]])
    );
    plain.stop().await;
    allowing.stop().await;
}
