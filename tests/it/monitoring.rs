//! What monitoring reads: `/metrics` checked by a real parser of the Prometheus text format
//! (Python's `prometheus_client`, Debian's `python3-prometheus-client`), the alert rules loaded
//! as YAML and checked for their fields, and every metric the shipped Grafana dashboard and
//! alert rules query (`contrib/`) exported by a running daemon.
//!
//! Without those Python modules the parser checks are skipped with a printed reason, unless
//! `MINI_TORRUST_REQUIRE_TOOLS=1` (set by `.ci/run`, which installs it) makes that a failure.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::harness::{
    Daemon, announce, config, http_get, python, python_has, tool_present, udp_connect,
};

/// A daemon with traffic over both protocols and one snapshot written; its `/metrics` text.
fn scraped() -> String {
    let dir = tempfile::tempdir().unwrap();
    let text = config(dir.path(), "[admin]\nbind = [\"127.0.0.1:0\"]")
        .replace("interval = 3600", "interval = 1");
    let d = Daemon::start(dir.path(), &text);
    announce(
        d.http,
        b"monitoring-test-hash",
        b"-qB4650-monitoring01",
        7001,
        0,
    );
    udp_connect(d.udp);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = http_get(d.admin, "/metrics", &[]);
        assert_eq!(status, 200);
        let body = String::from_utf8(body).unwrap();
        if body.contains("mini_torrust_snapshot_age_seconds ") {
            return body;
        }
        assert!(Instant::now() < deadline, "no snapshot written: {body}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The metric family names a scrape declares (`# TYPE name kind`).
fn families(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_owned)
        .collect()
}

/// Every `mini_torrust_*` name in `text`.
fn names_in(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("mini_torrust_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

/// Every PromQL string of a Grafana dashboard: targets' `expr` and templating queries.
fn queries(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr" | "definition", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => queries(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| queries(v, out)),
        _ => {}
    }
}

#[test]
fn dashboard_and_alerts_query_only_exported_metrics_and_metrics_parse() {
    let metrics = scraped();
    let exported = families(&metrics);
    assert!(exported.len() > 20, "{exported:?}");

    let dash: serde_json::Value =
        serde_json::from_str(include_str!("../../contrib/grafana/mini-torrust.json"))
            .expect("the dashboard is JSON");
    assert_eq!(dash["title"], "mini-torrust");
    assert!(dash["panels"].as_array().is_some_and(|p| p.len() > 10));
    let mut q = Vec::new();
    queries(&dash, &mut q);
    assert!(q.len() > 20, "{q:?}");
    let alerts = include_str!("../../contrib/prometheus/alerts.yml");
    let mut used = names_in(&q.join("\n"));
    used.extend(names_in(alerts));
    assert!(used.len() > 15, "{used:?}");
    let missing: Vec<_> = used.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "queried but not exported: {missing:?}\nexported: {exported:?}"
    );

    // A real parser of the text format, in Debian's python (where apt installs the module).
    let python = python();
    if !tool_present(
        python_has("prometheus_client, yaml"),
        "the prometheus_client and YAML checks need python3 modules (apt-get install python3-prometheus-client python3-yaml)",
    ) {
        return;
    }
    let rules = "import sys, yaml\n\
        doc = yaml.safe_load(sys.stdin.read())\n\
        rules = [r for g in doc['groups'] for r in g['rules']]\n\
        for r in rules:\n\
        \x20   assert r['alert'] and r['expr'] and r['labels']['severity'] and r['annotations']['summary'], r\n\
        print(len(rules))\n";
    let out = run_python(python, rules, alerts);
    let n: usize = out.trim().parse().unwrap();
    assert!(n >= 5, "alert rules loaded: {out}");
    let script = "import sys\n\
        from prometheus_client.parser import text_string_to_metric_families\n\
        fams = list(text_string_to_metric_families(sys.stdin.read()))\n\
        print(len(fams), sum(len(f.samples) for f in fams))\n";
    let said = run_python(python, script, &metrics);
    let n: usize = said.split(' ').next().unwrap().trim().parse().unwrap();
    assert_eq!(n, exported.len(), "families parsed: {said}");
}

/// Runs a Python `script` with `input` on stdin; its stdout. Fails the test if it fails.
fn run_python(python: &str, script: &str, input: &str) -> String {
    let mut child = Command::new(python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{python} refused its input: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
