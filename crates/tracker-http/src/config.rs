//! The `[http]` and `[https]` sections of `config.toml`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use documented::{Documented, DocumentedFields};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Smallest read buffer hyper accepts (`http1::Builder::max_buf_size` panics below it).
const HYPER_MIN_BUF: usize = 8192;

/// hyper refuses request targets longer than this with `414` before we see them, so a request
/// head limit above it would let some over-long queries get a `414` instead of our failure reason.
pub const MAX_HEAD_BYTES_LIMIT: usize = 65_000;

/// Upper bound of `max_connections`.
const MAX_CONNECTIONS_LIMIT: usize = 1_000_000;
/// Upper bound of every timeout, in milliseconds (one hour).
const MAX_TIMEOUT_MS: u64 = 3_600_000;

/// The HTTP tracker (BEP 3, 23, 7, 48): its listeners, request limits and timeouts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Documented, DocumentedFields)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Addresses to listen on (TCP). The daemon binds one listener per entry; an empty list
    /// disables the HTTP tracker. IPv6 addresses are bound IPv6-only.
    pub bind: Vec<SocketAddr>,
    /// Most peers in one announce reply (IPv4 and IPv6 together), whatever `numwant` asks for,
    /// in peers.
    pub max_numwant: u32,
    /// Most `info_hash` values in one scrape (BEP 48), in hashes; more is refused with a failure
    /// reason.
    pub max_scrape: usize,
    /// Longest query string (the part after `?`) accepted, in bytes, at least 64. Longer ones
    /// are answered with a failure reason. A full 74-hash scrape, every byte escaped, is about
    /// 5.2 KiB.
    pub max_query_bytes: usize,
    /// Longest request head (request line plus headers) read from a client, in bytes. A client that
    /// sends more without finishing its head gets a bencoded failure reason and the connection is
    /// closed. 1024 to 65000 (hyper answers `414` to request targets above 65534 bytes on its
    /// own).
    pub max_head_bytes: usize,
    /// Most client connections open at once per listener, 1 to 1000000. When reached, a newly
    /// accepted client makes the oldest connection that is waiting for a request (idle, silent or
    /// mid-head) close; if every connection is being answered, it waits for one to finish.
    pub max_connections: usize,
    /// Most connections open at once from one client address (IPv4 /32, IPv6
    /// `limits.ipv6_prefix_len`), 1 to 1000000 (above `max_connections` it has no effect). One more
    /// is accepted and closed at once, so that a single address cannot hold the listener's slots.
    /// Trusted proxies are exempt.
    pub max_connections_per_ip: usize,
    /// Time a client has to send a whole request head, in milliseconds, 1 to 3600000: from the
    /// accept for a connection's first request, from the first byte after the previous response for
    /// later ones. No byte, not even a blank line, restarts it; the connection is closed after that
    /// (slow-loris guard). On plain HTTP listeners it is also the kernel's `TCP_DEFER_ACCEPT` wait
    /// (whole seconds, rounded up): a connection is accepted once its first bytes arrive, so one
    /// that says nothing waits in the kernel's queue, not in a connection slot.
    pub header_read_timeout_ms: u64,
    /// Time a keep-alive connection may sit between requests before it is closed, in seconds, 1 to
    /// 3600.
    pub idle_timeout_secs: u64,
    /// Reverse proxies whose `X-Forwarded-For` header is believed: CIDR strings (`10.0.0.0/8`,
    /// `::1/128`) or plain addresses. For a request from one of them, the client IP is the
    /// rightmost `X-Forwarded-For` entry that is not itself a trusted proxy.
    pub trusted_proxies: Vec<Cidr>,
    /// Whether the `ip=` announce parameter is honoured, and then only for requests whose socket
    /// peer is loopback or a trusted proxy. Otherwise it is ignored.
    pub allow_ip_param: bool,
    /// A scrape without `info_hash` (a full scrape): "off" answers it with a failure reason;
    /// "public" answers every torrent's counts (a BEP 48 `files` dict, gzip-encoded for clients
    /// that accept it); "token" does so only for requests with `Authorization: Bearer
    /// <admin.token>`. Always refused in private mode. The reply is built at most once every
    /// `full_scrape_cache_secs`, never per request, in the background: until the first build
    /// has finished, a full scrape is asked to retry in a few seconds.
    pub full_scrape: FullScrape,
    /// How old a full-scrape reply may get before it is rebuilt, in seconds, 1 to 3600. Its
    /// memory is the plain and the gzip body, 70 and about 22 bytes per torrent held (92 MB at
    /// 1M torrents), and about twice that while one is rebuilt.
    pub full_scrape_cache_secs: u32,
    /// After the shutdown signal, how long open connections get to finish their current request
    /// before they are dropped, in milliseconds, at most 3600000.
    pub shutdown_timeout_ms: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            bind: vec![
                SocketAddr::from(([0, 0, 0, 0], 6969)),
                SocketAddr::from(([0u16; 8], 6969)),
            ],
            max_numwant: 200,
            max_scrape: 74,
            max_query_bytes: 8192,
            max_head_bytes: 16384,
            max_connections: 10_000,
            max_connections_per_ip: 256,
            header_read_timeout_ms: 5000,
            idle_timeout_secs: 60,
            trusted_proxies: Vec::new(),
            allow_ip_param: false,
            full_scrape: FullScrape::Off,
            full_scrape_cache_secs: 60,
            shutdown_timeout_ms: 5000,
        }
    }
}

