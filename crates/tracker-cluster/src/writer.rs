//! The writer: every `flush_interval_ms` it drains the tracker's change records and sends them
//! to Redis together with one replication-log entry, never one round trip per announce.
//! Announces never wait for it.
//!
//! On a standalone Redis (or Valkey) a flush is one call of the script `flush.lua` with the
//! batch (the log entry's body, about 32 bytes per change): Redis decodes it and runs the swarm
//! writes itself, then appends the batch to the log, atomically. Why: sending each write as a
//! command cost the node more than the announce (see docs/DESIGN.md section 8). On Redis
//! Cluster, where a script may touch one slot only, the same writes go as one pipeline per
//! swarm, all in flight, then the log entry: per stored change `ZADD` to the peer's role set
//! and `ZREM` from the other's (`ZREM` from both for a removal); per swarm key
//! `ZREMRANGEBYSCORE -inf now` (expired members go when their swarm is written, no scan),
//! `PEXPIREAT NX` + `PEXPIREAT GT` at the latest expiry (no TTL counts as infinite for `GT`). A
//! completed download counted here adds the peer's address to the swarm's `done` set (`SADD`:
//! once per peer cluster-wide, by set semantics) and reads its size (`SCARD`); when there were
//! such, a second, small entry publishes the counts, which this node also sets in memory.
//!
//! Each flush's entry carries this node's batch number (`s`), so readers notice batches they
//! missed (reader.rs). While Redis cannot be reached or falls behind, drained changes wait in
//! a queue of at most `max_pending` (the oldest dropped and counted beyond it).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracker_core::{Change, ChangeKind, InfoHash};

use crate::batch::{self, Item};
use crate::conn::{self, Con, PerSwarm};
use crate::{ClusterError, Shared, unix_ms};

/// `flush.lua`, hashed once (redis-rs sends `EVALSHA`, and the source again after a
/// `NOSCRIPT`, e.g. when Redis restarted).
static FLUSH: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(include_str!("flush.lua")));

/// Most changes in one pipeline.
const CHUNK: usize = 5_000;
/// Queue capacity kept between flushes (a larger one, left by a backlog, is released).
const KEEP_QUEUE: usize = 16_384;
/// How long to wait before trying again after Redis failed.
const RETRY_AFTER: Duration = Duration::from_secs(1);

pub(crate) struct Writer {
    pub(crate) shared: Arc<Shared>,
    pub(crate) con: Option<Con>,
    pub(crate) pending: VecDeque<Change>,
    pub(crate) drained: Vec<Change>,
    /// The number of this node's last batch in the log (field `s`): one more per batch that
    /// Redis took, the same again when a failed one is retried, so a reader that sees a
    /// number skipped knows it missed a batch (trimmed away while it was behind).
    pub(crate) seq: u64,
    /// A request for a last flush (clean stop), with where to say it is done.
    pub(crate) stop: tokio::sync::oneshot::Receiver<tokio::sync::oneshot::Sender<()>>,
}

