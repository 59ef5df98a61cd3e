//! `brine-call`: run a function on this host, like Salt's `salt-call`. Flags and flow live in
//! `brine_cli::call`; this only parses the flags and runs the command.

use std::process::ExitCode;

use brine_cli::{call::Cli, run_command};
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    run_command("brine-call", async |out, _err, terminals| {
        brine_cli::call::run(&cli, out, terminals.stdout).await
    })
}
