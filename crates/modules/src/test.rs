//! `test.*`: functions that check a minion is alive and that calls reach it intact.

use brine_proto::{Map, Value};

use crate::args::{opt, req, Args, Preset, Signature};
use crate::{Error, Function, Handler, Outcome};

/// The functions of this module.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Fun {
    Ping,
    Echo,
    Sleep,
    Version,
    Arg,
    Retcode,
    Exception,
}

pub(crate) const FUNCTIONS: &[Function] = &[
    Function {
        name: "test.ping",
        doc: "Used to make sure the minion is up and responding. Not an ICMP ping.\n\n\
              Returns ``True``.\n\n\
              CLI Example:\n\n    brine '*' test.ping",
        signature: Signature::new(&[]),
        handler: Handler::Test(Fun::Ping),
    },
    Function {
        name: "test.echo",
        doc: "Return a string - used for testing the connection.\n\n\
              text\n    The string to return.\n\n\
              CLI Example:\n\n    brine '*' test.echo 'foo bar baz quo qux'",
        signature: Signature::new(&[req("text")]),
        handler: Handler::Test(Fun::Echo),
    },
    Function {
        name: "test.sleep",
        doc: "Instruct the minion to sleep for the given number of seconds, then return ``True``.\n\n\
              length\n    Seconds to sleep; fractions are allowed.\n\n\
              CLI Example:\n\n    brine '*' test.sleep 20",
        signature: Signature::new(&[req("length")]),
        handler: Handler::Test(Fun::Sleep),
    },
    Function {
        name: "test.version",
        doc: "Return the version of brine on the minion.\n\n\
              CLI Example:\n\n    brine '*' test.version",
        signature: Signature::new(&[]),
        handler: Handler::Test(Fun::Version),
    },
    Function {
        name: "test.arg",
        doc: "Print out the data passed into the function ``*args`` and ``**kwargs``; this is\n\
              used to both test the publication data and CLI argument passing, but also to\n\
              display the information available within the publication data.\n\n\
              Returns ``{\"args\": [...], \"kwargs\": {...}}``.\n\n\
              CLI Example:\n\n    brine '*' test.arg 1 \"two\" 3.1 txt=\"hello\" wow='{a: 1, b: \"hello\"}'",
        signature: Signature::new(&[]).varargs().varkw(),
        handler: Handler::Test(Fun::Arg),
    },
    Function {
        name: "test.retcode",
        doc: "Test that the returncode system is functioning correctly: return ``True`` with the\n\
              job's return code set to ``code``.\n\n\
              code : 42\n    The return code to set.\n\n\
              CLI Example:\n\n    brine '*' test.retcode 42",
        signature: Signature::new(&[opt("code").with_default(Preset::Int(DEFAULT_RETCODE))]),
        handler: Handler::Test(Fun::Retcode),
    },
    Function {
        name: "test.exception",
        doc: "Fail with the given message, to test how failures are reported.\n\n\
              message : Test Exception\n    The failure message.\n\n\
              CLI Example:\n\n    brine '*' test.exception 'Oh noes!'",
        signature: Signature::new(&[opt("message").with_default(Preset::Str(DEFAULT_MESSAGE))]),
        handler: Handler::Test(Fun::Exception),
    },
];

/// Salt's default for `test.retcode`.
const DEFAULT_RETCODE: i64 = 42;
/// Salt's default for `test.exception`.
const DEFAULT_MESSAGE: &str = "Test Exception";

pub(crate) async fn call(fun: Fun, args: Args) -> Result<Outcome, Error> {
    match fun {
        Fun::Ping => Ok(Outcome::ok(true)),
        Fun::Echo => Ok(Outcome::ok(args.required_string("text")?)),
        Fun::Sleep => {
            let length = args.seconds("length")?.unwrap_or_default();
            tokio::time::sleep(length).await;
            Ok(Outcome::ok(true))
        }
        Fun::Version => Ok(Outcome::ok(env!("CARGO_PKG_VERSION"))),
        Fun::Arg => {
            let mut ret = Map::new();
            ret.insert("args".into(), Value::Array(args.varargs));
            ret.insert("kwargs".into(), Value::Object(args.varkw));
            Ok(Outcome::ok(ret))
        }
        Fun::Retcode => {
            let code = args.int("code")?.unwrap_or(DEFAULT_RETCODE);
            let code = i32::try_from(code).map_err(|_| crate::args::ArgError::Invalid {
                name: "code",
                reason: format!("must fit in 32 bits, got {code}"),
            })?;
            Ok(Outcome::with_retcode(true, code))
        }
        Fun::Exception => {
            let message = args
                .string("message")?
                .unwrap_or_else(|| DEFAULT_MESSAGE.into());
            Err(Error::Raised(message))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use serde_json::json;

    use crate::tests::run;

    #[tokio::test]
    async fn ping_echo_version() {
        assert_eq!(
            run("test.ping", vec![], json!({})).await,
            crate::Outcome::ok(true)
        );
        let out = run("test.echo", vec![json!("hello world")], json!({})).await;
        assert_eq!(out, crate::Outcome::ok("hello world"));
        let out = run("test.echo", vec![], json!({"text": 5})).await;
        assert_eq!(out.ret, json!("5"));
        let out = run("test.version", vec![], json!({})).await;
        assert_eq!(out.ret, json!(env!("CARGO_PKG_VERSION")));
    }

    #[tokio::test]
    async fn arg_returns_args_and_kwargs() {
        let out = run(
            "test.arg",
            vec![json!(1), json!("two"), json!(3.1)],
            json!({"txt": "hello", "wow": {"a": 1}, "__pub_jid": "x"}),
        )
        .await;
        assert!(out.success);
        assert_eq!(
            out.ret,
            json!({"args": [1, "two", 3.1], "kwargs": {"txt": "hello", "wow": {"a": 1}}})
        );
    }

    #[tokio::test]
    async fn sleep_sleeps_and_rejects_nonsense() {
        let start = Instant::now();
        let out = run("test.sleep", vec![json!(0.2)], json!({})).await;
        assert_eq!(out.ret, json!(true));
        assert!(start.elapsed().as_millis() >= 200);

        let out = run("test.sleep", vec![json!(-1)], json!({})).await;
        assert!(!out.success);
        assert!(out.ret.as_str().unwrap().contains("'length'"));
    }

    #[tokio::test]
    async fn retcode_and_exception_fail() {
        let out = run("test.retcode", vec![], json!({})).await;
        assert_eq!(
            (out.retcode, out.success, out.ret),
            (42, false, json!(true))
        );
        let out = run("test.retcode", vec![json!(0)], json!({})).await;
        assert!(out.success);
        let out = run("test.exception", vec![json!("boom")], json!({})).await;
        assert_eq!((out.retcode, out.success), (1, false));
        assert_eq!(out.ret, json!("test.exception: boom"));
    }
}
