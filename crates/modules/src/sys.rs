//! `sys.*`: what the minion can run, read from the function table itself.
//!
//! Names are selected as Salt selects them: a bare module name (`cmd`) picks that module's
//! functions (and not `cmdmod`'s); a name with `*`, `?` or `.` is a glob over full names
//! (`cmd.run*`, `sys.list_*`, `test.ping`).

use brine_proto::{Map, Value};

use crate::args::{scalar_text, Args, Signature};
use crate::{functions, Error, Function, Handler, Outcome};

/// The functions of this module.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Fun {
    ListFunctions,
    ListModules,
    Doc,
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
    };
    Ok(Outcome::ok(ret))
}

fn module_of(name: &str) -> Option<&str> {
    name.split_once('.').map(|(module, _)| module)
}

/// Whether any of `patterns` selects the function `name`; no pattern selects everything.
pub(crate) fn selects(patterns: &[String], name: &str) -> bool {
    patterns.is_empty()
        || patterns.iter().any(|pattern| {
            if pattern.contains(['*', '?', '.']) {
                glob_match(pattern.as_bytes(), name.as_bytes())
            } else {
                module_of(name) == Some(pattern.as_str())
            }
        })
}

/// Matches `text` against a glob of `*` (any run) and `?` (any one byte); iterative, so a
/// hostile pattern costs at most O(pattern × text).
pub(crate) fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                backtrack = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match backtrack {
                Some((star, matched)) => {
                    p = star + 1;
                    t = matched + 1;
                    backtrack = Some((star, matched + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::tests::run;

    #[test]
    fn globs_match_like_fnmatch() {
        assert!(glob_match(b"cmd.*", b"cmd.run"));
        assert!(glob_match(b"*.run*", b"cmd.run_all"));
        assert!(glob_match(b"test.p?ng", b"test.ping"));
        assert!(!glob_match(b"cmd.*", b"test.ping"));
        assert!(!glob_match(b"cmd.run", b"cmd.run_all"));
        assert!(glob_match(b"**", b""));
    }

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
            json!(["cmd", "grains", "pkg", "saltutil", "service", "sys", "test"])
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
}
