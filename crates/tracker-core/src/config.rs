//! The `[protocol]`, `[swarm]` and `[access]` sections of `config.toml`, their defaults and
//! their checks, next to the code they configure; `[limits]` lives beside the limiter in
//! [`crate::limits`]. [`CoreConfig`] is the four of them together: what a [`crate::Tracker`]
//! is built from.
//!
//! Each field's doc comment is the operator's documentation: the daemon writes it, with the
//! default value, into the shipped `config.toml` (so a default is stated once, in `Default`).
//! Every section is `#[serde(default, deny_unknown_fields)]`: a missing key takes its default,
//! an unknown key is an error naming it.

use std::fmt;
use std::path::Path;

use documented::{Documented, DocumentedFields};
use serde::{Deserialize, Serialize};

use crate::access::AccessMode;
use crate::limits::LimitsConfig;
use crate::swarm::MAX_PEER_TIMEOUT;

/// Settings that shape the swarm store and the announce rules: the four sections of
/// `config.toml` that tracker-core reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CoreConfig {
    /// `[protocol]`: what clients are told.
    pub protocol: ProtocolConfig,
    /// `[swarm]`: the swarm store and expiry.
    pub swarm: SwarmConfig,
    /// `[access]`: which torrents are tracked and who may announce.
    pub access: AccessConfig,
    /// `[limits]`: per-address request rates and bans.
    pub limits: LimitsConfig,
}

impl CoreConfig {
    /// Every problem of the four sections, each naming its option (`protocol.interval ...`).
    /// Reads the allow and deny files and lists the index directory, to report them unreadable.
    pub fn validate(&self) -> Vec<String> {
        let mut p = self.protocol.validate();
        p.extend(self.swarm.validate(&self.protocol));
        p.extend(self.access.validate());
        p.extend(self.limits.validate());
        p
    }
}

/// Announce intervals and peer counts told to clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Documented, DocumentedFields)]
#[serde(default, deny_unknown_fields)]
pub struct ProtocolConfig {
    /// Seconds between announces told to clients (`interval`), before jitter, at least 1.
    pub interval: u32,
    /// `min interval` told to clients, in seconds, 1 to `interval`.
    pub min_interval: u32,
    /// `interval` is drawn uniformly from `interval` +- this many percent, 0 to 50, so that
    /// clients that started together spread out.
    pub interval_jitter_percent: u32,
    /// Peers returned when a client does not say how many it wants (or asks for a negative
    /// number), in peers.
    pub default_numwant: u32,
}

impl Default for ProtocolConfig {
    fn default() -> Self {
        Self {
            interval: 1800,
            min_interval: 900,
            interval_jitter_percent: 10,
            default_numwant: 50,
        }
    }
}

impl ProtocolConfig {
    fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.interval == 0 {
            p.push("protocol.interval must be at least 1 second".into());
        }
        if self.min_interval == 0 {
            p.push("protocol.min_interval must be at least 1 second".into());
        }
        if self.min_interval > self.interval {
            p.push(format!(
                "protocol.min_interval ({}) must not be greater than protocol.interval ({})",
                self.min_interval, self.interval
            ));
        }
        if self.interval_jitter_percent > 50 {
            p.push(format!(
                "protocol.interval_jitter_percent ({}) must be 0 to 50",
                self.interval_jitter_percent
            ));
        }
        p
    }
}

/// The swarm store and expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Documented, DocumentedFields)]
#[serde(default, deny_unknown_fields)]
pub struct SwarmConfig {
    /// Independent locks in the swarm map, 1 to 1048576, rounded up to a power of two; at
    /// least 1024 keeps workers from meeting on one lock.
    pub shards: usize,
    /// Most torrents held at once. Announces for new torrents beyond it are answered (zero
    /// counts, no peers) but not stored, and counted in /metrics.
    pub max_torrents: usize,
    /// Most peers held per torrent, both families together. Announces from new peers beyond it
    /// are answered but not stored, and counted in /metrics.
    pub max_peers_per_swarm: usize,
    /// Seconds a peer stays in its swarm after its last announce: more than
    /// `protocol.interval`, at most 8191 (the 14-bit expiry of a stored peer).
    pub peer_timeout: u32,
    /// Seconds between sweeps that drop expired peers and empty torrents (the daemon's
    /// background job; announces purge their own swarm whatever the sweep does).
    pub sweep_interval: u32,
    /// Store each peer's 20-byte peer id. `false` keeps 8 bytes per IPv4 peer instead of 28
    /// (about half the memory per peer): compact replies (what nearly every client asks for,
    /// and all of UDP) are unchanged, `compact=0` replies carry no `peer id` (as with
    /// `no_peer_id=1`), the admin API lists peers with `"peer_id": null` and snapshots omit
    /// the ids. Read at start.
    pub keep_peer_ids: bool,
}

