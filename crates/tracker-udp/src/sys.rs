//! Batched datagram I/O. The only module of this crate with `unsafe` code.
//!
//! [`Batch`] owns preallocated receive and send buffers for up to `cap` datagrams. On Linux it
//! receives with one `recvmmsg` and answers with one `sendmmsg` per batch; elsewhere it falls back
//! to `recv_from` / `send_to` loops on non-blocking sockets (the [`portable`] module, which is
//! also compiled and tested on Linux). [`Waiter`] blocks in `poll(2)` until a socket has data or
//! the timeout passes, so an idle worker wakes up to check the shutdown flag.
#![allow(unsafe_code)]

use std::io;
use std::net::UdpSocket;

#[cfg(target_os = "linux")]
pub(crate) use linux::Batch;
#[cfg(not(target_os = "linux"))]
pub(crate) use portable::Batch;

/// Puts a freshly bound socket in the mode [`Batch`] expects.
pub(crate) fn prepare_socket(s: &UdpSocket) -> io::Result<()> {
    // Linux: blocking (sendmmsg waits for buffer space), receives pass MSG_DONTWAIT.
    // Elsewhere: non-blocking, idle waits in `Waiter::wait`.
    s.set_nonblocking(cfg!(not(target_os = "linux")))
}

/// Blocks until one of a worker's sockets is readable or a timeout passes.
#[derive(Debug)]
pub(crate) struct Waiter {
    #[cfg(unix)]
    fds: Box<[libc::pollfd]>,
}

