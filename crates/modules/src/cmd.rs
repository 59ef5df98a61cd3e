//! `cmd.*`: run a command on the host. As in Salt, a command line from an operator (a
//! published job, `brine-call`) runs through `/bin/sh -c` unless `shell=False` (or
//! `python_shell=False`) says otherwise; one from another module or a state
//! ([`Origin::Module`]) is split into argv with shell quoting rules and run directly unless a
//! shell is asked for; a list is argv unless a shell is asked for. Each child leads its own
//! process group, which is killed with SIGKILL on timeout or when the caller drops the
//! future; output is capped.
//!
//! The return code of every `cmd.*` function is the command's exit code (128 + the signal for a
//! command killed by a signal), as Salt sets it, so a failing command fails the job.
//!
//! Other modules run their programs (`apt-get`, `rpm`, `systemctl`, ...) through the same
//! machinery with [`run_program`]: argv only, own process group, a timeout, capped output.

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use brine_proto::{Map, Value};
use nix::fcntl::OFlag;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use crate::args::{kw, opt, req, type_name, ArgError, Args, Signature};
use crate::{Context, Error, Function, Handler, Origin, Outcome};

/// The most bytes kept of one output stream; the rest is read and dropped.
pub(crate) const OUTPUT_CAP: usize = 1024 * 1024;

/// The shell used for `shell=true`.
const SHELL: &str = "/bin/sh";

/// How long to wait for a killed process group's leader to be reaped.
const REAP_GRACE: Duration = Duration::from_secs(5);

/// The functions of this module.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Fun {
    Run,
    RunAll,
    RunStdout,
    RunStderr,
    Retcode,
    Shell,
}

/// The parameters shared by every `cmd.*` function, in Salt's positional order.
const SIGNATURE: Signature = Signature::new(&[
    req("cmd"),
    opt("cwd"),
    opt("stdin"),
    kw("shell"),
    kw("python_shell"),
    kw("env"),
    kw("timeout"),
]);

pub(crate) const FUNCTIONS: &[Function] = &[
    Function {
        name: "cmd.run",
        doc: "Execute the passed command and return the output as a string, stdout and stderr\n\
              combined, trailing whitespace removed. The job's return code is the command's\n\
              exit code.\n\n\
              As in Salt, a command line given on the command line runs through\n\
              ``/bin/sh -c``, so pipes, redirections and ``$VARS`` work. Pass\n\
              ``shell=False`` (or ``python_shell=False``) to split it into arguments with\n\
              shell quoting rules and run it directly. A list of arguments runs directly\n\
              unless ``shell=True``.\n\n\
              cmd\n    The command, a string or a list of arguments.\n\
              cwd\n    The directory to run it in.\n\
              stdin\n    A string to feed to the command's standard input.\n\
              shell : True\n    Run a command line through ``/bin/sh -c``; ``python_shell`` is the same.\n\
              env\n    A map of environment variables to add.\n\
              timeout\n    Seconds after which the command and every process it started are\n    \
              killed and the call fails.\n\n\
              Each stream is capped at 1 MiB; the rest is dropped and a marker is appended.\n\n\
              CLI Example:\n\n    brine '*' cmd.run 'uname -a'\n    \
              brine '*' cmd.run 'ls -l /etc | wc -l'\n    \
              brine '*' cmd.run 'ls $HOME' shell=False",
        signature: SIGNATURE,
        handler: Handler::Cmd(Fun::Run),
    },
    Function {
        name: "cmd.run_all",
        doc: "Execute the passed command and return a map of ``pid``, ``retcode``, ``stdout``\n\
              and ``stderr`` (and ``truncated: True`` when output was capped). Takes the same\n\
              arguments as ``cmd.run``.\n\n\
              CLI Example:\n\n    brine '*' cmd.run_all 'ls -l /var'",
        signature: SIGNATURE,
        handler: Handler::Cmd(Fun::RunAll),
    },
    Function {
        name: "cmd.run_stdout",
        doc: "Execute the passed command and return only its stdout. Takes the same arguments\n\
              as ``cmd.run``.\n\n\
              CLI Example:\n\n    brine '*' cmd.run_stdout 'ls -l /var'",
        signature: SIGNATURE,
        handler: Handler::Cmd(Fun::RunStdout),
    },
    Function {
        name: "cmd.run_stderr",
        doc: "Execute the passed command and return only its stderr. Takes the same arguments\n\
              as ``cmd.run``.\n\n\
              CLI Example:\n\n    brine '*' cmd.run_stderr 'ls -l /nonexistent'",
        signature: SIGNATURE,
        handler: Handler::Cmd(Fun::RunStderr),
    },
    Function {
        name: "cmd.retcode",
        doc: "Execute the passed command and return its exit code; its output is discarded.\n\
              Takes the same arguments as ``cmd.run``.\n\n\
              CLI Example:\n\n    brine '*' cmd.retcode 'test -d /srv'",
        signature: SIGNATURE,
        handler: Handler::Cmd(Fun::Retcode),
    },
    Function {
        name: "cmd.shell",
        doc: "Execute the passed command with ``/bin/sh -c`` and return the output as\n\
              ``cmd.run`` does (``shell=True`` is the default here).\n\n\
              CLI Example:\n\n    brine '*' cmd.shell 'ls -l | grep foo'",
        signature: SIGNATURE,
        handler: Handler::Cmd(Fun::Shell),
    },
];

