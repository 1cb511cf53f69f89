//! The status page (`GET /` on the admin listener) in a real browser: headless Chromium loads
//! it from a daemon that has had traffic over both protocols, and every figure the page shows
//! is compared with `/metrics`; the top-20 table with the swarms made; a torrent name that is
//! HTML stays text. `/status.json` is checked directly too: its request history adds up to the
//! counters, and in private mode the top list needs the admin token. A screenshot is saved in
//! the test's output folder (its path is printed).
//!
//! Without Chromium the browser parts are skipped with a printed reason, unless
//! `MINI_TORRUST_REQUIRE_TOOLS=1` (set by `.ci/run`, which installs it) makes that a failure.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::api::{TOKEN, cfg, h, index_add, udp_announce_as};
use super::browser::{self, Figure};
use super::harness::{Daemon, announce, connect_on, hex, http_get, metrics, pct, sample};

/// A torrent name that would be markup if the page put it in as HTML.
const HOSTILE_NAME: &str = "<img src=x onerror=alert(1)> Debian & \"friends\"";

/// The test's output folder.
fn out_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("status_page");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn status_json(admin: SocketAddr, token: Option<&str>) -> Value {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    let (status, body) = http_get(admin, "/status.json", &headers);
    assert_eq!(status, 200);
    serde_json::from_slice(&body).unwrap()
}

/// Torrent `k` of the traffic: it gets `k` peers.
fn torrent(k: u8) -> [u8; 20] {
    let mut b = [0x5a; 20];
    b[0] = k;
    b
}

fn peer_id(k: u8, p: u8) -> [u8; 20] {
    format!("-qB4650-st{k:02}{p:08}")
        .as_bytes()
        .try_into()
        .unwrap()
}

fn udp_scrape(udp: SocketAddr, info_hash: &[u8; 20]) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let conn = connect_on(&s, udp);
    let mut p = conn.to_be_bytes().to_vec();
    p.extend_from_slice(&2u32.to_be_bytes());
    p.extend_from_slice(&77u32.to_be_bytes());
    p.extend_from_slice(info_hash);
    s.send_to(&p, udp).unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = s.recv_from(&mut buf).unwrap();
    assert_eq!(
        (n, &buf[0..4]),
        (20, &2u32.to_be_bytes()[..]),
        "scrape reply"
    );
}

/// Traffic in three bursts a second apart (so the charts have a shape): torrent `k` (1..=24)
/// gets `k` HTTP peers, three of torrent 24's complete; UDP connects, announces and scrapes;
/// HTTP scrapes; and requests answered with errors over both protocols.
fn traffic(d: &Daemon) {
    for round in 0..3u8 {
        for k in (1..=24u8).filter(|k| k % 3 == round) {
            for p in 1..=k {
                announce(
                    d.http,
                    &torrent(k),
                    &peer_id(k, p),
                    7000 + u16::from(p),
                    u64::from(p % 2),
                );
            }
        }
        for i in 0..=round {
            udp_announce_as(d.udp, &h(0xee), 6000 + u16::from(i), None, &peer_id(99, i)).unwrap();
            if round > 0 {
                udp_scrape(d.udp, &torrent(24));
            }
            let target = format!("/scrape?info_hash={}", pct(&torrent(i + 1)));
            assert_eq!(http_get(d.http, &target, &[]).0, 200);
            // Errors: an announce without its info hash; a UDP announce on a made-up connection.
            for _ in 0..2 {
                assert_eq!(http_get(d.http, "/announce?port=1", &[]).0, 200);
            }
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut p = 0x1234_5678_9abc_def0u64.to_be_bytes().to_vec();
            p.extend_from_slice(&1u32.to_be_bytes());
            p.extend_from_slice(&[0u8; 86]);
            s.send_to(&p, d.udp).unwrap();
            let mut buf = [0u8; 256];
            assert_eq!(
                &s.recv_from(&mut buf).unwrap().0.min(4),
                &4,
                "an error reply"
            );
        }
        std::thread::sleep(Duration::from_millis(1100));
    }
    for p in [1u8, 3, 5] {
        let target = format!(
            "/announce?info_hash={}&peer_id={}&port={}&uploaded=0&downloaded=0&left=0&event=completed",
            pct(&torrent(24)),
            pct(&peer_id(24, p)),
            7000 + u16::from(p)
        );
        assert_eq!(http_get(d.http, &target, &[]).0, 200);
    }
}

/// The `/metrics` value a page figure shows (`None`: the sample is absent).
fn metric_of(scrape: &prometheus_parse::Scrape, f: &Figure) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == f.metric
                && f.labels
                    .iter()
                    .all(|(k, v)| s.labels.get(k) == Some(v.as_str()))
        })
        .map(|_| {
            let labels: Vec<(&str, &str)> = f
                .labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            sample(scrape, &f.metric, &labels)
        })
}

