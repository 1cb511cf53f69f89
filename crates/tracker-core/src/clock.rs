//! A coarse clock: one atomic holding unix seconds, ticked by the daemon once a second.
//!
//! Requests read it with one relaxed load instead of calling `Instant::now()`. Tests drive it
//! by hand with [`Clock::set`] and [`Clock::advance`].

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Unix seconds now, from the system clock (0 if the clock is before 1970, saturating in 2106).
pub fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
        .unwrap_or(0)
}

/// Seconds since the unix epoch, shared by every worker.
#[derive(Debug)]
pub struct Clock(AtomicU32);

impl Clock {
    /// A clock set to the system time now.
    pub fn system() -> Self {
        Self(AtomicU32::new(unix_now()))
    }

    /// A clock set to `secs`, for tests.
    pub fn manual(secs: u32) -> Self {
        Self(AtomicU32::new(secs))
    }

    /// The current coarse time in unix seconds.
    #[inline]
    pub fn now(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }

    /// Re-reads the system clock. The daemon calls this once a second.
    pub fn tick(&self) {
        self.0.store(unix_now(), Ordering::Relaxed);
    }

    /// Sets the time (tests).
    pub fn set(&self, secs: u32) {
        self.0.store(secs, Ordering::Relaxed);
    }

    /// Moves the time forward by `secs` (tests).
    pub fn advance(&self, secs: u32) {
        self.0.fetch_add(secs, Ordering::Relaxed);
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}
