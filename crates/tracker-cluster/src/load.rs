//! Joining: before a node serves, it loads every swarm already in Redis into memory, so the
//! first announce for a swarm this node has never seen is not answered empty. One `SCAN` over
//! the peer sets (at start only; nothing walks the swarms afterwards), then per batch of keys
//! one pipeline of `ZRANGEBYSCORE key now +inf WITHSCORES` (only live peers: expired scores
//! fall below the range), one of `SMISMEMBER done <those peers>` (whose completion was counted:
//! see `load_done.rs`), and `SCARD` of the `done` sets for the completed counts.

use std::collections::HashSet;

use redis::aio::ConnectionManager;
use tracker_core::{Change, ChangeKind, CompactAddr, InfoHash};

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
pub(crate) async fn load(
    shared: &Shared,
    con: &mut ConnectionManager,
) -> Result<LoadReport, ClusterError> {
    let keys = &shared.keys;
    let pattern = keys.peers_pattern();
    let mut cursor: u64 = 0;
    let mut swarms: HashSet<InfoHash> = HashSet::new();
    let mut report = LoadReport::default();
    // No swarm holds more in memory anyway.
    let max_peers = shared.tracker.config().swarm.max_peers_per_swarm;
    loop {
        let (next, found): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .arg("TYPE")
            .arg("zset")
            .query_async(con)
            .await?;
        let parsed: Vec<(InfoHash, bool, bool)> =
            found.iter().filter_map(|k| keys.parse_peers(k)).collect();
        if !parsed.is_empty() {
            let now_ms = unix_ms();
            let mut pipe = redis::pipe();
            for (ih, v6, seeders) in &parsed {
                pipe.cmd("ZRANGEBYSCORE")
                    .arg(keys.peers(ih, *v6, *seeders))
                    .arg(now_ms)
                    .arg("+inf")
                    .arg("WITHSCORES")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(max_peers);
            }
            let sets: Vec<Vec<(Vec<u8>, f64)>> = pipe.query_async(con).await?;
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
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    let list: Vec<InfoHash> = swarms.into_iter().collect();
    for chunk in list.chunks(SCAN_COUNT) {
        let mut pipe = redis::pipe();
        for ih in chunk {
            pipe.scard(keys.done(ih));
        }
        let counts: Vec<u32> = pipe.query_async(con).await?;
        for (ih, n) in chunk.iter().zip(counts) {
            shared.tracker.set_downloaded(ih, n);
        }
    }
    report.torrents = list.len();
    Ok(report)
}
