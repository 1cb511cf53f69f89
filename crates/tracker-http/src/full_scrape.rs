//! The full scrape (`GET /scrape` without `info_hash`, `[http] full_scrape`): every torrent's
//! counts as one BEP 48 `files` dict, sorted by info hash, with a gzip copy.
//!
//! A full scrape of a large tracker is megabytes, and building it walks every shard. So it is
//! never built per request, and never on a request's thread: [`FullScrapeCache`] keeps the last
//! bodies and has one background thread rebuild them at most once every
//! `full_scrape_cache_secs`. A request that finds them stale is answered with them at once; the
//! first requests, before any build has finished, get a failure reason asking them to retry, so
//! no runtime worker ever waits for a build. Memory: the plain and gzip bodies (70 and about 22
//! bytes per torrent, trimmed to their length), and during a rebuild the new pair plus a
//! `(hash, counts)` list of 32 bytes per torrent, all bounded by `[swarm] max_torrents`.

use std::io::Write as _;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Bytes, BytesMut};
use flate2::Compression;
use flate2::write::GzEncoder;
use tracker_core::{InfoHash, ScrapeCounts, Tracker};

use crate::bencode;
use crate::headers::Headers;

/// One built full scrape.
#[derive(Debug)]
pub struct Bodies {
    /// Unix seconds of the tracker clock when it was built.
    pub built_at: u32,
    /// Torrents in it.
    pub torrents: usize,
    /// The bencoded reply.
    pub plain: Bytes,
    /// The same, gzip-encoded.
    pub gzip: Bytes,
}

impl Bodies {
    /// Walks the tracker, sorts by info hash (a bencode dict's keys are sorted), encodes, and
    /// compresses (gzip at the fastest level: the hashes, most of the bytes, do not compress).
    pub fn build(tracker: &Tracker, now: u32) -> Bodies {
        let mut all: Vec<(InfoHash, ScrapeCounts)> = Vec::with_capacity(tracker.torrent_count());
        tracker.scrape_all(now, |h, c| all.push((*h, c)));
        all.sort_unstable_by_key(|e| e.0);
        let torrents = all.len();
        let mut out = BytesMut::with_capacity(bencode::scrape_len(torrents));
        bencode::scrape(&mut out, all.iter().map(|(h, c)| (h, *c)));
        drop(all);
        // `scrape_len` is an upper bound: keep only the bytes (a copy is cheaper than 40 %
        // more memory held for the cache's lifetime).
        let plain = Bytes::copy_from_slice(&out);
        drop(out);
        let mut gz = GzEncoder::new(Vec::with_capacity(plain.len() / 2), Compression::fast());
        // Writing into a Vec cannot fail.
        let gzip = match gz.write_all(&plain).and_then(|()| gz.finish()) {
            Ok(mut v) => {
                v.shrink_to_fit();
                Bytes::from(v)
            }
            Err(_) => Bytes::new(),
        };
        Bodies {
            built_at: now,
            torrents,
            plain,
            gzip,
        }
    }
}

/// The last full scrape and whether a build is running.
#[derive(Debug)]
pub struct FullScrapeCache {
    max_age: u32,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    bodies: Option<Arc<Bodies>>,
    building: bool,
}

impl FullScrapeCache {
    /// An empty cache whose bodies are rebuilt once older than `max_age` seconds.
    pub fn new(max_age: u32) -> Self {
        Self {
            max_age: max_age.max(1),
            state: Mutex::new(State::default()),
        }
    }

    /// The bodies to answer with at `now`, if a build has finished: the cached ones, starting a
    /// background rebuild when they are stale (or when there are none yet and no build runs).
    /// Never builds on the caller's thread; the lock is only held to read or swap.
    pub fn get(self: &Arc<Self>, tracker: &Arc<Tracker>, now: u32) -> Option<Arc<Bodies>> {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let bodies = st.bodies.clone();
        let stale = bodies
            .as_ref()
            .is_none_or(|b| now.saturating_sub(b.built_at) >= self.max_age);
        if stale && !st.building {
            st.building = true;
            drop(st);
            self.rebuild_in_background(tracker);
        }
        bodies
    }

