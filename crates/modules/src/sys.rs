//! `sys.*`: what the minion can run, read from the function table itself: names, doc strings
//! and argument specifications.
//!
//! Names are selected as Salt selects them: a bare module name (`cmd`) picks that module's
//! functions (and not `cmdmod`'s); a name with `*`, `?` or `.` is a glob over full names
//! (`cmd.run*`, `sys.list_*`, `test.ping`).

use brine_proto::{Fnmatch, Map, Value};

use crate::args::{scalar_text, Args, Kind, Signature};
use crate::{functions, Error, Function, Handler, Outcome};

/// The functions of this module.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Fun {
    ListFunctions,
    ListModules,
    Doc,
    Argspec,
}

pub(crate) const FUNCTIONS: &[Function] = &[
    Function {
        name: "sys.list_functions",
        doc: "List the functions the minion can run, sorted. Arguments narrow the list: a\n\
              module name selects that module's functions, a glob selects matching names.\n\n\
              CLI Example:\n\n    brine '*' sys.list_functions\n    \
              brine '*' sys.list_functions cmd\n    \
              brine '*' sys.list_functions 'sys.list_*'",
        signature: Signature::new(&[]).varargs(),
        handler: Handler::Sys(Fun::ListFunctions),
    },
    Function {
        name: "sys.list_modules",
        doc: "List the modules the minion has, sorted.\n\n\
              CLI Example:\n\n    brine '*' sys.list_modules",
        signature: Signature::new(&[]).varargs(),
        handler: Handler::Sys(Fun::ListModules),
    },
    Function {
        name: "sys.doc",
        doc: "Return the doc strings of functions, as a map of function name to doc string.\n\
              With no argument every function is documented; a module name selects that\n\
              module's functions, a function name or glob the matching ones.\n\n\
              CLI Example:\n\n    brine '*' sys.doc\n    \
              brine '*' sys.doc cmd\n    \
              brine '*' sys.doc cmd.run",
        signature: Signature::new(&[]).varargs(),
        handler: Handler::Sys(Fun::Doc),
    },
    Function {
        name: "sys.argspec",
        doc: "Return the argument specification of functions, as a map of function name to\n\
              Salt's shape: ``args`` (the parameters that may be given positionally, in\n\
              order), ``defaults`` (the defaults of the optional ones among them, which come\n\
              last), ``varargs`` and ``kwargs`` (``True`` when the function takes ``*args`` /\n\
              ``**kwargs``), ``kwonlyargs`` and ``kwonlydefaults`` (the parameters given only\n\
              by name, and their defaults) and ``posonlyargs``; each is ``None`` when empty.\n\
              Functions are selected as for ``sys.doc``.\n\n\
              CLI Example:\n\n    brine '*' sys.argspec\n    \
              brine '*' sys.argspec cmd\n    \
              brine '*' sys.argspec 'file.*'",
        signature: Signature::new(&[]).varargs(),
        handler: Handler::Sys(Fun::Argspec),
    },
];

pub(crate) fn call(fun: Fun, args: Args) -> Result<Outcome, Error> {
    let patterns: Vec<String> = args.varargs.iter().filter_map(scalar_text).collect();
    let mut selected: Vec<&'static Function> =
        functions().filter(|f| selects(&patterns, f.name)).collect();
    selected.sort_unstable_by_key(|f| f.name);
    let ret = match fun {
        Fun::ListFunctions => Value::from(selected.iter().map(|f| f.name).collect::<Vec<_>>()),
        Fun::ListModules => {
            let mut modules: Vec<&str> =
                selected.iter().filter_map(|f| module_of(f.name)).collect();
            modules.dedup();
            Value::from(modules)
        }
        Fun::Doc => Value::Object(
            selected
                .iter()
                .map(|f| (f.name.to_owned(), Value::from(f.doc)))
                .collect::<Map>(),
        ),
        Fun::Argspec => Value::Object(
            selected
                .iter()
                .map(|f| (f.name.to_owned(), argspec(&f.signature)))
                .collect::<Map>(),
        ),
    };
    Ok(Outcome::ok(ret))
}

/// Salt's `argspec_report` entry for one signature: empty parts are `None`.
fn argspec(sig: &Signature) -> Value {
    fn or_null<T: Into<Value>>(items: Vec<T>) -> Value {
        if items.is_empty() {
            Value::Null
        } else {
            Value::Array(items.into_iter().map(Into::into).collect())
        }
    }
    let flag = |on: bool| if on { Value::Bool(true) } else { Value::Null };
    let of_kind = |kind: Kind| sig.params.iter().filter(move |p| p.kind == kind);
    let positional: Vec<&str> = sig
        .params
        .iter()
        .filter(|p| p.kind != Kind::Keyword)
        .map(|p| p.name)
        .collect();
    let defaults: Vec<Value> = of_kind(Kind::Optional)
        .map(|p| p.default.to_value())
        .collect();
    let kwonly: Vec<&str> = of_kind(Kind::Keyword).map(|p| p.name).collect();
    let kwonly_defaults: Map = of_kind(Kind::Keyword)
        .map(|p| (p.name.to_owned(), p.default.to_value()))
        .collect();
    let mut spec = Map::new();
    spec.insert("args".into(), or_null(positional));
    spec.insert("defaults".into(), or_null(defaults));
    spec.insert("varargs".into(), flag(sig.varargs));
    spec.insert("kwargs".into(), flag(sig.varkw));
    spec.insert("posonlyargs".into(), Value::Null);
    spec.insert("kwonlyargs".into(), or_null(kwonly));
    spec.insert(
        "kwonlydefaults".into(),
        if kwonly_defaults.is_empty() {
            Value::Null
        } else {
            Value::Object(kwonly_defaults)
        },
    );
    Value::Object(spec)
}

