//! The real `mini-torrust` binary, started as systemd would start it: a config file with port-0
//! listeners on 127.0.0.1, `NOTIFY_SOCKET` pointing at a datagram socket this test binds, then
//! real UDP and HTTP traffic, the admin endpoints, SIGTERM and a restart.
//!
//! The harness (`Daemon`, the wire helpers) is in `harness.rs`.

use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime};

use super::harness::*;

const HASH: [u8; 20] = *b"daemon-test-hash-001";

#[test]
fn serves_as_a_notify_service_and_snapshots_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    // WATCHDOG_USEC as systemd sets it for WatchdogSec=2: a ping every second.
    let cfg = config(dir.path(), "[admin]\nbind = [\"127.0.0.1:0\"]");
    let mut d = Daemon::start_with(dir.path(), &cfg, &[("WATCHDOG_USEC", "2000000")]);

    // At READY=1 both protocols already answer.
    assert_ne!(udp_connect(d.udp), 0);
    let reply = announce(d.http, &HASH, b"-MT0001-aaaaaaaaaaaa", 51413, 1000);
    assert!(int(dict_get(&reply, "interval")) > 0);
    assert_eq!(int(dict_get(&reply, "incomplete")), 1);

    // Health and metrics, parsed by a Prometheus parser.
    assert_eq!(http_get(d.admin, "/health", &[]).0, 200);
    let m = metrics(d.admin);
    assert!(
        sample(
            &m,
            "mini_torrust_requests_total",
            &[
                ("protocol", "udp"),
                ("action", "connect"),
                ("outcome", "ok")
            ]
        ) >= 1.0
    );
    assert_eq!(
        sample(
            &m,
            "mini_torrust_requests_total",
            &[
                ("protocol", "http"),
                ("action", "announce"),
                ("outcome", "ok")
            ]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &m,
            "mini_torrust_peers",
            &[("family", "ipv4"), ("role", "leecher")]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &m,
            "mini_torrust_peers",
            &[("family", "ipv4"), ("role", "seeder")]
        ),
        0.0
    );
    assert_eq!(sample(&m, "mini_torrust_torrents", &[]), 1.0);
    assert_eq!(sample(&m, "mini_torrust_ready", &[]), 1.0);
    assert!(sample(&m, "mini_torrust_uptime_seconds", &[]) > 0.0);

    // Without a token the API is disabled, with a JSON error.
    let (status, body) = http_get(
        d.admin,
        "/api/torrents",
        &[("Authorization", "Bearer whatever-token-1234")],
    );
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("\"error\""));
    assert_eq!(http_get(d.admin, "/nope", &[]).0, 404);

    // Periodic STATUS= lines (every 5 s) with the figures.
    let status = d.wait_message(|m| m.starts_with("STATUS=serving: "));
    assert!(
        status.contains("1 torrents, 1 peers") && status.contains("requests/s"),
        "{status}"
    );

    d.wait_message(|m| m == "WATCHDOG=1");

    // SIGHUP: RELOADING=1 then READY=1; the new log filter applies at once, a changed
    // [protocol] is named as needing a restart, swarms are kept.
    let changed = cfg.replace("filter = \"info\"", "filter = \"info,tracker_core=debug\"")
        + "[protocol]\ninterval = 1700\n";
    std::fs::write(dir.path().join("config.toml"), changed).unwrap();
    d.signal("HUP");
    d.wait_message(|m| m.contains("RELOADING=1"));
    d.wait_message(|m| m.lines().any(|l| l == "READY=1"));
    let restart = d.wait_log("reload: these sections changed and take effect only after a restart");
    assert_eq!(restart["fields"]["sections"], "[\"protocol\"]");
    let reloaded = d.wait_log("config reloaded");
    assert_eq!(reloaded["fields"]["applied"], "[\"log.filter\"]");
    let m = metrics(d.admin);
    assert_eq!(
        sample(
            &m,
            "mini_torrust_peers",
            &[("family", "ipv4"), ("role", "leecher")]
        ),
        1.0
    );

    // SIGTERM: STOPPING=1, a fresh snapshot, exit 0.
    let snapshot = dir.path().join("state.json");
    assert!(
        !snapshot.exists(),
        "no snapshot expected before shutdown (interval 3600 s)"
    );
    let before = SystemTime::now() - Duration::from_secs(1);
    d.signal("TERM");
    d.wait_message(|m| m.lines().any(|l| l == "STOPPING=1"));
    let status = d.wait_exit();
    assert_eq!(status.code(), Some(0), "exit status");
    let meta = std::fs::metadata(&snapshot).expect("final snapshot written");
    assert!(meta.modified().unwrap() >= before);
    let text = std::fs::read_to_string(&snapshot).unwrap();
    assert!(
        text.contains(&hex(&HASH)),
        "snapshot lacks the announced torrent"
    );
    d.drain_log();
    assert!(
        d.seen
            .iter()
            .any(|l| l.contains("\"snapshot written\"") && l.contains("\"final\"")),
        "{:?}",
        d.seen
    );
    assert!(d.seen.iter().any(|l| l.contains("mini-torrust stopped")));
}

