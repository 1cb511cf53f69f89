//! The `[cluster]` section of `config.toml`.

use documented::{Documented, DocumentedFields};
use serde::{Deserialize, Serialize};

use crate::ClusterError;

/// Cluster mode: several daemons share their swarms through one Redis (>= 7.0) or Valkey
/// (>= 7.2). Each node answers from its own memory; what its announces change is written to
/// Redis once per short window (one script call; on Redis Cluster one pipeline per swarm) and
/// replayed by the other nodes from a Redis stream.
/// Off by default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Documented, DocumentedFields)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Where the shared store is: `""` (cluster mode off), `redis://host:port[/db]` (one
    /// Redis or Valkey), `rediss://host:port[/db]` for TLS (checked against the system's CA
    /// certificates), or for Redis Cluster a comma-separated list of two or more seed nodes,
    /// `redis://h1:p1,redis://h2:p2,...` (any reachable one finds the rest; no `/db`). Put a
    /// password in MINI_TORRUST_CLUSTER_REDIS_URL rather than here.
    pub redis_url: String,
    /// Prefix of every key this cluster uses in Redis, so that several clusters (or other
    /// applications) can share one instance.
    pub key_prefix: String,
    /// This node's name in the replication log and the logs. Empty means the host name.
    pub node_name: String,
    /// How often announces' changes are sent to Redis, in milliseconds (one script call or,
    /// on Redis Cluster, one pipeline per swarm, per window), 1 to 1000. Also bounds how long
    /// another node waits for them.
    pub flush_interval_ms: u64,
    /// Change records each swarm shard holds between two flushes (preallocated, 48 bytes
    /// each, `[swarm] shards` of them). A full ring drops records and counts them.
    pub ring_capacity: usize,
    /// Most changes kept while Redis cannot be reached or falls behind (about 48 bytes each).
    /// Beyond it the oldest are dropped and counted; memory stays bounded.
    pub max_pending: usize,
    /// Approximate length the replication stream is trimmed to (`XADD MAXLEN ~`), in batches
    /// (at most one per node per flush: 2000 is 40 s of history for one busy node at 20 ms). It
    /// costs Redis memory, about 32 bytes per change carried. A node that falls further behind
    /// than this reloads the swarms from Redis (`cluster_reloads_total`).
    pub stream_max_len: usize,
    /// How long one Redis command may take before it counts as failed, in milliseconds.
    pub timeout_ms: u64,
    /// How long a starting node waits for Redis to load the swarms and the shared
    /// connection-id key before it starts serving anyway (from memory), in seconds.
    pub startup_timeout_secs: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            redis_url: String::new(),
            key_prefix: "mt:".into(),
            node_name: String::new(),
            flush_interval_ms: 20,
            ring_capacity: 256,
            max_pending: 1_000_000,
            stream_max_len: 2_000,
            timeout_ms: 1_000,
            startup_timeout_secs: 30,
        }
    }
}

impl ClusterConfig {
    /// Whether cluster mode is on (`redis_url` is not empty).
    pub fn enabled(&self) -> bool {
        !self.redis_url.is_empty()
    }

    /// Checks every option; the first problem names it.
    pub fn validate(&self) -> Result<(), ClusterError> {
        let bad = |what: String| Err(ClusterError::Config(what));
        if !self.enabled() {
            return Ok(());
        }
        if let Err(e) = crate::conn::Target::parse(&self.redis_url) {
            return bad(format!(
                "cluster.redis_url is not a Redis URL or a list of Redis Cluster seeds: {e}"
            ));
        }
        if !(1..=1000).contains(&self.flush_interval_ms) {
            return bad("cluster.flush_interval_ms must be 1 to 1000".into());
        }
        if !(1..=1 << 20).contains(&self.ring_capacity) {
            return bad("cluster.ring_capacity must be 1 to 1048576".into());
        }
        if self.max_pending == 0 || self.stream_max_len == 0 {
            return bad("cluster.max_pending and cluster.stream_max_len must be at least 1".into());
        }
        if !(1..=60_000).contains(&self.timeout_ms) {
            return bad("cluster.timeout_ms must be 1 to 60000".into());
        }
        if self.key_prefix.contains(['{', '}']) {
            return bad("cluster.key_prefix must not contain { or } (they make hash tags)".into());
        }
        if self.node_name.len() > 200 {
            return bad("cluster.node_name must be at most 200 bytes".into());
        }
        Ok(())
    }

    /// The node name: `node_name`, else the host name, else "node".
    pub fn node_name(&self) -> String {
        if !self.node_name.is_empty() {
            return self.node_name.clone();
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "node".into())
    }
}

/// The addresses in `redis_url`: one, or a Redis Cluster's seeds (comma-separated, blanks and
/// empty entries ignored).
pub(crate) fn seeds(url: &str) -> Vec<&str> {
    let seeds: Vec<&str> = url
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if seeds.is_empty() { vec![url] } else { seeds }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default_and_checked_when_on() {
        let c = ClusterConfig::default();
        assert!(!c.enabled());
        assert!(c.validate().is_ok());
        let on = ClusterConfig {
            redis_url: "redis://127.0.0.1:6379/0".into(),
            ..c.clone()
        };
        assert!(on.validate().is_ok());
        for bad in [
            ClusterConfig {
                redis_url: "http://x".into(),
                ..on.clone()
            },
            ClusterConfig {
                flush_interval_ms: 0,
                ..on.clone()
            },
            ClusterConfig {
                key_prefix: "a{b".into(),
                ..on.clone()
            },
            ClusterConfig {
                ring_capacity: 0,
                ..on.clone()
            },
            ClusterConfig {
                redis_url: "redis://127.0.0.1:7001,http://x".into(),
                ..on.clone()
            },
            // A Redis Cluster has only database 0.
            ClusterConfig {
                redis_url: "redis://127.0.0.1:7001/3,redis://127.0.0.1:7002/3".into(),
                ..on.clone()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        assert!(!on.node_name().is_empty());
        for good in [
            "rediss://127.0.0.1:6380/0",
            "redis://127.0.0.1:7001, redis://127.0.0.1:7002,",
        ] {
            let c = ClusterConfig {
                redis_url: good.into(),
                ..on.clone()
            };
            assert!(c.validate().is_ok(), "{good}: {:?}", c.validate());
        }
        assert_eq!(
            seeds("redis://a:1, redis://b:2,"),
            vec!["redis://a:1", "redis://b:2"]
        );
    }
}
