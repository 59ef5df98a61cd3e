//! brine's execution modules: the closed table of functions a minion runs (`test.*`, `cmd.*`,
//! `grains.*`, `saltutil.*`, `sys.*`, `pkg.*`, `service.*`, `file.*`, `status.*`, `disk.*`,
//! `network.*`, `user.*`, `group.*`), the grains it reports ([`GrainStore`]), and [`execute`],
//! the one way in.
//!
//! A call names a function as `module.function`, with positional and keyword arguments as Salt
//! passes them. [`execute`] looks the name up in the table, binds the arguments to the
//! function's signature (see `args`), runs the handler and folds every failure, including an
//! unknown name or a wrong argument, into an [`Outcome`] with `success = false`. Nothing here
//! panics on any input, and a child process started by `cmd.*` dies with its whole process
//! group when the future of [`execute`] is dropped. Work that may block (the file system, the
//! user database, `statvfs`) runs on tokio's blocking pool (`blocking`), never on the minion's
//! runtime worker.

mod args;
mod cmd;
mod disk;
mod file;
mod grain_store;
mod grains;
mod network;
mod pkg;
mod saltutil;
mod service;
mod status;
mod sys;
mod test;
mod user;

use std::sync::Arc;

use brine_proto::MinionId;
pub use brine_proto::{Map, Value};

pub use grain_store::{GrainStore, GrainStoreError, GRAINS_FILE};
pub use grains::collect_grains;

/// Facts about this host and this minion, given to every function.
#[derive(Debug, Clone)]
pub struct Context {
    pub id: MinionId,
    /// The grains when the call started (shared with the grain store: a job does not copy them).
    pub grains: Arc<Map>,
    /// Where `grains.setval`, `grains.delval` and `saltutil.refresh_grains` change the grains;
    /// none: they cannot be changed.
    pub grain_store: Option<Arc<GrainStore>>,
    /// The jobs the minion daemon is running (`saltutil.running`, `find_job`, `kill_job`);
    /// none outside a daemon (`brine-call`).
    pub jobs: Option<Arc<dyn RunningJobs>>,
    /// Who asked for the call: what `cmd.*` runs a command line with by default.
    pub origin: Origin,
}

/// Who asks for a call, as Salt tells a published call (`__pub_jid`) from one made by another
/// module or a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// An operator: a published job, or `brine-call` on the host. `cmd.*` runs a command line
    /// through `/bin/sh -c` unless told `shell=False` (Salt's `python_shell` default for
    /// remote execution).
    Operator,
    /// Another module or a state: `cmd.*` runs a command line as argv unless told
    /// `shell=True`, so a value that reaches it from data never meets a shell by surprise.
    Module,
}

impl Context {
    /// A context with fixed grains, no grain store and no running jobs.
    pub fn new(id: MinionId, grains: Map) -> Self {
        Self {
            id,
            grains: Arc::new(grains),
            grain_store: None,
            jobs: None,
            origin: Origin::Operator,
        }
    }

    /// A context whose grains are the store's, as they are now.
    pub fn with_store(id: MinionId, store: Arc<GrainStore>) -> Self {
        Self {
            grains: store.current(),
            grain_store: Some(store),
            ..Self::new(id, Map::new())
        }
    }
}

/// The minion daemon's table of running jobs, as `saltutil.*` sees it.
pub trait RunningJobs: Send + Sync + std::fmt::Debug {
    /// One map per running job, in Salt's shape (`jid`, `fun`, `arg`, `pid`, ...).
    fn running(&self) -> Vec<Map>;
    /// Stops the job `jid` (its return says it was killed); false when no such job runs.
    fn kill(&self, jid: &str) -> bool;
}

/// What a function produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The return data (on failure, a message).
    pub ret: Value,
    /// 0 on success; otherwise a function-specific code (a command's exit code, 127 for a
    /// command that was not found, 1 for most other failures).
    pub retcode: i32,
    pub success: bool,
}

impl Outcome {
    /// A successful return.
    pub fn ok(ret: impl Into<Value>) -> Self {
        Self {
            ret: ret.into(),
            retcode: 0,
            success: true,
        }
    }

