//! The daemon's background work: the snapshot restore at start and every snapshot write, the
//! coarse clock, the sweep, periodic snapshots, the status page's sampler (its own module,
//! [`crate::status::sampler`]), the systemd watchdog and the STATUS line.
//! Blocking work (sweeps, snapshots, peer counts) runs on tokio's blocking threads.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use tokio::task::JoinSet;
use tracker_core::Tracker;
use tracker_core::snapshot::{self, RestoreOutcome, SnapshotError};

use crate::config::Config;
use crate::notify::{self, Notifier};
use crate::state::DaemonState;

/// Starts the periodic jobs: clock, sweep, snapshots (when enabled), the status sampler (when
/// the admin listener is on), watchdog (when systemd asks for one). None of them ever returns;
/// one that does is a failure.
pub(crate) fn start(
    config: &Config,
    tracker: &Arc<Tracker>,
    state: &Arc<DaemonState>,
    sampler: &Arc<crate::status::Sampler>,
    connection_id_key: [u8; 16],
) -> JoinSet<()> {
    let mut jobs = JoinSet::new();
    jobs.spawn(tick(Arc::clone(tracker)));
    if !config.admin.bind.is_empty() {
        jobs.spawn(crate::status::sampler::run(
            Arc::clone(tracker),
            Arc::clone(sampler),
        ));
    }
    jobs.spawn(sweep_job(
        Arc::clone(tracker),
        Arc::clone(state),
        config.swarm.sweep_interval,
    ));
    if config.snapshot.enabled {
        jobs.spawn(snapshot_job(
            Arc::clone(tracker),
            Arc::clone(state),
            config.snapshot.path.clone(),
            config.snapshot.interval,
            connection_id_key,
        ));
    }
    if let (Some(every), Some(n)) = (
        notify::watchdog_interval(),
        Notifier::from_env().ok().flatten(),
    ) {
        tracing::info!(
            every_ms = every.as_millis() as u64,
            "systemd watchdog enabled"
        );
        jobs.spawn(watchdog(n, Arc::clone(tracker), every));
    }
    jobs
}

/// Loads the snapshot before any socket opens; returns the UDP connection-id key it kept. A
/// future-version file stops the start.
pub(crate) async fn restore(
    tracker: &Arc<Tracker>,
    path: &Path,
) -> anyhow::Result<Option<[u8; 16]>> {
    let t0 = Instant::now();
    let (t, p) = (Arc::clone(tracker), path.to_path_buf());
    let outcome = tokio::task::spawn_blocking(move || snapshot::restore(&t, &p))
        .await
        .context("the snapshot restore task failed")?;
    let ms = t0.elapsed().as_millis() as u64;
    match outcome {
        Ok(RestoreOutcome::Missing) => {
            tracing::info!(path = %path.display(), "no snapshot yet: starting empty");
        }
        Ok(RestoreOutcome::Loaded(r)) => {
            tracing::info!(path = %path.display(), torrents = r.torrents, peers = r.peers, dropped = r.dropped, ms, "snapshot loaded");
            return Ok(r.connection_id_key);
        }
        Ok(RestoreOutcome::MovedAside { moved_to, error }) => {
            tracing::warn!(path = %path.display(), moved_to = %moved_to.display(), error = %error, "snapshot unreadable: moved aside, starting empty");
        }
        Err(e @ SnapshotError::FutureVersion { .. }) => {
            return Err(anyhow!(e)).context("refusing to start: the snapshot was written by a newer mini-torrust (snapshot.path)");
        }
        Err(e) => return Err(anyhow!(e)).context("restoring the snapshot (snapshot.path)"),
    }
    Ok(None)
}

