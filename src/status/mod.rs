//! The status page of the admin listener: `GET /` (one HTML page), `/status.js`,
//! `/status.css` (its script and style, built into the binary: the page loads nothing from
//! elsewhere and works offline) and `GET /status.json`, which feeds it.
//!
//! `/status.json` holds the request history of the [`sampler`] ring, the torrent and peer
//! counts of its last map walk, the snapshot and sweep figures, uptime and version, and the
//! [`sampler::TOP_N`] torrents with the most peers. Like `/metrics` it needs no token, except
//! for the top list in private mode (`access.private`): there it is only included with
//! `Authorization: Bearer <admin.token>` (never, when no token is configured). Serving it costs
//! a copy of the ring: no map walk, no blocking thread.
//!
//! What is not here: the counters themselves (tracker-core), the sampling job's schedule
//! (started from [`crate::jobs`]), routing (`crate::admin`).

use serde_json::{Value, json};
use tracker_core::Tracker;

use crate::state::DaemonState;

pub mod sampler;

pub use sampler::Sampler;

/// The page.
pub const PAGE: &str = include_str!("page.html");
/// Its script: fetches `/status.json`, fills the figures, draws the charts.
pub const SCRIPT: &str = include_str!("app.js");
/// Its style sheet.
pub const STYLE: &str = include_str!("style.css");

/// Only the page's own files, its own JSON, and no framing by other sites.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// Whether the request may see the top list: always unless the tracker is private; in
/// private mode only with the (configured, non-empty) admin token.
pub fn may_see_top(tracker: &Tracker, headers: &hyper::HeaderMap, token: &str) -> bool {
    !tracker.access().config().private
        || (!token.is_empty() && tracker_http::full_scrape::bearer_matches(headers, token))
}

/// The `/status.json` document.
pub fn json(tracker: &Tracker, state: &DaemonState, sampler: &Sampler, show_top: bool) -> String {
    let (samples, map) = sampler.read();
    let mut series = serde_json::Map::new();
    for (i, (name, _)) in sampler::SERIES.iter().enumerate() {
        let v: Vec<u64> = samples.iter().map(|s| s.counts[i]).collect();
        series.insert((*name).to_owned(), v.into());
    }
    let c = &map.counts;
    let snap = state.snapshot();
    let sweep = state.sweep();
    let private = tracker.access().config().private;
    let top = if show_top {
        serde_json::to_value(&map.top).unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "ready": state.is_ready(),
        "now_unix_ms": sampler::unix_ms(),
        "uptime_seconds": state.started.elapsed().as_secs_f64(),
        "start_time_seconds": state.started_unix,
        "counted_at_unix_ms": map.at_unix_ms,
        "torrents": c.torrents,
        "peers": {
            "ipv4": { "seeders": c.v4_seeders, "leechers": c.v4_leechers },
            "ipv6": { "seeders": c.v6_seeders, "leechers": c.v6_leechers },
        },
        "downloads": c.downloads,
        "snapshot": {
            "writes": snap.writes,
            "failures": snap.failures,
            "age_seconds": snap.last_success.map(|at| at.elapsed().as_secs_f64()),
            "duration_seconds": snap.last_duration.as_secs_f64(),
            "bytes": snap.last_bytes,
        },
        "sweep": {
            "runs": sweep.runs,
            "duration_seconds": sweep.last_duration.as_secs_f64(),
            "peers_removed": sweep.peers_removed,
            "torrents_removed": sweep.torrents_removed,
        },
        "private": private,
        "top": top,
        "top_hidden": !show_top,
        "history": {
            "sample_seconds": sampler.every().as_secs(),
            "capacity": sampler.capacity(),
            "end_unix_ms": samples.iter().map(|s| s.end_unix_ms).collect::<Vec<_>>(),
            "dt_ms": samples.iter().map(|s| s.dt_ms).collect::<Vec<_>>(),
            "series": series,
        },
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use tracker_core::{CoreConfig, IndexMeta, InfoHash};

    fn tracker(private: bool) -> Tracker {
        let mut c = CoreConfig::default();
        c.access.private = private;
        Tracker::new(c)
    }

    fn bearer(v: &str) -> hyper::HeaderMap {
        let mut h = hyper::HeaderMap::new();
        h.insert(hyper::header::AUTHORIZATION, v.parse().unwrap());
        h
    }

    #[test]
    fn the_top_list_needs_the_token_only_in_private_mode() {
        let open = tracker(false);
        let none = hyper::HeaderMap::new();
        assert!(may_see_top(&open, &none, ""));
        assert!(may_see_top(&open, &none, "0123456789abcdef"));
        let private = tracker(true);
        assert!(!may_see_top(&private, &none, "0123456789abcdef"));
        assert!(!may_see_top(
            &private,
            &bearer("Bearer wrong"),
            "0123456789abcdef"
        ));
        assert!(may_see_top(
            &private,
            &bearer("Bearer 0123456789abcdef"),
            "0123456789abcdef"
        ));
        // No token configured: nothing opens it.
        assert!(!may_see_top(&private, &bearer("Bearer "), ""));
    }

    #[test]
    fn the_document_carries_the_walk_the_history_and_hides_the_top_list() {
        let t = tracker(false);
        t.index_add(
            InfoHash([3; 20]),
            IndexMeta {
                name: "three".into(),
                ..IndexMeta::default()
            },
        )
        .unwrap();
        let state = DaemonState::new(Instant::now());
        let s = Sampler::new(10);
        let mut totals = sampler::Totals::default();
        s.record(&totals, Instant::now(), 5);
        totals.http.announces = 42;
        s.record(&totals, Instant::now(), 10_005);
        let (counts, top) = t.counts_and_top(sampler::TOP_N, t.clock().now());
        s.set_map(sampler::MapFigures {
            counts,
            top,
            at_unix_ms: 9,
        });
        let v: Value = serde_json::from_str(&json(&t, &state, &s, true)).unwrap();
        assert_eq!(v["torrents"], 1);
        assert_eq!(v["top"][0]["name"], "three");
        assert_eq!(v["top"][0]["info_hash"], "03".repeat(20));
        assert_eq!(v["top_hidden"], false);
        assert_eq!(v["history"]["series"]["http_announce"], json!([42]));
        assert_eq!(v["history"]["end_unix_ms"], json!([10_005]));
        assert_eq!(v["history"]["capacity"], 360);
        assert_eq!(v["snapshot"]["age_seconds"], Value::Null);
        let hidden: Value = serde_json::from_str(&json(&t, &state, &s, false)).unwrap();
        assert_eq!(hidden["top"], Value::Null);
        assert_eq!(hidden["top_hidden"], true);
        assert_eq!(hidden["torrents"], 1);
    }
}
