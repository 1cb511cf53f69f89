//! # tracker-cluster
//!
//! Cluster mode: several mini-torrust daemons share their swarms through one Redis (>= 7.0) or
//! Valkey (>= 7.2). Each node keeps answering from its own memory (the hot path never waits on
//! Redis); Redis holds the shared, durable swarm state and a replication log that the other
//! nodes follow.
//!
//! What lives here: the `[cluster]` config section ([`ClusterConfig`]); the writer that
//! drains the tracker's change records and sends them in one pipeline per short window
//! (`writer.rs`); the reader that applies the other nodes' batches (`reader.rs`); the join
//! that loads the swarms already in Redis before a node serves (`load.rs`); the key layout
//! (`keys.rs`) and the replication batch codec (`batch.rs`); the shared UDP connection-id key;
//! the connection layer for one Redis or a Redis Cluster (`conn.rs`); the shared operator
//! state (`opstate.rs`) and the watcher that keeps it in step and re-publishes the swarms when
//! Redis lost them (`watch.rs`, `republish.rs`).
//!
//! What does not: the rules and the store (tracker-core, reached through its change-record
//! seam: [`Tracker::with_change_log`], [`Tracker::drain_changes`], [`Tracker::apply_remote`]),
//! sockets other than Redis connections, and the daemon's wiring.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::task::JoinSet;
use tracker_core::Tracker;

pub mod batch;
mod config;
mod conn;
pub mod keys;
mod load;
mod load_done;
pub mod opstate;
mod reader;
mod republish;
mod watch;
mod writer;

pub use config::ClusterConfig;
pub use load::LoadReport;
pub use opstate::StateHooks;
pub use watch::StateReport;

/// What can go wrong talking to the shared store.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A `[cluster]` option is invalid.
    #[error("{0}")]
    Config(String),
    /// Redis answered with an error or the connection failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis did not answer within `timeout_ms` (or `startup_timeout_secs` at start).
    #[error("redis did not answer in time")]
    Timeout,
}

/// Counters of the cluster link, for `/metrics`, `/health` and the logs.
#[derive(Debug, Default)]
pub struct ClusterStatus {
    /// The last exchange with Redis (a write, or the reader's blocking read, at least every
    /// half second) succeeded.
    pub redis_up: AtomicBool,
    /// Changes sent to Redis.
    pub changes_written: AtomicU64,
    /// Pipelines sent.
    pub batches_written: AtomicU64,
    /// Changes dropped because the queue for an unreachable Redis was full.
    pub pending_dropped: AtomicU64,
    /// Other nodes' changes applied to memory.
    pub changes_applied: AtomicU64,
    /// Failed writes.
    pub write_errors: AtomicU64,
    /// Failed reads of the replication log.
    pub read_errors: AtomicU64,
    /// Live peers written back to Redis after it lost the swarms.
    pub peers_republished: AtomicU64,
    /// Operator-state entries (lists, passkeys, index) changed in memory to match the cluster.
    pub state_applied: AtomicU64,
    /// Times this node reloaded the swarms from Redis because batches it had not read yet were
    /// trimmed from the replication log (it fell more than `stream_max_len` batches behind).
    pub reloads: AtomicU64,
}

/// What the writer, the reader and the join share.
pub(crate) struct Shared {
    tracker: Arc<Tracker>,
    config: ClusterConfig,
    keys: keys::Keys,
    /// This process's id in the replication log (random per start), so that its own entries
    /// are skipped even when two nodes have the same name.
    instance: String,
    node_name: String,
    target: conn::Target,
    status: Arc<ClusterStatus>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("node_name", &self.node_name)
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn timeout(&self) -> Duration {
        Duration::from_millis(self.config.timeout_ms)
    }

    /// A reconnecting connection (to one Redis or to a Redis Cluster); `extra` lengthens its
    /// response timeout (blocking reads).
    async fn connect(&self, extra: Option<Duration>) -> Result<conn::Con, ClusterError> {
        let t = self.timeout();
        self.target.connect(t, t + extra.unwrap_or_default()).await
    }