/// The HTTPS tracker: the same tracker as `[http]` (same handler, answers, counters, and the
/// `[http]` limits, timeouts and trusted proxies) over TLS (rustls; TLS 1.3 and 1.2; HTTP/1.1).
/// SIGHUP re-reads `cert_file` and `key_file`: new connections get the new certificate, open
/// ones and the swarms are untouched; files that do not load are refused with an error line and
/// the old certificate is kept.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Documented, DocumentedFields,
)]
#[serde(default, deny_unknown_fields)]
pub struct HttpsConfig {
    /// Addresses to listen on (TCP), e.g. `["0.0.0.0:443", "[::]:443"]`. Empty disables HTTPS.
    /// Changing it needs a restart. Each listener has its own `http.max_connections` slots.
    pub bind: Vec<SocketAddr>,
    /// The certificate chain, PEM: the server's certificate first, then its intermediates
    /// (e.g. certbot's `fullchain.pem`), at most 1 MiB. Required when `bind` is set. Re-read on
    /// SIGHUP.
    pub cert_file: PathBuf,
    /// The certificate's private key, PEM (PKCS#8, RSA or EC), at most 1 MiB. Required when
    /// `bind` is set. Re-read on SIGHUP.
    pub key_file: PathBuf,
}

impl HttpsConfig {
    /// Checks what serde cannot: with a `bind`, both files are named. Whether they load is
    /// [`crate::tls::load_certified_key`]'s to say.
    pub fn validate(&self) -> Result<(), HttpConfigError> {
        if self.bind.is_empty() {
            return Ok(());
        }
        for (field, path) in [("cert_file", &self.cert_file), ("key_file", &self.key_file)] {
            if path.as_os_str().is_empty() {
                return Err(HttpConfigError::Missing {
                    field,
                    reason: "must be set when https.bind is not empty",
                });
            }
        }
        Ok(())
    }
}

/// Why an [`HttpConfig`] or [`HttpsConfig`] cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpConfigError {
    /// A numeric setting is out of its range.
    #[error("http.{field}: {reason}")]
    OutOfRange {
        /// The config key.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A required `[https]` setting is empty.
    #[error("https.{field}: {reason}")]
    Missing {
        /// The config key.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Who gets a full scrape (`[http] full_scrape`). Also read from the boolean of earlier
/// versions: `false` is "off"; `true` (which those refused) names the choices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FullScrape {
    /// Nobody: a scrape without `info_hash` gets a failure reason.
    #[default]
    Off,
    /// Everybody.
    Public,
    /// Requests carrying the admin token as a bearer token.
    Token,
}

impl<'de> Deserialize<'de> for FullScrape {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Text(String),
        }
        let choices = r#"expected "off", "public" or "token""#;
        match Raw::deserialize(d)? {
            Raw::Bool(false) => Ok(FullScrape::Off),
            Raw::Bool(true) => Err(serde::de::Error::custom(format!(
                "full_scrape is no longer a boolean: {choices}"
            ))),
            Raw::Text(t) => match t.as_str() {
                "off" => Ok(FullScrape::Off),
                "public" => Ok(FullScrape::Public),
                "token" => Ok(FullScrape::Token),
                other => Err(serde::de::Error::custom(format!(
                    "unknown full_scrape {other:?}: {choices}"
                ))),
            },
        }
    }
}

