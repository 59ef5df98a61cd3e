//! `brine --version`: the CLI's start-up cost, a process start to its exit.

use std::time::Duration;

use anyhow::bail;

use crate::cluster::Bins;
use crate::proc::run_timed;

/// Times `runs` runs of `brine --version`, after one untimed run (which loads the binary into
/// the page cache).
pub async fn measure(bins: &Bins, runs: u32) -> anyhow::Result<Vec<Duration>> {
    let brine = bins.path("brine")?;
    let mut times = Vec::new();
    for run in 0..=runs {
        let timed = run_timed(&brine, &["--version"], Duration::from_secs(10)).await?;
        timed.ensure_success("brine --version")?;
        if !timed.stdout.starts_with("brine ") {
            bail!("brine --version printed {:?}", timed.stdout);
        }
        if run > 0 {
            times.push(timed.elapsed);
        }
    }
    Ok(times)
}
