//! Joining: before a node serves, it loads every swarm already in Redis into memory, so the
//! first announce for a swarm this node has never seen is not answered empty. One `SCAN` over
//! the peer sets (at start only; nothing walks the swarms afterwards; on Redis Cluster one walk
//! per primary), then per batch of keys one pipeline of `ZRANGEBYSCORE key now +inf WITHSCORES`
//! (only live peers: expired scores fall below the range), one of `SMISMEMBER done <those
//! peers>` (whose completion was counted: see `load_done.rs`), and `SCARD` of the `done` sets
//! for the completed counts (on Redis Cluster, where keys of a batch sit in many slots, the same
//! commands as concurrent single requests: `conn::query_each`).

use std::collections::HashSet;

use tracker_core::{Change, ChangeKind, CompactAddr, InfoHash};

use crate::conn::{Con, Scan, query_each};
use crate::{ClusterError, Shared, unix_ms};

/// Keys asked per `SCAN` step, and per pipeline.
const SCAN_COUNT: usize = 1_000;

/// What a join loaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Torrents with live peers found in Redis.
    pub torrents: usize,
    /// Live peers stored in memory.
    pub peers: usize,
}

/// Loads every live peer and completed count from Redis into the tracker.
pub(crate) async fn load(shared: &Shared, con: &mut Con) -> Result<LoadReport, ClusterError> {
    let keys = &shared.keys;
    let mut scan = Scan::new(keys.peers_pattern(), "zset", SCAN_COUNT);
    let mut swarms: HashSet<InfoHash> = HashSet::new();
    let mut report = LoadReport::default();
    // No swarm holds more in memory anyway.
    let max_peers = shared.tracker.config().swarm.max_peers_per_swarm;
    while let Some(found) = scan.next(con).await? {
        let parsed: Vec<(InfoHash, bool, bool)> =
            found.iter().filter_map(|k| keys.parse_peers(k)).collect();
        if !parsed.is_empty() {
            let now_ms = unix_ms();
            let cmds = parsed
                .iter()
                .map(|(ih, v6, seeders)| {
                    let mut c = redis::cmd("ZRANGEBYSCORE");
                    c.arg(keys.peers(ih, *v6, *seeders))
                        .arg(now_ms)
                        .arg("+inf")
                        .arg("WITHSCORES")
                        .arg("LIMIT")
                        .arg(0)
                        .arg(max_peers);
                    c
                })
                .collect();
            let sets: Vec<Vec<(Vec<u8>, f64)>> = query_each(con, cmds).await?;
            let done = crate::load_done::counted(shared, con, &parsed, &sets).await?;
            let now = shared.tracker.clock().now();
            for (((ih, _, seeder), members), done) in parsed.iter().zip(sets).zip(done) {
                for (i, (member, score)) in members.into_iter().enumerate() {
                    let completed = done.get(i).copied().unwrap_or(false);
                    let Some(addr) = CompactAddr::from_bytes(&member) else {
                        continue;
                    };
                    let c = Change {
                        info_hash: *ih,
                        addr,
                        kind: ChangeKind::Upsert,
                        expiry: (score / 1000.0) as u32,
                        seeder: *seeder,
                        completed,
                        counted: false,
                    };
                    if shared.tracker.apply_remote(&c, now) {
                        report.peers += 1;
                        swarms.insert(*ih);
                    }
                }
            }
        }
    }
    let list: Vec<InfoHash> = swarms.into_iter().collect();
    for chunk in list.chunks(SCAN_COUNT) {
        let cmds = chunk
            .iter()
            .map(|ih| {
                let mut c = redis::cmd("SCARD");
                c.arg(keys.done(ih));
                c
            })
            .collect();
        let counts: Vec<u32> = query_each(con, cmds).await?;
        for (ih, n) in chunk.iter().zip(counts) {
            shared.tracker.set_downloaded(ih, n);
        }
    }
    report.torrents = list.len();
    Ok(report)
}