impl Default for SwarmConfig {
    fn default() -> Self {
        Self {
            shards: 1024,
            max_torrents: 10_000_000,
            max_peers_per_swarm: 100_000,
            peer_timeout: 2700,
            sweep_interval: 60,
            keep_peer_ids: true,
        }
    }
}

impl SwarmConfig {
    fn validate(&self, protocol: &ProtocolConfig) -> Vec<String> {
        let mut p = Vec::new();
        if self.shards == 0 || self.shards > 1 << 20 {
            p.push(format!(
                "swarm.shards ({}) must be 1 to 1048576",
                self.shards
            ));
        }
        if self.max_torrents == 0 {
            p.push("swarm.max_torrents must be at least 1".into());
        }
        if self.max_peers_per_swarm == 0 {
            p.push("swarm.max_peers_per_swarm must be at least 1".into());
        }
        if self.peer_timeout <= protocol.interval {
            p.push(format!(
                "swarm.peer_timeout ({}) must be greater than protocol.interval ({}), or peers expire before they announce again",
                self.peer_timeout, protocol.interval
            ));
        }
        if self.peer_timeout > MAX_PEER_TIMEOUT {
            p.push(format!(
                "swarm.peer_timeout ({}) must be at most {MAX_PEER_TIMEOUT} seconds",
                self.peer_timeout
            ));
        }
        if self.sweep_interval == 0 {
            p.push("swarm.sweep_interval must be at least 1 second".into());
        }
        p
    }
}

/// Which torrents are tracked and who may announce.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize, Documented, DocumentedFields)]
#[serde(default, deny_unknown_fields)]
pub struct AccessConfig {
    /// Which torrents are tracked: "open" (all), "whitelist" (torrents in the index or the
    /// allow list; others get "unregistered torrent"), "blacklist" (all but the deny list),
    /// "both" (whitelisted and not denied). The lists are also edited through the admin API.
    pub mode: AccessMode,
    /// Private mode: every announce and scrape needs a 32-character passkey, in the HTTP path
    /// (/PASSKEY/announce, /PASSKEY/scrape) or the UDP BEP 41 URL data (/PASSKEY/announce).
    pub private: bool,
    /// Allow-list file: one 40-character hex info hash per line, "#" comments. Re-read on
    /// SIGHUP and on POST /api/access/reload without losing swarms. "" = none.
    pub allow_file: String,
    /// Deny-list file, same format. "" = none.
    pub deny_file: String,
    /// Shared secret (at least 16 characters) for stateless passkeys that a site derives
    /// without calling the tracker: hex(user id u32 BE, version u16 BE, first 10 bytes of
    /// HMAC-SHA256(secret, "mini-torrust passkey v1" || user id BE || version BE)).
    /// "" = stored passkeys only. Prefer MINI_TORRUST_ACCESS_PASSKEY_SECRET to writing it here.
    pub passkey_secret: String,
    /// A directory of .torrent files kept in the torrent index (and so whitelisted): read at
    /// start, on SIGHUP and on POST /api/access/reload. New files are added; an entry whose
    /// file is gone is removed; entries added through the API are never touched. "" = none.
    pub index_dir: String,
    /// Peer id prefixes of the only clients allowed to announce, e.g. ["-qB", "-TR", "-lt"]
    /// (1 to 20 printable characters each); others get "client not allowed". Empty: every
    /// client not denied. Replaced on SIGHUP; the admin API adds more (kept in the snapshot).
    pub client_allow: Vec<String>,
    /// Peer id prefixes of clients refused ("client not allowed"), e.g. ["-UT2", "-XL"]; a
    /// deny wins over an allow. Replaced on SIGHUP; the admin API adds more.
    pub client_deny: Vec<String>,
}

