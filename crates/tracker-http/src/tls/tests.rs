//! PEM loading against fixtures in `testdata/tls` (made once with the openssl CLI, valid for
//! 100 years): `chain.pem` is a server certificate for localhost and 127.0.0.1 followed by the
//! intermediate that signed it, `ca.pem` the root that signed the intermediate, `leaf.key` the
//! server key as PKCS#8 and `leaf.sec1.key` the same key as SEC1, `other.key` an unrelated key;
//! `rsa.pem` a self-signed RSA certificate with its key as PKCS#1 in `rsa.key`.

use std::path::PathBuf;

use super::*;

fn data(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/tls")).join(name)
}

fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn an_rsa_certificate_loads_with_a_pkcs1_key() {
    let k = load_certified_key(&data("rsa.pem"), &data("rsa.key")).unwrap();
    assert_eq!(k.cert.len(), 1);
    let e = load_certified_key(&data("rsa.pem"), &data("leaf.key")).unwrap_err();
    assert!(e.to_string().contains("does not match"), "{e}");
}

#[test]
fn a_chain_loads_with_a_pkcs8_or_a_sec1_key() {
    let k = load_certified_key(&data("chain.pem"), &data("leaf.key")).unwrap();
    assert_eq!(k.cert.len(), 2, "leaf and intermediate");
    let k = load_certified_key(&data("chain.pem"), &data("leaf.sec1.key")).unwrap();
    assert_eq!(k.cert.len(), 2);
    let ca = std::fs::read(data("ca.pem")).unwrap();
    let ca = CertificateDer::from_pem_slice(&ca).unwrap();
    assert_ne!(k.cert[1], ca, "the root is not part of the served chain");
}

#[test]
fn a_key_that_does_not_match_is_refused_naming_both_files() {
    let e = load_certified_key(&data("chain.pem"), &data("other.key")).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, TlsError::Key { .. }), "{e:?}");
    assert!(msg.contains("other.key"), "{msg}");
    assert!(msg.contains("does not match the certificate in"), "{msg}");
    assert!(msg.contains("chain.pem"), "{msg}");
}

#[test]
fn bad_files_are_refused_with_the_file_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(PathBuf, PathBuf, &str)> = vec![
        // Missing file.
        (
            dir.path().join("nope.pem"),
            data("leaf.key"),
            "cannot read the certificate",
        ),
        (
            data("chain.pem"),
            dir.path().join("nope.key"),
            "cannot read the private key",
        ),
        // A key where the certificate should be, and the reverse.
        (data("leaf.key"), data("leaf.key"), "no certificate found"),
        (data("chain.pem"), data("chain.pem"), "no private key found"),
        // Not PEM at all, or a truncated block.
        (
            write(&dir, "junk.pem", b"hello\n"),
            data("leaf.key"),
            "no certificate found",
        ),
        (
            write(&dir, "cut.pem", b"-----BEGIN CERTIFICATE-----\nMIIB\n"),
            data("leaf.key"),
            "not valid PEM",
        ),
        (
            data("chain.pem"),
            write(
                &dir,
                "garbage.key",
                b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            ),
            "unusable private key",
        ),
    ];
    for (cert, key, want) in cases {
        let e = load_certified_key(&cert, &key).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(want), "{cert:?} {key:?}: {msg}");
        let named = if want.contains("key") && !want.contains("certificate") {
            &key
        } else {
            &cert
        };
        assert!(
            msg.contains(&*named.to_string_lossy()),
            "{msg} names {named:?}"
        );
    }
    // Over the size limit.
    let big = write(&dir, "big.pem", &vec![b'a'; MAX_PEM_BYTES as usize + 1]);
    let e = load_certified_key(&big, &data("leaf.key")).unwrap_err();
    assert!(matches!(e, TlsError::TooLarge { .. }), "{e}");
}

#[test]
fn a_failed_reload_keeps_the_certificate_and_a_good_one_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let certs = TlsCerts::load(&data("chain.pem"), &data("leaf.key")).unwrap();
    let before = certs.current_cert();
    let junk = write(&dir, "junk.pem", b"junk");
    assert!(certs.reload(&junk, &data("leaf.key")).is_err());
    assert!(
        certs
            .reload(&data("chain.pem"), &data("other.key"))
            .is_err()
    );
    assert_eq!(certs.current_cert(), before);
    // A chain of the leaf alone: a different chain, same end-entity certificate.
    let leaf_only = std::fs::read(data("chain.pem")).unwrap();
    let end = b"-----END CERTIFICATE-----\n";
    let cut = leaf_only.windows(end.len()).position(|w| w == end).unwrap() + end.len();
    let leaf = write(&dir, "leaf.pem", &leaf_only[..cut]);
    assert_eq!(certs.reload(&leaf, &data("leaf.key")).unwrap(), 1);
    assert_eq!(certs.resolver.0.load().cert.len(), 1);
}

/// HTTPS served by [`crate::HttpServer`]: requests, the handshake's time bound, eviction.
mod serving {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use rustls::pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tracker_core::{CoreConfig, Tracker};

