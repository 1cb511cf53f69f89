//! HTTP announce / scrape query parsing, routing, and the request head scanner.
//!
//! Properties:
//! - `parse_announce` / `parse_scrape`: a query longer than `max` is exactly
//!   `TooLong { len, max }`; otherwise the result does not depend on `max` at all. A parsed
//!   announce agrees with an independent reference reading of the query text (its own
//!   percent-decoder, last value wins, `info_hash` once): 20-byte info hash and peer id, the port
//!   as written (never 0), `left`, `uploaded`, `downloaded`, `event`, `numwant`, `compact`,
//!   `no_peer_id`. A parsed scrape has the query's `info_hash` values, in order, 1..=max_scrape.
//! - `decode20` round trip: 20 bytes from the input, percent-encoded byte by byte (escaped or
//!   raw, upper or lower hex, as the input says), decode back; and a full announce query built
//!   from them parses back to the same fields.
//! - `route`: agrees with the documented routes (`/announce`, `/scrape`, `/{key}/announce`,
//!   `/{key}/scrape`, key non-empty without `/`), the passkey being that path segment.
//! - `head::HeadScanner` (when tracker-http has it, detected by build.rs): feeding the same bytes
//!   in two arbitrary splits gives the same `completed()` and `head_bytes()` and the same
//!   refusal, all equal to a reference line model of the documented rule (see `mod head`);
//!   on a stream of well-formed heads it counts what `httparse` counts, and `head_bytes()` is
//!   the unfinished tail.
//!
//! Input layout: bytes 0-1 `max` (u16 LE) for the query parsers, byte 2 `max_scrape`, the rest
//! is the query / path / stream; the decode20 and head-scanner checks read the whole input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracker_core::{Event, InfoHash};
use tracker_http::handler::{Route, route};
use tracker_http::query::{self, QueryError, decode20, parse_announce, parse_scrape};

/// Reference percent-decoding: `%` and two hex digits is a byte, anything else is itself.
fn pct(raw: &[u8]) -> Vec<u8> {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' && i + 2 < raw.len() {
            if let (Some(h), Some(l)) = (hex(raw[i + 1]), hex(raw[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    out
}

/// Reference split: `&`-separated, empty pieces skipped, first `=` splits key and value.
fn ref_pairs(q: &[u8]) -> Vec<(&[u8], &[u8])> {
    q.split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.iter().position(|&b| b == b'=') {
            Some(i) => (&p[..i], &p[i + 1..]),
            None => (p, &p[..0]),
        })
        .collect()
}

fn last<'a>(pairs: &[(&'a [u8], &'a [u8])], keys: &[&[u8]]) -> Option<&'a [u8]> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| keys.contains(k))
        .map(|(_, v)| *v)
}

fn number(raw: &[u8]) -> u64 {
    let d = pct(raw);
    let s = std::str::from_utf8(&d).expect("a parsed number is ASCII");
    let s = s.strip_prefix('-').unwrap_or(s);
    // A negative counter is accepted only as -0.
    s.parse::<u64>().expect("a parsed number is decimal")
}

