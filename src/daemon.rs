//! Wiring: builds the tracker, restores the snapshot, binds every socket, starts the listeners
//! and the periodic jobs, tells systemd, and handles signals until shutdown.
//!
//! Order at start: snapshot restored -> HTTP, admin and UDP sockets bound -> jobs started ->
//! one "started" log line with the bound addresses -> `READY=1`. At SIGTERM / SIGINT:
//! `STOPPING=1` -> listeners stopped -> final snapshot -> exit 0 (1 if that snapshot failed). A
//! listener or worker that dies on its own makes the daemon stop the same way and exit non-zero.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use socket2::{Domain, Socket, Type};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracker_core::Tracker;
use tracker_core::snapshot::{self, RestoreOutcome, SnapshotError};
use tracker_udp::UdpServer;

use crate::admin::{self, AdminContext};
use crate::config::{Config, Source};
use crate::logging::LogControl;
use crate::notify::{self, Notifier};
use crate::state::DaemonState;

/// Seconds between systemd `STATUS=` updates.
const STATUS_EVERY: Duration = Duration::from_secs(5);
/// How long stopping listeners may take before the final snapshot is written anyway.
const LISTENER_STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Listen backlog of TCP listeners.
const BACKLOG: i32 = 1024;

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
    let tracker = Arc::new(Tracker::new(config.to_core()));

    if config.snapshot.enabled {
        restore(&tracker, &config.snapshot.path).await?;
    } else {
        tracing::info!("snapshots disabled (snapshot.enabled = false): starting empty");
    }

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

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    // Set on every way out of this function, so that no UDP worker outlives it.
    let udp_stop = StopFlag(Arc::new(AtomicBool::new(false)));

    let udp_binds = usable_binds(&config.udp.bind, "udp.bind");
    let http_binds = usable_binds(&config.http.bind, "http.bind");

    let mut listeners: JoinSet<anyhow::Result<()>> = JoinSet::new();
    let http_config = Arc::new(config.http.clone());
    let mut http_addrs = Vec::new();
    for addr in http_binds {
        let l = bind_tcp(addr)
            .with_context(|| format!("binding the HTTP tracker on {addr} (http.bind)"))?;
        let local = l
            .local_addr()
            .context("reading the HTTP listener address")?;
        http_addrs.push(local);
        let stop = stopped(shutdown_rx.clone());
        let fut = tracker_http::serve(l, Arc::clone(&tracker), Arc::clone(&http_config), stop);
        listeners.spawn(async move {
            fut.await
                .with_context(|| format!("the HTTP tracker on {local} failed"))
        });
    }

    let admin_ctx = Arc::new(AdminContext {
        tracker: Arc::clone(&tracker),
        state: Arc::clone(&state),
        token: config.admin.token.clone(),
    });
    let mut admin_addrs = Vec::new();
    for &addr in &config.admin.bind {
        let l = bind_tcp(addr)
            .with_context(|| format!("binding the admin listener on {addr} (admin.bind)"))?;
        let local = l
            .local_addr()
            .context("reading the admin listener address")?;
        admin_addrs.push(local);
        let fut = admin::serve(l, Arc::clone(&admin_ctx), shutdown_rx.clone());
        listeners.spawn(async move {
            fut.await
                .with_context(|| format!("the admin listener on {local} failed"))
        });
    }

    let udp_config = tracker_udp::UdpConfig {
        bind: udp_binds,
        ..config.udp.clone()
    };
    let (udp_addrs, mut udp_join) = if udp_config.bind.is_empty() {
        let mut rx = shutdown_rx.clone();
        let idle = tokio::spawn(async move {
            let _ = rx.wait_for(|s| *s).await;
            Ok(())
        });
        (Vec::new(), idle)
    } else {
        let server = UdpServer::start(Arc::clone(&tracker), &udp_config, Arc::clone(&udp_stop.0))
            .context("starting the UDP tracker ([udp])")?;
        (
            server.local_addrs(),
            tokio::task::spawn_blocking(move || server.join()),
        )
    };

    let mut jobs = JoinSet::new();
    jobs.spawn(tick(Arc::clone(&tracker)));
    jobs.spawn(sweep_job(
        Arc::clone(&tracker),
        Arc::clone(&state),
        config.swarm.sweep_interval,
    ));
    if config.snapshot.enabled {
        jobs.spawn(snapshot_job(
            Arc::clone(&tracker),
            Arc::clone(&state),
            config.snapshot.path.clone(),
            config.snapshot.interval,
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
        jobs.spawn(watchdog(n, Arc::clone(&tracker), every));
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
        udp = %addr_list(&udp_addrs),
        http = %addr_list(&http_addrs),
        admin = %addr_list(&admin_addrs),
        torrents = counts.torrents,
        peers = counts.total(),
        startup_ms = started.elapsed().as_millis() as u64,
        "mini-torrust started"
    );
    state.set_ready(true);
    notify::notify(
        notifier,
        &format!("READY=1\nSTATUS={}", status_line(&tracker, None).await),
    );

    let mut running = config;
    let mut status_tick =
        tokio::time::interval_at(tokio::time::Instant::now() + STATUS_EVERY, STATUS_EVERY);
    let mut last_requests = (Instant::now(), total_requests(&tracker));
    let (reason, outcome): (&str, anyhow::Result<()>) = loop {
        tokio::select! {
            _ = sigterm.recv() => break ("SIGTERM", Ok(())),
            _ = sigint.recv() => break ("SIGINT", Ok(())),
            _ = sighup.recv() => reload(&mut running, &source, &log, notifier, &tracker).await,
            _ = status_tick.tick() => {
                let line = status_line(&tracker, Some(&mut last_requests)).await;
                notify::notify(notifier, &format!("STATUS={line}"));
            }
            Some(done) = listeners.join_next() => {
                let e = match done {
                    Ok(Ok(())) => anyhow!("a listener stopped unexpectedly"),
                    Ok(Err(e)) => e,
                    Err(e) => anyhow!(e).context("a listener task panicked"),
                };
                break ("listener failure", Err(e));
            }
            done = &mut udp_join => {
                let e = match done {
                    Ok(Ok(())) => anyhow!("the UDP workers stopped unexpectedly"),
                    Ok(Err(e)) => anyhow!(e).context("the UDP tracker failed"),
                    Err(e) => anyhow!(e).context("the UDP join task failed"),
                };
                // Already finished: the shutdown below must not await it again.
                udp_join = tokio::spawn(async { Ok::<(), tracker_udp::UdpError>(()) });
                break ("UDP failure", Err(e));
            }
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
    let _ = shutdown_tx.send(true);
    udp_stop.0.store(true, Ordering::Release);
    let stop_listeners = async {
        while listeners.join_next().await.is_some() {}
        match udp_join.await {
            Ok(Err(e)) => tracing::error!(error = %e, "UDP tracker failed while stopping"),
            Err(e) => tracing::error!(error = %e, "UDP join task failed"),
            Ok(Ok(())) => {}
        }
    };
    if tokio::time::timeout(LISTENER_STOP_TIMEOUT, stop_listeners)
        .await
        .is_err()
    {
        tracing::warn!(
            timeout_s = LISTENER_STOP_TIMEOUT.as_secs(),
            "listeners did not stop in time; writing the snapshot anyway"
        );
    }
    jobs.abort_all();

    let mut final_snapshot = "disabled".to_owned();
    let mut result = outcome;
    if running.snapshot.enabled {
        match write_snapshot(&tracker, &state, &running.snapshot.path, "final").await {
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

/// Sets its flag when dropped.
struct StopFlag(Arc<AtomicBool>);

impl Drop for StopFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// A future that resolves once `rx` turns true (or its sender is gone).
async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Loads the snapshot before any socket opens. A future-version file stops the start.
async fn restore(tracker: &Arc<Tracker>, path: &Path) -> anyhow::Result<()> {
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
        }
        Ok(RestoreOutcome::MovedAside { moved_to, error }) => {
            tracing::warn!(path = %path.display(), moved_to = %moved_to.display(), error = %error, "snapshot unreadable: moved aside, starting empty");
        }
        Err(e @ SnapshotError::FutureVersion { .. }) => {
            return Err(anyhow!(e)).context("refusing to start: the snapshot was written by a newer mini-torrust (snapshot.path)");
        }
        Err(e) => return Err(anyhow!(e)).context("restoring the snapshot (snapshot.path)"),
    }
    Ok(())
}

/// Writes one snapshot on a blocking thread and records it (`snapshot::write` lets one writer
/// at a time use the temp file).
async fn write_snapshot(
    tracker: &Arc<Tracker>,
    state: &DaemonState,
    path: &Path,
    why: &'static str,
) -> Result<snapshot::WriteReport, SnapshotError> {
    let (t, p) = (Arc::clone(tracker), path.to_path_buf());
    let joined = tokio::task::spawn_blocking(move || {
        let t0 = Instant::now();
        (snapshot::write(&t, &p), t0.elapsed())
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
async fn snapshot_job(tracker: Arc<Tracker>, state: Arc<DaemonState>, path: PathBuf, secs: u32) {
    let period = Duration::from_secs(u64::from(secs.max(1)));
    let mut every = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        // Failures are logged and counted in the metrics; the next period tries again.
        let _ = write_snapshot(&tracker, &state, &path, "periodic").await;
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

/// SIGHUP: re-reads the config file; applies the log filter, re-reads the access list files
/// and syncs the index directory; names settings that need a restart. Swarms are untouched.
async fn reload(
    running: &mut Config,
    source: &Source,
    log: &LogControl,
    notifier: Option<&Notifier>,
    tracker: &Arc<Tracker>,
) {
    let t0 = Instant::now();
    notify::notify(notifier, "RELOADING=1\nSTATUS=reloading");
    let src = source.clone();
    let loaded = tokio::task::spawn_blocking(move || Config::load(&src, crate::env_vars())).await;
    match loaded {
        Ok(Ok(new)) => {
            let mut applied = Vec::new();
            if new.log.filter != running.log.filter {
                match log.set_filter(&new.log.filter) {
                    Ok(()) => {
                        applied.push("log.filter");
                        running.log.filter = new.log.filter.clone();
                    }
                    Err(e) => {
                        tracing::error!(error = %format!("{e:#}"), "reload: log filter not changed")
                    }
                }
            }
            // Access list files: re-read; on error the old lists stay.
            let t = Arc::clone(tracker);
            match tokio::task::spawn_blocking(move || t.reload_files()).await {
                Ok(Ok(r)) => {
                    if r.allow_file_entries + r.deny_file_entries > 0 {
                        applied.push("access lists");
                    }
                    if r.index_added + r.index_removed > 0 {
                        applied.push("index directory");
                        tracing::info!(
                            added = r.index_added,
                            removed = r.index_removed,
                            "reload: index directory synced"
                        );
                    }
                    for e in &r.index_errors {
                        tracing::warn!(error = %e, "reload: index directory file skipped");
                    }
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "reload: access lists not changed")
                }
                Err(e) => tracing::error!(error = %e, "reload: access list task failed"),
            }
            let restart: Vec<&str> = crate::config::SECTIONS
                .iter()
                .copied()
                .filter(|s| {
                    let mut a = running.section_value(s);
                    let mut b = new.section_value(s);
                    if *s == "log" {
                        // The filter is applied live; only the format needs a restart.
                        for v in [&mut a, &mut b].into_iter().flatten() {
                            if let Some(t) = v.as_table_mut() {
                                t.remove("filter");
                            }
                        }
                    }
                    a != b
                })
                .collect();
            if !restart.is_empty() {
                tracing::warn!(sections = ?restart, "reload: these sections changed and take effect only after a restart");
            }
            tracing::info!(config = %source, applied = ?applied, ms = t0.elapsed().as_millis() as u64, "config reloaded");
        }
        Ok(Err(problems)) => {
            tracing::error!(config = %source, problems = %problems, "reload refused: keeping the running config");
        }
        Err(e) => tracing::error!(error = %e, "reload task failed"),
    }
    let line = status_line(tracker, None).await;
    notify::notify(notifier, &format!("READY=1\nSTATUS={line}"));
}

fn total_requests(tracker: &Tracker) -> u64 {
    let s = tracker.stats().read();
    s.udp.requests + s.http.requests
}

/// `serving: N torrents, M peers, R requests/s` (the rate since the last call when `last` is
/// given).
async fn status_line(tracker: &Arc<Tracker>, last: Option<&mut (Instant, u64)>) -> String {
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

fn addr_list(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The bind addresses to use: a wildcard IPv6 address (`[::]`) is left out, with a warning,
/// when this machine has no IPv6 (the kernel refuses IPv6 sockets); everything else is kept
/// and a failure to bind it stops the start.
fn usable_binds(binds: &[SocketAddr], option: &str) -> Vec<SocketAddr> {
    let have_v6 = ipv6_available();
    binds
        .iter()
        .copied()
        .filter(|a| {
            let skip = a.is_ipv6() && a.ip().is_unspecified() && !have_v6;
            if skip {
                tracing::warn!(addr = %a, option, "IPv6 is not available on this machine: not listening on {a}");
            }
            !skip
        })
        .collect()
}

/// Whether an IPv6 socket can be created and bound to `[::]` (false when the kernel has no
/// IPv6: EAFNOSUPPORT, or it is disabled: EADDRNOTAVAIL).
fn ipv6_available() -> bool {
    let probe = || -> std::io::Result<()> {
        let s = Socket::new(Domain::IPV6, Type::DGRAM, None)?;
        s.set_only_v6(true)?;
        s.bind(&SocketAddr::from(([0u16; 8], 0)).into())
    };
    match probe() {
        Ok(()) => true,
        Err(e) => !matches!(
            e.raw_os_error(),
            Some(libc::EAFNOSUPPORT) | Some(libc::EADDRNOTAVAIL)
        ),
    }
}

/// A non-blocking TCP listener; IPv6 addresses are bound IPV6_V6ONLY so `0.0.0.0:p` and
/// `[::]:p` coexist.
fn bind_tcp(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let s = Socket::new(
        Domain::for_address(addr),
        Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.set_nodelay(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(BACKLOG)?;
    TcpListener::from_std(s.into()).context("registering the listener with tokio")
}