#[test]
fn restart_keeps_swarms_and_the_api_needs_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let token = "0123456789abcdef-secret";
    let cfg = config(
        dir.path(),
        &format!("[admin]\nbind = [\"127.0.0.1:0\"]\ntoken = \"{token}\""),
    );
    let mut d = Daemon::start(dir.path(), &cfg);

    assert_eq!(http_get(d.admin, "/api/torrents", &[]).0, 401);
    assert_eq!(
        http_get(
            d.admin,
            "/api/torrents",
            &[("Authorization", "Bearer wrong-token-wrong-tok")]
        )
        .0,
        401
    );
    let (status, body) = http_get(
        d.admin,
        "/api/nothing-here",
        &[("Authorization", &format!("Bearer {token}"))],
    );
    assert_eq!(status, 404, "authorized but unknown endpoint");
    assert!(String::from_utf8_lossy(&body).contains("\"error\""));
    assert_eq!(
        http_get(d.admin, "/metrics", &[]).0,
        200,
        "metrics need no token"
    );

    announce(d.http, &HASH, b"-MT0001-seeder000001", 6881, 0);
    // A UDP client connects before the restart and keeps its id.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let cid = connect_on(&udp, d.udp);
    d.signal("INT");
    assert_eq!(d.wait_exit().code(), Some(0));
    drop(d);

    // Same state directory: the seeder is still there for a new leecher...
    let d = Daemon::start(dir.path(), &cfg);
    // ...and the connection id issued before the restart is still valid (the snapshot kept the
    // key it is signed with): a scrape with it is answered with counts, not an error.
    let mut scrape = cid.to_be_bytes().to_vec();
    scrape.extend_from_slice(&2u32.to_be_bytes());
    scrape.extend_from_slice(&[7, 7, 7, 7]);
    scrape.extend_from_slice(&HASH);
    udp.send_to(&scrape, d.udp).unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = udp.recv_from(&mut buf).unwrap();
    assert_eq!(
        &buf[..4],
        &2u32.to_be_bytes(),
        "a scrape reply, not an error"
    );
    assert_eq!(n, 20);
    assert_eq!(&buf[8..12], &1u32.to_be_bytes(), "one seeder");
    let reply = announce(d.http, &HASH, b"-MT0001-leecher00001", 6882, 500);
    assert_eq!(
        int(dict_get(&reply, "complete")),
        1,
        "restored seeder: {reply:?}"
    );
    match dict_get(&reply, "peers") {
        Some(serde_bencode::value::Value::Bytes(p)) => assert_eq!(p, &[127, 0, 0, 1, 0x1a, 0xe1]),
        other => panic!("peers: {other:?}"),
    }
}

