//! `brine-key`: the master's minion keys, like Salt's `salt-key`. Flags and flow live in
//! `brine_cli::key`; this only parses the flags (a subcommand or salt-key's), provides the
//! terminal question and runs the command.

use std::io::IsTerminal;
use std::process::ExitCode;

use brine_cli::key::{ask_on_terminal, Ask, Cli};
use brine_cli::run_command;

fn main() -> ExitCode {
    let cli = Cli::parse_args(std::env::args_os()).unwrap_or_else(|e| e.exit());
    run_command("brine-key", async |out, _err, terminals| {
        // Only a person at a terminal can answer "Proceed? [y/N]".
        let mut terminal = ask_on_terminal;
        let ask: Option<&mut Ask<'_>> = if std::io::stdin().is_terminal() {
            Some(&mut terminal)
        } else {
            None
        };
        brine_cli::key::run(&cli, out, terminals.stdout, ask).await
    })
}
