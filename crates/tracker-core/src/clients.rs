//! Client filters and client families, both read from the peer id an announce carries.
//!
//! [`ClientFilter`]: `[access] client_allow` / `client_deny` and the prefixes added through the
//! admin API. A peer id that starts with a denied prefix is refused; when any allow prefix
//! exists, one that starts with none of them is refused too ("client not allowed", over both
//! protocols). The config's prefixes are replaced on SIGHUP; the API's are kept in the
//! snapshot. The announce path reads one flag while no prefix is set, and otherwise one
//! `ArcSwap` load and a few `starts_with`: no lock, no allocation.
//!
//! [`client_family`]: the Azureus-style two-letter code of a peer id (`-qB4650-...` is `qB`),
//! mapped onto a fixed list ([`CLIENT_FAMILIES`]) so that `/metrics` has a bounded number of
//! label values: the known codes and "other" (an unknown code, or a peer id of another style).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;

use crate::types::PeerId;

/// Longest prefix accepted, in bytes (a peer id is 20).
pub const MAX_PREFIX_LEN: usize = 20;

/// The client families counted in `/metrics`, by Azureus-style code; the last is "other".
pub const CLIENT_FAMILIES: [&str; 25] = [
    "qB", // qBittorrent
    "TR", // Transmission
    "lt", // libtorrent (rasterbar) and the clients built on it
    "LT", // libtorrent (rakshasa), rtorrent
    "UT", // uTorrent
    "UM", // uTorrent for Mac
    "UW", // uTorrent Web
    "BT", // BitTorrent
    "BI", // BiglyBT
    "AZ", // Vuze / Azureus
    "DE", // Deluge
    "KT", // KTorrent
    "BC", // BitComet
    "FD", // Free Download Manager
    "PI", // PicoTorrent
    "WW", // WebTorrent
    "WD", // WebTorrent Desktop
    "XL", // Xunlei
    "SD", // Thunder
    "FW", // FrostWire
    "TX", // Tixati
    "BW", // BitWombat
    "MG", // MediaGet
    "AG", // Ares
    "other",
];

/// The index in [`CLIENT_FAMILIES`] of the client that sent `peer_id`.
#[inline]
pub fn client_family(peer_id: &[u8; 20]) -> usize {
    const OTHER: usize = CLIENT_FAMILIES.len() - 1;
    if peer_id[0] != b'-' || peer_id[7] != b'-' {
        return OTHER;
    }
    let code = [peer_id[1], peer_id[2]];
    CLIENT_FAMILIES[..OTHER]
        .iter()
        .position(|c| c.as_bytes() == code)
        .unwrap_or(OTHER)
}

/// Why a prefix cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("client prefix {0:?} must be 1 to 20 printable ASCII characters, without '/' or spaces")]
pub struct BadPrefix(pub String);

/// Checks a prefix from the config or the API.
pub fn check_prefix(p: &str) -> Result<(), BadPrefix> {
    let ok = !p.is_empty()
        && p.len() <= MAX_PREFIX_LEN
        && p.bytes().all(|b| b.is_ascii_graphic() && b != b'/');
    if ok { Ok(()) } else { Err(BadPrefix(p.into())) }
}

/// The prefixes, by where they came from.
#[derive(Debug, Default, Clone)]
struct Prefixes {
    config_allow: Vec<String>,
    config_deny: Vec<String>,
    api_allow: Vec<String>,
    api_deny: Vec<String>,
}

impl Prefixes {
    fn any(&self) -> bool {
        !(self.config_allow.is_empty()
            && self.config_deny.is_empty()
            && self.api_allow.is_empty()
            && self.api_deny.is_empty())
    }

    fn allows(&self, id: &[u8; 20]) -> bool {
        let hit = |l: &[String]| l.iter().any(|p| id.starts_with(p.as_bytes()));
        if hit(&self.config_deny) || hit(&self.api_deny) {
            return false;
        }
        (self.config_allow.is_empty() && self.api_allow.is_empty())
            || hit(&self.config_allow)
            || hit(&self.api_allow)
    }
}

/// The client allow and deny lists.
#[derive(Debug, Default)]
pub struct ClientFilter {
    on: AtomicBool,
    prefixes: ArcSwap<Prefixes>,
    /// Serialises writers; readers never take it.
    edit: std::sync::Mutex<()>,
}

/// The two lists as the API shows them: every prefix, the config's first.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ClientLists {
    /// Allowed prefixes (config, then API).
    pub allow: Vec<String>,
    /// Denied prefixes (config, then API).
    pub deny: Vec<String>,
}

impl ClientFilter {
    /// Whether `peer_id` may announce.
    #[inline]
    pub fn allows(&self, peer_id: &PeerId) -> bool {
        !self.on.load(Ordering::Relaxed) || self.prefixes.load().allows(&peer_id.0)
    }

