//! `brine-run`: runners for jobs and minions, like Salt's `salt-run`. Flags and flow live in
//! `brine_cli::run`; this only starts the runtime and turns the outcome into an exit code.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use brine_cli::{exit, run::Cli};
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("brine-run: {err:#}");
            ExitCode::from(exit::FAILED)
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let stdout = std::io::stdout();
    let is_terminal = stdout.is_terminal();
    let mut out = stdout.lock();
    let outcome = runtime.block_on(brine_cli::run::run(cli, &mut out, is_terminal));
    Ok(match outcome {
        Ok(code) => ExitCode::from(code),
        Err(e) => e.report("brine-run"),
    })
}