/// Writes one snapshot on a blocking thread and records it (`snapshot::write` lets one writer
/// at a time use the temp file).
pub(crate) async fn write_snapshot(
    tracker: &Arc<Tracker>,
    state: &DaemonState,
    path: &Path,
    connection_id_key: [u8; 16],
    why: &'static str,
) -> Result<snapshot::WriteReport, SnapshotError> {
    let (t, p) = (Arc::clone(tracker), path.to_path_buf());
    let joined = tokio::task::spawn_blocking(move || {
        let t0 = Instant::now();
        (snapshot::write(&t, &p, connection_id_key), t0.elapsed())
    })
    .await;
    let (result, took) = match joined {
        Ok(r) => r,
        Err(e) => {
            let source = std::io::Error::other(format!("snapshot task failed: {e}"));
            (
                Err(SnapshotError::Io {
                    path: path.to_path_buf(),
                    source,
                }),
                Duration::ZERO,
            )
        }
    };
    match &result {
        Ok(r) => {
            state.record_snapshot(Ok((took, r.bytes)));
            tracing::info!(
                why,
                path = %path.display(),
                torrents = r.torrents,
                peers = r.peers,
                bytes = r.bytes,
                ms = took.as_millis() as u64,
                "snapshot written"
            );
        }
        Err(e) => {
            state.record_snapshot(Err(()));
            tracing::error!(why, path = %path.display(), error = %e, "snapshot failed");
        }
    }
    result
}

/// Ticks the coarse clock once a second.
async fn tick(tracker: Arc<Tracker>) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        tracker.clock().tick();
    }
}

/// Drops expired peers every `secs` seconds, on a blocking thread.
async fn sweep_job(tracker: Arc<Tracker>, state: Arc<DaemonState>, secs: u32) {
    let period = Duration::from_secs(u64::from(secs.max(1)));
    let mut every = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let t = Arc::clone(&tracker);
        let res = tokio::task::spawn_blocking(move || {
            let t0 = Instant::now();
            let r = t.sweep(t.clock().now());
            (r, t0.elapsed())
        })
        .await;
        match res {
            Ok((r, took)) => {
                state.record_sweep(took, r.peers_removed, r.torrents_removed);
                tracing::debug!(
                    peers_removed = r.peers_removed,
                    torrents_removed = r.torrents_removed,
                    ms = took.as_millis() as u64,
                    "sweep"
                );
            }
            Err(e) => tracing::error!(error = %e, "sweep task failed"),
        }
    }
}

/// Writes a snapshot every `secs` seconds.
async fn snapshot_job(
    tracker: Arc<Tracker>,
    state: Arc<DaemonState>,
    path: PathBuf,
    secs: u32,
    connection_id_key: [u8; 16],
) {
    let period = Duration::from_secs(u64::from(secs.max(1)));
    let mut every = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        // Failures are logged and counted in the metrics; the next period tries again.
        let _ = write_snapshot(&tracker, &state, &path, connection_id_key, "periodic").await;
    }
}

/// Sends `WATCHDOG=1` every `every` while the clock job keeps the coarse clock current (a
/// stalled runtime stops both).
async fn watchdog(notifier: Notifier, tracker: Arc<Tracker>, every: Duration) {
    let mut t = tokio::time::interval(every);
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        t.tick().await;
        let lag = tracker_core::unix_now().saturating_sub(tracker.clock().now());
        if lag <= 5 {
            notify::notify(Some(&notifier), "WATCHDOG=1");
        } else {
            tracing::warn!(
                lag_s = lag,
                "clock job is behind: withholding the watchdog ping"
            );
        }
    }
}

pub(crate) fn total_requests(tracker: &Tracker) -> u64 {
    let s = tracker.stats().read();
    s.udp.requests + s.http.requests
}

/// `serving: N torrents, M peers, R requests/s` (the rate since the last call when `last` is
/// given).
pub(crate) async fn status_line(
    tracker: &Arc<Tracker>,
    last: Option<&mut (Instant, u64)>,
) -> String {
    let t = Arc::clone(tracker);
    let counts = tokio::task::spawn_blocking(move || t.peer_counts(t.clock().now()))
        .await
        .unwrap_or_default();
    let mut line = format!(
        "serving: {} torrents, {} peers",
        counts.torrents,
        counts.total()
    );
    if let Some(last) = last {
        let now = (Instant::now(), total_requests(tracker));
        let secs = now.0.duration_since(last.0).as_secs_f64();
        if secs > 0.0 {
            let rate = now.1.saturating_sub(last.1) as f64 / secs;
            line.push_str(&format!(", {rate:.0} requests/s"));
        }
        *last = now;
    }
    line
}
