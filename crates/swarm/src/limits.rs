//! How many open files a swarm needs, and whether this process may have them.
//!
//! Every minion instance holds a few file descriptors for as long as it runs, so the open-file
//! limit (`RLIMIT_NOFILE`) is what bounds a swarm first. [`reserve`] raises the soft limit to
//! the hard one and refuses, before anything starts, a swarm that cannot fit under it: running
//! out of descriptors half-way would show up as minions failing to reconnect, which a benchmark
//! would mistake for a master problem.

use nix::sys::resource::{getrlimit, Resource};

/// Open files one instance may need. Measured with `ls /proc/<pid>/fd` on connected swarms of
/// 1, 50, 1000 and 3300 instances: exactly 5 each (the SUB and REQ TCP sockets, the SQLite
/// journal with its `-wal` and `-shm` files). Two more while a `cmd.*` job runs (measured: the
/// command's output pipe and its pidfd), so that a benchmark running a command everywhere at
/// once does not fail with "too many open files".
pub const FILES_PER_MINION: u64 = 7;

/// Open files of the process itself: stdio, the runtime's epoll and wakers, the signal pipe
/// (11 measured), and room for files the blocking pool opens for a moment.
pub const FILES_BASE: u64 = 64;

/// The open files a swarm of `minions` needs, about.
pub fn files_needed(minions: u32) -> u64 {
    FILES_BASE + FILES_PER_MINION * u64::from(minions)
}

/// The swarm does not fit under the open-file limit.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "cannot hold {minions} minions: they need about {needed} open files and this process may \
     have {limit} ({which}); run several swarms with --first"
)]
pub struct TooMany {
    pub minions: u32,
    pub needed: u64,
    pub limit: u64,
    /// Which limit that is: "hard limit", or the soft one when it could not be raised.
    pub which: String,
}

/// Raises the soft open-file limit to the hard one and checks that `minions` instances fit
/// under it. Gives the limit the process now has.
pub fn reserve(minions: u32) -> Result<u64, TooMany> {
    brine_daemon::raise_fd_limit();
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((0, 0));
    check(minions, soft, hard)
}

/// Whether `minions` fit under the `soft` limit (`hard` only says which limit it is).
pub fn check(minions: u32, soft: u64, hard: u64) -> Result<u64, TooMany> {
    let needed = files_needed(minions);
    if needed <= soft {
        return Ok(soft);
    }
    let which = if soft >= hard {
        "hard limit".to_owned()
    } else {
        format!("soft limit; it could not be raised to the hard limit {hard}")
    };
    Err(TooMany {
        minions,
        needed,
        limit: soft,
        which,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_swarm_that_fits_gets_the_limit() {
        assert_eq!(check(1000, 20_000, 20_000), Ok(20_000));
    }

    #[test]
    fn a_swarm_too_large_is_refused_in_one_line_that_says_what_to_do() {
        let err = check(10_000, 20_000, 20_000).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot hold 10000 minions: they need about {} open files and this process may \
                 have 20000 (hard limit); run several swarms with --first",
                files_needed(10_000)
            )
        );
        let err = check(10_000, 1024, 20_000).unwrap_err();
        assert!(
            err.to_string()
                .contains("(soft limit; it could not be raised to the hard limit 20000)"),
            "{err}"
        );
    }

    #[test]
    fn the_estimate_grows_with_every_instance() {
        assert_eq!(files_needed(1000) - files_needed(999), FILES_PER_MINION);
        assert!(files_needed(u32::MAX) > u64::from(u32::MAX));
    }
}