impl HttpConfig {
    /// Checks the ranges serde cannot express. The daemon calls this after parsing
    /// (`--check-config`); [`crate::serve`] calls it too and refuses to start on an error.
    pub fn validate(&self) -> Result<(), HttpConfigError> {
        let range = |field, ok: bool, reason| {
            if ok {
                Ok(())
            } else {
                Err(HttpConfigError::OutOfRange { field, reason })
            }
        };
        range("max_scrape", self.max_scrape >= 1, "must be at least 1")?;
        range(
            "max_query_bytes",
            self.max_query_bytes >= 64,
            "must be at least 64",
        )?;
        range(
            "max_head_bytes",
            (1024..=MAX_HEAD_BYTES_LIMIT).contains(&self.max_head_bytes),
            "must be between 1024 and 65000",
        )?;
        range(
            "max_connections",
            (1..=MAX_CONNECTIONS_LIMIT).contains(&self.max_connections),
            "must be between 1 and 1000000",
        )?;
        range(
            "max_connections_per_ip",
            (1..=MAX_CONNECTIONS_LIMIT).contains(&self.max_connections_per_ip),
            "must be between 1 and 1000000",
        )?;
        range(
            "header_read_timeout_ms",
            (1..=MAX_TIMEOUT_MS).contains(&self.header_read_timeout_ms),
            "must be between 1 and 3600000 (one hour)",
        )?;
        range(
            "idle_timeout_secs",
            (1..=MAX_TIMEOUT_MS / 1000).contains(&self.idle_timeout_secs),
            "must be between 1 and 3600 (one hour)",
        )?;
        range(
            "shutdown_timeout_ms",
            self.shutdown_timeout_ms <= MAX_TIMEOUT_MS,
            "must be at most 3600000 (one hour)",
        )?;
        range(
            "full_scrape_cache_secs",
            (1..=3600).contains(&self.full_scrape_cache_secs),
            "must be between 1 and 3600 (one hour)",
        )?;
        Ok(())
    }

    /// The read buffer limit handed to hyper: above our own head limit, so that our limit
    /// (which answers with a failure reason) always trips first.
    pub(crate) fn hyper_buf_size(&self) -> usize {
        (self.max_head_bytes + HYPER_MIN_BUF).max(HYPER_MIN_BUF)
    }

    /// `header_read_timeout_ms` as a duration (clamped to its valid range).
    pub(crate) fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms.clamp(1, MAX_TIMEOUT_MS))
    }

    /// `idle_timeout_secs` as a duration (clamped to its valid range).
    pub(crate) fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs.clamp(1, MAX_TIMEOUT_MS / 1000))
    }

    /// `shutdown_timeout_ms` as a duration (clamped to its valid range).
    pub(crate) fn shutdown_timeout(&self) -> Duration {
        Duration::from_millis(self.shutdown_timeout_ms.min(MAX_TIMEOUT_MS))
    }

    /// Whether `ip` (canonical form) is inside one of the trusted proxy networks.
    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|c| c.contains(ip))
    }
}

/// An IP network in CIDR notation (`192.168.0.0/16`, `fd00::/8`); a plain address means that
/// one address (`/32` or `/128`). Written back in CIDR notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr(pub ipnet::IpNet);

/// A trusted proxy entry that is neither an address nor a CIDR network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid CIDR network {0:?} (expected e.g. \"10.0.0.0/8\", \"::1/128\" or \"127.0.0.1\")")]
pub struct CidrError(pub String);

impl Cidr {
    /// Whether `ip` is inside the network. A v4-mapped IPv6 address matches as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&tracker_core::canonical_ip(ip))
    }
}

