//! The accept loops: hyper 1.x HTTP/1.1 with keep-alive on an already-bound tokio listener,
//! after hyper's `graceful_shutdown` example; plain TCP ([`serve_handler`]) or TLS
//! ([`serve_tls`]), one generic loop monomorphised per [`Transport`], so the plain path has no
//! box and no extra await. One loop per runtime worker shares the listener; on plain TCP a loop
//! first tries to answer a connection itself (`crate::direct`: one-request `Connection: close`
//! connections, the listener set to `TCP_DEFER_ACCEPT`) and hands the rest to hyper.
//!
//! Each connection is wrapped in [`GuardedIo`] (`crate::guard`), which enforces the request
//! head limit, the header read timeout (from the accept), the idle timeout and eviction, below
//! hyper. A TLS handshake runs in the connection's own task (never in the accept loop), ends
//! at the same deadline as the first request head (`header_read_timeout_ms` after the accept),
//! and a connection still in its handshake may be evicted like one waiting for a request.
//!
//! Connection slots (`crate::slots`): at most `max_connections` at once, and at most
//! `max_connections_per_ip` from one client address (IPv4 /32, IPv6 the limiter's prefix;
//! trusted proxies exempt): one more from that address is accepted and closed at once. When all
//! `max_connections` are taken, the client just accepted makes the oldest connection that is
//! waiting for a request (or still in its TLS handshake) close. Together with the header
//! timeout from the accept, an attacker holds few slots, each for `header_read_timeout_ms` at
//! most, and never locks a client out. Each listener has its own slots.

use std::cell::RefCell;
use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use socket2::{SockRef, Socket};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;
use tracker_core::{Counters, Tracker};

use crate::config::HttpConfig;
use crate::direct::{self, Buffers, Outcome, Prefixed};
use crate::guard::{self, GuardedIo, Limits};
use crate::handler::{Handler, Scratch};
use crate::slots::{ConnCtl, Conns, PerIp};
use crate::tls::TlsCerts;

/// Serves the HTTP tracker on an already-bound listener until `shutdown` resolves, then stops
/// accepting, asks open connections to close after their current request, and waits for them
/// at most `shutdown_timeout_ms` (connections still open after that are dropped with the
/// runtime). Returns an `InvalidInput` error at once if the config does not validate.
///
/// Accept errors (out of file descriptors, aborted handshakes) are logged and retried after a
/// short pause; they never end the loop.
pub async fn serve(
    listener: TcpListener,
    tracker: Arc<Tracker>,
    config: Arc<HttpConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    // `serve_handler` validates the config.
    serve_handler(listener, Arc::new(Handler::new(tracker, config)), shutdown).await
}

/// [`serve`] with a handler built by the caller: one shared by several listeners (one counter
/// block), or one that knows the full-scrape token.
pub async fn serve_handler(
    listener: TcpListener,
    handler: Arc<Handler>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    serve_on(listener, handler, Plain, shutdown).await
}

/// [`serve_handler`] over TLS: every connection is accepted with `certs` (whatever certificate
/// is current at its handshake), then served exactly as plain HTTP is, with the same limits,
/// handler and counters.
pub async fn serve_tls(
    listener: TcpListener,
    handler: Arc<Handler>,
    certs: Arc<TlsCerts>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    serve_on(listener, handler, Tls(certs), shutdown).await
}

/// How an accepted TCP connection becomes the stream HTTP is read from.
pub(crate) trait Transport: Send + Sync + 'static {
    /// The stream hyper reads and writes (through [`GuardedIo`]).
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// For log lines: "HTTP" or "HTTPS".
    const NAME: &'static str;
    /// Whether the accept loop first tries to answer the connection itself (`crate::direct`).
    const DIRECT: bool;
    /// Opens the stream; `prefix` is what the direct path read already (to be read first),
    /// `deadline` is when the first request head must be complete, `ctl` the connection's
    /// slot (which may be asked to make room meanwhile).
    fn open(
        &self,
        tcp: TcpStream,
        prefix: Vec<u8>,
        deadline: Instant,
        ctl: &Arc<ConnCtl>,
        counters: &Arc<Counters>,
    ) -> impl Future<Output = io::Result<Self::Io>> + Send + 'static;
}

/// Plain TCP: the stream as accepted, after what the direct path read of it.
#[derive(Debug)]
pub(crate) struct Plain;

impl Transport for Plain {
    type Io = Prefixed<TcpStream>;
    const NAME: &'static str = "HTTP";
    const DIRECT: bool = true;

