//! `brine-master`: parses flags, loads and validates the configuration (one line on stderr and
//! exit 64 when it is wrong, before anything is bound), sets up logging to stderr, and serves
//! until SIGTERM or SIGINT, handing freed heap back to the OS as it goes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use brine_master::MasterConfig;
use clap::Parser;

/// The brine master daemon: publishes jobs to minions and collects their returns.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Configuration file (TOML). Without it, /etc/brine/master.toml is read when it exists.
    #[arg(short, long, value_name = "PATH")]
    config: Option<PathBuf>,
}

const DEFAULT_CONFIG: &str = "/etc/brine/master.toml";

fn main() -> ExitCode {
    let args = Args::parse();
    // Reads FAILPOINTS when built with the `failpoints` feature (fault tests only).
    let _fail_points = fail::FailScenario::setup();
    let path = args
        .config
        .or_else(|| Some(PathBuf::from(DEFAULT_CONFIG)).filter(|p| p.exists()));
    let config = match MasterConfig::load(path.as_deref()) {
        Ok(config) => config,
        Err(err) => return brine_daemon::config_error("brine-master", &err),
    };
    brine_daemon::init_logging(&config.log_level);
    brine_daemon::raise_fd_limit();
    brine_daemon::run_with(
        "brine-master",
        RUNTIME,
        brine_master::run(config, brine_daemon::shutdown_signal()),
    )
}

/// A worker per processor: the master serves every minion and CLI at once.
/// The heap's free pages go back to the OS every 10 s, as the minion's do: glibc keeps what a
/// burst freed (large returns, a large job's fan-out) resident in the arena of whichever
/// worker freed it, for good, so the master's memory after a burst would be its peak. The trim
/// takes each arena's lock in turn, briefly; once every 10 s costs the hot path nothing
/// measurable, and the memory of a burst is back within 10 s.
const RUNTIME: brine_daemon::RuntimeOptions = brine_daemon::RuntimeOptions {
    release_memory_every: Some(Duration::from_secs(10)),
    ..brine_daemon::RuntimeOptions::PER_PROCESSOR
};