/// Why a command could not run to completion.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CmdError {
    #[error("argument 'cmd' is empty")]
    Empty,
    #[error("argument 'cmd' cannot be split into arguments (unbalanced quotes?)")]
    Split,
    #[error("arguments 'shell' and 'python_shell' are one option and disagree here")]
    ShellOptions,
    #[error("argument 'cwd' is not an existing directory: '{0}'")]
    Cwd(String),
    #[error("argument 'timeout' must be more than 0 seconds")]
    ZeroTimeout,
    #[error("command not found: '{0}'")]
    NotFound(String),
    #[error("permission denied running '{0}'")]
    PermissionDenied(String),
    #[error("cannot start '{program}': {source}")]
    Spawn { program: String, source: io::Error },
    #[error("cannot set up output capture: {0}")]
    Pipe(io::Error),
    #[error("cannot collect command output: {0}")]
    Collect(io::Error),
    #[error("command timed out after {0} seconds, its process group was killed")]
    TimedOut(f64),
    /// A program run for another module exited non-zero; `message` is the end of its output.
    #[error("{program} failed with exit code {retcode}: {message}")]
    Failed {
        program: String,
        retcode: i32,
        message: String,
    },
    /// A program's output, which another module must read whole, went past [`OUTPUT_CAP`].
    #[error("the output of {0} is larger than {OUTPUT_CAP} bytes and cannot be read whole")]
    Truncated(String),
}

impl CmdError {
    /// The return code of the job, shell-style where a shell has one.
    pub(crate) fn retcode(&self) -> i32 {
        match self {
            CmdError::NotFound(_) => 127,
            CmdError::PermissionDenied(_) => 126,
            CmdError::Failed { retcode, .. } => *retcode,
            _ => 1,
        }
    }
}

pub(crate) async fn call(ctx: &Context, fun: Fun, args: Args) -> Result<Outcome, Error> {
    let shell_by_default = matches!(fun, Fun::Shell) || ctx.origin == Origin::Operator;
    let mut invocation = Invocation::from_args(&args, shell_by_default)?;
    // Scripts may want to know which minion runs them; the caller's env= wins.
    if !invocation.env.iter().any(|(k, _)| k == MINION_ID_VAR) {
        invocation
            .env
            .insert(0, (MINION_ID_VAR.into(), ctx.id.to_string()));
    }
    let output = match fun {
        Fun::Run | Fun::Shell => Output::Merged,
        Fun::RunAll | Fun::RunStdout | Fun::RunStderr => Output::Separate,
        Fun::Retcode => Output::Discard,
    };
    let done = run(&invocation, output).await?;
    let outcome = match fun {
        Fun::Run | Fun::Shell | Fun::RunStdout => {
            Outcome::with_retcode(done.stdout.into_text(), done.retcode)
        }
        Fun::RunStderr => Outcome::with_retcode(done.stderr.into_text(), done.retcode),
        Fun::Retcode => Outcome::with_retcode(done.retcode, done.retcode),
        Fun::RunAll => {
            let truncated = done.stdout.truncated || done.stderr.truncated;
            let mut ret = Map::new();
            ret.insert("pid".into(), done.pid.into());
            ret.insert("retcode".into(), done.retcode.into());
            ret.insert("stdout".into(), done.stdout.into_text().into());
            ret.insert("stderr".into(), done.stderr.into_text().into());
            if truncated {
                ret.insert("truncated".into(), true.into());
            }
            Outcome::with_retcode(ret, done.retcode)
        }
    };
    Ok(outcome)
}

