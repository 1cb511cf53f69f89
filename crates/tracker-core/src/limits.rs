//! Abuse limits: a request-rate token bucket and temporary bans per source address, in a table
//! of fixed size that needs no lock.
//!
//! What lives here: the `[limits]` section ([`LimitsConfig`]) and the [`Limiter`] that both
//! protocols ask once per request. What does not: what a protocol does with a verdict (UDP drops
//! the datagram, HTTP answers a failure reason), and connection caps (the HTTP server's).
//!
//! # The threat
//! A public tracker is flooded: one address sending tens of thousands of announces a second,
//! thousands of addresses sending garbage or forged connection ids, and floods from millions of
//! (possibly forged) addresses whose only aim is to grow the tracker's tables until it falls
//! over. A per-address table that grows with its input would be that failure, so this one
//! never grows: it is allocated once, `table_entries` slots, and a newcomer evicts an older
//! entry.
//!
//! # Layout
//! A slot is three `AtomicU64`s (24 bytes; 65,536 slots are 1.5 MiB):
//! - `key`: a keyed hash of the address (IPv4 /32, IPv6 masked to `ipv6_prefix_len`), with
//!   the low bit set so that 0 means empty. The hasher's key is random per process, so an
//!   attacker cannot choose addresses that land on a victim's slot.
//! - `bucket`: tokens (high 32 bits) and the unix second they were last refilled (low 32).
//! - `abuse`: strikes in the current window (bits 48..64), the low 16 bits of the window's first
//!   second (bits 32..48), and the unix second a ban ends (low 32; 0 = not banned).
//!
//! An address may sit in one of two distinct slots (two independent parts of its hash choose
//! them). A
//! lookup reads both keys; a newcomer takes an empty slot, else evicts the one of the two that
//! is not banned, else the one refilled longer ago. So a flood from many addresses evicts its
//! own entries and idle ones first; a ban is pushed out only when both of a newcomer's
//! candidate slots hold bans. An evicted address that comes back starts with a full bucket:
//! eviction is lenient, never harsh.
//!
//! # The maths
//! Tokens refill once a second on the coarse clock: `tokens = min(burst, tokens + rate *
//! elapsed)`, one token per request. An address can therefore send `burst` requests at once and
//! `rate` per second after that. Strikes (bad connection ids, malformed requests) count in a
//! window of `ban_window_secs` that starts at the first strike; `ban_threshold` strikes in one
//! window ban the address for `ban_secs`.
//!
//! # Concurrency
//! Every update is a compare-and-swap on one word, retried a few times; no lock, no allocation,
//! one cache line or two per request. Two addresses that race to claim one slot, or a reader
//! that sees a slot between its key and its state being written, can briefly share a bucket:
//! the error is a few requests' worth and is accepted for a hot path without locks.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use documented::{Documented, DocumentedFields};
use serde::{Deserialize, Serialize};

