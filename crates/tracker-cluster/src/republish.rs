//! Re-publishing: when Redis has lost the swarms (restarted without persistence, flushed,
//! failed over to an empty replica), every node writes back what it holds in memory, so that
//! the cluster converges again with nothing lost that was still alive.
//!
//! One swarm shard at a time (memory bounded by one shard's peers), in pipelines of at most
//! [`CHUNK`] peers: `ZADD GT` into the peer's role set (never moving a newer expiry back) and
//! `ZREM` from the other role's, `SADD` into `done` for a peer whose completion was counted,
//! and the keys' expiry as the writer sets it. Every node holds the same converged swarms, so
//! every node writes the same members: re-publishing at several nodes is idempotent.
//!
//! A torrent's completed count is the size of its `done` set, and the peers counted who have
//! since left are not in memory any more: the count is made up with placeholder members
//! `~1`..`~k`, `k` = the count in memory minus the live peers counted. Nodes that agree on the
//! count write the same placeholders, so the set's size is the count again, not a sum.
//!
//! On Redis Cluster the pipelines are per swarm (`conn::PerSwarm`), all of a chunk in flight at
//! once.

use std::collections::HashMap;

use tracker_core::{CompactAddr, InfoHash, PeerStatus};

use crate::conn::{Con, PerSwarm};
use crate::{ClusterError, Shared};

/// Most peers (or placeholders) per pipeline.
pub(crate) const CHUNK: usize = 5_000;

/// Writes every live peer and completed count this node holds back to Redis, then the
/// shared connection-id key (`SET NX`). Returns how many peers.
pub(crate) async fn republish(
    shared: &Shared,
    con: &mut Con,
    udp_key: [u8; 16],
) -> Result<usize, ClusterError> {
    let tracker = &shared.tracker;
    let keys = &shared.keys;
    let mut total = 0;
    let mut peers: Vec<(InfoHash, CompactAddr, u32, bool, bool)> = Vec::new();
    for shard in 0..tracker.shards() {
        peers.clear();
        let now = tracker.clock().now();
        tracker.for_each_live_peer_in_shard(shard, now, |ih, p| {
            peers.push((
                *ih,
                CompactAddr::from_socket(p.addr),
                p.expiry,
                p.status == PeerStatus::Seeding,
                p.completed,
            ));
        });
        // Per torrent: the latest expiry and the live peers whose completion was counted.
        let mut torrents: HashMap<InfoHash, (u32, u32)> = HashMap::new();
        for chunk in peers.chunks(CHUNK) {
            let mut pipes = PerSwarm::new(con.is_cluster());
            let mut expire: HashMap<String, (u64, InfoHash)> = HashMap::new();
            for (ih, addr, expiry, seeder, completed) in chunk {
                let ms = u64::from(*expiry) * 1000;
                let v6 = addr.is_v6();
                let key = keys.peers(ih, v6, *seeder);
                let (pipe, ()) = pipes.of(ih);
                pipe.cmd("ZADD")
                    .arg(&key)
                    .arg("GT")
                    .arg(ms)
                    .arg(addr.as_bytes())
                    .ignore();
                pipe.zrem(keys.peers(ih, v6, !*seeder), addr.as_bytes())
                    .ignore();
                let t = torrents.entry(*ih).or_default();
                t.0 = t.0.max(*expiry);
                if *completed {
                    pipe.sadd(keys.done(ih), addr.as_bytes()).ignore();
                    t.1 += 1;
                }
                let e = expire.entry(key).or_insert((0, *ih));
                e.0 = e.0.max(ms);
            }
            for (key, (ms, ih)) in &expire {
                expire_at(&mut pipes.of(ih).0, key, *ms);
            }
            send(shared, con, pipes).await?;
            total += chunk.len();
        }
        // The completed counts, made up with placeholders for the peers gone since.
        let mut pipes = PerSwarm::new(con.is_cluster());
        let mut queued = 0;
        for (ih, (expiry, live_counted)) in &torrents {
            let count = tracker.scrape_one(ih, tracker.clock().now()).downloaded;
            let missing = count.saturating_sub(*live_counted);
            if missing == 0 && *live_counted == 0 {
                continue;
            }
            let done = keys.done(ih);
            let mut from = 1;
            while from <= missing {
                let to = missing.min(from + CHUNK as u32 - 1);
                pipes
                    .of(ih)
                    .0
                    .sadd(
                        &done,
                        (from..=to).map(|i| format!("~{i}")).collect::<Vec<_>>(),
                    )
                    .ignore();
                queued += (to - from + 1) as usize;
                from = to + 1;
                if queued >= CHUNK {
                    queued = 0;
                    let full = std::mem::replace(&mut pipes, PerSwarm::new(con.is_cluster()));
                    send(shared, con, full).await?;
                }
            }
            expire_at(&mut pipes.of(ih).0, &done, u64::from(*expiry) * 1000);
        }
        send(shared, con, pipes).await?;
    }
    let mut set = redis::cmd("SET");
    set.arg(keys.udp_key()).arg(hex::encode(udp_key)).arg("NX");
    crate::watch::timed(shared, set.query_async::<()>(con)).await?;
    Ok(total)
}

/// Sends `pipes` within `timeout_ms`.
async fn send(shared: &Shared, con: &Con, pipes: PerSwarm) -> Result<(), ClusterError> {
    tokio::time::timeout(shared.timeout(), pipes.send(con))
        .await
        .map_err(|_| ClusterError::Timeout)?
}

/// A key's expiry raised to `ms` (a key without one gets it), as the writer does.
fn expire_at(pipe: &mut redis::Pipeline, key: &str, ms: u64) {
    pipe.cmd("PEXPIREAT").arg(key).arg(ms).arg("NX").ignore();
    pipe.cmd("PEXPIREAT").arg(key).arg(ms).arg("GT").ignore();
}
