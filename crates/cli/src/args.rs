//! Salt's argument grammar: the words after `module.function` become positional arguments and
//! keyword arguments with typed values.
//!
//! - A word `key=value` whose key is an identifier (`^[A-Za-z_][A-Za-z0-9_]*$`) is a keyword
//!   argument; the value is everything after the first `=` (`a=b=c` is `a` = `"b=c"`). As in
//!   Salt, a value starting with `=` (`a==b`) makes the word positional: it reads as a comparison.
//! - Every value is read like a YAML scalar, but narrowly: `true`/`false` (also `True`, `TRUE`,
//!   ...) are booleans, `null` is null, integers and floats are numbers, a word starting with `[`
//!   or `{` is a YAML/JSON flow collection, and every other word is the string as typed.
//!   Quotes, `~`, `None`, `yes`, numbers with `_` or a leading zero (`007`, ambiguous between
//!   YAML 1.1 octal and 1.2 decimal) and integers too large for 64 bits stay strings, so a value
//!   is never silently changed into something the operator did not type.

use brine_proto::{Map, Value};

/// Positional and keyword arguments of one call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallArgs {
    pub arg: Vec<Value>,
    pub kwarg: Map,
}

/// Splits and types the words after the function name. A repeated keyword keeps its last value.
pub fn parse_args<S: AsRef<str>>(words: impl IntoIterator<Item = S>) -> CallArgs {
    let mut args = CallArgs::default();
    for word in words {
        let word = word.as_ref();
        match split_kwarg(word) {
            Some((key, value)) => {
                args.kwarg.insert(key.to_owned(), parse_value(value));
            }
            None => args.arg.push(parse_value(word)),
        }
    }
    args
}

/// `Some((key, value))` when `word` is a keyword argument.
pub fn split_kwarg(word: &str) -> Option<(&str, &str)> {
    let (key, value) = word.split_once('=')?;
    (is_identifier(key) && !value.starts_with('=')).then_some((key, value))
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Types one value the way the module docs describe.
pub fn parse_value(word: &str) -> Value {
    match word {
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        "null" => return Value::Null,
        _ => {}
    }
    let typed = if word.starts_with(['[', '{']) {
        parse_collection(word)
    } else if looks_numeric(word) {
        parse_number(word)
    } else {
        None
    };
    typed.unwrap_or_else(|| Value::String(word.to_owned()))
}

/// Whether `word` may be read as a number: a sign or digit or dot first, no blanks, no `_`,
/// no leading zero before another digit.
fn looks_numeric(word: &str) -> bool {
    let unsigned = word.strip_prefix(['+', '-']).unwrap_or(word);
    let bytes = unsigned.as_bytes();
    let leading_zero = bytes.len() > 1 && bytes[0] == b'0' && bytes[1].is_ascii_digit();
    matches!(bytes.first(), Some(b) if b.is_ascii_digit() || *b == b'.')
        && !leading_zero
        && !word.contains(|c: char| c.is_whitespace() || c == '_' || c == '#')
}

fn parse_number(word: &str) -> Option<Value> {
    let serde_norway::Value::Number(n) = serde_norway::from_str(word).ok()? else {
        return None;
    };
    if let Some(i) = n.as_i64() {
        Some(Value::from(i))
    } else if let Some(u) = n.as_u64() {
        Some(Value::from(u))
    } else if word
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'+' || b == b'-')
    {
        // An integer too large for 64 bits: keep every digit.
        None
    } else {
        n.as_f64()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
    }
}

fn parse_collection(word: &str) -> Option<Value> {
    let yaml: serde_norway::Value = serde_norway::from_str(word).ok()?;
    match yaml {
        serde_norway::Value::Sequence(_) | serde_norway::Value::Mapping(_) => yaml_to_json(yaml),
        _ => None,
    }
}

