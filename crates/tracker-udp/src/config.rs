//! The `[udp]` section of `config.toml`.

use std::net::SocketAddr;

use documented::{Documented, DocumentedFields};
use serde::{Deserialize, Serialize};

use crate::UdpError;

/// Most IPv4 peers a reply can carry by default: 20 + 200 * 6 = 1220 bytes, one packet on any
/// path with the IPv6 minimum MTU of 1280.
pub const DEFAULT_MAX_NUMWANT_V4: u32 = 200;
/// Most IPv6 peers a reply can carry by default: 20 + 66 * 18 = 1208 bytes.
pub const DEFAULT_MAX_NUMWANT_V6: u32 = 66;
/// The largest UDP payload over IPv4 (65535 - 8 - 20); replies are never sized beyond it.
pub const MAX_UDP_PAYLOAD: usize = 65_507;

/// The UDP tracker (BEP 15, with BEP 41 URL data): its sockets, worker threads, connection ids
/// and reply sizes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Documented, DocumentedFields)]
#[serde(default, deny_unknown_fields)]
pub struct UdpConfig {
    /// Socket addresses to serve on. IPv6 addresses are bound `IPV6_V6ONLY`, so `0.0.0.0:6969` and
    /// `[::]:6969` can be bound together. An empty list disables UDP.
    pub bind: Vec<SocketAddr>,
    /// Worker threads; each owns one socket per bind address (SO_REUSEPORT, same port). `0` means
    /// the number of available cores; at most 1024.
    pub workers: usize,
    /// Kernel receive buffer per socket (`SO_RCVBUF`), in bytes. The kernel caps it at
    /// `net.core.rmem_max` unless that is raised (`systemd/sysctl.d` does). It only absorbs
    /// bursts: once a worker is saturated a longer queue adds delay, and datagrams waiting in it
    /// go cold in the CPU caches (measured with `udp_compare.sh`: 8 MiB answered about 9 % fewer
    /// requests per second than 256 KiB, 1 MiB about 6 % fewer). 256 KiB holds a few
    /// milliseconds of announces at full load.
    pub recv_buffer_bytes: usize,
    /// Kernel send buffer per socket (`SO_SNDBUF`), in bytes, capped by `net.core.wmem_max`.
    pub send_buffer_bytes: usize,
    /// Packets received (and answered) per `recvmmsg` / `sendmmsg` call, per socket. 1 to 1024.
    pub batch_size: usize,
    /// How long an issued connection id stays valid, in seconds (BEP 15 says 60 s; clients often
    /// reuse ids a little late). 1 to 3600.
    pub connection_id_lifetime_secs: u32,
    /// Key that signs connection ids: 32 hex characters (16 bytes). Empty means the tracker's own
    /// key (random at first start, then kept in the snapshot, so restarts keep issued ids valid).
    /// Give several instances the same key to let them accept each other's ids.
    pub connection_id_key: String,
    /// Most peers in a reply to an IPv4 announce (6 bytes each). Up to 10914 (a 64 KiB datagram),
    /// but more than 200 no longer fits one 1280-byte-MTU packet.
    pub max_numwant_v4: u32,
    /// Most peers in a reply to an IPv6 announce (18 bytes each). Up to 3638 (a 64 KiB datagram),
    /// but more than 66 no longer fits one 1280-byte-MTU packet.
    pub max_numwant_v6: u32,
    /// Socket read timeout in milliseconds, 1 to 60000: how quickly an idle worker notices
    /// shutdown.
    pub read_timeout_ms: u64,
}

impl Default for UdpConfig {
    fn default() -> Self {
        Self {
            bind: vec![
                SocketAddr::from(([0, 0, 0, 0], 6969)),
                SocketAddr::from(([0u16; 8], 6969)),
            ],
            workers: 0,
            recv_buffer_bytes: 256 << 10,
            send_buffer_bytes: 4 << 20,
            batch_size: 64,
            connection_id_lifetime_secs: 120,
            connection_id_key: String::new(),
            max_numwant_v4: DEFAULT_MAX_NUMWANT_V4,
            max_numwant_v6: DEFAULT_MAX_NUMWANT_V6,
            read_timeout_ms: 200,
        }
    }
}

impl UdpConfig {
    /// Checks every value and parses the key: `Ok(None)` when no key is configured.
    /// The daemon's `--check-config` can call this; [`crate::UdpServer::start`] does.
    pub fn validate(&self) -> Result<Option<[u8; 16]>, UdpError> {
        let bad = |field: &'static str, reason: String| UdpError::Config { field, reason };
        if self.workers > 1024 {
            return Err(bad(
                "workers",
                format!("{} is more than 1024", self.workers),
            ));
        }
        if !(1..=1024).contains(&self.batch_size) {
            return Err(bad(
                "batch_size",
                format!("{} is not in 1..=1024", self.batch_size),
            ));
        }
        if !(1..=3600).contains(&self.connection_id_lifetime_secs) {
            return Err(bad(
                "connection_id_lifetime_secs",
                format!("{} is not in 1..=3600", self.connection_id_lifetime_secs),
            ));
        }
        if !(1..=60_000).contains(&self.read_timeout_ms) {
            return Err(bad(
                "read_timeout_ms",
                format!("{} is not in 1..=60000", self.read_timeout_ms),
            ));
        }
        let max4 = crate::protocol::max_peers_fitting(MAX_UDP_PAYLOAD, 6);
        if self.max_numwant_v4 > max4 {
            return Err(bad(
                "max_numwant_v4",
                format!("{} is more than {max4}", self.max_numwant_v4),
            ));
        }
        let max6 = crate::protocol::max_peers_fitting(MAX_UDP_PAYLOAD, 18);
        if self.max_numwant_v6 > max6 {
            return Err(bad(
                "max_numwant_v6",
                format!("{} is more than {max6}", self.max_numwant_v6),
            ));
        }
        if self.connection_id_key.is_empty() {
            return Ok(None);
        }
        let mut key = [0u8; 16];
        hex::decode_to_slice(self.connection_id_key.trim(), &mut key).map_err(|_| {
            bad(
                "connection_id_key",
                "expected 32 hex characters (16 bytes) or an empty string".into(),
            )
        })?;
        Ok(Some(key))
    }

    /// Worker threads to start: `workers`, or the available cores when it is 0.
    pub fn effective_workers(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_values_are_named() {
        let c = UdpConfig::default();
        assert_eq!(c.validate().ok(), Some(None));
        assert_eq!(c.bind[1].to_string(), "[::]:6969");
        let key = UdpConfig {
            connection_id_key: "00112233445566778899aabbccddeeff".into(),
            ..c
        };
        assert_eq!(key.validate().ok().flatten().map(|k| k[15]), Some(0xff));
        let bad = UdpConfig {
            connection_id_key: "xyz".into(),
            ..UdpConfig::default()
        };
        assert!(matches!(
            bad.validate(),
            Err(UdpError::Config {
                field: "connection_id_key",
                ..
            })
        ));
        let big = UdpConfig {
            max_numwant_v6: 5000,
            ..UdpConfig::default()
        };
        assert!(big.validate().is_err());
    }
}
