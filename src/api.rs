//! The admin JSON API (`/api/...` on the admin listener): torrent index, peers, access lists,
//! passkeys. Pure request -> response logic over tracker-core, no sockets; `admin.rs` checks the
//! bearer token, reads the (bounded) body and calls [`handle`].
//!
//! | method and path | does | answers |
//! |---|---|---|
//! | `POST /api/torrents` | add: JSON `{"info_hash","name","size"}` or a raw `.torrent` body | 201 entry, 400, 409 |
//! | `GET /api/torrents?q=&sort=name\|added&page=&per_page=` | list / search | 200 page |
//! | `GET /api/torrents/{info_hash}` | one entry with counts and peers | 200, 404 |
//! | `DELETE /api/torrents/{info_hash}` | remove from the index (the swarm stays) | 204, 404 |
//! | `GET /api/peers/{info_hash}` | live peers of any tracked torrent | 200, 404 |
//! | `GET /api/access` | mode and both lists | 200 |
//! | `PUT` / `DELETE /api/access/{allow\|deny}/{info_hash}` | edit a list | 201 / 204, 200 if already so, 404 |
//! | `POST /api/access/reload` | re-read the list files | 200, 400 |
//! | `GET /api/access/clients` | client (peer id prefix) allow and deny lists | 200 |
//! | `PUT` / `DELETE /api/access/clients/{allow\|deny}/{prefix}` | edit a client list | 201 / 204, 200 if already so, 400, 404 |
//! | `GET /api/passkeys` | stored passkeys | 200 |
//! | `POST /api/passkeys` | `{"key"?,"expires_in"?,"label"?}`; a key is generated if absent | 201, 400 |
//! | `DELETE /api/passkeys/{key}` | revoke | 204, 404 |
//! | `GET /api/passkeys/users/{user}/{version}` | the stateless key of a user and version | 200, 404 |
//! | `PUT /api/passkeys/users/{user}/min_version/{version}` | revoke a user's older stateless keys | 200 |
//!
//! Errors are `{"error": "..."}` with 400 (bad input), 404 (unknown), 405, 409 (duplicate).

use serde::{Deserialize, Serialize};
use tracker_core::{
    IndexError, IndexMeta, IndexQuery, InfoHash, Passkey, PasskeyEntry, SortBy, Tracker,
    torrent_file,
};

/// Largest request body the API reads (a `.torrent` file with a big piece list fits).
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// An API answer: status and JSON body (empty for 204).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiResponse {
    /// HTTP status.
    pub status: u16,
    /// JSON text.
    pub body: String,
}

fn ok<T: Serialize>(status: u16, v: &T) -> ApiResponse {
    match serde_json::to_string(v) {
        Ok(body) => ApiResponse { status, body },
        Err(e) => error(500, &format!("cannot encode the answer: {e}")),
    }
}

fn error(status: u16, msg: &str) -> ApiResponse {
    ApiResponse {
        status,
        body: serde_json::json!({ "error": msg }).to_string(),
    }
}