/// Converts a YAML value to a JSON one: map keys that are scalars become their text; values
/// JSON cannot hold (NaN, infinities, collections as keys, tags) make the conversion fail.
fn yaml_to_json(yaml: serde_norway::Value) -> Option<Value> {
    use serde_norway::Value as Y;
    Some(match yaml {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::Number(serde_json::Number::from_f64(n.as_f64()?)?)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(
            items
                .into_iter()
                .map(yaml_to_json)
                .collect::<Option<Vec<_>>>()?,
        ),
        Y::Mapping(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let key = match k {
                    Y::String(s) => s,
                    Y::Bool(b) => b.to_string(),
                    Y::Number(n) => n.to_string(),
                    Y::Null => "null".to_owned(),
                    _ => return None,
                };
                out.insert(key, yaml_to_json(v)?);
            }
            Value::Object(out)
        }
        Y::Tagged(_) => return None,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn v(word: &str) -> Value {
        parse_value(word)
    }

    #[test]
    fn integers_and_floats_are_numbers() {
        assert_eq!(v("42"), json!(42));
        assert_eq!(v("-7"), json!(-7));
        assert_eq!(v("+3"), json!(3));
        assert_eq!(v("0"), json!(0));
        assert_eq!(v("18446744073709551615"), json!(18446744073709551615u64));
        assert_eq!(v("1.5"), json!(1.5));
        assert_eq!(v("-0.25"), json!(-0.25));
        assert_eq!(v("1e3"), json!(1000.0));
        assert_eq!(v(".5"), json!(0.5));
    }

    #[test]
    fn ambiguous_numbers_stay_strings() {
        for word in [
            "007",
            "1_000",
            "123456789012345678901234567890",
            ".inf",
            "-.inf",
            ".nan",
            "1.2.3",
            "5 # comment",
            " 5",
            "1-2",
        ] {
            assert_eq!(v(word), json!(word), "{word:?}");
        }
    }

    #[test]
    fn booleans_and_null() {
        assert_eq!(v("true"), json!(true));
        assert_eq!(v("True"), json!(true));
        assert_eq!(v("FALSE"), json!(false));
        assert_eq!(v("null"), Value::Null);
        for word in ["None", "~", "Null", "yes", "no", "on", "off", "tRue"] {
            assert_eq!(v(word), json!(word), "{word:?}");
        }
    }

    #[test]
    fn other_words_are_strings_as_typed() {
        for word in [
            "hello",
            "",
            "ls -la /tmp",
            "'quoted'",
            "\"double\"",
            "a: b",
            "- x",
            "web*",
            "!!int 5",
            "#x",
        ] {
            assert_eq!(v(word), json!(word), "{word:?}");
        }
    }

    #[test]
    fn flow_collections_are_parsed() {
        assert_eq!(v("[1, 2, three]"), json!([1, 2, "three"]));
        assert_eq!(v("[]"), json!([]));
        assert_eq!(
            v(r#"{"a": 1, "b": [true, null]}"#),
            json!({"a": 1, "b": [true, null]})
        );
        assert_eq!(v("{a: 1, b: x y}"), json!({"a": 1, "b": "x y"}));
        assert_eq!(v("{1: one}"), json!({"1": "one"}));
        assert_eq!(v("[[1], {k: v}]"), json!([[1], {"k": "v"}]));
    }

    #[test]
    fn broken_collections_stay_strings() {
        for word in [
            "[1, 2",
            "{a: 1",
            "[.nan]",
            "{[1]: x}",
            "[a] b",
            "[!local 1]",
        ] {
            assert_eq!(v(word), json!(word), "{word:?}");
        }
    }

    #[test]
    fn kwargs_are_split_at_the_first_equals() {
        let args = parse_args(["a=b=c", "count=3", "flag=true", "empty=", "_x=[1]"]);
        assert!(args.arg.is_empty());
        assert_eq!(
            Value::Object(args.kwarg),
            json!({"a": "b=c", "count": 3, "flag": true, "empty": "", "_x": [1]})
        );
    }

    #[test]
    fn words_that_are_not_kwargs_are_positional() {
        let args = parse_args([
            "echo a=b", "1a=x", "a-b=x", "=x", "a==b", "a.b=c", "x=1", "5",
        ]);
        assert_eq!(
            Value::Array(args.arg),
            json!(["echo a=b", "1a=x", "a-b=x", "=x", "a==b", "a.b=c", 5])
        );
        assert_eq!(Value::Object(args.kwarg), json!({"x": 1}));
    }

    #[test]
    fn a_repeated_kwarg_keeps_the_last_value() {
        let args = parse_args(["n=1", "n=2"]);
        assert_eq!(Value::Object(args.kwarg), json!({"n": 2}));
    }
}
