//! [`UdpSockets`] binds the sockets; [`UdpServer`] runs the worker threads on them.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tracker_core::Tracker;

use crate::UdpError;
use crate::config::UdpConfig;
use crate::worker::{self, WorkerSettings};

/// The sockets of a UDP tracker, bound but not yet served: one per worker per `bind` address,
/// all of an address's on one port (`SO_REUSEPORT`). Binding is its own step so that a caller
/// learns every bound address, or the one that failed, before anything runs.
#[derive(Debug)]
pub struct UdpSockets {
    addrs: Vec<SocketAddr>,
    per_worker: Vec<Vec<UdpSocket>>,
}

impl UdpSockets {
    /// Validates `config` and binds `effective_workers()` sockets for each `bind` address.
    /// Port 0 works: the first socket of each address binds it and the other workers bind the
    /// port it got.
    pub fn bind(config: &UdpConfig) -> Result<UdpSockets, UdpError> {
        config.validate()?;
        let workers = config.effective_workers();
        let mut per_worker: Vec<Vec<UdpSocket>> = (0..workers).map(|_| Vec::new()).collect();
        let mut addrs = Vec::with_capacity(config.bind.len());
        for &want in &config.bind {
            let mut addr = want;
            for (i, socks) in per_worker.iter_mut().enumerate() {
                let s =
                    bind(addr, config).map_err(|source| UdpError::Bind { addr: want, source })?;
                if i == 0 {
                    addr = s
                        .local_addr()
                        .map_err(|source| UdpError::Bind { addr: want, source })?;
                    addrs.push(addr);
                }
                socks.push(s);
            }
        }
        Ok(UdpSockets { addrs, per_worker })
    }

    /// The addresses bound, one per `bind` entry, in order (with real ports).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }
}

/// Tells a [`UdpServer`]'s workers to stop; cheap to clone and to keep after the server moved
/// into whatever joins it. Workers notice within `read_timeout_ms`.
#[derive(Debug, Clone)]
pub struct UdpStopper(Arc<AtomicBool>);

impl UdpStopper {
    /// Asks every worker to stop.
    pub fn stop(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// A running UDP tracker: `workers` threads, each with one socket per bind address. Its
/// lifecycle is the HTTP tracker's: bound sockets in ([`UdpSockets::bind`], then
/// [`UdpServer::start`]), [`UdpServer::local_addrs`], [`UdpServer::stop`], [`UdpServer::join`].
#[derive(Debug)]
pub struct UdpServer {
    addrs: Vec<SocketAddr>,
    key: [u8; 16],
    shutdown: Arc<AtomicBool>,
    threads: Vec<JoinHandle<std::io::Result<()>>>,
}

impl UdpServer {
    /// Starts one worker thread per socket set of `sockets` (bound from this `config`).
    ///
    /// Connection ids are signed with `key` (random at a first start, else the one the
    /// snapshot kept), unless the config names a `connection_id_key`, which wins;
    /// [`UdpServer::connection_id_key`] says which one is in use, for the next snapshot.
    pub fn start(
        tracker: Arc<Tracker>,
        config: &UdpConfig,
        key: [u8; 16],
        sockets: UdpSockets,
    ) -> Result<UdpServer, UdpError> {
        let key = config.validate()?.unwrap_or(key);
        let shutdown = Arc::new(AtomicBool::new(false));
        let settings = WorkerSettings::from_config(config, key);
        let UdpSockets { addrs, per_worker } = sockets;
        let mut threads = Vec::with_capacity(per_worker.len());
        if !addrs.is_empty() {
            for (i, socks) in per_worker.into_iter().enumerate() {
                let tracker = Arc::clone(&tracker);
                let flag = Arc::clone(&shutdown);
                let settings = settings.clone();
                let handle = std::thread::Builder::new()
                    .name(format!("udp-worker-{i}"))
                    .spawn(move || {
                        let mut guard = StopOthersUnlessClean {
                            shutdown: &flag,
                            clean: false,
                        };
                        let r = worker::run(&tracker, &socks, &settings, guard.shutdown);
                        guard.clean = r.is_ok();
                        r
                    })
                    .map_err(|source| {
                        // Do not leave the workers already started running on their own.
                        shutdown.store(true, Ordering::Relaxed);
                        UdpError::Spawn { worker: i, source }
                    })?;
                threads.push(handle);
            }
        }
        tracing::info!(addrs = ?addrs, workers = threads.len(), "UDP tracker listening");
        Ok(UdpServer {
            addrs,
            key,
            shutdown,
            threads,
        })
    }

    /// Asks every worker to stop; [`UdpServer::join`] then returns within `read_timeout_ms`.
    pub fn stop(&self) {
        self.stopper().stop();
    }

    /// A handle that stops this server, for whoever keeps it after the server moved into a
    /// joining thread or task.
    pub fn stopper(&self) -> UdpStopper {
        UdpStopper(Arc::clone(&self.shutdown))
    }

    /// The key connection ids are signed with (what a snapshot should keep).
    pub fn connection_id_key(&self) -> [u8; 16] {
        self.key
    }

    /// The addresses actually bound, one per `bind` entry, in order (with real ports).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.addrs.clone()
    }

    /// Waits for every worker. Returns the first failure (a socket error or a panic). A worker
    /// that fails sets the shutdown flag, so the others stop within `read_timeout_ms` and this
    /// returns soon after any failure, not only after a requested shutdown.
    pub fn join(self) -> Result<(), UdpError> {
        let mut first = None;
        for (worker, t) in self.threads.into_iter().enumerate() {
            let err = match t.join() {
                Ok(Ok(())) => None,
                Ok(Err(source)) => Some(UdpError::Worker { worker, source }),
                Err(_) => Some(UdpError::Panicked { worker }),
            };
            if let Some(e) = err {
                tracing::error!(error = %e, "UDP worker stopped");
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// Sets the shutdown flag when a worker ends with an error or a panic, so that the other
/// workers stop too and [`UdpServer::join`] returns the failure promptly: the daemon then exits
/// non-zero instead of serving on with fewer workers.
struct StopOthersUnlessClean<'a> {
    shutdown: &'a AtomicBool,
    clean: bool,
}

impl Drop for StopOthersUnlessClean<'_> {
    fn drop(&mut self) {
        if !self.clean {
            self.shutdown.store(true, Ordering::Relaxed);
        }
    }
}

/// One worker's socket for `addr`: SO_REUSEPORT (so every worker binds the same port),
/// IPV6_V6ONLY for IPv6 addresses, large kernel buffers, a read timeout.
fn bind(addr: SocketAddr, config: &UdpConfig) -> std::io::Result<UdpSocket> {
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    #[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos"))))]
    s.set_reuse_port(true)?;
    // The kernel caps these at rmem_max / wmem_max; a smaller buffer than asked is not an error.
    s.set_recv_buffer_size(config.recv_buffer_bytes)?;
    s.set_send_buffer_size(config.send_buffer_bytes)?;
    s.set_read_timeout(Some(Duration::from_millis(config.read_timeout_ms)))?;
    s.bind(&addr.into())?;
    let s: UdpSocket = s.into();
    crate::sys::prepare_socket(&s)?;
    Ok(s)
}
