//! Routing and the request handlers, independent of sockets: method, path, query, headers and
//! peer address in; status and body out.
//!
//! Routes: `/announce`, `/scrape`, `/{passkey}/announce`, `/{passkey}/scrape` (GET or HEAD);
//! everything else is `404`, other methods on a tracker path `405`. In private mode the passkey
//! segment is checked (by tracker-core's access rules) before anything else; whitelist and
//! blacklist refusals come back from the announce itself and from scrape counts.
//!
//! A scrape without `info_hash` is a full scrape: with `[http] full_scrape` on, it is answered
//! from the [`FullScrapeCache`] (gzip when accepted; "token" mode needs the admin token as a
//! bearer token; never in private mode), else with a failure reason.
//!
//! Before routing, every request asks tracker-core's per-address limiter (`[limits]`) about the
//! client address (the one `X-Forwarded-For` names when the peer is a trusted proxy): over its
//! rate or banned, it gets a failure reason and nothing else is done. A malformed tracker query
//! counts towards a ban.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use hyper::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderName, HeaderValue, VARY};
use hyper::{Method, StatusCode};
use tracker_core::{AnnounceRequest, Counters, InfoHash, PeerSink, Protocol, Tracker, Verdict};

use crate::bencode::{self, AnnounceReply, Peers};
use crate::client_ip;
use crate::config::{FullScrape, HttpConfig};
use crate::full_scrape::{self, FullScrapeCache};
use crate::headers::Headers;
use crate::query::{self, QueryError};

/// Where a path leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// `/announce` or `/{passkey}/announce`.
    Announce {
        /// The passkey segment, if any.
        passkey: Option<&'a str>,
    },
    /// `/scrape` or `/{passkey}/scrape`.
    Scrape {
        /// The passkey segment, if any.
        passkey: Option<&'a str>,
    },
    /// Anything else.
    NotFound,
}

/// Routes a request path (without the query).
pub fn route(path: &str) -> Route<'_> {
    let Some(rest) = path.strip_prefix('/') else {
        return Route::NotFound;
    };
    let (passkey, last) = match rest.split_once('/') {
        None => (None, rest),
        Some((key, last)) if !key.is_empty() && !last.contains('/') => (Some(key), last),
        Some(_) => return Route::NotFound,
    };
    match last {
        "announce" => Route::Announce { passkey },
        "scrape" => Route::Scrape { passkey },
        _ => Route::NotFound,
    }
}

/// A reply: status and body (`text/plain`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// 200 for every tracker answer, failures included; 404 / 405 otherwise.
    pub status: StatusCode,
    /// The bencoded body (empty for 404 / 405).
    pub body: Bytes,
    /// Whether `body` is gzip-encoded (a full scrape to a client that accepts it).
    pub gzip: bool,
    /// Whether the body depends on `Accept-Encoding` (every full-scrape reply), so that caches
    /// are told `Vary: accept-encoding`.
    pub vary_encoding: bool,
}

static TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain");
static ACCEPT_ENCODING: HeaderValue = HeaderValue::from_static("accept-encoding");
static GZIP: HeaderValue = HeaderValue::from_static("gzip");

impl Reply {
    /// The headers this reply carries, in the order they are sent, besides the framing ones
    /// hyper adds (`content-length`, `connection`, `date`): `content-type`, then `vary` and
    /// `content-encoding` when they apply. Both front ends send these, hyper's service and the
    /// direct path's writer (`crate::direct::write_head`).
    pub fn headers(&self) -> impl Iterator<Item = (HeaderName, HeaderValue)> + use<> {
        [
            (CONTENT_TYPE, &TEXT_PLAIN, true),
            (VARY, &ACCEPT_ENCODING, self.vary_encoding),
            (CONTENT_ENCODING, &GZIP, self.gzip),
        ]
        .into_iter()
        .filter_map(|(name, value, on)| on.then(|| (name, value.clone())))
    }
}

