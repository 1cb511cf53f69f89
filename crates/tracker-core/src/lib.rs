//! # tracker-core
//!
//! The state and the rules of the mini-torrust BitTorrent tracker, shared by the HTTP and UDP
//! front ends so that every rule exists once.
//!
//! What lives here: the swarm store ([`Tracker`]: sharded `dashmap`, keyed hasher, one shard lock
//! per announce), the announce / scrape / expiry rules of `DESIGN.md` section 3, the torrent
//! index, the per-address abuse limits, statistics counters, the coarse clock, the JSON
//! snapshot format, the change records cluster mode replicates ([`changes`]), and the `[protocol]`, `[swarm]`, `[access]` and `[limits]` config sections
//! with their defaults and checks ([`config`], [`limits`]).
//!
//! What does not: sockets, async runtimes, wire codecs, parsing the config file (the daemon
//! does; this crate defines its sections). It is synchronous, and its only I/O is on files it
//! is asked to use: snapshots, the allow and deny lists, and the `.torrent` index directory.

pub mod access;
pub mod changes;
pub mod clients;
pub mod clock;
pub mod config;
mod fast_rng;
pub mod limits;
mod prefetch;
pub mod sink;
pub mod snapshot;
pub mod stats;
pub mod swarm;
pub mod torrent_file;
pub mod tracker;
pub mod types;

pub use access::{Access, AccessError, AccessMode, AccessState, Passkey, PasskeyEntry};
pub use changes::{Change, ChangeKind, CompactAddr};
pub use clock::{Clock, unix_now};
pub use config::{AccessConfig, CoreConfig, ProtocolConfig, SwarmConfig};
pub use limits::{Limiter, LimitsConfig, TableFill, Verdict};
pub use sink::{CompactPeers, PeerSink, PeerView};
pub use stats::{CounterValues, Counters, LocalCounts, Stats, StatsSnapshot};
pub use swarm::{IndexMeta, MAX_PEER_TIMEOUT, Stored};
pub use tracker::{
    AnnounceError, AnnounceOutcome, AnnounceRequest, IndexError, IndexPage, IndexQuery, PeerCounts,
    PeerInfo, ReloadError, ReloadReport, ScrapeCounts, SortBy, SweepReport, TopTorrent,
    TorrentDetail, TorrentSummary, Tracker,
};
pub use types::{Event, Family, InfoHash, NO_PEER_ID, PeerId, PeerStatus, Protocol, canonical_ip};
