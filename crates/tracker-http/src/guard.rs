//! [`GuardedIo`]: a connection's byte stream (plain TCP or TLS, monomorphised) wrapped so that,
//! below hyper, it enforces:
//! - the request head limit (`max_head_bytes`): a client that sends more bytes than that
//!   without finishing its head gets a bencoded failure reason (status 200, `connection:
//!   close`), its remaining input is drained for a moment (so that closing does not reset the
//!   connection before the client read the answer) and the connection is closed. hyper's own
//!   buffer limit is set above ours, so hyper's bodiless `431` is never what a client sees;
//!   hyper's `414` for targets over 65534 bytes cannot happen either, since `max_head_bytes` is
//!   at most 65000. A request body counts towards the limit (tracker requests have none).
//! - the header read timeout (`header_read_timeout_ms`): a connection's first head must be
//!   complete within it of the accept (the TLS handshake, if any, included), so a silent or
//!   slow socket holds its slot for that long at most; a later head within it of its first
//!   byte. Blank lines are part of the head they precede ([`crate::head`]), so no byte restarts
//!   the clock.
//! - the idle timeout (`idle_timeout_secs`, from the end of one head to the first byte of the
//!   next). hyper's own `header_read_timeout` is not used because it runs from the moment
//!   hyper starts waiting for a head, so it would also cut idle keep-alive connections at the
//!   head timeout; here the two are distinct. The timer is re-armed lazily (at most once per
//!   `min(header, idle)` timeout per connection), not per request. A response write, or a
//!   close (TLS sends close_notify), that cannot proceed (the client stopped reading) is cut by
//!   the same deadline.
//! - eviction: a read that waits for a request parks the connection in its slot
//!   (`crate::slots`), and a connection asked to make room fails its next read.
//!
//! Bytes it lets through are untouched; with TLS it sees the decrypted bytes.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tracker_core::Counters;

use crate::bencode;
use crate::head::HeadScanner;
use crate::slots::ConnCtl;

/// Most bytes read and thrown away after a head-limit failure before the connection is closed.
const DRAIN_LIMIT: usize = 1 << 20;
/// Longest time spent draining after a head-limit failure.
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// The limits one connection is held to (from `[http]`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_head: usize,
    pub(crate) header_timeout: Duration,
    pub(crate) idle_timeout: Duration,
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

/// A stream (`TcpStream`, or a TLS stream over one) that enforces the head limit and the
/// header / idle timeouts (see the module docs). Bytes it lets through are untouched.
#[derive(Debug)]
pub(crate) struct GuardedIo<S> {
    inner: S,
    limits: Limits,
    counters: Arc<Counters>,
    /// Shared with the accept loop, which may ask this connection to make room.
    ctl: Arc<ConnCtl>,
    /// Where we are in the request heads.
    head: HeadScanner,
    /// Whether a head has ended on this connection yet. Until one has, the header timeout runs
    /// from the accept, whatever arrives.
    served: bool,
    /// The accept (until `served`), else the start of the current head (head_bytes > 0) or of
    /// the idle period (head_bytes == 0).
    phase_start: Instant,
    /// Fires at or before the current deadline; re-armed when it fires early.
    timer: Pin<Box<Sleep>>,
    state: State,
}

impl<S: AsyncRead + AsyncWrite + Unpin> GuardedIo<S> {
    /// `accepted`: when the TCP connection was accepted, where the first head's clock starts.
    pub(crate) fn new(
        inner: S,
        accepted: Instant,
        limits: Limits,
        counters: Arc<Counters>,
        ctl: Arc<ConnCtl>,
    ) -> Self {
        let step = limits.header_timeout.min(limits.idle_timeout);
        Self {
            inner,
            limits,
            counters,
            ctl,
            head: HeadScanner::default(),
            served: false,
            phase_start: accepted,
            timer: Box::pin(tokio::time::sleep_until(accepted + step)),
            state: State::Normal,
        }
    }

    fn deadline(&self) -> Instant {
        match self.state {
            State::Draining { until, .. } => until,
            _ if self.in_head() => self.phase_start + self.limits.header_timeout,
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

    /// Whether the header timeout applies now: a head is unfinished, or none has ended yet.
    fn in_head(&self) -> bool {
        !self.served || self.head.head_bytes() > 0
    }

    /// Scans bytes handed to hyper and moves the phase clock; false when the head limit is
    /// exceeded.
    fn scan(&mut self, new: &[u8]) -> bool {
        let was_idle = self.served && self.head.head_bytes() == 0;
        let before = self.head.completed();
        let ok = self.head.feed(new, self.limits.max_head);
        // A head ended (and maybe another started), or one started after an idle period: one
        // clock read per read at most. Bytes inside a head never move the clock.
        if self.head.completed() != before {
            self.served = true;
            self.phase_start = Instant::now();
        } else if was_idle && self.head.head_bytes() > 0 {
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
                State::Normal if self.in_head() => {
                    Counters::inc(&self.counters.connections_timed_out);
                    io::Error::new(io::ErrorKind::TimedOut, "HTTP request head timeout")
                }
                State::Normal => io::Error::new(io::ErrorKind::TimedOut, "HTTP idle timeout"),
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

pub(crate) fn evicted() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "closed to make room for a new client (max_connections reached)",
    )
}

fn not_normal() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "connection is being closed")
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for GuardedIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !matches!(this.state, State::Normal) {
            return this.poll_reject(cx);
        }
        if this.ctl.evicted() {
            return Poll::Ready(Err(evicted()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.ctl.unpark();
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
            Poll::Pending => {
                this.ctl.park(cx.waker());
                // Asked to make room between the check above and the park: do it now.
                if this.ctl.evicted() {
                    return Poll::Ready(Err(evicted()));
                }
                this.pending_or_timeout(cx)
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> GuardedIo<S> {
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

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for GuardedIo<S> {
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
        // A TLS close writes (close_notify, and whatever is still buffered): it can wait on a
        // client that stopped reading, so it is cut by the same deadline as a write.
        match Pin::new(&mut this.inner).poll_shutdown(cx) {
            Poll::Pending => this.write_stalled(cx),
            done => done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt as _;

    /// A stream whose close never completes, like a TLS stream whose close_notify cannot be
    /// sent because the client stopped reading and the socket's send buffer is full.
    #[derive(Debug)]
    struct StuckClose;

    impl AsyncRead for StuckClose {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Pending
        }
    }

    impl AsyncWrite for StuckClose {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(data.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Pending
        }
    }

    #[tokio::test]
    async fn a_close_that_cannot_proceed_is_cut_at_the_deadline() {
        let limits = Limits {
            max_head: 1024,
            header_timeout: Duration::from_millis(200),
            idle_timeout: Duration::from_secs(60),
        };
        let mut io = GuardedIo::new(
            StuckClose,
            Instant::now(),
            limits,
            Arc::new(Counters::default()),
            Arc::new(ConnCtl::default()),
        );
        let t0 = Instant::now();
        let closed = tokio::time::timeout(Duration::from_secs(10), io.shutdown()).await;
        let e = closed
            .expect("the close is cut at the header timeout, not left hanging")
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        assert!(t0.elapsed() >= limits.header_timeout, "{:?}", t0.elapsed());
    }
}