#[test]
fn check_config_lists_every_problem_naming_options_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[udp]\nbind = [\"127.0.0.1:x\"]\n[swarm]\nshard = 4\n[protocol]\ninterval = 600\nmin_interval = 700\n\
         [snapshot]\npath = \"/nonexistent-mini-torrust/s.json\"\n",
    )
    .unwrap();
    let p = path.to_str().unwrap();
    let (code, _, err) = run_cli(dir.path(), &["--check-config", "--config", p], &[]);
    assert_eq!(code, 1, "{err}");
    for needle in [
        "udp.bind",
        "`shard`",
        "protocol.min_interval",
        "snapshot.path",
    ] {
        assert!(err.contains(needle), "{needle} not named in:\n{err}");
    }
    let problem_lines: Vec<&str> = err
        .lines()
        .filter(|l| l.trim_start().starts_with("- "))
        .collect();
    assert_eq!(problem_lines.len(), 4, "{err}");
    assert!(
        problem_lines.iter().all(|l| l.contains(p)),
        "every problem names the file:\n{err}"
    );

    // Starting with it is refused the same way.
    let (code, _, err2) = run_cli(dir.path(), &["--config", p], &[]);
    assert_eq!(code, 1);
    assert!(err2.contains("`shard`"));

    // An environment override that names no option is refused, naming the variable.
    let (code, _, err) = run_cli(
        dir.path(),
        &["--check-config"],
        &[("MINI_TORRUST_SWARM_SHARD", "4")],
    );
    assert_eq!(code, 1);
    assert!(err.contains("MINI_TORRUST_SWARM_SHARD"), "{err}");

    // A good file passes.
    std::fs::write(
        &path,
        "[protocol]\ninterval = 600\nmin_interval = 300\n[swarm]\npeer_timeout = 900\n",
    )
    .unwrap();
    let (code, out, err) = run_cli(dir.path(), &["--check-config", "--config", p], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("OK"));
}

#[test]
fn print_config_is_the_shipped_file_and_parses_back() {
    let dir = tempfile::tempdir().unwrap();
    // No config.toml in the working directory: the embedded defaults.
    // Byte for byte: `--print-config > config.toml` is how the shipped file is regenerated.
    let (code, out, err) = run_cli(dir.path(), &["--print-config"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out == include_str!("../../config.toml"),
        "--print-config without a file differs from the shipped config.toml"
    );

    // Environment overrides show up, and the printed file is itself a valid config.
    let (code, out, err) = run_cli(
        dir.path(),
        &["--print-config"],
        &[
            ("MINI_TORRUST_PROTOCOL_MIN_INTERVAL", "600"),
            ("MINI_TORRUST_UDP_BIND", "127.0.0.1:7001,[::1]:7001"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let printed: toml::Table = toml::from_str(&out).unwrap();
    assert_eq!(printed["protocol"]["min_interval"].as_integer(), Some(600));
    assert_eq!(printed["udp"]["bind"].as_array().map(Vec::len), Some(2));
    let path = dir.path().join("printed.toml");
    std::fs::write(&path, &out).unwrap();
    let (code, _, err) = run_cli(
        dir.path(),
        &["--check-config", "--config", path.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0, "{err}");
}

#[test]
fn corrupt_snapshot_is_moved_aside_and_a_newer_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "[admin]\nbind = [\"127.0.0.1:0\"]");
    let snapshot = dir.path().join("state.json");

    // Corrupt: moved aside, the tracker starts empty and serves.
    std::fs::write(&snapshot, b"{\"format\": 1, \"torr").unwrap();
    let mut d = Daemon::start(dir.path(), &cfg);
    let moved = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("state.json.corrupt")
        });
    assert!(moved, "corrupt snapshot not moved aside");
    assert_ne!(udp_connect(d.udp), 0);
    d.signal("TERM");
    assert_eq!(d.wait_exit().code(), Some(0));
    drop(d);

    // From a future format version: refused, the file left alone, exit 1 with the reason.
    let future = b"{\"format\": 4000000000, \"written_at\": \"2100-01-01T00:00:00Z\"}";
    std::fs::write(&snapshot, future).unwrap();
    let cfg_path = dir.path().join("config.toml");
    std::fs::write(&cfg_path, &cfg).unwrap();
    let (code, _, err) = run_cli(dir.path(), &["--config", cfg_path.to_str().unwrap()], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("newer"), "{err}");
    assert_eq!(std::fs::read(&snapshot).unwrap(), future);
}

#[test]
fn hardened_unit_passes_systemd_analyze_security() {
    // Needs systemd-analyze with --offline (systemd 250+); where it is missing this is said
    // on stderr and the check is skipped.
    let unit = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/mini-torrust.service");
    let out = match Command::new("systemd-analyze")
        .args(["security", "--offline=yes", unit])
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            eprintln!("SKIPPED: systemd-analyze not available: {e}");
            return;
        }
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if text.contains("unrecognized option") || text.contains("Unknown option") {
        eprintln!("SKIPPED: systemd-analyze has no --offline");
        return;
    }
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("{text}"));
    let level: f64 = line
        .split(':')
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(level <= 2.0, "exposure {level} > 2.0:\n{text}");

    // And the unit itself is valid (with ExecStart pointing at the binary just built).
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("mini-torrust.service");
    let text = std::fs::read_to_string(unit)
        .unwrap()
        .replace("/usr/bin/mini-torrust", BIN);
    std::fs::write(&copy, text).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn full_scrape_in_token_mode_takes_the_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let token = "daemon-full-scrape-token";
    let text = config(
        dir.path(),
        &format!("[admin]\nbind = [\"127.0.0.1:0\"]\ntoken = \"{token}\""),
    )
    .replace(
        "[http]\nbind = [\"127.0.0.1:0\"]\n",
        "[http]\nbind = [\"127.0.0.1:0\"]\nfull_scrape = \"token\"\n",
    );
    assert!(text.contains("full_scrape"), "{text}");
    let d = Daemon::start(dir.path(), &text);
    let reply = announce(d.http, &HASH, &[7; 20], 7001, 0);
    assert!(dict_get(&reply, "failure reason").is_none());
    let (_, body) = http_get(d.http, "/scrape", &[]);
    let refused = bdecode(&body);
    assert!(
        dict_get(&refused, "failure reason").is_some(),
        "{:?}",
        String::from_utf8_lossy(&body)
    );
    let auth = format!("Bearer {token}");
    // The first build runs in the background: retry while the tracker asks to.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let v = loop {
        let (status, body) = http_get(d.http, "/scrape", &[("Authorization", &auth)]);
        assert_eq!(status, 200);
        let v = bdecode(&body);
        if dict_get(&v, "failure reason").is_none() {
            break v;
        }
        assert!(std::time::Instant::now() < deadline, "{v:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let body = serde_bencode::to_bytes(&v).unwrap();
    let Some(serde_bencode::value::Value::Dict(files)) = dict_get(&v, "files") else {
        panic!("no files: {:?}", String::from_utf8_lossy(&body))
    };
    assert_eq!(files.len(), 1);
    assert!(files.contains_key(HASH.as_slice()));
}

