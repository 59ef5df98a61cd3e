//! One fleet size N: a `brine-swarm` of N minions and a `brine-master`, and what is measured
//! on them, in this order:
//!
//! 1. **Connect time.** The swarm starts first; its minions find no master and back off
//!    (capped at the shipped `retry_max` of 10 s). When the swarm says all N are started, the
//!    master starts; the figure is the time from starting the master until `brine-run
//!    manage.up` lists all N (connected and authenticated), polled every 50 ms.
//! 2. **Master memory, idle.** One second later: the master's VmRSS, and the open files and
//!    memory of master and swarm (they tell [`crate::capacity`] what larger fleets need).
//! 3. **`brine '*' test.ping` wall time.** One untimed ping, then `reps` timed ones, 100 ms
//!    apart, each checked: exit code 0 and all N listed as `true`. The master's VmRSS is
//!    sampled every 10 ms during the timed pings (its peak), and VmHWM read after them; the
//!    CPU time master and swarm use during each ping is added up (on a machine of few cores
//!    it tells whether the processors, rather than brine, set the pace).
//! 4. **Returns ingested.** The timed pings' timestamps, from the master's store
//!    (see [`super::ingest`]).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::capacity::Usage;
use crate::cluster::{self, Bins, Master, Ports, Swarm};
use crate::measure::ingest::{self, Rates};
use crate::procfs::{self, PeakSampler};

/// Everything measured on one fleet.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub n: usize,
    /// From the swarm's start to the master's (the master was down this long).
    pub master_down: Duration,
    /// From the master's start until all N were connected.
    pub connect: Duration,
    pub master_idle_rss: u64,
    /// The largest VmRSS sampled during the timed pings.
    pub master_ping_rss: u64,
    /// VmHWM after the pings: the peak over the master's whole life, connection storm included.
    pub master_hwm: u64,
    pub pings: Vec<Duration>,
    /// CPU time (user + system) the master used during the timed pings, all of them.
    pub master_cpu: Duration,
    /// The same for the swarm.
    pub swarm_cpu: Duration,
    pub rates: Vec<Rates>,
    pub usage: Usage,
    /// What went wrong without spoiling the figures (a process that did not stop cleanly).
    pub warnings: Vec<String>,
}

/// Runs the fleet of `n` with `reps` timed pings.
pub async fn measure(bins: &Bins, n: usize, reps: u32) -> anyhow::Result<Fleet> {
    let dir = tempfile::Builder::new()
        .prefix("brine-bench-fleet")
        .tempdir()
        .context("creating a temporary directory")?;
    let ports = Ports::free()?;
    // Generous: a slow machine must show as slow figures, not as a timeout.
    let start_timeout = Duration::from_secs(60) + Duration::from_millis(20) * n as u32;

    let swarm_started = Instant::now();
    let mut swarm = Swarm::start(bins, dir.path(), ports, n, start_timeout).await?;
    let master_down = swarm_started.elapsed();
    let mut master = Master::start(bins, dir.path(), ports)?;
    let connect = master
        .wait_connected(bins, n, start_timeout)
        .await
        .map_err(|err| swarm.ensure_running().err().unwrap_or(err))?;

    let outcome = measure_connected(bins, dir.path(), &mut master, &mut swarm, n, reps).await;
    // Stop both whatever happened; the swarm first, so its minions' goodbyes find the master.
    let swarm_stopped = swarm.stop().await;
    let master_stopped = master.stop().await;
    let measured = outcome?;
    let warnings = [swarm_stopped, master_stopped]
        .into_iter()
        .filter_map(|stopped| stopped.err().map(|err| format!("{err:#}")))
        .collect();
    Ok(Fleet {
        n,
        master_down,
        connect,
        master_idle_rss: measured.usage.master_rss,
        master_ping_rss: measured.master_ping_rss,
        master_hwm: measured.master_hwm,
        pings: measured.pings,
        master_cpu: measured.master_cpu,
        swarm_cpu: measured.swarm_cpu,
        rates: measured.rates,
        usage: measured.usage,
        warnings,
    })
}

/// What steps 2 to 4 found.
struct Connected {
    usage: Usage,
    master_ping_rss: u64,
    master_hwm: u64,
    pings: Vec<Duration>,
    master_cpu: Duration,
    swarm_cpu: Duration,
    rates: Vec<Rates>,
}

/// Steps 2 to 4, on a connected fleet.
async fn measure_connected(
    bins: &Bins,
    dir: &Path,
    master: &mut Master,
    swarm: &mut Swarm,
    n: usize,
    reps: u32,
) -> anyhow::Result<Connected> {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (master_pid, swarm_pid) = (master.pid(), swarm.pid());
    let usage = Usage {
        n,
        master_fds: procfs::open_files(master_pid)?,
        swarm_fds: procfs::open_files(swarm_pid)?,
        master_rss: procfs::rss(master_pid)?,
        swarm_rss: procfs::rss(swarm_pid)?,
    };

    cluster::ping(bins, &master.socket, n)
        .await
        .context("the untimed first ping")?;
    let sampler = PeakSampler::start(master_pid, Duration::from_millis(10));
    let mut pings = Vec::new();
    let (mut master_cpu, mut swarm_cpu) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..reps {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let before = (procfs::cpu_time(master_pid)?, procfs::cpu_time(swarm_pid)?);
        pings.push(cluster::ping(bins, &master.socket, n).await?);
        master_cpu += procfs::cpu_time(master_pid)?.saturating_sub(before.0);
        swarm_cpu += procfs::cpu_time(swarm_pid)?.saturating_sub(before.1);
    }
    let master_ping_rss = sampler.finish();
    let master_hwm = procfs::hwm(master_pid)?;
    master.ensure_running()?;
    swarm.ensure_running()?;

    let jobs = ingest::read_jobs(&master.store())?;
    // The first job is the untimed ping.
    let rates = jobs
        .iter()
        .skip(1)
        .map(|job| ingest::rates(job, n))
        .collect::<anyhow::Result<Vec<_>>>()
        .with_context(|| format!("reading the returns' times from {}", dir.display()))?;
    Ok(Connected {
        usage,
        master_ping_rss,
        master_hwm,
        pings,
        master_cpu,
        swarm_cpu,
        rates,
    })
}
