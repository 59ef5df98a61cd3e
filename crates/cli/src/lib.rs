//! brine's command-line tools as a library: the control-socket client, Salt's argument grammar,
//! the output formats and exit codes, and the `brine`, `brine-run`, `brine-key` and
//! `brine-call` commands themselves. The binaries under `src/bin` only parse flags, start a
//! runtime and call [`brine::run`], [`run::run`], [`key::run`] or [`call::run`].

pub mod args;
pub mod batch;
pub mod brine;
pub mod call;
pub mod client;
pub mod error;
pub mod exit;
pub mod generate;
pub mod job;
pub mod key;
pub mod output;
pub mod run;

pub use error::CommandError;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::client::DEFAULT_SOCKET;
use crate::output::OutputFormat;

/// The flags `brine-run` and `brine-key` share: where the master is and how to print.
#[derive(Debug, Args)]
pub struct MasterOptions {
    /// Output format
    #[arg(
        long,
        visible_alias = "output",
        global = true,
        value_enum,
        default_value_t,
        value_name = "FORMAT"
    )]
    pub out: OutputFormat,

    /// The master's control socket
    #[arg(
        long,
        global = true,
        env = "BRINE_SOCKET",
        default_value = DEFAULT_SOCKET,
        value_name = "PATH"
    )]
    pub socket: PathBuf,
}

/// Which of the standard streams are terminals.
#[derive(Debug, Clone, Copy, Default)]
pub struct Terminals {
    pub stdout: bool,
    pub stderr: bool,
}

/// What every tool's `main` does once its flags are parsed: a current-thread runtime (with
/// its I/O and timer drivers), the command on locked stdout and on stderr, and the exit code
/// its outcome maps to (an error is reported as `program: ...`).
pub fn run_command(
    program: &str,
    command: impl AsyncFnOnce(&mut dyn Write, &mut dyn Write, Terminals) -> Result<u8, CommandError>,
) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("{program}: starting the async runtime: {err}");
            return ExitCode::from(exit::FAILED);
        }
    };
    let stdout = std::io::stdout();
    let mut err = std::io::stderr();
    let terminals = Terminals {
        stdout: stdout.is_terminal(),
        stderr: err.is_terminal(),
    };
    let mut out = stdout.lock();
    match runtime.block_on(command(&mut out, &mut err, terminals)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => e.report(program),
    }
}
