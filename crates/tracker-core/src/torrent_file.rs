//! Reading `.torrent` files (BEP 3 v1, BEP 52 v2 and hybrid) for the torrent index.
//!
//! The info hash is the hash of the raw bencoded `info` dictionary: the bytes of the top-level
//! `info` value, located by [`check_shape`]. The file is also decoded with `serde_bencode` and
//! the `info` value re-encoded; bencode has one canonical form (sorted keys, no leading zeros),
//! and the re-encoding is required to equal those bytes, so a file whose `info` is not
//! canonical is refused instead of being given a hash no client computes.
//!
//! The bytes are untrusted (`POST /api/torrents`, files in `[access] index_dir`), and
//! `serde_bencode` decodes (and drops) nested lists and dictionaries recursively, so a few KB of
//! `llll...` would overflow the stack. [`check_shape`] walks the bytes first, iteratively, and
//! refuses input nested deeper than [`MAX_DEPTH`] or longer than [`MAX_TORRENT_BYTES`]; only
//! input it accepts reaches `serde_bencode`.

use std::collections::HashMap;

use serde_bencode::value::Value;
use sha1::{Digest, Sha1};
use sha2::Sha256;

use crate::types::InfoHash;

/// What the index needs from a `.torrent` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TorrentFile {
    /// SHA-1 of the info dict; `None` for a v2-only torrent.
    pub v1: Option<InfoHash>,
    /// SHA-256 of the info dict for v2 and hybrid torrents (`meta version` 2).
    pub v2: Option<[u8; 32]>,
    /// `info.name`, lossily decoded as UTF-8.
    pub name: String,
    /// Total payload size in bytes.
    pub size: u64,
    /// `info.private` is 1.
    pub private: bool,
}

impl TorrentFile {
    /// The hash the tracker keys the torrent under: v1 if there is one, else the v2 hash
    /// truncated to 20 bytes (what v2 clients announce).
    pub fn primary(&self) -> InfoHash {
        match (self.v1, self.v2) {
            (Some(v1), _) => v1,
            (None, Some(v2)) => truncate(&v2),
            // `parse` never returns a file with neither.
            (None, None) => InfoHash::default(),
        }
    }

    /// For a hybrid torrent, the truncated v2 hash that should resolve to the v1 entry.
    pub fn linked_v2(&self) -> Option<InfoHash> {
        self.v1.and(self.v2.map(|v2| truncate(&v2)))
    }
}

/// The first 20 bytes of a v2 info hash (BEP 52: what goes in announces and scrapes).
pub fn truncate(v2: &[u8; 32]) -> InfoHash {
    let mut out = [0u8; 20];
    out.copy_from_slice(&v2[..20]);
    InfoHash(out)
}

/// Deepest nesting of lists and dictionaries accepted in a `.torrent` file. Real files nest
/// about 5 levels for v1 (`files` -> entry -> `path`) and a BEP 52 `file tree` adds one level per
/// directory; 64 is far beyond any real layout and, at a few hundred bytes of stack per level
/// in `serde_bencode`, far below what any thread's stack holds (tokio's 2 MiB, or less).
pub const MAX_DEPTH: usize = 64;

/// Largest `.torrent` file accepted, in bytes; the same as the admin API's body limit. A piece
/// list costs 20 bytes per piece, so real torrents stay far below it (1 TiB in 4 MiB pieces:
/// 5 MiB).
pub const MAX_TORRENT_BYTES: usize = 16 * 1024 * 1024;

/// Why a file is not a usable torrent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TorrentFileError {
    /// Not bencode.
    #[error("not a bencoded torrent file: {0}")]
    Bencode(String),
    /// Nested deeper than [`MAX_DEPTH`] or larger than [`MAX_TORRENT_BYTES`].
    #[error("not a usable torrent file: {0}")]
    Limit(String),
    /// Bencode, but not a torrent.
    #[error("not a torrent file: {0}")]
    Shape(&'static str),
    /// The info dict is not in canonical bencoding, so its hash would be ambiguous.
    #[error("the info dictionary is not canonically bencoded")]
    NotCanonical,
}

fn get<'a>(d: &'a HashMap<Vec<u8>, Value>, key: &str) -> Option<&'a Value> {
    d.get(key.as_bytes())
}

fn int(v: Option<&Value>) -> Option<i64> {
    match v {
        Some(Value::Int(i)) => Some(*i),
        _ => None,
    }
}

