//! Compound targets: `web* and G@os:Debian or (L@db1,db2 and not E@db2$)`.
//!
//! Words are separated by white space. A word is an operator (`and`, `or`, `not`), a
//! parenthesis, or a matcher: `G@` grain glob, `P@` grain regex, `E@` id regex, `L@` id list,
//! `S@` address or network, `N@` nodegroup (expanded by the master first), and a word without a
//! prefix is an id glob. Grain words may name another delimiter between letter and `@`
//! (`G;@pkg;apache`), as in Salt. Parentheses may touch the words they enclose: leading `(`
//! are split off a word, and so are trailing `)` that the word itself does not open (so
//! `E@(web|db)1` keeps its own).
//!
//! The words are parsed into a tree, never evaluated as code, with Python's precedence, which
//! Salt uses: `not` binds tighter than `and`, `and` tighter than `or`. An error names what was
//! expected and the byte offset of the token that was found instead.

use std::collections::BTreeMap;

use super::grain::GrainMatcher;
use super::{
    split_list, GrainExpr, Leaf, Node, TargetError, DEFAULT_DELIMITER, MAX_TARGET_LEN,
    MAX_TARGET_PATTERNS,
};

/// How deeply parentheses and `not` may nest: the parser recurses once per level.
const MAX_DEPTH: usize = 64;

/// How deeply nodegroups may name other nodegroups (a cycle ends here).
const MAX_NODEGROUP_DEPTH: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind<'a> {
    Open,
    Close,
    And,
    Or,
    Not,
    Word(&'a str),
}

#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    kind: Kind<'a>,
    /// Byte offset in the expression.
    pos: usize,
}

impl Token<'_> {
    fn text(&self) -> &str {
        match self.kind {
            Kind::Open => "(",
            Kind::Close => ")",
            Kind::And => "and",
            Kind::Or => "or",
            Kind::Not => "not",
            Kind::Word(w) => w,
        }
    }
}

fn lex(expr: &str) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let mut rest = expr;
    let mut offset = 0;
    while let Some(start) = rest.find(|c: char| !c.is_whitespace()) {
        let len = rest[start..]
            .find(char::is_whitespace)
            .unwrap_or(rest.len() - start);
        let at = offset + start;
        push_word(&rest[start..start + len], at, &mut tokens);
        offset = at + len;
        rest = &expr[offset..];
    }
    tokens
}

fn push_word<'a>(word: &'a str, at: usize, tokens: &mut Vec<Token<'a>>) {
    let opens = word.len() - word.trim_start_matches('(').len();
    for i in 0..opens {
        tokens.push(Token {
            kind: Kind::Open,
            pos: at + i,
        });
    }
    let mut end = word.len();
    let body = |end: usize| &word[opens..end];
    while end > opens
        && word[..end].ends_with(')')
        && body(end).matches(')').count() > body(end).matches('(').count()
    {
        end -= 1;
    }
    if end > opens {
        let kind = match body(end) {
            "and" => Kind::And,
            "or" => Kind::Or,
            "not" => Kind::Not,
            w => Kind::Word(w),
        };
        tokens.push(Token {
            kind,
            pos: at + opens,
        });
    }
    for i in end.max(opens)..word.len() {
        tokens.push(Token {
            kind: Kind::Close,
            pos: at + i,
        });
    }
}

struct Parser<'a> {
    expr: &'a str,
    tokens: Vec<Token<'a>>,
    next: usize,
    nodegroups: Nodegroups,
    /// Patterns compiled so far, against [`MAX_TARGET_PATTERNS`].
    patterns: usize,
}

/// What `N@name` means to the parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Nodegroups {
    /// An error: the master expands nodegroups before anything is matched.
    Refused,
    /// A check without the master's configuration (the CLI's): taken as given.
    Unchecked,
}

impl<'a> Parser<'a> {
    fn error(&self, pos: usize, reason: impl Into<String>) -> TargetError {
        TargetError::Compound {
            expr: self.expr.to_owned(),
            pos,
            reason: reason.into(),
        }
    }

