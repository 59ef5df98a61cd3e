//! Medians, minimums and maximums of repeated measurements, and how the report writes them.

use std::time::Duration;

/// The spread of one figure over repeated runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub runs: usize,
}

impl Summary {
    /// The summary of `samples`; `None` when there are none. An even count's median is the
    /// mean of the two middle samples.
    pub fn of(samples: &[f64]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let mid = sorted.len() / 2;
        let median = if sorted.len() % 2 == 1 {
            sorted[mid]
        } else {
            (sorted[mid - 1] + sorted[mid]) / 2.0
        };
        Some(Self {
            median,
            min: sorted[0],
            max: sorted[sorted.len() - 1],
            runs: sorted.len(),
        })
    }

    /// The summary of durations, in milliseconds.
    pub fn of_millis(samples: &[Duration]) -> Option<Self> {
        Self::of(&samples.iter().map(millis).collect::<Vec<_>>())
    }
}

/// A duration in (fractional) milliseconds.
pub fn millis(d: &Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Milliseconds with a precision that suits their size: `0.84 ms`, `12.3 ms`, `1234 ms`.
pub fn fmt_ms(ms: f64) -> String {
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

/// Bytes as MB (10^6), the unit of the targets.
pub fn fmt_mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// A rate per second, rounded to a whole number.
pub fn fmt_rate(per_second: f64) -> String {
    format!("{per_second:.0}/s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let s = Summary::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.runs), (2.0, 1.0, 3.0, 3));
        let s = Summary::of(&[4.0, 1.0, 2.0, 3.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 4.0));
        assert_eq!(Summary::of(&[]), None);
    }

    #[test]
    fn milliseconds_keep_three_significant_digits() {
        assert_eq!(fmt_ms(0.8432), "0.84 ms");
        assert_eq!(fmt_ms(12.34), "12.3 ms");
        assert_eq!(fmt_ms(1234.4), "1234 ms");
        assert_eq!(fmt_mb(12_345_678), "12.3 MB");
    }
}
