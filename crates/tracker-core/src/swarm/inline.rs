//! The swarm's two owning pointers with less alignment than Rust gives them, so that the swarm
//! is 32 bytes with 4-byte alignment instead of 40 with 8: `InlineBytes`, the small IPv4 list's
//! exactly sized heap bytes behind a 10-byte handle (a pointer and a `u16` length, 2-byte
//! aligned), and `PackedBox`, the extension's optional box in 8 bytes with 4-byte alignment.
//! The one place in the swarm with `unsafe` code; what the bytes and the extension hold lives in
//! `list.rs` and `mod.rs`.
//!
//! # Why
//!
//! A `Box<[u8]>` is 16 bytes (pointer and `usize` length) with 8-byte alignment. The swarm around
//! it held 16 more bytes of `u32` counters and an 8-byte extension pointer: 40 bytes, a 64-byte
//! map entry with its 20-byte key. An inline list is at most `EXACT_GROWTH_UNTIL` records of at
//! most 28 bytes (896 bytes), so its length fits a `u16`; stored with 2-byte alignment, pointer
//! and length take 10 bytes and the swarm, with `next_purge` as a `u16` offset, 32. With the
//! extension pointer 4-byte aligned as well, nothing in the swarm needs 8, and its map entry is
//! the 20-byte key and 32 bytes, 52 instead of 64 (the key's padding is gone too): about 1.7
//! bytes per peer at 10 peers per torrent, counting the map's spare buckets (DESIGN 2.6).
//!
//! # Invariant
//!
//! `ptr` and `len` are always the parts of a `Box<[u8]>` taken apart by [`InlineBytes::from_vec`]
//! (an empty box is a dangling pointer and length 0, which owns no allocation): nothing else
//! writes either field, and every path that gives the bytes back or drops them puts the same box
//! together again. The handle owns the bytes as the box did (`Send`, `Sync` as `Box<[u8]>`).
//! Likewise `PackedBox`'s pointer is always a `Box<T>`'s, from `Box::leak`, rebuilt once.

#![allow(unsafe_code)]

use std::ptr::NonNull;

/// Exactly sized owned bytes, at most `u16::MAX` of them (see the module doc).
// `packed(2)`: the pointer is read by value only (never by reference), which the compiler does
// with an unaligned load; fields of a packed struct cannot be borrowed, so none is.
#[repr(C, packed(2))]
pub(super) struct InlineBytes {
    ptr: NonNull<u8>,
    len: u16,
}

// SAFETY: `InlineBytes` owns its bytes exactly as the `Box<[u8]>` it was made from did, and
// hands out `&[u8]` only through `&self`; `Box<[u8]>` is `Send` and `Sync`.
unsafe impl Send for InlineBytes {}
// SAFETY: as above.
unsafe impl Sync for InlineBytes {}

/// The most bytes an `InlineBytes` holds.
pub(super) const INLINE_MAX: usize = u16::MAX as usize;

impl InlineBytes {
    /// No bytes (no allocation).
    pub(super) const fn new() -> Self {
        Self {
            ptr: NonNull::dangling(),
            len: 0,
        }
    }

    /// Takes `bytes` over (shrunk to its length: one `realloc` unless it is exactly full), or
    /// gives them back if there are more than [`INLINE_MAX`], which the swarm's inline lists
    /// never have (a compile-time assertion in `mod.rs` checks their largest size).
    pub(super) fn from_vec(bytes: Vec<u8>) -> Result<Self, Vec<u8>> {
        let Ok(len) = u16::try_from(bytes.len()) else {
            return Err(bytes);
        };
        // Leaked here, owned by the handle from now on; `rebuild` turns it back into the box.
        let ptr = NonNull::from(Box::leak(bytes.into_boxed_slice())).cast::<u8>();
        Ok(Self { ptr, len })
    }

    #[inline]
    pub(super) fn len(&self) -> usize {
        usize::from(self.len)
    }

    #[inline]
    pub(super) fn as_slice(&self) -> &[u8] {
        let (ptr, len) = (self.ptr, self.len);
        // SAFETY: by the invariant, `ptr`/`len` are a live `Box<[u8]>`'s parts (or dangling and
        // 0), owned by `self`, so valid for reads of `len` bytes for as long as `&self` lives.
        unsafe { std::slice::from_raw_parts(ptr.as_ptr(), usize::from(len)) }
    }

    /// Gives the bytes back as a `Vec` (no copy) and leaves `self` empty.
    pub(super) fn take(&mut self) -> Vec<u8> {
        let boxed = self.rebuild();
        self.ptr = NonNull::dangling();
        self.len = 0;
        boxed.into_vec()
    }

    /// The box this handle was made from. The caller must not let the handle use or drop it
    /// again (`take` empties the handle, `drop` is the handle's last use).
    fn rebuild(&mut self) -> Box<[u8]> {
        let (ptr, len) = (self.ptr, self.len);
        let raw = std::ptr::slice_from_raw_parts_mut(ptr.as_ptr(), usize::from(len));
        // SAFETY: by the invariant `raw` is exactly what `Box::into_raw` returned for a
        // `Box<[u8]>` of `len` bytes (same pointer, same length, so the same layout), not yet
        // rebuilt: both callers make this the last use of these parts.
        unsafe { Box::from_raw(raw) }
    }
}

