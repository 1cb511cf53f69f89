//! The socket worker loop: batch receive -> handle each datagram -> batch send.

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tracker_core::{Counters, Protocol, Tracker};

use crate::config::UdpConfig;
use crate::connection_id::ConnectionValidator;
use crate::handler::{Handler, PREFETCH_AHEAD};
use crate::sys;

/// Largest datagram accepted, in bytes: 98 bytes of announce plus ample BEP 41 URL data.
/// Longer ones are answered "request too long" (if their connection id is valid).
pub(crate) const MAX_REQUEST_LEN: usize = 2048;

/// What each worker needs from the config.
#[derive(Debug, Clone)]
pub(crate) struct WorkerSettings {
    batch_size: usize,
    read_timeout_ms: u64,
    lifetime: u32,
    max_v4: u32,
    max_v6: u32,
    key: [u8; 16],
}

impl WorkerSettings {
    pub(crate) fn from_config(c: &UdpConfig, key: [u8; 16]) -> Self {
        Self {
            key,
            batch_size: c.batch_size,
            read_timeout_ms: c.read_timeout_ms,
            lifetime: c.connection_id_lifetime_secs,
            max_v4: c.max_numwant_v4,
            max_v6: c.max_numwant_v6,
        }
    }
}

/// Serves `sockets` until `shutdown` is set. Returns an error only when a socket is broken.
pub(crate) fn run(
    tracker: &Arc<Tracker>,
    sockets: &[UdpSocket],
    s: &WorkerSettings,
    shutdown: &AtomicBool,
) -> std::io::Result<()> {
    let counters = tracker.stats().register(Protocol::Udp);
    let validator = ConnectionValidator::new(s.key, s.lifetime);
    let mut handler = Handler::new(Arc::clone(tracker), validator, s.max_v4, s.max_v6);
    let mut batch = sys::Batch::new(s.batch_size, MAX_REQUEST_LEN, handler.reply_capacity());
    let mut waiter = sys::Waiter::new(sockets);
    while !shutdown.load(Ordering::Relaxed) {
        let mut busy = false;
        for sock in sockets {
            let n = match batch.recv(sock) {
                Ok(n) => n,
                Err(e) if sys::is_transient(&e) => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                continue;
            }
            busy = true;
            let now = tracker.clock().now();
            let mut queued = 0;
            // Software pipeline: the table lines of datagram i + PREFETCH_AHEAD are requested
            // while datagram i is answered, so table misses overlap instead of queueing up.
            for i in 0..n.min(PREFETCH_AHEAD) {
                handler.prefetch(batch.data(i));
            }
            for i in 0..n {
                if i + PREFETCH_AHEAD < n {
                    handler.prefetch(batch.data(i + PREFETCH_AHEAD));
                }
                let (src, data, truncated, out) = batch.slot(i, queued);
                let len = match src {
                    Some(src) => handler.handle(data, truncated, src, now, out),
                    None => {
                        handler.counts.requests += 1;
                        handler.counts.dropped += 1;
                        0
                    }
                };
                if len > 0 {
                    batch.queue(queued, i, len);
                    queued += 1;
                }
            }
            // Counted before the replies leave, so whoever sees a reply also sees its count.
            handler.counts.flush(&counters);
            let unsent = batch.send(sock, queued)?;
            if unsent > 0 {
                Counters::add(&counters.dropped, unsent);
            }
        }
        if !busy {
            waiter.wait(s.read_timeout_ms)?;
        }
    }
    Ok(())
}
