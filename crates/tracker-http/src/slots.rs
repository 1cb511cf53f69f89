//! Who may hold a connection slot: the per-address cap and, when every slot is taken, the
//! choice of which connection makes room. Used by the accept loop in [`crate::server`].
//!
//! The threat: `max_connections` idle or slow sockets, from one address or from many, would
//! otherwise keep every new client waiting in the kernel backlog for as long as the attacker
//! likes. Three rules together bound what an attacker holds:
//! - [`PerIp`]: at most `max_connections_per_ip` open connections per source (IPv4 /32, IPv6
//!   prefix); one more is accepted and closed at once.
//! - the header timeout from the accept (in `server`): a connection that never completes a
//!   request head holds its slot for `header_read_timeout_ms` at most.
//! - [`Conns`]: when all `max_connections` slots are taken and a client is accepted, the oldest
//!   connection that is waiting for a request (idle keep-alive, silent, or mid-head) is closed
//!   to make room. A connection whose request is being answered is never chosen.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::Waker;

use atomic_waker::AtomicWaker;

/// Open connections per client address (the limiter's source key). An entry lives while its
/// address has a connection open, so the map holds at most `max_connections` entries; its
/// hasher is std's keyed SipHash. One lock per accept and per close, never per request, never
/// across I/O.
#[derive(Debug)]
pub(crate) struct PerIp {
    max: u32,
    open: Mutex<HashMap<u128, u32>>,
}

/// One connection's place in [`PerIp`]; given back on drop.
#[derive(Debug)]
pub(crate) struct IpSlot {
    table: Arc<PerIp>,
    key: u128,
}

impl PerIp {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max: u32::try_from(max).unwrap_or(u32::MAX),
            open: Mutex::new(HashMap::new()),
        }
    }

    /// A slot for `key`, or `None` when it already holds `max` connections.
    pub(crate) fn enter(self: &Arc<Self>, key: u128) -> Option<IpSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(key).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            table: Arc::clone(self),
            key,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// What the accept loop and one connection share: whether the connection is waiting for a
/// request, and the flag (with the waker) that asks it to close.
#[derive(Debug, Default)]
pub(crate) struct ConnCtl {
    waiting: AtomicBool,
    evict: AtomicBool,
    waker: AtomicWaker,
}

impl ConnCtl {
    /// The connection's read is pending (no request being answered): it may be chosen. The
    /// waker is kept so that choosing it wakes the read.
    pub(crate) fn park(&self, waker: &Waker) {
        self.waker.register(waker);
        self.waiting.store(true, Ordering::Release);
    }

    /// The connection read something: it has a request to work on.
    pub(crate) fn unpark(&self) {
        self.waiting.store(false, Ordering::Relaxed);
    }

    /// Whether the accept loop asked this connection to close.
    pub(crate) fn evicted(&self) -> bool {
        self.evict.load(Ordering::Acquire)
    }
}

/// Every open connection in accept order, for choosing the one that makes room.
#[derive(Debug)]
pub(crate) struct Conns {
    order: Mutex<VecDeque<Weak<ConnCtl>>>,
    /// Past this many entries, closed connections' entries are swept out (amortised O(1)).
    compact_at: usize,
}

impl Conns {
    pub(crate) fn new(max_connections: usize) -> Self {
        Self {
            order: Mutex::new(VecDeque::new()),
            compact_at: max_connections.saturating_mul(2).max(64),
        }
    }

    /// Registers a new connection (the newest).
    pub(crate) fn register(&self) -> Arc<ConnCtl> {
        let ctl = Arc::new(ConnCtl::default());
        let mut order = self.order.lock().unwrap_or_else(|e| e.into_inner());
        while order.front().is_some_and(|w| w.strong_count() == 0) {
            order.pop_front();
        }
        if order.len() >= self.compact_at {
            order.retain(|w| w.strong_count() > 0);
        }
        order.push_back(Arc::downgrade(&ctl));
        ctl
    }

    /// Asks the oldest connection that is waiting for a request to close; false if none is.
    pub(crate) fn evict_oldest_waiting(&self) -> bool {
        let mut order = self.order.lock().unwrap_or_else(|e| e.into_inner());
        let mut i = 0;
        while i < order.len() {
            let Some(ctl) = order[i].upgrade() else {
                order.remove(i);
                continue;
            };
            if ctl.waiting.load(Ordering::Acquire) && !ctl.evicted() {
                ctl.evict.store(true, Ordering::Release);
                ctl.waker.wake();
                order.remove(i);
                return true;
            }
            i += 1;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_caps_and_gives_back() {
        let t = Arc::new(PerIp::new(2));
        let a = t.enter(1).unwrap();
        let _b = t.enter(1).unwrap();
        assert!(t.enter(1).is_none());
        let _c = t.enter(2).unwrap();
        drop(a);
        assert!(t.enter(1).is_some());
        drop(_b);
        drop(_c);
        assert!(t.open.lock().unwrap().len() <= 1);
    }

    #[test]
    fn eviction_takes_the_oldest_waiting_and_never_a_busy_one() {
        let c = Conns::new(4);
        let busy = c.register();
        let old = c.register();
        let new = c.register();
        let waker = Waker::noop();
        new.park(waker);
        old.park(waker);
        assert!(c.evict_oldest_waiting());
        assert!(old.evicted() && !new.evicted() && !busy.evicted());
        assert!(c.evict_oldest_waiting());
        assert!(new.evicted());
        assert!(!c.evict_oldest_waiting(), "the busy one is never chosen");
        assert!(!busy.evicted());
        // Closed connections' entries do not pile up.
        for _ in 0..1000 {
            drop(c.register());
        }
        assert!(c.order.lock().unwrap().len() <= c.compact_at);
    }
}
