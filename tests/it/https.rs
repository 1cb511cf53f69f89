//! `[https]` end-to-end: the real daemon with an HTTPS listener, certificates made here with the
//! openssl CLI (a CA per test, ECDSA P-256), announces with curl (`--cacert`) and with
//! libtorrent (python3-libtorrent, which validates https trackers' certificates: it is given the
//! test CA through `SSL_CERT_FILE`), the TLS handshake's time bound, and SIGHUP: a second
//! certificate from a second CA served to new connections while a keep-alive connection opened
//! before keeps working and the swarm stays, then bad files refused with the old certificate
//! kept, and `--check-config` and the start loading the files.
//!
//! Without openssl or curl the tests are skipped with a printed reason, and without
//! python3-libtorrent the libtorrent part is; `MINI_TORRUST_REQUIRE_TOOLS=1` makes that a failure.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_bencode::value::Value;

use super::harness::{
    Daemon, bdecode, config, dict_get, http_get, int, metrics, on_path, pct, python, python_has,
    run_cli, sample, tool_present,
};

/// Whether openssl and curl are there (else the test is skipped, see the module docs).
fn tools() -> bool {
    tool_present(
        on_path("openssl") && on_path("curl"),
        "the HTTPS tests need the openssl and curl commands (apt-get install openssl curl)",
    )
}

/// Runs `openssl` in `dir` with `args` (split at spaces; no argument holds one).
fn openssl(dir: &Path, args: &str) {
    let out = Command::new("openssl")
        .args(args.split_whitespace())
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A new ECDSA P-256 key (unencrypted) for `openssl req`.
const NEW_KEY: &str = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";

/// A self-signed CA `name` in `dir`: `name.pem` (certificate) and `name.key`.
pub(super) fn make_ca(dir: &Path, name: &str) -> PathBuf {
    openssl(
        dir,
        &format!(
            "req -x509 {NEW_KEY} -keyout {name}.key -out {name}.pem -subj /CN=mini-torrust-test-{name} \
             -days 2 -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign"
        ),
    );
    dir.join(format!("{name}.pem"))
}

/// A server certificate for 127.0.0.1 and localhost signed by CA `ca`: (`name.pem`, `name.key`).
pub(super) fn make_server(dir: &Path, name: &str, ca: &str) -> (PathBuf, PathBuf) {
    std::fs::write(
        dir.join(format!("{name}.ext")),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &format!("req -new {NEW_KEY} -keyout {name}.key -out {name}.csr -subj /CN=localhost"),
    );
    openssl(
        dir,
        &format!(
            "x509 -req -in {name}.csr -CA {ca}.pem -CAkey {ca}.key -CAcreateserial -days 2 \
             -extfile {name}.ext -out {name}.pem"
        ),
    );
    (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    )
}

/// The test config with an `[https]` listener on 127.0.0.1:0 serving `cert` and `key`.
fn https_config(dir: &Path, cert: &Path, key: &Path) -> String {
    format!(
        "{}[https]\nbind = [\"127.0.0.1:0\"]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        config(dir, "[admin]\nbind = [\"127.0.0.1:0\"]"),
        cert.display(),
        key.display()
    )
}

/// `curl` of `https://127.0.0.1:<port><target>` trusting only `ca` (no CA: the system's).
fn curl(addr: SocketAddr, target: &str, ca: Option<&Path>) -> Output {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "10"]);
    if let Some(ca) = ca {
        cmd.arg("--cacert").arg(ca);
    }
    cmd.arg(format!("https://{addr}{target}")).output().unwrap()
}

