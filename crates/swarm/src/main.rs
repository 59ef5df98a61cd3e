//! `brine-swarm`: parses flags, loads the minion configuration the instances share (one line on
//! stderr and exit 64 when it, or an instance id derived from it, is wrong), sets up logging,
//! refuses a swarm the open-file limit cannot hold (exit 69), and runs the instances until
//! SIGTERM or SIGINT. Prints one line on stdout once every instance has been started.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use brine_minion::MinionConfig;
use brine_swarm::{limits, Ramp, Swarm};
use clap::{value_parser, Parser};

/// Run N real brine minions in one process, to load a master: each with its own id
/// (`<id>-00001`, `<id>-00002`, ...), keys, journal and sockets under `state_dir/<its id>/`.
#[derive(Debug, Parser)]
#[command(version, about, after_help = EXIT_HELP)]
struct Args {
    /// Minion configuration file (TOML, the format of brine-minion's; BRINE_MINION_* variables
    /// apply too). Its `id` is the prefix of every instance's id
    #[arg(short, long, value_name = "PATH")]
    config: PathBuf,

    /// How many minions to run
    #[arg(short = 'n', long, value_name = "N", value_parser = value_parser!(u32).range(1..))]
    minions: u32,

    /// The number of the first minion: the ids are K..K+N-1, so that several swarms make one
    /// larger fleet without clashing (e.g. --first 1001 for a second swarm of 1000)
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = value_parser!(u32).range(1..))]
    first: u32,

    /// How many minions to start per second, so that the start is not a connection storm
    #[arg(long, value_name = "RATE", default_value_t = NonZeroU32::new(DEFAULT_RAMP).expect("non-zero"))]
    ramp_per_sec: NonZeroU32,

    /// Log filter (tracing's EnvFilter syntax; RUST_LOG overrides it). Default: the
    /// configuration's log_level when it sets one, else "warn" (a thousand minions at "info"
    /// say a lot)
    #[arg(long, value_name = "FILTER", value_parser = parse_log_level)]
    log_level: Option<String>,
}

const DEFAULT_RAMP: u32 = 200;

/// The exit code for a swarm this machine cannot hold (sysexits `EX_UNAVAILABLE`).
const EXIT_UNAVAILABLE: u8 = 69;

const EXIT_HELP: &str = "\
Exit codes:
  0   stopped by SIGTERM or SIGINT, every minion in time
  1   every minion failed, or some did not stop in time
  2   usage error
  64  the configuration, or an id derived from it, is invalid
  69  the open-file limit cannot hold that many minions (run several swarms with --first)";

fn parse_log_level(filter: &str) -> Result<String, String> {
    if brine_config::is_valid_log_filter(filter) {
        Ok(filter.to_owned())
    } else {
        Err("not a valid log filter".to_owned())
    }
}

/// The `log_level` the configuration file or a `BRINE_MINION_LOG_LEVEL` variable sets, if any
/// (the minion's own default, "info", is too chatty for a swarm).
fn configured_log_level(path: &Path) -> Option<String> {
    brine_config::raw_setting(Some(path), "BRINE_MINION", "log_level")
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match MinionConfig::load(Some(&args.config)) {
        Ok(config) => config,
        Err(err) => return brine_daemon::config_error("brine-swarm", &err),
    };
    let swarm = match Swarm::new(config, args.first, args.minions) {
        Ok(swarm) => swarm,
        Err(err) => return brine_daemon::config_error("brine-swarm", &err),
    };
    let log_level = args
        .log_level
        .or_else(|| configured_log_level(&args.config))
        .unwrap_or_else(|| "warn".to_owned());
    brine_daemon::init_logging(&log_level);
    if let Err(err) = limits::reserve(args.minions) {
        eprintln!("brine-swarm: {err}");
        return ExitCode::from(EXIT_UNAVAILABLE);
    }
    let ramp = Ramp {
        per_sec: args.ramp_per_sec,
    };
    brine_daemon::run(
        "brine-swarm",
        brine_swarm::run(swarm, ramp, brine_daemon::shutdown_signal(), |swarm| {
            println!(
                "brine-swarm: {} minions started (ids {})",
                swarm.count(),
                swarm.id_range()
            );
        }),
    )
}
