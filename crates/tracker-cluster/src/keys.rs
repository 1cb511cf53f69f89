//! Key names in Redis. Every key of one swarm shares the hash tag `{<prefix><info hash hex>}`,
//! so a swarm sits in one Redis Cluster slot and one pipeline can touch all of it:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{mt:<hex>}:s4`, `:l4`, `:s6`, `:l6` | sorted set | seeders / leechers per family; member = compact address (6 or 18 bytes), score = expiry in unix ms |
//! | `{mt:<hex>}:done` | set | compact addresses whose completed download was counted; its size is the torrent's completed count |
//! | `mt:log` | stream | the replication log: one entry per flush, fields `n` (sender instance), `node` (its name), `b` (a [`crate::batch`]) and `s` (the sender's batch number; not on completed-count entries) |
//! | `mt:udp_key` | string | the shared UDP connection-id key, 32 hex characters |
//! | `{mt:state}:<kind>`, `:version`, `:epoch` | hash, string, string | the operator state, its version and the epoch marker (named in `watch.rs`; one hash tag, one slot) |
//!
//! Each swarm key carries an absolute expiry (`PEXPIREAT`) at its latest peer's expiry, so an
//! abandoned swarm disappears by Redis's own expiry, with no scan.

use tracker_core::InfoHash;

/// Names keys under one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

/// The four sorted-set suffixes, as (suffix, IPv6, seeders).
pub const PEER_SETS: [(&str, bool, bool); 4] = [
    ("s4", false, true),
    ("l4", false, false),
    ("s6", true, true),
    ("l6", true, false),
];

impl Keys {
    /// Keys under `prefix` (e.g. "mt:").
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    fn tag(&self, ih: &InfoHash) -> String {
        format!("{{{}{}}}", self.prefix, hex::encode(ih.0))
    }

    /// The sorted set of a swarm's peers of one family and role.
    pub fn peers(&self, ih: &InfoHash, v6: bool, seeders: bool) -> String {
        let suffix = match (v6, seeders) {
            (false, true) => "s4",
            (false, false) => "l4",
            (true, true) => "s6",
            (true, false) => "l6",
        };
        format!("{}:{suffix}", self.tag(ih))
    }

    /// The set of peers whose completed download was counted.
    pub fn done(&self, ih: &InfoHash) -> String {
        format!("{}:done", self.tag(ih))
    }

    /// The prefix itself (`flush.lua` builds the swarm keys from it, as [`Self::peers`] does).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The replication stream.
    pub fn log(&self) -> String {
        format!("{}log", self.prefix)
    }

    /// The shared UDP connection-id key.
    pub fn udp_key(&self) -> String {
        format!("{}udp_key", self.prefix)
    }

    /// A `SCAN MATCH` pattern for every swarm's peer sets (glob characters of the prefix
    /// escaped).
    pub fn peers_pattern(&self) -> String {
        let mut p = String::from("{");
        for ch in self.prefix.chars() {
            if matches!(ch, '*' | '?' | '[' | ']' | '\\') {
                p.push('\\');
            }
            p.push(ch);
        }
        p.push_str("*}:[sl][46]");
        p
    }

    /// The torrent, family and role of a peer-set key; `None` for any other key.
    pub fn parse_peers(&self, key: &str) -> Option<(InfoHash, bool, bool)> {
        let rest = key.strip_prefix('{')?.strip_prefix(self.prefix.as_str())?;
        let (hex_part, suffix) = rest.split_once("}:")?;
        let mut ih = [0u8; 20];
        hex::decode_to_slice(hex_part, &mut ih).ok()?;
        let (_, v6, seeders) = PEER_SETS.iter().find(|(s, _, _)| *s == suffix)?;
        Some((InfoHash(ih), *v6, *seeders))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_share_the_swarm_tag_and_parse_back() {
        let k = Keys::new("mt:");
        let ih = InfoHash([0xab; 20]);
        let key = k.peers(&ih, true, false);
        assert_eq!(key, format!("{{mt:{}}}:l6", "ab".repeat(20)));
        assert_eq!(k.parse_peers(&key), Some((ih, true, false)));
        assert!(k.done(&ih).starts_with(&key[..key.len() - 2]));
        assert_eq!(k.parse_peers(&k.done(&ih)), None);
        assert_eq!(Keys::new("mt:").parse_peers("{xx:ab}:s4"), None);
        assert_eq!(Keys::new("a*[").peers_pattern(), "{a\\*\\[*}:[sl][46]");
    }
}