/// Per source address (IPv4 /32, IPv6 `ipv6_prefix_len`) request rates and temporary bans,
/// kept in a table of fixed size (`table_entries`) that a flood from millions of addresses
/// cannot grow. Over its rate a request is dropped (UDP) or answered with a failure reason
/// (HTTP); /metrics counts limited and banned requests, bans and the table's fill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Documented, DocumentedFields)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Requests (UDP datagrams, HTTP requests) per second that one address may send on
    /// average; 0 turns rate limiting off. A client re-announces each of its torrents every
    /// `protocol.interval` (1800 s): one with 1,000 torrents sends about 0.6 announces a second
    /// (1.1 datagrams over UDP, with its connects), so 500 a second serves about 450 such
    /// clients, or 45,000 clients with 10 torrents each, behind one address; a carrier-grade
    /// NAT shares one IPv4 address among tens to a few hundred subscribers.
    pub requests_per_sec: u32,
    /// Requests one address may send at once before the rate applies (the bucket's size), at
    /// least `requests_per_sec`. A client that starts with 1,000 torrents announces them all
    /// at once (2,000 datagrams over UDP); 5,000 lets two such clients start together behind
    /// one address.
    pub burst: u32,
    /// Bits of an IPv6 source address that name one source (a /64 is one customer's network
    /// on almost every ISP), 1 to 128. IPv4 addresses count one by one.
    pub ipv6_prefix_len: u8,
    /// Bad requests (UDP announces and scrapes with a wrong connection id, malformed requests
    /// over either protocol) within `ban_window_secs` that ban an address, at most 65535; 0
    /// turns bans off. A client whose connection id expired sends one bad request and
    /// reconnects, so even 500 clients behind one address send far fewer.
    pub ban_threshold: u32,
    /// The window of `ban_threshold`, in seconds, 1 to 3600.
    pub ban_window_secs: u32,
    /// How long a ban lasts, in seconds, 1 to 86400. While banned, an address's requests are
    /// dropped (UDP) or answered with a failure reason (HTTP). UDP source addresses can be
    /// forged: a ban also stops the tracker from answering whoever is spoofing that address.
    pub ban_secs: u32,
    /// Slots in the address table (rounded up to a power of two, 1024 to 16777216), 24 bytes
    /// each (65536 slots are 1.5 MiB): the memory ceiling of this feature, which no flood can
    /// exceed.
    pub table_entries: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            requests_per_sec: 500,
            burst: 5000,
            ipv6_prefix_len: 64,
            ban_threshold: 1000,
            ban_window_secs: 60,
            ban_secs: 600,
            table_entries: 65_536,
        }
    }
}

/// Bounds of [`LimitsConfig::table_entries`].
pub const TABLE_ENTRIES_RANGE: std::ops::RangeInclusive<usize> = 1024..=1 << 24;

impl LimitsConfig {
    /// Every problem, each naming its option (`limits.*`).
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.requests_per_sec > 0 && self.burst < self.requests_per_sec {
            p.push(format!(
                "limits.burst ({}) must be at least limits.requests_per_sec ({})",
                self.burst, self.requests_per_sec
            ));
        }
        if !(1..=128).contains(&self.ipv6_prefix_len) {
            p.push(format!(
                "limits.ipv6_prefix_len ({}) must be 1 to 128",
                self.ipv6_prefix_len
            ));
        }
        if self.ban_threshold > u32::from(u16::MAX) {
            p.push(format!(
                "limits.ban_threshold ({}) must be at most 65535",
                self.ban_threshold
            ));
        }
        if !(1..=3600).contains(&self.ban_window_secs) {
            p.push(format!(
                "limits.ban_window_secs ({}) must be 1 to 3600",
                self.ban_window_secs
            ));
        }
        if !(1..=86_400).contains(&self.ban_secs) {
            p.push(format!(
                "limits.ban_secs ({}) must be 1 to 86400",
                self.ban_secs
            ));
        }
        if !TABLE_ENTRIES_RANGE.contains(&self.table_entries) {
            p.push(format!(
                "limits.table_entries ({}) must be {} to {}",
                self.table_entries,
                TABLE_ENTRIES_RANGE.start(),
                TABLE_ENTRIES_RANGE.end()
            ));
        }
        p
    }
}

/// What a request may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Serve it.
    Allow,
    /// Over the rate: drop it (UDP) or answer a failure reason (HTTP).
    Limited,
    /// The address is banned.
    Banned,
}

/// The address table's fill, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableFill {
    /// Slots holding an address.
    pub used: usize,
    /// Of `used`: addresses banned now.
    pub banned: usize,
    /// Slots in all.
    pub capacity: usize,
}

#[derive(Debug, Default)]
struct Slot {
    key: AtomicU64,
    bucket: AtomicU64,
    abuse: AtomicU64,
}

/// Compare-and-swap attempts before a contended update gives up (and lets the request pass).
const CAS_TRIES: usize = 4;

/// The per-address limiter (see the module docs).
#[derive(Debug)]
pub struct Limiter {
    rate: u32,
    burst: u32,
    v6_mask: u128,
    ban_threshold: u32,
    ban_window: u32,
    ban_secs: u32,
    slots: Box<[Slot]>,
    mask: usize,
    hasher: ahash::RandomState,
}

fn bucket(tokens: u32, at: u32) -> u64 {
    (u64::from(tokens) << 32) | u64::from(at)
}

