//! The direct path: a plain-HTTP connection whose first read holds exactly one complete, simple
//! `GET` request that asks for `Connection: close` is answered by the accept loop itself, in the
//! calls that accepted it: one `recv`, the handler, one `sendmsg`, `close`. No task, no hyper
//! connection, no reactor registration (two `epoll_ctl` calls), no `shutdown` before the close.
//! Everything else (keep-alive, a head split across reads, `HEAD`, anything unusual, TLS) goes to
//! hyper as before, with the bytes already read replayed first ([`Prefixed`]), under the same
//! guards.
//!
//! Why: a tracker's HTTP announces nearly all arrive on fresh connections (a client announces
//! every 30 minutes), and a profile of that case put the tracker's own work at 7 % of its CPU;
//! the rest was per-connection machinery (DESIGN 5.4).
//!
//! What is "simple" ([`classify`]) is chosen so that hyper would read the request the same way:
//! the request line is `GET` with an origin-form target of plain URI characters and `HTTP/1.1`;
//! at most [`MAX_HEADERS`] headers with names of letters, digits and `-`; no body
//! (`Content-Length`, `Transfer-Encoding`), `Expect` or `Upgrade`; `Connection` exactly `close`;
//! no byte after the head; the head within `max_head_bytes`. The reply is written byte for byte
//! as hyper writes it (`write_head`). A property test runs both front ends on the same requests
//! and compares the bytes (`tests` below); the fuzz target `http_direct` feeds arbitrary bytes.
//!
//! Limits: the read is non-blocking and bounded by [`FIRST_READ`] and `max_head_bytes`; the
//! reply is sent without waiting, and a reply the socket does not take at once is finished by a
//! task under the idle timeout. The connection's slots (per address, `max_connections`) are taken
//! before and held until the close, as for every connection.

use std::io::{self, IoSlice, Read as _};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::Method;
use socket2::Socket;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use tracker_core::Counters;

use crate::handler::{Handler, Reply, Scratch};

/// Bytes read by the first `recv`. A read that fills it goes to hyper (more may be waiting).
pub const FIRST_READ: usize = 4096;

/// Most headers a request on the direct path may have (more go to hyper).
pub const MAX_HEADERS: usize = 32;

/// A request the direct path answers (borrowed from the bytes read).
#[derive(Debug, PartialEq, Eq)]
pub struct Simple<'b> {
    pub path: &'b str,
    pub query: Option<&'b str>,
}

/// Whether `bytes` are exactly one simple `GET` request head asking for `Connection: close`
/// (see the module doc), no longer than `max_head`; `headers` receives its headers.
pub fn classify<'b>(
    bytes: &'b [u8],
    max_head: usize,
    headers: &mut [httparse::Header<'b>; MAX_HEADERS],
) -> Option<(Simple<'b>, usize)> {
    if !bytes.starts_with(b"GET /") || bytes.len() > max_head {
        return None;
    }
    let mut req = httparse::Request::new(headers);
    let httparse::Status::Complete(end) = req.parse(bytes).ok()? else {
        return None;
    };
    if end != bytes.len() || req.version != Some(1) || req.method != Some("GET") {
        return None;
    }
    let target = req.path?;
    if !target.bytes().all(uri_char) {
        return None;
    }
    let mut close = false;
    for h in req.headers.iter() {
        if !h
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return None;
        }
        let name = h.name;
        if ["content-length", "transfer-encoding", "expect", "upgrade"]
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n))
        {
            return None;
        }
        if name.eq_ignore_ascii_case("connection") {
            if close || !h.value.eq_ignore_ascii_case(b"close") {
                return None;
            }
            close = true;
        }
    }
    if !close {
        return None;
    }
    let n = req.headers.len();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    Some((Simple { path, query }, n))
}

/// The characters a direct-path target may have: RFC 3986 unreserved, sub-delims, `:`, `@`,
/// `/`, `?` and `%` (all of which hyper's URI parser takes; anything else goes to hyper). A
/// table: a target is a few hundred bytes, checked on every request.
#[inline]
fn uri_char(b: u8) -> bool {
    const TABLE: [bool; 256] = {
        let mut t = [false; 256];
        let mut i = 0;
        while i < 256 {
            let b = i as u8;
            t[i] = b.is_ascii_alphanumeric();
            i += 1;
        }
        let extra = b"-._~!$&'()*+,;=:@/?%";
        let mut j = 0;
        while j < extra.len() {
            t[extra[j] as usize] = true;
            j += 1;
        }
        t
    };
    TABLE[usize::from(b)]
}

