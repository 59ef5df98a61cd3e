//! Shell completions and man pages, generated from the command-line definitions themselves
//! (clap_complete, clap_mangen), so they cannot drift from `--help`.
//!
//! `brine` takes Salt's positional form, so these are words in its first place rather than
//! flags: `brine completions bash|zsh|fish [COMMAND]` and `brine manpage [COMMAND]`, where
//! COMMAND is one of brine, brine-run, brine-key, brine-call (default brine). Neither word can
//! start a job: a job's second word is a `module.function`, never a shell or command name.

use std::ffi::OsString;
use std::io::Write;

use clap::{CommandFactory, Parser, Subcommand};
use clap_complete::Shell;

/// The tools that have completions and man pages.
const COMMANDS: [&str; 4] = ["brine", "brine-run", "brine-key", "brine-call"];

/// The words in `brine`'s first place that generate instead of run.
const WORDS: [&str; 2] = ["completions", "manpage"];

#[derive(Debug, Parser)]
#[command(name = "brine", disable_version_flag = true)]
struct Generate {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, Subcommand)]
enum What {
    /// Print a completion script: `brine completions bash > /etc/bash_completion.d/brine`
    Completions {
        shell: Shell,
        #[arg(value_parser = COMMANDS, default_value = "brine")]
        command: String,
    },
    /// Print a man page (roff): `brine manpage brine-run > brine-run.1`
    Manpage {
        #[arg(value_parser = COMMANDS, default_value = "brine")]
        command: String,
    },
}

fn command(name: &str) -> clap::Command {
    match name {
        "brine-run" => crate::run::Cli::command(),
        "brine-key" => crate::key::Cli::command(),
        "brine-call" => crate::call::Cli::command(),
        _ => crate::brine::Cli::command(),
    }
}

/// Whether `args` (the whole argv) ask `brine` to generate rather than run a job.
pub fn is_generate(args: &[OsString]) -> bool {
    args.get(1)
        .and_then(|word| word.to_str())
        .is_some_and(|word| WORDS.contains(&word))
}

/// Generates what `args` ask for onto `out`; a usage error exits as clap's do.
pub fn run(args: &[OsString], out: &mut dyn Write) -> std::io::Result<()> {
    let generate = Generate::parse_from(args);
    match generate.what {
        What::Completions {
            shell,
            command: name,
        } => {
            let mut cmd = command(&name);
            clap_complete::generate(shell, &mut cmd, name, out);
            Ok(())
        }
        What::Manpage { command: name } => clap_mangen::Man::new(command(&name)).render(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    #[test]
    fn completions_and_man_pages_come_from_the_definitions() {
        for name in COMMANDS {
            let mut out = Vec::new();
            run(&args(&["brine", "completions", "bash", name]), &mut out).unwrap();
            let script = String::from_utf8(out).unwrap();
            assert!(
                script.contains(&format!("complete -F _{}", name.replace('-', "__"))),
                "{script}"
            );
            let mut out = Vec::new();
            run(&args(&["brine", "manpage", name]), &mut out).unwrap();
            let page = String::from_utf8(out).unwrap();
            assert!(page.starts_with(".ie \\n(.g .ds Aq"), "{page}");
            assert!(page.contains(&format!(".TH {name}")), "{page}");
        }
        let mut out = Vec::new();
        run(&args(&["brine", "completions", "zsh"]), &mut out).unwrap();
        let script = String::from_utf8(out).unwrap();
        assert!(script.contains("#compdef brine") && script.contains("--batch-size"));
        let mut out = Vec::new();
        run(&args(&["brine", "completions", "fish"]), &mut out).unwrap();
        assert!(String::from_utf8(out)
            .unwrap()
            .contains("complete -c brine"));
    }

    #[test]
    fn only_the_first_word_decides() {
        assert!(is_generate(&args(&["brine", "completions", "bash"])));
        assert!(is_generate(&args(&["brine", "manpage"])));
        assert!(!is_generate(&args(&["brine", "web*", "test.ping"])));
        assert!(!is_generate(&args(&[
            "brine",
            "-L",
            "completions",
            "test.ping"
        ])));
        assert!(!is_generate(&args(&["brine"])));
    }
}