fn check_announce(q: &[u8], max: usize) {
    let r = parse_announce(q, max);
    if q.len() > max {
        assert_eq!(r, Err(QueryError::TooLong { len: q.len(), max }));
        return;
    }
    assert_eq!(r, parse_announce(q, usize::MAX), "the limit only bounds the length");
    if let Err(QueryError::TooLong { .. }) = r {
        panic!("TooLong for a {}-byte query under max {max}", q.len());
    }
    let Ok(a) = r else { return };
    let pairs = ref_pairs(q);
    let ihs: Vec<_> = pairs.iter().filter(|(k, _)| *k == b"info_hash").collect();
    assert_eq!(ihs.len(), 1, "exactly one info_hash in a parsed announce");
    assert_eq!(pct(ihs[0].1), a.info_hash.0, "info_hash");
    assert_eq!(pct(last(&pairs, &[b"peer_id"]).expect("peer_id")), a.peer_id.0);
    let port = number(last(&pairs, &[b"port"]).expect("port"));
    assert_eq!(port, u64::from(a.port), "port as given in the query");
    assert_ne!(a.port, 0);
    assert_eq!(number(last(&pairs, &[b"left"]).expect("left")), a.left);
    assert_eq!(last(&pairs, &[b"uploaded"]).map(number), a.uploaded);
    assert_eq!(last(&pairs, &[b"downloaded"]).map(number), a.downloaded);
    let event = match last(&pairs, &[b"event"]).map(pct).as_deref() {
        None | Some(b"" | b"empty" | b"paused") => Event::None,
        Some(b"started") => Event::Started,
        Some(b"completed") => Event::Completed,
        Some(b"stopped") => Event::Stopped,
        Some(other) => panic!("parsed with event {other:?}"),
    };
    assert_eq!(a.event, event);
    let numwant = last(&pairs, &[b"numwant", b"num_want"]).map(pct);
    match numwant.as_deref() {
        None => assert_eq!(a.numwant, None),
        Some([b'-', ..]) => assert_eq!(a.numwant, None),
        Some(d) => {
            let n: u64 = std::str::from_utf8(d).unwrap().parse().unwrap();
            assert_eq!(a.numwant, Some(u32::try_from(n).unwrap_or(u32::MAX)));
        }
    }
    assert_eq!(a.compact, last(&pairs, &[b"compact"]) != Some(b"0"));
    assert_eq!(a.no_peer_id, last(&pairs, &[b"no_peer_id"]) == Some(b"1"));
    if let Some(ip) = a.ip {
        let v = pct(last(&pairs, &[b"ip"]).expect("ip"));
        assert_eq!(std::str::from_utf8(&v).ok().and_then(|s| s.parse().ok()), Some(ip));
    }
}

fn check_scrape(q: &[u8], max: usize, max_scrape: usize) {
    let mut out = vec![InfoHash([1; 20])];
    let r = parse_scrape(q, max, max_scrape, &mut out);
    if q.len() > max {
        assert_eq!(r, Err(QueryError::TooLong { len: q.len(), max }));
        assert!(out.is_empty());
        return;
    }
    let mut out2 = Vec::new();
    assert_eq!(r, parse_scrape(q, usize::MAX, max_scrape, &mut out2));
    assert_eq!(out, out2);
    let want: Vec<Vec<u8>> = ref_pairs(q)
        .iter()
        .filter(|(k, _)| *k == b"info_hash")
        .map(|(_, v)| pct(v))
        .collect();
    match r {
        Ok(()) => {
            assert!(!out.is_empty() && out.len() <= max_scrape);
            let got: Vec<Vec<u8>> = out.iter().map(|h| h.0.to_vec()).collect();
            assert_eq!(got, want);
        }
        Err(QueryError::NoHashes) => assert!(want.is_empty()),
        Err(QueryError::TooManyHashes { max }) => {
            assert_eq!(max, max_scrape);
            assert!(want.len() > max_scrape);
        }
        Err(QueryError::BadId { field, len }) => {
            assert_eq!(field, "info_hash");
            assert_ne!(len, 20);
            assert!(want.iter().any(|w| w.len() == len));
        }
        Err(e) => panic!("unexpected scrape error {e:?}"),
    }
}

/// Percent-encodes `bytes`: bit i of `mask` escapes byte i (always for `%` and `&`), `upper`
/// picks the hex case.
fn encode(bytes: &[u8], mask: u32, upper: bool) -> String {
    let mut s = String::new();
    for (i, &b) in bytes.iter().enumerate() {
        let escape = mask >> (i % 32) & 1 == 1 || b == b'%' || b == b'&' || !b.is_ascii();
        if escape {
            if upper {
                s.push_str(&format!("%{b:02X}"));
            } else {
                s.push_str(&format!("%{b:02x}"));
            }
        } else {
            s.push(b as char);
        }
    }
    s
}

fn take<const N: usize>(data: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = data.get(at + i).copied().unwrap_or(0);
    }
    out
}