fn module_of(name: &str) -> Option<&str> {
    name.split_once('.').map(|(module, _)| module)
}

/// Whether any of `patterns` selects the function `name`; no pattern selects everything. A
/// pattern with a dot or a wildcard is Salt's fnmatch on the whole name; a bare word names a
/// module.
pub(crate) fn selects(patterns: &[String], name: &str) -> bool {
    patterns.is_empty()
        || patterns.iter().any(|pattern| {
            if pattern.contains('.') || Fnmatch::is_glob(pattern) {
                Fnmatch::new(pattern).is_ok_and(|glob| glob.matches(name))
            } else {
                module_of(name) == Some(pattern.as_str())
            }
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::tests::run;

    #[tokio::test]
    async fn list_functions_filters_by_module_and_glob() {
        let all = run("sys.list_functions", vec![], json!({})).await;
        assert_eq!(all.ret, json!(crate::list_functions()));

        let cmd = run("sys.list_functions", vec![json!("cmd")], json!({})).await;
        let names = cmd.ret.as_array().unwrap();
        assert!(names.contains(&json!("cmd.run")));
        assert!(names
            .iter()
            .all(|n| n.as_str().unwrap().starts_with("cmd.")));

        let out = run(
            "sys.list_functions",
            vec![json!("sys.list_*"), json!("test")],
            json!({}),
        )
        .await;
        let names = out.ret.as_array().unwrap();
        assert!(names.contains(&json!("sys.list_modules")));
        assert!(names.contains(&json!("test.ping")));
        assert!(!names.contains(&json!("sys.doc")));

        let out = run("sys.list_modules", vec![], json!({})).await;
        assert_eq!(
            out.ret,
            json!([
                "cmd", "disk", "file", "grains", "group", "network", "pkg", "saltutil", "service",
                "status", "sys", "test", "user"
            ])
        );
    }

    #[tokio::test]
    async fn doc_maps_names_to_doc_strings() {
        let out = run("sys.doc", vec![json!("test.ping")], json!({})).await;
        let docs = out.ret.as_object().unwrap();
        assert_eq!(docs.len(), 1);
        assert!(docs["test.ping"]
            .as_str()
            .unwrap()
            .contains("brine '*' test.ping"));

        let out = run("sys.doc", vec![], json!({})).await;
        assert_eq!(
            out.ret.as_object().unwrap().len(),
            crate::list_functions().len()
        );
    }

    #[tokio::test]
    async fn argspec_has_salts_shape() {
        let out = run("sys.argspec", vec![json!("test.echo")], json!({})).await;
        assert_eq!(
            out.ret,
            json!({"test.echo": {
                "args": ["text"],
                "defaults": null,
                "varargs": null,
                "kwargs": null,
                "posonlyargs": null,
                "kwonlyargs": null,
                "kwonlydefaults": null,
            }})
        );
        let out = run(
            "sys.argspec",
            vec![json!("test.ping"), json!("test.arg")],
            json!({}),
        )
        .await;
        assert_eq!(out.ret["test.ping"]["args"], Value::Null);
        assert_eq!(out.ret["test.arg"]["varargs"], json!(true));
        assert_eq!(out.ret["test.arg"]["kwargs"], json!(true));

        let out = run("sys.argspec", vec![json!("file.get_hash")], json!({})).await;
        let spec = &out.ret["file.get_hash"];
        assert_eq!(spec["args"], json!(["path", "form", "chunk_size"]));
        assert_eq!(spec["defaults"], json!(["sha256", 65536]));

        let out = run("sys.argspec", vec![json!("cmd")], json!({})).await;
        let spec = &out.ret["cmd.run"];
        assert_eq!(spec["args"], json!(["cmd", "cwd", "stdin"]));
        assert_eq!(spec["defaults"], json!([null, null]));
        assert_eq!(
            spec["kwonlyargs"],
            json!(["shell", "python_shell", "env", "timeout"])
        );
        assert!(spec["kwonlydefaults"]
            .as_object()
            .unwrap()
            .contains_key("timeout"));
        assert!(out
            .ret
            .as_object()
            .unwrap()
            .keys()
            .all(|k| k.starts_with("cmd.")));

        let out = run("sys.argspec", vec![], json!({})).await;
        assert_eq!(
            out.ret.as_object().unwrap().len(),
            crate::list_functions().len()
        );
    }

    /// `defaults` lines up with the end of `args` only if no required parameter follows an
    /// optional one, as in Python.
    #[test]
    fn optional_parameters_come_after_required_ones() {
        for f in functions() {
            let kinds: Vec<Kind> = f
                .signature
                .params
                .iter()
                .map(|p| p.kind)
                .filter(|k| *k != Kind::Keyword)
                .collect();
            assert!(
                kinds
                    .windows(2)
                    .all(|w| !(w[0] == Kind::Optional && w[1] == Kind::Required)),
                "{}",
                f.name
            );
        }
    }
}
