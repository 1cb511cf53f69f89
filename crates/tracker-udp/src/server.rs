//! [`UdpServer`]: binds the sockets and runs the worker threads.

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

/// A running UDP tracker: `workers` threads, each with one socket per bind address.
#[derive(Debug)]
pub struct UdpServer {
    addrs: Vec<SocketAddr>,
    key: [u8; 16],
    threads: Vec<JoinHandle<std::io::Result<()>>>,
}

impl UdpServer {
    /// Validates `config`, binds every socket, and starts the workers.
    ///
    /// Connection ids are signed with `key` (random at a first start, else the one the
    /// snapshot kept), unless the config names a `connection_id_key`, which wins;
    /// [`UdpServer::connection_id_key`] says which one is in use, for the next snapshot. Port 0
    /// works: the first socket of each address binds it and the other workers bind the port it
    /// got, with `SO_REUSEPORT`. Workers stop within `read_timeout_ms` of `shutdown` becoming
    /// true.
    pub fn start(
        tracker: Arc<Tracker>,
        config: &UdpConfig,
        key: [u8; 16],
        shutdown: Arc<AtomicBool>,
    ) -> Result<UdpServer, UdpError> {
        let key = config.validate()?.unwrap_or(key);
        let workers = config.effective_workers();
        let mut sockets: Vec<Vec<UdpSocket>> = (0..workers).map(|_| Vec::new()).collect();
        let mut addrs = Vec::with_capacity(config.bind.len());
        for &want in &config.bind {
            let mut addr = want;
            for (i, per_worker) in sockets.iter_mut().enumerate() {
                let s =
                    bind(addr, config).map_err(|source| UdpError::Bind { addr: want, source })?;
                if i == 0 {
                    addr = s
                        .local_addr()
                        .map_err(|source| UdpError::Bind { addr: want, source })?;
                    addrs.push(addr);
                }
                per_worker.push(s);
            }
        }
        let settings = WorkerSettings::from_config(config, key);
        let mut threads = Vec::with_capacity(workers);
        if !config.bind.is_empty() {
            for (i, socks) in sockets.into_iter().enumerate() {
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
            threads,
        })
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