impl AccessConfig {
    /// The allow-list file, if one is set.
    pub fn allow_path(&self) -> Option<&Path> {
        non_empty(&self.allow_file)
    }

    /// The deny-list file, if one is set.
    pub fn deny_path(&self) -> Option<&Path> {
        non_empty(&self.deny_file)
    }

    /// The `.torrent` directory, if one is set.
    pub fn index_path(&self) -> Option<&Path> {
        non_empty(&self.index_dir)
    }

    /// The stateless-passkey secret, if one is set.
    pub fn secret(&self) -> Option<&[u8]> {
        (!self.passkey_secret.is_empty()).then_some(self.passkey_secret.as_bytes())
    }

    fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        for (name, file) in [
            ("access.allow_file", self.allow_path()),
            ("access.deny_file", self.deny_path()),
        ] {
            if let Some(file) = file
                && let Err(e) = crate::access::read_hex_file(file)
            {
                p.push(format!("{name}: {e}"));
            }
        }
        if let Some(dir) = self.index_path()
            && let Err(e) = std::fs::read_dir(dir)
        {
            p.push(format!("access.index_dir ({}): {e}", self.index_dir));
        }
        for (name, list) in [
            ("access.client_allow", &self.client_allow),
            ("access.client_deny", &self.client_deny),
        ] {
            for prefix in list {
                if let Err(e) = crate::clients::check_prefix(prefix) {
                    p.push(format!("{name}: {e}"));
                }
            }
        }
        if !self.passkey_secret.is_empty() && self.passkey_secret.len() < 16 {
            p.push("access.passkey_secret must be empty or at least 16 characters".into());
        }
        p
    }
}

impl fmt::Debug for AccessConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessConfig")
            .field("mode", &self.mode)
            .field("private", &self.private)
            .field("allow_file", &self.allow_file)
            .field("deny_file", &self.deny_file)
            .field("passkey_secret", &redacted(&self.passkey_secret))
            .field("index_dir", &self.index_dir)
            .field("client_allow", &self.client_allow)
            .field("client_deny", &self.client_deny)
            .finish()
    }
}

/// How a secret is shown in logs and debug output: `""` when unset, else `<redacted>`.
pub fn redacted(secret: &str) -> &'static str {
    if secret.is_empty() { "" } else { "<redacted>" }
}

fn non_empty(s: &str) -> Option<&Path> {
    (!s.is_empty()).then(|| Path::new(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(CoreConfig::default().validate(), Vec::<String>::new());
    }

    #[test]
    fn each_rule_names_its_option() {
        let c = CoreConfig {
            protocol: ProtocolConfig {
                interval: 100,
                min_interval: 200,
                interval_jitter_percent: 51,
                ..ProtocolConfig::default()
            },
            swarm: SwarmConfig {
                shards: 0,
                peer_timeout: 100,
                sweep_interval: 0,
                ..SwarmConfig::default()
            },
            access: AccessConfig {
                passkey_secret: "short".into(),
                ..AccessConfig::default()
            },
            ..CoreConfig::default()
        };
        let p = c.validate();
        for want in [
            "protocol.min_interval (200) must not be greater than protocol.interval (100)",
            "protocol.interval_jitter_percent (51) must be 0 to 50",
            "swarm.shards (0) must be 1 to 1048576",
            "swarm.peer_timeout (100) must be greater than protocol.interval (100)",
            "swarm.sweep_interval must be at least 1 second",
            "access.passkey_secret must be empty or at least 16 characters",
        ] {
            assert!(
                p.iter().any(|m| m.starts_with(want)),
                "{want} missing in {p:?}"
            );
        }
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let c = AccessConfig {
            passkey_secret: "a-secret-of-sixteen-chars".into(),
            ..AccessConfig::default()
        };
        let s = format!("{c:?}");
        assert!(!s.contains("a-secret"), "{s}");
        assert!(s.contains("<redacted>"), "{s}");
        assert_eq!(c.secret(), Some(&b"a-secret-of-sixteen-chars"[..]));
        assert_eq!(AccessConfig::default().secret(), None);
    }
}