/// Per-connection buffers, reused by every request on the connection so that the steady state
/// allocates nothing: the peers a swarm hands out, the scrape hashes, and the reply buffer
/// (each reply is split off it; its memory is reclaimed once hyper has sent and dropped it).
#[derive(Debug, Default)]
pub struct Scratch {
    v4: Vec<u8>,
    v6: Vec<u8>,
    ids_v4: Vec<[u8; 20]>,
    ids_v6: Vec<[u8; 20]>,
    hashes: Vec<InfoHash>,
    out: BytesMut,
}

/// Collects the peers of one announce into the scratch buffers.
struct Sink<'a> {
    v4: &'a mut Vec<u8>,
    v6: &'a mut Vec<u8>,
    ids_v4: &'a mut Vec<[u8; 20]>,
    ids_v6: &'a mut Vec<[u8; 20]>,
    keep_ids: bool,
}

impl PeerSink for Sink<'_> {
    fn push_v4(&mut self, addr: &[u8; 6], peer_id: &[u8; 20]) {
        self.v4.extend_from_slice(addr);
        if self.keep_ids {
            self.ids_v4.push(*peer_id);
        }
    }
    fn push_v6(&mut self, addr: &[u8; 18], peer_id: &[u8; 20]) {
        self.v6.extend_from_slice(addr);
        if self.keep_ids {
            self.ids_v6.push(*peer_id);
        }
    }
    fn wants_peer_ids(&self) -> bool {
        self.keep_ids
    }
}

/// What every connection of one server shares.
#[derive(Debug)]
pub struct Handler {
    tracker: Arc<Tracker>,
    config: Arc<HttpConfig>,
    counters: Arc<Counters>,
    full_scrape: Arc<FullScrapeCache>,
    /// The admin token, for `full_scrape = "token"` ("" refuses every full scrape there).
    full_scrape_token: String,
}

impl Handler {
    /// A handler; registers one HTTP counter block with the tracker's statistics.
    pub fn new(tracker: Arc<Tracker>, config: Arc<HttpConfig>) -> Self {
        let counters = tracker.stats().register(Protocol::Http);
        let full_scrape = Arc::new(FullScrapeCache::new(config.full_scrape_cache_secs));
        Self {
            tracker,
            config,
            counters,
            full_scrape,
            full_scrape_token: String::new(),
        }
    }

    /// The bearer token `full_scrape = "token"` asks for (the daemon passes `admin.token`).
    pub fn with_full_scrape_token(mut self, token: &str) -> Self {
        self.full_scrape_token = token.to_owned();
        self
    }

    /// The counter block of this server.
    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// The configuration.
    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    /// The configuration, shared.
    pub fn config_arc(&self) -> &Arc<HttpConfig> {
        &self.config
    }

    /// The tracker this handler answers from.
    pub fn tracker(&self) -> &Arc<Tracker> {
        &self.tracker
    }

