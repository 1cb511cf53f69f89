//! The reader: follows the replication stream (`XREAD BLOCK`) on its own connection (a
//! blocking read would hold up every other command on a shared, multiplexed one) and applies
//! every other node's batches to this node's memory. Its own entries (same instance id) are
//! skipped: they are already in memory.
//!
//! A node that falls more than `stream_max_len` batches behind (paused, or cut off from Redis
//! for longer than the log's history) would miss the batches trimmed away meanwhile. Every
//! writer numbers its batches (field `s`); a reader that sees a known sender's number jump
//! knows it missed some. For a sender it has no number for yet (new to it, or after a reload)
//! and after a failed read, it compares the log's first entry with where it stood: newer
//! means entries after its position were trimmed. Either way it reloads the
//! swarms from Redis as a joining node does (the log position taken first, so nothing written
//! during the reload is missed), until a reload succeeds. A peer stopped in the lost batches
//! stays until its expiry: a reload only adds and refreshes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use redis::streams::StreamReadReply;
use tracker_core::Tracker;

use crate::batch::{self, Item};
use crate::conn::Con;
use crate::{ClusterError, Shared};

/// How long one `XREAD` blocks, in milliseconds.
const BLOCK_MS: u64 = 500;
/// Most entries one `XREAD` returns.
const COUNT: usize = 256;
/// How long to wait before trying again after Redis failed.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Most senders whose last batch number is remembered (every restart of a node is a new
/// sender); beyond it the map starts again, which can only miss a gap, never invent one.
const MAX_SENDERS: usize = 1024;

pub(crate) struct Reader {
    pub(crate) shared: Arc<Shared>,
    pub(crate) con: Option<Con>,
    /// The last entry applied (or skipped); `$` while it is not known yet (Redis away at start).
    pub(crate) last_id: String,
    /// The last batch number seen from each other sender (instance id).
    pub(crate) senders: HashMap<String, u64>,
    /// Batches were missed: reload before reading on (kept until a reload succeeded).
    pub(crate) reload_needed: bool,
    /// Ask whether entries after the position were trimmed, before the next read (after a
    /// failed read, which may have lasted longer than the log's history).
    pub(crate) check_first: bool,
}

impl Reader {
    pub(crate) async fn run(mut self) {
        let mut items = Vec::new();
        loop {
            // The blocking read doubles as a heartbeat: an idle node notices Redis going away.
            match self.read_once(&mut items).await {
                Ok(()) => {
                    self.shared.set_up(true);
                }
                Err(e) => {
                    // A fresh connection next time: one that was cut during a blocking read
                    // does not always come back (seen with Redis restarted).
                    self.con = None;
                    self.check_first = true;
                    if self.shared.set_up(false) {
                        tracing::warn!(error = %e, "cluster: cannot read from Redis; serving from memory");
                    }
                    self.shared
                        .status
                        .read_errors
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(error = %e, "cluster: reading the replication log failed");
                    tokio::time::sleep(RETRY_AFTER).await;
                }
            }
        }
    }