/// The reply's status line and headers, as hyper 1 writes them for a `Connection: close`
/// request: the reply's own headers ([`Reply::headers`], which the hyper service sets too), then
/// `connection: close`, `content-length` and `date`.
pub fn write_head(out: &mut Vec<u8>, reply: &Reply, date: &[u8]) {
    use std::io::Write as _;
    let status = reply.status;
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or("<none>")
    );
    for (name, value) in reply.headers() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let _ = write!(
        out,
        "connection: close\r\ncontent-length: {}\r\ndate: ",
        reply.body.len()
    );
    out.extend_from_slice(date);
    out.extend_from_slice(b"\r\n\r\n");
}

/// The `Date` header value for now, formatted once per second per thread.
fn date_now() -> [u8; 29] {
    use std::cell::Cell;
    use std::time::{SystemTime, UNIX_EPOCH};
    thread_local! {
        static CACHE: Cell<(u64, [u8; 29])> = const { Cell::new((0, [0; 29])) };
    }
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHE.with(|c| {
        let (at, text) = c.get();
        if at == secs && at != 0 {
            return text;
        }
        // `fmt_http_date` always writes 29 bytes (IMF-fixdate); the fallback is never sent.
        let mut text = *b"Thu, 01 Jan 1970 00:00:00 GMT";
        let s = httpdate::fmt_http_date(now);
        if s.len() == text.len() {
            text.copy_from_slice(s.as_bytes());
        }
        c.set((secs, text));
        text
    })
}

/// What the first read of a connection led to.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Answered and sent; close the socket.
    Done,
    /// Answered, but the socket took only part of the reply: the rest is to be written (under
    /// the idle timeout) before the close.
    Tail(Tail),
    /// Not for the direct path: hyper serves the connection, these bytes (maybe none) first.
    Handoff(Vec<u8>),
    /// The client closed, or the socket failed: close it.
    Gone,
}

/// The part of a reply the socket did not take at once: the rest of the head (small, copied)
/// and the body from `from` (shared with the handler's cache, not copied: a full scrape can be
/// megabytes, and many clients may read slowly).
#[derive(Debug)]
pub(crate) struct Tail {
    head: Vec<u8>,
    body: bytes::Bytes,
    from: usize,
}

impl Tail {
    /// Writes the rest to `out`.
    pub(crate) async fn write_to<W: AsyncWrite + Unpin>(&self, out: &mut W) -> io::Result<()> {
        use tokio::io::AsyncWriteExt as _;
        out.write_all(&self.head).await?;
        out.write_all(&self.body[self.from..]).await?;
        out.flush().await
    }
}

/// Reusable buffers of one accept loop.
#[derive(Debug, Default)]
pub(crate) struct Buffers {
    pub(crate) scratch: Scratch,
    head: Vec<u8>,
}

/// Reads what the client has sent so far (without waiting) and answers it if it is a simple
/// request (see the module doc).
pub(crate) fn serve_first(
    sock: &Socket,
    handler: &Handler,
    peer: SocketAddr,
    bufs: &mut Buffers,
) -> Outcome {
    let mut buf = [0u8; FIRST_READ];
    let mut reader = sock;
    let n = match reader.read(&mut buf) {
        Ok(0) => return Outcome::Gone,
        Ok(n) => n,
        // Nothing there yet, or interrupted: hyper waits for it.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) =>
        {
            return Outcome::Handoff(Vec::new());
        }
        Err(_) => return Outcome::Gone,
    };
    let bytes = &buf[..n];
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let simple = match n < FIRST_READ {
        true => classify(bytes, handler.config().max_head_bytes, &mut headers),
        false => None,
    };
    let Some((req, nh)) = simple else {
        return Outcome::Handoff(bytes.to_vec());
    };
    // Counted here only when answered here: handed-off bytes are counted when hyper reads them.
    Counters::add(&handler.counters().bytes_in, n as u64);
    let reply = handler.handle(
        &Method::GET,
        req.path,
        req.query,
        &headers[..nh],
        peer,
        &mut bufs.scratch,
    );
    bufs.head.clear();
    write_head(&mut bufs.head, &reply, &date_now());
    send_all(sock, &bufs.head, reply.body)
}

fn send_all(sock: &Socket, head: &[u8], body: bytes::Bytes) -> Outcome {
    let total = head.len() + body.len();
    let sent = match sock.send_vectored_with_flags(
        &[IoSlice::new(head), IoSlice::new(&body)],
        libc::MSG_NOSIGNAL,
    ) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
        Err(_) => return Outcome::Gone,
    };
    if sent >= total {
        return Outcome::Done;
    }
    Outcome::Tail(Tail {
        head: head.get(sent..).unwrap_or_default().to_vec(),
        from: sent.saturating_sub(head.len()),
        body,
    })
}

