//! Target expressions: which minions a job is for.
//!
//! The master matches a [`Target`] against its registry (every known minion's id and the grains
//! it last reported) to know the expected minions; each minion matches the same target against
//! its own id and grains and has the final say. Both use [`TargetMatcher`], so they can only
//! disagree while a minion's grain update is on its way.
//!
//! - glob (default): shell-style `*`, `?`, `[abc]` on the id, Salt's fnmatch ([`crate::fnmatch`]);
//! - list (`-L a,b`): exact ids;
//! - regex (`-E`): a regular expression anchored at the start of the id, like Salt's `re.match`;
//! - grain (`-G os:Debian`) and grain regex (`-P 'os:(Debian|Ubuntu)'`): `key:value`, nested
//!   keys walked with the delimiter, the value matched as a glob or a regex, without regard to
//!   case, against a scalar grain or any item of a list grain (Salt's `subdict_match`);
//! - ipcidr (`-S 10.0.0.0/8`): a network or one address, against the `ipv4` and `ipv6` grains;
//! - compound (`-C`): the above as `G@ P@ E@ L@ S@` words (a bare word is an id glob) joined by
//!   `and`, `or`, `not` and parentheses, parsed into a tree ([`compound`]);
//! - nodegroup (`-N name`, `N@name` in a compound): a compound expression named in the
//!   master's configuration. Only the master knows them: it expands them before it resolves or
//!   publishes a target ([`Target::expand_nodegroups`]), so a minion never sees one.

mod compound;
mod grain;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::fnmatch::Fnmatch;
use crate::Map;

/// The longest target expression accepted (in bytes), also after nodegroups are expanded.
pub const MAX_TARGET_LEN: usize = 4096;

/// The most patterns (globs and regular expressions, each grain expression's splits counted)
/// one compound target may compile: every minion compiles every publication's target.
pub const MAX_TARGET_PATTERNS: usize = 64;

/// The delimiter of grain expressions unless `--delimiter` names another, as in Salt.
pub const DEFAULT_DELIMITER: char = ':';

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
    Grain(GrainExpr),
    GrainPcre(GrainExpr),
    Ipcidr(String),
    Compound(String),
    /// Expanded by the master into a `compound` before it goes to any minion.
    Nodegroup(String),
}

/// A grain expression: `key:value` with its delimiter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrainExpr {
    /// Keys then the value pattern, joined by `delimiter`: `os:Debian`, `ipv4:10.*`.
    pub pattern: String,
    pub delimiter: char,
}

impl GrainExpr {
    /// An expression with the default delimiter `:`.
    pub fn new(pattern: impl Into<String>) -> Self {
        Self {
            pattern: pattern.into(),
            delimiter: DEFAULT_DELIMITER,
        }
    }
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
    #[error("{id:?} in a target list is not a minion id: {reason}")]
    ListId { id: String, reason: String },
    #[error("invalid grain target {expr:?}: {reason}")]
    Grain { expr: String, reason: String },
    #[error("invalid address or network {expr:?}: {reason}")]
    Ipcidr { expr: String, reason: String },
    /// `pos` is the byte offset of the offending token in `expr`.
    #[error("invalid compound target: {reason}\n  {expr}\n  {caret}", caret = caret(expr, *pos))]
    Compound {
        expr: String,
        pos: usize,
        reason: String,
    },
    #[error("no nodegroup {0:?} in the master's configuration")]
    UnknownNodegroup(String),
    #[error("nodegroup {0:?} can only be resolved by the master")]
    NodegroupNotExpanded(String),
}

/// A line that points under byte `pos` of `expr`.
fn caret(expr: &str, pos: usize) -> String {
    let column = expr
        .get(..pos.min(expr.len()))
        .map_or(0, |before| before.chars().count());
    format!("{}^", " ".repeat(column))
}

impl Target {
    /// Parses the CLI's words: a list is comma-separated.
    pub fn list_from_str(s: &str) -> Target {
        Target::List(split_list(s))
    }

