//! Process plumbing shared by the two daemons: the pieces of a thin `main` that are not the
//! daemon's business (logging set-up, shutdown signals, the fd limit, the runtime and how much
//! memory it keeps, the exit code and the one line printed for a configuration that cannot be
//! used), [`LogLimiter`] for what peers can make a daemon log, and the systemd watchdog
//! ([`watchdog`]).

pub mod log_limit;
pub mod watchdog;

pub use log_limit::LogLimiter;

use std::fmt::Display;
use std::num::NonZeroUsize;
use std::process::ExitCode;
use std::time::Duration;

/// The documented exit code for a configuration that cannot be used (sysexits `EX_USAGE`).
pub const EXIT_CONFIG: u8 = 64;

/// Prints `program: <error on one line>` to stderr and returns [`EXIT_CONFIG`].
pub fn config_error(program: &str, err: &impl Display) -> ExitCode {
    eprintln!("{program}: {}", one_line(err));
    ExitCode::from(EXIT_CONFIG)
}

/// An error on one line: a parser's multi-line snippet (`  |`, `12 | key =`) reduced to its
/// messages, joined with `: `.
pub fn one_line(err: &impl Display) -> String {
    err.to_string()
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('|'))
        .filter(|line| {
            !line
                .split_once(" |")
                .is_some_and(|(n, _)| n.chars().all(|c| c.is_ascii_digit()))
        })
        .collect::<Vec<_>>()
        .join(": ")
}

/// Logs to stderr (journald reads it) with `log_level`, unless `RUST_LOG` is set. The zeromq
/// crate's own chatter is kept to errors unless the filter names it: it logs every peer that
/// comes and goes, and a warning for every malformed frame a peer sends, which a peer could
/// turn into millions of lines (the guard refuses such frames first; this is the second wall).
pub fn init_logging(log_level: &str) {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| {
        if log_level.contains("zeromq") {
            log_level.to_string()
        } else {
            format!("{log_level},zeromq=error")
        }
    });
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Raises the soft open-file limit to the hard one (every peer holds connections open).
pub fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            if let Err(err) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!(cause = %err, "could not raise the open-file limit");
            }
        }
    }
}

/// This process's open-file limit (the soft one, which [`raise_fd_limit`] raised to the hard
/// one); None when it cannot be read or is unlimited.
pub fn open_file_limit() -> Option<u64> {
    use nix::sys::resource::{getrlimit, Resource, RLIM_INFINITY};
    getrlimit(Resource::RLIMIT_NOFILE)
        .ok()
        .map(|(soft, _)| soft)
        .filter(|&soft| soft != RLIM_INFINITY)
}

/// The shape of a daemon's runtime: how many worker threads run its tasks, and whether freed
/// heap memory is handed back to the OS as it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeOptions {
    /// Worker threads beside the main thread (which runs the daemon's own future); `None`:
    /// one per processor, tokio's default.
    pub workers: Option<NonZeroUsize>,
    /// How often the heap's free pages are handed back to the OS ([`release_free_memory`]),
    /// large allocations getting pages of their own ([`map_large_allocations`]); `None`:
    /// never, glibc keeps them.
    pub release_memory_every: Option<Duration>,
}

impl RuntimeOptions {
    /// A worker per processor, glibc's heap left alone: a process that serves many peers at
    /// once (brine-swarm; the master also hands its heap back).
    pub const PER_PROCESSOR: Self = Self {
        workers: None,
        release_memory_every: None,
    };
}

/// Runs `daemon` on a new multi-threaded runtime with a worker per processor; an error is
/// logged and printed.
pub fn run<E: Display>(
    program: &str,
    daemon: impl std::future::Future<Output = Result<(), E>>,
) -> ExitCode {
    run_with(program, RuntimeOptions::PER_PROCESSOR, daemon)
}

/// Runs `daemon` on a new multi-threaded runtime shaped by `options`; an error is logged and
/// printed.
pub fn run_with<E: Display>(
    program: &str,
    options: RuntimeOptions,
    daemon: impl std::future::Future<Output = Result<(), E>>,
) -> ExitCode {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(workers) = options.workers {
        builder.worker_threads(workers.get());
    }
    let runtime = match builder.build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("{program}: starting the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(every) = options.release_memory_every {
        map_large_allocations();
        runtime.spawn(async move {
            let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                release_free_memory();
            }
        });
    }
    match runtime.block_on(daemon) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(cause = %err, "{program} stopped");
            eprintln!("{program}: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Allocations of 1 MiB or more (a 16 MiB return, its plaintext, its row) get pages of their
/// own, handed back to the OS when they are freed. glibc's default threshold rises to the
/// largest such block freed so far, after which blocks of that size come from a thread's
/// arena; freed at the top of a thread's arena (not the main one), they stay resident, and
/// [`release_free_memory`] does not reach them: 15 returns of 16 MiB left the master 194 MiB
/// larger for good. A fixed threshold also keeps glibc's trim threshold at its 128 KiB
/// default. Smaller blocks stay in the arenas. Without glibc, a no-op.
pub fn map_large_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: `mallopt` takes no pointers and changes only glibc's own settings, under its
    // lock; it is safe to call from any thread at any time.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
    }
}

/// Hands the heap's free pages back to the OS. glibc's allocator returns freed memory to the
/// OS only from the top of a heap, and only past a threshold that grows with the largest
/// allocation freed so far; everything else stays resident in its arenas (one per thread that
/// allocated) until reused. `malloc_trim` releases every free page of every arena; it takes
/// the arenas' locks in turn and takes well under a millisecond for a heap of a few MB.
/// Without glibc, a no-op.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: `malloc_trim` takes no pointers and touches only glibc's own arenas, each under
    // its lock; it is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_has_the_workers_asked_for() {
        let options = RuntimeOptions {
            workers: Some(NonZeroUsize::MIN),
            release_memory_every: Some(Duration::from_millis(1)),
        };
        let code = run_with("test", options, async {
            match tokio::runtime::Handle::current().metrics().num_workers() {
                1 => Ok(()),
                n => Err(format!("{n} workers")),
            }
        });
        assert_eq!(code, ExitCode::SUCCESS);
    }

    #[test]
    fn release_free_memory_can_run_any_time() {
        map_large_allocations();
        let freed: Vec<Vec<u8>> = (0..64).map(|i| vec![i; 64 * 1024]).collect();
        drop(freed);
        drop(vec![1u8; 16 * 1024 * 1024]);
        release_free_memory();
        release_free_memory();
    }

    #[test]
    fn parser_snippets_fold_into_one_line() {
        let err = "TOML parse error at line 49, column 17\n   |\n49 | id =\n   |     ^\nkey with no value, expected `=`\n";
        assert_eq!(
            one_line(&err),
            "TOML parse error at line 49, column 17: key with no value, expected `=`"
        );
    }
}
