//! Statistics counters.
//!
//! Each worker (a UDP socket thread, the HTTP server) registers its own [`Counters`] block and
//! bumps it with relaxed atomics: no shared cache line between workers, no channel, no lock on
//! the hot path. Readers (metrics, systemd STATUS) sum the blocks with [`Stats::read`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::clients::CLIENT_FAMILIES;
use crate::types::Protocol;

macro_rules! counters {
    ($($(#[$doc:meta])* $field:ident),* $(,)?) => {
        /// One worker's counters. Padded to its own cache line(s).
        #[derive(Debug, Default)]
        #[repr(align(128))]
        pub struct Counters {
            $($(#[$doc])* pub $field: AtomicU64,)*
            /// Of `announces`: by client family, indexed as [`CLIENT_FAMILIES`].
            pub clients: [AtomicU64; CLIENT_FAMILIES.len()],
        }

        /// A point-in-time sum of counters.
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
        pub struct CounterValues {
            $($(#[$doc])* pub $field: u64,)*
            /// Of `announces`: by client family, indexed as [`CLIENT_FAMILIES`].
            pub clients: [u64; CLIENT_FAMILIES.len()],
        }

        /// The same counts in plain integers, for a request path that counts locally and
        /// adds them into its shared [`Counters`] once per batch ([`LocalCounts::flush`]).
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
        pub struct LocalCounts {
            $($(#[$doc])* pub $field: u64,)*
            /// Of `announces`: by client family, indexed as [`CLIENT_FAMILIES`].
            pub clients: [u64; CLIENT_FAMILIES.len()],
        }

        impl Counters {
            fn add_to(&self, v: &mut CounterValues) {
                $(v.$field += self.$field.load(Ordering::Relaxed);)*
                for (v, c) in v.clients.iter_mut().zip(&self.clients) {
                    *v += c.load(Ordering::Relaxed);
                }
            }

            /// Every counter with its field name, in declaration order (for checks that each
            /// one is exported, and for tools).
            pub fn named(&self) -> Vec<(&'static str, &AtomicU64)> {
                vec![$((stringify!($field), &self.$field),)*]
            }
        }

        impl LocalCounts {
            /// Adds every non-zero count into `c` (relaxed atomics) and resets to zero.
            pub fn flush(&mut self, c: &Counters) {
                $(if self.$field != 0 {
                    Counters::add(&c.$field, self.$field);
                })*
                for (n, c) in self.clients.iter().zip(&c.clients) {
                    if *n != 0 {
                        Counters::add(c, *n);
                    }
                }
                *self = Self::default();
            }
        }
    };
}

counters! {
    /// Requests received (every packet or HTTP request routed to the tracker).
    requests,
    /// UDP connect requests answered.
    connects,
    /// Announces answered with peers and counts.
    announces,
    /// Scrapes answered.
    scrapes,
    /// Requests answered with an error (`failure reason` / UDP action 3).
    errors,
    /// Of `errors`: announces (including a bad connection id or an access refusal).
    announce_errors,
    /// Of `errors`: scrapes.
    scrape_errors,
    /// UDP announces or scrapes whose connection id was wrong or expired.
    bad_connection_ids,
    /// Packets or requests dropped without an answer (unparseable, source port 0, ...).
    dropped,
    /// Announces answered but not stored because the swarm was at `max_peers_per_swarm`.
    peers_not_stored,
    /// Announces answered but not stored because the tracker was at `max_torrents`.
    torrents_not_stored,
    /// Announces or scrapes refused by the access rules (whitelist, blacklist, passkeys).
    access_denied,
    /// Requests refused because their address was over `limits.requests_per_sec`.
    rate_limited,
    /// Requests refused because their address was banned.
    banned_requests,
    /// Bans imposed (`limits.ban_threshold` bad requests within `limits.ban_window_secs`).
    bans,
    /// HTTP connections closed at once because their address already held
    /// `http.max_connections_per_ip`.
    connections_refused,
    /// HTTP connections closed because they did not finish a request head in time.
    connections_timed_out,
    /// HTTP connections waiting for a request that were closed to make room for a new client
    /// when every `http.max_connections` slot was taken.
    connections_evicted,
    /// HTTPS connections whose TLS handshake failed (a client refusing the certificate, a
    /// protocol error); a handshake not finished in time counts in `connections_timed_out`.
    tls_handshake_failures,
    /// Bytes received.
    bytes_in,
    /// Bytes sent.
    bytes_out,
}

impl Counters {
    /// Adds one to `counter` (relaxed: these are statistics, not synchronisation).
    #[inline]
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n` to `counter`.
    #[inline]
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Sums per protocol.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Everything the HTTP listeners counted.
    pub http: CounterValues,
    /// Everything the UDP workers counted.
    pub udp: CounterValues,
}

/// The registry of every worker's counters.
#[derive(Debug, Default)]
pub struct Stats {
    // A Mutex is fine here: it is taken once per worker start and once per read, never per request.
    blocks: Mutex<Vec<(Protocol, Arc<Counters>)>>,
}

impl Stats {
    /// A fresh counter block for one worker of `protocol`.
    pub fn register(&self, protocol: Protocol) -> Arc<Counters> {
        let c = Arc::new(Counters::default());
        self.blocks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((protocol, Arc::clone(&c)));
        c
    }

    /// Sums every block.
    pub fn read(&self) -> StatsSnapshot {
        let mut out = StatsSnapshot::default();
        for (p, c) in self.blocks.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            match p {
                Protocol::Http => c.add_to(&mut out.http),
                Protocol::Udp => c.add_to(&mut out.udp),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_summed_per_protocol() {
        let s = Stats::default();
        let a = s.register(Protocol::Udp);
        let b = s.register(Protocol::Udp);
        let h = s.register(Protocol::Http);
        Counters::inc(&a.announces);
        Counters::add(&b.announces, 2);
        Counters::inc(&h.scrapes);
        let r = s.read();
        assert_eq!(r.udp.announces, 3);
        assert_eq!(r.http.scrapes, 1);
        assert_eq!(r.http.announces, 0);
    }
}
