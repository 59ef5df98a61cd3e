//! One real `brine-minion` daemon against a master: its resident memory and CPU use while it
//! idles (connected, no jobs: only the master's ticks and its own keepalives), then the wall
//! time of `brine '*' test.ping` with this one minion.
//!
//! The idle window starts one second after the master lists the minion as connected, so the
//! start-up work (keys, journal, handshake) is behind it. CPU use is utime + stime over the
//! window; the kernel counts them in ticks (usually 10 ms), so the smallest non-zero figure
//! over a 10 s window is 0.1 % of a core.

use std::time::{Duration, Instant};

use anyhow::Context;

use crate::cluster::{self, Bins, Master, Ports};
use crate::procfs;

/// What one minion daemon costs, and a ping of it.
#[derive(Debug, Clone)]
pub struct OneMinion {
    /// VmRSS at the end of the idle window.
    pub idle_rss: u64,
    /// CPU time over the idle window, as a share of one core (1.0 = a whole core).
    pub idle_cpu: f64,
    pub idle_window: Duration,
    /// The smallest CPU share the window can show (one clock tick over it).
    pub cpu_resolution: f64,
    /// `brine '*' test.ping` with this one minion, each run.
    pub pings: Vec<Duration>,
    /// What went wrong without spoiling the figures (a process that did not stop cleanly).
    pub warnings: Vec<String>,
}

/// Starts a master and one minion, lets the minion idle for `idle`, then times `runs` pings
/// (after one untimed).
pub async fn measure(bins: &Bins, idle: Duration, runs: u32) -> anyhow::Result<OneMinion> {
    let dir = tempfile::Builder::new()
        .prefix("brine-bench-minion")
        .tempdir()
        .context("creating a temporary directory")?;
    let ports = Ports::free()?;
    let mut master = Master::start(bins, dir.path(), ports)?;
    master.wait_ready(bins, Duration::from_secs(30)).await?;
    let mut minion = cluster::start_minion(bins, dir.path(), ports)?;
    master
        .wait_connected(bins, 1, Duration::from_secs(30))
        .await
        .map_err(|err| minion.ensure_running().err().unwrap_or(err))?;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let pid = minion.pid();
    let cpu_before = procfs::cpu_time(pid)?;
    let started = Instant::now();
    tokio::time::sleep(idle).await;
    let cpu_after = procfs::cpu_time(pid)?;
    let idle_window = started.elapsed();
    let idle_rss = procfs::rss(pid)?;
    minion.ensure_running()?;

    let mut pings = Vec::new();
    for run in 0..=runs {
        let elapsed = cluster::ping(bins, &master.socket, 1).await?;
        if run > 0 {
            pings.push(elapsed);
        }
    }

    let warnings = [
        minion.stop(Duration::from_secs(15)).await,
        master.stop().await,
    ]
    .into_iter()
    .filter_map(|stopped| stopped.err().map(|err| format!("{err:#}")))
    .collect();
    Ok(OneMinion {
        idle_rss,
        idle_cpu: (cpu_after.saturating_sub(cpu_before)).as_secs_f64() / idle_window.as_secs_f64(),
        idle_window,
        cpu_resolution: 1.0 / procfs::ticks_per_second()? / idle_window.as_secs_f64(),
        pings,
        warnings,
    })
}
