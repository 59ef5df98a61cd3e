//! `brine-run`: runners for jobs and minions, like Salt's `salt-run`. Flags and flow live in
//! `brine_cli::run`; this only parses the flags and runs the command.

use std::process::ExitCode;

use brine_cli::{run::Cli, run_command};
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    run_command("brine-run", async |out, _err, terminals| {
        brine_cli::run::run(&cli, out, terminals.stdout).await
    })
}