/// Walks one bencoded value iteratively and checks it against the limits: nesting at most
/// `max_depth`, well-formed tokens, nothing after the value. Constant stack, one pass, no
/// allocation. A value it accepts can be handed to a recursive decoder safely. Returns where
/// the top-level dictionary's `info` value lies in `bytes`, if there is one: the bytes whose
/// hash is the info hash.
pub fn check_shape(
    bytes: &[u8],
    max_depth: usize,
) -> Result<Option<std::ops::Range<usize>>, TorrentFileError> {
    if bytes.len() > MAX_TORRENT_BYTES {
        return Err(TorrentFileError::Limit(format!(
            "{} bytes, more than the limit of {MAX_TORRENT_BYTES}",
            bytes.len()
        )));
    }
    let bad = |at: usize, what: &str| TorrentFileError::Bencode(format!("{what} at byte {at}"));
    let top_is_dict = bytes.first() == Some(&b'd');
    // Inside the top-level dictionary (depth 1): keys and values alternate.
    let (mut expect_key, mut key_is_info, mut value_start) = (true, false, 0);
    let mut info = None;
    let mut depth = 0usize;
    let mut i = 0usize;
    loop {
        let Some(&b) = bytes.get(i) else {
            return Err(bad(i, "unexpected end"));
        };
        let start = i;
        if depth == 1 && !expect_key {
            value_start = start;
        }
        let mut key = None;
        match b {
            b'l' | b'd' => {
                depth += 1;
                if depth > max_depth {
                    return Err(TorrentFileError::Limit(format!(
                        "nested deeper than {max_depth} levels"
                    )));
                }
                i += 1;
                continue;
            }
            b'e' if depth > 0 => {
                depth -= 1;
                i += 1;
            }
            b'i' => {
                let end = memchr::memchr(b'e', &bytes[i..])
                    .ok_or_else(|| bad(i, "unterminated integer"))?;
                i += end + 1;
            }
            b'0'..=b'9' => {
                let colon = memchr::memchr(b':', &bytes[i..])
                    .ok_or_else(|| bad(i, "string without ':'"))?;
                let len: usize = std::str::from_utf8(&bytes[i..i + colon])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| bad(i, "bad string length"))?;
                let from = i + colon + 1;
                if len > bytes.len() - from {
                    return Err(bad(i, "string longer than the input"));
                }
                i = from + len;
                key = Some(&bytes[from..i]);
            }
            _ => return Err(bad(i, "unexpected byte")),
        }
        // An item of the top-level dictionary ended: a string or integer at depth 1, or the
        // `e` that brought a nested value back to depth 1.
        if top_is_dict && depth == 1 {
            if expect_key {
                key_is_info = key == Some(b"info".as_slice());
            } else if key_is_info {
                info = Some(value_start..i);
            }
            expect_key = !expect_key;
        }
        if depth == 0 {
            return if i == bytes.len() {
                Ok(info)
            } else {
                Err(bad(i, "trailing bytes after the value"))
            };
        }
    }
}

/// Parses a `.torrent` file.
pub fn parse(bytes: &[u8]) -> Result<TorrentFile, TorrentFileError> {
    let info_span = check_shape(bytes, MAX_DEPTH)?;
    let top: Value =
        serde_bencode::from_bytes(bytes).map_err(|e| TorrentFileError::Bencode(e.to_string()))?;
    let Value::Dict(top) = top else {
        return Err(TorrentFileError::Shape("top level is not a dictionary"));
    };
    let info_value = get(&top, "info").ok_or(TorrentFileError::Shape("no info dictionary"))?;
    let Value::Dict(info) = info_value else {
        return Err(TorrentFileError::Shape("info is not a dictionary"));
    };
    // The hash is of the info value's own bytes, which must be its canonical encoding.
    let raw = info_span
        .map(|r| &bytes[r])
        .ok_or(TorrentFileError::Shape("no info dictionary"))?;
    let canonical = serde_bencode::to_bytes(info_value)
        .map_err(|e| TorrentFileError::Bencode(e.to_string()))?;
    if canonical != raw {
        return Err(TorrentFileError::NotCanonical);
    }
    let name = match get(info, "name") {
        Some(Value::Bytes(b)) => String::from_utf8_lossy(b).into_owned(),
        _ => return Err(TorrentFileError::Shape("info.name missing")),
    };
    let is_v2 = int(get(info, "meta version")) == Some(2);
    let has_v1 = get(info, "pieces").is_some();
    if !is_v2 && !has_v1 {
        return Err(TorrentFileError::Shape(
            "neither v1 pieces nor v2 meta version",
        ));
    }
    let size = if has_v1 {
        v1_size(info)?
    } else {
        match get(info, "file tree") {
            Some(tree) => tree_size(tree, 0)?,
            None => return Err(TorrentFileError::Shape("v2 torrent without a file tree")),
        }
    };
    Ok(TorrentFile {
        v1: has_v1.then(|| InfoHash(Sha1::digest(raw).into())),
        v2: is_v2.then(|| Sha256::digest(raw).into()),
        name,
        size,
        private: int(get(info, "private")) == Some(1),
    })
}