    fn peek(&self) -> Option<Token<'a>> {
        self.tokens.get(self.next).copied()
    }

    fn end(&self) -> usize {
        self.expr.len()
    }

    /// or := and ('or' and)*
    fn or(&mut self, depth: usize) -> Result<Node, TargetError> {
        let mut any = vec![self.and(depth)?];
        while self.peek().is_some_and(|t| t.kind == Kind::Or) {
            self.next += 1;
            any.push(self.and(depth)?);
        }
        Ok(if any.len() == 1 {
            any.pop().expect("one")
        } else {
            Node::Or(any)
        })
    }

    /// and := unary ('and' unary)*
    fn and(&mut self, depth: usize) -> Result<Node, TargetError> {
        let mut all = vec![self.unary(depth)?];
        while self.peek().is_some_and(|t| t.kind == Kind::And) {
            self.next += 1;
            all.push(self.unary(depth)?);
        }
        Ok(if all.len() == 1 {
            all.pop().expect("one")
        } else {
            Node::And(all)
        })
    }

    /// unary := 'not' unary | '(' or ')' | word
    fn unary(&mut self, depth: usize) -> Result<Node, TargetError> {
        let Some(token) = self.peek() else {
            let after = self
                .tokens
                .last()
                .map_or(String::new(), |t| format!(" after {:?}", t.text()));
            return Err(self.error(
                self.end(),
                format!("expected a target{after}, found the end"),
            ));
        };
        if depth > MAX_DEPTH {
            return Err(self.error(token.pos, format!("nested more than {MAX_DEPTH} deep")));
        }
        self.next += 1;
        match token.kind {
            Kind::Not => Ok(Node::Not(Box::new(self.unary(depth + 1)?))),
            Kind::Open => {
                let inner = self.or(depth + 1)?;
                match self.peek() {
                    Some(Token {
                        kind: Kind::Close, ..
                    }) => {
                        self.next += 1;
                        Ok(inner)
                    }
                    Some(other) => Err(self.error(
                        other.pos,
                        format!("expected 'and', 'or' or ')', found {:?}", other.text()),
                    )),
                    None => Err(self.error(token.pos, "this '(' is never closed")),
                }
            }
            Kind::Word(word) => {
                let leaf =
                    leaf(word, self.nodegroups).map_err(|reason| self.error(token.pos, reason))?;
                self.patterns += leaf.patterns();
                if self.patterns > MAX_TARGET_PATTERNS {
                    return Err(self.error(
                        token.pos,
                        format!("more than {MAX_TARGET_PATTERNS} patterns in one target"),
                    ));
                }
                Ok(Node::Leaf(leaf))
            }
            Kind::Close | Kind::And | Kind::Or => Err(self.error(
                token.pos,
                format!("expected a target, found {:?}", token.text()),
            )),
        }
    }
}

/// Parses a compound expression into a tree.
pub(super) fn parse(expr: &str, nodegroups: Nodegroups) -> Result<Node, TargetError> {
    let mut parser = Parser {
        expr,
        tokens: lex(expr),
        next: 0,
        nodegroups,
        patterns: 0,
    };
    if parser.tokens.is_empty() {
        return Err(parser.error(0, "the expression is empty"));
    }
    let root = parser.or(0)?;
    if let Some(extra) = parser.peek() {
        let reason = match extra.kind {
            Kind::Close => "this ')' closes nothing".to_owned(),
            _ => format!("expected 'and' or 'or' before {:?}", extra.text()),
        };
        return Err(parser.error(extra.pos, reason));
    }
    Ok(root)
}

/// One matcher word; the error is the reason only (the caller adds where).
fn leaf(word: &str, nodegroups: Nodegroups) -> Result<Leaf, String> {
    let Some((letter, delimiter, rest)) = prefix(word) else {
        return Leaf::glob(word).map_err(|e| e.to_string());
    };
    if rest.is_empty() {
        return Err(format!(
            "nothing after {:?}",
            &word[..word.len() - rest.len()]
        ));
    }
    if delimiter.is_some() && !matches!(letter, 'G' | 'P') {
        return Err(format!(
            "only G@ and P@ take another delimiter, not {letter}@"
        ));
    }
    let grain = || GrainExpr {
        pattern: rest.to_owned(),
        delimiter: delimiter.unwrap_or(DEFAULT_DELIMITER),
    };
    let leaf = match letter {
        'G' => GrainMatcher::glob(&grain()).map(Leaf::Grain),
        'P' => GrainMatcher::regex(&grain()).map(Leaf::Grain),
        'E' => Leaf::regex(rest),
        'L' => Leaf::list(split_list(rest)),
        'S' => Leaf::ipcidr(rest),
        'N' if nodegroups == Nodegroups::Unchecked => Ok(Leaf::List(Vec::new())),
        'N' => Err(TargetError::NodegroupNotExpanded(rest.to_owned())),
        'I' | 'J' => {
            return Err(format!(
                "pillar targets ({letter}@) are not supported: brine has no pillar"
            ))
        }
        'R' => return Err("range targets (R@) are not supported".to_owned()),
        other => {
            return Err(format!(
                "unknown target type {other}@ (brine knows G@ P@ E@ L@ S@ N@)"
            ))
        }
    };
    leaf.map_err(|e| e.to_string())
}

