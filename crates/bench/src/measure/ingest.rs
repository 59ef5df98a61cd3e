//! Returns ingested per second: how fast the master authenticates, stores and acknowledges
//! returns when a whole fleet returns at once.
//!
//! The figures come from the master's own job store, read after the pings: each stored return
//! has `stored_ms` (the master's clock when its transaction committed), each job
//! `published_ms`, and each return the minion's `finished_ms`; master and swarm share one
//! clock on loopback. For each ping of N minions:
//!
//! - **ingest rate** = (N − 1) / (last `stored_ms` − first `stored_ms`): N stores are N − 1
//!   intervals. While returns queue at the master this is its ingest capacity; when they do
//!   not, it is the swarm's sending rate and only a lower bound. Which one it is shows in
//!   the spreads below.
//! - **end-to-end rate** = N / (last `stored_ms` − `published_ms`): the whole job round,
//!   publication and minion work included.
//! - **send spread** = last − first `finished_ms`; **store spread** = last − first
//!   `stored_ms`. A store spread much longer than the send spread means returns waited for
//!   the master: the master was the bottleneck.
//!
//! The clocks have millisecond resolution, so a spread is given at least 1 ms.

use std::path::Path;

use anyhow::{bail, Context};
use brine_proto::JobReturn;
use rusqlite::{params, Connection, OpenFlags};

/// The timestamps of one job and its returns.
#[derive(Debug, Clone)]
pub struct JobTimes {
    pub published_ms: u64,
    pub stored_ms: Vec<u64>,
    pub finished_ms: Vec<u64>,
}

/// The ingest figures of one job.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    /// Returns per second, first store to last.
    pub ingest: f64,
    /// Returns per second, publication to last store.
    pub end_to_end: f64,
    /// Milliseconds from the first return sent to the last.
    pub send_spread_ms: u64,
    /// Milliseconds from the first return stored to the last.
    pub store_spread_ms: u64,
}

/// Reads every `test.ping` job of the store at `path`, oldest first, with its returns' times.
pub fn read_jobs(path: &Path) -> anyhow::Result<Vec<JobTimes>> {
    let db = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("opening the master's store {}", path.display()))?;
    let mut jobs =
        db.prepare("SELECT jid, published_ms FROM jobs WHERE fun = 'test.ping' ORDER BY jid")?;
    let mut returns = db.prepare("SELECT stored_ms, ret FROM returns WHERE jid = ?1")?;
    let list: Vec<(String, i64)> = jobs
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut times = Vec::new();
    for (jid, published_ms) in list {
        let mut job = JobTimes {
            published_ms: published_ms as u64,
            stored_ms: Vec::new(),
            finished_ms: Vec::new(),
        };
        let rows = returns.query_map(params![jid], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))
        })?;
        for row in rows {
            let (stored_ms, blob) = row?;
            let ret: JobReturn = brine_proto::decode(&blob)
                .with_context(|| format!("a stored return of job {jid} does not decode"))?;
            job.stored_ms.push(stored_ms as u64);
            job.finished_ms.push(ret.finished_ms);
        }
        times.push(job);
    }
    Ok(times)
}

/// The rates of one job of `n` expected minions; an error unless all `n` returned.
pub fn rates(job: &JobTimes, n: usize) -> anyhow::Result<Rates> {
    if job.stored_ms.len() != n || n == 0 {
        bail!(
            "the store holds {} returns of a job for {n} minions",
            job.stored_ms.len()
        );
    }
    let spread = |times: &[u64]| {
        let (min, max) = (times.iter().min(), times.iter().max());
        max.zip(min).map_or(0, |(max, min)| max - min)
    };
    let last_stored = job
        .stored_ms
        .iter()
        .copied()
        .max()
        .unwrap_or(job.published_ms);
    let store_spread_ms = spread(&job.stored_ms);
    let per_second = |count: usize, ms: u64| count as f64 * 1000.0 / ms.max(1) as f64;
    Ok(Rates {
        ingest: per_second(n - 1, store_spread_ms),
        end_to_end: per_second(n, last_stored.saturating_sub(job.published_ms)),
        send_spread_ms: spread(&job.finished_ms),
        store_spread_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_count_intervals_between_stores() {
        let job = JobTimes {
            published_ms: 1000,
            stored_ms: vec![1010, 1030, 1020, 1050, 1010],
            finished_ms: vec![1005, 1006, 1007, 1008, 1009],
        };
        let rates = rates(&job, 5).unwrap();
        assert_eq!(rates.ingest, 4.0 * 1000.0 / 40.0);
        assert_eq!(rates.end_to_end, 5.0 * 1000.0 / 50.0);
        assert_eq!((rates.send_spread_ms, rates.store_spread_ms), (4, 40));
    }

    #[test]
    fn a_spread_under_a_millisecond_counts_as_one() {
        let job = JobTimes {
            published_ms: 1000,
            stored_ms: vec![1000, 1000],
            finished_ms: vec![1000, 1000],
        };
        assert_eq!(rates(&job, 2).unwrap().ingest, 1000.0);
        assert!(rates(&job, 3).is_err());
    }
}