/// The environment variable that tells a command which minion runs it.
pub const MINION_ID_VAR: &str = "BRINE_MINION_ID";

/// Everything needed to start one command.
#[derive(Debug)]
struct Invocation {
    argv: Vec<String>,
    cwd: Option<PathBuf>,
    stdin: Option<String>,
    env: Vec<(String, String)>,
    timeout: Option<Duration>,
}

impl Invocation {
    /// `shell_by_default` applies to a command line; a list is argv unless a shell is asked
    /// for. `shell` and `python_shell` are one option under two names.
    fn from_args(args: &Args, shell_by_default: bool) -> Result<Self, Error> {
        let asked = match (args.value("shell"), args.value("python_shell")) {
            (None, None) => None,
            (Some(_), None) => Some(args.bool("shell", false)?),
            (None, Some(_)) => Some(args.bool("python_shell", false)?),
            (Some(_), Some(_)) => {
                let (shell, python_shell) = (
                    args.bool("shell", false)?,
                    args.bool("python_shell", false)?,
                );
                if shell != python_shell {
                    return Err(CmdError::ShellOptions.into());
                }
                Some(shell)
            }
        };
        let given = command(args)?;
        let shell = asked.unwrap_or(shell_by_default && matches!(given, CmdArg::Line(_)));
        let blank = match &given {
            CmdArg::Line(line) => line.trim().is_empty(),
            CmdArg::Argv(argv) => argv.is_empty(),
        };
        if blank {
            return Err(CmdError::Empty.into());
        }
        let argv = match given {
            CmdArg::Line(line) if shell => vec![SHELL.into(), "-c".into(), line],
            CmdArg::Line(line) => shlex::split(&line).ok_or(CmdError::Split)?,
            CmdArg::Argv(argv) if shell => {
                let line = shlex::try_join(argv.iter().map(String::as_str))
                    .map_err(|_| CmdError::Split)?;
                vec![SHELL.into(), "-c".into(), line]
            }
            CmdArg::Argv(argv) => argv,
        };
        if argv.is_empty() {
            return Err(CmdError::Empty.into());
        }
        let cwd = args.string("cwd")?.map(PathBuf::from);
        if let Some(dir) = &cwd {
            if !dir.is_dir() {
                return Err(CmdError::Cwd(dir.display().to_string()).into());
            }
        }
        let timeout = args.seconds("timeout")?;
        if timeout.is_some_and(|t| t.is_zero()) {
            return Err(CmdError::ZeroTimeout.into());
        }
        Ok(Self {
            argv,
            cwd,
            stdin: args.string("stdin")?,
            env: args.string_map("env")?.unwrap_or_default(),
            timeout,
        })
    }
}

/// The `cmd` argument as given: a command line, or an argument vector.
enum CmdArg {
    Line(String),
    Argv(Vec<String>),
}

fn command(args: &Args) -> Result<CmdArg, ArgError> {
    const EXPECTED: &str = "a string or a list of strings";
    let value = args.value("cmd").ok_or(ArgError::Missing("cmd"))?;
    match value {
        Value::Array(items) => items
            .iter()
            .map(|item| {
                crate::args::scalar_text(item).ok_or(ArgError::WrongType {
                    name: "cmd",
                    expected: EXPECTED,
                    found: "a list holding a non-string",
                })
            })
            .collect::<Result<_, _>>()
            .map(CmdArg::Argv),
        other => crate::args::scalar_text(other)
            .map(CmdArg::Line)
            .ok_or(ArgError::WrongType {
                name: "cmd",
                expected: EXPECTED,
                found: type_name(other),
            }),
    }
}

/// Runs `argv` for another module as `cmd.run` runs a command: no shell, stdout and stderr
/// merged and capped, trailing whitespace removed, the process group killed after `timeout`.
/// Returns the output and the exit code.
pub(crate) async fn run_argv(
    argv: Vec<String>,
    timeout: Duration,
) -> Result<(String, i32), CmdError> {
    let invocation = Invocation {
        argv,
        cwd: None,
        stdin: None,
        env: Vec::new(),
        timeout: Some(timeout),
    };
    let done = run(&invocation, Output::Merged).await?;
    Ok((done.stdout.into_text(), done.retcode))
}