    use super::*;
    use crate::{HttpConfig, HttpServer, TlsListeners};

    async fn start(config: HttpConfig) -> (Arc<Tracker>, HttpServer, std::net::SocketAddr) {
        let tracker = Arc::new(Tracker::new(CoreConfig::default()));
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tls = TlsListeners {
            listeners: vec![l],
            certs: TlsCerts::load(&data("chain.pem"), &data("leaf.key")).unwrap(),
        };
        let server = HttpServer::start_with_tls(
            Vec::new(),
            Some(tls),
            Arc::clone(&tracker),
            Arc::new(config),
            "",
        )
        .unwrap();
        let addr = server.tls_addrs()[0];
        (tracker, server, addr)
    }

    fn connector() -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        let ca = std::fs::read(data("ca.pem")).unwrap();
        roots
            .add(CertificateDer::from_pem_slice(&ca).unwrap())
            .unwrap();
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }

    /// One `GET /scrape` over TLS (verified against the test root); the reply.
    async fn get_scrape(addr: std::net::SocketAddr) -> String {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let mut s = connector().connect(name, tcp).await.unwrap();
        s.write_all(b"GET /scrape HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut reply = Vec::new();
        let _ = s.read_to_end(&mut reply).await;
        String::from_utf8_lossy(&reply).into_owned()
    }

    /// Waits for the server to close `s` (EOF or reset); how long that took.
    async fn closed_after(mut s: TcpStream) -> Duration {
        let t0 = Instant::now();
        let mut buf = [0u8; 64];
        loop {
            match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return t0.elapsed(),
                Ok(Ok(_)) => {}
                Err(_) => panic!("not closed within 10 s"),
            }
        }
    }

    #[tokio::test]
    async fn requests_are_answered_over_tls_with_the_chain() {
        let (_, server, addr) = start(HttpConfig::default()).await;
        assert!(server.local_addrs().is_empty());
        let reply = get_scrape(addr).await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(reply.contains("failure reason"), "{reply}");
    }

    #[tokio::test]
    async fn a_handshake_never_finished_is_cut_at_the_header_timeout() {
        let config = HttpConfig {
            header_read_timeout_ms: 300,
            ..HttpConfig::default()
        };
        let (tracker, _server, addr) = start(config).await;
        // Silent, and a TLS record header with nothing after it.
        let silent = TcpStream::connect(addr).await.unwrap();
        let mut partial = TcpStream::connect(addr).await.unwrap();
        partial
            .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00])
            .await
            .unwrap();
        for s in [silent, partial] {
            let took = closed_after(s).await;
            assert!(took < Duration::from_secs(2), "closed after {took:?}");
        }
        assert_eq!(tracker.stats().read().http.connections_timed_out, 2);
        // Junk instead of a ClientHello: a failed handshake.
        let mut junk = TcpStream::connect(addr).await.unwrap();
        junk.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        closed_after(junk).await;
        assert_eq!(tracker.stats().read().http.tls_handshake_failures, 1);
    }

    #[tokio::test]
    async fn a_slow_head_after_the_handshake_is_cut_at_the_header_timeout_from_the_accept() {
        let config = HttpConfig {
            header_read_timeout_ms: 600,
            ..HttpConfig::default()
        };
        let (tracker, _server, addr) = start(config).await;
        let t0 = Instant::now();
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let mut s = connector().connect(name, tcp).await.unwrap();
        // One byte of the head every 50 ms, each in its own TLS record: the head never ends in
        // time, and no byte restarts the clock.
        let head = b"GET /scrape HTTP/1.1\r\nhost: localhost\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
        let mut cut = false;
        for b in head {
            if s.write_all(&[*b]).await.is_err() || s.flush().await.is_err() {
                cut = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if !cut {
            let mut reply = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut reply)).await;
            assert!(
                reply.is_empty(),
                "answered a head that took too long: {reply:?}"
            );
        }
        let took = t0.elapsed();
        assert!(took < Duration::from_secs(4), "closed after {took:?}");
        assert_eq!(tracker.stats().read().http.connections_timed_out, 1);
        assert_eq!(tracker.stats().read().http.requests, 0);
    }

    #[tokio::test]
    async fn a_connection_still_in_its_handshake_makes_room_for_a_new_client() {
        let config = HttpConfig {
            max_connections: 1,
            header_read_timeout_ms: 60_000,
            ..HttpConfig::default()
        };
        let (tracker, _server, addr) = start(config).await;
        let silent = TcpStream::connect(addr).await.unwrap();
        // Let the accept loop take it (it holds the only slot).
        tokio::time::sleep(Duration::from_millis(100)).await;
        let reply = tokio::time::timeout(Duration::from_secs(10), get_scrape(addr))
            .await
            .expect("the new client is served");
        assert!(reply.contains("failure reason"), "{reply}");
        assert!(closed_after(silent).await < Duration::from_secs(10));
        assert_eq!(tracker.stats().read().http.connections_evicted, 1);
    }
}
