//! Wiring: builds the tracker, restores the snapshot, binds every socket, starts the listeners
//! and the periodic jobs, tells systemd, and handles signals until shutdown.
//!
//! Order at start: snapshot restored -> HTTPS certificate loaded -> HTTP, HTTPS, admin and UDP
//! sockets bound -> jobs started -> one "started" log line with the bound addresses ->
//! `READY=1`. At SIGTERM / SIGINT:
//! `STOPPING=1` -> listeners stopped -> (cluster mode) last flush to Redis -> final snapshot ->
//! exit 0 (1 if that snapshot failed). A listener or worker that dies on its own makes the daemon
//! stop the same way and exit non-zero.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use tokio::signal::unix::{SignalKind, signal};
use tracker_core::Tracker;

use crate::admin::AdminContext;
use crate::config::{Config, Source};
use crate::jobs;
use crate::listeners::{Listeners, addr_list};
use crate::logging::LogControl;
use crate::notify::{self, Notifier};
use crate::reload;
use crate::state::DaemonState;

/// Seconds between systemd `STATUS=` updates.
const STATUS_EVERY: Duration = Duration::from_secs(5);
/// How long stopping listeners may take before the final snapshot is written anyway.
const LISTENER_STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the last flush to Redis (cluster mode) may take at a clean stop.
const LAST_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the daemon until a signal asks it to stop (`Ok`) or a part of it fails (`Err`).
pub async fn run(config: Config, source: Source, log: LogControl) -> anyhow::Result<()> {
    let started = Instant::now();
    // Handlers first, so that a signal during start-up is not the default action.
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut sighup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let notifier =
        Notifier::from_env().context("opening the systemd notification socket (NOTIFY_SOCKET)")?;
    let notifier = notifier.as_ref();
    let state = Arc::new(DaemonState::new(started));
    let mut tracker = Tracker::new(config.to_core());
    if config.cluster.enabled() {
        // Cluster mode: announces record what they change for the cluster writer.
        tracker = tracker.with_change_log(config.cluster.ring_capacity);
    }
    let tracker = Arc::new(tracker);

    let restored_key = if config.snapshot.enabled {
        jobs::restore(&tracker, &config.snapshot.path).await?
    } else {
        tracing::info!("snapshots disabled (snapshot.enabled = false): starting empty");
        None
    };

    {
        let t = Arc::clone(&tracker);
        let r = tokio::task::spawn_blocking(move || t.reload_files())
            .await
            .context("the access list task failed")?
            .context("loading the access lists and index directory ([access])")?;
        if r.allow_file_entries + r.deny_file_entries + r.index_added > 0 {
            tracing::info!(
                allow = r.allow_file_entries,
                deny = r.deny_file_entries,
                indexed = r.index_added,
                "access lists and index directory loaded"
            );
        }
        for e in &r.index_errors {
            tracing::warn!(error = %e, "index directory: file skipped");
        }
    }

    let admin_ctx = Arc::new(AdminContext {
        tracker: Arc::clone(&tracker),
        state: Arc::clone(&state),
        token: config.admin.token.clone(),
        status: Arc::new(crate::status::Sampler::new(config.admin.status_sample_secs)),
    });
    // A first start draws a random connection-id key; later ones keep the snapshot's. In
    // cluster mode the first node's key, shared through Redis, wins.
    let mut key = restored_key.unwrap_or_else(rand::random);
    let mut cluster = None;
    if config.cluster.enabled() {
        let mut c = tracker_cluster::start(Arc::clone(&tracker), &config.cluster, key)
            .await
            .context("starting cluster mode ([cluster])")?;
        tracing::info!(
            node = %config.cluster.node_name(),
            loaded_torrents = c.loaded.map(|l| l.torrents),
            loaded_peers = c.loaded.map(|l| l.peers),
            shared_key = c.key_shared,
            "cluster mode: joined"
        );
        key = c.connection_id_key;
        if let Some(r) = c.share_operator_state(Arc::clone(&state.api_edits)).await {
            tracing::info!(
                applied = r.applied,
                written = r.written,
                "cluster mode: operator state shared"
            );
        }
        state.set_cluster(Arc::clone(&c.status));
        cluster = Some(c);
    }
    let mut listeners = Listeners::start(&config, &tracker, &admin_ctx, key)?;
    let key = listeners.connection_id_key;
    let mut jobs = jobs::start(&config, &tracker, &state, &admin_ctx.status, key);
    if let Some(c) = cluster.as_mut() {
        // The cluster's writer and reader never return: either one ending is a job failure.
        let mut tasks = std::mem::take(&mut c.tasks);
        jobs.spawn(async move {
            tasks.join_next().await;
        });
    }

    let counts = {
        let t = Arc::clone(&tracker);
        tokio::task::spawn_blocking(move || t.peer_counts(t.clock().now()))
            .await
            .context("counting peers")?
    };
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        config = %source,
        udp = %addr_list(&listeners.udp),
        http = %addr_list(&listeners.http),
        https = %addr_list(&listeners.https),
        admin = %addr_list(&listeners.admin),
        torrents = counts.torrents,
        peers = counts.total(),
        startup_ms = started.elapsed().as_millis() as u64,
        "mini-torrust started"
    );
    state.set_ready(true);
    notify::notify(
        notifier,
        &format!(
            "READY=1\nSTATUS={}",
            jobs::status_line(&tracker, None).await
        ),
    );

    let mut running = config;
    let mut status_tick =
        tokio::time::interval_at(tokio::time::Instant::now() + STATUS_EVERY, STATUS_EVERY);
    let mut last_requests = (Instant::now(), jobs::total_requests(&tracker));
    let (reason, outcome): (&str, anyhow::Result<()>) = loop {
        tokio::select! {
            _ = sigterm.recv() => break ("SIGTERM", Ok(())),
            _ = sigint.recv() => break ("SIGINT", Ok(())),
            _ = sighup.recv() => {
                let tls = listeners.tls.as_ref();
                reload::reload(&mut running, &source, &log, notifier, &tracker, tls).await
            }
            _ = status_tick.tick() => {
                let mut line = jobs::status_line(&tracker, Some(&mut last_requests)).await;
                if let Some(why) = state.degraded() {
                    line.push_str(&format!("; degraded: {why}"));
                }
                notify::notify(notifier, &format!("STATUS={line}"));
            }
            e = listeners.failed() => break ("listener failure", Err(e)),
            Some(done) = jobs.join_next() => {
                let e = match done {
                    Ok(()) => anyhow!("a periodic job stopped unexpectedly"),
                    Err(e) => anyhow!(e).context("a periodic job panicked"),
                };
                break ("job failure", Err(e));
            }
        }
    };

    // Shutdown.
    let stop_started = Instant::now();
    tracing::info!(reason, "stopping");
    state.set_ready(false);
    notify::notify(
        notifier,
        &format!("STOPPING=1\nSTATUS=stopping ({reason}), writing the final snapshot"),
    );
    if !listeners.stop(LISTENER_STOP_TIMEOUT).await {
        tracing::warn!(
            timeout_s = LISTENER_STOP_TIMEOUT.as_secs(),
            "listeners did not stop in time; writing the snapshot anyway"
        );
    }
    if let Some(c) = cluster.as_mut() {
        // The last changes (after the listeners stopped, nothing new comes) go to Redis.
        if !c.last_flush(LAST_FLUSH_TIMEOUT).await {
            tracing::warn!("cluster: the last flush to Redis did not finish");
        }
    }
    jobs.abort_all();

    let mut final_snapshot = "disabled".to_owned();
    let mut result = outcome;
    if running.snapshot.enabled {
        match jobs::write_snapshot(&tracker, &state, &running.snapshot.path, key, "final").await {
            Ok(r) => final_snapshot = format!("{} torrents, {} peers", r.torrents, r.peers),
            Err(e) => {
                final_snapshot = "failed".into();
                if result.is_ok() {
                    result = Err(anyhow!(e).context("writing the final snapshot"));
                }
            }
        }
    }
    tracing::info!(
        reason,
        final_snapshot = %final_snapshot,
        stop_ms = stop_started.elapsed().as_millis() as u64,
        uptime_s = started.elapsed().as_secs(),
        "mini-torrust stopped"
    );
    result
}
