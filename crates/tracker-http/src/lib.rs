//! # tracker-http
//!
//! The HTTP front end of mini-torrust: BEP 3 announce with BEP 23 compact peers, BEP 7
//! `peers6`, BEP 24 `external ip`, and BEP 48 scrape, served by hyper 1.x (HTTP/1.1,
//! keep-alive) on tokio, over plain TCP or TLS (rustls).
//!
//! What lives here: the `[http]` and `[https]` config sections ([`HttpConfig`],
//! [`HttpsConfig`]), the raw-bytes query parser ([`query`]), the bencode reply writer
//! ([`bencode`]), the client-IP rules ([`client_ip`]), routing ([`handler`]) with headers read through [`headers::Headers`], the direct path that
//! answers one-request connections from the accept loop ([`direct`]), request-head framing for
//! the limits ([`head`]), connection slots
//! (`slots`), the per-connection guards (`guard`), TLS for `[https]` ([`tls`]: PEM loading and
//! the certificate swapped on reload), the accept loop of one listener ([`serve`],
//! [`serve_tls`]) and [`HttpServer`], the running tracker on a set of bound listeners (start,
//! `local_addrs`, stop, join: the UDP tracker's shape).
//!
//! What does not: the tracker rules and the swarm store (`tracker-core`), config file parsing,
//! signals and listener binding (the daemon), the access rules and the per-address limiter
//! (tracker-core's; the handler asks them), the admin API.

pub mod bencode;
pub mod client_ip;
pub mod config;
pub mod direct;
pub mod full_scrape;
mod guard;
pub mod handler;
pub mod head;
pub mod headers;
mod lifecycle;
pub mod query;
pub mod server;
mod slots;
pub mod tls;

pub use config::{Cidr, CidrError, FullScrape, HttpConfig, HttpConfigError, HttpsConfig};
pub use lifecycle::{HttpServer, HttpStopper, TlsListeners};
pub use server::{serve, serve_handler, serve_tls};
pub use tls::{TlsCerts, TlsError};
