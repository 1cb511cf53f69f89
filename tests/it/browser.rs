//! A real browser for the end-to-end tests: headless Chromium (Debian's `chromium`) run as a
//! bounded child process (killed at its deadline), with a fresh profile, no network besides
//! what the page asks of 127.0.0.1, and no GPU. It can dump the DOM after the page's scripts
//! ran (`--dump-dom` with a virtual-time budget) or take a screenshot; and the page figures
//! marked `data-metric` are read back from the dump for comparison with `/metrics`.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::harness::{on_path, tool_present};

/// Longest a Chromium run may take.
const TIMEOUT: Duration = Duration::from_secs(60);
/// Virtual time the page gets to fetch and draw (timers run at virtual speed; network
/// requests pause it).
const BUDGET_MS: u32 = 4000;

/// Chromium, when installed; else a printed skip (or a failure with
/// `MINI_TORRUST_REQUIRE_TOOLS=1`) and `None`.
pub(super) fn chromium() -> Option<PathBuf> {
    tool_present(
        on_path("chromium"),
        "chromium missing (apt-get install chromium; .ci/run installs it)",
    )
    .then(|| PathBuf::from("chromium"))
}

/// Runs Chromium headless on `url` with `extra` arguments; its stdout. Fails the test when it
/// fails or outlives [`TIMEOUT`] (it is killed then). Its stderr goes to `log`.
fn run(chromium: &Path, url: &str, extra: &[String], log: &Path) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--virtual-time-budget={BUDGET_MS}"))
        .args(extra)
        .arg(url)
        .env("HOME", profile.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("starting chromium");
    let mut stdout = child.stdout.take().unwrap();
    // Read on a thread: a large DOM fills the pipe before the process exits.
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium still running after {TIMEOUT:?}: killed; log in {}",
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = reader.join().unwrap();
    assert!(
        status.success(),
        "chromium failed ({status}); log in {}",
        log.display()
    );
    out
}

/// The DOM of `url` after its scripts ran.
pub(super) fn dump_dom(chromium: &Path, url: &str, log: &Path) -> String {
    let dom = run(chromium, url, &["--dump-dom".into()], log);
    assert!(dom.contains("</html>"), "no DOM dumped: {dom:?}");
    dom
}

/// A `width` x `height` PNG of `url` at `png`.
pub(super) fn screenshot(chromium: &Path, url: &str, png: &Path, size: (u32, u32), log: &Path) {
    let _ = std::fs::remove_file(png);
    run(
        chromium,
        url,
        &[
            format!("--screenshot={}", png.display()),
            format!("--window-size={},{}", size.0, size.1),
        ],
        log,
    );
    let bytes = std::fs::read(png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
}

/// A figure of the page: the element carrying `data-metric`.
#[derive(Debug, Clone)]
pub(super) struct Figure {
    /// The `/metrics` sample it shows.
    pub metric: String,
    /// Its labels, `k=v` pairs.
    pub labels: Vec<(String, String)>,
    /// How the page formats it (`int`, `dur`, `bytes`, `age`, `text`).
    pub format: String,
    /// What the page shows.
    pub text: String,
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let len = tag[start..].find('"')?;
    Some(tag[start..start + len].to_owned())
}

/// Every element with a `data-metric` attribute in a DOM dump, in document order.
pub(super) fn figures(dom: &str) -> Vec<Figure> {
    let mut out = Vec::new();
    let mut rest = dom;
    while let Some(i) = rest.find(" data-metric=\"") {
        let open = rest[..i].rfind('<').unwrap();
        let close = i + rest[i..].find('>').unwrap();
        let tag = &rest[open..close];
        let text_end = close + rest[close..].find('<').unwrap();
        let labels = attr(tag, "data-labels").unwrap_or_default();
        out.push(Figure {
            metric: attr(tag, "data-metric").unwrap(),
            labels: labels
                .split(',')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap();
                    (k.to_owned(), v.to_owned())
                })
                .collect(),
            format: attr(tag, "data-format").unwrap_or_default(),
            text: rest[close + 1..text_end].trim().to_owned(),
        });
        rest = &rest[text_end..];
    }
    out
}

/// What a figure's text says, as a number in the unit of `/metrics`, and how far from the
/// exact value the page's rounding may put it. `None` for "never".
pub(super) fn shown_value(f: &Figure) -> Option<(f64, f64)> {
    let t = f.text.as_str();
    if t == "never" {
        return None;
    }
    if f.format == "int" {
        let v: f64 = t
            .replace(',', "")
            .parse()
            .unwrap_or_else(|e| panic!("{f:?}: {e}"));
        return Some((v, 0.0));
    }
    let words: Vec<&str> = t.split(' ').collect();
    assert!(words.len() % 2 == 0, "{f:?}: not number-unit pairs");
    let (mut sum, mut unit_size) = (0.0, 0.0);
    for pair in words.chunks(2) {
        let n: f64 = pair[0].parse().unwrap_or_else(|e| panic!("{f:?}: {e}"));
        unit_size = match pair[1] {
            "B" => 1.0,
            "KiB" => 1024.0,
            "MiB" => 1024.0 * 1024.0,
            "GiB" => 1024.0 * 1024.0 * 1024.0,
            "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "min" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            other => panic!("{f:?}: unknown unit {other}"),
        };
        sum += n * unit_size;
    }
    let tolerance = match f.format.as_str() {
        // Whole units of the smallest unit shown, rounded down.
        "age" => unit_size,
        // Three significant digits (bytes below 1 KiB are exact).
        "dur" | "bytes" if unit_size == 1.0 && f.format == "bytes" => 0.0,
        "dur" | "bytes" => sum * 0.005 + 1e-12,
        other => panic!("{f:?}: unknown format {other}"),
    };
    Some((sum, tolerance))
}