    async fn read_once(&mut self, items: &mut Vec<Item>) -> Result<(), ClusterError> {
        if self.con.is_none() {
            let extra = Duration::from_millis(BLOCK_MS);
            self.con = Some(self.shared.connect(Some(extra)).await?);
        }
        let Some(con) = self.con.as_mut() else {
            return Err(ClusterError::Timeout);
        };
        if self.last_id == "$" {
            // Redis was away at start: follow from the log's end as it is now, by id, so that
            // nothing added between two reads is missed.
            self.last_id = crate::last_log_id(&self.shared, con).await?;
        }
        let before = self.last_id.clone();
        if self.check_first && !self.reload_needed {
            self.reload_needed = trimmed_after(&self.shared, con, &before).await?;
            self.check_first = false;
        }
        if self.reload_needed {
            return self.reload().await;
        }
        let reply: Option<StreamReadReply> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(COUNT)
            .arg("BLOCK")
            .arg(BLOCK_MS)
            .arg("STREAMS")
            .arg(self.shared.keys.log())
            .arg(&self.last_id)
            .query_async(con)
            .await?;
        let Some(reply) = reply else {
            return Ok(());
        };
        let tracker: &Tracker = &self.shared.tracker;
        let mut new_sender = false;
        for key in reply.keys {
            for entry in key.ids {
                self.last_id = entry.id.clone();
                if entry.get::<String>("n").as_deref() == Some(self.shared.instance.as_str()) {
                    continue;
                }
                if let (Some(sender), Some(seq)) = (entry.get::<String>("n"), entry.get::<u64>("s"))
                {
                    if self.senders.len() >= MAX_SENDERS && !self.senders.contains_key(&sender) {
                        self.senders.clear();
                    }
                    match self.senders.insert(sender, seq) {
                        Some(last) if seq > last + 1 => self.reload_needed = true,
                        // Batches of this sender before this one may have been trimmed.
                        None if seq > 1 => new_sender = true,
                        _ => {}
                    }
                }
                let Some(body) = entry.get::<Vec<u8>>("b") else {
                    continue;
                };
                items.clear();
                if let Err(e) = batch::decode(&body, items) {
                    tracing::warn!(id = %entry.id, error = %e, "cluster: replication entry skipped");
                    continue;
                }
                let now = tracker.clock().now();
                for item in items.iter() {
                    match item {
                        Item::Change(c) => {
                            tracker.apply_remote(c, now);
                        }
                        // Counts from the store only grow; another node's may be older
                        // than what this node already has.
                        Item::Downloaded(ih, n) => {
                            tracker.raise_downloaded(ih, *n);
                        }
                    }
                }
                self.shared
                    .status
                    .changes_applied
                    .fetch_add(items.len() as u64, Ordering::Relaxed);
            }
        }
        if new_sender && !self.reload_needed {
            self.reload_needed = trimmed_after(&self.shared, con, &before).await?;
        }
        if self.reload_needed {
            self.reload().await?;
        }
        Ok(())
    }

    /// Batches were trimmed before this node read them: loads the swarms again from Redis,
    /// then follows the log from where it stood before the load.
    async fn reload(&mut self) -> Result<(), ClusterError> {
        let Some(con) = self.con.as_mut() else {
            return Err(ClusterError::Timeout);
        };
        let shared = &self.shared;
        tracing::warn!(
            stream_max_len = shared.config.stream_max_len,
            "cluster: this node fell behind the replication log; reloading the swarms from Redis"
        );
        let position = crate::last_log_id(shared, con).await?;
        let report = crate::load::load(shared, con).await?;
        self.last_id = position;
        // Batch numbers from before the reload say nothing about what follows it.
        self.senders.clear();
        self.reload_needed = false;
        shared.status.reloads.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            peers = report.peers,
            torrents = report.torrents,
            "cluster: swarms reloaded"
        );
        Ok(())
    }
}

/// Whether an entry after `position` may have been trimmed from the log: its first entry is
/// newer. (Redis 7.0's `XINFO STREAM` `max-deleted-entry-id` would be exact, but trimming does
/// not move it: only `XDEL` does, seen here.) It errs only when the log was trimmed exactly up
/// to `position`, which costs one reload more. Asked only when a batch number cannot tell (see
/// the module doc), as the reply carries the first entry whole.
async fn trimmed_after(
    shared: &Shared,
    con: &mut Con,
    position: &str,
) -> Result<bool, ClusterError> {
    let first = crate::log_edge_id(shared, con, false).await?;
    Ok(first.is_some_and(|id| stream_id(&id) > stream_id(position)))
}

/// A stream id ("<ms>-<seq>") as a comparable pair; `(0, 0)` for anything else ("0-0", "$").
fn stream_id(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::stream_id;

    #[test]
    fn stream_ids_compare_as_numbers() {
        assert!(stream_id("1700000000000-10") > stream_id("1700000000000-9"));
        assert!(stream_id("1700000000001-0") > stream_id("1700000000000-99"));
        assert_eq!(stream_id("0-0"), (0, 0));
        assert_eq!(stream_id("$"), (0, 0));
        assert_eq!(stream_id("17-x"), (17, 0));
    }
}