/// A successful curl over HTTPS: the decoded bencoded reply.
fn curl_ok(addr: SocketAddr, target: &str, ca: &Path) -> Value {
    let out = curl(addr, target, Some(ca));
    assert!(
        out.status.success(),
        "curl --cacert {ca:?} {target}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    bdecode(&out.stdout)
}

fn announce_target(hash: &[u8; 20], peer_id: &[u8; 20], port: u16, left: u64) -> String {
    format!(
        "/announce?info_hash={}&peer_id={}&port={port}&uploaded=0&downloaded=0&left={left}&compact=1",
        pct(hash),
        pct(peer_id)
    )
}

/// The ports of a compact `peers` string.
fn peer_ports(reply: &Value) -> Vec<u16> {
    match dict_get(reply, "peers") {
        Some(Value::Bytes(b)) => b
            .chunks(6)
            .map(|p| u16::from_be_bytes([p[4], p[5]]))
            .collect(),
        other => panic!("no compact peers: {other:?} in {reply:?}"),
    }
}

/// The counts of one torrent in a plain-HTTP scrape.
fn scrape_counts(http: SocketAddr, hash: &[u8; 20]) -> (i64, i64) {
    let (status, body) = http_get(http, &format!("/scrape?info_hash={}", pct(hash)), &[]);
    assert_eq!(status, 200);
    let v = bdecode(&body);
    let files = dict_get(&v, "files").expect("files");
    let Value::Dict(files) = files else {
        panic!("{v:?}")
    };
    let t = files
        .get(&hash[..])
        .unwrap_or_else(|| panic!("no torrent in {v:?}"));
    (int(dict_get(t, "complete")), int(dict_get(t, "incomplete")))
}

/// Waits for the server to close `s`; how long that took.
fn closed_after(mut s: TcpStream) -> Duration {
    let t0 = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut buf = [0u8; 64];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return t0.elapsed(),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => panic!("not closed in 15 s"),
            Err(_) => return t0.elapsed(),
            Ok(_) => {}
        }
    }
}

/// libtorrent announcing an info hash to a tracker URL from 127.0.0.1:<port>; after the first
/// tracker reply it stays up (its peer live in the swarm) until its stdin is closed.
const LT_SCRIPT: &str = r#"
import sys, time, libtorrent as lt
url, port, ih = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ses = lt.session({"listen_interfaces": "127.0.0.1:%d" % port, "enable_dht": False,
    "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False, "dht_bootstrap_nodes": "",
    "alert_mask": lt.alert.category_t.error_notification | lt.alert.category_t.tracker_notification}, 0)
atp = lt.add_torrent_params()
atp.info_hashes = lt.info_hash_t(lt.sha1_hash(bytes.fromhex(ih)))
atp.trackers = [url]
atp.save_path = sys.argv[4]
atp.flags &= ~lt.torrent_flags.paused & ~lt.torrent_flags.auto_managed
ses.add_torrent(atp)
end = time.monotonic() + 20
while time.monotonic() < end:
    for a in ses.pop_alerts():
        print(type(a).__name__, a.message(), flush=True)
        if isinstance(a, lt.tracker_reply_alert):
            sys.stdin.read()
            sys.exit(0)
        if isinstance(a, lt.tracker_error_alert):
            sys.exit(2)
    time.sleep(0.05)
sys.exit(3)
"#;

/// Starts [`LT_SCRIPT`] trusting only `ca` (`SSL_CERT_FILE`) and waits for its first tracker
/// reply: the running client, or everything it said when it got an error or none.
fn libtorrent_announce(
    dir: &Path,
    url: &str,
    port: u16,
    hash: &[u8; 20],
    ca: &Path,
) -> Result<Child, String> {
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    let mut child = Command::new(python())
        .args(["-c", LT_SCRIPT, url, &port.to_string(), &hex])
        .arg(dir)
        .env("SSL_CERT_FILE", ca)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut said = String::new();
    // The script gives up after 20 s on its own (EOF here).
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap_or_default();
        said.push_str(&line);
        said.push('\n');
        if line.starts_with("tracker_reply_alert") {
            return Ok(child);
        }
    }
    let _ = child.wait();
    Err(said)
}