fn check_round_trip(data: &[u8]) {
    let ih: [u8; 20] = take(data, 0);
    let pid: [u8; 20] = take(data, 20);
    let ctl: [u8; 4] = take(data, 40);
    let mask = u32::from_le_bytes(ctl);
    let upper = ctl[0] & 1 == 1;
    let enc = encode(&ih, mask, upper);
    assert_eq!(decode20(enc.as_bytes()), Ok(ih), "decode20 of {enc:?}");
    let enc_pid = encode(&pid, mask.rotate_left(7), !upper);
    assert_eq!(decode20(enc_pid.as_bytes()), Ok(pid));
    // One byte more or less is reported with its length.
    assert_eq!(decode20(format!("{enc}x").as_bytes()), Err(21));
    assert_eq!(decode20(encode(&ih[..19], mask, upper).as_bytes()), Err(19));

    let port = u16::from_le_bytes(take(data, 44)).max(1);
    let left = u64::from_le_bytes(take(data, 46));
    let q = format!("info_hash={enc}&peer_id={enc_pid}&port={port}&left={left}&compact=1");
    let a = query::parse_announce(q.as_bytes(), q.len()).expect("built announce parses");
    assert_eq!((a.info_hash.0, a.peer_id.0, a.port, a.left), (ih, pid, port, left));
    let mut out = Vec::new();
    let sq = format!("info_hash={enc}&x=1&info_hash={enc_pid}");
    parse_scrape(sq.as_bytes(), sq.len(), 2, &mut out).expect("built scrape parses");
    assert_eq!(out, vec![InfoHash(ih), InfoHash(pid)]);
}

fn check_route(path: &str) {
    let want = (|| {
        let rest = path.strip_prefix('/')?;
        let segs: Vec<&str> = rest.split('/').collect();
        match segs.as_slice() {
            ["announce"] => Some(Route::Announce { passkey: None }),
            ["scrape"] => Some(Route::Scrape { passkey: None }),
            [k, "announce"] if !k.is_empty() => Some(Route::Announce { passkey: Some(*k) }),
            [k, "scrape"] if !k.is_empty() => Some(Route::Scrape { passkey: Some(*k) }),
            _ => None,
        }
    })()
    .unwrap_or(Route::NotFound);
    let got = route(path);
    assert_eq!(got, want, "route({path:?})");
    if let Route::Announce { passkey: Some(k) } | Route::Scrape { passkey: Some(k) } = got {
        assert!(!k.is_empty() && !k.contains('/'));
        assert_eq!(&path[1..1 + k.len()], k);
    }
}

#[cfg(has_head_scanner)]
mod head {
    //! `tracker_http::head::HeadScanner` (`Default`, `feed(&mut self, new, max) -> bool`, false
    //! once the current head exceeds `max`; `head_bytes()`, bytes of the unfinished head, 0
    //! between heads; `completed()`, heads ended so far).
    //!
    //! Reference model (the module's documented rule, stated without its code): cut the stream
    //! into lines at `\n`; a line is blank when it is empty or just `\r`; a head ends at a blank
    //! line that follows a non-blank line of the same head (blank lines before a request line
    //! belong to the head they precede); a head's bytes run from the end of the previous head to
    //! its own blank line's `\n`. The stream is refused when some head, or the unfinished tail,
    //! is longer than `max`.
    use tracker_http::head::HeadScanner;

    /// Feeds `data` cut at `cuts` (sorted offsets); stops at the first refusal.
    fn run(data: &[u8], cuts: &[usize], max: usize) -> (bool, u64, usize) {
        let mut s = HeadScanner::default();
        let mut prev_completed = 0;
        let mut at = 0;
        for &c in cuts.iter().chain(std::iter::once(&data.len())) {
            let c = c.clamp(at, data.len());
            let ok = s.feed(&data[at..c], max);
            assert!(s.completed() >= prev_completed, "completed() went down");
            prev_completed = s.completed();
            if !ok {
                return (true, s.completed(), s.head_bytes());
            }
            assert!(s.head_bytes() <= max);
            at = c;
        }
        (false, s.completed(), s.head_bytes())
    }