/// Every page figure against `/metrics` read just `before` and `after` the page loaded:
/// counters that did not move must be equal (within the page's rounding), figures that grow
/// with time (uptime, snapshot age) must lie between the two readings.
fn compare(figs: &[Figure], before: &prometheus_parse::Scrape, after: &prometheus_parse::Scrape) {
    for f in figs {
        if f.metric == "mini_torrust_build_info" {
            let v = before
                .samples
                .iter()
                .find(|s| s.metric == f.metric)
                .unwrap();
            assert_eq!(v.labels.get("version"), Some(f.text.as_str()), "{f:?}");
            continue;
        }
        let (b, a) = (metric_of(before, f), metric_of(after, f));
        let shown = browser::shown_value(f);
        let (Some((v, tol)), Some(b), Some(a)) = (shown, b, a) else {
            assert!(
                shown.is_none() && b.is_none(),
                "{f:?}: page {shown:?}, /metrics {b:?}"
            );
            continue;
        };
        if f.format == "age" {
            assert!(
                v >= b - tol - 1.0 && v <= a + 1.0,
                "{f:?}: page {v}, /metrics {b}..{a}"
            );
        } else {
            assert_eq!(a, b, "{f:?} moved while the page loaded");
            // `/metrics` prints fractions with 6 decimals: a duration there is up to half a
            // microsecond from the exact value the page formats (68.6 us shows as 0.000069).
            let rounding = if f.format == "dur" { 5e-7 } else { 0.0 };
            assert!(
                (v - b).abs() <= tol + rounding,
                "{f:?}: page {v}, /metrics {b}"
            );
        }
    }
}