fn abuse(strikes: u16, window: u16, ban_until: u32) -> u64 {
    (u64::from(strikes) << 48) | (u64::from(window) << 32) | u64::from(ban_until)
}

fn ban_until(a: u64) -> u32 {
    a as u32
}

impl Limiter {
    /// A limiter for `config` (assumed valid; out-of-range values are clamped).
    pub fn new(config: &LimitsConfig) -> Self {
        let entries = config
            .table_entries
            .clamp(*TABLE_ENTRIES_RANGE.start(), *TABLE_ENTRIES_RANGE.end())
            .next_power_of_two();
        let prefix = u32::from(config.ipv6_prefix_len.clamp(1, 128));
        Self {
            rate: config.requests_per_sec,
            burst: config.burst.max(config.requests_per_sec),
            v6_mask: u128::MAX << (128 - prefix),
            ban_threshold: config.ban_threshold.min(u32::from(u16::MAX)),
            ban_window: config.ban_window_secs.max(1),
            ban_secs: config.ban_secs.max(1),
            slots: (0..entries).map(|_| Slot::default()).collect(),
            mask: entries - 1,
            hasher: ahash::RandomState::new(),
        }
    }

    /// Whether anything is limited at all (both rates and bans off: every call is a no-op).
    pub fn enabled(&self) -> bool {
        self.rate > 0 || self.ban_threshold > 0
    }

    /// The 128-bit source key of `ip`: IPv4 (and IPv4-mapped IPv6) as is, IPv6 masked to the
    /// prefix. Also what the HTTP server counts connections per.
    pub fn source_key(&self, ip: IpAddr) -> u128 {
        match crate::types::canonical_ip(ip) {
            IpAddr::V4(v4) => u128::from(u32::from(v4)),
            // The top bit marks IPv6, so no IPv6 prefix equals an IPv4 address.
            IpAddr::V6(v6) => (u128::from(v6) & self.v6_mask) | 1 << 127 | 1,
        }
    }

    fn hash(&self, ip: IpAddr) -> u64 {
        self.hasher.hash_one(self.source_key(ip)) | 1
    }

    /// The slot of `ip`, claimed (evicting another address) if it has none.
    #[inline]
    fn slot(&self, ip: IpAddr, now: u32) -> &Slot {
        let h = self.hash(ip);
        let i = h as usize & self.mask;
        // Never the same slot twice: the second index differs from the first in bit 0 at least.
        let j = (i ^ ((h >> 40) as usize | 1)) & self.mask;
        let (a, b) = (&self.slots[i], &self.slots[j]);
        let (ka, kb) = (a.key.load(Ordering::Acquire), b.key.load(Ordering::Acquire));
        if ka == h {
            return a;
        }
        if kb == h {
            return b;
        }
        let (victim, old) = self.victim((a, ka), (b, kb), now);
        if victim
            .key
            .compare_exchange(old, h, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            victim
                .bucket
                .store(bucket(self.burst, now), Ordering::Release);
            victim.abuse.store(0, Ordering::Release);
        }
        // Lost the race: another request claimed it; share it (see the module docs).
        victim
    }

