//! `brine`: run a function on minions, like Salt's `salt`. Flags and flow live in
//! `brine_cli::brine`; this only parses the flags (or generates completions and man pages) and
//! runs the command.

use std::process::ExitCode;

use brine_cli::{brine::Cli, exit, generate, run_command};
use clap::Parser;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if generate::is_generate(&args) {
        return match generate::run(&args, &mut std::io::stdout().lock()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("brine: writing: {err}");
                ExitCode::from(exit::FAILED)
            }
        };
    }
    let cli = Cli::parse_from(args);
    run_command("brine", async |out, err, terminals| {
        brine_cli::brine::run(&cli, out, err, terminals).await
    })
}