/// Where a command's output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    /// stdout and stderr into one pipe, interleaved as written; returned as `stdout`.
    Merged,
    /// stdout and stderr captured apart.
    Separate,
    /// Both to /dev/null.
    Discard,
}

/// One captured output stream.
#[derive(Debug, Default)]
struct Captured {
    bytes: Vec<u8>,
    truncated: bool,
}

impl Captured {
    /// The output as text: lossy UTF-8, trailing whitespace removed (Salt's `rstrip`), and a
    /// marker when it was capped.
    fn into_text(self) -> String {
        let mut text = String::from_utf8_lossy(&self.bytes).trim_end().to_owned();
        if self.truncated {
            text.push_str(&format!("\n[output truncated at {OUTPUT_CAP} bytes]"));
        }
        text
    }
}

/// A command that ran to completion.
#[derive(Debug)]
struct Finished {
    pid: u32,
    retcode: i32,
    stdout: Captured,
    stderr: Captured,
}

/// A child that leads its own process group. Unless it ran to completion, dropping it kills the
/// whole group with SIGKILL (then `kill_on_drop` and tokio's orphan reaping see to the leader).
struct GroupChild {
    child: Child,
    pgid: Pid,
    done: bool,
}

impl GroupChild {
    fn kill_group(&self) {
        if let Err(err) = killpg(self.pgid, Signal::SIGKILL) {
            tracing::debug!(pgid = self.pgid.as_raw(), cause = %err, "killpg failed");
        }
    }
}

impl Drop for GroupChild {
    fn drop(&mut self) {
        if !self.done {
            self.kill_group();
        }
    }
}

/// Starts the command, feeds its stdin, collects its output and waits for it, all under the
/// invocation's timeout.
async fn run(inv: &Invocation, output: Output) -> Result<Finished, CmdError> {
    let Some((program, rest)) = inv.argv.split_first() else {
        return Err(CmdError::Empty);
    };
    let program = program.clone();
    let mut command = Command::new(&program);
    command
        .args(rest)
        .envs(inv.env.iter().map(|(k, v)| (k, v)))
        .stdin(if inv.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .kill_on_drop(true)
        .process_group(0);
    if let Some(dir) = &inv.cwd {
        command.current_dir(dir);
    }
    let merged_reader = match output {
        Output::Merged => {
            // One pipe for both streams. Both ends are close-on-exec, so a command started
            // concurrently elsewhere in the process never holds the write end open.
            let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
                .map_err(|errno| CmdError::Pipe(io::Error::from(errno)))?;
            let write_err = write.try_clone().map_err(CmdError::Pipe)?;
            command
                .stdout(Stdio::from(write))
                .stderr(Stdio::from(write_err));
            let reader =
                tokio::net::unix::pipe::Receiver::from_owned_fd(read).map_err(CmdError::Pipe)?;
            Some(reader)
        }
        Output::Separate => {
            command.stdout(Stdio::piped()).stderr(Stdio::piped());
            None
        }
        Output::Discard => {
            command.stdout(Stdio::null()).stderr(Stdio::null());
            None
        }
    };
    let spawned = command.spawn();
    // The command holds our copies of the pipe's write end: close them, or EOF never comes.
    drop(command);
    let mut child = spawned.map_err(|err| match err.kind() {
        io::ErrorKind::NotFound => CmdError::NotFound(program.clone()),
        io::ErrorKind::PermissionDenied => CmdError::PermissionDenied(program.clone()),
        _ => CmdError::Spawn {
            program: program.clone(),
            source: err,
        },
    })?;
    let Some(pid) = child.id() else {
        return Err(CmdError::Collect(io::Error::other(
            "child exited before it was tracked",
        )));
    };
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let mut group = GroupChild {
        child,
        pgid: Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX)),
        done: false,
    };

    let input = inv.stdin.as_deref().unwrap_or_default().as_bytes();
    let work = async {
        let feed = async {
            if let Some(mut pipe) = stdin {
                // A command that exits without reading its input is not an error.
                let _ = pipe.write_all(input).await;
            }
        };
        let out = async {
            match (merged_reader, stdout) {
                (Some(reader), _) => read_capped(reader).await,
                (None, Some(pipe)) => read_capped(pipe).await,
                (None, None) => Ok(Captured::default()),
            }
        };
        let err = async {
            match stderr {
                Some(pipe) => read_capped(pipe).await,
                None => Ok(Captured::default()),
            }
        };
        let ((), status, out, err) = tokio::join!(feed, group.child.wait(), out, err);
        Ok::<_, io::Error>((status?, out?, err?))
    };
    let result = match inv.timeout {
        Some(limit) => tokio::time::timeout(limit, work).await.ok(),
        None => Some(work.await),
    };
    let Some(result) = result else {
        group.kill_group();
        // The leader dies at once on SIGKILL; reap it so it does not linger as a zombie.
        let _ = tokio::time::timeout(REAP_GRACE, group.child.wait()).await;
        group.done = true;
        return Err(CmdError::TimedOut(
            inv.timeout.unwrap_or_default().as_secs_f64(),
        ));
    };
    let (status, stdout, stderr) = result.map_err(CmdError::Collect)?;
    group.done = true;
    let retcode = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or_default());
    Ok(Finished {
        pid,
        retcode,
        stdout,
        stderr,
    })
}

