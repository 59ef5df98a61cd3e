//! Salt's glob dialect, wherever a user writes a glob (targets, grain values, key selections,
//! `publisher_acl`, `disabled_functions`, `sys.*` selectors, `jobs.list_jobs` searches): Python's
//! `fnmatch.fnmatchcase`, which Salt uses. `*` is any run of characters (dots and slashes
//! too), `?` any one character, `[abc]` / `[a-z]` one of a set, `[!abc]` one not in it; a `[`
//! without its `]` is itself; a backslash is an ordinary character; a range written backwards
//! (`[z-a]`) matches nothing, so the pattern matches nothing. Matching is the whole text,
//! case-sensitive.
//!
//! A pattern is translated once into a regular expression, as Python's `fnmatch.translate`
//! does; every character of a set is written as an escape, so nothing in a pattern can mean
//! more to the regex engine than it does to fnmatch. The regex crate matches in linear time.

use std::fmt::Write as _;

/// The largest compiled pattern accepted (bytes of the regex engine's program).
const MAX_COMPILED_BYTES: usize = 1 << 20;

/// A compiled fnmatch pattern.
#[derive(Debug, Clone)]
pub struct Fnmatch {
    pattern: String,
    regex: regex::Regex,
}

impl Fnmatch {
    /// Compiles `pattern`; an error only when it is too large to compile.
    pub fn new(pattern: &str) -> Result<Self, String> {
        let regex = regex::RegexBuilder::new(&translate(pattern))
            .size_limit(MAX_COMPILED_BYTES)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            pattern: pattern.to_owned(),
            regex,
        })
    }

    /// Whether `text` matches, whole.
    pub fn matches(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether the pattern has a wildcard or a set, so that it can match more than itself.
    pub fn is_glob(pattern: &str) -> bool {
        pattern.contains(['*', '?', '['])
    }

    /// The compiled pattern when it [`is_glob`](Self::is_glob) (and compiles); None for a plain
    /// name, which callers compare as it is.
    pub fn if_glob(pattern: &str) -> Option<Self> {
        Self::is_glob(pattern)
            .then(|| Self::new(pattern).ok())
            .flatten()
    }
}

/// Python's `fnmatch.translate`, for the regex crate: anchored at both ends, `.` crossing
/// newlines.
fn translate(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::from(r"(?s)\A");
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => {
                if !out.ends_with(".*") {
                    out.push_str(".*");
                }
            }
            '?' => out.push('.'),
            '[' => match set_end(&chars, i) {
                None => out.push_str(r"\["),
                Some(end) => {
                    out.push_str(&set(&chars[i..end]));
                    i = end + 1;
                }
            },
            c => out.push_str(&regex::escape(c.encode_utf8(&mut [0; 4]))),
        }
    }
    out.push_str(r"\z");
    out
}

/// Where the `]` closes a set opened just before `start`: a `!` and then a `]` right at the
/// start are members.
fn set_end(chars: &[char], start: usize) -> Option<usize> {
    let mut j = start;
    if chars.get(j) == Some(&'!') {
        j += 1;
    }
    if chars.get(j) == Some(&']') {
        j += 1;
    }
    (j..chars.len()).find(|&k| chars[k] == ']')
}

/// A set's members (between `[` and `]`) as a regex class of escapes.
fn set(members: &[char]) -> String {
    let (negated, members) = match members.split_first() {
        Some(('!', rest)) => (true, rest),
        _ => (false, members),
    };
    let mut class = String::new();
    let mut k = 0;
    while k < members.len() {
        let first = members[k];
        if members.get(k + 1) == Some(&'-') && k + 2 < members.len() {
            let last = members[k + 2];
            if first <= last {
                let _ = write!(class, r"\x{{{:x}}}-\x{{{:x}}}", first as u32, last as u32);
            }
            k += 3;
        } else {
            let _ = write!(class, r"\x{{{:x}}}", first as u32);
            k += 1;
        }
    }
    match (negated, class.is_empty()) {
        // Python: `[!]...]`-free empty negation cannot occur; an empty set never matches.
        (false, true) => r"[^\x{0}-\x{10ffff}]".to_owned(),
        (true, true) => ".".to_owned(),
        (false, false) => format!("[{class}]"),
        (true, false) => format!("[^{class}]"),
    }
}