    /// Compiles the expression once; matching is then cheap. A nodegroup must have been
    /// expanded first.
    pub fn compile(&self) -> Result<TargetMatcher, TargetError> {
        check_len(self.len())?;
        let root = match self {
            Target::Glob(expr) => Node::Leaf(Leaf::glob(expr)?),
            Target::List(ids) => Node::Leaf(Leaf::list(ids.clone())?),
            Target::Regex(expr) => Node::Leaf(Leaf::regex(expr)?),
            Target::Grain(g) => Node::Leaf(Leaf::Grain(grain::GrainMatcher::glob(g)?)),
            Target::GrainPcre(g) => Node::Leaf(Leaf::Grain(grain::GrainMatcher::regex(g)?)),
            Target::Ipcidr(expr) => Node::Leaf(Leaf::ipcidr(expr)?),
            Target::Compound(expr) => compound::parse(expr, compound::Nodegroups::Refused)?,
            Target::Nodegroup(name) => return Err(TargetError::NodegroupNotExpanded(name.clone())),
        };
        Ok(TargetMatcher { root })
    }

    /// Checks the expression as far as it can be checked without the master's nodegroups (what
    /// the CLI does before it sends a target): a nodegroup's name is taken as given.
    pub fn validate(&self) -> Result<(), TargetError> {
        check_len(self.len())?;
        match self {
            Target::Nodegroup(_) => Ok(()),
            Target::Compound(expr) => {
                compound::parse(expr, compound::Nodegroups::Unchecked).map(drop)
            }
            other => other.compile().map(drop),
        }
    }

    /// Replaces every nodegroup (`-N name`, or `N@name` inside a compound) by its definition,
    /// nodegroups within nodegroups too. Other targets come back as they are.
    pub fn expand_nodegroups(
        &self,
        groups: &BTreeMap<String, String>,
    ) -> Result<Target, TargetError> {
        let expanded = match self {
            Target::Nodegroup(name) => {
                let definition = groups
                    .get(name)
                    .ok_or_else(|| TargetError::UnknownNodegroup(name.clone()))?;
                Target::Compound(compound::expand(definition, groups, 1)?)
            }
            Target::Compound(expr) => Target::Compound(compound::expand(expr, groups, 0)?),
            other => other.clone(),
        };
        check_len(expanded.len())?;
        Ok(expanded)
    }

    fn len(&self) -> usize {
        match self {
            Target::List(ids) => ids.iter().map(|s| s.len() + 1).sum(),
            Target::Glob(expr)
            | Target::Regex(expr)
            | Target::Ipcidr(expr)
            | Target::Compound(expr)
            | Target::Nodegroup(expr) => expr.len(),
            Target::Grain(g) | Target::GrainPcre(g) => g.pattern.len(),
        }
    }
}

/// Salt's spelling of a target: the expression as typed for a glob or compound, otherwise
/// with its compound prefix (`L@`, `G@`, ...).
impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let grain = |f: &mut std::fmt::Formatter<'_>, letter: char, g: &GrainExpr| {
            if g.delimiter == DEFAULT_DELIMITER {
                write!(f, "{letter}@{}", g.pattern)
            } else {
                write!(f, "{letter}{}@{}", g.delimiter, g.pattern)
            }
        };
        match self {
            Target::Glob(expr) | Target::Compound(expr) => write!(f, "{expr}"),
            Target::List(ids) => write!(f, "L@{}", ids.join(",")),
            Target::Regex(expr) => write!(f, "E@{expr}"),
            Target::Grain(g) => grain(f, 'G', g),
            Target::GrainPcre(g) => grain(f, 'P', g),
            Target::Ipcidr(expr) => write!(f, "S@{expr}"),
            Target::Nodegroup(name) => write!(f, "N@{name}"),
        }
    }
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn check_len(len: usize) -> Result<(), TargetError> {
    if len > MAX_TARGET_LEN {
        Err(TargetError::TooLong)
    } else {
        Ok(())
    }
}

/// A compiled [`Target`]: a tree of `and`, `or` and `not` over simple matchers.
#[derive(Debug, Clone)]
pub struct TargetMatcher {
    root: Node,
}

#[derive(Debug, Clone)]
enum Node {
    Leaf(Leaf),
    Not(Box<Node>),
    And(Vec<Node>),
    Or(Vec<Node>),
}

#[derive(Debug, Clone)]
enum Leaf {
    Glob(Fnmatch),
    List(Vec<String>),
    Regex(regex::Regex),
    Grain(grain::GrainMatcher),
    Ipcidr(ipnet::IpNet),
}

impl Leaf {
    fn glob(expr: &str) -> Result<Self, TargetError> {
        Fnmatch::new(expr)
            .map(Leaf::Glob)
            .map_err(|reason| TargetError::Glob {
                expr: expr.to_owned(),
                reason,
            })
    }

