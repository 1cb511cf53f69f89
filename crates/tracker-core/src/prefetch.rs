//! Software prefetch: telling the CPU which cache lines an announce is about to read, so that
//! the misses of independent loads overlap instead of following one another.
//!
//! With a million torrents the swarm table and the peer lists are far larger than the caches,
//! and an announce is a chain of dependent loads (table slot, swarm record, peer list, the
//! peers chosen for the reply). Each link that misses stalls for a memory round trip; measured
//! under the UDP load benchmark, those stalls were most of the user-space time per packet.
//! Prefetching a line whose address is already known (the next packets' table slots, the reply
//! window of a list) lets those round trips run while other work goes on.
//!
//! A prefetch is only a hint: it never faults, whatever the address (a stale or dangling one
//! included), never changes memory, and has no effect a program can observe except timing.
//! Elsewhere than x86-64 these functions do nothing.
#![allow(unsafe_code)]

/// Asks for the cache line holding `addr` (any address, valid or not).
#[inline(always)]
pub(crate) fn line(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: PREFETCHT0 is a hint: it cannot fault on any address, it writes nothing, and it
        // does not dereference `addr` in the language's sense; no memory is read or written.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(addr as *const i8) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}

/// Asks for every cache line of the `len` bytes at `start`, at most `max_lines` of them.
#[inline(always)]
pub(crate) fn lines(start: usize, len: usize, max_lines: usize) {
    let first = start & !63;
    let span = start.saturating_add(len) - first;
    let count = span.div_ceil(64).min(max_lines);
    for k in 0..count {
        line(first.wrapping_add(k * 64));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_address_is_fine() {
        // Null, unmapped, kernel-half and wrapping addresses: hints, never faults.
        for a in [0usize, 1, 4096, usize::MAX - 63, 0xffff_8000_0000_0000] {
            line(a);
            lines(a, 1 << 20, 16);
        }
        let v = vec![0u8; 1000];
        lines(v.as_ptr() as usize, v.len(), 64);
    }
}
