//! The watcher: a small loop, on its own connection, that keeps the shared operator state in
//! step ([`crate::opstate`]) and notices when Redis has lost the swarms.
//!
//! Every [`POLL`] (and at once after an admin API edit at this node) it reads two strings in
//! one pipeline: `{<prefix>state}:version` (`INCR`ed by every node's state write) and
//! `{<prefix>state}:epoch` (a random marker the first node writes with `SET NX`). Every key the
//! watcher reads or writes shares the hash tag `{<prefix>state}`: on Redis Cluster they sit in
//! one slot, so each of its pipelines is one request to one node. Nothing more is read
//! unless one of them moved, so an idle cluster costs each node 8 commands (4 round trips) a second.
//!
//! - The version moved (another node edited) or this node has an edit: one round of the
//!   three-way merge: `HGETALL` of the seven hashes `<prefix>{state}:<kind>`, apply what
//!   changed, write this node's edits (`HSET`/`HDEL`) and `INCR` the version.
//! - The version is gone (Redis restarted empty, or a new cluster): this node writes all of its
//!   state back (every node does; entries merge by field).
//! - The epoch is gone or changed: Redis lost the swarms. This node claims a new epoch
//!   (`SET NX`, so every node agrees on one) and re-publishes its live peers and completed
//!   counts ([`crate::republish`]), then the shared connection-id key (`SET NX`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::conn::Con;
use crate::opstate::{self, KINDS, State, StateHooks};
use crate::{ClusterError, Shared};

/// How often the version and the epoch are read.
pub(crate) const POLL: Duration = Duration::from_millis(250);

/// Key names of the watcher's state.
fn key(shared: &Shared, what: &str) -> String {
    // One hash tag for all of them: one Redis Cluster slot, one pipeline.
    format!("{{{}state}}:{what}", shared.config.key_prefix)
}

fn epoch_key(shared: &Shared) -> String {
    key(shared, "epoch")
}

/// What a round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateReport {
    /// Entries of this node's memory changed to match the cluster.
    pub applied: usize,
    /// Entries this node wrote to Redis.
    pub written: usize,
}

pub(crate) struct Watch {
    pub(crate) shared: Arc<Shared>,
    pub(crate) hooks: Arc<StateHooks>,
    pub(crate) udp_key: [u8; 16],
    /// The state as of the last exchange with Redis; `None` before the first.
    pub(crate) base: Option<State>,
    /// The last version seen (`None`: unknown, read everything next time).
    pub(crate) version: Option<i64>,
    /// The epoch this node's swarms were published under (`None`: not known yet).
    pub(crate) epoch: Option<String>,
}