#[test]
fn curl_and_libtorrent_announce_over_https_and_a_stalled_handshake_is_cut() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_ca(d, "ca1");
    let (cert, key) = make_server(d, "s1", "ca1");
    let text =
        https_config(d, &cert, &key).replace("[http]\n", "[http]\nheader_read_timeout_ms = 1000\n");
    let daemon = Daemon::start(d, &text);
    let https = daemon
        .https
        .expect("the started line names the https address");
    let ca1 = d.join("ca1.pem");

    // curl, as a seeder.
    let hash = *b"https-curl-lt-hash01";
    let v = curl_ok(
        https,
        &announce_target(&hash, b"-CU0800-https-seed01", 7001, 0),
        &ca1,
    );
    assert_eq!(int(dict_get(&v, "complete")), 1, "{v:?}");
    assert!(int(dict_get(&v, "interval")) > 0);
    // Not trusted without the test CA: the certificate is really checked.
    let out = curl(https, "/scrape", None);
    assert!(
        !out.status.success(),
        "curl trusted the test certificate without its CA"
    );

    // libtorrent over https://, then seen by a plain-HTTP announce.
    let lt_port = 7002;
    if tool_present(
        python_has("libtorrent"),
        "the libtorrent announce over https:// needs python3-libtorrent (apt-get install python3-libtorrent)",
    ) {
        let url = format!("https://{https}/announce");
        let mut lt = libtorrent_announce(d, &url, lt_port, &hash, &ca1)
            .unwrap_or_else(|said| panic!("libtorrent's https announce failed:\n{said}"));
        let v = super::harness::announce(daemon.http, &hash, b"-qB4650-plain-peer01", 7003, 5);
        let ports = peer_ports(&v);
        assert!(
            ports.contains(&lt_port),
            "libtorrent's peer not in {ports:?}"
        );
        assert!(ports.contains(&7001), "curl's peer not in {ports:?}");
        assert_eq!(scrape_counts(daemon.http, &hash), (1, 2));
        // One handler for both schemes: one set of counters.
        let m = metrics(daemon.admin);
        let ok = [
            ("protocol", "http"),
            ("action", "announce"),
            ("outcome", "ok"),
        ];
        assert_eq!(sample(&m, "mini_torrust_requests_total", &ok), 3.0);
        drop(lt.stdin.take());
        assert!(lt.wait().unwrap().success());
    }

    // A TCP connection that never starts its handshake is closed at the header timeout (1 s).
    let silent = TcpStream::connect(https).unwrap();
    let took = closed_after(silent);
    assert!(took < Duration::from_secs(4), "closed after {took:?}");
    let m = metrics(daemon.admin);
    let closed = [("protocol", "http"), ("reason", "head_timeout")];
    assert_eq!(
        sample(&m, "mini_torrust_connections_closed_total", &closed),
        1.0
    );
}

/// A TLS client connection (rustls, trusting `ca` only) kept open across requests.
struct KeepAlive {
    tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
}

impl KeepAlive {
    fn open(addr: SocketAddr, ca: &Path) -> KeepAlive {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(ca).unwrap())
            .unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let name = ServerName::try_from("localhost").unwrap();
        let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock).expect("TLS handshake");
        }
        KeepAlive { tls }
    }

    /// One keep-alive request; the decoded body.
    fn get(&mut self, target: &str) -> Value {
        let req = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        self.tls.write_all(req.as_bytes()).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
                assert!(head.starts_with("http/1.1 200"), "{head}");
                assert!(!head.contains("connection: close"), "{head}");
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .expect("content-length")
                    .trim()
                    .parse()
                    .unwrap();
                if got.len() >= end + 4 + len {
                    return bdecode(&got[end + 4..end + 4 + len]);
                }
            }
            let n = self.tls.read(&mut buf).unwrap();
            assert!(n > 0, "the connection was closed");
            got.extend_from_slice(&buf[..n]);
        }
    }

    /// The certificate this connection was made with.
    fn server_cert(&self) -> CertificateDer<'static> {
        self.tls.conn.peer_certificates().unwrap()[0].clone()
    }
}

fn pem_cert(path: &Path) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(path).unwrap()
}

/// A reload's log lines: the certificate line (`message`), then "config reloaded".
fn reload(daemon: &mut Daemon, message: &str) -> (serde_json::Value, serde_json::Value) {
    daemon.signal("HUP");
    let line = daemon.wait_log(message);
    let done = daemon.wait_log("config reloaded");
    (line, done)
}

