//! The accept loop: hyper 1.x HTTP/1.1 with keep-alive on an already-bound tokio listener,
//! after hyper's `graceful_shutdown` example.
//!
//! Each connection is wrapped in [`GuardedIo`], which enforces, below hyper:
//! - the request head limit (`max_head_bytes`): a client that sends more bytes than that
//!   without finishing its head gets a bencoded failure reason (status 200, `connection:
//!   close`), its remaining input is drained for a moment (so that closing does not reset the
//!   connection before the client read the answer) and the connection is closed. hyper's own
//!   buffer limit is set above ours, so hyper's bodiless `431` is never what a client sees;
//!   hyper's `414` for targets over 65534 bytes cannot happen either, since `max_head_bytes` is
//!   at most 65000. A request body counts towards the limit (tracker requests have none).
//! - the header read timeout (`header_read_timeout_ms`, from the first byte of a head to its
//!   end) and the idle timeout (`idle_timeout_secs`, from the end of one head to the first
//!   byte of the next). hyper's own `header_read_timeout` is not used because it runs from the
//!   moment hyper starts waiting for a head, so it would also cut idle keep-alive connections
//!   at the head timeout; here the two are distinct. The timer is re-armed lazily (at most
//!   once per `min(header, idle)` timeout per connection), not per request. A response write
//!   that cannot proceed (the client stopped reading) is cut by the same deadline.

use std::cell::RefCell;
use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tracker_core::{Counters, Tracker};

use crate::bencode;
use crate::config::HttpConfig;
use crate::handler::{Handler, Scratch};

/// Most bytes read and thrown away after a head-limit failure before the connection is closed.
const DRAIN_LIMIT: usize = 1 << 20;
/// Longest time spent draining after a head-limit failure.
const DRAIN_TIME: Duration = Duration::from_secs(2);

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
    config
        .validate()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let handler = Arc::new(Handler::new(tracker, Arc::clone(&config)));
    let limits = Limits {
        max_head: config.max_head_bytes,
        header_timeout: config.header_read_timeout(),
        idle_timeout: config.idle_timeout(),
    };
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(true)
        .max_buf_size(config.hyper_buf_size());
    // Each connection holds a file descriptor, a task and up to `max_head_bytes` of buffered
    // input. The semaphore bounds them so a flood of connections cannot exhaust memory or fds;
    // a permit is taken *before* accepting, so excess clients wait in the kernel backlog
    // instead of being accepted and dropped.
    let permits = Arc::new(Semaphore::new(
        config.max_connections.min(Semaphore::MAX_PERMITS),
    ));
    let graceful = GracefulShutdown::new();
    let local = listener.local_addr().ok();
    tracing::info!(addr = ?local, "HTTP tracker listening");
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            p = Arc::clone(&permits).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
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
        let _ = stream.set_nodelay(true);
        let io = GuardedIo::new(stream, limits, Arc::clone(handler.counters()));
        let svc = Svc {
            handler: Arc::clone(&handler),
            peer,
            scratch: RefCell::new(Scratch::default()),
        };
        let conn = builder.serve_connection(TokioIo::new(io), svc);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    let grace = config.shutdown_timeout();
    tokio::select! {
        () = graceful.shutdown() => tracing::info!(addr = ?local, "HTTP tracker stopped"),
        () = tokio::time::sleep(grace) => {
            tracing::warn!(addr = ?local, "HTTP connections still open after the shutdown timeout; dropping them");
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
        ready(Ok(resp))
    }
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    max_head: usize,
    header_timeout: Duration,
    idle_timeout: Duration,
}

#[derive(Debug)]
enum State {
    /// Passing bytes through to hyper.
    Normal,
    /// The head limit tripped: writing our failure reply.
    Rejecting { reply: Vec<u8>, written: usize },
    /// Reply written and write side shut: reading and discarding until EOF or a limit.
    Draining { until: Instant, drained: usize },
}

/// Finds where request heads end in a byte stream, and how long the current one is.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct HeadScanner {
    /// Bytes of the current unfinished head; 0 between requests.
    head_bytes: usize,
    /// Bytes of the current line so far (since the last `\n`).
    line_len: usize,
    /// The last byte scanned (`\r` matters when a `\r\n` is split across reads).
    last: u8,
}

