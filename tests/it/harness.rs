//! The harness the end-to-end modules share: the real `mini-torrust` binary started as systemd
//! would start it (a config file with port-0 listeners on 127.0.0.1, `NOTIFY_SOCKET` pointing at a
//! datagram socket this harness binds), minimal UDP, HTTP, bencode and Prometheus helpers, and
//! the shared skip rule of tests that need an external tool ([`tool_present`]).
//!
//! The bound ports (UDP, HTTP, admin, and HTTPS when configured) are read from the daemon's one
//! "mini-torrust started" log line (JSON log format), which it writes before `READY=1`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub(super) const BIN: &str = env!("CARGO_BIN_EXE_mini-torrust");
pub(super) const DEADLINE: Duration = Duration::from_secs(20);

/// A running daemon and what the test listens on.
pub(super) struct Daemon {
    child: Child,
    notify: UnixDatagram,
    log: mpsc::Receiver<String>,
    /// Every stderr line seen so far (for failure messages).
    pub(super) seen: Vec<String>,
    pub(super) udp: SocketAddr,
    pub(super) http: SocketAddr,
    pub(super) admin: SocketAddr,
    /// The first HTTPS address, when `[https]` listens.
    pub(super) https: Option<SocketAddr>,
    /// Notification messages received so far, in order.
    messages: Vec<String>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(super) fn config(dir: &Path, admin_section: &str) -> String {
    format!(
        "[udp]\nbind = [\"127.0.0.1:0\"]\nworkers = 2\n\
         [http]\nbind = [\"127.0.0.1:0\"]\n\
         {admin_section}\n\
         [snapshot]\npath = \"{}\"\ninterval = 3600\n\
         [log]\nformat = \"json\"\nfilter = \"info\"\n",
        dir.join("state.json").display()
    )
}

pub(super) fn command(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    // A clean environment: no MINI_TORRUST_* or WATCHDOG_* from the caller.
    cmd.env_clear().current_dir(dir).stdin(Stdio::null());
    cmd
}

impl Daemon {
    /// Starts the daemon with `config_text` in `dir` and waits for `READY=1`.
    pub(super) fn start(dir: &Path, config_text: &str) -> Daemon {
        Self::start_with(dir, config_text, &[])
    }

    /// Same, with extra environment variables.
    pub(super) fn start_with(dir: &Path, config_text: &str, env: &[(&str, &str)]) -> Daemon {
        let cfg = dir.join("config.toml");
        std::fs::write(&cfg, config_text).unwrap();
        let sock = dir.join("notify.sock");
        let _ = std::fs::remove_file(&sock);
        let notify = UnixDatagram::bind(&sock).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut child = command(dir)
            .arg("--config")
            .arg(&cfg)
            .env("NOTIFY_SOCKET", &sock)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut d = Daemon {
            child,
            notify,
            log,
            seen: Vec::new(),
            udp: ([0, 0, 0, 0], 0).into(),
            http: ([0, 0, 0, 0], 0).into(),
            admin: ([0, 0, 0, 0], 0).into(),
            https: None,
            messages: Vec::new(),
        };
        let ready = d.wait_message(|m| m.lines().any(|l| l == "READY=1"));
        assert!(
            ready.contains("STATUS=serving: "),
            "READY=1 without STATUS: {ready:?}"
        );
        // The start line is written before READY=1, so it is already in the pipe.
        let started = d.wait_log("mini-torrust started");
        let field = |name: &str| -> SocketAddr {
            let v = started["fields"][name].as_str().unwrap_or_default();
            v.parse().unwrap_or_else(|e| panic!("{name} = {v:?}: {e}"))
        };
        d.udp = field("udp");
        d.http = field("http");
        d.admin = field("admin");
        let https = started["fields"]["https"].as_str().unwrap_or_default();
        d.https = https.split(',').next().and_then(|a| a.parse().ok());
        d
    }

    /// Waits for a notification message matching `pred`; returns it.
    pub(super) fn wait_message(&mut self, pred: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + DEADLINE;
        let mut buf = [0u8; 4096];
        while Instant::now() < end {
            if let Ok(n) = self.notify.recv(&mut buf) {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.messages.push(m.clone());
                if pred(&m) {
                    return m;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                self.drain_log();
                panic!(
                    "daemon exited ({status}) while waiting; messages {:?}; log:\n{}",
                    self.messages,
                    self.seen.join("\n")
                );
            }
        }
        self.drain_log();
        panic!(
            "no matching notification; got {:?}; log:\n{}",
            self.messages,
            self.seen.join("\n")
        );
    }

    /// Waits for a JSON log line whose message is `message`; returns it parsed.
    /// A log line already read (e.g. before the start line) whose message is `message`, else
    /// the next one.
    pub(super) fn find_log(&mut self, message: &str) -> serde_json::Value {
        let seen = self.seen.iter().find_map(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .filter(|v| v["fields"]["message"] == message)
        });
        match seen {
            Some(v) => v,
            None => self.wait_log(message),
        }
    }