    /// A return whose success is decided by `retcode`, as for a command's exit code.
    pub fn with_retcode(ret: impl Into<Value>, retcode: i32) -> Self {
        Self {
            ret: ret.into(),
            retcode,
            success: retcode == 0,
        }
    }

    /// A failure: `message` becomes the return, `retcode` should not be 0 (1 is used if it is).
    pub fn failure(message: impl Into<String>, retcode: i32) -> Self {
        let retcode = if retcode == 0 { 1 } else { retcode };
        Self {
            ret: Value::String(message.into()),
            retcode,
            success: false,
        }
    }
}

/// One entry of the function table.
#[derive(Debug)]
pub(crate) struct Function {
    /// `module.function`.
    pub(crate) name: &'static str,
    /// Salt-style doc string with a CLI example, as `sys.doc` shows it.
    pub(crate) doc: &'static str,
    pub(crate) signature: args::Signature,
    pub(crate) handler: Handler,
}

/// Which module runs a function, and which of its functions it is.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Handler {
    Test(test::Fun),
    Cmd(cmd::Fun),
    Grains(grains::Fun),
    Saltutil(saltutil::Fun),
    Sys(sys::Fun),
    Pkg(pkg::Fun),
    Service(service::Fun),
    File(file::Fun),
    Status(status::Fun),
    Disk(disk::Fun),
    Network(network::Fun),
    User(user::Fun),
}