impl HeadScanner {
    /// Feeds bytes; false as soon as the current head exceeds `max` bytes. A head ends at a
    /// blank line (`\r\n` or a bare `\n`); only newlines are looked at (memchr), so the cost is
    /// a fraction of hyper's own parse.
    fn feed(&mut self, new: &[u8], max: usize) -> bool {
        let mut rest = new;
        while !rest.is_empty() {
            let Some(off) = memchr::memchr(b'\n', rest) else {
                self.head_bytes += rest.len();
                self.line_len += rest.len();
                self.last = rest[rest.len() - 1];
                return self.head_bytes <= max;
            };
            self.head_bytes += off + 1;
            if self.head_bytes > max {
                return false;
            }
            let line = self.line_len + off;
            let before = if off > 0 { rest[off - 1] } else { self.last };
            self.line_len = 0;
            self.last = b'\n';
            if line == 0 || (line == 1 && before == b'\r') {
                self.head_bytes = 0;
            }
            rest = &rest[off + 1..];
        }
        true
    }
}

/// A `TcpStream` that enforces the head limit and the header / idle timeouts (see the module
/// docs). Bytes it lets through are untouched.
#[derive(Debug)]
pub(crate) struct GuardedIo {
    inner: TcpStream,
    limits: Limits,
    counters: Arc<Counters>,
    /// Where we are in the request heads.
    head: HeadScanner,
    /// Start of the current head (head_bytes > 0) or idle period (head_bytes == 0).
    phase_start: Instant,
    /// Fires at or before the current deadline; re-armed when it fires early.
    timer: Pin<Box<Sleep>>,
    state: State,
}

impl GuardedIo {
    fn new(inner: TcpStream, limits: Limits, counters: Arc<Counters>) -> Self {
        let now = Instant::now();
        let step = limits.header_timeout.min(limits.idle_timeout);
        Self {
            inner,
            limits,
            counters,
            head: HeadScanner::default(),
            phase_start: now,
            timer: Box::pin(tokio::time::sleep_until(now + step)),
            state: State::Normal,
        }
    }

    fn deadline(&self) -> Instant {
        match self.state {
            State::Draining { until, .. } => until,
            _ if self.head.head_bytes > 0 => self.phase_start + self.limits.header_timeout,
            _ => self.phase_start + self.limits.idle_timeout,
        }
    }

    /// Polls the timer; `Ready` means the current deadline has passed.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = Instant::now();
            let deadline = self.deadline();
            if now >= deadline {
                return Poll::Ready(());
            }
            // The deadline only ever moves later except at a head start, which is at most
            // `step` after any re-arm; so never sleeping longer than `step` keeps us exact.
            let step = self.limits.header_timeout.min(self.limits.idle_timeout);
            self.timer.as_mut().reset(deadline.min(now + step));
        }
    }

    /// Scans bytes handed to hyper and moves the phase clock; false when the head limit is
    /// exceeded.
    fn scan(&mut self, new: &[u8]) -> bool {
        let was_idle = self.head.head_bytes == 0;
        let ok = self.head.feed(new, self.limits.max_head);
        // A head started, or one ended (and maybe another started): one clock read per read.
        if was_idle || self.head.head_bytes == 0 {
            self.phase_start = Instant::now();
        }
        ok
    }

    fn start_rejecting(&mut self) {
        let mut body = Vec::with_capacity(160);
        let msg = format!(
            "request too long: more than {} bytes of request line and headers",
            self.limits.max_head
        );
        bencode::failure(&mut body, &msg);
        let mut reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        reply.extend_from_slice(&body);
        Counters::inc(&self.counters.requests);
        Counters::inc(&self.counters.errors);
        Counters::add(&self.counters.bytes_out, reply.len() as u64);
        self.state = State::Rejecting { reply, written: 0 };
    }

    /// Drives the rejection: write, shut down writing, drain. Ready(Err) when finished.
    fn poll_reject(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match &mut self.state {
                State::Normal => return Poll::Ready(Ok(())),
                State::Rejecting { reply, written } => {
                    while *written < reply.len() {
                        match Pin::new(&mut self.inner).poll_write(cx, &reply[*written..]) {
                            Poll::Ready(Ok(0)) => return Poll::Ready(Err(too_long())),
                            Poll::Ready(Ok(n)) => *written += n,
                            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                            Poll::Pending => return self.pending_or_timeout(cx),
                        }
                    }
                    match Pin::new(&mut self.inner).poll_shutdown(cx) {
                        Poll::Ready(_) => {}
                        Poll::Pending => return self.pending_or_timeout(cx),
                    }
                    let until = Instant::now() + DRAIN_TIME;
                    self.state = State::Draining { until, drained: 0 };
                    self.timer.as_mut().reset(until);
                }
                State::Draining { drained, .. } => {
                    let mut sink = [0u8; 4096];
                    let mut buf = ReadBuf::new(&mut sink);
                    match Pin::new(&mut self.inner).poll_read(cx, &mut buf) {
                        Poll::Ready(Ok(()))
                            if !buf.filled().is_empty() && *drained < DRAIN_LIMIT =>
                        {
                            *drained += buf.filled().len();
                        }
                        Poll::Ready(_) => return Poll::Ready(Err(too_long())),
                        Poll::Pending => return self.pending_or_timeout(cx),
                    }
                }
            }
        }
    }

    fn pending_or_timeout(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.poll_deadline(cx) {
            Poll::Ready(()) => Poll::Ready(Err(match self.state {
                State::Normal => io::Error::new(io::ErrorKind::TimedOut, "HTTP read timeout"),
                _ => too_long(),
            })),
            Poll::Pending => Poll::Pending,
        }
    }
}

