//! Minion ids: the one validator for `^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$` without `..`.
//!
//! A [`MinionId`] can only be built through [`MinionId::new`] (or by deserializing, which calls
//! it), so a value of this type is always safe to use in a log line or a database key.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The longest minion id.
pub const MAX_ID_LEN: usize = 64;

/// Why a string is not a minion id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("minion id is empty")]
    Empty,
    #[error("minion id is longer than {MAX_ID_LEN} characters")]
    TooLong,
    #[error("minion id must start with a letter or digit")]
    BadStart,
    #[error("minion id may hold only letters, digits, '.', '_' and '-' (found {0:?})")]
    BadChar(char),
    #[error("minion id must not contain '..'")]
    DotDot,
}

/// A validated minion id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MinionId(String);

impl MinionId {
    /// Validates `s` as a minion id.
    pub fn new(s: impl Into<String>) -> Result<Self, IdError> {
        let s = s.into();
        validate(&s)?;
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks `s` against the minion id grammar.
pub fn validate(s: &str) -> Result<(), IdError> {
    let mut chars = s.chars();
    let first = chars.next().ok_or(IdError::Empty)?;
    if s.len() > MAX_ID_LEN {
        return Err(IdError::TooLong);
    }
    if !first.is_ascii_alphanumeric() {
        return Err(if first.is_ascii() {
            IdError::BadStart
        } else {
            IdError::BadChar(first)
        });
    }
    if let Some(bad) = chars.find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(IdError::BadChar(bad));
    }
    if s.contains("..") {
        return Err(IdError::DotDot);
    }
    Ok(())
}

impl TryFrom<String> for MinionId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::new(s)
    }
}

impl From<MinionId> for String {
    fn from(id: MinionId) -> String {
        id.0
    }
}

impl fmt::Display for MinionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for MinionId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_ids() {
        for ok in ["web1", "db-2.example.com", "A", "x_y", &"a".repeat(64)] {
            assert!(MinionId::new(ok).is_ok(), "{ok} rejected");
        }
    }

    #[test]
    fn rejects_hostile_ids() {
        let too_long = "a".repeat(65);
        for bad in [
            "", "../x", "..", ".", "a/b", "a\\b", "a\0b", "a..b", "-a", "_a", "é", "aé", "a b",
            &too_long,
        ] {
            assert!(MinionId::new(bad).is_err(), "{bad:?} accepted");
        }
    }
}