    fn victim<'a>(&self, a: (&'a Slot, u64), b: (&'a Slot, u64), now: u32) -> (&'a Slot, u64) {
        if a.1 == 0 {
            return a;
        }
        if b.1 == 0 {
            return b;
        }
        let banned = |s: &Slot| ban_until(s.abuse.load(Ordering::Relaxed)) > now;
        match (banned(a.0), banned(b.0)) {
            (false, true) => a,
            (true, false) => b,
            _ => {
                let at = |s: &Slot| s.bucket.load(Ordering::Relaxed) as u32;
                if at(a.0) <= at(b.0) { a } else { b }
            }
        }
    }

    /// One request from `ip` at unix second `now`: takes a token and says whether to serve it
    /// (the caller counts refusals: `rate_limited`, `banned_requests`).
    #[inline]
    pub fn check(&self, ip: IpAddr, now: u32) -> Verdict {
        if !self.enabled() {
            return Verdict::Allow;
        }
        let slot = self.slot(ip, now);
        if ban_until(slot.abuse.load(Ordering::Relaxed)) > now {
            return Verdict::Banned;
        }
        if self.rate == 0 {
            return Verdict::Allow;
        }
        for _ in 0..CAS_TRIES {
            let old = slot.bucket.load(Ordering::Relaxed);
            let (tokens, at) = ((old >> 32) as u32, old as u32);
            let elapsed = now.saturating_sub(at);
            let tokens = if elapsed == 0 {
                tokens
            } else {
                (u64::from(tokens) + u64::from(self.rate) * u64::from(elapsed))
                    .min(u64::from(self.burst)) as u32
            };
            let Some(left) = tokens.checked_sub(1) else {
                return Verdict::Limited;
            };
            let new = bucket(left, now.max(at));
            if slot
                .bucket
                .compare_exchange_weak(old, new, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                return Verdict::Allow;
            }
        }
        Verdict::Allow
    }

    /// Records one bad request from `ip` (a wrong connection id, a malformed request); bans the
    /// address when it reaches the threshold, and then returns true (the caller counts `bans`).
    pub fn strike(&self, ip: IpAddr, now: u32) -> bool {
        if self.ban_threshold == 0 {
            return false;
        }
        let slot = self.slot(ip, now);
        for _ in 0..CAS_TRIES {
            let old = slot.abuse.load(Ordering::Relaxed);
            if ban_until(old) > now {
                return false;
            }
            let (strikes, window) = ((old >> 48) as u16, (old >> 32) as u16);
            let in_window =
                strikes > 0 && u32::from((now as u16).wrapping_sub(window)) < self.ban_window;
            let strikes = if in_window { u32::from(strikes) + 1 } else { 1 };
            let window = if in_window { window } else { now as u16 };
            let (new, banned) = if strikes >= self.ban_threshold {
                (abuse(0, 0, now.saturating_add(self.ban_secs)), true)
            } else {
                (abuse(strikes as u16, window, 0), false)
            };
            if slot
                .abuse
                .compare_exchange_weak(old, new, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                return banned;
            }
        }
        false
    }

    /// Walks the table (for `/metrics`, every few seconds; never on a request path).
    pub fn fill(&self, now: u32) -> TableFill {
        let mut f = TableFill {
            capacity: self.slots.len(),
            ..TableFill::default()
        };
        for s in self.slots.iter() {
            if s.key.load(Ordering::Relaxed) != 0 {
                f.used += 1;
                f.banned += usize::from(ban_until(s.abuse.load(Ordering::Relaxed)) > now);
            }
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limiter(rate: u32, burst: u32, threshold: u32) -> Limiter {
        Limiter::new(&LimitsConfig {
            requests_per_sec: rate,
            burst,
            ban_threshold: threshold,
            ban_window_secs: 10,
            ban_secs: 30,
            table_entries: 1024,
            ..LimitsConfig::default()
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn burst_then_rate_per_second() {
        let l = limiter(10, 50, 0);
        let a = ip("192.0.2.1");
        let allowed = (0..200)
            .filter(|_| l.check(a, 1000) == Verdict::Allow)
            .count();
        assert_eq!(allowed, 50);
        // One second later: `rate` more.
        let allowed = (0..200)
            .filter(|_| l.check(a, 1001) == Verdict::Allow)
            .count();
        assert_eq!(allowed, 10);
        // A long pause refills to `burst`, not beyond.
        let allowed = (0..200)
            .filter(|_| l.check(a, 5000) == Verdict::Allow)
            .count();
        assert_eq!(allowed, 50);
        // Another address is untouched; an IPv6 /64 is one source.
        assert_eq!(l.check(ip("192.0.2.2"), 5000), Verdict::Allow);
        let n = (0..60)
            .filter(|i| l.check(ip(&format!("2001:db8::{i:x}")), 5000) == Verdict::Allow)
            .count();
        assert_eq!(n, 50);
        assert_eq!(l.check(ip("2001:db8:0:1::1"), 5000), Verdict::Allow);
        // IPv4-mapped IPv6 is the IPv4 address.
        assert_eq!(l.check(ip("::ffff:192.0.2.1"), 5000), Verdict::Limited);
    }

    #[test]
    fn strikes_ban_for_a_while_then_expire() {
        let l = limiter(0, 0, 5);
        let a = ip("198.51.100.1");
        for _ in 0..4 {
            assert!(!l.strike(a, 100));
        }
        assert_eq!(l.check(a, 100), Verdict::Allow);
        // Strikes outside the window start a new one.
        assert!(!l.strike(a, 111));
        assert_eq!(l.check(a, 111), Verdict::Allow);
        for _ in 0..3 {
            assert!(!l.strike(a, 112));
        }
        assert!(l.strike(a, 112), "the fifth strike in the window bans");
        assert!(!l.strike(a, 112), "a banned address is not banned again");
        assert_eq!(l.check(a, 112), Verdict::Banned);
        assert_eq!(l.check(a, 141), Verdict::Banned);
        assert_eq!(l.check(a, 142), Verdict::Allow);
        assert_eq!(l.fill(112).banned, 1);
    }

    #[test]
    fn a_flood_from_a_million_addresses_never_grows_the_table_or_evicts_a_busy_ban() {
        let l = limiter(5, 5, 3);
        let bad = ip("203.0.113.9");
        for _ in 0..3 {
            let _ = l.strike(bad, 10);
        }
        let capacity = l.fill(10).capacity;
        for i in 0..1_000_000u32 {
            let a = IpAddr::from((0x0a00_0000u32 + i).to_be_bytes());
            l.check(a, 10);
        }
        let f = l.fill(10);
        assert_eq!(f.capacity, capacity);
        assert_eq!(f.capacity, 1024);
        assert!(f.used <= f.capacity);
        // A ban survives unless both of a newcomer's slots hold bans: with one ban, always.
        assert_eq!(l.check(bad, 10), Verdict::Banned);
        // A fresh address starts with a full bucket.
        assert_eq!(l.check(ip("192.0.2.200"), 10), Verdict::Allow);
    }

    #[test]
    fn off_is_a_no_op() {
        let l = limiter(0, 0, 0);
        assert!(!l.enabled());
        for _ in 0..10_000 {
            assert_eq!(l.check(ip("192.0.2.1"), 1), Verdict::Allow);
            assert!(!l.strike(ip("192.0.2.1"), 1));
        }
        assert_eq!(l.fill(1).used, 0);
    }

    #[test]
    fn defaults_validate_and_bad_values_are_named() {
        assert!(LimitsConfig::default().validate().is_empty());
        let bad = LimitsConfig {
            requests_per_sec: 10,
            burst: 5,
            ipv6_prefix_len: 0,
            ban_threshold: 70_000,
            ban_window_secs: 0,
            ban_secs: 0,
            table_entries: 10,
        };
        let p = bad.validate();
        assert_eq!(p.len(), 6, "{p:?}");
        for name in [
            "burst",
            "ipv6_prefix_len",
            "ban_threshold",
            "ban_window_secs",
            "ban_secs",
            "table_entries",
        ] {
            assert!(
                p.iter().any(|m| m.starts_with(&format!("limits.{name}"))),
                "{name}: {p:?}"
            );
        }
    }

    proptest! {
        /// Whatever the order of requests from a few addresses over a few seconds, each address
        /// is allowed exactly what a token bucket allows: min(burst, its own requests) in the
        /// first second, and never more than burst + rate * (seconds - 1) in all.
        #[test]
        fn matches_a_reference_bucket(reqs in proptest::collection::vec((0u8..4, 0u32..4), 0..400)) {
            let (rate, burst) = (3u32, 7u32);
            let l = limiter(rate, burst, 0);
            let mut reqs = reqs;
            reqs.sort_by_key(|r| r.1);
            let mut model: [Option<(u32, u32)>; 4] = [None; 4];
            for (who, t) in reqs {
                let t = t + 1000;
                let a = IpAddr::from([192, 0, 2, who]);
                let (tokens, at) = model[who as usize].unwrap_or((burst, t));
                let tokens = (tokens + rate * (t - at)).min(burst);
                let want = if tokens > 0 { Verdict::Allow } else { Verdict::Limited };
                model[who as usize] = Some((tokens.saturating_sub(1), t));
                prop_assert_eq!(l.check(a, t), want);
            }
        }
    }
}