#[test]
fn the_status_page_shows_what_metrics_says() {
    let dir = tempfile::tempdir().unwrap();
    let text = cfg(dir.path(), "")
        .replace("interval = 3600", "interval = 8")
        .replace("token = ", "status_sample_secs = 1\ntoken = ")
        + "[swarm]\nsweep_interval = 8\n";
    let d = Daemon::start(dir.path(), &text);
    index_add(d.admin, &torrent(23), HOSTILE_NAME);
    traffic(&d);

    // Wait for a sample, a map walk, a snapshot and a sweep after the traffic.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (json, m) = loop {
        let m = metrics(d.admin);
        let j = status_json(d.admin, None);
        let ring = |name: &str| -> f64 {
            j["history"]["series"][name]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .sum()
        };
        let req = |p: &str, a: &str, o: &str| {
            sample(
                &m,
                "mini_torrust_requests_total",
                &[("protocol", p), ("action", a), ("outcome", o)],
            )
        };
        let errors = |p: &str| -> f64 {
            ["announce", "scrape", "other"]
                .iter()
                .map(|a| req(p, a, "error"))
                .sum()
        };
        let settled = ring("udp_connect") == req("udp", "connect", "ok")
            && ring("udp_announce") == req("udp", "announce", "ok")
            && ring("udp_scrape") == req("udp", "scrape", "ok")
            && ring("http_announce") == req("http", "announce", "ok")
            && ring("http_scrape") == req("http", "scrape", "ok")
            && ring("udp_errors") == errors("udp")
            && ring("http_errors") == errors("http")
            && j["torrents"].as_f64() == Some(sample(&m, "mini_torrust_torrents", &[]))
            && j["downloads"].as_f64() == Some(3.0)
            && j["snapshot"]["writes"].as_u64() > Some(0)
            && j["sweep"]["runs"].as_u64() > Some(0);
        if settled {
            break (j, m);
        }
        assert!(
            Instant::now() < deadline,
            "status.json never matched /metrics: {j}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    // The history: one point a second, the requests made, errors included.
    assert_eq!(json["history"]["sample_seconds"], 1);
    assert_eq!(json["history"]["capacity"], 3600);
    assert_eq!(req_total(&m, "http", "announce"), 300.0 + 3.0);
    assert!(
        sample(
            &m,
            "mini_torrust_requests_total",
            &[
                ("protocol", "udp"),
                ("action", "other"),
                ("outcome", "error")
            ]
        ) + sample(
            &m,
            "mini_torrust_requests_total",
            &[
                ("protocol", "udp"),
                ("action", "announce"),
                ("outcome", "error")
            ]
        ) >= 6.0
    );
    assert_eq!(sample(&m, "mini_torrust_downloads", &[]), 3.0);
    // The top 20: torrents 24 down to 5, with their peer counts; the indexed one named.
    let top = json["top"].as_array().unwrap();
    assert_eq!(top.len(), 20);
    for (i, t) in top.iter().enumerate() {
        let k = 24 - i as u8;
        assert_eq!(t["info_hash"], hex(&torrent(k)));
        assert_eq!(
            t["seeders"].as_u64().unwrap() + t["leechers"].as_u64().unwrap(),
            u64::from(k)
        );
        let name = if k == 23 {
            Value::from(HOSTILE_NAME)
        } else {
            Value::Null
        };
        assert_eq!(t["name"], name);
    }
    assert_eq!(top[0]["downloaded"], 3);

    let Some(chromium) = browser::chromium() else {
        return;
    };
    let out = out_dir();
    let url = format!("http://{}/#token={TOKEN}", d.admin);
    let mut attempts = 0;
    let dom = loop {
        attempts += 1;
        let before = metrics(d.admin);
        let dom = browser::dump_dom(&chromium, &url, &out.join("chromium-dom.log"));
        let after = metrics(d.admin);
        let moved =
            |name: &str, l: &[(&str, &str)]| sample(&before, name, l) != sample(&after, name, l);
        if (moved("mini_torrust_snapshot_writes_total", &[("outcome", "ok")])
            || moved("mini_torrust_sweeps_total", &[]))
            && attempts < 6
        {
            continue; // a snapshot or sweep ran meanwhile: its figures moved; load again
        }
        assert!(
            dom.contains(" data-loaded=\"1\""),
            "the page's script did not render: {dom}"
        );
        let figs = browser::figures(&dom);
        assert_eq!(figs.len(), 17, "{figs:#?}");
        compare(&figs, &before, &after);
        break dom;
    };
    // The top 20 as rows, in order, and the name as text, never as markup.
    let table = &dom[dom.find("<table id=\"top\">").unwrap()..];
    let body = &table[table.find("<tbody>").unwrap()..table.find("</tbody>").unwrap()];
    assert_eq!(body.matches("<tr>").count(), 20, "{body}");
    let mut at = 0;
    for k in (5..=24u8).rev() {
        let i = body[at..]
            .find(&format!("data-info-hash=\"{}\"", hex(&torrent(k))))
            .unwrap_or_else(|| panic!("torrent {k} missing or out of order: {body}"));
        at += i + 1;
        let row_end = at + body[at..].find("</tr>").unwrap();
        assert!(
            body[at..row_end].contains(&format!("<td class=\"n\">{k}</td><td class=\"n\">")),
            "peers of {k}: {}",
            &body[at..row_end]
        );
    }
    assert!(
        body.contains("&lt;img src=x onerror=alert(1)&gt; Debian &amp; \"friends\""),
        "{body}"
    );
    assert!(!dom.contains("<img"), "the name became markup");

    let png = out.join("status-page.png");
    browser::screenshot(
        &chromium,
        &url,
        &png,
        (1280, 1700),
        &out.join("chromium-shot.log"),
    );
    let size = std::fs::metadata(&png).unwrap().len();
    assert!(size > 30_000, "{} is only {size} bytes", png.display());
    println!("status page screenshot: {}", png.display());
}

fn req_total(m: &prometheus_parse::Scrape, p: &str, a: &str) -> f64 {
    sample(
        m,
        "mini_torrust_requests_total",
        &[("protocol", p), ("action", a), ("outcome", "ok")],
    )
}

#[test]
fn in_private_mode_the_top_list_needs_the_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let text =
        cfg(dir.path(), "private = true").replace("token = ", "status_sample_secs = 1\ntoken = ");
    let d = Daemon::start(dir.path(), &text);
    index_add(d.admin, &h(7), "members-only-torrent");
    let deadline = Instant::now() + Duration::from_secs(20);
    // A walk that began before the torrent was added may count it in one half and not the
    // other: wait for one that sees it in both.
    let seen = |j: Value| j["torrents"] == 1 && j["top"].as_array().is_some_and(|t| t.len() == 1);
    while !seen(status_json(d.admin, Some(TOKEN))) {
        assert!(
            Instant::now() < deadline,
            "the named torrent never reached the top list"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for token in [None, Some("wrong-token-0123456789")] {
        let j = status_json(d.admin, token);
        assert_eq!(
            (&j["top"], &j["top_hidden"], &j["private"]),
            (&Value::Null, &Value::Bool(true), &Value::Bool(true)),
            "{token:?}"
        );
        assert_eq!(
            j["torrents"], 1,
            "the counts are no secret: /metrics has them"
        );
    }
    let j = status_json(d.admin, Some(TOKEN));
    assert_eq!(j["top"][0]["name"], "members-only-torrent");
    assert_eq!(j["top_hidden"], false);

    let Some(chromium) = browser::chromium() else {
        return;
    };
    let out = out_dir();
    let log = out.join("chromium-private.log");
    let hidden = browser::dump_dom(&chromium, &format!("http://{}/", d.admin), &log);
    assert!(hidden.contains(" data-loaded=\"1\""), "{hidden}");
    assert!(
        hidden.contains("Hidden: the tracker is private."),
        "{hidden}"
    );
    assert!(!hidden.contains("members-only-torrent"), "{hidden}");
    // A fragment that is not valid percent-encoding (a mistyped or hostile link): the page
    // still loads, without a token.
    let bad = browser::dump_dom(
        &chromium,
        &format!("http://{}/#token=%E0%A4%A", d.admin),
        &log,
    );
    assert!(bad.contains(" data-loaded=\"1\""), "{bad}");
    assert!(bad.contains("Hidden: the tracker is private."), "{bad}");
    let shown = browser::dump_dom(
        &chromium,
        &format!("http://{}/#token={TOKEN}", d.admin),
        &log,
    );
    assert!(shown.contains(">members-only-torrent</td>"), "{shown}");
    assert!(
        !shown.contains("Hidden: the tracker is private."),
        "{shown}"
    );
}
