//! Every listener the daemon runs, with one lifecycle: sockets are bound (and a bind failure
//! stops the start, naming the option) in [`Listeners::start`], their addresses are read back,
//! then the daemon waits on [`Listeners::failed`] (a listener that ends on its own is a
//! failure) and ends them all with [`Listeners::stop`].
//!
//! HTTP and admin listeners are tokio tasks that stop when the shutdown watch turns true; the
//! UDP workers are threads that stop on a flag, joined from a blocking task. All of them sit in
//! one `JoinSet`, so none needs a placeholder when it is not configured.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use socket2::{Domain, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracker_core::Tracker;
use tracker_udp::UdpServer;

use crate::admin::{self, AdminContext};
use crate::config::Config;

/// Listen backlog of TCP listeners.
const BACKLOG: i32 = 1024;

/// The running listeners and what they are bound to.
#[derive(Debug)]
pub(crate) struct Listeners {
    /// Bound HTTP tracker addresses.
    pub(crate) http: Vec<SocketAddr>,
    /// Bound admin addresses.
    pub(crate) admin: Vec<SocketAddr>,
    /// Bound UDP tracker addresses.
    pub(crate) udp: Vec<SocketAddr>,
    /// The key UDP connection ids are signed with (`udp.connection_id_key` if configured, else
    /// the one given to [`Listeners::start`]): what snapshots keep.
    pub(crate) connection_id_key: [u8; 16],
    tasks: JoinSet<anyhow::Result<()>>,
    shutdown: watch::Sender<bool>,
    udp_stop: StopFlag,
}

/// Sets its flag when dropped: no UDP worker outlives the daemon, whichever way it leaves.
#[derive(Debug)]
struct StopFlag(Arc<AtomicBool>);

impl Drop for StopFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

impl Listeners {
    /// Binds and starts every configured listener.
    pub(crate) fn start(
        config: &Config,
        tracker: &Arc<Tracker>,
        admin_ctx: &Arc<AdminContext>,
        connection_id_key: [u8; 16],
    ) -> anyhow::Result<Self> {
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut l = Listeners {
            http: Vec::new(),
            admin: Vec::new(),
            udp: Vec::new(),
            connection_id_key,
            tasks: JoinSet::new(),
            shutdown,
            udp_stop: StopFlag(Arc::new(AtomicBool::new(false))),
        };
        let http_config = Arc::new(config.http.clone());
        for addr in usable_binds(&config.http.bind, "http.bind") {
            let (listener, local) = bind_named(addr, "the HTTP tracker", "http.bind")?;
            l.http.push(local);
            let mut rx = shutdown_rx.clone();
            let stop = async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            let fut = tracker_http::serve(
                listener,
                Arc::clone(tracker),
                Arc::clone(&http_config),
                stop,
            );
            l.spawn_tcp("the HTTP tracker", local, fut);
        }
        for &addr in &config.admin.bind {
            let (listener, local) = bind_named(addr, "the admin listener", "admin.bind")?;
            l.admin.push(local);
            let fut = admin::serve(listener, Arc::clone(admin_ctx), shutdown_rx.clone());
            l.spawn_tcp("the admin listener", local, fut);
        }
        let udp_config = tracker_udp::UdpConfig {
            bind: usable_binds(&config.udp.bind, "udp.bind"),
            ..config.udp.clone()
        };
        if !udp_config.bind.is_empty() {
            let server = UdpServer::start(
                Arc::clone(tracker),
                &udp_config,
                connection_id_key,
                Arc::clone(&l.udp_stop.0),
            )
            .context("starting the UDP tracker ([udp])")?;
            l.udp = server.local_addrs();
            l.connection_id_key = server.connection_id_key();
            l.tasks.spawn(async move {
                match tokio::task::spawn_blocking(move || server.join()).await {
                    Ok(r) => r.context("the UDP tracker failed"),
                    Err(e) => Err(anyhow!(e).context("the UDP join task failed")),
                }
            });
        }
        Ok(l)
    }

    /// Runs one TCP listener's serve loop as a task; its error names `what` and `local`.
    fn spawn_tcp(
        &mut self,
        what: &'static str,
        local: SocketAddr,
        serve: impl std::future::Future<Output = std::io::Result<()>> + Send + 'static,
    ) {
        self.tasks.spawn(async move {
            serve
                .await
                .with_context(|| format!("{what} on {local} failed"))
        });
    }

    /// Resolves when a listener ends before [`Listeners::stop`]: always a failure. Never
    /// resolves when there are no listeners.
    pub(crate) async fn failed(&mut self) -> anyhow::Error {
        match self.tasks.join_next().await {
            Some(Ok(Ok(()))) => anyhow!("a listener stopped unexpectedly"),
            Some(Ok(Err(e))) => e,
            Some(Err(e)) => anyhow!(e).context("a listener task panicked"),
            None => std::future::pending().await,
        }
    }

    /// Asks every listener to stop (HTTP connections get their grace period) and waits at most
    /// `timeout` for all of them; false if some did not stop in time.
    pub(crate) async fn stop(mut self, timeout: Duration) -> bool {
        let _ = self.shutdown.send(true);
        self.udp_stop.0.store(true, Ordering::Release);
        let all = async {
            while let Some(done) = self.tasks.join_next().await {
                match done {
                    Ok(Err(e)) => {
                        tracing::error!(error = %format!("{e:#}"), "a listener failed while stopping")
                    }
                    Err(e) => tracing::error!(error = %e, "a listener task failed while stopping"),
                    Ok(Ok(())) => {}
                }
            }
        };
        tokio::time::timeout(timeout, all).await.is_ok()
    }
}

pub(crate) fn addr_list(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The bind addresses to use: a wildcard IPv6 address (`[::]`) is left out, with a warning,
/// when this machine has no IPv6 (the kernel refuses IPv6 sockets); everything else is kept
/// and a failure to bind it stops the start.
pub(crate) fn usable_binds(binds: &[SocketAddr], option: &str) -> Vec<SocketAddr> {
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

/// Binds `addr` for `what` and reads back the bound address; errors name `option`.
fn bind_named(
    addr: SocketAddr,
    what: &str,
    option: &str,
) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener =
        bind_tcp(addr).with_context(|| format!("binding {what} on {addr} ({option})"))?;
    let local = listener
        .local_addr()
        .with_context(|| format!("reading the address of {what}"))?;
    Ok((listener, local))
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
