//! The accept loop: hyper 1.x HTTP/1.1 with keep-alive on an already-bound tokio listener,
//! after hyper's `graceful_shutdown` example; plain TCP ([`serve_handler`]) or TLS
//! ([`serve_tls`]), one generic loop monomorphised per [`Transport`], so the plain path has no
//! box and no extra await.
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
use hyper::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderValue, VARY};
use hyper::server::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;
use tracker_core::{Counters, Tracker};

use crate::config::HttpConfig;
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
    /// Opens the stream; `deadline` is when the first request head must be complete, `ctl`
    /// the connection's slot (which may be asked to make room meanwhile).
    fn open(
        &self,
        tcp: TcpStream,
        deadline: Instant,
        ctl: &Arc<ConnCtl>,
        counters: &Arc<Counters>,
    ) -> impl Future<Output = io::Result<Self::Io>> + Send + 'static;
}

/// Plain TCP: the stream as accepted.
#[derive(Debug)]
pub(crate) struct Plain;

impl Transport for Plain {
    type Io = TcpStream;
    const NAME: &'static str = "HTTP";

    fn open(
        &self,
        tcp: TcpStream,
        _: Instant,
        _: &Arc<ConnCtl>,
        _: &Arc<Counters>,
    ) -> impl Future<Output = io::Result<TcpStream>> + Send + 'static {
        ready(Ok(tcp))
    }
}

/// TLS with the current certificate of a [`TlsCerts`].
#[derive(Debug)]
pub(crate) struct Tls(pub(crate) Arc<TlsCerts>);

impl Transport for Tls {
    type Io = TlsStream<TcpStream>;
    const NAME: &'static str = "HTTPS";

    /// The handshake, ended at `deadline` (counted as a head timeout) or when the slot is
    /// asked to make room; a failed handshake is counted in `tls_handshake_failures`.
    fn open(
        &self,
        tcp: TcpStream,
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

/// The accept loop of one listener (see the module docs).
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
    let tracker = Arc::clone(handler.tracker());
    let per_ip = Arc::new(PerIp::new(config.max_connections_per_ip));
    let limits = Limits {
        max_head: config.max_head_bytes,
        header_timeout: config.header_read_timeout(),
        idle_timeout: config.idle_timeout(),
    };
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(true)
        .max_buf_size(config.hyper_buf_size());
    let builder = Arc::new(builder);
    // Each connection holds a file descriptor, a task and up to `max_head_bytes` of buffered
    // input. The semaphore bounds them so a flood of connections cannot exhaust memory or fds.
    // A client accepted while every permit is taken holds one more fd until the evicted
    // connection gives its permit back (see `slots`); no further accept happens meanwhile.
    let permits = Arc::new(Semaphore::new(
        config.max_connections.min(Semaphore::MAX_PERMITS),
    ));
    let graceful = GracefulShutdown::new();
    let local = listener.local_addr().ok();
    let name = T::NAME;
    tracing::info!(addr = ?local, "{name} tracker listening");
    let conns = Conns::new(config.max_connections);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(addr = ?local, error = %e, "accept failed; retrying shortly");
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(Duration::from_millis(50)) => continue,
                    }
                }
            },
        };
        let accepted = Instant::now();
        let ip = tracker_core::canonical_ip(peer.ip());
        let ip_slot = if config.is_trusted_proxy(ip) {
            None
        } else {
            match per_ip.enter(tracker.limiter().source_key(ip)) {
                Some(slot) => Some(slot),
                None => {
                    // Closed at once: this address already holds its share of the slots.
                    Counters::inc(&handler.counters().connections_refused);
                    drop(stream);
                    continue;
                }
            }
        };
        let permit = match Arc::clone(&permits).try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                // Every slot is taken: the oldest connection waiting for a request makes room
                // (if none is waiting, this client waits for the first to finish).
                if conns.evict_oldest_waiting() {
                    Counters::inc(&handler.counters().connections_evicted);
                }
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    p = Arc::clone(&permits).acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let ctl = conns.register();
        let counters = Arc::clone(handler.counters());
        let open = transport.open(stream, accepted + limits.header_timeout, &ctl, &counters);
        let svc = Svc {
            handler: Arc::clone(&handler),
            peer,
            scratch: RefCell::new(Scratch::default()),
        };
        let builder = Arc::clone(&builder);
        let watcher = graceful.watcher();
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
    drop(listener);
    let grace = config.shutdown_timeout();
    tokio::select! {
        () = graceful.shutdown() => tracing::info!(addr = ?local, "{name} tracker stopped"),
        () = tokio::time::sleep(grace) => {
            tracing::warn!(addr = ?local, "{name} connections still open after the shutdown timeout; dropping them");
        }
    }
    Ok(())
}

/// The hyper service of one connection: the shared handler plus this connection's buffers.
struct Svc {
    handler: Arc<Handler>,
    peer: SocketAddr,
    // hyper calls `call` with `&self`, one request at a time per HTTP/1 connection.
    scratch: RefCell<Scratch>,
}

static TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain");

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
        let mut resp = Response::new(Full::new(reply.body));
        *resp.status_mut() = reply.status;
        resp.headers_mut().insert(CONTENT_TYPE, TEXT_PLAIN.clone());
        if reply.vary_encoding {
            resp.headers_mut()
                .insert(VARY, HeaderValue::from_static("accept-encoding"));
        }
        if reply.gzip {
            resp.headers_mut()
                .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        ready(Ok(resp))
    }
}
