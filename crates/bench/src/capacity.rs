//! Whether a fleet of N minions fits this machine, decided before it is started: the open
//! files the master and the swarm need against the hard open-file limit (which no process of
//! the run can go beyond), and their memory against what is available. A size that does not
//! fit is reported "not run" with the reason instead of being attempted.
//!
//! The master's needs per minion start as estimates and are replaced by what the largest fleet
//! so far used (open files and resident memory divided by its size), so a run of 10, 100,
//! 1000 judges 10000 on figures from this machine and this build. The swarm is judged by the
//! rule `brine-swarm` itself applies before it starts anything (it refuses a swarm that does
//! not fit), so a size this check lets through is never refused by the swarm.

use crate::stats::fmt_mb;

/// Open files per minion in the master before anything is measured: the guard's accepted
/// connection, its connection to the zeromq socket behind it, and that socket's end, for each
/// of the two ports.
const MASTER_FDS_PER_MINION: f64 = 6.0;
/// `brine-swarm`'s own admission rule: open files per minion, and for the process.
use brine_swarm::limits::{FILES_BASE as SWARM_FDS_BASE, FILES_PER_MINION as SWARM_FDS_PER_MINION};
/// Master and swarm together, resident bytes per minion, before anything is measured.
const RSS_PER_MINION: f64 = 1_000_000.0;
/// Files a process opens whatever its fleet (libraries, logs, listeners, the store).
const BASE_FDS: f64 = 100.0;
/// Only this share of a limit is planned for: the rest absorbs what the estimate misses.
const USABLE: f64 = 0.9;
/// Fleets smaller than this say little about the cost per minion (fixed costs dominate).
const LEARN_FROM: usize = 100;

/// The machine's limits and the cost per minion known so far.
#[derive(Debug, Clone)]
pub struct Capacity {
    fd_limit: u64,
    master_fds: Estimate,
    rss: Estimate,
}

/// A cost per minion, and whether it was measured here.
#[derive(Debug, Clone, Copy)]
struct Estimate {
    per_minion: f64,
    measured_at: Option<usize>,
}

impl Estimate {
    fn new(per_minion: f64) -> Self {
        Self {
            per_minion,
            measured_at: None,
        }
    }

    fn source(&self) -> String {
        match self.measured_at {
            Some(n) => format!("measured with {n} minions"),
            None => "estimated".into(),
        }
    }
}

/// What a fleet of `n` used once connected.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub n: usize,
    pub master_fds: usize,
    pub swarm_fds: usize,
    pub master_rss: u64,
    pub swarm_rss: u64,
}

impl Capacity {
    pub fn new(fd_limit: u64) -> Self {
        Self {
            fd_limit,
            master_fds: Estimate::new(MASTER_FDS_PER_MINION),
            rss: Estimate::new(RSS_PER_MINION),
        }
    }

    /// Takes the costs per minion from a fleet that ran.
    pub fn learn(&mut self, usage: Usage) {
        if usage.n < LEARN_FROM {
            return;
        }
        let n = usage.n as f64;
        let measured = |per_minion| Estimate {
            per_minion,
            measured_at: Some(usage.n),
        };
        self.master_fds = measured(usage.master_fds as f64 / n);
        self.rss = measured((usage.master_rss + usage.swarm_rss) as f64 / n);
    }

    /// `Err(reason)` when a fleet of `n` would not fit, with `available` bytes of memory.
    pub fn check(&self, n: usize, available: u64) -> Result<(), String> {
        let needed = BASE_FDS + self.master_fds.per_minion * n as f64;
        if needed > self.fd_limit as f64 * USABLE {
            return Err(format!(
                "brine-master would need about {needed:.0} open files ({:.1} per minion, {}), \
                 more than {:.0} % of the hard limit of {} open files per process",
                self.master_fds.per_minion,
                self.master_fds.source(),
                USABLE * 100.0,
                self.fd_limit
            ));
        }
        let needed = SWARM_FDS_BASE + SWARM_FDS_PER_MINION * n as u64;
        if needed > self.fd_limit {
            return Err(format!(
                "brine-swarm would need {needed} open files by its own rule ({SWARM_FDS_PER_MINION} \
                 per minion and {SWARM_FDS_BASE}), more than the hard limit of {} per process",
                self.fd_limit
            ));
        }
        let memory = self.rss.per_minion * n as f64;
        if memory > available as f64 * USABLE {
            return Err(format!(
                "the master and the swarm would need about {} of memory ({:.0} kB per minion, {}), \
                 more than {:.0} % of the {} available",
                fmt_mb(memory as u64),
                self.rss.per_minion / 1000.0,
                self.rss.source(),
                USABLE * 100.0,
                fmt_mb(available)
            ));
        }
        Ok(())
    }

    /// The largest size [`Capacity::check`] would accept, with `available` bytes of memory.
    pub fn largest(&self, available: u64) -> usize {
        let (mut fits, mut too_big) = (0, 1_000_000);
        while too_big - fits > 1 {
            let mid = (fits + too_big) / 2;
            if self.check(mid, available).is_ok() {
                fits = mid;
            } else {
                too_big = mid;
            }
        }
        fits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GB: u64 = 1_000_000_000;

    fn usage(n: usize, master_fds: usize) -> Usage {
        Usage {
            n,
            master_fds,
            swarm_fds: 5 * n,
            master_rss: 50_000 * n as u64,
            swarm_rss: 50_000 * n as u64,
        }
    }

    #[test]
    fn ten_thousand_minions_do_not_fit_in_twenty_thousand_files() {
        let capacity = Capacity::new(20_000);
        assert!(capacity.check(1000, 16 * GB).is_ok());
        let reason = capacity.check(10_000, 16 * GB).unwrap_err();
        assert!(
            reason.starts_with("brine-master would need about 60100 open files"),
            "{reason}"
        );
        assert!(reason.contains("6.0 per minion, estimated"), "{reason}");
        // The swarm's own rule (7 per minion and 64) binds before the master's estimate.
        assert_eq!(capacity.largest(16 * GB), 2848);
    }

    #[test]
    fn measured_costs_replace_the_estimates() {
        let mut capacity = Capacity::new(20_000);
        capacity.learn(usage(1000, 6500));
        assert!(capacity.check(2700, 16 * GB).is_ok());
        let reason = capacity.check(2800, 16 * GB).unwrap_err();
        assert!(
            reason.contains("6.5 per minion, measured with 1000 minions"),
            "{reason}"
        );
        let reason = capacity.check(2700, GB / 4).unwrap_err();
        assert!(reason.contains("memory"), "{reason}");
    }

    #[test]
    fn the_swarm_is_held_to_its_own_rule() {
        let mut capacity = Capacity::new(20_000);
        capacity.learn(usage(1000, 4000));
        let reason = capacity.check(3400, 16 * GB).unwrap_err();
        assert!(
            reason.starts_with("brine-swarm would need 23864 open files"),
            "{reason}"
        );
        assert_eq!(capacity.largest(16 * GB), 2848);
    }

    #[test]
    fn small_fleets_teach_nothing() {
        let mut capacity = Capacity::new(20_000);
        capacity.learn(usage(10, 200));
        assert!(capacity.check(1000, 16 * GB).is_ok());
    }
}
