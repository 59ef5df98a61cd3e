//! Argument binding: how a call's positional and keyword arguments become named values, and the
//! typed accessors whose errors name the argument that was wrong.
//!
//! Binding follows Python's rules, as Salt does: positional values fill the declared parameters
//! in order, keyword values fill them by name, the rest go to `*args` / `**kwargs` when the
//! function takes them and are an error otherwise. Keywords starting with `__` are Salt's
//! private `__pub_*` fields; they are dropped silently.

use std::time::Duration;

use brine_proto::{Map, Value};

/// How a parameter may be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Must be given, positionally or by name.
    Required,
    /// May be given, positionally or by name.
    Optional,
    /// May be given, by name only.
    Keyword,
}

/// What a function uses for a parameter that is not given, as `sys.argspec` reports it. It
/// documents the handler's default; binding does not fill it in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Preset {
    /// Python's `None`: the function decides (most optional parameters).
    Null,
    Bool(bool),
    Int(i64),
    Str(&'static str),
}

impl Preset {
    pub(crate) fn to_value(self) -> Value {
        match self {
            Preset::Null => Value::Null,
            Preset::Bool(b) => Value::Bool(b),
            Preset::Int(n) => Value::from(n),
            Preset::Str(s) => Value::from(s),
        }
    }
}

/// One declared parameter of a function.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Param {
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
    /// The default of an optional or keyword parameter (meaningless for a required one).
    pub(crate) default: Preset,
}

impl Param {
    /// The same parameter, documented with `default`.
    pub(crate) const fn with_default(mut self, default: Preset) -> Self {
        self.default = default;
        self
    }
}

/// A required parameter.
pub(crate) const fn req(name: &'static str) -> Param {
    Param {
        name,
        kind: Kind::Required,
        default: Preset::Null,
    }
}

/// An optional parameter.
pub(crate) const fn opt(name: &'static str) -> Param {
    Param {
        name,
        kind: Kind::Optional,
        default: Preset::Null,
    }
}

/// An optional keyword-only parameter.
pub(crate) const fn kw(name: &'static str) -> Param {
    Param {
        name,
        kind: Kind::Keyword,
        default: Preset::Null,
    }
}

/// A function's parameters, in positional order, and whether it takes `*args` / `**kwargs`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Signature {
    pub(crate) params: &'static [Param],
    pub(crate) varargs: bool,
    pub(crate) varkw: bool,
}

impl Signature {
    /// A signature with exactly these parameters.
    pub(crate) const fn new(params: &'static [Param]) -> Self {
        Self {
            params,
            varargs: false,
            varkw: false,
        }
    }

    /// Also takes any number of extra positional values.
    pub(crate) const fn varargs(mut self) -> Self {
        self.varargs = true;
        self
    }

    /// Also takes any extra keyword values.
    pub(crate) const fn varkw(mut self) -> Self {
        self.varkw = true;
        self
    }
}