    fn edit(&self, f: impl FnOnce(&mut Prefixes) -> bool) -> bool {
        let _g = self.edit.lock().unwrap_or_else(|e| e.into_inner());
        let mut p = Prefixes::clone(&self.prefixes.load());
        let changed = f(&mut p);
        if changed {
            self.on.store(p.any(), Ordering::Relaxed);
            self.prefixes.store(Arc::new(p));
        }
        changed
    }

    /// Replaces the config's prefixes (at start and on SIGHUP); the API's stay. The caller
    /// has checked them ([`check_prefix`]).
    pub fn set_config(&self, allow: &[String], deny: &[String]) {
        self.edit(|p| {
            p.config_allow = allow.to_vec();
            p.config_deny = deny.to_vec();
            true
        });
    }

    /// Adds an API prefix to the allow (`deny = false`) or deny list; false if it was there.
    pub fn add(&self, deny: bool, prefix: &str) -> Result<bool, BadPrefix> {
        check_prefix(prefix)?;
        Ok(self.edit(|p| {
            let l = if deny {
                &mut p.api_deny
            } else {
                &mut p.api_allow
            };
            let new = !l.iter().any(|x| x == prefix);
            if new {
                l.push(prefix.to_owned());
            }
            new
        }))
    }

    /// Removes an API prefix; false if it was not there (the config's cannot be removed here).
    pub fn remove(&self, deny: bool, prefix: &str) -> bool {
        self.edit(|p| {
            let l = if deny {
                &mut p.api_deny
            } else {
                &mut p.api_allow
            };
            let before = l.len();
            l.retain(|x| x != prefix);
            l.len() != before
        })
    }

    /// Every prefix, for the API.
    pub fn lists(&self) -> ClientLists {
        let p = self.prefixes.load();
        ClientLists {
            allow: p.config_allow.iter().chain(&p.api_allow).cloned().collect(),
            deny: p.config_deny.iter().chain(&p.api_deny).cloned().collect(),
        }
    }

    /// The API's prefixes (what the snapshot keeps): (allow, deny).
    pub fn api_lists(&self) -> (Vec<String>, Vec<String>) {
        let p = self.prefixes.load();
        (p.api_allow.clone(), p.api_deny.clone())
    }

    /// Puts the API's prefixes back from a snapshot (bad ones are skipped).
    pub fn restore_api(&self, allow: &[String], deny: &[String]) {
        let good = |l: &[String]| -> Vec<String> {
            l.iter()
                .filter(|x| check_prefix(x).is_ok())
                .cloned()
                .collect()
        };
        self.edit(|p| {
            p.api_allow = good(allow);
            p.api_deny = good(deny);
            true
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> PeerId {
        let mut b = [b'x'; 20];
        b[..s.len()].copy_from_slice(s.as_bytes());
        PeerId(b)
    }

    #[test]
    fn deny_wins_and_an_allow_list_refuses_the_unlisted() {
        let f = ClientFilter::default();
        assert!(f.allows(&id("-qB4650-")));
        f.set_config(&[], &["-UT2".into()]);
        assert!(!f.allows(&id("-UT2210-")));
        assert!(f.allows(&id("-UT3550-")));
        assert!(f.allows(&id("-qB4650-")));
        assert_eq!(f.add(false, "-qB"), Ok(true));
        assert_eq!(f.add(false, "-qB"), Ok(false));
        assert!(f.allows(&id("-qB4650-")));
        assert!(!f.allows(&id("-TR4000-")), "not on the allow list");
        assert!(!f.allows(&id("-UT2210-")));
        // SIGHUP replaces the config's prefixes only.
        f.set_config(&["-TR".into()], &[]);
        assert!(f.allows(&id("-TR4000-")));
        assert!(f.allows(&id("-qB4650-")), "the API's prefix stays");
        assert_eq!(
            f.lists(),
            ClientLists {
                allow: vec!["-TR".into(), "-qB".into()],
                deny: vec![]
            }
        );
        assert!(f.remove(false, "-qB"));
        assert!(!f.remove(false, "-TR"), "config prefixes are not the API's");
        f.set_config(&[], &[]);
        assert!(f.allows(&id("anything at all here")));
        assert!(f.add(true, "bad prefix").is_err());
        assert!(f.add(true, "").is_err());
        assert!(f.add(true, "a/b").is_err());
    }

    #[test]
    fn families_are_bounded() {
        assert_eq!(CLIENT_FAMILIES[client_family(&id("-qB4650-").0)], "qB");
        assert_eq!(CLIENT_FAMILIES[client_family(&id("-lt0D80-").0)], "lt");
        assert_eq!(CLIENT_FAMILIES[client_family(&id("-LT0D80-").0)], "LT");
        assert_eq!(CLIENT_FAMILIES[client_family(&id("-ZZ0000-").0)], "other");
        assert_eq!(CLIENT_FAMILIES[client_family(&id("A2-1-36-0-").0)], "other");
        assert_eq!(CLIENT_FAMILIES[client_family(&id("M7-4-0--").0)], "other");
    }
}
