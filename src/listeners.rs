//! Every listener the daemon runs, with one lifecycle: sockets are bound (and a bind failure
//! stops the start, naming the option) in [`Listeners::start`], their addresses are read back,
//! then the daemon waits on [`Listeners::failed`] (a listener that ends on its own is a
//! failure) and ends them all with [`Listeners::stop`].
//!
//! The HTTP and UDP trackers have one shape: sockets bound here, then `start`, `local_addrs`,
//! `stop`, `join` ([`HttpServer`], [`UdpServer`]). Each one's `join` (the UDP one, a thread
//! join, from a blocking task) and each admin listener sit in one `JoinSet`, so nothing needs a
//! placeholder when it is not configured.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use socket2::{Domain, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracker_core::Tracker;
use tracker_http::{HttpServer, HttpStopper, TlsCerts, TlsListeners};
use tracker_udp::{UdpServer, UdpSockets, UdpStopper};

use crate::admin::{self, AdminContext};
use crate::config::Config;

/// Listen backlog of TCP listeners.
const BACKLOG: i32 = 1024;

/// The running listeners and what they are bound to.
#[derive(Debug)]
pub(crate) struct Listeners {
    /// Bound HTTP tracker addresses.
    pub(crate) http: Vec<SocketAddr>,
    /// Bound HTTPS tracker addresses.
    pub(crate) https: Vec<SocketAddr>,
    /// The HTTPS certificate (when `[https]` listens), for SIGHUP to reload.
    pub(crate) tls: Option<Arc<TlsCerts>>,
    /// Bound admin addresses.
    pub(crate) admin: Vec<SocketAddr>,
    /// Bound UDP tracker addresses.
    pub(crate) udp: Vec<SocketAddr>,
    /// The key UDP connection ids are signed with (`udp.connection_id_key` if configured, else
    /// the one given to [`Listeners::start`]): what snapshots keep.
    pub(crate) connection_id_key: [u8; 16],
    tasks: JoinSet<anyhow::Result<()>>,
    /// Stops the admin listeners.
    shutdown: watch::Sender<bool>,
    http_stop: Option<HttpStopper>,
    udp_stop: UdpStopOnDrop,
}

/// Stops the UDP workers when dropped: none outlives the daemon, whichever way it leaves (a
/// thread, unlike a task, is not ended with the runtime).
#[derive(Debug, Default)]
struct UdpStopOnDrop(Option<UdpStopper>);

impl Drop for UdpStopOnDrop {
    fn drop(&mut self) {
        if let Some(s) = &self.0 {
            s.stop();
        }
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
            https: Vec::new(),
            tls: None,
            admin: Vec::new(),
            udp: Vec::new(),
            connection_id_key,
            tasks: JoinSet::new(),
            shutdown,
            http_stop: None,
            udp_stop: UdpStopOnDrop::default(),
        };
        let mut tls = None;
        let https_binds = usable_binds(&config.https.bind, "https.bind");
        if !https_binds.is_empty() {
            let h = &config.https;
            let certs = TlsCerts::load(&h.cert_file, &h.key_file)
                .context("loading the HTTPS certificate (https.cert_file, https.key_file)")?;
            let mut listeners = Vec::new();
            for addr in https_binds {
                let (listener, _) = bind_named(addr, "the HTTPS tracker", "https.bind")?;
                listeners.push(listener);
            }
            l.tls = Some(Arc::clone(&certs));
            tls = Some(TlsListeners { listeners, certs });
        }
        let mut http_listeners = Vec::new();
        for addr in usable_binds(&config.http.bind, "http.bind") {
            let (listener, _) = bind_named(addr, "the HTTP tracker", "http.bind")?;
            http_listeners.push(listener);
        }
        if !http_listeners.is_empty() || tls.is_some() {
            let http = HttpServer::start_with_tls(
                http_listeners,
                tls,
                Arc::clone(tracker),
                Arc::new(config.http.clone()),
                &config.admin.token,
            )
            .context("starting the HTTP tracker ([http], [https])")?;
            l.http = http.local_addrs();
            l.https = http.tls_addrs();
            l.http_stop = Some(http.stopper());
            let addrs = addr_list(&[l.http.as_slice(), l.https.as_slice()].concat());
            l.tasks.spawn(async move {
                http.join()
                    .await
                    .with_context(|| format!("the HTTP tracker on {addrs} failed"))
            });
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
            let sockets =
                UdpSockets::bind(&udp_config).context("binding the UDP tracker ([udp])")?;
            let server =
                UdpServer::start(Arc::clone(tracker), &udp_config, connection_id_key, sockets)
                    .context("starting the UDP tracker ([udp])")?;
            l.udp = server.local_addrs();
            l.connection_id_key = server.connection_id_key();
            l.udp_stop.0 = Some(server.stopper());
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
        if let Some(s) = &self.http_stop {
            s.stop();
        }
        if let Some(s) = &self.udp_stop.0 {
            s.stop();
        }
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