/// Why the arguments of a call do not fit the function.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum ArgError {
    #[error("missing required argument '{0}'")]
    Missing(&'static str),
    #[error("takes at most {max} positional argument(s), {given} given")]
    TooMany { max: usize, given: usize },
    #[error("unexpected keyword argument '{0}'")]
    Unexpected(String),
    #[error("got multiple values for argument '{0}'")]
    Duplicate(&'static str),
    #[error("argument '{name}' must be {expected}, got {found}")]
    WrongType {
        name: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    #[error("argument '{name}' {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// The arguments of one call, bound to the function's parameters.
#[derive(Debug, Default)]
pub(crate) struct Args {
    named: Map,
    /// Extra positional values (`*args`), when the function takes them.
    pub(crate) varargs: Vec<Value>,
    /// Extra keyword values (`**kwargs`), when the function takes them.
    pub(crate) varkw: Map,
}

/// Binds `arg` and `kwarg` to `sig`.
pub(crate) fn bind(sig: &Signature, arg: Vec<Value>, kwarg: Map) -> Result<Args, ArgError> {
    let positional: Vec<&Param> = sig
        .params
        .iter()
        .filter(|p| p.kind != Kind::Keyword)
        .collect();
    let mut args = Args::default();
    let given = arg.len();
    for (i, value) in arg.into_iter().enumerate() {
        match positional.get(i) {
            Some(param) => {
                args.named.insert(param.name.to_owned(), value);
            }
            None if sig.varargs => args.varargs.push(value),
            None => {
                return Err(ArgError::TooMany {
                    max: positional.len(),
                    given,
                })
            }
        }
    }
    for (key, value) in kwarg {
        if key.starts_with("__") {
            continue;
        }
        match sig.params.iter().find(|p| p.name == key) {
            Some(param) if args.named.contains_key(param.name) => {
                return Err(ArgError::Duplicate(param.name));
            }
            Some(param) => {
                args.named.insert(param.name.to_owned(), value);
            }
            None if sig.varkw => {
                args.varkw.insert(key, value);
            }
            None => return Err(ArgError::Unexpected(key)),
        }
    }
    for param in sig.params.iter().filter(|p| p.kind == Kind::Required) {
        if args.value(param.name).is_none() {
            return Err(ArgError::Missing(param.name));
        }
    }
    Ok(args)
}

/// How a value's type is named in error messages.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// A scalar as text: strings as they are, numbers and booleans in their usual spelling.
pub(crate) fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Args {
    /// The value given for `name`, if any; `null` counts as not given.
    pub(crate) fn value(&self, name: &str) -> Option<&Value> {
        self.named.get(name).filter(|v| !v.is_null())
    }

    /// A text argument; numbers and booleans are accepted in their usual spelling.
    pub(crate) fn string(&self, name: &'static str) -> Result<Option<String>, ArgError> {
        self.value(name)
            .map(|v| {
                scalar_text(v).ok_or(ArgError::WrongType {
                    name,
                    expected: "a string",
                    found: type_name(v),
                })
            })
            .transpose()
    }

    /// A text argument that must be present.
    pub(crate) fn required_string(&self, name: &'static str) -> Result<String, ArgError> {
        self.string(name)?.ok_or(ArgError::Missing(name))
    }

    /// A boolean argument: a boolean, 0 / 1, or one of true/false, yes/no, on/off, 1/0.
    pub(crate) fn bool(&self, name: &'static str, default: bool) -> Result<bool, ArgError> {
        let Some(value) = self.value(name) else {
            return Ok(default);
        };
        let parsed = match value {
            Value::Bool(b) => Some(*b),
            Value::Number(n) => match n.as_i64() {
                Some(0) => Some(false),
                Some(1) => Some(true),
                _ => None,
            },
            Value::String(s) => match s.to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => Some(true),
                "false" | "no" | "off" | "0" => Some(false),
                _ => None,
            },
            _ => None,
        };
        parsed.ok_or(ArgError::WrongType {
            name,
            expected: "a boolean",
            found: type_name(value),
        })
    }

    /// A number argument; a numeric string is accepted.
    pub(crate) fn number(&self, name: &'static str) -> Result<Option<f64>, ArgError> {
        let Some(value) = self.value(name) else {
            return Ok(None);
        };
        let parsed = match value {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        parsed.map(Some).ok_or(ArgError::WrongType {
            name,
            expected: "a number",
            found: type_name(value),
        })
    }

    /// An integer argument; an integer string is accepted.
    pub(crate) fn int(&self, name: &'static str) -> Result<Option<i64>, ArgError> {
        let Some(value) = self.value(name) else {
            return Ok(None);
        };
        let parsed = match value {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        };
        parsed.map(Some).ok_or(ArgError::WrongType {
            name,
            expected: "an integer",
            found: type_name(value),
        })
    }

    /// A duration in seconds (fractions allowed), not negative.
    pub(crate) fn seconds(&self, name: &'static str) -> Result<Option<Duration>, ArgError> {
        let Some(secs) = self.number(name)? else {
            return Ok(None);
        };
        Duration::try_from_secs_f64(secs)
            .map(Some)
            .map_err(|_| ArgError::Invalid {
                name,
                reason: format!("must be a non-negative number of seconds, got {secs}"),
            })
    }

    /// A map whose values are scalars, as pairs of strings in key order.
    pub(crate) fn string_map(
        &self,
        name: &'static str,
    ) -> Result<Option<Vec<(String, String)>>, ArgError> {
        let Some(value) = self.value(name) else {
            return Ok(None);
        };
        let Value::Object(map) = value else {
            return Err(ArgError::WrongType {
                name,
                expected: "a map of strings",
                found: type_name(value),
            });
        };
        map.iter()
            .map(|(k, v)| {
                scalar_text(v)
                    .map(|text| (k.clone(), text))
                    .ok_or_else(|| ArgError::Invalid {
                        name,
                        reason: format!("must map names to strings, but '{k}' is {}", type_name(v)),
                    })
            })
            .collect::<Result<_, _>>()
            .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SIG: Signature = Signature::new(&[req("a"), opt("b"), kw("c")]);

    fn map(v: Value) -> Map {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn binds_positionally_and_by_name() {
        let args = bind(&SIG, vec![json!("x")], map(json!({"b": 2, "c": true}))).unwrap();
        assert_eq!(args.required_string("a").unwrap(), "x");
        assert_eq!(args.int("b").unwrap(), Some(2));
        assert!(args.bool("c", false).unwrap());
    }

    #[test]
    fn errors_name_the_argument() {
        assert_eq!(
            bind(&SIG, vec![], Map::new()).unwrap_err(),
            ArgError::Missing("a")
        );
        assert_eq!(
            bind(&SIG, vec![json!(1), json!(2), json!(3)], Map::new()).unwrap_err(),
            ArgError::TooMany { max: 2, given: 3 }
        );
        assert_eq!(
            bind(&SIG, vec![json!(1)], map(json!({"zz": 1}))).unwrap_err(),
            ArgError::Unexpected("zz".into())
        );
        assert_eq!(
            bind(&SIG, vec![json!(1)], map(json!({"a": 1}))).unwrap_err(),
            ArgError::Duplicate("a")
        );
        let args = bind(&SIG, vec![json!([1])], map(json!({"c": "maybe"}))).unwrap();
        assert!(args.string("a").unwrap_err().to_string().contains("'a'"));
        assert!(args
            .bool("c", false)
            .unwrap_err()
            .to_string()
            .contains("'c'"));
    }

    #[test]
    fn private_keywords_are_dropped_and_null_is_absent() {
        let args = bind(
            &SIG,
            vec![json!("x"), Value::Null],
            map(json!({"__pub_jid": 1})),
        )
        .unwrap();
        assert_eq!(args.string("b").unwrap(), None);
        assert_eq!(
            bind(&SIG, vec![Value::Null], Map::new()).unwrap_err(),
            ArgError::Missing("a")
        );
    }

    #[test]
    fn seconds_reject_negative_and_nan() {
        let args = bind(&SIG, vec![json!(-1)], map(json!({"b": "1.5"}))).unwrap();
        assert!(args.seconds("a").is_err());
        assert_eq!(
            args.seconds("b").unwrap(),
            Some(Duration::from_millis(1500))
        );
    }
}