    fn list(mut ids: Vec<String>) -> Result<Self, TargetError> {
        if ids.is_empty() {
            return Err(TargetError::EmptyList);
        }
        // The master answers for each id of a list, so each must be one.
        if let Some((id, err)) = ids
            .iter()
            .find_map(|id| crate::id::validate(id).err().map(|err| (id, err)))
        {
            return Err(TargetError::ListId {
                id: id.clone(),
                reason: err.to_string(),
            });
        }
        ids.sort();
        ids.dedup();
        Ok(Leaf::List(ids))
    }

    fn regex(expr: &str) -> Result<Self, TargetError> {
        anchored_regex(expr, false)
            .map(Leaf::Regex)
            .map_err(|reason| TargetError::Regex {
                expr: expr.to_owned(),
                reason,
            })
    }

    fn ipcidr(expr: &str) -> Result<Self, TargetError> {
        let expr = expr.trim();
        let net = match expr.parse::<ipnet::IpNet>() {
            Ok(net) => Ok(net),
            Err(_) => expr.parse::<std::net::IpAddr>().map(ipnet::IpNet::from),
        };
        net.map(Leaf::Ipcidr).map_err(|e| TargetError::Ipcidr {
            expr: expr.to_owned(),
            reason: e.to_string(),
        })
    }

    /// The regular expressions and glob patterns this leaf compiled.
    fn patterns(&self) -> usize {
        match self {
            Leaf::Grain(g) => g.patterns(),
            Leaf::Glob(_) | Leaf::Regex(_) => 1,
            Leaf::List(_) | Leaf::Ipcidr(_) => 0,
        }
    }

    fn matches(&self, id: &str, grains: &Map) -> bool {
        match self {
            Leaf::Glob(p) => p.matches(id),
            Leaf::List(ids) => ids.binary_search_by(|x| x.as_str().cmp(id)).is_ok(),
            Leaf::Regex(re) => re.is_match(id),
            Leaf::Grain(g) => g.matches(grains),
            Leaf::Ipcidr(net) => ["ipv4", "ipv6"]
                .iter()
                .filter_map(|key| grains.get(*key))
                .flat_map(|v| match v {
                    crate::Value::Array(items) => items.iter().collect::<Vec<_>>(),
                    other => vec![other],
                })
                .filter_map(|v| v.as_str()?.parse::<std::net::IpAddr>().ok())
                .any(|addr| net.contains(&addr)),
        }
    }
}

/// A regular expression matched from the start, like Python's `re.match`, with a bounded
/// compiled size.
fn anchored_regex(expr: &str, case_insensitive: bool) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(&format!("^(?:{expr})"))
        .case_insensitive(case_insensitive)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| e.to_string())
}

impl TargetMatcher {
    /// Whether the minion `id`, whose grains are `grains`, is targeted.
    pub fn matches(&self, id: &str, grains: &Map) -> bool {
        self.root.matches(id, grains)
    }

    /// Whether `id` matches, for targets that look at ids only (a grain or address part
    /// matches nothing without grains).
    pub fn matches_id(&self, id: &str) -> bool {
        self.matches(id, &Map::new())
    }

