//! The status page's history: a job that every `admin.status_sample_secs` seconds reads the
//! tracker's request counters and pushes their increase since the previous sample into a
//! fixed-size ring covering the last hour ([`HISTORY`]), and walks the swarm map once for the
//! peer counts and the [`TOP_N`] torrents with the most peers. `GET /status.json` reads only
//! what the last tick left here: it never walks the map itself.
//!
//! Memory is fixed at start: the ring is allocated once (at most 3600 samples of
//! [`SERIES`]`.len()` counts each, about 250 KB at 1 s, 26 KB at the default 10 s) and the top
//! list holds [`TOP_N`] entries.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracker_core::{CounterValues, PeerCounts, TopTorrent, Tracker};

/// How far back the charts go.
pub const HISTORY: Duration = Duration::from_secs(3600);
/// Torrents in the status page's "most peers" list.
pub const TOP_N: usize = 20;

/// The request series the ring keeps, by protocol and action, and errors (answered with an
/// error, any action). The names are the JSON keys.
pub const SERIES: [(&str, Read); 7] = [
    ("udp_connect", |t| t.udp.connects),
    ("udp_announce", |t| t.udp.announces),
    ("udp_scrape", |t| t.udp.scrapes),
    ("http_announce", |t| t.http.announces),
    ("http_scrape", |t| t.http.scrapes),
    ("udp_errors", |t| t.udp.errors),
    ("http_errors", |t| t.http.errors),
];

/// How a series is read from the counters.
pub type Read = fn(&Totals) -> u64;

/// The counters a sample is taken from.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    /// UDP counters.
    pub udp: CounterValues,
    /// HTTP counters.
    pub http: CounterValues,
}

/// A fixed-capacity ring: pushing onto a full ring overwrites the oldest entry. Its buffer is
/// allocated once, in [`Ring::new`].
#[derive(Debug)]
pub struct Ring<T> {
    buf: Box<[T]>,
    /// Where the next push goes.
    next: usize,
    len: usize,
}

impl<T: Copy + Default> Ring<T> {
    /// An empty ring of `capacity` entries (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            buf: vec![T::default(); capacity.max(1)].into_boxed_slice(),
            next: 0,
            len: 0,
        }
    }

    /// Adds `v`, dropping the oldest entry when full.
    pub fn push(&mut self, v: T) {
        self.buf[self.next] = v;
        self.next = (self.next + 1) % self.buf.len();
        self.len = (self.len + 1).min(self.buf.len());
    }

    /// The most entries it holds.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// The entries, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        let start = (self.next + self.buf.len() - self.len) % self.buf.len();
        (0..self.len).map(move |i| &self.buf[(start + i) % self.buf.len()])
    }
}

/// One sample: how much each series grew over `dt_ms` milliseconds ending at `end_unix_ms`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    /// When it was taken, unix milliseconds.
    pub end_unix_ms: u64,
    /// Time since the previous sample, milliseconds.
    pub dt_ms: u32,
    /// The increase of each of [`SERIES`].
    pub counts: [u64; SERIES.len()],
}

/// What the last tick saw of the swarm map.
#[derive(Debug, Clone, Default)]
pub struct MapFigures {
    /// Torrents and peers, as `/metrics` counts them.
    pub counts: PeerCounts,
    /// The [`TOP_N`] torrents with the most peers.
    pub top: Vec<TopTorrent>,
    /// When the walk finished, unix milliseconds (0: not yet).
    pub at_unix_ms: u64,
}

#[derive(Debug)]
struct Inner {
    ring: Ring<Sample>,
    last: Option<(Instant, [u64; SERIES.len()])>,
    map: Arc<MapFigures>,
}

/// The ring and the last map walk, shared by the sampler job and the admin listener.
#[derive(Debug)]
pub struct Sampler {
    every: Duration,
    inner: Mutex<Inner>,
}

impl Sampler {
    /// A sampler taking one sample every `every_secs` seconds (at least 1), with a ring long
    /// enough for [`HISTORY`].
    pub fn new(every_secs: u32) -> Self {
        let every = Duration::from_secs(u64::from(every_secs.max(1)));
        let capacity = HISTORY.as_secs().div_ceil(every.as_secs()) as usize;
        Self {
            every,
            inner: Mutex::new(Inner {
                ring: Ring::new(capacity),
                last: None,
                map: Arc::default(),
            }),
        }
    }