    fn rebuild_in_background(self: &Arc<Self>, tracker: &Arc<Tracker>) {
        let (cache, tracker) = (Arc::clone(self), Arc::clone(tracker));
        let spawned = std::thread::Builder::new()
            .name("full-scrape".into())
            .spawn(move || {
                // Ends the build whatever happens, a panic included, so a later request can
                // start another.
                let mut done = EndBuild(&cache, None);
                let now = tracker.clock().now();
                done.1 = Some(Arc::new(Bodies::build(&tracker, now)));
            });
        if spawned.is_err() {
            // Serve the stale bodies (if any) and try again on a later request.
            self.store(None);
        }
    }

    /// Ends a build: `bodies` (when it produced some) replaces the cached ones.
    fn store(&self, bodies: Option<Arc<Bodies>>) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(b) = bodies {
            st.bodies = Some(b);
        }
        st.building = false;
    }
}

/// Ends a build when dropped, storing what it built (nothing if it unwound).
struct EndBuild<'a>(&'a FullScrapeCache, Option<Arc<Bodies>>);

impl Drop for EndBuild<'_> {
    fn drop(&mut self) {
        self.0.store(self.1.take());
    }
}

/// Whether `headers` accept a gzip-encoded body: `Accept-Encoding` names `gzip` with a non-zero
/// `q` or, when it does not name `gzip` at all, `*` with a non-zero `q`.
pub fn accepts_gzip<H: Headers + ?Sized>(headers: &H) -> bool {
    let (mut gzip, mut star) = (None, None);
    for item in headers
        .all("accept-encoding")
        .filter_map(crate::headers::text)
        .flat_map(|v| v.split(','))
    {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or("");
        let q_zero = parts.any(|p| {
            p.strip_prefix("q=")
                .is_some_and(|q| q.parse::<f32>().is_ok_and(|q| q <= 0.0))
        });
        if coding.eq_ignore_ascii_case("gzip") {
            gzip = Some(!q_zero);
        } else if coding == "*" {
            star = Some(!q_zero);
        }
    }
    gzip.or(star).unwrap_or(false)
}

