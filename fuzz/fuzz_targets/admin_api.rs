//! The admin JSON API (`src/api.rs` of the daemon, included as a module: the binary crate has
//! no lib target).
//!
//! Properties, for `POST /api/torrents` and `POST /api/passkeys` with arbitrary bodies (JSON,
//! raw `.torrent` and anything else) under several content types:
//! - the status is 201, 400 or 409 (never 5xx, never a panic);
//! - the body is valid JSON, and an object `{"error": "<string>"}` on 400 / 409;
//! - a 201 torrent can then be fetched with `GET /api/torrents/{info_hash}` (200, same hash and
//!   name), and posting the same body again is a 409;
//! - a 201 passkey answer carries the key, which `check_passkey` then accepts (unless expired);
//! - `GET /api/torrents?<bytes>` answers 200 or 400 with JSON.
//!
//! Input layout: byte 0 flags (bit 0 endpoint passkeys / torrents, bits 1-2 content type,
//! bit 3 private whitelist tracker, bit 4 also list with the body as query), the rest the body.
#![no_main]

#[allow(dead_code, unreachable_pub)]
#[path = "../../src/api.rs"]
mod api;

use libfuzzer_sys::fuzz_target;
use tracker_core::{AccessConfig, AccessMode, Clock, CoreConfig, LimitsConfig, SwarmConfig, Tracker};

/// The smallest abuse table (it is allocated per tracker, one tracker per input).
fn small_limits() -> LimitsConfig {
    LimitsConfig {
        table_entries: 1024,
        ..LimitsConfig::default()
    }
}

const NOW: u32 = 1_761_739_200;

fn tracker(private: bool) -> Tracker {
    let config = if private {
        CoreConfig {
            access: AccessConfig {
                mode: AccessMode::Whitelist,
                private: true,
                passkey_secret: "s".into(),
                ..Default::default()
            },
            swarm: SwarmConfig {
                shards: 4,
                ..Default::default()
            },
            limits: small_limits(),
            ..CoreConfig::default()
        }
    } else {
        CoreConfig {
            swarm: SwarmConfig {
                shards: 4,
                ..Default::default()
            },
            limits: small_limits(),
            ..CoreConfig::default()
        }
    };
    Tracker::with_clock(config, Clock::manual(NOW))
}

fn json(r: &api::ApiResponse, what: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&r.body)
        .unwrap_or_else(|e| panic!("{what}: {} body is not JSON ({e}): {:?}", r.status, r.body));
    if r.status >= 400 {
        assert!(
            v.as_object().is_some_and(|o| o.len() == 1 && o["error"].is_string()),
            "{what}: {} body is not an error object: {}",
            r.status,
            r.body
        );
    }
    v
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, body)) = data.split_first() else {
        return;
    };
    let content_type = match (flags >> 1) & 3 {
        0 => None,
        1 => Some("application/json"),
        2 => Some("application/x-bittorrent"),
        _ => Some("application/json; charset=utf-8"),
    };
    let t = tracker(flags & 0b1000 != 0);
    if flags & 1 == 0 {
        let r = api::handle(&t, "POST", "/api/torrents", "", content_type, body);
        assert!(matches!(r.status, 201 | 400 | 409), "POST /api/torrents: {} {}", r.status, r.body);
        let v = json(&r, "POST /api/torrents");
        if r.status == 201 {
            let h = v["info_hash"]
                .as_str()
                .unwrap_or_else(|| panic!("201 without an info_hash: {}", r.body))
                .to_owned();
            let g = api::handle(&t, "GET", &format!("/api/torrents/{h}"), "", None, b"");
            assert_eq!(g.status, 200, "GET the torrent just added: {}", g.body);
            let gv = json(&g, "GET /api/torrents/{h}");
            assert_eq!(gv["info_hash"], v["info_hash"]);
            assert_eq!(gv["name"], v["name"]);
            assert_eq!(gv["size"], v["size"]);
            let again = api::handle(&t, "POST", "/api/torrents", "", content_type, body);
            assert_eq!(again.status, 409, "the same torrent twice: {}", again.body);
            json(&again, "POST /api/torrents again");
        }
    } else {
        let r = api::handle(&t, "POST", "/api/passkeys", "", content_type, body);
        assert!(matches!(r.status, 201 | 400 | 409), "POST /api/passkeys: {} {}", r.status, r.body);
        let v = json(&r, "POST /api/passkeys");
        if r.status == 201 {
            let key = v["key"]
                .as_str()
                .unwrap_or_else(|| panic!("201 without a key: {}", r.body))
                .to_owned();
            let live = match v["expires_at"].as_u64() {
                None => v["expires_at"].is_null(),
                Some(at) => at > u64::from(NOW),
            };
            if live && t.access().config().private {
                assert_eq!(
                    t.check_passkey(Some(key.as_bytes())),
                    Ok(()),
                    "a key just added is refused: {}",
                    r.body
                );
            }
            let l = api::handle(&t, "GET", "/api/passkeys", "", None, b"");
            assert_eq!(l.status, 200);
            let lv = json(&l, "GET /api/passkeys");
            assert!(
                lv.as_array().is_some_and(|a| a.iter().any(|e| e["key"] == v["key"])),
                "the key just added is not listed: {}",
                l.body
            );
        }
    }
    if flags & 0b1_0000 != 0 {
        let q = String::from_utf8_lossy(body);
        let r = api::handle(&t, "GET", "/api/torrents", &q, None, b"");
        assert!(matches!(r.status, 200 | 400), "GET /api/torrents?{q}: {} {}", r.status, r.body);
        json(&r, "GET /api/torrents");
    }
});
