//! `brine-key`: the master's minion keys, like Salt's `salt-key`. Flags and flow live in
//! `brine_cli::key`; this only starts the runtime, provides the terminal question and turns
//! the outcome into an exit code.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use brine_cli::exit;
use brine_cli::key::{ask_on_terminal, Ask, Cli};
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("brine-key: {err:#}");
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
    // Only a person at a terminal can answer "Proceed? [y/N]".
    let mut terminal = ask_on_terminal;
    let ask: Option<&mut Ask<'_>> = if std::io::stdin().is_terminal() {
        Some(&mut terminal)
    } else {
        None
    };
    let outcome = runtime.block_on(brine_cli::key::run(cli, &mut out, is_terminal, ask));
    Ok(match outcome {
        Ok(code) => ExitCode::from(code),
        Err(e) => e.report("brine-key"),
    })
}
