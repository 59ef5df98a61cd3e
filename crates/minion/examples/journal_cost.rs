//! Measures what the minion journal costs per job: what a minion does with each job
//! (`has_started`, `begin`, `finish`, `unspool`), repeated on a journal in a new directory.
//!
//! Two patterns: jobs back to back, as in a burst of pings, where each deletion from the spool
//! rides with the next job's write; and jobs one at a time, each followed by the `flush` the
//! timer of an otherwise idle minion does.
//!
//! `cargo run --release -p brine-minion --example journal_cost [jobs] [parent_dir]`

use std::error::Error;
use std::path::Path;
use std::time::{Duration, Instant};

use brine_minion::journal::Journal;
use brine_proto::{now_ms, Jid, JobReturn, MinionId};

/// Each figure is the median of this many runs, alternating the patterns, so that whatever
/// else the machine is doing falls on both alike.
const ROUNDS: usize = 5;

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let jobs: u32 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5_000);
    let parent = args.next().map_or_else(std::env::temp_dir, Into::into);

    let mut back_to_back = Vec::new();
    let mut one_at_a_time = Vec::new();
    for _ in 0..ROUNDS {
        back_to_back.push(run(&parent, jobs, false)?);
        one_at_a_time.push(run(&parent, jobs, true)?);
    }
    println!(
        "{jobs} jobs on a new journal in {} (median of {ROUNDS}):",
        parent.display()
    );
    println!("  back to back:  {:6.1} µs per job", median(back_to_back));
    println!("  one at a time: {:6.1} µs per job", median(one_at_a_time));
    Ok(())
}

/// Microseconds per job over `jobs` jobs.
fn run(parent: &Path, jobs: u32, flush_each: bool) -> Result<f64, Box<dyn Error>> {
    let dir = tempfile::tempdir_in(parent)?;
    let mut journal = Journal::open(dir.path())?;
    let id = MinionId::new("cost")?;
    let first = now_ms() * 1000;
    let start = Instant::now();
    for n in 0..u64::from(jobs) {
        let jid = Jid::from_micros(first + n);
        if journal.has_started(&jid) {
            return Err(format!("{jid} started before").into());
        }
        let started_ms = now_ms();
        journal.begin(&jid, "test.ping", started_ms)?;
        let ret = JobReturn::new(id.clone(), jid.clone(), "test.ping", true);
        journal.finish(&ret.ran(started_ms, now_ms()))?;
        journal.unspool(&jid);
        if flush_each {
            journal.flush()?;
        }
    }
    journal.flush()?;
    Ok(per_job(start.elapsed(), jobs))
}

fn per_job(elapsed: Duration, jobs: u32) -> f64 {
    elapsed.as_secs_f64() * 1e6 / f64::from(jobs)
}

fn median(mut runs: Vec<f64>) -> f64 {
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
}