/// Why a function failed; the message goes back to the caller after `module.function: `.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error(transparent)]
    Args(#[from] args::ArgError),
    #[error(transparent)]
    Cmd(#[from] cmd::CmdError),
    #[error(transparent)]
    Pkg(#[from] pkg::PkgError),
    #[error(transparent)]
    File(#[from] file::FileError),
    #[error(transparent)]
    Status(#[from] status::StatusError),
    #[error(transparent)]
    Disk(#[from] disk::DiskError),
    #[error(transparent)]
    User(#[from] user::UserError),
    /// The blocking-pool task of a function ended without an answer (it panicked).
    #[error("the function's worker thread failed: {0}")]
    Worker(String),
    /// A failure the function was asked to produce (`test.exception`).
    #[error("{0}")]
    Raised(String),
    #[error(transparent)]
    Grains(#[from] GrainStoreError),
    /// The function needs something this context does not have (a grain store, a daemon).
    #[error("{0}")]
    Unavailable(String),
}

impl Error {
    fn retcode(&self) -> i32 {
        match self {
            Error::Cmd(err) => err.retcode(),
            Error::Pkg(err) => err.retcode(),
            Error::Args(_)
            | Error::Raised(_)
            | Error::Grains(_)
            | Error::Unavailable(_)
            | Error::File(_)
            | Error::Status(_)
            | Error::Disk(_)
            | Error::User(_)
            | Error::Worker(_) => 1,
        }
    }
}

/// Every function of every module, in no particular order.
pub(crate) fn functions() -> impl Iterator<Item = &'static Function> {
    test::FUNCTIONS
        .iter()
        .chain(cmd::FUNCTIONS)
        .chain(grains::FUNCTIONS)
        .chain(saltutil::FUNCTIONS)
        .chain(sys::FUNCTIONS)
        .chain(pkg::FUNCTIONS)
        .chain(service::FUNCTIONS)
        .chain(file::FUNCTIONS)
        .chain(status::FUNCTIONS)
        .chain(disk::FUNCTIONS)
        .chain(network::FUNCTIONS)
        .chain(user::FUNCTIONS)
}

/// Runs `work` on tokio's blocking pool and waits for it: file-system and user-database calls
/// can take long (a slow disk, a hung network mount, a remote directory service), and the
/// minion has a single runtime worker that must keep serving its sockets meanwhile.
pub(crate) async fn blocking<T, F>(work: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, Error> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|err| Err(Error::Worker(err.to_string())))
}

/// Every function name, sorted.
pub fn list_functions() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = functions().map(|f| f.name).collect();
    names.sort_unstable();
    names
}

/// The doc strings of the functions `selectors` pick (as `sys.doc` picks them: a module name, a
/// function name or a glob; none picks all), sorted by name.
pub fn docs(selectors: &[String]) -> Vec<(&'static str, &'static str)> {
    let mut docs: Vec<_> = functions()
        .filter(|f| sys::selects(selectors, f.name))
        .map(|f| (f.name, f.doc))
        .collect();
    docs.sort_unstable();
    docs
}

/// Runs `fun` (`module.function`) with positional `arg` and keyword `kwarg`.
///
/// Never panics and never fails as such: a failure is an [`Outcome`] with `success = false`, a
/// non-zero `retcode` and a message as `ret`; so is a handler that panicked (its job would
/// otherwise end without a return).
pub async fn execute(ctx: &Context, fun: &str, arg: Vec<Value>, kwarg: Map) -> Outcome {
    unless_it_panics(fun, dispatch(ctx, fun, arg, kwarg)).await
}

/// `call`'s outcome, or, if it panicked, a failed one that says so.
async fn unless_it_panics(fun: &str, call: impl std::future::Future<Output = Outcome>) -> Outcome {
    use futures::FutureExt as _;
    match std::panic::AssertUnwindSafe(call).catch_unwind().await {
        Ok(outcome) => outcome,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_owned());
            tracing::error!(fun = %shorten(fun), panic = %what, "a function panicked");
            Outcome::failure(
                format!("{}: brine panicked running it: {what}", shorten(fun)),
                1,
            )
        }
    }
}

async fn dispatch(ctx: &Context, fun: &str, arg: Vec<Value>, kwarg: Map) -> Outcome {
    let Some(function) = functions().find(|f| f.name == fun) else {
        tracing::debug!(fun = %shorten(fun), "function not available");
        return Outcome::failure(not_available(fun), 1);
    };
    let args = match args::bind(&function.signature, arg, kwarg) {
        Ok(args) => args,
        Err(err) => return Outcome::failure(format!("{fun}: {err}"), 1),
    };
    tracing::debug!(fun, "executing");
    let result = match function.handler {
        Handler::Test(f) => test::call(f, args).await,
        Handler::Cmd(f) => cmd::call(ctx, f, args).await,
        Handler::Grains(f) => grains::call(ctx, f, args).await,
        Handler::Saltutil(f) => saltutil::call(ctx, f, args).await,
        Handler::Sys(f) => sys::call(f, args),
        Handler::Pkg(f) => pkg::call(ctx, f, args).await,
        Handler::Service(f) => service::call(f, args).await,
        Handler::File(f) => file::call(f, args).await,
        Handler::Status(f) => status::call(f, args).await,
        Handler::Disk(f) => disk::call(f, args).await,
        Handler::Network(f) => network::call(f, args).await,
        Handler::User(f) => user::call(f, args).await,
    };
    result.unwrap_or_else(|err| Outcome::failure(format!("{fun}: {err}"), err.retcode()))
}

/// The longest requested name that is compared against the table for suggestions.
const MAX_SUGGEST_LEN: usize = 128;
/// How similar (Jaro-Winkler) a known name must be to be suggested.
const SUGGEST_THRESHOLD: f64 = 0.85;
/// How many names are suggested at most.
const MAX_SUGGESTIONS: usize = 3;

/// Salt's message for an unknown function, with the closest known names.
fn not_available(fun: &str) -> String {
    let mut message = format!("'{}' is not available.", shorten(fun));
    let suggestions = suggest(fun);
    if !suggestions.is_empty() {
        message.push_str(" Did you mean: ");
        message.push_str(&suggestions.join(", "));
        message.push('?');
    }
    message
}

/// Up to [`MAX_SUGGESTIONS`] known names close to `fun`, closest first.
fn suggest(fun: &str) -> Vec<&'static str> {
    if fun.is_empty() || fun.len() > MAX_SUGGEST_LEN {
        return Vec::new();
    }
    let mut scored: Vec<(f64, &'static str)> = functions()
        .map(|f| {
            let mut score = strsim::jaro_winkler(fun, f.name);
            // A bare function name ("ping") is compared with the function part too.
            if !fun.contains('.') {
                if let Some((_, short)) = f.name.split_once('.') {
                    score = score.max(strsim::jaro_winkler(fun, short));
                }
            }
            (score, f.name)
        })
        .filter(|(score, _)| *score >= SUGGEST_THRESHOLD)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    scored
        .into_iter()
        .take(MAX_SUGGESTIONS)
        .map(|(_, name)| name)
        .collect()
}

/// `s` cut to [`MAX_SUGGEST_LEN`] characters, for messages about names from the wire.
fn shorten(s: &str) -> String {
    match s.char_indices().nth(MAX_SUGGEST_LEN) {
        Some((cut, _)) => format!("{}...", &s[..cut]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    pub(crate) fn ctx() -> Context {
        let id = MinionId::new("web1").unwrap();
        let grains = collect_grains(&id);
        Context::new(id, grains)
    }

    #[tokio::test]
    async fn a_function_that_panics_fails_with_a_message_instead_of_losing_its_job() {
        let outcome = unless_it_panics("test.boom", async {
            if true {
                panic!("index out of range");
            }
            Outcome::ok(true)
        })
        .await;
        assert!(!outcome.success);
        assert_eq!(outcome.retcode, 1);
        assert_eq!(
            outcome.ret,
            json!("test.boom: brine panicked running it: index out of range")
        );
        let formatted = unless_it_panics("test.boom", async {
            let n = 7;
            if n > 0 {
                panic!("{n} is too many");
            }
            Outcome::ok(true)
        })
        .await;
        assert_eq!(
            formatted.ret,
            json!("test.boom: brine panicked running it: 7 is too many")
        );
    }

    pub(crate) async fn run(fun: &str, arg: Vec<Value>, kwarg: Value) -> Outcome {
        run_with(&ctx(), fun, arg, kwarg).await
    }

    pub(crate) async fn run_with(
        ctx: &Context,
        fun: &str,
        arg: Vec<Value>,
        kwarg: Value,
    ) -> Outcome {
        let kwarg = match kwarg {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        tokio::time::timeout(Duration::from_secs(30), execute(ctx, fun, arg, kwarg))
            .await
            .expect("execute timed out")
    }

    #[tokio::test]
    async fn unknown_function_suggests_close_names() {
        let out = run("tset.ping", vec![], json!({})).await;
        assert!(!out.success);
        assert_eq!(out.retcode, 1);
        assert_eq!(
            out.ret,
            json!("'tset.ping' is not available. Did you mean: test.ping?")
        );

        let out = run("cmd.runall", vec![], json!({})).await;
        let msg = out.ret.as_str().unwrap();
        assert!(msg.contains("cmd.run_all"), "{msg}");

        let out = run("zzzz.qqqq", vec![], json!({})).await;
        assert_eq!(out.ret, json!("'zzzz.qqqq' is not available."));

        let long = "x".repeat(10_000);
        let out = run(&long, vec![], json!({})).await;
        assert!(out.ret.as_str().unwrap().len() < 200);
    }

    #[tokio::test]
    async fn argument_errors_name_the_argument() {
        let out = run("test.echo", vec![], json!({})).await;
        assert_eq!(
            out.ret,
            json!("test.echo: missing required argument 'text'")
        );
        assert!(!out.success);
        assert_eq!(out.retcode, 1);

        let out = run("test.echo", vec![json!("a")], json!({"loud": true})).await;
        assert_eq!(
            out.ret,
            json!("test.echo: unexpected keyword argument 'loud'")
        );

        let out = run("test.echo", vec![json!({"a": 1})], json!({})).await;
        assert_eq!(
            out.ret,
            json!("test.echo: argument 'text' must be a string, got a map")
        );

        let out = run("cmd.run", vec![json!("true")], json!({"timeout": "soon"})).await;
        assert_eq!(
            out.ret,
            json!("cmd.run: argument 'timeout' must be a number, got a string")
        );
    }

    #[test]
    fn list_functions_is_sorted_and_documented() {
        let names = list_functions();
        assert!(names.windows(2).all(|w| w[0] < w[1]), "sorted and unique");
        for name in [
            "test.ping",
            "cmd.run",
            "cmd.run_all",
            "grains.get",
            "sys.doc",
            "sys.argspec",
            "file.replace",
            "status.uptime",
            "disk.usage",
            "network.ip_addrs",
            "user.info",
            "group.info",
        ] {
            assert!(names.contains(&name), "{name} missing");
        }
        for f in functions() {
            assert!(
                f.doc.contains(&format!("brine '*' {}", f.name)),
                "{} lacks an example",
                f.name
            );
        }
    }
}