fn length(v: Option<&Value>) -> Result<u64, TorrentFileError> {
    int(v)
        .and_then(|i| u64::try_from(i).ok())
        .ok_or(TorrentFileError::Shape(
            "a file length is missing or negative",
        ))
}

fn v1_size(info: &HashMap<Vec<u8>, Value>) -> Result<u64, TorrentFileError> {
    if let Some(l) = get(info, "length") {
        return length(Some(l));
    }
    let Some(Value::List(files)) = get(info, "files") else {
        return Err(TorrentFileError::Shape("neither length nor files in info"));
    };
    let mut total = 0u64;
    for f in files {
        let Value::Dict(f) = f else {
            return Err(TorrentFileError::Shape("a file entry is not a dictionary"));
        };
        // BEP 47 pad files (attr contains 'p') align files to pieces; they are not payload.
        if matches!(get(f, "attr"), Some(Value::Bytes(a)) if a.contains(&b'p')) {
            continue;
        }
        total = total.saturating_add(length(get(f, "length"))?);
    }
    Ok(total)
}

/// Sums a BEP 52 file tree: directories are dicts of names; a file is a dict whose "" key holds
/// `{length, pieces root}`.
fn tree_size(v: &Value, depth: usize) -> Result<u64, TorrentFileError> {
    if depth > 64 {
        return Err(TorrentFileError::Shape("file tree nested too deeply"));
    }
    let Value::Dict(d) = v else {
        return Err(TorrentFileError::Shape(
            "file tree node is not a dictionary",
        ));
    };
    let mut total = 0u64;
    // In key order, as bencode writes them: a `HashMap` walk would make the error of a tree
    // with several problems depend on the map's random seed (found by the fuzz target).
    let mut children: Vec<_> = d.iter().collect();
    children.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for (k, child) in children {
        if k.is_empty() {
            let Value::Dict(leaf) = child else {
                return Err(TorrentFileError::Shape(
                    "file tree leaf is not a dictionary",
                ));
            };
            total = total.saturating_add(length(get(leaf, "length"))?);
        } else {
            total = total.saturating_add(tree_size(child, depth + 1)?);
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_file_v1() {
        let info = b"d6:lengthi12345e4:name5:hello12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaa7:privatei1ee";
        let file = [b"d8:announce14:http://t/annce4:info".as_slice(), info, b"e"].concat();
        let t = parse(&file).unwrap();
        assert_eq!(t.name, "hello");
        assert_eq!(t.size, 12345);
        assert!(t.private);
        assert_eq!(t.v1, Some(InfoHash(Sha1::digest(info).into())));
        assert_eq!(t.v2, None);
        assert_eq!(t.primary(), t.v1.unwrap());
    }

    #[test]
    fn multi_file_v1_sums_lengths() {
        let info = b"d5:filesld6:lengthi3e4:pathl1:aeed6:lengthi4e4:pathl1:beee4:name3:dir12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae";
        let file = [b"d4:info".as_slice(), info, b"e"].concat();
        assert_eq!(parse(&file).unwrap().size, 7);
    }

    #[test]
    fn hybrid_has_both_hashes() {
        let info = b"d9:file treed1:ad0:d6:lengthi5e11:pieces root32:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbeee6:lengthi5e12:meta versioni2e4:name1:a12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae";
        let file = [b"d4:info".as_slice(), info, b"e"].concat();
        let t = parse(&file).unwrap();
        let v2: [u8; 32] = Sha256::digest(info).into();
        assert_eq!(t.v2, Some(v2));
        assert_eq!(t.linked_v2(), Some(truncate(&v2)));
        assert_eq!(t.primary(), t.v1.unwrap());
    }

    #[test]
    fn v2_only_is_keyed_by_truncated_v2() {
        let info = b"d9:file treed1:ad0:d6:lengthi5e11:pieces root32:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbeee12:meta versioni2e4:name1:a12:piece lengthi16384ee";
        let file = [b"d4:info".as_slice(), info, b"e"].concat();
        let t = parse(&file).unwrap();
        assert_eq!(t.v1, None);
        assert_eq!(t.size, 5);
        assert_eq!(t.primary(), truncate(&Sha256::digest(info).into()));
        assert_eq!(t.linked_v2(), None);
    }

    /// `d8:announce3:abc4:info` + `l` x n + `e` x n + `e`: the shape that used to overflow the
    /// stack.
    fn nested(n: usize) -> Vec<u8> {
        let mut b = b"d8:announce3:abc4:info".to_vec();
        b.extend(std::iter::repeat_n(b'l', n));
        b.extend(std::iter::repeat_n(b'e', n));
        b.push(b'e');
        b
    }

    #[test]
    fn deep_nesting_is_refused_without_recursion() {
        for n in [MAX_DEPTH, 5_000, 1_000_000] {
            match parse(&nested(n)) {
                Err(TorrentFileError::Limit(m)) => assert!(m.contains("nested deeper"), "{m}"),
                other => panic!("{n} levels: {other:?}"),
            }
        }
        // Just inside the limit, the shape is fine and the decoder says what is wrong.
        assert!(check_shape(&nested(MAX_DEPTH - 1), MAX_DEPTH).is_ok());
        assert_eq!(
            parse(&nested(MAX_DEPTH - 1)),
            Err(TorrentFileError::Shape("info is not a dictionary"))
        );
        // Unbalanced: a million opens and nothing else.
        assert!(matches!(
            parse(&vec![b'l'; 1_000_000]),
            Err(TorrentFileError::Limit(_))
        ));
    }

    #[test]
    fn shape_check_agrees_with_serde_bencode_on_small_inputs() {
        let ok: &[&[u8]] = &[b"i3e", b"0:", b"le", b"de", b"d1:ai1ee", b"l4:spami-1ee"];
        for b in ok {
            assert!(check_shape(b, MAX_DEPTH).is_ok(), "{b:?}");
            assert!(serde_bencode::from_bytes::<Value>(b).is_ok(), "{b:?}");
        }
        let bad: &[&[u8]] = &[
            b"",
            b"i3",
            b"5:abc",
            b"l",
            b"e",
            b"i1ei2e",
            b"x",
            b"99999999999999999999999:",
        ];
        for b in bad {
            assert!(check_shape(b, MAX_DEPTH).is_err(), "{b:?}");
        }
        assert!(matches!(
            check_shape(&vec![b'0'; MAX_TORRENT_BYTES + 1], MAX_DEPTH),
            Err(TorrentFileError::Limit(_))
        ));
    }

    #[test]
    fn the_info_span_is_the_top_level_info_value() {
        let info = b"d6:lengthi1e4:name1:a12:piece lengthi1e6:pieces20:aaaaaaaaaaaaaaaaaaaae";
        let file = [b"d1:xli1ed4:infoi0eee4:info".as_slice(), info, b"1:zi2ee"].concat();
        let span = check_shape(&file, MAX_DEPTH).unwrap().unwrap();
        assert_eq!(&file[span], info.as_slice());
        assert_eq!(check_shape(b"l4:infoi1ee", MAX_DEPTH).unwrap(), None);
        assert_eq!(check_shape(b"d4:infoi7ee", MAX_DEPTH).unwrap(), Some(7..10));
    }

    /// Found by the `torrent_file` fuzz target's author (fuzz/regressions): a non-canonical
    /// `info` whose canonical re-encoding appears elsewhere in the file (in a comment) used to
    /// be accepted, and indexed under the hash of the comment's bytes.
    #[test]
    fn a_canonical_copy_elsewhere_in_the_file_does_not_make_info_canonical() {
        let info = b"d4:name1:a6:lengthi1e12:piece lengthi1e6:pieces20:aaaaaaaaaaaaaaaaaaaae";
        let copy = b"d6:lengthi1e4:name1:a12:piece lengthi1e6:pieces20:aaaaaaaaaaaaaaaaaaaae";
        let file = [
            b"d4:info".as_slice(),
            info,
            format!("7:comment{}:", copy.len()).as_bytes(),
            copy,
            b"e",
        ]
        .concat();
        assert_eq!(parse(&file), Err(TorrentFileError::NotCanonical));
    }

    /// Found by the `torrent_file` fuzz target: a file tree with two bad nodes was refused with
    /// one or the other error, by the random order of a `HashMap` walk.
    #[test]
    fn the_error_of_a_tree_with_several_problems_is_always_the_same() {
        let info = b"d9:file treed1:ad0:d6:lengthi-1eee1:bi3ee12:meta versioni2e4:name1:a12:piece lengthi16384ee";
        let file = [b"d4:info".as_slice(), info, b"e"].concat();
        let first = parse(&file);
        assert_eq!(
            first,
            Err(TorrentFileError::Shape(
                "a file length is missing or negative"
            ))
        );
        for _ in 0..200 {
            assert_eq!(parse(&file), first);
        }
    }

    #[test]
    fn garbage_and_non_canonical_are_refused() {
        assert!(matches!(
            parse(b"not bencode"),
            Err(TorrentFileError::Bencode(_))
        ));
        assert!(matches!(parse(b"i3e"), Err(TorrentFileError::Shape(_))));
        assert!(matches!(
            parse(b"d4:infoi3ee"),
            Err(TorrentFileError::Shape(_))
        ));
        // Keys out of order: a valid decode, but not canonical.
        let info = b"d4:name1:a6:lengthi1e12:piece lengthi1e6:pieces20:aaaaaaaaaaaaaaaaaaaae";
        let file = [b"d4:info".as_slice(), info, b"e"].concat();
        assert_eq!(parse(&file), Err(TorrentFileError::NotCanonical));
    }
}
