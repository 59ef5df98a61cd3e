//! Grain matching, as Salt's `subdict_match` does it.
//!
//! `pkg:apache:2.*` is split at every delimiter into a key path and a value pattern, shortest
//! key first: `pkg` → `apache:2.*`, then `pkg:apache` → `2.*`; the grains match when any split
//! does. A key path walks maps by key and lists by index; the value it reaches matches when it
//! is a scalar whose text matches, a list with a matching item, or a map with a matching key
//! (or the pattern `*`). Text and pattern are compared in lower case.

use super::{anchored_regex, GrainExpr, TargetError};
use crate::fnmatch::Fnmatch;
use crate::{Map, Value};

/// A compiled grain expression.
#[derive(Debug, Clone)]
pub(super) struct GrainMatcher {
    delimiter: char,
    /// Every way of splitting the expression, shortest key path first.
    splits: Vec<(String, ValuePattern)>,
}

#[derive(Debug, Clone)]
enum ValuePattern {
    Glob { pattern: Fnmatch, star: bool },
    Regex(regex::Regex),
}

impl ValuePattern {
    fn matches_text(&self, text: &str) -> bool {
        let text = text.to_lowercase();
        match self {
            ValuePattern::Glob { pattern, .. } => pattern.matches(&text),
            ValuePattern::Regex(re) => re.is_match(&text),
        }
    }

    fn matches(&self, value: &Value) -> bool {
        match value {
            Value::Array(items) => items.iter().any(|item| self.matches(item)),
            Value::Object(map) => {
                matches!(self, ValuePattern::Glob { star: true, .. })
                    || map.keys().any(|k| self.matches_text(k))
            }
            Value::String(s) => self.matches_text(s),
            Value::Null => self.matches_text("none"),
            other => self.matches_text(&other.to_string()),
        }
    }
}

impl GrainMatcher {
    /// `-G` / `G@`: the value is a glob.
    pub(super) fn glob(expr: &GrainExpr) -> Result<Self, TargetError> {
        Self::new(expr, |value| {
            Fnmatch::new(&value.to_lowercase()).map(|pattern| ValuePattern::Glob {
                pattern,
                star: value == "*",
            })
        })
    }

    /// `-P` / `P@`: the value is a regular expression matched from its start.
    pub(super) fn regex(expr: &GrainExpr) -> Result<Self, TargetError> {
        Self::new(expr, |value| {
            anchored_regex(value, true).map(ValuePattern::Regex)
        })
    }

    fn new(
        expr: &GrainExpr,
        compile: impl Fn(&str) -> Result<ValuePattern, String>,
    ) -> Result<Self, TargetError> {
        let error = |reason: String| TargetError::Grain {
            expr: expr.pattern.clone(),
            reason,
        };
        let d = expr.delimiter;
        let parts: Vec<&str> = expr.pattern.split(d).collect();
        if parts.len() < 2 || parts[0].is_empty() {
            return Err(error(format!(
                "a grain target is key{d}value (nested keys key{d}key{d}value)"
            )));
        }
        // A key path deeper than a message may nest never resolves: at most that many splits
        // (and compiled patterns) per expression, however many delimiters it holds.
        let deepest = parts.len().min(crate::limits::MAX_DEPTH + 1);
        let mut splits = Vec::with_capacity(deepest - 1);
        let mut first_error = None;
        for at in 1..deepest {
            let value = parts[at..].join(&d.to_string());
            match compile(&value) {
                Ok(pattern) => splits.push((parts[..at].join(&d.to_string()), pattern)),
                // A regex cut in the middle may not compile; another split may still.
                Err(reason) => {
                    first_error.get_or_insert(reason);
                }
            }
        }
        if splits.is_empty() {
            return Err(error(first_error.unwrap_or_default()));
        }
        Ok(Self {
            delimiter: d,
            splits,
        })
    }

    /// How many patterns were compiled (what a target's budget counts).
    pub(super) fn patterns(&self) -> usize {
        self.splits.len()
    }

    pub(super) fn matches(&self, grains: &Map) -> bool {
        self.splits.iter().any(|(key, pattern)| {
            lookup(grains, key, self.delimiter).is_some_and(|value| pattern.matches(value))
        })
    }
}

/// The grain at `key`, its levels separated by `delimiter`: maps by key, lists by index.
fn lookup<'a>(grains: &'a Map, key: &str, delimiter: char) -> Option<&'a Value> {
    let mut parts = key.split(delimiter);
    let mut at = grains.get(parts.next()?)?;
    for part in parts {
        at = match at {
            Value::Object(map) => map.get(part)?,
            Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(at)
}