impl Watch {
    pub(crate) async fn run(mut self) {
        let mut con = None;
        let mut dirty = false;
        loop {
            if con.is_some() {
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => {}
                    _ = self.hooks.changed.notified() => dirty = true,
                }
            } else {
                tokio::time::sleep(POLL).await;
            }
            if con.is_none() {
                con = self.shared.connect(None).await.ok();
            }
            let Some(c) = con.as_mut() else { continue };
            match self.tick(c, dirty).await {
                Ok(_) => dirty = false,
                Err(e) => {
                    // A fresh connection next time (see the reader).
                    con = None;
                    tracing::debug!(error = %e, "cluster: the state watcher's exchange failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Claims the epoch (at start, while joining: no re-publish needed).
    pub(crate) async fn claim_epoch(&mut self, con: &mut Con) -> Result<(), ClusterError> {
        self.epoch = Some(claim(&self.shared, con).await?);
        Ok(())
    }

    /// One poll: the epoch check, then a state round if needed.
    pub(crate) async fn tick(
        &mut self,
        con: &mut Con,
        dirty: bool,
    ) -> Result<StateReport, ClusterError> {
        let shared = Arc::clone(&self.shared);
        let mut pipe = redis::pipe();
        pipe.get(key(&shared, "version")).get(epoch_key(&shared));
        let (version, epoch): (Option<i64>, Option<String>) =
            timed(&shared, pipe.query_async(con)).await?;
        if epoch.is_none() || epoch != self.epoch {
            let now = claim(&shared, con).await?;
            if Some(&now) != self.epoch.as_ref() {
                tracing::warn!(
                    "cluster: Redis lost the swarms (new epoch); re-publishing this node's live peers"
                );
                let n = crate::republish::republish(&shared, con, self.udp_key).await?;
                tracing::info!(peers = n, "cluster: live peers re-published");
                shared
                    .status
                    .peers_republished
                    .fetch_add(n as u64, Ordering::Relaxed);
                self.epoch = Some(now);
                // The state's version restarted with Redis: its number may equal the one seen
                // before the loss, so read everything.
                self.version = None;
            }
        }
        if dirty || self.base.is_none() || version.is_none() || version != self.version {
            return self.round(con, version).await;
        }
        Ok(StateReport::default())
    }

    /// One round of the merge (see [`crate::opstate`]).
    async fn round(
        &mut self,
        con: &mut Con,
        version: Option<i64>,
    ) -> Result<StateReport, ClusterError> {
        let shared = Arc::clone(&self.shared);
        let mut pipe = redis::pipe();
        for k in KINDS {
            pipe.hgetall(key(&shared, k));
        }
        let maps: Vec<std::collections::BTreeMap<String, String>> =
            timed(&shared, pipe.query_async(con)).await?;
        let mut remote = State::default();
        for (slot, m) in remote.iter_mut().zip(maps) {
            *slot = m;
        }
        // Redis without a version has lost the state (or never had it): everything here is
        // written back. Otherwise this node's edits are what differs from the last exchange;
        // at the first exchange, none (Redis wins over what this node's snapshot had).
        let reseed = version.is_none();
        let (edits, merged, applied) = {
            let _edit = self.hooks.edit.lock().unwrap_or_else(|e| e.into_inner());
            let tracker = &shared.tracker;
            let local = opstate::local(tracker);
            let base = match (reseed, self.base.take()) {
                (true, _) => State::default(),
                (false, Some(b)) => b,
                (false, None) => local.clone(),
            };
            let edits = opstate::diff(&base, &local);
            let merged = opstate::with_edits(remote.clone(), &edits);
            let (applied, _) = opstate::converge(tracker, &local, &merged);
            (edits, merged, applied)
        };
        shared
            .status
            .state_applied
            .fetch_add(applied as u64, Ordering::Relaxed);
        if edits.is_empty() && !reseed {
            self.base = Some(merged);
            self.version = version;
            return Ok(StateReport {
                applied,
                written: 0,
            });
        }
        let mut pipe = redis::pipe();
        for (k, f, v) in &edits {
            let h = key(&shared, KINDS[*k]);
            match v {
                Some(v) => pipe.hset(h, f, v).ignore(),
                None => pipe.hdel(h, f).ignore(),
            };
        }
        pipe.incr(key(&shared, "version"), 1);
        match timed(&shared, pipe.query_async::<(i64,)>(con)).await {
            Ok((v,)) => {
                self.base = Some(merged);
                // Another node's write in between makes the number jump: read everything again.
                self.version = (v == version.unwrap_or(0) + 1).then_some(v);
                if !edits.is_empty() {
                    tracing::info!(
                        entries = edits.len(),
                        "cluster: operator state written to Redis"
                    );
                }
                Ok(StateReport {
                    applied,
                    written: edits.len(),
                })
            }
            Err(e) => {
                // The edits stay edits against this base: the next round writes them again.
                self.base = Some(if reseed { State::default() } else { remote });
                self.version = None;
                Err(e)
            }
        }
    }
}

/// `SET NX` of a new random epoch, then the epoch as stored.
async fn claim(shared: &Shared, con: &mut Con) -> Result<String, ClusterError> {
    let mut pipe = redis::pipe();
    let k = epoch_key(shared);
    pipe.cmd("SET")
        .arg(&k)
        .arg(format!("{:016x}", rand::random::<u64>()))
        .arg("NX")
        .ignore();
    pipe.get(&k);
    let (e,): (String,) = timed(shared, pipe.query_async(con)).await?;
    Ok(e)
}

/// Runs one Redis exchange within `timeout_ms`.
pub(crate) async fn timed<T>(
    shared: &Shared,
    f: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, ClusterError> {
    tokio::time::timeout(shared.timeout(), f)
        .await
        .map_err(|_| ClusterError::Timeout)?
        .map_err(ClusterError::from)
}
