//! # tracker-udp
//!
//! The BEP 15 UDP tracker protocol (with BEP 41 URL data) in front of [`tracker_core::Tracker`].
//!
//! What lives here: the pure wire codec ([`protocol`]: bytes in, typed requests out; typed
//! responses written into caller buffers), signed stateless connection ids
//! ([`connection_id`]), the request handler shared by the workers, tests and benches
//! ([`handler`]), the socket workers (batched `recvmmsg` / `sendmmsg` on Linux, plain
//! `recv_from` / `send_to` elsewhere), [`UdpSockets`] (binding) and [`UdpServer`] (start,
//! `local_addrs`, stop, join: the HTTP tracker's shape), which the daemon starts from the `[udp]`
//! section of its config ([`UdpConfig`]).
//!
//! Access control: the handler asks tracker-core. In private mode the passkey comes from the
//! announce's BEP 41 URL data (`/{passkey}/announce`, like the HTTP path); UDP scrapes cannot
//! carry one and are refused there. Whitelist / blacklist refusals come back from
//! `Tracker::announce`. Refusals are error replies (action 3) and count as `access_denied`.
//!
//! What does not: the swarm and access rules (tracker-core), config file parsing, signals and
//! snapshots (the daemon). All `unsafe` code of this crate is in the private `sys` module.

pub mod config;
pub mod connection_id;
pub mod handler;
pub mod protocol;
mod server;
mod sys;
mod worker;

pub use config::UdpConfig;
pub use connection_id::ConnectionValidator;
pub use handler::Handler;
pub use server::{UdpServer, UdpSockets, UdpStopper};

use std::net::SocketAddr;

/// Why the UDP server could not start, or why a worker stopped.
#[derive(Debug, thiserror::Error)]
pub enum UdpError {
    /// A `[udp]` value is out of range or malformed.
    #[error("invalid [udp] {field}: {reason}")]
    Config {
        /// The config key.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A socket could not be created, configured or bound.
    #[error("cannot bind UDP socket on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A worker thread could not be started.
    #[error("cannot start UDP worker thread {worker}: {source}")]
    Spawn {
        /// Worker number.
        worker: usize,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A worker stopped on a socket error it cannot recover from.
    #[error("UDP worker {worker} failed: {source}")]
    Worker {
        /// Worker number.
        worker: usize,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A worker thread panicked.
    #[error("UDP worker {worker} panicked")]
    Panicked {
        /// Worker number.
        worker: usize,
    },
}
