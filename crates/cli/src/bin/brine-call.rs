//! `brine-call`: run a function on this host, like Salt's `salt-call`. Flags and flow live in
//! `brine_cli::call`; this only starts the runtime and turns the outcome into an exit code.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use brine_cli::{call::Cli, exit};
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("brine-call: {err:#}");
            ExitCode::from(exit::FAILED)
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    // cmd.* functions wait on child processes: a runtime with its I/O and timer drivers.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let stdout = std::io::stdout();
    let is_terminal = stdout.is_terminal();
    let mut out = stdout.lock();
    let outcome = runtime.block_on(brine_cli::call::run(cli, &mut out, is_terminal));
    Ok(match outcome {
        Ok(code) => ExitCode::from(code),
        Err(e) => e.report("brine-call"),
    })
}
