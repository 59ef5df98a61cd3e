//! Function names: the one grammar of `module.function`, two Python identifiers
//! (`[A-Za-z_][A-Za-z0-9_]*`) joined by a dot, at most [`MAX_FUNCTION_NAME_LEN`] bytes.
//!
//! A publish request carries a [`FunctionName`], so the CLI (parsing its command line) and the
//! master (decoding the request) refuse the same names with the same words.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The longest function name.
pub const MAX_FUNCTION_NAME_LEN: usize = 128;

/// Why a string is not a function name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a function name: expected module.function, such as test.ping")]
pub struct FunctionNameError(String);

/// A validated `module.function`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FunctionName(String);

impl FunctionName {
    /// Validates `s` as a function name.
    pub fn new(s: impl Into<String>) -> Result<Self, FunctionNameError> {
        let s = s.into();
        let ident = |p: &str| {
            p.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        let valid = s.len() <= MAX_FUNCTION_NAME_LEN
            && s.split_once('.')
                .is_some_and(|(module, function)| ident(module) && ident(function));
        if valid {
            Ok(Self(s))
        } else {
            // A name from the wire may be anything: the message quotes a bounded part.
            Err(FunctionNameError(
                s.chars().take(MAX_FUNCTION_NAME_LEN).collect(),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for FunctionName {
    type Error = FunctionNameError;
    fn try_from(s: String) -> Result<Self, FunctionNameError> {
        Self::new(s)
    }
}

impl From<FunctionName> for String {
    fn from(name: FunctionName) -> String {
        name.0
    }
}

impl fmt::Display for FunctionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for FunctionName {
    type Err = FunctionNameError;
    fn from_str(s: &str) -> Result<Self, FunctionNameError> {
        Self::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_two_identifiers() {
        for ok in [
            "test.ping",
            "cmd.run_all",
            "_x._y",
            "pkg2.list_pkgs",
            &format!("a.{}", "b".repeat(126)),
        ] {
            assert!(FunctionName::new(ok).is_ok(), "{ok} refused");
        }
        for bad in [
            "",
            "test",
            "test.",
            ".ping",
            "2fa.check",
            "test.2",
            "a.b.c",
            "test.pi ng",
            "tést.ping",
            "a;b.c",
            &format!("a.{}", "b".repeat(127)),
        ] {
            assert!(FunctionName::new(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            FunctionName::new("2fa.check").unwrap_err().to_string(),
            "\"2fa.check\" is not a function name: expected module.function, such as test.ping"
        );
    }
}
