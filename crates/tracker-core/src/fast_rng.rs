//! A per-thread fast random number generator for peer selection and interval jitter.
//!
//! `rand::rng()` (ChaCha12, reseeding) is a cryptographic generator: more than a tracker needs
//! to pick where a peer sample starts, and measurably slower on the announce path. This keeps
//! one `SmallRng` per thread, seeded from the OS generator on first use.

use std::cell::RefCell;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

thread_local! {
    static RNG: RefCell<SmallRng> = RefCell::new(SmallRng::from_rng(&mut rand::rng()));
}

/// A uniform integer in `0..n` (`n` must be at least 1; 0 gives 0).
#[inline]
pub(crate) fn below(n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    RNG.with(|r| r.borrow_mut().random_range(0..n))
}

#[cfg(test)]
mod tests {
    #[test]
    fn covers_the_range() {
        let mut seen = [false; 10];
        for _ in 0..1000 {
            seen[super::below(10)] = true;
        }
        assert!(seen.iter().all(|s| *s));
        assert_eq!(super::below(0), 0);
        assert_eq!(super::below(1), 0);
    }
}