    /// Answers one request.
    pub fn handle<H: Headers + ?Sized>(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        headers: &H,
        peer: SocketAddr,
        scratch: &mut Scratch,
    ) -> Reply {
        Counters::inc(&self.counters.requests);
        let seen = client_ip::resolve(peer, headers, &self.config);
        let now = self.tracker.clock().now();
        let refused = match self.tracker.limiter().check(seen, now) {
            Verdict::Allow => None,
            Verdict::Limited => Some((&self.counters.rate_limited, AnnounceFailure::Limited)),
            Verdict::Banned => Some((&self.counters.banned_requests, AnnounceFailure::Banned)),
        };
        if let Some((counter, why)) = refused {
            Counters::inc(counter);
            Counters::inc(&self.counters.errors);
            return self.ok(failure_body(&mut scratch.out, &why));
        }
        let route = route(path);
        if route == Route::NotFound {
            return self.empty(StatusCode::NOT_FOUND);
        }
        if method != Method::GET && method != Method::HEAD {
            return self.empty(StatusCode::METHOD_NOT_ALLOWED);
        }
        let query = query.unwrap_or("").as_bytes();
        let passkey = match route {
            Route::Announce { passkey } | Route::Scrape { passkey } => passkey,
            Route::NotFound => None,
        };
        let result = match self.tracker.check_passkey(passkey.map(str::as_bytes)) {
            Err(e) => Err(AnnounceFailure::Access(e)),
            Ok(()) => match route {
                Route::Announce { .. } => self
                    .announce(query, peer, seen, now, scratch)
                    .map(|b| (b, None)),
                Route::Scrape { .. } => self.scrape(query, headers, now, scratch),
                Route::NotFound => return self.empty(StatusCode::NOT_FOUND),
            },
        };
        let (body, encoding) = match result {
            Ok(body) => body,
            Err(e) => {
                Counters::inc(&self.counters.errors);
                match route {
                    Route::Announce { .. } => Counters::inc(&self.counters.announce_errors),
                    Route::Scrape { .. } => Counters::inc(&self.counters.scrape_errors),
                    Route::NotFound => {}
                }
                if matches!(e, AnnounceFailure::Query(_))
                    && self.tracker.limiter().strike(seen, now)
                {
                    Counters::inc(&self.counters.bans);
                }
                if matches!(
                    e,
                    AnnounceFailure::Access(_)
                        | AnnounceFailure::Rule(tracker_core::AnnounceError::Access(_))
                ) {
                    Counters::inc(&self.counters.access_denied);
                }
                (failure_body(&mut scratch.out, &e), None)
            }
        };
        Reply {
            gzip: encoding == Some(true),
            vary_encoding: encoding.is_some(),
            ..self.ok(body)
        }
    }

    /// A `200` with a bencoded body (a reply or a failure reason), counted in `bytes_out`.
    fn ok(&self, body: Bytes) -> Reply {
        Counters::add(&self.counters.bytes_out, body.len() as u64);
        Reply {
            status: StatusCode::OK,
            body,
            gzip: false,
            vary_encoding: false,
        }
    }

    fn empty(&self, status: StatusCode) -> Reply {
        Counters::inc(&self.counters.errors);
        Reply {
            status,
            body: Bytes::new(),
            gzip: false,
            vary_encoding: false,
        }
    }

    fn announce(
        &self,
        query: &[u8],
        peer: SocketAddr,
        seen: IpAddr,
        now: u32,
        s: &mut Scratch,
    ) -> Result<Bytes, AnnounceFailure> {
        let a = query::parse_announce(query, self.config.max_query_bytes)?;
        let ip = client_ip::peer_ip(peer, seen, a.ip, &self.config);
        let req = AnnounceRequest {
            info_hash: a.info_hash,
            peer_id: a.peer_id,
            ip,
            port: a.port,
            event: a.event,
            left: a.left,
            numwant: a.numwant,
            max_peers: self.config.max_numwant,
            both_families: true,
        };
        s.v4.clear();
        s.v6.clear();
        s.ids_v4.clear();
        s.ids_v6.clear();
        // Without stored ids (`[swarm] keep_peer_ids = false`), a dict list is as with
        // `no_peer_id=1`.
        let keep_ids = !a.compact && !a.no_peer_id && self.tracker.config().swarm.keep_peer_ids;
        let mut sink = Sink {
            v4: &mut s.v4,
            v6: &mut s.v6,
            ids_v4: &mut s.ids_v4,
            ids_v6: &mut s.ids_v6,
            keep_ids,
        };
        let o = self
            .tracker
            .announce(&req, now, &mut sink)
            .map_err(AnnounceFailure::Rule)?;
        Counters::inc(&self.counters.announces);
        Counters::inc(&self.counters.clients[tracker_core::clients::client_family(&a.peer_id.0)]);
        match o.stored {
            tracker_core::Stored::SwarmFull => Counters::inc(&self.counters.peers_not_stored),
            tracker_core::Stored::TorrentLimit => Counters::inc(&self.counters.torrents_not_stored),
            tracker_core::Stored::Stored | tracker_core::Stored::Removed => {}
        }
        let peers = if a.compact {
            Peers::Compact {
                v4: &s.v4,
                v6: &s.v6,
            }
        } else {
            Peers::Dicts {
                v4: &s.v4,
                v6: &s.v6,
                ids_v4: &s.ids_v4,
                ids_v6: &s.ids_v6,
                with_ids: keep_ids,
            }
        };
        let reply = AnnounceReply {
            complete: o.seeders,
            incomplete: o.leechers,
            downloaded: o.downloaded,
            interval: o.interval,
            min_interval: o.min_interval,
            external_ip: seen,
            peers,
        };
        s.out.reserve(bencode::announce_len(&reply));
        bencode::announce(&mut s.out, &reply);
        Ok(s.out.split().freeze())
    }