#[test]
fn sighup_serves_a_second_certificate_keeps_connections_and_swarms_and_refuses_bad_files() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_ca(d, "ca1");
    make_ca(d, "ca2");
    let (s1, k1) = make_server(d, "s1", "ca1");
    let (s2, k2) = make_server(d, "s2", "ca2");
    let (ca1, ca2) = (d.join("ca1.pem"), d.join("ca2.pem"));
    // The files the config names; replaced in place, as certbot does.
    let (cert, key) = (d.join("server.pem"), d.join("server.key"));
    std::fs::copy(&s1, &cert).unwrap();
    std::fs::copy(&k1, &key).unwrap();
    let text = https_config(d, &cert, &key);
    let mut daemon = Daemon::start(d, &text);
    let https = daemon.https.unwrap();

    let hash = *b"https-reload-hash-01";
    curl_ok(
        https,
        &announce_target(&hash, b"-CU0800-reload-seed1", 7101, 0),
        &ca1,
    );
    let mut kept = KeepAlive::open(https, &ca1);
    let v = kept.get(&announce_target(&hash, b"-lt0D80-reload-kept1", 7102, 9));
    assert_eq!(peer_ports(&v), vec![7101]);
    assert_eq!(kept.server_cert(), pem_cert(&s1));

    // A second certificate from a second CA.
    std::fs::copy(&s2, &cert).unwrap();
    std::fs::copy(&k2, &key).unwrap();
    let (line, done) = reload(
        &mut daemon,
        "reload: HTTPS certificate replaced; new connections get it",
    );
    assert_eq!(line["fields"]["chain"], 1, "{line}");
    assert!(
        done["fields"]["applied"]
            .as_str()
            .unwrap()
            .contains("https certificate"),
        "{done}"
    );
    // New connections: the new certificate (trusted through ca2 only).
    curl_ok(https, "/scrape", &ca2);
    let out = curl(https, "/scrape", Some(&ca1));
    assert!(
        !out.status.success(),
        "the old certificate is still served to new connections"
    );
    assert_eq!(KeepAlive::open(https, &ca2).server_cert(), pem_cert(&s2));
    // The connection opened before: still open, still its certificate, and the swarm is there.
    let v = kept.get(&announce_target(&hash, b"-lt0D80-reload-kept1", 7102, 9));
    assert_eq!(peer_ports(&v), vec![7101]);
    assert_eq!(int(dict_get(&v, "complete")), 1);
    assert_eq!(kept.server_cert(), pem_cert(&s1));
    assert_eq!(scrape_counts(daemon.http, &hash), (1, 1));

    // A bad certificate file, in a reload that also changes the log filter: the certificate is
    // refused with one line naming the file, the filter is applied, the old certificate stays.
    std::fs::write(&cert, "not a certificate\n").unwrap();
    let with_filter = text.replace("filter = \"info\"", "filter = \"info,tracker_udp=info\"");
    std::fs::write(d.join("config.toml"), &with_filter).unwrap();
    let refused = "reload: HTTPS certificate refused, still serving the previous one";
    let (line, done) = reload(&mut daemon, refused);
    let error = line["fields"]["error"].as_str().unwrap();
    assert!(error.contains(&*cert.to_string_lossy()), "{line}");
    assert!(error.contains("no certificate found"), "{line}");
    assert_eq!(line["level"], "ERROR");
    let applied = done["fields"]["applied"].as_str().unwrap();
    assert!(
        applied.contains("log.filter") && !applied.contains("https"),
        "{done}"
    );
    assert_eq!(KeepAlive::open(https, &ca2).server_cert(), pem_cert(&s2));

    // --check-config loads the files too.
    let cfg = d.join("config.toml");
    let (code, _, err) = run_cli(
        d,
        &["--config", &cfg.to_string_lossy(), "--check-config"],
        &[],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("no certificate found") && err.contains("server.pem"),
        "{err}"
    );
    // And a start with them fails, naming them.
    let (code, _, err) = run_cli(d, &["--config", &cfg.to_string_lossy()], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("loading the HTTPS certificate"), "{err}");
    assert!(
        err.contains("no certificate found") && err.contains("server.pem"),
        "{err}"
    );

    // A certificate with a key that is not its own: refused the same way.
    std::fs::copy(&s1, &cert).unwrap();
    let (line, _) = reload(&mut daemon, refused);
    let error = line["fields"]["error"].as_str().unwrap();
    assert!(error.contains("does not match the certificate"), "{line}");
    assert!(error.contains(&*key.to_string_lossy()), "{line}");
    assert_eq!(KeepAlive::open(https, &ca2).server_cert(), pem_cert(&s2));
    curl_ok(
        https,
        &announce_target(&hash, b"-CU0800-reload-late1", 7103, 0),
        &ca2,
    );
    assert_eq!(scrape_counts(daemon.http, &hash), (2, 1));
    std::fs::copy(&k1, &key).unwrap();
    let (code, out, err) = run_cli(
        d,
        &["--config", &cfg.to_string_lossy(), "--check-config"],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
}
