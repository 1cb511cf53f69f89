//! The replication log's entry body: one compact binary batch per flush, what every other node
//! applies to its memory. A pure codec (bytes in, items out), bounded: a batch holds at most
//! [`MAX_ITEMS`] items and anything malformed is refused whole.
//!
//! Layout: a version byte ([`VERSION`]), then items, each a tag byte and fixed fields:
//!
//! | tag | item | fields |
//! |---|---|---|
//! | 1 / 2 | peer stored (IPv4 / IPv6) | info hash 20, address 6 / 18, expiry u32 BE (unix s), flags u8 (1 seeder, 2 completed counted, 4 counted by this announce) |
//! | 3 / 4 | peer removed (IPv4 / IPv6) | info hash 20, address 6 / 18 |
//! | 5 | torrent's completed count | info hash 20, count u32 BE |
//!
//! About 32 bytes per IPv4 change, against about 100 as a text field list.

use tracker_core::{Change, ChangeKind, CompactAddr, InfoHash};

/// The first byte of every batch.
pub const VERSION: u8 = 1;
/// Most items one batch may carry (the writer cuts batches well below it).
pub const MAX_ITEMS: usize = 100_000;

/// One thing a batch says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    /// A peer stored or removed.
    Change(Change),
    /// A torrent's completed count, as the cluster counted it.
    Downloaded(InfoHash, u32),
}

/// Appends `item` to `out` (which starts with [`VERSION`]; see [`start`]).
pub fn push(out: &mut Vec<u8>, item: &Item) {
    match item {
        Item::Change(c) => {
            let v6 = c.addr.is_v6();
            let tag = match (c.kind, v6) {
                (ChangeKind::Upsert, false) => 1,
                (ChangeKind::Upsert, true) => 2,
                (ChangeKind::Remove, false) => 3,
                (ChangeKind::Remove, true) => 4,
            };
            out.push(tag);
            out.extend_from_slice(&c.info_hash.0);
            out.extend_from_slice(c.addr.as_bytes());
            if c.kind == ChangeKind::Upsert {
                out.extend_from_slice(&c.expiry.to_be_bytes());
                // Flag 4 is for Redis (`flush.lua` adds the peer to the torrent's `done` set);
                // the other nodes ignore it (whether to count is decided in Redis).
                out.push(
                    u8::from(c.seeder) | u8::from(c.completed) << 1 | u8::from(c.counted) << 2,
                );
            }
        }
        Item::Downloaded(ih, n) => {
            out.push(5);
            out.extend_from_slice(&ih.0);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

/// A new batch buffer.
pub fn start() -> Vec<u8> {
    vec![VERSION]
}

/// Why a batch was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Empty, or another version than [`VERSION`].
    #[error("unknown batch version")]
    Version,
    /// An item tag that is not 1 to 5.
    #[error("unknown item tag {0}")]
    Tag(u8),
    /// The bytes end inside an item.
    #[error("truncated item")]
    Truncated,
    /// More than [`MAX_ITEMS`] items.
    #[error("more than {MAX_ITEMS} items")]
    TooLong,
}

/// Decodes a whole batch; nothing of a malformed one is returned.
pub fn decode(b: &[u8], out: &mut Vec<Item>) -> Result<(), BatchError> {
    let (&v, mut rest) = b.split_first().ok_or(BatchError::Version)?;
    if v != VERSION {
        return Err(BatchError::Version);
    }
    let start = out.len();
    let r = (|| {
        while let Some((&tag, r)) = rest.split_first() {
            if out.len() - start >= MAX_ITEMS {
                return Err(BatchError::TooLong);
            }
            let alen = match tag {
                1 | 3 => 6,
                2 | 4 => 18,
                5 => 0,
                t => return Err(BatchError::Tag(t)),
            };
            let tail = match tag {
                1 | 2 => 5,
                3 | 4 => 0,
                _ => 4,
            };
            let need = 20 + alen + tail;
            if r.len() < need {
                return Err(BatchError::Truncated);
            }
            let (item, r) = r.split_at(need);
            rest = r;
            let mut ih = [0u8; 20];
            ih.copy_from_slice(&item[..20]);
            let info_hash = InfoHash(ih);
            let u32_at =
                |i: usize| u32::from_be_bytes([item[i], item[i + 1], item[i + 2], item[i + 3]]);
            if tag == 5 {
                out.push(Item::Downloaded(info_hash, u32_at(20)));
                continue;
            }
            let addr =
                CompactAddr::from_bytes(&item[20..20 + alen]).ok_or(BatchError::Truncated)?;
            let upsert = tag <= 2;
            let flags = if upsert { item[need - 1] } else { 0 };
            out.push(Item::Change(Change {
                info_hash,
                addr,
                kind: if upsert {
                    ChangeKind::Upsert
                } else {
                    ChangeKind::Remove
                },
                expiry: if upsert { u32_at(20 + alen) } else { 0 },
                seeder: flags & 1 != 0,
                completed: flags & 2 != 0,
                // Counted by the sender; never again by a receiver.
                counted: false,
            }));
        }
        Ok(())
    })();
    if r.is_err() {
        out.truncate(start);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items() -> Vec<Item> {
        let c = Change {
            info_hash: InfoHash([9; 20]),
            addr: CompactAddr::V4([1, 2, 3, 4, 0x1a, 0xe1]),
            kind: ChangeKind::Upsert,
            expiry: 1_800_000_000,
            seeder: true,
            completed: true,
            counted: false,
        };
        vec![
            Item::Change(c),
            Item::Change(Change {
                addr: CompactAddr::V6([7; 18]),
                seeder: false,
                completed: false,
                ..c
            }),
            Item::Change(Change {
                kind: ChangeKind::Remove,
                expiry: 0,
                seeder: false,
                completed: false,
                ..c
            }),
            Item::Change(Change {
                kind: ChangeKind::Remove,
                addr: CompactAddr::V6([8; 18]),
                expiry: 0,
                seeder: false,
                completed: false,
                ..c
            }),
            Item::Downloaded(InfoHash([4; 20]), 77),
        ]
    }

    #[test]
    fn round_trip() {
        let mut b = start();
        for i in items() {
            push(&mut b, &i);
        }
        assert_eq!(b.len(), 1 + 32 + 44 + 27 + 39 + 25);
        let mut out = Vec::new();
        decode(&b, &mut out).expect("decode");
        assert_eq!(out, items());
    }

    #[test]
    fn malformed_batches_are_refused_whole() {
        let mut b = start();
        for i in items() {
            push(&mut b, &i);
        }
        let mut out = vec![Item::Downloaded(InfoHash([0; 20]), 1)];
        for cut in 1..b.len() {
            let r = decode(&b[..cut], &mut out);
            // A cut exactly between items is a shorter valid batch.
            if r.is_err() {
                assert_eq!(out.len(), 1, "cut {cut}");
            }
            out.truncate(1);
        }
        assert_eq!(decode(&[], &mut out), Err(BatchError::Version));
        assert_eq!(decode(&[2, 1], &mut out), Err(BatchError::Version));
        assert_eq!(decode(&[1, 9], &mut out), Err(BatchError::Tag(9)));
        let mut long = start();
        for _ in 0..=MAX_ITEMS {
            push(&mut long, &Item::Downloaded(InfoHash([1; 20]), 1));
        }
        assert_eq!(decode(&long, &mut out), Err(BatchError::TooLong));
        assert_eq!(out.len(), 1);
    }
}