    fn scrape<H: Headers + ?Sized>(
        &self,
        query: &[u8],
        headers: &H,
        now: u32,
        s: &mut Scratch,
    ) -> Result<(Bytes, Option<bool>), AnnounceFailure> {
        match query::parse_scrape(
            query,
            self.config.max_query_bytes,
            self.config.max_scrape,
            &mut s.hashes,
        ) {
            Err(QueryError::NoHashes) if self.config.full_scrape != FullScrape::Off => {
                return self.full_scrape(headers, now);
            }
            r => r?,
        }
        // A bencode dict has unique keys in sorted order.
        s.hashes.sort_unstable();
        s.hashes.dedup();
        Counters::inc(&self.counters.scrapes);
        s.out.reserve(bencode::scrape_len(s.hashes.len()));
        let tracker = &self.tracker;
        bencode::scrape(
            &mut s.out,
            s.hashes.iter().map(|h| (h, tracker.scrape_one(h, now))),
        );
        Ok((s.out.split().freeze(), None))
    }

    /// Every torrent's counts, from the cache; gzip-encoded when the client accepts it (the
    /// `Some(gzip)` of the result says the reply depends on `Accept-Encoding`).
    fn full_scrape<H: Headers + ?Sized>(
        &self,
        headers: &H,
        now: u32,
    ) -> Result<(Bytes, Option<bool>), AnnounceFailure> {
        if self.tracker.access().config().private {
            return Err(AnnounceFailure::FullScrape(MSG_FULL_SCRAPE_PRIVATE));
        }
        if self.config.full_scrape == FullScrape::Token
            && !full_scrape::bearer_matches(headers, &self.full_scrape_token)
        {
            return Err(AnnounceFailure::FullScrape(MSG_FULL_SCRAPE_TOKEN));
        }
        let Some(bodies) = self.full_scrape.get(&self.tracker, now) else {
            return Err(AnnounceFailure::FullScrape(MSG_FULL_SCRAPE_BUILDING));
        };
        Counters::inc(&self.counters.scrapes);
        Ok(if full_scrape::accepts_gzip(headers) {
            (bodies.gzip.clone(), Some(true))
        } else {
            (bodies.plain.clone(), Some(false))
        })
    }
}

/// The failure reason of a full scrape in private mode.
pub const MSG_FULL_SCRAPE_PRIVATE: &str = "full scrape is not available on a private tracker";
/// The failure reason of a full scrape before the first build has finished.
pub const MSG_FULL_SCRAPE_BUILDING: &str = "full scrape is being prepared; retry in a few seconds";
/// The failure reason of a full scrape without the token in `full_scrape = "token"` mode.
pub const MSG_FULL_SCRAPE_TOKEN: &str = "full scrape needs the admin token (Authorization: Bearer)";

/// Why a tracker request failed: the text is the failure reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum AnnounceFailure {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Rule(tracker_core::AnnounceError),
    #[error(transparent)]
    Access(tracker_core::AccessError),
    /// Over `limits.requests_per_sec`.
    #[error("rate limited: too many requests from your address; retry later")]
    Limited,
    /// Banned by `limits.ban_threshold`.
    #[error("banned for a while: too many bad requests from your address")]
    Banned,
    /// A full scrape this request may not have.
    #[error("{0}")]
    FullScrape(&'static str),
}