    /// The sampling period.
    pub fn every(&self) -> Duration {
        self.every
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the counters read at `at` (`unix_ms`): the first call only sets the baseline, the
    /// next ones push the increase since the previous call (a counter that went down counts 0).
    pub fn record(&self, totals: &Totals, at: Instant, unix_ms: u64) {
        let now: [u64; SERIES.len()] = SERIES.map(|(_, get)| get(totals));
        let mut inner = self.lock();
        if let Some((then, before)) = inner.last {
            let mut counts = [0; SERIES.len()];
            for (c, (n, b)) in counts.iter_mut().zip(now.iter().zip(before)) {
                *c = n.saturating_sub(b);
            }
            let dt_ms = u32::try_from(at.saturating_duration_since(then).as_millis())
                .unwrap_or(u32::MAX)
                .max(1);
            inner.ring.push(Sample {
                end_unix_ms: unix_ms,
                dt_ms,
                counts,
            });
        }
        inner.last = Some((at, now));
    }

    /// Keeps the figures of a map walk.
    pub fn set_map(&self, map: MapFigures) {
        self.lock().map = Arc::new(map);
    }

    /// The samples held, oldest first, and the last map walk.
    pub fn read(&self) -> (Vec<Sample>, Arc<MapFigures>) {
        let inner = self.lock();
        (inner.ring.iter().copied().collect(), Arc::clone(&inner.map))
    }

    /// The ring's capacity.
    pub fn capacity(&self) -> usize {
        self.lock().ring.capacity()
    }
}

/// The counters now.
pub fn totals(tracker: &Tracker) -> Totals {
    let s = tracker.stats().read();
    Totals {
        udp: s.udp,
        http: s.http,
    }
}

/// Unix time in milliseconds.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The sampler job: a sample every period, then the map walk on a blocking thread. Never
/// returns.
pub async fn run(tracker: Arc<Tracker>, sampler: Arc<Sampler>) {
    let mut every = tokio::time::interval(sampler.every());
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        sampler.record(&totals(&tracker), Instant::now(), unix_ms());
        let t = Arc::clone(&tracker);
        let walked = tokio::task::spawn_blocking(move || {
            let (counts, top) = t.counts_and_top(TOP_N, t.clock().now());
            MapFigures {
                counts,
                top,
                at_unix_ms: unix_ms(),
            }
        })
        .await;
        match walked {
            Ok(map) => sampler.set_map(map),
            Err(e) => tracing::error!(error = %e, "status sampler: the map walk failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_newest_in_order_and_never_grows() {
        let mut r = Ring::<u32>::new(3);
        assert_eq!(r.iter().count(), 0);
        r.push(1);
        r.push(2);
        assert_eq!(r.iter().copied().collect::<Vec<_>>(), [1, 2]);
        for v in 3..=10 {
            r.push(v);
            assert!(r.iter().count() <= 3);
        }
        assert_eq!(r.iter().copied().collect::<Vec<_>>(), [8, 9, 10]);
        assert_eq!((r.iter().count(), r.capacity()), (3, 3));
        let one = {
            let mut r = Ring::<u32>::new(0);
            r.push(5);
            r.push(6);
            r.iter().copied().collect::<Vec<_>>()
        };
        assert_eq!(one, [6]);
    }

    #[test]
    fn the_ring_covers_an_hour_whatever_the_period() {
        assert_eq!(Sampler::new(10).capacity(), 360);
        assert_eq!(Sampler::new(1).capacity(), 3600);
        assert_eq!(Sampler::new(7).capacity(), 515);
        assert_eq!(Sampler::new(0).capacity(), 3600);
    }

    #[test]
    fn samples_are_counter_increases_over_the_elapsed_time() {
        let s = Sampler::new(10);
        let t0 = Instant::now();
        let mut t = Totals::default();
        t.udp.announces = 100;
        t.http.errors = 7;
        s.record(&t, t0, 1_000);
        assert!(s.read().0.is_empty(), "the first call is the baseline");
        t.udp.announces = 130;
        t.http.errors = 9;
        t.http.scrapes = 4;
        s.record(&t, t0 + Duration::from_millis(10_250), 11_250);
        // A counter going down (it cannot today) counts as no increase.
        t.udp.announces = 120;
        s.record(&t, t0 + Duration::from_millis(20_000), 21_000);
        let (samples, _) = s.read();
        let col = |name: &str| SERIES.iter().position(|(n, _)| *n == name).unwrap();
        assert_eq!(samples.len(), 2);
        assert_eq!((samples[0].end_unix_ms, samples[0].dt_ms), (11_250, 10_250));
        assert_eq!(samples[0].counts[col("udp_announce")], 30);
        assert_eq!(samples[0].counts[col("http_errors")], 2);
        assert_eq!(samples[0].counts[col("http_scrape")], 4);
        assert_eq!(samples[0].counts[col("udp_connect")], 0);
        assert_eq!(samples[1].counts[col("udp_announce")], 0);
        assert_eq!(samples[1].dt_ms, 9_750);
    }

    #[test]
    fn a_full_ring_holds_the_last_hour_and_sums_to_the_counters() {
        let s = Sampler::new(60);
        let t0 = Instant::now();
        let mut t = Totals::default();
        s.record(&t, t0, 0);
        for i in 1..=200u64 {
            t.udp.connects += i;
            s.record(&t, t0 + Duration::from_secs(60 * i), 60_000 * i);
        }
        let (samples, _) = s.read();
        assert_eq!(samples.len(), 60);
        assert_eq!(samples[0].counts[0], 141);
        assert_eq!(samples[59].counts[0], 200);
        assert_eq!(samples[59].end_unix_ms, 12_000_000);
        let kept: u64 = samples.iter().map(|x| x.counts[0]).sum();
        assert_eq!(kept, (141..=200).sum::<u64>());
    }
}
