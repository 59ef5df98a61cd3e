//! `brine`: run a function on minions, like Salt's `salt`. Flags and flow live in
//! `brine_cli::brine`; this only starts the runtime and turns the outcome into an exit code.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use brine_cli::{brine::Cli, exit};
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("brine: {err:#}");
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
    let mut err = std::io::stderr();
    let outcome = runtime.block_on(brine_cli::brine::run(cli, &mut out, &mut err, is_terminal));
    Ok(match outcome {
        Ok(code) => ExitCode::from(code),
        Err(e) => e.report("brine"),
    })
}