/// How much of a failed program's output goes into the failure message: its last bytes, where
/// apt-get, dnf and systemctl put the reason.
const FAILURE_TAIL: usize = 4096;

/// What a program run by another module produced.
#[derive(Debug)]
pub(crate) struct ProgramOutput {
    pub(crate) program: String,
    pub(crate) retcode: i32,
    /// Lossy UTF-8, as written (not trimmed).
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    /// Whether either stream went past [`OUTPUT_CAP`] and was cut.
    pub(crate) truncated: bool,
}

impl ProgramOutput {
    /// `self` if the program exited 0, otherwise its failure.
    pub(crate) fn success(self) -> Result<Self, CmdError> {
        if self.retcode == 0 {
            Ok(self)
        } else {
            Err(self.failure())
        }
    }

    /// `self` if the program exited 0 and its stdout is whole, for output that is parsed.
    pub(crate) fn complete(self) -> Result<Self, CmdError> {
        let done = self.success()?;
        if done.truncated {
            return Err(CmdError::Truncated(done.program));
        }
        Ok(done)
    }

    /// The failure this run stands for: the exit code and the end of stderr (of stdout when
    /// stderr is blank), at most [`FAILURE_TAIL`] bytes of it.
    pub(crate) fn failure(&self) -> CmdError {
        let text = if self.stderr.trim().is_empty() {
            self.stdout.trim()
        } else {
            self.stderr.trim()
        };
        let message = if text.is_empty() {
            "no output".to_owned()
        } else {
            tail(text, FAILURE_TAIL)
        };
        CmdError::Failed {
            program: self.program.clone(),
            retcode: self.retcode,
            message,
        }
    }
}

/// The last `max` bytes of `text` (at a character boundary), marked when cut.
fn tail(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut cut = text.len() - max;
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    format!("...{}", &text[cut..])
}

/// Runs `argv` for another module: directly (no shell), with `env` added to the minion's
/// environment, stdin from /dev/null, stdout and stderr captured apart (each capped at
/// [`OUTPUT_CAP`]), in its own process group, which is killed when `timeout` passes or the
/// future is dropped. A program that cannot start is an error; one that exits non-zero is not
/// (see [`ProgramOutput::success`]).
pub(crate) async fn run_program(
    argv: Vec<String>,
    env: &[(&str, &str)],
    timeout: Duration,
) -> Result<ProgramOutput, CmdError> {
    let program = argv.first().cloned().unwrap_or_default();
    let invocation = Invocation {
        argv,
        cwd: None,
        stdin: None,
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        timeout: Some(timeout),
    };
    let done = run(&invocation, Output::Separate).await?;
    Ok(ProgramOutput {
        program,
        retcode: done.retcode,
        truncated: done.stdout.truncated || done.stderr.truncated,
        stdout: String::from_utf8_lossy(&done.stdout.bytes).into_owned(),
        stderr: String::from_utf8_lossy(&done.stderr.bytes).into_owned(),
    })
}