impl Drop for InlineBytes {
    fn drop(&mut self) {
        drop(self.rebuild());
    }
}

impl Default for InlineBytes {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for InlineBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InlineBytes")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

/// An `Option<Box<T>>` stored with 4-byte alignment (see the module doc).
// `packed(4)`: as for `InlineBytes`, the pointer is only ever read or written by value.
#[repr(C, packed(4))]
pub(crate) struct PackedBox<T>(Option<NonNull<T>>);

// SAFETY: `PackedBox<T>` owns its `T` exactly as `Box<T>` does and lends it out only through
// `&self` / `&mut self`, so it is `Send` / `Sync` when `Box<T>` is.
unsafe impl<T: Send> Send for PackedBox<T> {}
// SAFETY: as above.
unsafe impl<T: Sync> Sync for PackedBox<T> {}

impl<T> PackedBox<T> {
    pub(super) const fn none() -> Self {
        Self(None)
    }

    #[inline]
    pub(crate) fn is_some(&self) -> bool {
        let p = self.0;
        p.is_some()
    }

    #[inline]
    pub(crate) fn is_none(&self) -> bool {
        !self.is_some()
    }

    #[inline]
    pub(crate) fn as_deref(&self) -> Option<&T> {
        let p = self.0;
        // SAFETY: a stored pointer is a leaked `Box<T>` owned by `self` (invariant), so valid and
        // shared-borrowable for as long as `&self` is.
        p.map(|p| unsafe { p.as_ref() })
    }

    #[inline]
    pub(crate) fn as_deref_mut(&mut self) -> Option<&mut T> {
        let p = self.0;
        // SAFETY: as in `as_deref`, and `&mut self` makes this the only borrow of the `T`.
        p.map(|mut p| unsafe { p.as_mut() })
    }

    /// The `T`, created with `make` if there is none.
    pub(super) fn get_or_insert_with(&mut self, make: impl FnOnce() -> Box<T>) -> &mut T {
        if self.is_none() {
            self.0 = Some(NonNull::from(Box::leak(make())));
        }
        match self.as_deref_mut() {
            Some(t) => t,
            None => unreachable!("just stored"),
        }
    }

    /// Drops the `T`, if any.
    pub(super) fn clear(&mut self) {
        let p = self.0;
        self.0 = None;
        if let Some(p) = p {
            // SAFETY: `p` was the stored leaked box, no longer reachable through `self`: this
            // is its last use.
            drop(unsafe { Box::from_raw(p.as_ptr()) });
        }
    }
}

impl<T> Drop for PackedBox<T> {
    fn drop(&mut self) {
        self.clear();
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for PackedBox<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_deref().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ten_bytes_two_aligned() {
        assert_eq!(std::mem::size_of::<InlineBytes>(), 10);
        assert_eq!(std::mem::align_of::<InlineBytes>(), 2);
    }

    #[test]
    fn packed_box_is_eight_bytes_four_aligned() {
        assert_eq!(std::mem::size_of::<PackedBox<[u64; 8]>>(), 8);
        assert_eq!(std::mem::align_of::<PackedBox<[u64; 8]>>(), 4);
        let mut b = PackedBox::<Vec<u32>>::none();
        assert!(b.is_none() && b.as_deref().is_none());
        b.get_or_insert_with(Box::default).push(7);
        b.get_or_insert_with(|| unreachable!("there is one"))
            .push(8);
        assert_eq!(b.as_deref(), Some(&vec![7, 8]));
        b.clear();
        assert!(b.as_deref_mut().is_none());
        b.get_or_insert_with(Box::default).push(9);
        assert_eq!(format!("{b:?}"), "Some([9])");
    }

    #[test]
    fn too_long_is_refused() {
        assert!(InlineBytes::from_vec(vec![1; INLINE_MAX]).is_ok());
        let back = InlineBytes::from_vec(vec![1; INLINE_MAX + 1]).expect_err("too long");
        assert_eq!(back.len(), INLINE_MAX + 1);
    }

    /// An unaligned home: the handle at an odd 2-byte offset, as inside the swarm.
    #[repr(C)]
    struct Odd {
        _a: u16,
        b: InlineBytes,
    }

    proptest! {
        /// Round trips through the handle keep every byte, with the handle 2-byte aligned. A
        /// wrong length or pointer shows here as wrong bytes; a leak or a double free shows when
        /// the test runs under valgrind (command in DESIGN 2.3).
        #[test]
        fn round_trips(lists in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..900), 1..12)) {
            let mut h = Odd { _a: 7, b: InlineBytes::new() };
            for list in &lists {
                let old = h.b.take();
                let mut v = list.clone();
                v.reserve(old.len());
                h.b = InlineBytes::from_vec(v).expect("short");
                prop_assert_eq!(h.b.as_slice(), &list[..]);
                prop_assert_eq!(h.b.len(), list.len());
            }
            let last = h.b.take();
            prop_assert_eq!(&last, lists.last().expect("one"));
            prop_assert_eq!(h.b.len(), 0);
            prop_assert!(h.b.as_slice().is_empty());
        }
    }
}
