//! Which IP address a request comes from.
//!
//! - The socket peer address (v4-mapped IPv6 canonicalised to IPv4), unless
//! - the peer is a trusted proxy (`trusted_proxies`): then `X-Forwarded-For` is walked from the
//!   right (last header line first, last entry first) and the first address that is not itself a
//!   trusted proxy is the client. If every entry is trusted, the leftmost one is taken; an entry
//!   that is not an IP address stops the walk and the last trusted hop is taken (we cannot know
//!   who is behind garbage).
//! - `ip=` is honoured only when `allow_ip_param` is set and the socket peer is loopback or a
//!   trusted proxy; it then overrides the address stored for the peer (not the BEP 24
//!   `external ip`, which stays the address we saw).

use std::net::{IpAddr, SocketAddr};

use tracker_core::canonical_ip;

use crate::config::HttpConfig;
use crate::headers::{self, Headers};

/// The client address the tracker sees (used for `external ip`, and stored unless `ip=` applies).
pub fn resolve<H: Headers + ?Sized>(peer: SocketAddr, headers: &H, config: &HttpConfig) -> IpAddr {
    let peer = canonical_ip(peer.ip());
    if config.trusted_proxies.is_empty() || !config.is_trusted_proxy(peer) {
        return peer;
    }
    let mut last_trusted = peer;
    for value in headers.all("x-forwarded-for").rev() {
        let Some(text) = headers::text(value) else {
            return last_trusted;
        };
        for entry in text.rsplit(',') {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let Some(ip) = parse_entry(entry) else {
                return last_trusted;
            };
            if !config.is_trusted_proxy(ip) {
                return ip;
            }
            last_trusted = ip;
        }
    }
    last_trusted
}

/// An `X-Forwarded-For` entry: a bare address, or `[v6]:port` / `v4:port` as some proxies write.
fn parse_entry(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(canonical_ip(ip));
    }
    s.parse::<SocketAddr>().ok().map(|a| canonical_ip(a.ip()))
}

/// The address to store for the peer: `ip=` if allowed for this source, else `seen`.
pub fn peer_ip(
    peer: SocketAddr,
    seen: IpAddr,
    ip_param: Option<IpAddr>,
    config: &HttpConfig,
) -> IpAddr {
    match ip_param {
        Some(ip) if config.allow_ip_param => {
            let src = canonical_ip(peer.ip());
            if src.is_loopback() || config.is_trusted_proxy(src) {
                canonical_ip(ip)
            } else {
                seen
            }
        }
        _ => seen,
    }
}

#[cfg(test)]
mod tests {
    use hyper::HeaderMap;
    use hyper::header::HeaderName;

    static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
    use hyper::header::HeaderValue;

    use super::*;
    use crate::config::Cidr;

    fn cfg(proxies: &[&str]) -> HttpConfig {
        HttpConfig {
            trusted_proxies: proxies.iter().map(|p| p.parse::<Cidr>().unwrap()).collect(),
            ..Default::default()
        }
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(&X_FORWARDED_FOR, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_the_header() {
        let c = cfg(&["10.0.0.0/8"]);
        let ip = resolve(sa("1.2.3.4:5"), &xff(&["9.9.9.9"]), &c);
        assert_eq!(ip, "1.2.3.4".parse::<IpAddr>().unwrap());
        let ip = resolve(
            sa("[::ffff:1.2.3.4]:5"),
            &HeaderMap::new(),
            &HttpConfig::default(),
        );
        assert_eq!(ip, "1.2.3.4".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn trusted_peer_walks_from_the_right() {
        let c = cfg(&["10.0.0.0/8", "127.0.0.1"]);
        let h = xff(&["6.6.6.6, 7.7.7.7", "10.1.1.1, 8.8.8.8, 10.2.2.2"]);
        assert_eq!(
            resolve(sa("10.0.0.1:1"), &h, &c),
            "8.8.8.8".parse::<IpAddr>().unwrap()
        );
        let h = xff(&["6.6.6.6, 7.7.7.7", "10.1.1.1"]);
        assert_eq!(
            resolve(sa("127.0.0.1:1"), &h, &c),
            "7.7.7.7".parse::<IpAddr>().unwrap()
        );
        // All trusted: the leftmost.
        let h = xff(&["10.9.9.9, 10.1.1.1"]);
        assert_eq!(
            resolve(sa("10.0.0.1:1"), &h, &c),
            "10.9.9.9".parse::<IpAddr>().unwrap()
        );
        // Garbage stops the walk at the last trusted hop.
        let h = xff(&["5.5.5.5, garbage, 10.1.1.1"]);
        assert_eq!(
            resolve(sa("10.0.0.1:1"), &h, &c),
            "10.1.1.1".parse::<IpAddr>().unwrap()
        );
        // No header: the proxy itself.
        assert_eq!(
            resolve(sa("10.0.0.1:1"), &HeaderMap::new(), &c),
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
        // Ports and brackets, v6.
        let h = xff(&["[2001:db8::1]:443"]);
        assert_eq!(
            resolve(sa("10.0.0.1:1"), &h, &c),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn ip_param_only_when_allowed_and_trusted() {
        let wanted: IpAddr = "5.6.7.8".parse().unwrap();
        let param = Some(wanted);
        let seen: IpAddr = "1.2.3.4".parse().unwrap();
        let off = cfg(&["10.0.0.0/8"]);
        assert_eq!(peer_ip(sa("127.0.0.1:1"), seen, param, &off), seen);
        let on = HttpConfig {
            allow_ip_param: true,
            ..off
        };
        assert_eq!(peer_ip(sa("127.0.0.1:1"), seen, param, &on), wanted);
        assert_eq!(peer_ip(sa("10.1.1.1:1"), seen, param, &on), wanted);
        assert_eq!(peer_ip(sa("1.2.3.4:1"), seen, param, &on), seen);
        assert_eq!(peer_ip(sa("127.0.0.1:1"), seen, None, &on), seen);
    }
}