impl Waiter {
    /// Watches `sockets` (which must stay open as long as the waiter is used).
    pub(crate) fn new(sockets: &[UdpSocket]) -> Self {
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            let fds = sockets
                .iter()
                .map(|s| libc::pollfd {
                    fd: s.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect();
            Self { fds }
        }
        #[cfg(not(unix))]
        {
            let _ = sockets;
            Self {}
        }
    }

    /// Waits until a socket is readable or `timeout_ms` passes. An interruption counts as a
    /// timeout (the caller loops).
    #[cfg(unix)]
    pub(crate) fn wait(&mut self, timeout_ms: u64) -> io::Result<()> {
        let timeout = libc::c_int::try_from(timeout_ms).unwrap_or(libc::c_int::MAX);
        // SAFETY: `fds` is a live, initialised slice of pollfd structs owned by `self` and
        // exclusively borrowed for the call; poll(2) reads `fds.len()` entries and writes only
        // their `revents`. The fds are the worker's sockets, open while it runs.
        let rc = unsafe {
            libc::poll(
                self.fds.as_mut_ptr(),
                self.fds.len() as libc::nfds_t,
                timeout,
            )
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Without poll(2): sleep briefly (the sockets are non-blocking; the caller loops).
    #[cfg(not(unix))]
    pub(crate) fn wait(&mut self, timeout_ms: u64) -> io::Result<()> {
        std::thread::sleep(std::time::Duration::from_millis(timeout_ms.min(1)));
        Ok(())
    }
}

/// Errors a receive or send may report that do not mean the socket is broken.
pub(crate) fn is_transient(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        WouldBlock | Interrupted | ConnectionRefused | ConnectionReset | TimedOut
    )
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::mem;
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
    use std::os::fd::AsRawFd;

    /// Receive and send buffers for up to `cap` datagrams, and the `mmsghdr` arrays pointing
    /// into them.
    pub(crate) struct Batch {
        cap: usize,
        recv_len: usize,
        send_len: usize,
        recv_buf: Box<[u8]>,
        send_buf: Box<[u8]>,
        addrs: Box<[libc::sockaddr_storage]>,
        recv_iov: Box<[libc::iovec]>,
        recv_hdr: Box<[libc::mmsghdr]>,
        send_iov: Box<[libc::iovec]>,
        send_hdr: Box<[libc::mmsghdr]>,
        /// Per queued reply: (index of the datagram it answers, length).
        queued: Box<[(usize, usize)]>,
        received: usize,
    }

    impl std::fmt::Debug for Batch {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Batch")
                .field("cap", &self.cap)
                .field("received", &self.received)
                .finish()
        }
    }

    fn zeroed_hdr() -> libc::mmsghdr {
        // SAFETY: mmsghdr is a plain C struct (integers and raw pointers) for which all-zero
        // bytes are a valid value (null pointers, zero lengths).
        unsafe { mem::zeroed() }
    }

    fn zeroed_storage() -> libc::sockaddr_storage {
        // SAFETY: sockaddr_storage is a plain C struct of integers; all-zero is valid (AF_UNSPEC).
        unsafe { mem::zeroed() }
    }

    impl Batch {
        /// Buffers for `cap` datagrams of up to `recv_len` bytes in and `send_len` bytes out.
        pub(crate) fn new(cap: usize, recv_len: usize, send_len: usize) -> Self {
            let cap = cap.max(1);
            let empty_iov = libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            };
            Self {
                cap,
                recv_len,
                send_len,
                recv_buf: vec![0u8; cap * recv_len].into_boxed_slice(),
                send_buf: vec![0u8; cap * send_len].into_boxed_slice(),
                addrs: (0..cap).map(|_| zeroed_storage()).collect(),
                recv_iov: vec![empty_iov; cap].into_boxed_slice(),
                recv_hdr: (0..cap).map(|_| zeroed_hdr()).collect(),
                send_iov: vec![empty_iov; cap].into_boxed_slice(),
                send_hdr: (0..cap).map(|_| zeroed_hdr()).collect(),
                queued: vec![(0, 0); cap].into_boxed_slice(),
                received: 0,
            }
        }

        /// Receives up to `cap` datagrams without blocking. `Ok(0)` when none is waiting.
        pub(crate) fn recv(&mut self, sock: &UdpSocket) -> io::Result<usize> {
            self.received = 0;
            let base = self.recv_buf.as_mut_ptr();
            let addrs = self.addrs.as_mut_ptr();
            for i in 0..self.cap {
                // Pointers are re-derived for every call, so no pointer outlives a borrow of the
                // buffers taken by Rust code in between.
                self.recv_iov[i] = libc::iovec {
                    // SAFETY: i * recv_len < cap * recv_len = recv_buf.len(): in bounds.
                    iov_base: unsafe { base.add(i * self.recv_len) }.cast(),
                    iov_len: self.recv_len,
                };
                let h = &mut self.recv_hdr[i];
                // SAFETY: i < cap = addrs.len(): in bounds.
                h.msg_hdr.msg_name = unsafe { addrs.add(i) }.cast();
                h.msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                h.msg_hdr.msg_iovlen = 1;
                h.msg_hdr.msg_control = std::ptr::null_mut();
                h.msg_hdr.msg_controllen = 0;
                h.msg_hdr.msg_flags = 0;
                h.msg_len = 0;
            }
            let iov = self.recv_iov.as_mut_ptr();
            for (i, h) in self.recv_hdr.iter_mut().enumerate() {
                // SAFETY: i < cap = recv_iov.len(): in bounds.
                h.msg_hdr.msg_iov = unsafe { iov.add(i) };
            }
            // SAFETY: `recv_hdr` holds `cap` initialised headers whose name, iov and buffer
            // pointers were set just above to distinct, live, correctly sized regions of
            // `addrs`, `recv_iov` and `recv_buf`, all owned by `self` and not otherwise borrowed
            // during the call; the kernel writes at most `iov_len` bytes per buffer and
            // `msg_namelen` bytes per address. A null timeout is allowed.
            let rc = unsafe {
                libc::recvmmsg(
                    sock.as_raw_fd(),
                    self.recv_hdr.as_mut_ptr(),
                    self.cap as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if rc < 0 {
                let e = io::Error::last_os_error();
                return if e.kind() == io::ErrorKind::WouldBlock {
                    Ok(0)
                } else {
                    Err(e)
                };
            }
            self.received = (rc as usize).min(self.cap);
            Ok(self.received)
        }

        /// The bytes of received datagram `i` (empty past the batch).
        #[inline]
        pub(crate) fn data(&self, i: usize) -> &[u8] {
            if i >= self.received {
                return &[];
            }
            let len = (self.recv_hdr[i].msg_len as usize).min(self.recv_len);
            let start = i * self.recv_len;
            &self.recv_buf[start..start + len]
        }

        /// Datagram `i` of the last receive (source, bytes, whether it was cut short) and
        /// send slot `j` to write its reply into.
        #[inline]
        pub(crate) fn slot(
            &mut self,
            i: usize,
            j: usize,
        ) -> (Option<SocketAddr>, &[u8], bool, &mut [u8]) {
            let h = &self.recv_hdr[i.min(self.cap - 1)];
            let len = (h.msg_len as usize).min(self.recv_len);
            let truncated = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            let src = if i < self.received {
                to_socket_addr(&self.addrs[i], h.msg_hdr.msg_namelen)
            } else {
                None
            };
            let start = i.min(self.cap - 1) * self.recv_len;
            let data = &self.recv_buf[start..start + len];
            let out_start = j.min(self.cap - 1) * self.send_len;
            let out = &mut self.send_buf[out_start..out_start + self.send_len];
            (src, data, truncated, out)
        }

        /// Marks send slot `j` as the reply (of `len` bytes) to datagram `i`.
        #[inline]
        pub(crate) fn queue(&mut self, j: usize, i: usize, len: usize) {
            if let Some(q) = self.queued.get_mut(j) {
                *q = (i, len.min(self.send_len));
            }
        }

        /// Sends the first `count` queued replies. Returns how many could not be sent
        /// (the kernel refused them); fails only when the socket itself is broken.
        pub(crate) fn send(&mut self, sock: &UdpSocket, count: usize) -> io::Result<u64> {
            let count = count.min(self.cap);
            let base = self.send_buf.as_mut_ptr();
            let addrs = self.addrs.as_mut_ptr();
            for j in 0..count {
                let (_, len) = self.queued[j];
                self.send_iov[j] = libc::iovec {
                    // SAFETY: j < cap: the slot starts inside send_buf.
                    iov_base: unsafe { base.add(j * self.send_len) }.cast(),
                    iov_len: len,
                };
            }
            let iov = self.send_iov.as_mut_ptr();
            for j in 0..count {
                let i = self.queued[j].0.min(self.cap - 1);
                let namelen = self.recv_hdr[i].msg_hdr.msg_namelen;
                let h = &mut self.send_hdr[j];
                // SAFETY: i < cap = addrs.len() and j < cap = send_iov.len(): in bounds.
                h.msg_hdr.msg_name = unsafe { addrs.add(i) }.cast();
                h.msg_hdr.msg_namelen = namelen;
                // SAFETY: as above.
                h.msg_hdr.msg_iov = unsafe { iov.add(j) };
                h.msg_hdr.msg_iovlen = 1;
                h.msg_hdr.msg_control = std::ptr::null_mut();
                h.msg_hdr.msg_controllen = 0;
                h.msg_hdr.msg_flags = 0;
            }
            let mut off = 0;
            let mut failed = 0;
            while off < count {
                // SAFETY: send_hdr[off..count] are initialised headers pointing (set above) at
                // live regions of `addrs`, `send_iov` and `send_buf` owned by `self`, which the
                // kernel only reads; `count - off` entries are in bounds.
                let rc = unsafe {
                    libc::sendmmsg(
                        sock.as_raw_fd(),
                        self.send_hdr.as_mut_ptr().add(off),
                        (count - off) as libc::c_uint,
                        0,
                    )
                };
                if rc < 0 {
                    let e = io::Error::last_os_error();
                    match e.kind() {
                        io::ErrorKind::Interrupted => continue,
                        io::ErrorKind::WouldBlock => {}
                        _ if is_per_packet(&e) => {}
                        _ => return Err(e),
                    }
                    // This datagram cannot be sent: skip it, keep the rest.
                    off += 1;
                    failed += 1;
                } else {
                    off += rc as usize;
                }
            }
            Ok(failed)
        }
    }

    /// Errors that concern one destination (unreachable, refused, filtered), not the socket.
    fn is_per_packet(e: &io::Error) -> bool {
        matches!(
            e.raw_os_error(),
            Some(
                libc::EPERM
                    | libc::EACCES
                    | libc::EINVAL
                    | libc::EAFNOSUPPORT
                    | libc::EHOSTUNREACH
                    | libc::ENETUNREACH
                    | libc::ENETDOWN
                    | libc::ECONNREFUSED
                    | libc::EMSGSIZE
                    | libc::ENOBUFS
                    | libc::EADDRNOTAVAIL
            )
        )
    }

    fn to_socket_addr(s: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
        let len = len as usize;
        match libc::c_int::from(s.ss_family) {
            libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
                // SAFETY: the kernel wrote an AF_INET address of at least sizeof(sockaddr_in)
                // bytes; sockaddr_storage is large enough and suitably aligned for sockaddr_in.
                let a =
                    unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
                let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
                Some(SocketAddr::V4(SocketAddrV4::new(
                    ip,
                    u16::from_be(a.sin_port),
                )))
            }
            libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
                // SAFETY: as above, for an AF_INET6 address and sockaddr_in6.
                let a =
                    unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
                let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
                Some(SocketAddr::V6(SocketAddrV6::new(
                    ip,
                    u16::from_be(a.sin6_port),
                    a.sin6_flowinfo,
                    a.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }
}

/// `recv_from` / `send_to` loops on non-blocking sockets: the path for systems without
/// `recvmmsg`. Safe code; compiled (and tested) on Linux too.
#[cfg_attr(target_os = "linux", allow(dead_code))]
pub(crate) mod portable {
    use std::io;
    use std::net::{SocketAddr, UdpSocket};

    /// Same interface as the Linux batch.
    #[derive(Debug)]
    pub(crate) struct Batch {
        cap: usize,
        /// One more byte than the largest accepted datagram, to notice longer ones.
        recv_len: usize,
        send_len: usize,
        recv_buf: Box<[u8]>,
        send_buf: Box<[u8]>,
        packets: Box<[(Option<SocketAddr>, usize)]>,
        queued: Box<[(usize, usize)]>,
        received: usize,
    }

    impl Batch {
        pub(crate) fn new(cap: usize, recv_len: usize, send_len: usize) -> Self {
            let cap = cap.max(1);
            let recv_len = recv_len + 1;
            Self {
                cap,
                recv_len,
                send_len,
                recv_buf: vec![0u8; cap * recv_len].into_boxed_slice(),
                send_buf: vec![0u8; cap * send_len].into_boxed_slice(),
                packets: vec![(None, 0); cap].into_boxed_slice(),
                queued: vec![(0, 0); cap].into_boxed_slice(),
                received: 0,
            }
        }

        /// Receives until `cap` datagrams or the socket would block. The socket must be
        /// non-blocking.
        pub(crate) fn recv(&mut self, sock: &UdpSocket) -> io::Result<usize> {
            self.received = 0;
            while self.received < self.cap {
                let start = self.received * self.recv_len;
                let buf = &mut self.recv_buf[start..start + self.recv_len];
                match sock.recv_from(buf) {
                    Ok((n, src)) => {
                        self.packets[self.received] = (Some(src), n);
                        self.received += 1;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    // Windows reports a datagram longer than the buffer as an error.
                    Err(e) if self.received > 0 || super::is_transient(&e) => break,
                    Err(e) => return Err(e),
                }
            }
            Ok(self.received)
        }

        /// The bytes of received datagram `i` (empty past the batch).
        #[inline]
        pub(crate) fn data(&self, i: usize) -> &[u8] {
            let Some(&(_, n)) = self.packets.get(i).filter(|_| i < self.received) else {
                return &[];
            };
            let start = i * self.recv_len;
            &self.recv_buf[start..start + n.min(self.recv_len - 1)]
        }

        #[inline]
        pub(crate) fn slot(
            &mut self,
            i: usize,
            j: usize,
        ) -> (Option<SocketAddr>, &[u8], bool, &mut [u8]) {
            let i = i.min(self.cap - 1);
            let (src, n) = self.packets[i];
            let max = self.recv_len - 1;
            let start = i * self.recv_len;
            let data = &self.recv_buf[start..start + n.min(max)];
            let out_start = j.min(self.cap - 1) * self.send_len;
            let out = &mut self.send_buf[out_start..out_start + self.send_len];
            (src, data, n > max, out)
        }

        #[inline]
        pub(crate) fn queue(&mut self, j: usize, i: usize, len: usize) {
            if let Some(q) = self.queued.get_mut(j) {
                *q = (i, len.min(self.send_len));
            }
        }

        /// Sends the queued replies; a reply that would block or is refused is dropped and
        /// counted.
        pub(crate) fn send(&mut self, sock: &UdpSocket, count: usize) -> io::Result<u64> {
            let mut failed = 0;
            for j in 0..count.min(self.cap) {
                let (i, len) = self.queued[j];
                let Some(dst) = self.packets.get(i).and_then(|p| p.0) else {
                    failed += 1;
                    continue;
                };
                let start = j * self.send_len;
                if sock
                    .send_to(&self.send_buf[start..start + len], dst)
                    .is_err()
                {
                    failed += 1;
                }
            }
            Ok(failed)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::time::{Duration, Instant};

    /// The client sends three datagrams (the last longer than the 64-byte receive slots); the
    /// batch must report them with their source, length and truncation. Then two more are sent
    /// (both queued on loopback before the receive) and echoed back in reverse order through one
    /// batched send.
    macro_rules! batch_echo {
        ($batch:ty, $server:expr) => {{
            let server: UdpSocket = $server;
            let client = UdpSocket::bind("127.0.0.1:0").unwrap();
            client
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let to = server.local_addr().unwrap();
            let me = Some(client.local_addr().unwrap());
            let mut b = <$batch>::new(8, 64, 32);
            let recv_n = |b: &mut $batch, want: usize| {
                let deadline = Instant::now() + Duration::from_secs(5);
                let mut got = Vec::new();
                while got.len() < want && Instant::now() < deadline {
                    super::Waiter::new(std::slice::from_ref(&server))
                        .wait(50)
                        .unwrap();
                    let n = b.recv(&server).unwrap();
                    for i in 0..n {
                        let (src, data, truncated, _) = b.slot(i, 0);
                        got.push((src, data.to_vec(), truncated));
                    }
                }
                got
            };
            client.send_to(b"one", to).unwrap();
            client.send_to(b"two!", to).unwrap();
            client.send_to(&[7u8; 100], to).unwrap();
            let got = recv_n(&mut b, 3);
            assert_eq!(
                got,
                vec![
                    (me, b"one".to_vec(), false),
                    (me, b"two!".to_vec(), false),
                    (me, vec![7; 64], true)
                ]
            );
            client.send_to(b"one", to).unwrap();
            client.send_to(b"two!", to).unwrap();
            assert_eq!(recv_n(&mut b, 2).len(), 2);
            for (j, i) in [(0, 1), (1, 0)] {
                let (_, data, _, _) = b.slot(i, j);
                let copy = data.to_vec();
                let (_, _, _, out) = b.slot(i, j);
                out[..copy.len()].copy_from_slice(&copy);
                b.queue(j, i, copy.len());
            }
            assert_eq!(b.send(&server, 2).unwrap(), 0);
            let mut buf = [0u8; 64];
            let (n, _) = client.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"two!");
            let (n, _) = client.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"one");
        }};
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn linux_batch_receives_flags_truncation_and_sends() {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        super::prepare_socket(&s).unwrap();
        batch_echo!(super::linux::Batch, s);
    }

    #[test]
    fn portable_batch_receives_flags_truncation_and_sends() {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_nonblocking(true).unwrap();
        batch_echo!(super::portable::Batch, s);
    }
}