fn no_content() -> ApiResponse {
    ApiResponse {
        status: 204,
        body: String::new(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddTorrent {
    info_hash: InfoHash,
    name: String,
    size: u64,
    #[serde(default)]
    info_hash_v2: Option<InfoHash>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AddPasskey {
    #[serde(default)]
    key: Option<Passkey>,
    /// Seconds from now.
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    label: String,
}

fn parse_hash(s: &str) -> Result<InfoHash, ApiResponse> {
    s.parse()
        .map_err(|_| error(400, &format!("not a 40-character hex info hash: {s:?}")))
}

fn index_error(e: &IndexError) -> ApiResponse {
    match e {
        IndexError::Duplicate(_) => error(409, &e.to_string()),
        IndexError::NotFound(_) => error(404, &e.to_string()),
        IndexError::BadName(_) => error(400, &e.to_string()),
    }
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<std::borrow::Cow<'a, str>> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(v: &str) -> std::borrow::Cow<'_, str> {
    let plus = v.replace('+', " ");
    match percent_encoding::percent_decode_str(&plus).decode_utf8() {
        Ok(s) => std::borrow::Cow::Owned(s.into_owned()),
        Err(_) => std::borrow::Cow::Borrowed(v),
    }
}

/// Answers one API request. `path` starts with `/api/`; `query` is the raw query string.
pub fn handle(
    tracker: &Tracker,
    method: &str,
    path: &str,
    query: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> ApiResponse {
    let now = tracker.clock().now();
    let segs: Vec<&str> = path
        .trim_start_matches("/api/")
        .trim_end_matches('/')
        .split('/')
        .collect();
    let r = match (method, segs.as_slice()) {
        ("POST", ["torrents"]) => add_torrent(tracker, content_type, body, now),
        ("GET", ["torrents"]) => list(tracker, query, now),
        ("GET", ["torrents", h]) => parse_hash(h).map(|h| match tracker.index_get(&h, now) {
            Some(d) => ok(200, &d),
            None => error(404, &format!("torrent {h} is not in the index")),
        }),
        ("DELETE", ["torrents", h]) => parse_hash(h).map(|h| match tracker.index_remove(&h) {
            Ok(()) => no_content(),
            Err(e) => index_error(&e),
        }),
        ("GET", ["peers", h]) => parse_hash(h).map(|h| match tracker.peers(&h, now) {
            Some(p) => ok(200, &p),
            None => error(404, &format!("torrent {h} has no swarm")),
        }),
        ("GET", ["access"]) => {
            let (allow, deny) = tracker.access().lists();
            Ok(ok(
                200,
                &serde_json::json!({
                    "mode": tracker.access().config().mode,
                    "private": tracker.access().config().private,
                    "allow": allow,
                    "deny": deny,
                }),
            ))
        }
        ("PUT", ["access", list @ ("allow" | "deny"), h]) => parse_hash(h).map(|h| {
            let added = if *list == "allow" {
                tracker.access().allow(h)
            } else {
                tracker.access().deny(h)
            };
            ok(
                if added { 201 } else { 200 },
                &serde_json::json!({ "list": list, "info_hash": h }),
            )
        }),
        ("DELETE", ["access", list @ ("allow" | "deny"), h]) => parse_hash(h).map(|h| {
            let removed = if *list == "allow" {
                tracker.access().unallow(&h)
            } else {
                tracker.access().undeny(&h)
            };
            if removed {
                no_content()
            } else {
                error(
                    404,
                    &format!("{h} was not added to the {list} list through the API"),
                )
            }
        }),
        ("GET", ["access", "clients"]) => Ok(ok(200, &tracker.access().clients().lists())),
        ("PUT", ["access", "clients", list @ ("allow" | "deny"), prefix]) => Ok(
            match tracker.access().clients().add(*list == "deny", prefix) {
                Ok(added) => ok(
                    if added { 201 } else { 200 },
                    &serde_json::json!({ "list": list, "prefix": prefix }),
                ),
                Err(e) => error(400, &e.to_string()),
            },
        ),
        ("DELETE", ["access", "clients", list @ ("allow" | "deny"), prefix]) => Ok(
            if tracker.access().clients().remove(*list == "deny", prefix) {
                no_content()
            } else {
                error(
                    404,
                    &format!("{prefix} was not added to the client {list} list through the API"),
                )
            },
        ),
        ("POST", ["access", "reload"]) => Ok(match tracker.reload_files() {
            Ok(report) => ok(200, &report),
            Err(e) => error(400, &e.to_string()),
        }),
        ("GET", ["passkeys"]) => Ok(ok(200, &tracker.access().passkeys())),
        ("POST", ["passkeys"]) => add_passkey(tracker, body, now),
        ("DELETE", ["passkeys", k]) => Ok(match k.parse::<Passkey>() {
            Ok(k) if tracker.access().revoke_passkey(&k) => no_content(),
            Ok(_) => error(404, "no such passkey"),
            Err(e) => error(400, &e.to_string()),
        }),
        ("GET", ["passkeys", "users", user, version]) => {
            match (user.parse::<u32>(), version.parse::<u16>()) {
                (Ok(u), Ok(v)) => Ok(match tracker.access().stateless_key(u, v) {
                    Some(k) => ok(
                        200,
                        &serde_json::json!({ "user": u, "version": v, "key": k }),
                    ),
                    None => error(
                        404,
                        "stateless passkeys are disabled: set access.passkey_secret",
                    ),
                }),
                _ => Err(error(400, "user is a u32 and version a u16")),
            }
        }
        ("PUT", ["passkeys", "users", user, "min_version", version]) => {
            match (user.parse::<u32>(), version.parse::<u16>()) {
                (Ok(u), Ok(v)) => {
                    tracker.access().set_min_version(u, v);
                    Ok(ok(200, &serde_json::json!({ "user": u, "min_version": v })))
                }
                _ => Err(error(400, "user is a u32 and version a u16")),
            }
        }
        (
            _,
            ["torrents"]
            | ["torrents", _]
            | ["peers", _]
            | ["access"]
            | ["access", ..]
            | ["passkeys"]
            | ["passkeys", ..],
        ) => Err(error(
            405,
            &format!("method {method} not allowed on {path}"),
        )),
        _ => Err(error(404, &format!("no API endpoint {path}"))),
    };
    r.unwrap_or_else(|e| e)
}

fn list(tracker: &Tracker, query: &str, now: u32) -> Result<ApiResponse, ApiResponse> {
    let mut q = IndexQuery::default();
    if let Some(s) = query_param(query, "q") {
        q.q = s.into_owned();
    }
    if let Some(s) = query_param(query, "sort") {
        q.sort = match s.as_ref() {
            "name" => SortBy::Name,
            "added" => SortBy::Added,
            other => {
                return Err(error(
                    400,
                    &format!("sort must be name or added, not {other:?}"),
                ));
            }
        };
    }
    for (name, slot, max) in [
        ("page", &mut q.page, usize::MAX),
        ("per_page", &mut q.per_page, 1000),
    ] {
        if let Some(s) = query_param(query, name) {
            *slot = match s.parse::<usize>() {
                Ok(n) if n >= 1 && n <= max => n,
                _ => {
                    return Err(error(
                        400,
                        &format!("{name} must be a number from 1 to {max}"),
                    ));
                }
            };
        }
    }
    Ok(ok(200, &tracker.index_list(&q, now)))
}

fn add_torrent(
    tracker: &Tracker,
    content_type: Option<&str>,
    body: &[u8],
    now: u32,
) -> Result<ApiResponse, ApiResponse> {
    let json = content_type.is_some_and(|c| c.starts_with("application/json"))
        || body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let (info_hash, meta) = if json {
        let a: AddTorrent =
            serde_json::from_slice(body).map_err(|e| error(400, &format!("bad JSON: {e}")))?;
        let meta = IndexMeta {
            name: a.name,
            size: a.size,
            added_at: u64::from(now),
            v2: a.info_hash_v2,
            from_dir: false,
        };
        (a.info_hash, meta)
    } else {
        let t = torrent_file::parse(body).map_err(|e| error(400, &e.to_string()))?;
        let meta = IndexMeta {
            name: t.name.clone(),
            size: t.size,
            added_at: u64::from(now),
            v2: t.linked_v2(),
            from_dir: false,
        };
        (t.primary(), meta)
    };
    tracker
        .index_add(info_hash, meta)
        .map_err(|e| index_error(&e))?;
    match tracker.index_get(&info_hash, now) {
        Some(d) => Ok(ok(201, &d.summary)),
        None => Err(error(500, "the torrent vanished right after being added")),
    }
}

fn add_passkey(tracker: &Tracker, body: &[u8], now: u32) -> Result<ApiResponse, ApiResponse> {
    let a: AddPasskey = if body.iter().all(u8::is_ascii_whitespace) {
        AddPasskey::default()
    } else {
        serde_json::from_slice(body).map_err(|e| error(400, &format!("bad JSON: {e}")))?
    };
    let entry = PasskeyEntry {
        key: a.key.unwrap_or_else(Passkey::random),
        expires_at: a.expires_in.map(|s| u64::from(now).saturating_add(s)),
        label: a.label,
    };
    tracker.access().add_passkey(entry.clone());
    Ok(ok(201, &entry))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracker_core::{AccessConfig, AccessMode, Clock, CoreConfig};

    fn tracker() -> Tracker {
        let config = CoreConfig {
            access: AccessConfig {
                mode: AccessMode::Whitelist,
                private: true,
                passkey_secret: "s".into(),
                ..Default::default()
            },
            ..CoreConfig::default()
        };
        Tracker::with_clock(config, Clock::manual(1_761_739_200))
    }

    fn call(t: &Tracker, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let r = handle(t, method, path, query, None, body.as_bytes());
        let v = if r.body.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&r.body).unwrap()
        };
        (r.status, v)
    }

    #[test]
    fn torrents_crud_and_errors() {
        let t = tracker();
        let h = "0123456789abcdef0123456789abcdef01234567";
        let (s, v) = call(
            &t,
            "POST",
            "/api/torrents",
            &format!(r#"{{"info_hash":"{h}","name":"Example Torrent","size":734003200}}"#),
        );
        assert_eq!(s, 201, "{v}");
        assert_eq!(v["added_at"], "2025-10-29T12:00:00Z");
        let (s, v) = call(
            &t,
            "POST",
            "/api/torrents",
            &format!(r#"{{"info_hash":"{h}","name":"x","size":1}}"#),
        );
        assert_eq!(
            (s, v["error"].as_str().unwrap().contains("already")),
            (409, true)
        );
        assert_eq!(
            call(
                &t,
                "POST",
                "/api/torrents",
                r#"{"info_hash":"zz","name":"x","size":1}"#
            )
            .0,
            400
        );
        assert_eq!(call(&t, "POST", "/api/torrents", "d3:fooi1ee").0, 400);
        let (s, v) = call(
            &t,
            "GET",
            "/api/torrents?q=example&sort=added&page=1&per_page=10",
            "",
        );
        assert_eq!((s, v["total"].as_u64()), (200, Some(1)));
        assert_eq!(v["torrents"][0]["name"], "Example Torrent");
        assert_eq!(call(&t, "GET", "/api/torrents?sort=size", "").0, 400);
        assert_eq!(call(&t, "GET", "/api/torrents?page=0", "").0, 400);
        let (s, v) = call(&t, "GET", &format!("/api/torrents/{h}"), "");
        assert_eq!((s, v["peers"].as_array().map(Vec::len)), (200, Some(0)));
        assert_eq!(call(&t, "GET", "/api/torrents/nothex", "").0, 400);
        assert_eq!(
            call(&t, "GET", &format!("/api/torrents/{}", "ff".repeat(20)), "").0,
            404
        );
        assert_eq!(call(&t, "DELETE", &format!("/api/torrents/{h}"), "").0, 204);
        assert_eq!(call(&t, "DELETE", &format!("/api/torrents/{h}"), "").0, 404);
        assert_eq!(call(&t, "PATCH", "/api/torrents", "").0, 405);
        assert_eq!(call(&t, "GET", "/api/nothing", "").0, 404);
    }

    #[test]
    fn access_and_passkeys() {
        let t = tracker();
        let h = "ab".repeat(20);
        assert_eq!(
            call(&t, "PUT", &format!("/api/access/allow/{h}"), "").0,
            201
        );
        assert_eq!(
            call(&t, "PUT", &format!("/api/access/allow/{h}"), "").0,
            200
        );
        let (_, v) = call(&t, "GET", "/api/access", "");
        assert_eq!(v["mode"], "whitelist");
        assert_eq!(v["allow"][0], h);
        assert_eq!(
            call(&t, "DELETE", &format!("/api/access/allow/{h}"), "").0,
            204
        );
        assert_eq!(
            call(&t, "DELETE", &format!("/api/access/deny/{h}"), "").0,
            404
        );
        let (s, v) = call(
            &t,
            "POST",
            "/api/passkeys",
            r#"{"expires_in":60,"label":"alice"}"#,
        );
        assert_eq!(s, 201);
        let key = v["key"].as_str().unwrap().to_owned();
        assert_eq!(t.check_passkey(Some(key.as_bytes())), Ok(()));
        assert_eq!(call(&t, "GET", "/api/passkeys", "").1[0]["label"], "alice");
        assert_eq!(
            call(&t, "DELETE", &format!("/api/passkeys/{key}"), "").0,
            204
        );
        assert!(t.check_passkey(Some(key.as_bytes())).is_err());
        assert_eq!(
            call(&t, "POST", "/api/passkeys", r#"{"key":"short"}"#).0,
            400
        );
        let (s, v) = call(&t, "GET", "/api/passkeys/users/7/1", "");
        assert_eq!(s, 200);
        let k = v["key"].as_str().unwrap().to_owned();
        assert_eq!(t.check_passkey(Some(k.as_bytes())), Ok(()));
        assert_eq!(
            call(&t, "PUT", "/api/passkeys/users/7/min_version/2", "").0,
            200
        );
        assert!(t.check_passkey(Some(k.as_bytes())).is_err());
    }
}
