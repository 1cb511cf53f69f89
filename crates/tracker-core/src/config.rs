//! The tracker-core settings. The daemon fills this from the `[protocol]`, `[swarm]`,
//! `[access]` and `[limits]` sections of `config.toml`; the defaults here are the documented
//! defaults there.

use crate::access::AccessConfig;
use crate::limits::LimitsConfig;

/// Settings that shape the swarm store and the announce rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreConfig {
    /// Which torrents are tracked and whether passkeys are required.
    pub access: AccessConfig,
    /// Per-address request rates and bans.
    pub limits: LimitsConfig,
    /// Number of shards (independent locks) in the swarm map; rounded up to a power of two,
    /// at least 1024 by default so that workers rarely meet on one lock.
    pub shards: usize,
    /// Most torrents kept at once. Announces for new torrents beyond it are answered (zero
    /// counts, no peers) but not stored, and counted.
    pub max_torrents: usize,
    /// Most peers (both families together) kept per torrent. Announces from new peers beyond it
    /// are answered but not stored, and counted.
    pub max_peers_per_swarm: usize,
    /// Seconds a peer stays in the swarm after its last announce (at most
    /// [`crate::swarm::MAX_PEER_TIMEOUT`], 8191 s; larger values are clamped).
    pub peer_timeout: u32,
    /// Peers returned when the client does not say how many it wants (or asks for a negative number).
    pub default_numwant: u32,
    /// Seconds between announces that clients are told (`interval`), before jitter.
    pub interval: u32,
    /// `min interval` told to clients, in seconds.
    pub min_interval: u32,
    /// `interval` is drawn uniformly from `interval` +- this many percent, so that clients
    /// that started together spread out.
    pub interval_jitter_percent: u32,
}

impl Default for CoreConfig {
    fn default() -> Self {
        Self {
            access: AccessConfig::default(),
            limits: LimitsConfig::default(),
            shards: 1024,
            max_torrents: 10_000_000,
            max_peers_per_swarm: 100_000,
            peer_timeout: 2700,
            default_numwant: 50,
            interval: 1800,
            min_interval: 900,
            interval_jitter_percent: 10,
        }
    }
}