#[test]
fn reload_pid_sends_the_reload_signal_without_a_kill_binary() {
    let dir = tempfile::tempdir().unwrap();
    let text = config(dir.path(), "[admin]\nbind = [\"127.0.0.1:0\"]");
    let mut d = Daemon::start(dir.path(), &text);
    // What the unit's ExecReload= runs; an empty PATH shows it needs no other program.
    let out = command(dir.path())
        .env("PATH", "")
        .args(["--reload-pid", &d.pid().to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Panics unless the daemon logs the reload within the deadline.
    d.wait_log("config reloaded");
    // Not a daemon's pid: refused, exit 1, nothing signalled.
    for bad in ["0", "1", "-5"] {
        let out = command(dir.path())
            .args([&format!("--reload-pid={bad}")])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{bad}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("cannot signal"));
    }
}

#[test]
fn the_shipped_unit_reloads_through_the_binary() {
    let unit = include_str!("../../systemd/mini-torrust.service");
    let reload: Vec<&str> = unit
        .lines()
        .filter(|l| l.starts_with("ExecReload="))
        .collect();
    assert_eq!(
        reload,
        ["ExecReload=/usr/bin/mini-torrust --reload-pid $MAINPID"]
    );
}

#[test]
fn the_unit_runs_the_binary_where_the_deb_and_the_readme_put_it() {
    let manifest: toml::Value = include_str!("../../Cargo.toml").parse().unwrap();
    let assets = manifest["package"]["metadata"]["deb"]["assets"]
        .as_array()
        .unwrap();
    let dest = assets
        .iter()
        .find(|a| a[0].as_str() == Some("target/release/mini-torrust"))
        .and_then(|a| a[1].as_str())
        .expect("the .deb ships the binary");
    let installed = format!("/{}mini-torrust", dest.trim_start_matches('/'));
    assert_eq!(installed, "/usr/bin/mini-torrust");
    let unit = include_str!("../../systemd/mini-torrust.service");
    let execs: Vec<&str> = unit.lines().filter(|l| l.starts_with("Exec")).collect();
    assert_eq!(execs.len(), 2, "{execs:?}");
    for line in execs {
        let cmd = line.split_once('=').unwrap().1;
        assert!(cmd.starts_with(&format!("{installed} ")), "{line}");
    }
    let readme = include_str!("../../README.md");
    assert!(
        readme.contains(&format!("target/release/mini-torrust {installed}")),
        "the README's by-hand install puts the binary elsewhere"
    );
}