    /// The ids the target names outright, sorted and once each: those of a list (`-L`, or
    /// `L@` in a compound) that is not under a `not`. The master answers for each of them,
    /// also when it knows no such minion (Salt's "missing" minions).
    pub fn named_ids(&self) -> Vec<&str> {
        let mut ids = Vec::new();
        self.root.named_ids(&mut ids);
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

impl Node {
    fn named_ids<'a>(&'a self, ids: &mut Vec<&'a str>) {
        match self {
            Node::Leaf(Leaf::List(list)) => ids.extend(list.iter().map(String::as_str)),
            Node::Leaf(_) | Node::Not(_) => {}
            Node::And(all) | Node::Or(all) => all.iter().for_each(|n| n.named_ids(ids)),
        }
    }

    fn matches(&self, id: &str, grains: &Map) -> bool {
        match self {
            Node::Leaf(leaf) => leaf.matches(id, grains),
            Node::Not(inner) => !inner.matches(id, grains),
            Node::And(all) => all.iter().all(|n| n.matches(id, grains)),
            Node::Or(any) => any.iter().any(|n| n.matches(id, grains)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(t: Target, id: &str) -> bool {
        t.compile().unwrap().matches_id(id)
    }

    fn grains() -> Map {
        match json!({
            "os": "Debian",
            "osrelease": "12",
            "num_cpus": 4,
            "virtual": false,
            "roles": ["web", "cache"],
            "ipv4": ["127.0.0.1", "10.1.2.3"],
            "ipv6": ["::1", "fe80::1"],
            "pkg": {"apache": "2.4", "nested": {"deep": "x:y"}},
            "motd": "a:b",
        }) {
            serde_json::Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    fn g(t: Target) -> bool {
        t.compile().unwrap().matches("web1", &grains())
    }

    #[test]
    fn the_named_ids_are_those_of_lists_not_under_a_not() {
        let named = |t: Target| -> Vec<String> {
            let matcher = t.compile().unwrap();
            matcher.named_ids().iter().map(|s| s.to_string()).collect()
        };
        assert_eq!(
            named(Target::list_from_str("web2,ghost,web2")),
            ["ghost", "web2"]
        );
        assert_eq!(
            named(Target::Compound(
                "L@a,b and G@os:Debian or (L@c and not L@d) or web*".into()
            )),
            ["a", "b", "c"]
        );
        assert!(named(Target::Glob("web1".into())).is_empty());
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
    fn grains_match_values_lists_and_nested_keys_without_regard_to_case() {
        let grain = |p: &str| g(Target::Grain(GrainExpr::new(p)));
        assert!(grain("os:Debian"));
        assert!(grain("os:debian"), "case does not matter, as in Salt");
        assert!(grain("os:Deb*"));
        assert!(!grain("os:Ubuntu"));
        assert!(grain("num_cpus:4"));
        assert!(grain("virtual:false"));
        assert!(grain("roles:cache"), "any item of a list");
        assert!(!grain("roles:db"));
        assert!(grain("pkg:apache:2.*"), "nested keys");
        assert!(
            grain("pkg:nested:deep:x:y"),
            "the value may hold the delimiter"
        );
        assert!(grain("motd:a:b"), "the shortest key is tried first");
        assert!(grain("pkg:*"), "a map matches `*`");
        assert!(grain("pkg:apache"), "a map matches one of its keys");
        assert!(grain("ipv4:0:127.0.0.1"), "list items by index");
        assert!(!grain("missing:*"));
        let semicolon = GrainExpr {
            pattern: "pkg;apache;2.4".into(),
            delimiter: ';',
        };
        assert!(g(Target::Grain(semicolon)));
        let pcre = |p: &str| g(Target::GrainPcre(GrainExpr::new(p)));
        assert!(pcre("os:(Debian|Ubuntu)"));
        assert!(pcre("os:deb"), "anchored at the start only, like re.match");
        assert!(!pcre("os:ebian"));
        assert!(pcre("osrelease:1[0-9]$"));
    }

    #[test]
    fn ipcidr_matches_networks_and_addresses_in_the_ip_grains() {
        let s = |e: &str| g(Target::Ipcidr(e.into()));
        assert!(s("10.0.0.0/8"));
        assert!(s("10.1.2.3"));
        assert!(!s("192.168.0.0/16"));
        assert!(s("fe80::/10"));
        assert!(!m(Target::Ipcidr("10.0.0.0/8".into()), "web1"), "no grains");
    }

    #[test]
    fn bad_expressions_are_errors() {
        assert!(Target::Regex("(".into()).compile().is_err());
        assert!(
            m(Target::Glob("[".into()), "["),
            "fnmatch: a lone [ is itself"
        );
        assert!(Target::List(vec![]).compile().is_err());
        assert!(Target::Glob("a".repeat(5000)).compile().is_err());
        assert!(Target::Ipcidr("10.0.0.0/33".into()).compile().is_err());
        assert!(Target::Ipcidr("web1".into()).compile().is_err());
        let err = Target::Grain(GrainExpr::new("os")).compile().unwrap_err();
        assert!(err.to_string().contains("key:value"), "{err}");
        assert_eq!(
            Target::Nodegroup("web".into()).compile().unwrap_err(),
            TargetError::NodegroupNotExpanded("web".into())
        );
        assert!(Target::Nodegroup("web".into()).validate().is_ok());
        assert!(Target::Compound("N@web and G@os:x".into())
            .validate()
            .is_ok());
        assert!(Target::Compound("N@web and".into()).validate().is_err());
    }

    #[test]
    fn display_is_salts_spelling() {
        assert_eq!(Target::list_from_str("a,b").to_string(), "L@a,b");
        assert_eq!(
            Target::Grain(GrainExpr::new("os:Debian")).to_string(),
            "G@os:Debian"
        );
        let g = GrainExpr {
            pattern: "os;Debian".into(),
            delimiter: ';',
        };
        assert_eq!(Target::GrainPcre(g).to_string(), "P;@os;Debian");
        assert_eq!(Target::Nodegroup("web".into()).to_string(), "N@web");
    }
}