/// Whether `headers` carry `Authorization: Bearer <token>` (compared in constant time for
/// equal lengths). An empty `token` matches nothing.
pub fn bearer_matches<H: Headers + ?Sized>(headers: &H, token: &str) -> bool {
    let Some(given) = headers.first("authorization").and_then(|v| {
        let scheme = v.get(..7)?;
        scheme.eq_ignore_ascii_case(b"bearer ").then(|| &v[7..])
    }) else {
        return false;
    };
    let want = token.as_bytes();
    !want.is_empty()
        && given.len() == want.len()
        && given
            .iter()
            .zip(want)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::HeaderMap;
    use hyper::header::HeaderValue;
    use hyper::header::{ACCEPT_ENCODING, AUTHORIZATION};
    use std::io::Read as _;
    use tracker_core::{AnnounceRequest, Clock, CompactPeers, CoreConfig, Event, PeerId};

    fn tracker_with(n: u8) -> Arc<Tracker> {
        let t = Arc::new(Tracker::with_clock(
            CoreConfig::default(),
            Clock::manual(1_000_000),
        ));
        for i in 0..n {
            let req = AnnounceRequest {
                info_hash: InfoHash([255 - i; 20]),
                peer_id: PeerId([i; 20]),
                ip: [10, 0, 0, i].into(),
                port: 6881,
                event: Event::Started,
                left: u64::from(i % 2),
                numwant: Some(0),
                max_peers: 50,
                both_families: true,
            };
            t.announce(&req, 1_000_000, &mut CompactPeers::default())
                .unwrap();
        }
        t
    }

    #[test]
    fn bodies_are_sorted_bencode_and_gzip_of_the_same_bytes() {
        let t = tracker_with(5);
        let b = Bodies::build(&t, 1_000_000);
        assert_eq!(b.torrents, 5);
        let v: serde_bencode::value::Value = serde_bencode::from_bytes(&b.plain).unwrap();
        let serde_bencode::value::Value::Dict(top) = v else {
            panic!("not a dict")
        };
        let serde_bencode::value::Value::Dict(files) = &top[&b"files".to_vec()] else {
            panic!("no files")
        };
        assert_eq!(files.len(), 5);
        // Keys in sorted order on the wire: the first key is the smallest hash.
        assert_eq!(&b.plain[..13], b"d5:filesd20:\xfb");
        let mut un = Vec::new();
        flate2::read::GzDecoder::new(&b.gzip[..])
            .read_to_end(&mut un)
            .unwrap();
        assert_eq!(un, b.plain);
    }

    /// Polls `cache` until a build has finished.
    fn built(cache: &Arc<FullScrapeCache>, t: &Arc<Tracker>, now: u32) -> Arc<Bodies> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if let Some(b) = cache.get(t, now) {
                return b;
            }
            assert!(std::time::Instant::now() < deadline, "never built");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    #[test]
    fn stale_bodies_are_served_while_one_rebuild_runs() {
        let t = tracker_with(2);
        let cache = Arc::new(FullScrapeCache::new(60));
        assert!(
            cache.get(&t, 1_000_000).is_none(),
            "the first build runs in the background"
        );
        let first = built(&cache, &t, 1_000_000);
        assert_eq!(first.torrents, 2);
        // Fresh: the same bodies.
        assert!(Arc::ptr_eq(&first, &cache.get(&t, 1_000_059).unwrap()));
        // Stale: still the same bodies at once, and a rebuild that replaces them.
        let t3 = tracker_with(3);
        let stale = cache.get(&t3, 1_000_060).unwrap();
        assert!(Arc::ptr_eq(&first, &stale));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let b = cache.get(&t3, 1_000_060).unwrap();
            if b.torrents == 3 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "no rebuild");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    #[test]
    fn gzip_and_bearer_headers() {
        let h = |name, v: &'static str| {
            let mut m = HeaderMap::new();
            m.insert(name, HeaderValue::from_static(v));
            m
        };
        assert!(accepts_gzip(&h(ACCEPT_ENCODING, "gzip")));
        assert!(accepts_gzip(&h(ACCEPT_ENCODING, "deflate, GZIP;q=0.5")));
        assert!(accepts_gzip(&h(ACCEPT_ENCODING, "*")));
        assert!(!accepts_gzip(&h(ACCEPT_ENCODING, "gzip;q=0")));
        assert!(!accepts_gzip(&h(ACCEPT_ENCODING, "gzip;q=0, *")));
        assert!(!accepts_gzip(&h(ACCEPT_ENCODING, "*;q=0")));
        assert!(!accepts_gzip(&h(ACCEPT_ENCODING, "br, deflate")));
        assert!(!accepts_gzip(&HeaderMap::new()));
        let token = "a-token-of-16-chars";
        assert!(bearer_matches(
            &h(AUTHORIZATION, "Bearer a-token-of-16-chars"),
            token
        ));
        assert!(!bearer_matches(
            &h(AUTHORIZATION, "Bearer a-token-of-16-chaRS"),
            token
        ));
        assert!(!bearer_matches(
            &h(AUTHORIZATION, "a-token-of-16-chars"),
            token
        ));
        assert!(!bearer_matches(&h(AUTHORIZATION, "Bearer "), ""));
        assert!(bearer_matches(
            &h(AUTHORIZATION, "bearer a-token-of-16-chars"),
            token
        ));
    }
}