    fn open(
        &self,
        tcp: TcpStream,
        prefix: Vec<u8>,
        _: Instant,
        _: &Arc<ConnCtl>,
        _: &Arc<Counters>,
    ) -> impl Future<Output = io::Result<Self::Io>> + Send + 'static {
        ready(Ok(Prefixed::new(prefix, tcp)))
    }
}

/// TLS with the current certificate of a [`TlsCerts`].
#[derive(Debug)]
pub(crate) struct Tls(pub(crate) Arc<TlsCerts>);

impl Transport for Tls {
    type Io = TlsStream<TcpStream>;
    const NAME: &'static str = "HTTPS";
    /// TLS is never read before the handshake, so there is never a prefix.
    const DIRECT: bool = false;

    /// The handshake, ended at `deadline` (counted as a head timeout) or when the slot is
    /// asked to make room; a failed handshake is counted in `tls_handshake_failures`.
    fn open(
        &self,
        tcp: TcpStream,
        _: Vec<u8>,
        deadline: Instant,
        ctl: &Arc<ConnCtl>,
        counters: &Arc<Counters>,
    ) -> impl Future<Output = io::Result<Self::Io>> + Send + 'static {
        // Fallible: a failed handshake hands the socket back, so that it is counted before it
        // closes (whoever sees the close and then reads /metrics sees the count).
        let accept = self.0.acceptor().accept(tcp).into_fallible();
        let ctl = Arc::clone(ctl);
        let counters = Arc::clone(counters);
        async move {
            // Held here, outside the select, so that a timed-out handshake's socket closes only
            // when this block ends, after the count.
            let mut accept = std::pin::pin!(accept);
            // Until the handshake is done the connection waits, as for a request: evictable.
            let evicted = std::future::poll_fn(|cx| {
                ctl.park(cx.waker());
                if ctl.evicted() {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            });
            tokio::select! {
                r = tokio::time::timeout_at(deadline, accept.as_mut()) => match r {
                    Ok(Ok(stream)) => Ok(stream),
                    Ok(Err((e, tcp))) => {
                        Counters::inc(&counters.tls_handshake_failures);
                        drop(tcp);
                        Err(e)
                    }
                    Err(_) => {
                        Counters::inc(&counters.connections_timed_out);
                        Err(io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timeout"))
                    }
                },
                () = evicted => Err(guard::evicted()),
            }
        }
    }
}

/// What every accept loop of one listener shares.
struct Shared<T> {
    handler: Arc<Handler>,
    transport: T,
    per_ip: Arc<PerIp>,
    limits: Limits,
    builder: Arc<http1::Builder>,
    permits: Arc<Semaphore>,
    graceful: Arc<GracefulShutdown>,
    conns: Conns,
    local: Option<SocketAddr>,
}

/// Runs one accept loop per runtime worker on the listener (see the module docs), until
/// `shutdown`; then waits for open connections as `serve` says.
async fn serve_on<T: Transport>(
    listener: TcpListener,
    handler: Arc<Handler>,
    transport: T,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let config = Arc::clone(handler.config_arc());
    config
        .validate()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let local = listener.local_addr().ok();
    // Accepted through `AsyncFd` with `accept4` so that a connection the direct path answers is
    // never registered with the reactor (tokio's `accept` registers every socket).
    if T::DIRECT {
        defer_accept(&listener, config.header_read_timeout());
    }
    let listener = Arc::new(register(listener.into_std()?)?);
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(true)
        .max_buf_size(config.hyper_buf_size());
    let graceful = Arc::new(GracefulShutdown::new());
    let shared = Arc::new(Shared {
        per_ip: Arc::new(PerIp::new(config.max_connections_per_ip)),
        limits: Limits {
            max_head: config.max_head_bytes,
            header_timeout: config.header_read_timeout(),
            idle_timeout: config.idle_timeout(),
        },
        builder: Arc::new(builder),
        // Each connection holds a file descriptor, a task and up to `max_head_bytes` of
        // buffered input. The semaphore bounds them so a flood of connections cannot exhaust
        // memory or fds. A client accepted while every permit is taken holds one more fd until
        // the evicted connection gives its permit back (see `slots`); no further accept
        // happens in that loop meanwhile.
        permits: Arc::new(Semaphore::new(
            config.max_connections.min(Semaphore::MAX_PERMITS),
        )),
        graceful: Arc::clone(&graceful),
        conns: Conns::new(config.max_connections),
        local,
        handler,
        transport,
    });
    let name = T::NAME;
    tracing::info!(addr = ?local, "{name} tracker listening");
    // One loop per worker thread, so that connections the direct path answers in the loop
    // itself are spread over the cores like spawned tasks are.
    let loops = tokio::runtime::Handle::current()
        .metrics()
        .num_workers()
        .max(1);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..loops {
        tasks.spawn(accept_loop(
            Arc::clone(&shared),
            Arc::clone(&listener),
            stopped.clone(),
        ));
    }
    shutdown.await;
    let _ = stop.send(true);
    while tasks.join_next().await.is_some() {}
    drop(listener);
    let grace = config.shutdown_timeout();
    drop(shared);
    let shutdown = async move {
        match Arc::try_unwrap(graceful) {
            Ok(g) => g.shutdown().await,
            // Every loop has ended, so nothing else holds it; wait out the grace if it did.
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = shutdown => tracing::info!(addr = ?local, "{name} tracker stopped"),
        () = tokio::time::sleep(grace) => {
            tracing::warn!(addr = ?local, "{name} connections still open after the shutdown timeout; dropping them");
        }
    }
    Ok(())
}

/// The listener, registered with the reactor for readiness only.
#[allow(unsafe_code)]
fn register(listener: std::net::TcpListener) -> io::Result<AsyncFd<std::net::TcpListener>> {
    // SAFETY: `AsyncFd::register_with_interest` needs the fd to stay open and the same for the
    // `AsyncFd`'s life: the `std::net::TcpListener` owns it, closes it only when dropped (with
    // the `AsyncFd`), and its `as_raw_fd` always returns it.
    unsafe { AsyncFd::register_with_interest(listener, tokio::io::Interest::READABLE) }
        .map_err(io::Error::from)
}

/// [`direct::serve_first`], with a panic (a bug) contained to the one connection as it is on the
/// hyper path (a panic there ends the connection's task), instead of ending the accept loop.
fn serve_first(sock: &Socket, handler: &Handler, peer: SocketAddr, bufs: &mut Buffers) -> Outcome {
    let run = std::panic::AssertUnwindSafe(|| direct::serve_first(sock, handler, peer, bufs));
    match std::panic::catch_unwind(run) {
        Ok(outcome) => outcome,
        Err(_) => {
            tracing::error!(%peer, "HTTP request handling panicked; connection closed");
            *bufs = Buffers::default();
            Outcome::Gone
        }
    }
}

/// Asks the kernel to hand over a connection only once its first bytes have arrived (or after
/// `wait`, rounded up to whole seconds), so that the direct path's first read finds the request
/// instead of nothing (without it, a connection is accepted at the handshake's last ACK and the
/// request follows a moment later). A client that connects and sends nothing waits in the
/// kernel, not in a connection slot. Best effort: a failure is logged and changes nothing else.
#[allow(unsafe_code)]
fn defer_accept(listener: &TcpListener, wait: Duration) {
    use std::os::fd::AsRawFd as _;
    let secs = libc::c_int::try_from(wait.as_millis().div_ceil(1000).max(1)).unwrap_or(60);
    // SAFETY: `setsockopt` on the listener's open fd with a pointer to a live `c_int` and its
    // size, as `TCP_DEFER_ACCEPT` expects.
    let r = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            std::ptr::from_ref(&secs).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        tracing::warn!(error = %io::Error::last_os_error(), "TCP_DEFER_ACCEPT not set");
    }
}

/// Accepts one connection: `accept4` with the new socket non-blocking, the peer's address.
async fn accept(listener: &AsyncFd<std::net::TcpListener>) -> io::Result<(Socket, SocketAddr)> {
    loop {
        let mut ready = listener.readable().await?;
        let r = ready.try_io(|l| {
            SockRef::from(l.get_ref()).accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
        });
        match r {
            Ok(Ok((sock, addr))) => match addr.as_socket() {
                Some(peer) => return Ok((sock, peer)),
                None => continue,
            },
            Ok(Err(e)) => return Err(e),
            // Not ready after all (another loop took it): wait again.
            Err(_) => continue,
        }
    }
}

/// One accept loop (see the module docs).
async fn accept_loop<T: Transport>(
    sh: Arc<Shared<T>>,
    listener: Arc<AsyncFd<std::net::TcpListener>>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let (local, name) = (sh.local, T::NAME);
    let mut bufs = Buffers::default();
    loop {
        let (sock, peer) = tokio::select! {
            biased;
            _ = stopped.changed() => break,
            r = accept(&listener) => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(addr = ?local, error = %e, "accept failed; retrying shortly");
                    tokio::select! {
                        _ = stopped.changed() => break,
                        () = tokio::time::sleep(Duration::from_millis(50)) => continue,
                    }
                }
            },
        };
        let accepted = Instant::now();
        let ip = tracker_core::canonical_ip(peer.ip());
        let ip_slot = if sh.handler.config().is_trusted_proxy(ip) {
            None
        } else {
            match sh
                .per_ip
                .enter(sh.handler.tracker().limiter().source_key(ip))
            {
                Some(slot) => Some(slot),
                None => {
                    // Closed at once: this address already holds its share of the slots.
                    Counters::inc(&sh.handler.counters().connections_refused);
                    drop(sock);
                    continue;
                }
            }
        };
        let permit = match Arc::clone(&sh.permits).try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                // Every slot is taken: the oldest connection waiting for a request makes room
                // (if none is waiting, this client waits for the first to finish).
                if sh.conns.evict_oldest_waiting() {
                    Counters::inc(&sh.handler.counters().connections_evicted);
                }
                tokio::select! {
                    biased;
                    _ = stopped.changed() => break,
                    p = Arc::clone(&sh.permits).acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                }
            }
        };
        // The accept and the direct path never wait, so nothing else would make this loop give
        // its thread back while connections keep coming: one unit of tokio's cooperative
        // budget per connection (a yield every 128).
        tokio::task::coop::consume_budget().await;
        let prefix = match T::DIRECT {
            true => match serve_first(&sock, &sh.handler, peer, &mut bufs) {
                Outcome::Done | Outcome::Gone => continue,
                Outcome::Tail(rest) => {
                    let idle = sh.limits.idle_timeout;
                    if let Ok(mut tcp) = TcpStream::from_std(sock.into()) {
                        tokio::spawn(async move {
                            // Cut, like any reply write, when the client stops reading.
                            let _ = tokio::time::timeout(idle, rest.write_to(&mut tcp)).await;
                            drop((tcp, ip_slot, permit));
                        });
                    }
                    continue;
                }
                Outcome::Handoff(prefix) => prefix,
            },
            false => Vec::new(),
        };
        let stream = match TcpStream::from_std(sock.into()) {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "{name} connection not registered");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let ctl = sh.conns.register();
        let counters = Arc::clone(sh.handler.counters());
        let limits = sh.limits;
        let open = sh.transport.open(
            stream,
            prefix,
            accepted + limits.header_timeout,
            &ctl,
            &counters,
        );
        let svc = Svc::new(Arc::clone(&sh.handler), peer);
        let builder = Arc::clone(&sh.builder);
        let watcher = sh.graceful.watcher();
        tokio::spawn(async move {
            match open.await {
                Ok(io) => {
                    let io = GuardedIo::new(io, accepted, limits, counters, ctl);
                    let conn = builder.serve_connection(TokioIo::new(io), svc);
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, error = %e, "{name} connection ended with an error");
                    }
                }
                Err(e) => tracing::debug!(%peer, error = %e, "{name} connection not opened"),
            }
            drop(ip_slot);
            drop(permit);
        });
    }
}