/// A stream that yields `prefix` before reading from `inner` (the bytes the direct path read
/// from a connection it handed to hyper). Writes go straight to `inner`.
#[derive(Debug)]
pub(crate) struct Prefixed<S> {
    prefix: Vec<u8>,
    at: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    pub(crate) fn new(prefix: Vec<u8>, inner: S) -> Self {
        Self {
            prefix,
            at: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.at < this.prefix.len() && buf.remaining() > 0 {
            let rest = &this.prefix[this.at..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.at += n;
            if this.at == this.prefix.len() {
                this.prefix = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    //! The direct path against hyper: the same request bytes through `classify` + the handler +
    //! `write_head`, and through hyper serving the connection with the daemon's service; every
    //! request the direct path takes must get the same bytes (the `date` value aside).
    use super::*;
    use crate::config::HttpConfig;
    use crate::server::Svc;
    use hyper::server::conn::http1;
    use hyper_util::rt::TokioIo;
    use proptest::prelude::*;
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tracker_core::Tracker;

    const PEER: &str = "192.0.2.7:40000";

    /// A fresh tracker per reply, without interval jitter, so that both replies are the same.
    fn handler() -> Arc<Handler> {
        let mut config = tracker_core::CoreConfig::default();
        config.protocol.interval_jitter_percent = 0;
        Arc::new(Handler::new(
            Arc::new(Tracker::new(config)),
            Arc::new(HttpConfig::default()),
        ))
    }

    fn hyper_reply(req: &[u8]) -> Vec<u8> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let (mut client, server) = tokio::io::duplex(1 << 16);
            let svc = Svc::new(handler(), PEER.parse().expect("addr"));
            let conn = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(server), svc);
            let task = tokio::spawn(conn);
            client.write_all(req).await.expect("write");
            let mut out = Vec::new();
            let read = client.read_to_end(&mut out);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), read).await;
            task.abort();
            out
        })
    }

    fn direct_reply(req: &[u8]) -> Option<Vec<u8>> {
        let h = handler();
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let (simple, n) = classify(req, h.config().max_head_bytes, &mut headers)?;
        let mut scratch = Scratch::default();
        let peer = PEER.parse().expect("addr");
        let reply = h.handle(
            &Method::GET,
            simple.path,
            simple.query,
            &headers[..n],
            peer,
            &mut scratch,
        );
        let mut out = Vec::new();
        write_head(&mut out, &reply, &date_now());
        out.extend_from_slice(&reply.body);
        Some(out)
    }

    /// The reply with its `date` value blanked.
    fn undated(mut r: Vec<u8>) -> Vec<u8> {
        if let Some(at) = r.windows(8).position(|w| w == b"\r\ndate: ") {
            for b in r.iter_mut().skip(at + 8).take(29) {
                *b = b'#';
            }
        }
        r
    }

    fn assert_same(req: &[u8]) -> Result<bool, TestCaseError> {
        let Some(direct) = direct_reply(req) else {
            return Ok(false);
        };
        let (direct, hyper) = (undated(direct), undated(hyper_reply(req)));
        prop_assert_eq!(
            String::from_utf8_lossy(&direct),
            String::from_utf8_lossy(&hyper),
            "request {:?}",
            String::from_utf8_lossy(req)
        );
        Ok(true)
    }

    #[test]
    fn a_typical_announce_and_scrape_take_the_direct_path_with_hypers_bytes() {
        let ih = "%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A";
        for req in [
            format!(
                "GET /announce?info_hash={ih}&peer_id=-lt2040-abcdefghijkl&port=6881&uploaded=0\
                 &downloaded=0&left=100&event=started&compact=1&numwant=50 HTTP/1.1\r\n\
                 Host: tracker.example:6969\r\nUser-Agent: libtorrent/2.0.9\r\n\
                 Accept-Encoding: gzip\r\nConnection: close\r\n\r\n"
            ),
            format!("GET /scrape?info_hash={ih} HTTP/1.1\r\nHost: t\r\nConnection: Close\r\n\r\n"),
            "GET /announce?port=0 HTTP/1.1\r\nConnection: close\r\n\r\n".to_owned(),
            "GET /nothing HTTP/1.1\r\nConnection: close\r\n\r\n".to_owned(),
        ] {
            assert!(assert_same(req.as_bytes()).expect("same"), "{req}");
        }
    }

    #[test]
    fn the_target_table_is_the_documented_set() {
        for b in 0..=255u8 {
            let want = b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b);
            assert_eq!(uri_char(b), want, "{b:#x}");
        }
    }

    #[test]
    fn what_the_direct_path_leaves_to_hyper() {
        let close = "Connection: close\r\n\r\n";
        for req in [
            "GET /announce HTTP/1.1\r\n\r\n".to_owned(),
            "GET /announce HTTP/1.1\r\nConnection: keep-alive\r\n\r\n".to_owned(),
            "GET /announce HTTP/1.1\r\nConnection: close, upgrade\r\n\r\n".to_owned(),
            format!("GET /announce HTTP/1.0\r\n{close}"),
            format!("HEAD /announce HTTP/1.1\r\n{close}"),
            format!("GET http://t/announce HTTP/1.1\r\n{close}"),
            format!("GET /announce?a=\"b\" HTTP/1.1\r\n{close}"),
            format!("GET /announce HTTP/1.1\r\nContent-Length: 0\r\n{close}"),
            format!("GET /announce HTTP/1.1\r\nX_Odd: 1\r\n{close}"),
            format!("GET /announce HTTP/1.1\r\n{close}GET /scrape HTTP/1.1\r\n\r\n"),
            format!("\r\nGET /announce HTTP/1.1\r\n{close}"),
            "GET /announce HTTP/1.1\r\nConnection: close\r\n".to_owned(),
        ] {
            let mut h = [httparse::EMPTY_HEADER; MAX_HEADERS];
            assert_eq!(classify(req.as_bytes(), 16384, &mut h), None, "{req:?}");
        }
        let long = format!("GET /announce?{} HTTP/1.1\r\n{close}", "a".repeat(200));
        let mut h = [httparse::EMPTY_HEADER; MAX_HEADERS];
        assert!(classify(long.as_bytes(), long.len(), &mut h).is_some());
        assert_eq!(classify(long.as_bytes(), long.len() - 1, &mut h), None);
    }

    fn target() -> impl Strategy<Value = String> {
        let path = prop_oneof![
            Just("/announce"),
            Just("/scrape"),
            Just("/k3y/announce"),
            Just("/k3y/scrape"),
            Just("/"),
            Just("/favicon.ico"),
        ];
        let param = prop_oneof![
            Just("info_hash=%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A".to_owned()),
            Just("info_hash=abcdefghij0123456789".to_owned()),
            Just("peer_id=-qB4500-0123456789ab".to_owned()),
            (1u16..).prop_map(|p| format!("port={p}")),
            (0u64..1000).prop_map(|l| format!("left={l}")),
            Just("compact=1".to_owned()),
            Just("compact=0".to_owned()),
            Just("no_peer_id=1".to_owned()),
            Just("event=completed".to_owned()),
            (0u32..300).prop_map(|n| format!("numwant={n}")),
            "[a-z0-9%=_.~!$'()*+,;:@/-]{0,12}",
            "[\"<>{}|^`\\\\]{1,2}",
        ];
        (
            path,
            proptest::option::of(proptest::collection::vec(param, 0..9)),
        )
            .prop_map(|(p, q)| match q {
                Some(q) => format!("{p}?{}", q.join("&")),
                None => p.to_owned(),
            })
    }

    fn header() -> impl Strategy<Value = String> {
        let name = prop_oneof![
            Just("Host"),
            Just("User-Agent"),
            Just("Accept-Encoding"),
            Just("accept-encoding"),
            Just("Authorization"),
            Just("X-Forwarded-For"),
            Just("Accept"),
            Just("X_Y"),
            Just("Content-Length"),
            Just("Connection"),
        ];
        let value = prop_oneof![
            Just("gzip".to_owned()),
            Just("Bearer x".to_owned()),
            Just("10.1.2.3".to_owned()),
            Just("0".to_owned()),
            Just("keep-alive".to_owned()),
            "[ -~]{0,16}",
        ];
        (name, value).prop_map(|(n, v)| format!("{n}: {v}\r\n"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Any request the direct path takes gets hyper's bytes.
        #[test]
        fn the_direct_path_answers_as_hyper_does(
            method in prop_oneof![8 => Just("GET"), 1 => Just("HEAD"), 1 => Just("get")],
            target in target(),
            version in prop_oneof![8 => Just("HTTP/1.1"), 1 => Just("HTTP/1.0")],
            before in proptest::collection::vec(header(), 0..4),
            close in prop_oneof![6 => Just("close"), 1 => Just("Close"), 1 => Just("CLOSE"),
                1 => Just("keep-alive"), 1 => Just("close, close")],
            after in proptest::collection::vec(header(), 0..3),
        ) {
            let req = format!(
                "{method} {target} {version}\r\n{}Connection: {close}\r\n{}\r\n",
                before.concat(),
                after.concat()
            );
            assert_same(req.as_bytes())?;
        }
    }
}