fn too_long() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "request head too long; answered and closed",
    )
}

fn not_normal() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "connection is being closed")
}

impl AsyncRead for GuardedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !matches!(this.state, State::Normal) {
            return this.poll_reject(cx);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let filled = buf.filled().len();
                if filled > before {
                    Counters::add(&this.counters.bytes_in, (filled - before) as u64);
                    if !this.scan(&buf.filled()[before..]) {
                        // Hide this read from hyper and answer ourselves.
                        buf.set_filled(before);
                        this.start_rejecting();
                        return this.poll_reject(cx);
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.pending_or_timeout(cx),
        }
    }
}

impl GuardedIo {
    /// A write that would block: wait, unless the connection has made no progress for the
    /// current deadline (a client that stops reading its answers is cut like an idle one).
    fn write_stalled<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match self.poll_deadline(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "HTTP client stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for GuardedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if !matches!(this.state, State::Normal) {
            return Poll::Ready(Err(not_normal()));
        }
        match Pin::new(&mut this.inner).poll_write(cx, data) {
            Poll::Pending => this.write_stalled(cx),
            done => done,
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if !matches!(this.state, State::Normal) {
            return Poll::Ready(Err(not_normal()));
        }
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending => this.write_stalled(cx),
            done => done,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending => this.write_stalled(cx),
            done => done,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !matches!(this.state, State::Normal) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}
#[cfg(test)]
mod tests {
    use super::HeadScanner;

    const TWO: &[u8] =
        b"GET /announce?a=1 HTTP/1.1\r\nhost: x\r\n\r\nGET /scrape HTTP/1.1\n\nGET /x";

    #[test]
    fn head_ends_are_found_across_every_split() {
        for split in 0..=TWO.len() {
            let mut s = HeadScanner::default();
            assert!(s.feed(&TWO[..split], 1000));
            assert!(s.feed(&TWO[split..], 1000));
            assert_eq!(s.head_bytes, b"GET /x".len(), "split at {split}");
        }
        // Byte by byte.
        let mut s = HeadScanner::default();
        for b in TWO {
            assert!(s.feed(std::slice::from_ref(b), 1000));
        }
        assert_eq!(s.head_bytes, 6);
    }

    #[test]
    fn limit_counts_only_the_current_head() {
        let mut s = HeadScanner::default();
        let head = b"GET / HTTP/1.1\r\nh: v\r\n\r\n";
        for _ in 0..100 {
            assert!(s.feed(head, head.len()));
        }
        assert!(!s.feed(&[b'a'; 30], 29));
        let mut s = HeadScanner::default();
        assert!(s.feed(&[b'a'; 29], 30));
        assert!(s.feed(b"\r", 30));
        assert!(!s.feed(b"\nb", 30));
        // A lone \r inside a line does not end anything.
        let mut s = HeadScanner::default();
        assert!(s.feed(b"a\rb\n\rc\n", 100));
        assert_eq!(s.head_bytes, 7);
    }
}