/// `X@rest` or `X<d>@rest` (X an upper-case letter, d one character) → (X, d, rest).
fn prefix(word: &str) -> Option<(char, Option<char>, &str)> {
    let mut chars = word.char_indices();
    let (_, letter) = chars.next()?;
    if !letter.is_ascii_uppercase() {
        return None;
    }
    match chars.next()? {
        (at, '@') => Some((letter, None, &word[at + 1..])),
        (_, delimiter) => match chars.next()? {
            (at, '@') if !delimiter.is_alphanumeric() => {
                Some((letter, Some(delimiter), &word[at + 1..]))
            }
            _ => None,
        },
    }
}

/// The expression with every `N@name` replaced by `( definition )`, recursively. An expression
/// without nodegroups comes back as it was written.
pub(super) fn expand(
    expr: &str,
    groups: &BTreeMap<String, String>,
    depth: usize,
) -> Result<String, TargetError> {
    let tokens = lex(expr);
    let is_group = |t: &Token<'_>| matches!(t.kind, Kind::Word(w) if w.starts_with("N@"));
    if !tokens.iter().any(is_group) {
        return Ok(expr.to_owned());
    }
    let error = |pos: usize, reason: String| TargetError::Compound {
        expr: expr.to_owned(),
        pos,
        reason,
    };
    let mut words = Vec::with_capacity(tokens.len());
    let mut len = 0;
    for token in &tokens {
        // Stop as soon as the expansion is too long: nodegroups that name each other several
        // times would otherwise grow it exponentially before the length is checked.
        if len > MAX_TARGET_LEN {
            return Err(TargetError::TooLong);
        }
        len += words.last().map_or(0, |w: &String| w.len() + 1);
        let Kind::Word(word) = token.kind else {
            words.push(token.text().to_owned());
            continue;
        };
        let Some(name) = word.strip_prefix("N@") else {
            words.push(word.to_owned());
            continue;
        };
        let definition = groups.get(name).ok_or_else(|| {
            error(
                token.pos,
                format!("no nodegroup {name:?} in the master's configuration"),
            )
        })?;
        if depth >= MAX_NODEGROUP_DEPTH {
            return Err(error(
                token.pos,
                format!("nodegroups nest more than {MAX_NODEGROUP_DEPTH} deep (do they name each other?)"),
            ));
        }
        words.push(format!("( {} )", expand(definition, groups, depth + 1)?));
    }
    Ok(words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::super::Target;
    use super::*;
    use serde_json::json;

    fn grains(os: &str) -> crate::Map {
        match json!({"os": os, "ipv4": ["10.0.0.5"]}) {
            serde_json::Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    fn matches(expr: &str, id: &str, os: &str) -> bool {
        Target::Compound(expr.into())
            .compile()
            .unwrap_or_else(|e| panic!("{e}"))
            .matches(id, &grains(os))
    }

    fn error(expr: &str) -> (usize, String) {
        match Target::Compound(expr.into()).compile() {
            Err(TargetError::Compound { pos, reason, .. }) => (pos, reason),
            other => panic!("{expr:?}: {other:?}"),
        }
    }

    #[test]
    fn the_issue_example_parses_with_pythons_precedence() {
        let expr = "web* and G@os:Debian or (L@db1,db2 and not E@db2$)";
        assert!(matches(expr, "web1", "Debian"));
        assert!(!matches(expr, "web1", "Ubuntu"));
        assert!(matches(expr, "db1", "Ubuntu"));
        assert!(!matches(expr, "db2", "Debian"));
        assert!(!matches(expr, "db3", "Debian"));
    }

    #[test]
    fn operators_parentheses_and_prefixes() {
        assert!(matches("not web*", "db1", "x"));
        assert!(!matches("not not web*", "db1", "x"));
        assert!(matches(
            "( web* or db* ) and not G@os:Ubuntu",
            "db1",
            "Debian"
        ));
        assert!(matches("((web1))", "web1", "x"));
        assert!(
            matches("E@(web|db)1", "db1", "x"),
            "a regex keeps its parentheses"
        );
        assert!(matches("(E@(web|db)1)", "web1", "x"));
        assert!(matches("S@10.0.0.0/24 and P@os:deb", "a", "Debian"));
        assert!(matches("G;@os;Debian", "a", "Debian"), "another delimiter");
        assert!(!matches("a and b or c and d", "a", "x"));
        assert!(
            matches("a or b and c", "a", "x"),
            "and binds tighter than or"
        );
        assert!(!matches("(a or b) and c", "a", "x"));
    }

    #[test]
    fn errors_point_at_the_bad_token() {
        assert_eq!(
            error("web* and"),
            (8, "expected a target after \"and\", found the end".into())
        );
        assert_eq!(
            error("web* db*"),
            (5, "expected 'and' or 'or' before \"db*\"".into())
        );
        assert_eq!(
            error("(web* or db*"),
            (0, "this '(' is never closed".into())
        );
        assert_eq!(error("web*) or db*"), (4, "this ')' closes nothing".into()));
        assert_eq!(
            error("or web*"),
            (0, "expected a target, found \"or\"".into())
        );
        assert_eq!(error(""), (0, "the expression is empty".into()));
        let (pos, reason) = error("web* and X@foo");
        assert_eq!(pos, 9);
        assert!(reason.contains("unknown target type X@"), "{reason}");
        let (pos, reason) = error("a or E@(");
        assert_eq!(pos, 5);
        assert!(reason.contains("regular expression"), "{reason}");
        assert!(error("I@role:web").1.contains("pillar"));
        assert!(error("G@os").1.contains("key:value"));
        assert!(error("L@").1.contains("nothing after"));
        assert!(error("N@web").1.contains("only be resolved by the master"));
        let deep = format!("{}a{}", "(".repeat(100), ")".repeat(100));
        assert!(error(&deep).1.contains("nested more than"));
        let message = Target::Compound("web* and".into())
            .compile()
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            "invalid compound target: expected a target after \"and\", found the end\n  web* and\n          ^"
        );
    }

    #[test]
    fn hostile_targets_cost_a_bounded_amount_of_work() {
        // Thousands of delimiters compile at most MAX_DEPTH patterns.
        let many = format!("P@k{}", ":a".repeat(2000));
        let started = std::time::Instant::now();
        assert!(Target::Compound(many).compile().is_ok());
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        let words = vec!["P@k:a:b:c:d:e:f:g:h"; 20].join(" or ");
        let (_, reason) = error(&words);
        assert!(reason.contains("more than 64 patterns"), "{reason}");
        // Nodegroups that name each other ten times, eight deep, stop at the length limit.
        let mut groups = BTreeMap::new();
        groups.insert("g0".to_owned(), "web1".to_owned());
        for level in 1..8 {
            let names = vec![format!("N@g{}", level - 1); 10].join(" or ");
            groups.insert(format!("g{level}"), names);
        }
        let started = std::time::Instant::now();
        let expanded = Target::Nodegroup("g7".into()).expand_nodegroups(&groups);
        assert_eq!(expanded, Err(TargetError::TooLong));
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn nodegroups_expand_recursively_and_cycles_are_refused() {
        let groups: BTreeMap<String, String> = [
            ("web", "web* and G@os:Debian"),
            ("all", "N@web or L@db1"),
            ("loop", "N@loop"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let expand = |t: Target| t.expand_nodegroups(&groups);
        assert_eq!(
            expand(Target::Nodegroup("all".into())).unwrap(),
            Target::Compound("( web* and G@os:Debian ) or L@db1".into())
        );
        assert_eq!(
            expand(Target::Compound("(N@web) and not web9".into())).unwrap(),
            Target::Compound("( ( web* and G@os:Debian ) ) and not web9".into())
        );
        let unchanged = Target::Compound("web*  and G@os:x".into());
        assert_eq!(expand(unchanged.clone()).unwrap(), unchanged);
        assert_eq!(
            expand(Target::Nodegroup("nope".into())),
            Err(TargetError::UnknownNodegroup("nope".into()))
        );
        assert!(expand(Target::Compound("a or N@nope".into())).is_err());
        let err = expand(Target::Nodegroup("loop".into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("nest more than"), "{err}");
        assert!(expand(Target::Nodegroup("all".into()))
            .unwrap()
            .compile()
            .is_ok());
    }
}
