//! `brine-master`: parses flags, loads and validates the configuration (one line on stderr and
//! exit 64 when it is wrong, before anything is bound), sets up logging to stderr, and serves
//! until SIGTERM or SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;

use brine_master::MasterConfig;
use clap::Parser;

/// The brine master daemon: publishes jobs to minions and collects their returns.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Configuration file (TOML). Without it, /etc/brine/master.toml is read when it exists.
    #[arg(short, long, value_name = "PATH", env = "BRINE_MASTER_CONFIG")]
    config: Option<PathBuf>,
}

const DEFAULT_CONFIG: &str = "/etc/brine/master.toml";
/// The documented exit code for a configuration that cannot be used (sysexits EX_USAGE).
const EXIT_CONFIG: u8 = 64;

fn main() -> ExitCode {
    let args = Args::parse();
    let path = args
        .config
        .or_else(|| Some(PathBuf::from(DEFAULT_CONFIG)).filter(|p| p.exists()));
    let config = match MasterConfig::load(path.as_deref()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("brine-master: {err}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| config.log_level.clone());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .init();
    raise_fd_limit();

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("brine-master: starting the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(brine_master::run(config, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(cause = %err, "brine-master stopped");
            eprintln!("brine-master: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Every minion holds connections open: raise the soft fd limit to the hard one.
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            if let Err(err) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!(cause = %err, "could not raise the open-file limit");
            }
        }
    }
}