    /// Adds one replication-log entry holding `body` to `pipe`, numbered `seq` when it is one
    /// of the writer's flushes (see `Writer::seq`; the completed-count entries are not).
    fn xadd(&self, pipe: &mut redis::Pipeline, body: &[u8], seq: Option<u64>) {
        let cmd = pipe
            .cmd("XADD")
            .arg(self.keys.log())
            .arg("MAXLEN")
            .arg("~")
            .arg(self.config.stream_max_len)
            .arg("*")
            .arg("n")
            .arg(&self.instance)
            .arg("node")
            .arg(&self.node_name)
            .arg("b")
            .arg(body);
        if let Some(seq) = seq {
            cmd.arg("s").arg(seq);
        }
        cmd.ignore();
    }

    /// Records whether Redis answers; returns whether that changed.
    fn set_up(&self, up: bool) -> bool {
        let was = self.status.redis_up.swap(up, Ordering::Relaxed);
        if was != up && up {
            tracing::info!("cluster: Redis reachable");
        }
        was != up
    }
}

/// Unix time in milliseconds.
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A started cluster link.
#[derive(Debug)]
pub struct Running {
    /// The UDP connection-id key every node uses (the first node's, through Redis), or the
    /// local one when Redis could not be reached at start.
    pub connection_id_key: [u8; 16],
    /// Whether `connection_id_key` came from Redis.
    pub key_shared: bool,
    /// What the join loaded; `None` when Redis could not be reached at start.
    pub loaded: Option<LoadReport>,
    /// Live counters.
    pub status: Arc<ClusterStatus>,
    /// The writer and the reader; neither ever returns.
    pub tasks: JoinSet<()>,
    stop: Option<tokio::sync::oneshot::Sender<tokio::sync::oneshot::Sender<()>>>,
    shared: Arc<Shared>,
}

impl Running {
    /// At a clean stop, after the listeners stopped: sends what is still queued to Redis, once,
    /// waiting at most `timeout`. Returns whether it finished in time.
    pub async fn last_flush(&mut self, timeout: Duration) -> bool {
        let Some(stop) = self.stop.take() else {
            return true;
        };
        let (done, wait) = tokio::sync::oneshot::channel();
        if stop.send(done).is_err() {
            return false;
        }
        matches!(tokio::time::timeout(timeout, wait).await, Ok(Ok(())))
    }
}

impl Running {
    /// Shares the operator state (see [`opstate`]) and starts the watcher (see `watch.rs`):
    /// first one exchange, before the node serves (within `startup_timeout_secs`; `None` when
    /// Redis did not answer, the watcher then keeps trying), then the watcher runs in
    /// [`Running::tasks`]. `hooks` is what the admin API holds around its edits.
    pub async fn share_operator_state(&mut self, hooks: Arc<StateHooks>) -> Option<StateReport> {
        let mut w = watch::Watch {
            shared: Arc::clone(&self.shared),
            hooks,
            udp_key: self.connection_id_key,
            base: None,
            version: None,
            epoch: None,
        };
        let startup = Duration::from_secs(self.shared.config.startup_timeout_secs.max(1));
        let first = tokio::time::timeout(startup, async {
            let mut con = self.shared.connect(None).await?;
            // Joined just now: the swarms came from Redis, nothing to re-publish.
            w.claim_epoch(&mut con).await?;
            w.tick(&mut con, true).await
        })
        .await;
        let report = match first {
            Ok(Ok(r)) => Some(r),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cluster: operator state not loaded at start; retrying");
                None
            }
            Err(_) => None,
        };
        self.tasks.spawn(w.run());
        report
    }
}

