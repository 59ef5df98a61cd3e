//! Job ids: 20 decimal digits, a UTC time stamp `%Y%m%d%H%M%S%f` like Salt's.
//!
//! The master mints them ([`Jid::from_micros`]); everyone else only parses and compares them.
//! Their order is their time order. They do not fit in a u64, so the wire carries them as str.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a string is not a jid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a jid is 20 decimal digits (%Y%m%d%H%M%S%f), got {0:?}")]
pub struct JidError(String);

/// A validated job id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Jid(String);

impl Jid {
    pub fn new(s: impl Into<String>) -> Result<Self, JidError> {
        let s = s.into();
        if s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit()) && is_time_stamp(&s) {
            Ok(Self(s))
        } else {
            let shown: String = s.chars().take(40).collect();
            Err(JidError(shown))
        }
    }

    /// The last microsecond of the year 9999: later times would not fit in 20 digits.
    pub const MAX_MICROS: u64 = 253_402_300_799_999_999;

    /// The jid for a UTC time given as microseconds since the Unix epoch (clamped to
    /// [`Jid::MAX_MICROS`]).
    pub fn from_micros(micros: u64) -> Self {
        let micros = micros.min(Self::MAX_MICROS) as i64;
        let time = jiff::Timestamp::from_microsecond(micros)
            .expect("every time up to MAX_MICROS is a timestamp");
        Self(time.strftime("%Y%m%d%H%M%S%6f").to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether the digits read as a plausible UTC time (month, day, hour, minute, second in range).
fn is_time_stamp(s: &str) -> bool {
    let field = |at: usize| s[at..at + 2].parse::<u32>().unwrap_or(99);
    (1..=12).contains(&field(4))
        && (1..=31).contains(&field(6))
        && field(8) < 24
        && field(10) < 60
        && field(12) < 60
}

impl TryFrom<String> for Jid {
    type Error = JidError;
    fn try_from(s: String) -> Result<Self, JidError> {
        Self::new(s)
    }
}

impl From<Jid> for String {
    fn from(jid: Jid) -> String {
        jid.0
    }
}

impl fmt::Display for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Jid {
    type Err = JidError;
    fn from_str(s: &str) -> Result<Self, JidError> {
        Self::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_time_stamps() {
        assert_eq!(Jid::from_micros(0).as_str(), "19700101000000000000");
        // 2026-11-25T13:02:01.123456Z
        assert_eq!(
            Jid::from_micros(1_795_611_721_123_456).as_str(),
            "20261125130201123456"
        );
        assert_eq!(
            Jid::from_micros(951_782_400_000_001).as_str(),
            "20000229000000000001"
        );
    }

    #[test]
    fn parses_only_twenty_digits() {
        assert!(Jid::new("20261125130201123456").is_ok());
        for bad in [
            "0",
            "18446744073709551615",
            "2026112513020112345x",
            "",
            "00000000000000000000",
            "20261325130201123456",
            "202611251302011234567",
        ] {
            assert!(Jid::new(bad).is_err(), "{bad} accepted");
        }
    }
}
