//! `brine-minion`: parses flags, loads and validates the configuration (one line on stderr and
//! exit 64 when it is wrong, before anything connects), sets up logging to stderr, and runs
//! until SIGTERM or SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;

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
    brine_daemon::run(
        "brine-minion",
        brine_minion::run(config, brine_daemon::shutdown_signal()),
    )
}
