//! `brine`: run a function on minions, like Salt's `salt`. Flags and flow live in
//! `brine_cli::brine`; this only starts the runtime and turns the outcome into an exit code.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use brine_cli::brine::{Cli, Terminals};
use brine_cli::exit;
use clap::Parser;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if brine_cli::generate::is_generate(&args) {
        return match brine_cli::generate::run(&args, &mut std::io::stdout().lock()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("brine: writing: {err}");
                ExitCode::from(exit::FAILED)
            }
        };
    }
    let cli = Cli::parse_from(args);
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
    let mut err = std::io::stderr();
    let terminals = Terminals {
        stdout: stdout.is_terminal(),
        stderr: err.is_terminal(),
    };
    let mut out = stdout.lock();
    let outcome = runtime.block_on(brine_cli::brine::run(cli, &mut out, &mut err, terminals));
    Ok(match outcome {
        Ok(code) => ExitCode::from(code),
        Err(e) => e.report("brine"),
    })
}
