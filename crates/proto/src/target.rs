//! Target expressions: which minions a job is for.
//!
//! The master matches a [`Target`] against its registry to know the expected minions; each
//! minion matches the same target against its own id and has the final say. Both use
//! [`TargetMatcher`], so they can never disagree.
//!
//! - glob (default): shell-style `*`, `?`, `[abc]`, like Salt's fnmatch;
//! - list (`-L a,b`): exact ids;
//! - regex (`-E`): a regular expression anchored at the start of the id, like Salt's `re.match`.

use serde::{Deserialize, Serialize};

/// The longest target expression accepted (in bytes).
pub const MAX_TARGET_LEN: usize = 4096;

/// A target expression as sent on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    content = "expr",
    rename_all = "snake_case",
    deny_unknown_fields
)]
pub enum Target {
    Glob(String),
    List(Vec<String>),
    Regex(String),
}

/// Why a target expression cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("target expression is longer than {MAX_TARGET_LEN} bytes")]
    TooLong,
    #[error("invalid glob {expr:?}: {reason}")]
    Glob { expr: String, reason: String },
    #[error("invalid regular expression {expr:?}: {reason}")]
    Regex { expr: String, reason: String },
    #[error("empty target list")]
    EmptyList,
}

impl Target {
    /// Parses the CLI's words: a list is comma-separated.
    pub fn list_from_str(s: &str) -> Target {
        Target::List(
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
        )
    }

    /// Compiles the expression once; matching is then cheap.
    pub fn compile(&self) -> Result<TargetMatcher, TargetError> {
        match self {
            Target::Glob(expr) => {
                check_len(expr.len())?;
                // fnmatch treats `**` as `*`; the glob crate would refuse it.
                let mut collapsed = String::with_capacity(expr.len());
                for c in expr.chars() {
                    if !(c == '*' && collapsed.ends_with('*')) {
                        collapsed.push(c);
                    }
                }
                glob::Pattern::new(&collapsed)
                    .map(TargetMatcher::Glob)
                    .map_err(|e| TargetError::Glob {
                        expr: expr.clone(),
                        reason: e.msg.to_string(),
                    })
            }
            Target::List(ids) => {
                check_len(ids.iter().map(|s| s.len() + 1).sum())?;
                if ids.is_empty() {
                    return Err(TargetError::EmptyList);
                }
                let mut ids = ids.clone();
                ids.sort();
                ids.dedup();
                Ok(TargetMatcher::List(ids))
            }
            Target::Regex(expr) => {
                check_len(expr.len())?;
                regex::RegexBuilder::new(&format!("^(?:{expr})"))
                    .size_limit(1 << 20)
                    .build()
                    .map(TargetMatcher::Regex)
                    .map_err(|e| TargetError::Regex {
                        expr: expr.clone(),
                        reason: e.to_string(),
                    })
            }
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Glob(expr) => write!(f, "{expr}"),
            Target::List(ids) => write!(f, "L@{}", ids.join(",")),
            Target::Regex(expr) => write!(f, "E@{expr}"),
        }
    }
}

fn check_len(len: usize) -> Result<(), TargetError> {
    if len > MAX_TARGET_LEN {
        Err(TargetError::TooLong)
    } else {
        Ok(())
    }
}

/// A compiled [`Target`].
#[derive(Debug, Clone)]
pub enum TargetMatcher {
    Glob(glob::Pattern),
    List(Vec<String>),
    Regex(regex::Regex),
}

impl TargetMatcher {
    pub fn matches(&self, id: &str) -> bool {
        match self {
            TargetMatcher::Glob(p) => p.matches_with(
                id,
                glob::MatchOptions {
                    case_sensitive: true,
                    require_literal_separator: false,
                    require_literal_leading_dot: false,
                },
            ),
            TargetMatcher::List(ids) => ids.binary_search_by(|x| x.as_str().cmp(id)).is_ok(),
            TargetMatcher::Regex(re) => re.is_match(id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(t: Target, id: &str) -> bool {
        t.compile().unwrap().matches(id)
    }

    #[test]
    fn glob_list_and_regex_match_like_salt() {
        assert!(m(Target::Glob("*".into()), "web1"));
        assert!(m(Target::Glob("web*".into()), "web1.example.com"));
        assert!(!m(Target::Glob("web?".into()), "web10"));
        assert!(m(Target::Glob("web[12]".into()), "web2"));
        assert!(m(Target::Glob("**b**".into()), "web1"));
        assert!(m(Target::list_from_str("db1, web2"), "web2"));
        assert!(!m(Target::list_from_str("db1,web2"), "web"));
        // Anchored at the start, like re.match; `$` anchors the end.
        assert!(m(Target::Regex("web[0-9]+".into()), "web12x"));
        assert!(!m(Target::Regex("eb".into()), "web1"));
        assert!(!m(Target::Regex("db2$".into()), "db20"));
    }

    #[test]
    fn bad_expressions_are_errors() {
        assert!(Target::Regex("(".into()).compile().is_err());
        assert!(Target::Glob("[".into()).compile().is_err());
        assert!(Target::List(vec![]).compile().is_err());
        assert!(Target::Glob("a".repeat(5000)).compile().is_err());
    }
}