/// Connects, loads the swarms already in Redis into `tracker`, agrees on the UDP
/// connection-id key (the first node's `SET NX` wins; `local_key` is this node's offer), and
/// starts the writer and the reader. `tracker` must have been built
/// [`Tracker::with_change_log`]. If Redis does not answer within `startup_timeout_secs`, it
/// starts anyway with the local key and nothing loaded; the writer and reader keep trying.
pub async fn start(
    tracker: Arc<Tracker>,
    config: &ClusterConfig,
    local_key: [u8; 16],
) -> Result<Running, ClusterError> {
    config.validate()?;
    let target = conn::Target::parse(&config.redis_url)?;
    let shared = Arc::new(Shared {
        tracker,
        keys: keys::Keys::new(&config.key_prefix),
        instance: format!("{:016x}", rand::random::<u64>()),
        node_name: config.node_name(),
        target,
        status: Arc::new(ClusterStatus::default()),
        config: config.clone(),
    });
    let startup = Duration::from_secs(config.startup_timeout_secs.max(1));
    let joined = tokio::time::timeout(startup, join(&shared, local_key)).await;
    let (con, last_id, loaded, key) = match joined {
        Ok(Ok((con, last_id, loaded, key))) => {
            shared.set_up(true);
            (Some(con), last_id, Some(loaded), Some(key))
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cluster: Redis unavailable at start; serving from memory until it answers");
            (None, "$".to_owned(), None, None)
        }
        Err(_) => {
            tracing::warn!(
                secs = startup.as_secs(),
                "cluster: Redis did not answer at start; serving from memory until it answers"
            );
            (None, "$".to_owned(), None, None)
        }
    };
    let mut tasks = JoinSet::new();
    let (stop, stop_rx) = tokio::sync::oneshot::channel();
    tasks.spawn(
        writer::Writer {
            shared: Arc::clone(&shared),
            con: con.clone(),
            pending: Default::default(),
            drained: Vec::new(),
            seq: 0,
            stop: stop_rx,
        }
        .run(),
    );
    tasks.spawn(
        reader::Reader {
            shared: Arc::clone(&shared),
            con: None,
            last_id,
            senders: Default::default(),
            reload_needed: false,
            check_first: false,
        }
        .run(),
    );
    Ok(Running {
        connection_id_key: key.unwrap_or(local_key),
        key_shared: key.is_some(),
        loaded,
        status: Arc::clone(&shared.status),
        tasks,
        stop: Some(stop),
        shared,
    })
}

/// The id of the replication log's last entry ("0-0" when it is empty).
pub(crate) async fn last_log_id(
    shared: &Shared,
    con: &mut conn::Con,
) -> Result<String, ClusterError> {
    Ok(log_edge_id(shared, con, true)
        .await?
        .unwrap_or_else(|| "0-0".to_owned()))
}

/// The id of the replication log's newest (`newest`) or oldest entry; `None` when it is empty.
/// (The reply carries that entry whole.)
pub(crate) async fn log_edge_id(
    shared: &Shared,
    con: &mut conn::Con,
    newest: bool,
) -> Result<Option<String>, ClusterError> {
    let (cmd, from, to) = match newest {
        true => ("XREVRANGE", "+", "-"),
        false => ("XRANGE", "-", "+"),
    };
    let edge: redis::streams::StreamRangeReply = redis::cmd(cmd)
        .arg(shared.keys.log())
        .arg(from)
        .arg(to)
        .arg("COUNT")
        .arg(1)
        .query_async(con)
        .await?;
    Ok(edge.ids.into_iter().next().map(|e| e.id))
}

/// The start-up exchange: the log position first (so nothing written during the load is
/// missed; a change seen twice is harmless), then the swarms, then the shared key.
async fn join(
    shared: &Shared,
    local_key: [u8; 16],
) -> Result<(conn::Con, String, LoadReport, [u8; 16]), ClusterError> {
    let mut con = shared.connect(None).await?;
    let last_id = last_log_id(shared, &mut con).await?;
    let loaded = load::load(shared, &mut con).await?;
    let key_name = shared.keys.udp_key();
    let mut pipe = redis::pipe();
    pipe.cmd("SET")
        .arg(&key_name)
        .arg(hex::encode(local_key))
        .arg("NX")
        .ignore();
    pipe.cmd("GET").arg(&key_name);
    let (stored,): (String,) = pipe.query_async(&mut con).await?;
    let mut key = [0u8; 16];
    if hex::decode_to_slice(stored.trim(), &mut key).is_err() {
        return Err(ClusterError::Config(format!(
            "the shared connection-id key in Redis ({key_name}) is not 32 hex characters"
        )));
    }
    Ok((con, last_id, loaded, key))
}