impl FromStr for Cidr {
    type Err = CidrError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if let Ok(net) = t.parse::<ipnet::IpNet>() {
            return Ok(Self(net.trunc()));
        }
        match t.parse::<IpAddr>() {
            Ok(ip) => Ok(Self(ipnet::IpNet::from(tracker_core::canonical_ip(ip)))),
            Err(_) => Err(CidrError(s.to_owned())),
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_round_trip_through_toml() {
        let c = HttpConfig::default();
        c.validate().unwrap();
        let text = toml::to_string(&c).unwrap();
        let back: HttpConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, c);
        let empty: HttpConfig = toml::from_str("").unwrap();
        assert_eq!(empty, c);
    }

    #[test]
    fn https_needs_both_files_only_with_a_bind() {
        let c = HttpsConfig::default();
        assert!(c.bind.is_empty());
        c.validate().unwrap();
        let c: HttpsConfig =
            toml::from_str("bind = [\"127.0.0.1:443\"]\ncert_file = \"c.pem\"").unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert_eq!(
            e,
            "https.key_file: must be set when https.bind is not empty"
        );
        let c = HttpsConfig {
            key_file: "k.pem".into(),
            ..c
        };
        c.validate().unwrap();
        assert!(toml::from_str::<HttpsConfig>("cert = \"c.pem\"").is_err());
    }

    #[test]
    fn trusted_proxies_parse_and_match() {
        let c: HttpConfig =
            toml::from_str(r#"trusted_proxies = ["10.0.0.0/8", "::1", "192.168.1.7/24"]"#).unwrap();
        assert!(c.is_trusted_proxy("10.2.3.4".parse().unwrap()));
        assert!(c.is_trusted_proxy("::ffff:10.2.3.4".parse().unwrap()));
        assert!(c.is_trusted_proxy("::1".parse().unwrap()));
        assert!(c.is_trusted_proxy("192.168.1.200".parse().unwrap()));
        assert!(!c.is_trusted_proxy("11.0.0.1".parse().unwrap()));
        assert!(!c.is_trusted_proxy("::2".parse().unwrap()));
        assert_eq!(c.trusted_proxies[2].to_string(), "192.168.1.0/24");
        let text = toml::to_string(&c).unwrap();
        assert!(text.contains("\"::1/128\""), "{text}");
    }

    #[test]
    fn bad_values_are_rejected() {
        let e = toml::from_str::<HttpConfig>(r#"trusted_proxies = ["10.0.0.0/33"]"#).unwrap_err();
        assert!(e.to_string().contains("invalid CIDR"), "{e}");
        assert!(toml::from_str::<HttpConfig>(r#"trusted_proxies = ["proxy.local"]"#).is_err());
        assert!(toml::from_str::<HttpConfig>("max_numwnat = 3").is_err());
        let c = HttpConfig {
            max_head_bytes: 100_000,
            ..Default::default()
        };
        assert!(c.validate().is_err());
        let c = HttpConfig {
            full_scrape_cache_secs: 0,
            ..Default::default()
        };
        assert!(c.validate().is_err());
        let c: HttpConfig = toml::from_str("full_scrape = \"token\"").unwrap();
        assert_eq!(c.full_scrape, FullScrape::Token);
        let e = toml::from_str::<HttpConfig>("full_scrape = true").unwrap_err();
        assert!(e.to_string().contains("\"public\""), "{e}");
        // The boolean of earlier versions' shipped config.toml still loads.
        let c: HttpConfig = toml::from_str("full_scrape = false").unwrap();
        assert_eq!(c.full_scrape, FullScrape::Off);
        assert!(toml::from_str::<HttpConfig>("full_scrape = \"all\"").is_err());
        let c = HttpConfig {
            max_scrape: 0,
            ..Default::default()
        };
        assert!(c.validate().is_err());
        let c = HttpConfig {
            idle_timeout_secs: u64::MAX,
            ..Default::default()
        };
        assert!(c.validate().is_err());
        assert_eq!(c.idle_timeout(), Duration::from_secs(3600));
        let c = HttpConfig {
            max_connections: usize::MAX,
            ..Default::default()
        };
        assert!(c.validate().is_err());
    }
}