    /// The reference model: (refused, completed, head_bytes), the last two up to the refusal.
    fn model(data: &[u8], max: usize) -> (bool, u64, usize) {
        let mut completed = 0;
        let mut head = 0usize; // bytes of the current head so far
        let mut started = false;
        let mut rest = data;
        while !rest.is_empty() {
            let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                head += rest.len();
                return (head > max, completed, head);
            };
            let line = &rest[..nl];
            head += nl + 1;
            if head > max {
                return (true, completed, head);
            }
            let blank = line.is_empty() || line == b"\r";
            if !blank {
                started = true;
            } else if started {
                completed += 1;
                head = 0;
                started = false;
            }
            rest = &rest[nl + 1..];
        }
        (false, completed, head)
    }

    fn cuts(seed: &[u8], len: usize) -> Vec<usize> {
        let mut v: Vec<usize> = seed
            .iter()
            .map(|&b| if len == 0 { 0 } else { usize::from(b) * len / 255 })
            .collect();
        v.sort_unstable();
        v
    }

    /// Well-formed heads from the input, then a strict prefix of one more: (stream, k, prefix).
    fn heads(data: &[u8]) -> (Vec<u8>, u64, usize) {
        let mut out = Vec::new();
        let k = u64::from(data.first().copied().unwrap_or(0) % 5);
        let token = |b: u8| b"abcdefghijklmnopqrstuvwxyz0123456789-_.~"[usize::from(b) % 40];
        let mut prefix = 0;
        for i in 0..=k {
            let mut h = b"GET /announce?x=".to_vec();
            h.extend(data.iter().skip(i as usize * 7).take(7).map(|&b| token(b)));
            h.extend_from_slice(b" HTTP/1.1\r\nHost: t\r\n");
            if data.get(1).copied().unwrap_or(0) & (1 << i) != 0 {
                h.extend_from_slice(b"User-Agent: f/1\r\nAccept: */*\r\n");
            }
            h.extend_from_slice(b"\r\n");
            if i == k {
                prefix = usize::from(data.get(2).copied().unwrap_or(0)) % h.len();
                h.truncate(prefix);
            }
            out.extend_from_slice(&h);
        }
        (out, k, prefix)
    }

    fn httparse_count(mut buf: &[u8]) -> u64 {
        let mut n = 0;
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(buf) {
                Ok(httparse::Status::Complete(len)) => {
                    n += 1;
                    buf = &buf[len..];
                }
                _ => return n,
            }
        }
    }

    pub fn check(data: &[u8]) {
        let c1 = &data[..data.len().min(6)];
        let (s1, s2) = c1.split_at(c1.len() / 2);
        // Arbitrary bytes, two arbitrary splits, limits from small to none.
        let small = usize::from(data.get(6).copied().unwrap_or(64));
        for max in [small, 64, usize::MAX] {
            let a = run(data, &cuts(s1, data.len()), max);
            let b = run(data, &cuts(s2, data.len()), max);
            let m = model(data, max);
            assert_eq!(a.0, m.0, "refusal vs the model (max {max})");
            assert_eq!(a.0, b.0, "refusal depends on the split (max {max})");
            if !a.0 {
                assert_eq!(a, b, "split-dependent state (max {max})");
                assert_eq!(a, m, "scanner vs the model (max {max})");
            } else {
                // Refused in the head the model refuses: same heads completed before it.
                assert_eq!(a.1, m.1, "heads completed before the refusal (max {max})");
                assert_eq!(b.1, m.1, "heads completed before the refusal (max {max})");
            }
        }
        // Well-formed heads: the scanner counts what httparse counts, and the unfinished one.
        let (stream, k, prefix) = heads(data);
        assert_eq!(httparse_count(&stream), k);
        let whole = run(&stream, &[], usize::MAX);
        let split = run(&stream, &cuts(&data[data.len().min(3)..], stream.len()), usize::MAX);
        assert_eq!(whole, (false, k, prefix), "{k} well-formed heads then {prefix} bytes");
        assert_eq!(whole, split);
    }
}

fuzz_target!(|data: &[u8]| {
    let max = usize::from(u16::from_le_bytes(take(data, 0)));
    let max_scrape = usize::from(data.get(2).copied().unwrap_or(0));
    let q = data.get(3..).unwrap_or(&[]);
    check_announce(q, max);
    check_scrape(q, max, max_scrape);
    check_round_trip(data);
    let s = String::from_utf8_lossy(q);
    check_route(&s);
    check_route(s.split('?').next().unwrap_or(""));
    #[cfg(has_head_scanner)]
    head::check(data);
});
