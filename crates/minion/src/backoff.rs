//! The pause between two attempts to reach the master, shared by the SUB and REQ sides.

use std::time::Duration;

use rand::Rng;

/// The pause after `failures` failed attempts in a row (at least 1): exponential from 100 ms,
/// capped at `max`, with ±50 % jitter so that a fleet which lost its master does not come back
/// in step.
pub fn jittered(failures: u32, max: Duration) -> Duration {
    let base = Duration::from_millis(100)
        .saturating_mul(1u32 << failures.clamp(1, 17).saturating_sub(1))
        .min(max);
    base.mul_f64(rand::rng().random_range(0.5..1.5)).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_is_capped_and_is_spread() {
        let max = Duration::from_secs(10);
        for _ in 0..100 {
            let first = jittered(1, max);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(150));
            assert!(jittered(30, max) <= max);
            assert!(jittered(30, max) >= max / 2);
        }
        let samples: std::collections::BTreeSet<_> = (0..20).map(|_| jittered(5, max)).collect();
        assert!(samples.len() > 10, "jitter spreads the pauses: {samples:?}");
    }
}