fn failure_body(out: &mut BytesMut, e: &dyn std::fmt::Display) -> Bytes {
    out.reserve(300);
    bencode::failure(out, e);
    out.split().freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::HeaderMap;

    #[test]
    fn routes() {
        assert_eq!(route("/announce"), Route::Announce { passkey: None });
        assert_eq!(route("/scrape"), Route::Scrape { passkey: None });
        assert_eq!(
            route("/abc123/announce"),
            Route::Announce {
                passkey: Some("abc123")
            }
        );
        assert_eq!(
            route("/abc123/scrape"),
            Route::Scrape {
                passkey: Some("abc123")
            }
        );
        for p in [
            "/",
            "",
            "/announce/",
            "//announce",
            "/a/b/announce",
            "/announces",
            "/x/y",
            "announce",
        ] {
            assert_eq!(route(p), Route::NotFound, "{p}");
        }
    }

    #[test]
    fn failures_are_200_and_store_nothing() {
        let tracker = Arc::new(Tracker::new(Default::default()));
        let h = Handler::new(Arc::clone(&tracker), Arc::new(HttpConfig::default()));
        let mut s = Scratch::default();
        let peer: SocketAddr = "1.2.3.4:5".parse().unwrap();
        let r = h.handle(
            &Method::GET,
            "/announce",
            Some("port=1"),
            &HeaderMap::new(),
            peer,
            &mut s,
        );
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(&r.body[..], b"d14:failure reason17:missing info_hashe");
        let r = h.handle(&Method::GET, "/nope", None, &HeaderMap::new(), peer, &mut s);
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = h.handle(
            &Method::POST,
            "/announce",
            None,
            &HeaderMap::new(),
            peer,
            &mut s,
        );
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(tracker.torrent_count(), 0);
        let stats = tracker.stats().read().http;
        assert_eq!((stats.requests, stats.errors, stats.announces), (3, 3, 0));
    }

    proptest::proptest! {
        #[test]
        fn any_query_gets_a_bencoded_200_and_failures_store_nothing(
            q in "(info_hash=[%A-Fa-f0-9a-z]{0,64}|peer_id=[%A-Za-z0-9+]{0,64}|port=-?[0-9]{0,6}|left=-?[0-9a-z]{0,4}|event=[a-z]{0,9}|numwant=-?[0-9]{0,12}|compact=[01]|[a-z_]{0,8}=?[%a-z0-9]{0,8})(&(info_hash=[%A-Fa-f0-9a-z]{0,64}|peer_id=[%A-Za-z0-9+]{0,64}|port=-?[0-9]{0,6}|left=-?[0-9a-z]{0,4}|event=[a-z]{0,9}|numwant=-?[0-9]{0,12}|compact=[01]|[a-z_]{0,8}=?[%a-z0-9]{0,8})){0,8}",
            scrape in proptest::bool::ANY,
        ) {
            let tracker = Arc::new(Tracker::new(Default::default()));
            let h = Handler::new(Arc::clone(&tracker), Arc::new(HttpConfig::default()));
            let mut s = Scratch::default();
            let peer: SocketAddr = "1.2.3.4:5".parse().unwrap();
            let path = if scrape { "/scrape" } else { "/announce" };
            let r = h.handle(&Method::GET, path, Some(&q), &HeaderMap::new(), peer, &mut s);
            proptest::prop_assert_eq!(r.status, StatusCode::OK);
            let v: serde_bencode::value::Value = serde_bencode::from_bytes(&r.body).unwrap();
            let serde_bencode::value::Value::Dict(d) = v else { panic!("not a dict") };
            if d.contains_key(&b"failure reason"[..]) {
                proptest::prop_assert_eq!(tracker.torrent_count(), 0);
            }
        }
    }
}
