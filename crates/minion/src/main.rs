//! `brine-minion`: parses flags, loads and validates the configuration (one line on stderr and
//! exit 64 when it is wrong, before anything connects), sets up logging to stderr, and runs
//! until SIGTERM or SIGINT.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use brine_minion::MinionConfig;
use clap::Parser;

/// The brine minion daemon: runs the jobs the master publishes and returns their results.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Configuration file (TOML). Without it, /etc/brine/minion.toml is read when it exists.
    #[arg(short, long, value_name = "PATH")]
    config: Option<PathBuf>,

    /// Print this minion's key fingerprint (creating its key on first use) and exit, so an
    /// operator can compare it with `brine-key list` on the master before accepting it.
    #[arg(long)]
    print_fingerprint: bool,
}

const DEFAULT_CONFIG: &str = "/etc/brine/minion.toml";

fn main() -> ExitCode {
    let args = Args::parse();
    // Reads FAILPOINTS when built with the `failpoints` feature (fault tests only).
    let _fail_points = fail::FailScenario::setup();
    let path = args
        .config
        .or_else(|| Some(PathBuf::from(DEFAULT_CONFIG)).filter(|p| p.exists()));
    let config = match MinionConfig::load(path.as_deref()) {
        Ok(config) => config,
        Err(err) => return brine_daemon::config_error("brine-minion", &err),
    };
    if args.print_fingerprint {
        return match brine_crypto::MinionKeys::load_or_create(&config.pki_dir()) {
            Ok(keys) => {
                println!("{}", keys.fingerprint());
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("brine-minion: {err}");
                ExitCode::FAILURE
            }
        };
    }
    brine_daemon::init_logging(&config.log_level);
    brine_daemon::run_with(
        "brine-minion",
        RUNTIME,
        brine_minion::run(config, brine_daemon::shutdown_signal()),
    )
}

/// A minion is light and runs on every managed host, where its resident memory is what it
/// costs. Its main loop runs on the main thread; one worker runs the sockets and the jobs
/// (which wait on child processes, not on processors). A worker per processor would add an
/// idle thread for every processor of the host, each with its stack (and a malloc arena once
/// it allocates).
/// The heap's free pages go back to the OS every 10 s (jemalloc purges on the same time scale
/// by default): glibc would keep what start-up and the last big job freed resident for good.
const RUNTIME: brine_daemon::RuntimeOptions = brine_daemon::RuntimeOptions {
    workers: Some(NonZeroUsize::MIN),
    release_memory_every: Some(Duration::from_secs(10)),
};