/// Reads `reader` to the end, keeping at most [`OUTPUT_CAP`] bytes.
async fn read_capped<R: AsyncRead + Unpin>(mut reader: R) -> io::Result<Captured> {
    let mut captured = Captured::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            return Ok(captured);
        }
        let room = OUTPUT_CAP - captured.bytes.len();
        if n > room {
            captured.truncated = true;
        }
        captured.bytes.extend_from_slice(&buf[..n.min(room)]);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Instant;

    use nix::sys::signal::kill;
    use serde_json::json;

    use super::*;
    use crate::tests::{ctx, run as call, run_with};

    #[tokio::test]
    async fn run_returns_output_and_exit_code() {
        let out = call("cmd.run", vec![json!("echo hello")], json!({})).await;
        assert_eq!(out, Outcome::ok("hello"));

        let out = call(
            "cmd.run",
            vec![json!("sh -c 'echo out; echo err >&2; exit 3'")],
            json!({}),
        )
        .await;
        assert_eq!(out.ret, json!("out\nerr"));
        assert_eq!((out.retcode, out.success), (3, false));

        let out = call("cmd.retcode", vec![json!("false")], json!({})).await;
        assert_eq!((out.ret, out.retcode, out.success), (json!(1), 1, false));
        let out = call("cmd.retcode", vec![json!("true")], json!({})).await;
        assert_eq!((out.ret, out.retcode, out.success), (json!(0), 0, true));
    }

    #[tokio::test]
    async fn commands_know_which_minion_runs_them() {
        let out = call(
            "cmd.run",
            vec![json!("printenv BRINE_MINION_ID")],
            json!({}),
        )
        .await;
        assert_eq!(out.ret, json!(ctx().id.to_string()));
        let out = call(
            "cmd.run",
            vec![json!("printenv BRINE_MINION_ID")],
            json!({"env": {"BRINE_MINION_ID": "mine"}}),
        )
        .await;
        assert_eq!(out.ret, json!("mine"));
    }

    #[tokio::test]
    async fn run_all_returns_the_whole_picture() {
        let out = call(
            "cmd.run_all",
            vec![json!(["sh", "-c", "echo out; echo err >&2; exit 2"])],
            json!({}),
        )
        .await;
        assert_eq!((out.retcode, out.success), (2, false));
        assert_eq!(out.ret["stdout"], json!("out"));
        assert_eq!(out.ret["stderr"], json!("err"));
        assert_eq!(out.ret["retcode"], json!(2));
        assert!(out.ret["pid"].as_u64().unwrap() > 0);
        assert!(out.ret.get("truncated").is_none());

        let out = call(
            "cmd.run_stderr",
            vec![json!("sh -c 'echo e >&2'")],
            json!({}),
        )
        .await;
        assert_eq!(out, Outcome::ok("e"));
    }

    #[tokio::test]
    async fn an_operators_command_line_runs_through_a_shell_unless_told_not_to() {
        let out = call(
            "cmd.run",
            vec![json!("echo a | tr a b; echo $BRINE_MINION_ID")],
            json!({}),
        )
        .await;
        assert_eq!(out, Outcome::ok("b\nweb1"));
        for off in [json!({"shell": false}), json!({"python_shell": "False"})] {
            let out = call("cmd.run", vec![json!("echo 'a b' $HOME |x")], off.clone()).await;
            assert_eq!(out, Outcome::ok("a b $HOME |x"), "{off}");
        }
        // A list is argv, unless a shell is asked for.
        let out = call("cmd.run", vec![json!(["echo", "a;b"])], json!({})).await;
        assert_eq!(out, Outcome::ok("a;b"));
        let out = call(
            "cmd.run",
            vec![json!(["echo", "a;b"])],
            json!({"shell": true}),
        )
        .await;
        assert_eq!(out, Outcome::ok("a;b"), "quoted for the shell");
        let both = json!({"shell": true, "python_shell": false});
        let out = call("cmd.run", vec![json!("true")], both).await;
        assert!(
            !out.success && out.ret.as_str().unwrap().contains("disagree"),
            "{out:?}"
        );
    }

    #[tokio::test]
    async fn a_modules_command_line_is_argv_unless_a_shell_is_asked_for() {
        let ctx = Context {
            origin: Origin::Module,
            ..crate::tests::ctx()
        };
        let out = run_with(&ctx, "cmd.run", vec![json!("echo a;b")], json!({})).await;
        assert_eq!(out, Outcome::ok("a;b"));
        let out = run_with(
            &ctx,
            "cmd.run",
            vec![json!("echo 'a b' $HOME |x")],
            json!({}),
        )
        .await;
        assert_eq!(out, Outcome::ok("a b $HOME |x"));
        for on in [json!({"shell": true}), json!({"python_shell": "True"})] {
            let out = run_with(&ctx, "cmd.run", vec![json!("echo a;echo b")], on.clone()).await;
            assert_eq!(out, Outcome::ok("a\nb"), "{on}");
        }
        let out = run_with(&ctx, "cmd.shell", vec![json!("echo a | tr a b")], json!({})).await;
        assert_eq!(out, Outcome::ok("b"));
    }

    #[tokio::test]
    async fn cwd_env_and_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let expected = dir.path().canonicalize().unwrap();
        let out = call("cmd.run", vec![json!("pwd"), json!(dir.path())], json!({})).await;
        assert_eq!(out, Outcome::ok(expected.to_str().unwrap()));

        let out = call(
            "cmd.run",
            vec![json!("echo $BRINE_A-$BRINE_B")],
            json!({"shell": true, "env": {"BRINE_A": "x y", "BRINE_B": 7}}),
        )
        .await;
        assert_eq!(out, Outcome::ok("x y-7"));

        let out = call("cmd.run", vec![json!("cat")], json!({"stdin": "fed in"})).await;
        assert_eq!(out, Outcome::ok("fed in"));

        let out = call(
            "cmd.run",
            vec![json!("pwd")],
            json!({"cwd": "/nonexistent/brine"}),
        )
        .await;
        assert!(!out.success);
        assert!(out.ret.as_str().unwrap().contains("'cwd'"), "{}", out.ret);

        let out = call("cmd.run", vec![json!("env")], json!({"env": ["A"]})).await;
        assert_eq!(
            out.ret,
            json!("cmd.run: argument 'env' must be a map of strings, got a list")
        );
    }

    #[tokio::test]
    async fn missing_command_is_a_clear_failure() {
        let argv = json!({"shell": false});
        let out = call(
            "cmd.run",
            vec![json!("brine-no-such-command --flag")],
            argv.clone(),
        )
        .await;
        assert_eq!(out.retcode, 127);
        assert!(!out.success);
        assert_eq!(
            out.ret,
            json!("cmd.run: command not found: 'brine-no-such-command'")
        );
        // Through the shell, the shell says so, with the same code.
        let out = call("cmd.run", vec![json!("brine-no-such-command")], json!({})).await;
        assert_eq!(out.retcode, 127);
        assert!(out.ret.as_str().unwrap().contains("not found"), "{out:?}");

        let out = call("cmd.run", vec![json!("   ")], json!({})).await;
        assert_eq!(out.ret, json!("cmd.run: argument 'cmd' is empty"));
        let out = call("cmd.run", vec![json!("echo 'unbalanced")], argv).await;
        assert!(out.ret.as_str().unwrap().contains("unbalanced"));
        let out = call("cmd.run", vec![json!(["echo", "a\0b"])], json!({})).await;
        assert!(!out.success);
        assert!(
            out.ret.as_str().unwrap().contains("cannot start 'echo'"),
            "{}",
            out.ret
        );
        let out = call("cmd.run", vec![json!([])], json!({})).await;
        assert_eq!(out.ret, json!("cmd.run: argument 'cmd' is empty"));
        let out = call("cmd.run", vec![json!({"a": 1})], json!({})).await;
        assert!(out.ret.as_str().unwrap().contains("argument 'cmd'"));
    }

    #[tokio::test]
    async fn output_is_capped_with_a_marker() {
        let script = format!("head -c {} /dev/zero | tr '\\0' a", OUTPUT_CAP + 5000);
        let out = call("cmd.run", vec![json!(script)], json!({"shell": true})).await;
        assert!(out.success);
        let text = out.ret.as_str().unwrap();
        let marker = format!("\n[output truncated at {OUTPUT_CAP} bytes]");
        assert!(text.ends_with(&marker));
        assert_eq!(text.len(), OUTPUT_CAP + marker.len());

        let out = call("cmd.run_all", vec![json!(script)], json!({"shell": true})).await;
        assert_eq!(out.ret["truncated"], json!(true));
        assert!(out.ret["stdout"].as_str().unwrap().ends_with(&marker));
    }

    #[tokio::test]
    async fn non_utf8_output_is_converted_lossily() {
        let out = call(
            "cmd.run",
            vec![json!("printf 'a\\377b'")],
            json!({"shell": true}),
        )
        .await;
        assert_eq!(out, Outcome::ok("a\u{FFFD}b"));
    }

    #[tokio::test]
    async fn programs_run_for_other_modules_report_their_failure() {
        let argv = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let out = run_program(
            argv(&["sh", "-c", "echo out; echo \"$BRINE_X\" >&2; exit 3"]),
            &[("BRINE_X", "err")],
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert_eq!((out.retcode, out.stdout.as_str()), (3, "out\n"));
        let err = out.success().unwrap_err();
        assert_eq!(err.to_string(), "sh failed with exit code 3: err");
        assert_eq!(err.retcode(), 3);

        let out = run_program(
            argv(&["sh", "-c", "echo only-out; exit 2"]),
            &[],
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert_eq!(
            out.failure().to_string(),
            "sh failed with exit code 2: only-out"
        );

        let script = format!("head -c {} /dev/zero | tr '\\0' a", OUTPUT_CAP + 1);
        let out = run_program(argv(&["sh", "-c", &script]), &[], Duration::from_secs(10))
            .await
            .unwrap();
        assert!(matches!(out.complete(), Err(CmdError::Truncated(p)) if p == "sh"));

        let long = format!("{}é-end", "x".repeat(FAILURE_TAIL));
        let cut = tail(&long, FAILURE_TAIL);
        assert!(cut.starts_with("...") && cut.ends_with("é-end"), "{cut}");
        assert!(cut.len() <= FAILURE_TAIL + 3);

        let err = run_program(
            argv(&["brine-no-such-program"]),
            &[],
            Duration::from_secs(10),
        )
        .await
        .unwrap_err();
        assert_eq!(err.retcode(), 127);
        let err = run_program(argv(&["sleep", "10"]), &[], Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(err, CmdError::TimedOut(_)), "{err}");
    }

    /// Whether `pid` is gone or dead (a zombie waiting for init to reap it).
    fn is_dead(pid: Pid) -> bool {
        if kill(pid, None).is_err() {
            return true;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The state follows the parenthesised command name.
        let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
        matches!(
            state.and_then(|s| s.chars().next()),
            None | Some('Z') | Some('X')
        )
    }

    /// Waits until `pid` is dead: SIGKILL is delivered asynchronously, so a grandchild may
    /// take a moment to die after the call returns.
    async fn assert_dies(pid: Pid) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !is_dead(pid) {
            assert!(Instant::now() < deadline, "process {pid} survived");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn read_pid(path: &Path) -> Pid {
        let text = std::fs::read_to_string(path).unwrap();
        Pid::from_raw(text.trim().parse().unwrap())
    }

    #[tokio::test]
    async fn timeout_kills_the_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("grandchild");
        let script = format!("sleep 100 & echo $! > {}; sleep 100", pidfile.display());
        let start = Instant::now();
        let out = call(
            "cmd.run",
            vec![json!(["sh", "-c", script])],
            json!({"timeout": 1}),
        )
        .await;
        assert!(start.elapsed() < Duration::from_secs(10));
        assert!(!out.success);
        assert_ne!(out.retcode, 0);
        assert!(
            out.ret.as_str().unwrap().contains("timed out"),
            "{}",
            out.ret
        );
        tokio::time::timeout(Duration::from_secs(10), assert_dies(read_pid(&pidfile)))
            .await
            .expect("grandchild not killed");
    }

    #[tokio::test]
    async fn dropping_the_future_kills_the_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("grandchild");
        let script = format!(
            "sleep 100 & echo $! > {pid}.tmp && mv {pid}.tmp {pid}; sleep 100",
            pid = pidfile.display()
        );
        let ctx = ctx();
        let mut job = Box::pin(crate::execute(
            &ctx,
            "cmd.run",
            vec![json!(["sh", "-c", script])],
            Map::new(),
        ));
        // Drive the job until the grandchild has written its pid, then drop the job.
        let wait_for_pid = async {
            while !pidfile.exists() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), async {
            tokio::select! {
                out = &mut job => panic!("job finished early: {out:?}"),
                () = wait_for_pid => {}
            }
        })
        .await
        .expect("grandchild never started");
        drop(job);
        tokio::time::timeout(Duration::from_secs(10), assert_dies(read_pid(&pidfile)))
            .await
            .expect("grandchild not killed");
    }
}