impl Writer {
    pub(crate) async fn run(mut self) {
        let every = Duration::from_millis(self.shared.config.flush_interval_ms);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut retry_at = Instant::now();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                done = &mut self.stop => {
                    self.last_flush().await;
                    if let Ok(done) = done {
                        let _ = done.send(());
                    }
                    // Stopping: the daemon aborts this task next.
                    std::future::pending::<()>().await;
                }
            }
            self.drain();
            if self.pending.is_empty() {
                // A backlog (Redis away, or slower than the announces for a while) gives its
                // memory back once it is sent.
                if self.pending.capacity() > KEEP_QUEUE {
                    self.pending.shrink_to(KEEP_QUEUE);
                }
                continue;
            }
            if Instant::now() < retry_at {
                continue;
            }
            loop {
                match self.flush_chunk().await {
                    Ok(()) => {
                        self.shared.set_up(true);
                        // What announced meanwhile joins the queue now, not after the backlog
                        // is gone: a burst waits in the queue (bounded by `max_pending`)
                        // instead of overflowing the small per-shard rings.
                        self.drain();
                        // A backlog goes out chunk after chunk; less than a chunk waits for
                        // the next tick, so a steady load still flushes once per window.
                        if self.pending.len() < CHUNK {
                            break;
                        }
                    }
                    Err(e) => {
                        self.shared
                            .status
                            .write_errors
                            .fetch_add(1, Ordering::Relaxed);
                        if self.shared.set_up(false) {
                            tracing::warn!(error = %e, pending = self.pending.len(), "cluster: cannot write to Redis; serving from memory, changes queued");
                        }
                        retry_at = Instant::now() + RETRY_AFTER;
                        break;
                    }
                }
            }
        }
    }

    /// At a clean stop (after the listeners stopped): everything still queued, once, so that
    /// the last changes (a `stopped` a moment ago) are not lost.
    async fn last_flush(&mut self) {
        self.drain();
        while !self.pending.is_empty() {
            if let Err(e) = self.flush_chunk().await {
                tracing::warn!(error = %e, lost = self.pending.len(), "cluster: last flush failed");
                return;
            }
        }
    }

    /// Moves the tracker's change records into the bounded queue.
    fn drain(&mut self) {
        self.drained.clear();
        self.shared.tracker.drain_changes(&mut self.drained);
        let max = self.shared.config.max_pending;
        for c in self.drained.drain(..) {
            if self.pending.len() >= max {
                self.pending.pop_front();
                self.shared
                    .status
                    .pending_dropped
                    .fetch_add(1, Ordering::Relaxed);
            }
            self.pending.push_back(c);
        }
    }

    async fn connection(&mut self) -> Result<&mut Con, ClusterError> {
        if self.con.is_none() {
            self.con = Some(self.shared.connect(None).await?);
        }
        self.con.as_mut().ok_or(ClusterError::Timeout)
    }

    /// Sends up to [`CHUNK`] pending changes: on a standalone Redis as one script call
    /// (`flush.lua`), on Redis Cluster as one pipeline per swarm, all in flight at once, then the
    /// log entry. They leave the queue only when Redis has taken them (every command is
    /// idempotent, so a retry after a partial failure is harmless).
    async fn flush_chunk(&mut self) -> Result<(), ClusterError> {
        let n = self.pending.len().min(CHUNK);
        let shared = Arc::clone(&self.shared);
        let con = self.connection().await?.clone();
        let mut body = batch::start();
        for c in self.pending.range(..n) {
            batch::push(&mut body, &Item::Change(*c));
        }
        let timeout = shared.timeout();
        let counted = if con.is_cluster() {
            let pipes = self.pipelines(n);
            tokio::time::timeout(timeout, send(pipes, &shared, &con, &body, self.seq + 1))
                .await
                .map_err(|_| ClusterError::Timeout)??
        } else {
            let counts: Result<Vec<u32>, redis::RedisError> = tokio::time::timeout(
                timeout,
                FLUSH
                    .key(shared.keys.log())
                    .arg(shared.keys.prefix())
                    .arg(shared.config.stream_max_len)
                    .arg(unix_ms())
                    .arg(&shared.instance)
                    .arg(&shared.node_name)
                    .arg(&body)
                    .arg(self.seq + 1)
                    .invoke_async(&mut con.clone()),
            )
            .await
            .map_err(|_| ClusterError::Timeout)?;
            match counts {
                // The script returns the counts of the counted changes in batch order.
                Ok(counts) => self
                    .pending
                    .range(..n)
                    .filter(|c| c.kind == ChangeKind::Upsert && c.counted)
                    .map(|c| c.info_hash)
                    .zip(counts)
                    .collect(),
                // `flush.lua` refused the batch itself: sending it again cannot help, and
                // would hold up everything queued behind it.
                Err(e) if e.to_string().contains("mini-torrust:") => {
                    tracing::error!(error = %e, changes = n, "cluster: Redis refused a batch; dropped");
                    self.pending.drain(..n);
                    shared
                        .status
                        .pending_dropped
                        .fetch_add(n as u64, Ordering::Relaxed);
                    return Err(e.into());
                }
                Err(e) => return Err(e.into()),
            }
        };
        self.pending.drain(..n);
        self.seq += 1;
        let st = &shared.status;
        st.changes_written.fetch_add(n as u64, Ordering::Relaxed);
        st.batches_written.fetch_add(1, Ordering::Relaxed);
        self.publish_counts(&con, counted).await
    }

    /// Redis Cluster: the first `n` pending changes as one pipeline per swarm (each swarm's
    /// keys share a hash tag, so a pipeline stays in one slot). The writes of `flush.lua` as
    /// commands, except where the script branches on a reply, which a pipeline cannot: here
    /// every stored change also sends the other role's `ZREM`, every written set is trimmed,
    /// and every key gets `PEXPIREAT NX` and `GT`.
    fn pipelines(&self, n: usize) -> PerSwarm<Vec<InfoHash>> {
        let keys = &self.shared.keys;
        let now_ms = unix_ms();
        let mut pipes: PerSwarm<Vec<InfoHash>> = PerSwarm::new(true);
        // Each swarm key written, with the latest expiry (ms) it must live until.
        let mut expire: HashMap<String, (u64, bool, InfoHash)> = HashMap::new();
        for c in self.pending.range(..n) {
            let addr = c.addr.as_bytes();
            let v6 = c.addr.is_v6();
            let (pipe, counted) = pipes.of(&c.info_hash);
            match c.kind {
                ChangeKind::Upsert => {
                    let ms = u64::from(c.expiry) * 1000;
                    let key = keys.peers(&c.info_hash, v6, c.seeder);
                    pipe.zadd(&key, addr, ms).ignore();
                    pipe.zrem(keys.peers(&c.info_hash, v6, !c.seeder), addr)
                        .ignore();
                    let done = keys.done(&c.info_hash);
                    if c.counted {
                        pipe.sadd(&done, addr).ignore();
                        pipe.scard(&done);
                        counted.push(c.info_hash);
                    }
                    // The `done` set lives as long as the swarm's peers, not only until the
                    // last completion.
                    for (k, zset) in [(key, true), (done, false)] {
                        let e = expire.entry(k).or_insert((0, zset, c.info_hash));
                        e.0 = e.0.max(ms);
                    }
                }
                ChangeKind::Remove => {
                    for seeders in [true, false] {
                        pipe.zrem(keys.peers(&c.info_hash, v6, seeders), addr)
                            .ignore();
                    }
                }
            }
        }
        for (key, (ms, zset, ih)) in &expire {
            let (pipe, _) = pipes.of(ih);
            if *zset {
                pipe.cmd("ZREMRANGEBYSCORE")
                    .arg(key)
                    .arg("-inf")
                    .arg(now_ms)
                    .ignore();
            }
            pipe.cmd("PEXPIREAT").arg(key).arg(*ms).arg("NX").ignore();
            pipe.cmd("PEXPIREAT").arg(key).arg(*ms).arg("GT").ignore();
        }
        pipes
    }

    /// Completed counts after a flush that counted some.
    async fn publish_counts(
        &self,
        con: &Con,
        counted: Vec<(InfoHash, u32)>,
    ) -> Result<(), ClusterError> {
        let shared = &self.shared;
        let timeout = shared.timeout();
        if counted.is_empty() {
            return Ok(());
        }
        // The cluster's counts of the torrents that had a completion: set here exactly (this
        // corrects a completion this node counted that another node had counted first), then
        // told to the others, which only raise theirs to it. The last count of a torrent in this
        // pipeline is the highest.
        let mut last: HashMap<InfoHash, u32> = HashMap::new();
        for (ih, n) in counted {
            last.insert(ih, n);
        }
        let mut body = batch::start();
        for (ih, n) in &last {
            shared.tracker.set_downloaded(ih, *n);
            batch::push(&mut body, &Item::Downloaded(*ih, *n));
        }
        let mut pipe = redis::pipe();
        shared.xadd(&mut pipe, &body, None);
        tokio::time::timeout(timeout, pipe.query_async::<()>(&mut con.clone()))
            .await
            .map_err(|_| ClusterError::Timeout)??;
        Ok(())
    }
}

/// Redis Cluster: sends the pipelines of one flush (see [`PerSwarm`]: each comes with the
/// torrents of its `SCARD`s, in order) and then the replication-log entry holding `body`, after
/// every swarm pipeline answered, so a joining node that read the log's position never misses
/// a swarm write the log announced. Returns the `SCARD` counts (the torrents are known).
async fn send(
    pipes: PerSwarm<Vec<InfoHash>>,
    shared: &Shared,
    con: &Con,
    body: &[u8],
    seq: u64,
) -> Result<Vec<(InfoHash, u32)>, ClusterError> {
    let mut log = redis::pipe();
    shared.xadd(&mut log, body, Some(seq));
    let (pipes, counted): (Vec<_>, Vec<_>) = pipes.into_parts().into_iter().unzip();
    let counts: Vec<Vec<u32>> = conn::pipelines(con, pipes).await?;
    log.query_async::<()>(&mut con.clone()).await?;
    Ok(counted
        .into_iter()
        .zip(counts)
        .flat_map(|(ihs, ns)| ihs.into_iter().zip(ns))
        .collect())
}