    pub(super) fn wait_log(&mut self, message: &str) -> serde_json::Value {
        let end = Instant::now() + DEADLINE;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.log.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                        if v["fields"]["message"] == message {
                            return v;
                        }
                    }
                }
                Err(_) => break,
            }
        }
        panic!("no log line {message:?}; log:\n{}", self.seen.join("\n"));
    }

    pub(super) fn drain_log(&mut self) {
        while let Ok(line) = self.log.recv_timeout(Duration::from_millis(200)) {
            self.seen.push(line);
        }
    }

    /// The daemon's process id.
    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(super) fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
    }

    pub(super) fn wait_exit(&mut self) -> ExitStatus {
        let end = Instant::now() + DEADLINE;
        while Instant::now() < end {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("daemon did not exit in time");
    }
}

/// Whether a test that needs an external tool can go on: `have` says whether the tool is there.
/// Without it the test prints `skipped: <why>` and should return (and pass), unless
/// `MINI_TORRUST_REQUIRE_TOOLS=1` (set by `.ci/run`, which installs the tools): then it fails.
pub(super) fn tool_present(have: bool, why: &str) -> bool {
    if !have {
        assert!(
            std::env::var("MINI_TORRUST_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "required here (MINI_TORRUST_REQUIRE_TOOLS=1): {why}"
        );
        println!("skipped: {why}");
    }
    have
}

/// Whether `program` is an executable file in a directory of `PATH`.
pub(super) fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|d| {
            std::fs::metadata(d.join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// Debian's python3 (where apt installs python3-* modules) if present, else `python3`.
pub(super) fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// Whether [`python`] can import every module named (comma-separated, as in `import a, b`).
pub(super) fn python_has(modules: &str) -> bool {
    Command::new(python())
        .args(["-c", &format!("import {modules}")])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A BEP 15 connect: returns the connection id.
pub(super) fn udp_connect(addr: SocketAddr) -> u64 {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    connect_on(&s, addr)
}

/// A BEP 15 connect from `s`: returns the connection id.
pub(super) fn connect_on(s: &UdpSocket, addr: SocketAddr) -> u64 {
    let mut req = Vec::with_capacity(16);
    req.extend_from_slice(&0x0417_2710_1980u64.to_be_bytes());
    req.extend_from_slice(&0u32.to_be_bytes());
    req.extend_from_slice(&0xdead_beefu32.to_be_bytes());
    s.send_to(&req, addr).unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = s.recv_from(&mut buf).unwrap();
    assert_eq!(from, addr);
    assert_eq!(n, 16, "connect reply length");
    assert_eq!(&buf[0..4], &0u32.to_be_bytes(), "action connect");
    assert_eq!(&buf[4..8], &0xdead_beefu32.to_be_bytes(), "transaction id");
    u64::from_be_bytes(buf[8..16].try_into().unwrap())
}

/// One HTTP/1.1 request with `Connection: close`: (status, body).
pub(super) fn http_get(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut req = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no end of head");
    let head = String::from_utf8_lossy(&resp[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let mut body = resp[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let len =
            usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if len == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + len]);
        b = &b[eol + 2 + len + 2..];
    }
}

pub(super) fn pct(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}

pub(super) fn bdecode(body: &[u8]) -> serde_bencode::value::Value {
    serde_bencode::from_bytes(body)
        .unwrap_or_else(|e| panic!("not bencode ({e}): {:?}", String::from_utf8_lossy(body)))
}

pub(super) fn dict_get<'a>(
    v: &'a serde_bencode::value::Value,
    key: &str,
) -> Option<&'a serde_bencode::value::Value> {
    match v {
        serde_bencode::value::Value::Dict(d) => d.get(key.as_bytes()),
        _ => None,
    }
}

pub(super) fn announce(
    http: SocketAddr,
    info_hash: &[u8; 20],
    peer_id: &[u8; 20],
    port: u16,
    left: u64,
) -> serde_bencode::value::Value {
    let target = format!(
        "/announce?info_hash={}&peer_id={}&port={port}&uploaded=0&downloaded=0&left={left}&compact=1",
        pct(info_hash),
        pct(peer_id)
    );
    let (status, body) = http_get(http, &target, &[]);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v = bdecode(&body);
    assert!(
        dict_get(&v, "failure reason").is_none(),
        "announce failed: {v:?}"
    );
    v
}

pub(super) fn int(v: Option<&serde_bencode::value::Value>) -> i64 {
    match v {
        Some(serde_bencode::value::Value::Int(i)) => *i,
        other => panic!("not an integer: {other:?}"),
    }
}

pub(super) fn metrics(admin: SocketAddr) -> prometheus_parse::Scrape {
    let (status, body) = http_get(admin, "/metrics", &[]);
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

pub(super) fn sample(
    scrape: &prometheus_parse::Scrape,
    name: &str,
    labels: &[(&str, &str)],
) -> f64 {
    let s = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"));
    match s.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => v,
        ref other => panic!("{name}: unexpected value {other:?}"),
    }
}

pub(super) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(super) fn run_cli(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = command(dir)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
