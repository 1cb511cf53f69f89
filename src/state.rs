//! What the daemon knows about itself, shared by its jobs, the admin listener and systemd
//! `STATUS=`: readiness, the figures of the last snapshots and sweeps, and the cluster link's
//! counters in cluster mode.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The last snapshot write.
#[derive(Debug, Clone, Copy, Default)]
pub struct SnapshotFigures {
    /// Successful writes since start.
    pub writes: u64,
    /// Failed writes since start.
    pub failures: u64,
    /// Duration of the last successful write.
    pub last_duration: Duration,
    /// When the last successful write finished.
    pub last_success: Option<Instant>,
    /// Its size in bytes.
    pub last_bytes: u64,
}

/// The sweeps so far.
#[derive(Debug, Clone, Copy, Default)]
pub struct SweepFigures {
    /// Sweeps run.
    pub runs: u64,
    /// Duration of the last one.
    pub last_duration: Duration,
    /// Expired peers removed, in total.
    pub peers_removed: u64,
    /// Empty torrents removed, in total.
    pub torrents_removed: u64,
}

/// The daemon's own state.
#[derive(Debug)]
pub struct DaemonState {
    /// When the process started.
    pub started: Instant,
    /// The same, as unix seconds.
    pub started_unix: u64,
    ready: AtomicBool,
    snapshot: Mutex<SnapshotFigures>,
    sweep: Mutex<SweepFigures>,
    /// The cluster link's counters (cluster mode only), set once at start.
    cluster: OnceLock<Arc<tracker_cluster::ClusterStatus>>,
    /// What the admin API holds around its edits and notifies after them (cluster mode
    /// shares the API-made state; unused otherwise).
    pub api_edits: Arc<tracker_cluster::StateHooks>,
}

impl DaemonState {
    /// Fresh, not ready.
    pub fn new(started: Instant) -> Self {
        let started_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .saturating_sub(started.elapsed().as_secs());
        Self {
            started,
            started_unix,
            ready: AtomicBool::new(false),
            snapshot: Mutex::new(SnapshotFigures::default()),
            sweep: Mutex::new(SweepFigures::default()),
            cluster: OnceLock::new(),
            api_edits: Arc::default(),
        }
    }

    /// Serving: every socket bound, snapshot loaded, not stopping.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// The cluster link's counters, in cluster mode.
    pub fn cluster(&self) -> Option<&tracker_cluster::ClusterStatus> {
        self.cluster.get().map(|c| &**c)
    }

    /// Why the node is degraded (still serving, from memory), if it is: in cluster mode, Redis
    /// not answering.
    pub fn degraded(&self) -> Option<&'static str> {
        let c = self.cluster()?;
        (!c.redis_up.load(Ordering::Relaxed)).then_some("Redis unreachable, serving from memory")
    }

    /// Records the cluster link's counters (once, at start).
    pub fn set_cluster(&self, status: Arc<tracker_cluster::ClusterStatus>) {
        let _ = self.cluster.set(status);
    }

    /// Sets readiness (true after READY=1, false from STOPPING=1).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// The snapshot figures.
    pub fn snapshot(&self) -> SnapshotFigures {
        *self.snapshot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a snapshot write.
    pub fn record_snapshot(&self, result: Result<(Duration, u64), ()>) {
        let mut s = self.snapshot.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok((d, bytes)) => {
                s.writes += 1;
                s.last_duration = d;
                s.last_success = Some(Instant::now());
                s.last_bytes = bytes;
            }
            Err(()) => s.failures += 1,
        }
    }

    /// The sweep figures.
    pub fn sweep(&self) -> SweepFigures {
        *self.sweep.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a sweep.
    pub fn record_sweep(&self, d: Duration, peers: usize, torrents: usize) {
        let mut s = self.sweep.lock().unwrap_or_else(|e| e.into_inner());
        s.runs += 1;
        s.last_duration = d;
        s.peers_removed += peers as u64;
        s.torrents_removed += torrents as u64;
    }
}
