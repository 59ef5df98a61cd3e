//! The run: every measurement in turn, smallest first, each one's failure recorded instead of
//! ending the run. Progress goes to stderr; the results go to [`crate::report`].
//!
//! Order: `brine --version`; one minion daemon (idle cost, 1-minion ping); then for each fleet
//! size, smallest first: whether it fits ([`Capacity`]), the transport baseline, the fleet.
//! The baseline runs right before the fleet of the same size so that both see the same
//! moment of a shared, noisy machine.

use std::path::PathBuf;
use std::time::Duration;

use crate::baseline;
use crate::capacity::Capacity;
use crate::cluster::Bins;
use crate::machine::Machine;
use crate::measure::fleet::{self, Fleet};
use crate::measure::minion::{self, OneMinion};
use crate::measure::version;
use crate::procfs;

/// What to measure and how often.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Fleet sizes, ascending, without repeats.
    pub sizes: Vec<usize>,
    /// Timed repetitions per fleet size (pings, baseline rounds).
    pub reps: u32,
    /// Runs of `brine --version` and of the 1-minion ping.
    pub cli_runs: u32,
    /// How long the one minion daemon idles while measured.
    pub idle: Duration,
    pub smoke: bool,
    pub bin_dir: PathBuf,
}

/// How one fleet size went.
#[derive(Debug, Clone)]
pub enum SizeOutcome {
    /// The machine cannot hold it: why.
    NotRun(String),
    Ran {
        baseline: Result<Vec<Duration>, String>,
        fleet: Result<Box<Fleet>, String>,
    },
}

/// Everything a run found.
#[derive(Debug, Clone)]
pub struct Results {
    pub machine: Machine,
    pub command_line: String,
    pub settings: Settings,
    pub version: Result<Vec<Duration>, String>,
    pub minion: Result<OneMinion, String>,
    pub sizes: Vec<(usize, SizeOutcome)>,
    /// The largest fleet the machine holds, by the costs measured.
    pub largest_fit: usize,
    /// The load average when the run ended.
    pub load_end: String,
}

impl Results {
    /// Every measurement that failed, as `what: why`.
    pub fn failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        if let Err(err) = &self.version {
            failures.push(format!("brine --version: {err}"));
        }
        if let Err(err) = &self.minion {
            failures.push(format!("one minion daemon: {err}"));
        }
        for (n, outcome) in &self.sizes {
            if let SizeOutcome::Ran { baseline, fleet } = outcome {
                if let Err(err) = baseline {
                    failures.push(format!("transport baseline, {n} clients: {err}"));
                }
                if let Err(err) = fleet {
                    failures.push(format!("fleet of {n} minions: {err}"));
                }
            }
        }
        failures
    }

    /// Everything that went wrong without spoiling a figure.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings: Vec<String> = self
            .minion
            .iter()
            .flat_map(|m| m.warnings.iter().map(|w| format!("one minion daemon: {w}")))
            .collect();
        for (n, outcome) in &self.sizes {
            if let SizeOutcome::Ran {
                fleet: Ok(fleet), ..
            } = outcome
            {
                warnings.extend(
                    fleet
                        .warnings
                        .iter()
                        .map(|w| format!("fleet of {n} minions: {w}")),
                );
            }
        }
        warnings
    }

    /// The fleet of `n` minions, or why there is none.
    pub fn fleet(&self, n: usize) -> Result<&Fleet, String> {
        match self.sizes.iter().find(|(size, _)| *size == n) {
            None => Err(format!("{n} is not among --sizes")),
            Some((_, SizeOutcome::NotRun(_))) => Err(format!(
                "{n} minions do not fit on this machine (see test.ping wall time)"
            )),
            Some((_, SizeOutcome::Ran { fleet: Err(_), .. })) => Err("failed".into()),
            Some((
                _,
                SizeOutcome::Ran {
                    fleet: Ok(fleet), ..
                },
            )) => Ok(fleet),
        }
    }

    /// The baseline rounds with `n` clients, if they ran.
    pub fn baseline(&self, n: usize) -> Option<&[Duration]> {
        self.sizes.iter().find_map(|(size, outcome)| match outcome {
            SizeOutcome::Ran {
                baseline: Ok(rounds),
                ..
            } if *size == n => Some(rounds.as_slice()),
            _ => None,
        })
    }

    /// The largest fleet that ran.
    pub fn largest_fleet(&self) -> Option<&Fleet> {
        self.sizes
            .iter()
            .rev()
            .find_map(|(_, outcome)| match outcome {
                SizeOutcome::Ran {
                    fleet: Ok(fleet), ..
                } => Some(fleet.as_ref()),
                _ => None,
            })
    }
}

/// Runs every measurement.
pub async fn run(settings: Settings, bins: Bins, command_line: String) -> Results {
    let machine = Machine::describe();
    let mut capacity = Capacity::new(machine.fd_limit);

    progress(&format!("brine --version, {} runs", settings.cli_runs));
    let version = version::measure(&bins, settings.cli_runs)
        .await
        .map_err(|err| format!("{err:#}"));

    progress(&format!(
        "one minion daemon: idle {:?}, then {} pings",
        settings.idle, settings.cli_runs
    ));
    let minion = minion::measure(&bins, settings.idle, settings.cli_runs)
        .await
        .map_err(|err| format!("{err:#}"));
    match &minion {
        Ok(m) => m
            .warnings
            .iter()
            .for_each(|w| progress(&format!("warning: {w}"))),
        Err(err) => progress(&format!("one minion daemon: failed: {err}")),
    }
    if let Err(err) = &version {
        progress(&format!("brine --version: failed: {err}"));
    }

    let mut sizes = Vec::new();
    for &n in &settings.sizes {
        let available = procfs::mem_available().unwrap_or(0);
        if let Err(reason) = capacity.check(n, available) {
            progress(&format!("{n} minions: not run: {reason}"));
            sizes.push((n, SizeOutcome::NotRun(reason)));
            continue;
        }
        progress(&format!(
            "{n} minions: transport baseline, {} rounds",
            settings.reps
        ));
        let baseline = measure_baseline(n, settings.reps).await;
        progress(&format!("{n} minions: fleet, {} pings", settings.reps));
        let fleet = fleet::measure(&bins, n, settings.reps)
            .await
            .map(Box::new)
            .map_err(|err| format!("{err:#}"));
        if let Ok(fleet) = &fleet {
            capacity.learn(fleet.usage);
            for warning in &fleet.warnings {
                progress(&format!("{n} minions: warning: {warning}"));
            }
        }
        for err in [baseline.as_ref().err(), fleet.as_ref().err()]
            .into_iter()
            .flatten()
        {
            progress(&format!("{n} minions: failed: {err}"));
        }
        sizes.push((n, SizeOutcome::Ran { baseline, fleet }));
    }

    Results {
        largest_fit: capacity.largest(procfs::mem_available().unwrap_or(0)),
        load_end: crate::machine::load_average(),
        machine,
        command_line,
        settings,
        version,
        minion,
        sizes,
    }
}

async fn measure_baseline(n: usize, reps: u32) -> Result<Vec<Duration>, String> {
    let measured = async {
        let exe = std::env::current_exe()?;
        let dir = tempfile::Builder::new()
            .prefix("brine-bench-baseline")
            .tempdir()?;
        baseline::measure(&exe, dir.path(), n, reps).await
    };
    measured.await.map_err(|err| format!("{err:#}"))
}

fn progress(message: &str) {
    eprintln!("brine-bench: {message}");
}
