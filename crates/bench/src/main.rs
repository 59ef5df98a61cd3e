//! `brine-bench`: the benchmark runner. It starts real `brine-master`, `brine-swarm` and
//! `brine-minion` processes on loopback, times the CLI against them, measures the bare zeromq
//! transport in the same run, and prints a markdown report (also written to `--report`).
//! `docs/BENCHMARKS.md` explains each figure and holds the latest results.
//!
//! `baseline-server` and `baseline-client` are the two halves of the transport baseline; the
//! runner starts them itself.

mod baseline;
mod capacity;
mod cluster;
mod machine;
mod measure;
mod proc;
mod procfs;
mod report;
mod runner;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::cluster::Bins;
use crate::runner::Settings;

/// Benchmark brine: a real master and a swarm of minions on loopback, timed, next to what the
/// bare transport costs on the same machine.
///
/// Exit codes: 0 every measurement ran (sizes the machine cannot hold are reported "not run");
/// 1 some measurement failed (the report says which and why); 2 usage error; 130 interrupted
/// (SIGINT or SIGTERM; every process it started is stopped first).
#[derive(Debug, Parser)]
#[command(name = "brine-bench", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Fleet sizes (minions), comma-separated; a size the machine cannot hold is reported
    /// "not run" with the reason
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "10,100,1000,10000",
        value_parser = clap::value_parser!(u32).range(1..=100_000)
    )]
    sizes: Vec<u32>,

    /// Timed repetitions per fleet size (medians over them)
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    reps: u32,

    /// Timed runs of `brine --version` and of the 1-minion ping
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    cli_runs: u32,

    /// How long the one minion daemon idles while its CPU use is measured
    #[arg(long, default_value_t = 10, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    idle_secs: u64,

    /// Where brine-master, brine-swarm, brine-minion, brine and brine-run are [default: this
    /// program's directory]
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,

    /// The brine-minion daemon whose idle memory and CPU are measured [default: the one in
    /// --bin-dir]; the build for size is target/release-small/brine-minion
    #[arg(long, value_name = "PATH")]
    minion_bin: Option<PathBuf>,

    /// Also write the report to this file
    #[arg(long, value_name = "PATH")]
    report: Option<PathBuf>,

    /// A quick check that everything works (for CI): 20 minions, one repetition, 3 CLI runs,
    /// 2 s idle; overrides --sizes, --reps, --cli-runs and --idle-secs
    #[arg(long)]
    smoke: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The server half of the transport baseline (started by the runner)
    #[command(hide = true)]
    BaselineServer {
        /// Clients to wait for
        #[arg(long)]
        n: usize,
        /// Timed rounds
        #[arg(long)]
        rounds: u32,
    },
    /// The client half of the transport baseline (started by the runner)
    #[command(hide = true)]
    BaselineClient {
        /// SUB + REQ pairs
        #[arg(long)]
        n: usize,
        #[arg(long)]
        pub_port: u16,
        #[arg(long)]
        rep_port: u16,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Every child inherits the raised limit.
    machine::raise_fd_limit();
    let outcome = match cli.command {
        Some(Command::BaselineServer { n, rounds }) => {
            multi_thread().and_then(|rt| rt.block_on(baseline::server::run(n, rounds)))
        }
        Some(Command::BaselineClient {
            n,
            pub_port,
            rep_port,
        }) => {
            multi_thread().and_then(|rt| rt.block_on(baseline::client::run(n, pub_port, rep_port)))
        }
        None => return run(cli.run),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("brine-bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The runner: measures, prints the report and writes it to `--report`.
fn run(args: RunArgs) -> ExitCode {
    match try_run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("brine-bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn try_run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let bin_dir = match args.bin_dir {
        Some(dir) => dir,
        None => std::env::current_exe()
            .context("finding this program's path")?
            .parent()
            .context("this program's directory")?
            .to_path_buf(),
    };
    let bins = Bins::new(&bin_dir, args.minion_bin.as_deref())?;
    let mut sizes: Vec<usize> = args.sizes.iter().map(|&n| n as usize).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let settings = if args.smoke {
        Settings {
            sizes: vec![20],
            reps: 1,
            cli_runs: 3,
            idle: Duration::from_secs(2),
            smoke: true,
            bin_dir,
        }
    } else {
        Settings {
            sizes,
            reps: args.reps,
            cli_runs: args.cli_runs,
            idle: Duration::from_secs(args.idle_secs),
            smoke: false,
            bin_dir,
        }
    };
    let command_line = shlex::try_join(
        std::env::args()
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str),
    )
    .unwrap_or_else(|_| std::env::args().collect::<Vec<_>>().join(" "));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let run = runner::run(settings, bins, command_line);
    let Some(results) = runtime.block_on(until_interrupted(run)) else {
        // The run was dropped: every process it had started is killed and reaped.
        eprintln!("brine-bench: interrupted");
        return Ok(ExitCode::from(130));
    };
    let text = report::render(&results);
    print!("{text}");
    if let Some(path) = &args.report {
        std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("brine-bench: report written to {}", path.display());
    }
    let failures = results.failures();
    if failures.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "brine-bench: {} measurement(s) failed; see the report",
            failures.len()
        );
        Ok(ExitCode::FAILURE)
    }
}

/// `run`'s output, or `None` when SIGINT or SIGTERM comes first.
async fn until_interrupted<T>(run: impl std::future::Future<Output = T>) -> Option<T> {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return Some(run.await);
    };
    tokio::select! {
        results = run => Some(results),
        _ = term.recv() => None,
        _ = int.recv() => None,
    }
}

fn multi_thread() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes_are_a_comma_separated_list() {
        let cli = Cli::try_parse_from(["brine-bench", "--sizes", "10,100", "--reps", "3"]).unwrap();
        assert_eq!(cli.run.sizes, vec![10, 100]);
        assert!(Cli::try_parse_from(["brine-bench", "--sizes", "0"]).is_err());
        let cli = Cli::try_parse_from([
            "brine-bench",
            "baseline-client",
            "--n",
            "5",
            "--pub-port",
            "1",
            "--rep-port",
            "2",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::BaselineClient { n: 5, .. })
        ));
    }
}
