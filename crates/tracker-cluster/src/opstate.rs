//! Shared operator state: what the admin API (and the CLI, which calls it) edits — the API's
//! torrent allow and deny lists, the API's client prefix lists, stored passkeys, per-user
//! minimum versions of stateless keys, and the API-made torrent index entries — kept in Redis
//! so that an edit at any node holds at every node within a second and survives any node's
//! restart. The config files' lists and the `index_dir` entries stay per node.
//!
//! What lives here: the pure model ([`State`]: one map of field -> value per kind, the same
//! shape as the Redis hashes `{<prefix>state}:<kind>`), reading it from and applying it to a
//! tracker, and the three-way merge. What does not: the polling loop and Redis I/O
//! (`watch.rs`).
//!
//! # The merge
//!
//! A node keeps `base`, the state as of its last exchange with Redis. A round reads Redis
//! (`remote`) and the tracker (`local`); `local` differs from `base` exactly by this node's API
//! edits since then. Those edits are laid over `remote` (`merged`), the tracker is brought to
//! `merged` entry by entry, and the edits are written to Redis (`HSET`/`HDEL` per entry). Edits
//! made at two nodes to different entries both survive; to the same entry, the later write
//! wins. The admin API and a round's apply step hold one lock ([`StateHooks::edit`]), so that
//! no API edit falls between reading `local` and applying `merged`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use tracker_core::{IndexMeta, InfoHash, Passkey, PasskeyEntry, Tracker};

/// What the daemon's admin API shares with the cluster's state loop.
#[derive(Debug, Default)]
pub struct StateHooks {
    /// Held by the admin API around a call that edits, and by a round while it applies.
    pub edit: Mutex<()>,
    /// Notified after an API call that may have edited something: the loop runs a round at
    /// once instead of at its next poll.
    pub changed: tokio::sync::Notify,
}

/// The kinds of shared operator state, in order; each is one Redis hash.
pub const KINDS: [&str; 7] = [
    "allow",
    "deny",
    "client_allow",
    "client_deny",
    "passkeys",
    "min_versions",
    "index",
];

/// One map of field -> value per kind of [`KINDS`].
pub type State = [BTreeMap<String, String>; 7];

/// One entry set (`Some`) or removed (`None`).
pub type Edit = (usize, String, Option<String>);

/// The tracker's API-made state.
pub fn local(t: &Tracker) -> State {
    let mut s = State::default();
    let a = t.access().state();
    s[0] = a
        .allow
        .iter()
        .map(|h| (h.to_string(), "1".into()))
        .collect();
    s[1] = a.deny.iter().map(|h| (h.to_string(), "1".into())).collect();
    s[2] = a
        .client_allow
        .into_iter()
        .map(|p| (p, "1".into()))
        .collect();
    s[3] = a.client_deny.into_iter().map(|p| (p, "1".into())).collect();
    s[4] = a
        .passkeys
        .iter()
        .filter_map(|e| Some((e.key.as_str().to_owned(), serde_json::to_string(e).ok()?)))
        .collect();
    s[5] = a
        .min_versions
        .iter()
        .filter(|(_, v)| *v > 0)
        .map(|(u, v)| (u.to_string(), v.to_string()))
        .collect();
    s[6] = t
        .api_index_entries()
        .into_iter()
        .filter_map(|(h, m)| Some((h.to_string(), serde_json::to_string(&m).ok()?)))
        .collect();
    s
}

/// The entries where `now` differs from `before`, as edits that turn `before` into `now`.
pub fn diff(before: &State, now: &State) -> Vec<Edit> {
    let mut out = Vec::new();
    for k in 0..KINDS.len() {
        for (f, v) in &now[k] {
            if before[k].get(f) != Some(v) {
                out.push((k, f.clone(), Some(v.clone())));
            }
        }
        for f in before[k].keys() {
            if !now[k].contains_key(f) {
                out.push((k, f.clone(), None));
            }
        }
    }
    out
}

/// `s` with `edits` applied.
pub fn with_edits(mut s: State, edits: &[Edit]) -> State {
    for (k, f, v) in edits {
        match v {
            Some(v) => s[*k].insert(f.clone(), v.clone()),
            None => s[*k].remove(f),
        };
    }
    s
}