/// The hyper service of one connection: the shared handler plus this connection's buffers.
pub(crate) struct Svc {
    handler: Arc<Handler>,
    peer: SocketAddr,
    // hyper calls `call` with `&self`, one request at a time per HTTP/1 connection.
    scratch: RefCell<Scratch>,
}

impl Svc {
    pub(crate) fn new(handler: Arc<Handler>, peer: SocketAddr) -> Self {
        Self {
            handler,
            peer,
            scratch: RefCell::new(Scratch::default()),
        }
    }
}

impl hyper::service::Service<Request<Incoming>> for Svc {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let uri = req.uri();
        let mut fresh;
        let mut borrowed;
        let scratch = match self.scratch.try_borrow_mut() {
            Ok(b) => {
                borrowed = b;
                &mut *borrowed
            }
            // Cannot happen with HTTP/1 (one call at a time); stay correct anyway.
            Err(_) => {
                fresh = Scratch::default();
                &mut fresh
            }
        };
        let reply = self.handler.handle(
            req.method(),
            uri.path(),
            uri.query(),
            req.headers(),
            self.peer,
            scratch,
        );
        let headers = reply.headers();
        let mut resp = Response::new(Full::new(reply.body));
        *resp.status_mut() = reply.status;
        for (name, value) in headers {
            resp.headers_mut().insert(name, value);
        }
        ready(Ok(resp))
    }
}
