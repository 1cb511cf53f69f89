//! Stateless, signed UDP connection ids (BEP 15, DESIGN.md section 4).
//!
//! # The threat
//!
//! UDP source addresses can be forged. Without connection ids, anyone could announce on behalf
//! of any IP (injecting peers that point at a victim) or make the tracker send announce replies
//! (up to 1220 bytes for a 98-byte request) to a victim: a reflection amplifier. BEP 15's
//! connect handshake closes both: an announce or scrape is only acted on if it carries an id
//! the tracker sent to that same IP recently, which a spoofer never sees.
//!
//! # Layout
//!
//! ```text
//! bytes 0..4  issue time, unix seconds, big-endian
//! bytes 4..8  first 4 bytes of SipHash-2-4(key, seconds_be || IPv6 form of the source IP)
//! ```
//!
//! The IPv6 form of an IPv4 address is its v4-mapped form (`::ffff:a.b.c.d`), so an IPv4
//! client is the same whichever socket family it reached us on. The port is not signed: NAT
//! rebinding may change it between connect and announce. Nothing is stored per client.
//!
//! An id is valid from its issue time up to issue time + `lifetime` seconds; issue times more
//! than [`MAX_FUTURE_SECS`] ahead of our clock are refused (they can only be forged, or come
//! from another instance whose clock runs ahead).
//!
//! # Forging probability
//!
//! SipHash-2-4 with a secret 128-bit key is a pseudo-random function, so without the key each
//! guessed tag for a given (seconds, IP) is right with probability 2^-32, independently of
//! previous answers (the tracker never reveals tags of IPs the attacker does not receive at).
//! Choosing among the `lifetime + MAX_FUTURE_SECS` acceptable timestamps does not help: every
//! guess is still one 2^-32 chance. With q forged packets, P(success) <= q / 2^32: at a
//! sustained 10^6 packets/s that is one expected success per ~72 minutes, and a success buys
//! one spoofed IP for at most `lifetime` seconds, after which the attacker starts over. The key
//! itself cannot be recovered from observed ids faster than by breaking SipHash (2^128 keys).

use std::hash::Hasher;
use std::net::IpAddr;

use siphasher::sip::SipHasher24;

use crate::protocol::ConnectionId;

/// Seconds an id's timestamp may be ahead of our clock (a peer instance's clock, or our coarse
/// clock having just ticked on another worker).
pub const MAX_FUTURE_SECS: u32 = 5;

/// Issues and checks connection ids. Cheap to copy into each worker.
#[derive(Clone)]
pub struct ConnectionValidator {
    key: [u8; 16],
    lifetime: u32,
}

impl std::fmt::Debug for ConnectionValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("ConnectionValidator")
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl ConnectionValidator {
    /// A validator signing with `key`; ids stay valid for `lifetime_secs` seconds.
    pub fn new(key: [u8; 16], lifetime_secs: u32) -> Self {
        Self {
            key,
            lifetime: lifetime_secs,
        }
    }

    #[inline]
    fn tag(&self, secs: [u8; 4], ip: IpAddr) -> [u8; 4] {
        let ip16 = match ip {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            IpAddr::V6(v6) => v6.octets(),
        };
        let mut msg = [0u8; 20];
        msg[..4].copy_from_slice(&secs);
        msg[4..].copy_from_slice(&ip16);
        let mut h = SipHasher24::new_with_key(&self.key);
        h.write(&msg);
        let out = h.finish().to_le_bytes();
        [out[0], out[1], out[2], out[3]]
    }

    /// The id for `ip` at unix time `now`.
    #[inline]
    pub fn issue(&self, ip: IpAddr, now: u32) -> ConnectionId {
        let secs = now.to_be_bytes();
        let tag = self.tag(secs, ip);
        let mut id = [0u8; 8];
        id[..4].copy_from_slice(&secs);
        id[4..].copy_from_slice(&tag);
        ConnectionId(id)
    }

    /// Whether `id` was issued to `ip` at most `lifetime` seconds before `now` (and not more
    /// than [`MAX_FUTURE_SECS`] after it). Constant work whatever the input.
    #[inline]
    pub fn is_valid(&self, id: ConnectionId, ip: IpAddr, now: u32) -> bool {
        let secs = [id.0[0], id.0[1], id.0[2], id.0[3]];
        let issued = u32::from_be_bytes(secs);
        let fresh = issued <= now.saturating_add(MAX_FUTURE_SECS)
            && now <= issued.saturating_add(self.lifetime);
        // Compare the tag even when stale, so timing says nothing about the tag.
        let tag_ok = self.tag(secs, ip) == [id.0[4], id.0[5], id.0[6], id.0[7]];
        fresh & tag_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: u32 = 1_700_000_000;

    fn v() -> ConnectionValidator {
        ConnectionValidator::new([7; 16], 120)
    }

    #[test]
    fn validity_window() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let id = v().issue(ip, NOW);
        assert!(v().is_valid(id, ip, NOW));
        assert!(v().is_valid(id, ip, NOW + 120));
        assert!(!v().is_valid(id, ip, NOW + 121));
        // Our clock a little behind the issuer's: accepted within MAX_FUTURE_SECS.
        assert!(v().is_valid(id, ip, NOW - MAX_FUTURE_SECS));
        assert!(!v().is_valid(id, ip, NOW - MAX_FUTURE_SECS - 1));
    }

    #[test]
    fn wrong_ip_or_key_rejected() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let id = v().issue(ip, NOW);
        assert!(!v().is_valid(id, other, NOW));
        assert!(!ConnectionValidator::new([8; 16], 120).is_valid(id, ip, NOW));
        // The v4-mapped form is the same client.
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert!(v().is_valid(id, mapped, NOW));
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert!(!v().is_valid(id, v6, NOW));
    }

    #[test]
    fn future_timestamp_rejected() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        // Issued (with the right key) far in the future: refused now, valid then.
        let id = v().issue(ip, NOW + 3600);
        assert!(!v().is_valid(id, ip, NOW));
        assert!(v().is_valid(id, ip, NOW + 3600));
        // Rewriting the timestamp of a genuine id breaks the tag.
        let mut forged = v().issue(ip, NOW);
        forged.0[..4].copy_from_slice(&(NOW + 1).to_be_bytes());
        assert!(!v().is_valid(forged, ip, NOW + 1));
    }

    proptest! {
        #[test]
        fn issued_ids_are_valid_and_bound_to_ip_time(
            key in any::<[u8; 16]>(),
            ip in any::<[u8; 16]>(),
            flip in 0usize..64,
            now in 1_000u32..u32::MAX - 1_000,
            age in 0u32..=120,
        ) {
            let val = ConnectionValidator::new(key, 120);
            let ip = IpAddr::from(ip);
            let id = val.issue(ip, now);
            prop_assert!(val.is_valid(id, ip, now + age));
            prop_assert!(!val.is_valid(id, ip, now + 121));
            // Any single bit flipped anywhere makes it invalid (timestamp bits move it out of
            // the window or break the tag; tag bits break the tag).
            let mut bad = id;
            bad.0[flip / 8] ^= 1 << (flip % 8);
            prop_assert!(!val.is_valid(bad, ip, now));
        }
    }
}