/// Sets one entry in the tracker (`None` removes it); `was_set`: the tracker holds the entry
/// now (with another value). Returns false when the entry was not understood or refused (the
/// caller logs it; nothing else is touched).
pub fn apply(t: &Tracker, kind: usize, field: &str, value: Option<&str>, was_set: bool) -> bool {
    let a = t.access();
    let hash = || field.parse::<InfoHash>().ok();
    match (kind, value) {
        (0 | 1, v) => {
            let Some(h) = hash() else { return false };
            match (kind, v.is_some()) {
                (0, true) => a.allow(h),
                (0, false) => a.unallow(&h),
                (_, true) => a.deny(h),
                (_, false) => a.undeny(&h),
            };
            true
        }
        (2 | 3, Some(_)) => a.clients().add(kind == 3, field).is_ok(),
        (2 | 3, None) => {
            a.clients().remove(kind == 3, field);
            true
        }
        (4, Some(v)) => match serde_json::from_str::<PasskeyEntry>(v) {
            Ok(e) if e.key.as_str() == field => {
                a.add_passkey(e);
                true
            }
            _ => false,
        },
        (4, None) => match Passkey::parse(field.as_bytes()) {
            Some(k) => {
                a.revoke_passkey(&k);
                true
            }
            None => false,
        },
        (5, v) => match (field.parse::<u32>(), v.map_or(Ok(0), str::parse::<u16>)) {
            (Ok(user), Ok(version)) => {
                a.set_min_version(user, version);
                true
            }
            _ => false,
        },
        (6, v) => {
            let Some(h) = hash() else { return false };
            let meta = match v.map(serde_json::from_str::<IndexMeta>) {
                Some(Ok(m)) => Some(IndexMeta {
                    from_dir: false,
                    ..m
                }),
                Some(Err(_)) => return false,
                None => None,
            };
            // Replacing an API entry: remove it first. An entry from this node's index_dir is
            // this node's own: index_add refuses to replace it.
            if was_set || meta.is_none() {
                let _ = t.index_remove(&h);
            }
            match meta {
                Some(m) => t.index_add(h, m).is_ok(),
                None => true,
            }
        }
        _ => false,
    }
}

/// Brings the tracker from `local` to `target`, entry by entry. Returns how many entries
/// changed and how many were refused.
pub fn converge(t: &Tracker, local: &State, target: &State) -> (usize, usize) {
    let mut changed = 0;
    let mut refused = 0;
    for (k, f, v) in diff(local, target) {
        changed += 1;
        if !apply(t, k, &f, v.as_deref(), local[k].contains_key(&f)) {
            refused += 1;
            tracing::warn!(kind = KINDS[k], entry = %f, "cluster: shared operator entry skipped");
        }
    }
    (changed, refused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracker_core::{Clock, CoreConfig};

    fn tracker() -> Tracker {
        Tracker::with_clock(CoreConfig::default(), Clock::manual(1_000_000))
    }

    #[test]
    fn every_kind_round_trips_through_the_model() {
        let a = tracker();
        let h: InfoHash = "aa".repeat(20).parse().unwrap();
        a.access().allow(h);
        a.access().deny(h);
        a.access().clients().add(false, "-qB").unwrap();
        a.access().clients().add(true, "-XX").unwrap();
        let key = Passkey::random();
        a.access().add_passkey(PasskeyEntry {
            key,
            expires_at: Some(5),
            label: "u".into(),
        });
        a.access().set_min_version(7, 3);
        let meta = IndexMeta {
            name: "n".into(),
            size: 9,
            added_at: 100,
            ..IndexMeta::default()
        };
        a.index_add(h, meta.clone()).unwrap();
        let s = local(&a);
        assert!(s.iter().all(|m| m.len() == 1), "{s:?}");

        // Another tracker converges to it, then back to empty.
        let b = tracker();
        assert_eq!(converge(&b, &local(&b), &s), (7, 0));
        assert_eq!(local(&b), s);
        assert_eq!(b.index_get(&h, 1_000_000).unwrap().summary.name, "n");
        assert_eq!(converge(&b, &s, &State::default()), (7, 0));
        assert_eq!(local(&b), State::default());
        assert!(!b.is_indexed(&h));
    }

    #[test]
    fn the_merge_keeps_edits_made_at_both_sides() {
        let mut base = State::default();
        base[0].insert("x".into(), "1".into());
        base[0].insert("y".into(), "1".into());
        // Here: y removed, z added. Elsewhere (remote): x removed, w added.
        let mut local = base.clone();
        local[0].remove("y");
        local[0].insert("z".into(), "1".into());
        let mut remote = base.clone();
        remote[0].remove("x");
        remote[0].insert("w".into(), "1".into());
        let edits = diff(&base, &local);
        assert_eq!(edits.len(), 2);
        let merged = with_edits(remote, &edits);
        assert_eq!(merged[0].keys().collect::<Vec<_>>(), ["w", "z"]);
    }
}
