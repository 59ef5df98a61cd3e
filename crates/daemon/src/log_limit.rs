//! [`LogLimiter`]: how a daemon logs what peers can cause as often as they like (refused
//! connections, unknown keys) without letting them fill its log.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use tracing::warn;

/// Lets the first few warnings of each 10-second window through; the rest of a flood goes
/// to `debug!`, and the next window starts with how many were held back.
#[derive(Debug)]
pub struct LogLimiter {
    /// What the warnings are about, for the line that counts the held-back ones.
    what: &'static str,
    epoch: Instant,
    window: AtomicU64,
    logged: AtomicU32,
    suppressed: AtomicU64,
}

impl LogLimiter {
    pub const WINDOW_SECS: u64 = 10;
    pub const PER_WINDOW: u32 = 20;

    pub fn new(what: &'static str) -> Self {
        Self {
            what,
            epoch: Instant::now(),
            window: AtomicU64::new(0),
            logged: AtomicU32::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Whether this warning may be logged at its own level; if not, log it at `debug!`.
    pub fn admit(&self) -> bool {
        let now = self.epoch.elapsed().as_secs() / Self::WINDOW_SECS;
        let window = self.window.load(Ordering::Relaxed);
        if now != window
            && self
                .window
                .compare_exchange(window, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.logged.store(0, Ordering::Relaxed);
            let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
            if suppressed > 0 {
                warn!(
                    what = self.what,
                    suppressed,
                    "more such lines in the last {} s were logged at debug level",
                    Self::WINDOW_SECS
                );
            }
        }
        if self.logged.fetch_add(1, Ordering::Relaxed) < Self::PER_WINDOW {
            true
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_warnings_is_cut_short() {
        let log = LogLimiter::new("test");
        let admitted = (0..1000).filter(|_| log.admit()).count();
        assert_eq!(admitted, LogLimiter::PER_WINDOW as usize);
    }
}
