//! `brine -b N|N%`: a job run on a few minions at a time, like Salt's batch mode.
//!
//! The master is asked first which minions a job for the target would expect and which of them
//! are connected (`match_target`). The ones not connected are reported `[Not connected]`, the
//! ids the target names that have no accepted key `[No accepted key]`, and neither is sent
//! anything. The connected ones are worked through in a sliding window: at most N run
//! the function at once; whenever minions finish (they returned, or their job ended without
//! them), as many new ones start, each refill one job of its own with a list target, after
//! `--batch-wait` seconds. With `--failhard` the first failed return stops new starts; the jobs
//! running finish, and the minions never started are named on stderr and reported `not_run`.
//! Every job is an ordinary job of the master; the output is the returns of all of them
//! together, as for one job, and the batch's report names every jid so each can be looked up
//! (`brine-run jobs.lookup JID`).

use std::collections::{BTreeSet, VecDeque};
use std::io::Write;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use brine_proto::control::{
    ControlError, ControlEvent, ControlRequest, JobReport, MinionOutcome, MinionState,
    PublishRequest,
};
use brine_proto::{Jid, JobReturn, MinionId, Target};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::client::{Connection, ANSWER_TIMEOUT, DONE_MARGIN};
use crate::error::{event_name, CommandError};
use crate::output::{succeeded, JobPrinter, Progress};

/// How many minions run at once: a count, or a share of the connected minions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchSize {
    Count(usize),
    Percent(u32),
}

impl FromStr for BatchSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad =
            || format!("{s:?} is not a batch size: a count such as 10, or a share such as 25%");
        match s.strip_suffix('%') {
            Some(share) => match share.parse::<u32>() {
                Ok(p @ 1..=100) => Ok(BatchSize::Percent(p)),
                _ => Err(bad()),
            },
            None => match s.parse::<usize>() {
                Ok(n @ 1..) => Ok(BatchSize::Count(n)),
                _ => Err(bad()),
            },
        }
    }
}

impl BatchSize {
    /// The window for `total` minions: at least one, at most all.
    pub fn window(self, total: usize) -> usize {
        let n = match self {
            BatchSize::Count(n) => n,
            BatchSize::Percent(p) => (total * p as usize).div_ceil(100),
        };
        n.clamp(1, total.max(1))
    }
}

/// What one batch needs from the command line.
#[derive(Debug, Clone)]
pub struct Batch {
    pub size: BatchSize,
    pub wait: Duration,
    pub failhard: bool,
    pub socket: PathBuf,
    /// The job for every refill; its target is replaced by the refill's list.
    pub request: PublishRequest,
    pub timeout: Duration,
}

/// What a refill's task tells the batch loop.
#[derive(Debug)]
enum Event {
    Published(Jid),
    Running(MinionId),
    Return(JobReturn),
    Note(String),
    /// The refill for these minions ended with this report.
    Done(Vec<MinionId>, JobReport),
    Failed(CommandError),
}

/// What a batch did: the jobs it published, in order, and every targeted minion's part.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchReport {
    pub jids: Vec<Jid>,
    pub minions: Vec<MinionOutcome>,
}

/// Runs the batch: returns through `printer` on `out`, progress and notes on `err`. Gives the
/// report of all its jobs together (and of the minions not sent the job).
pub async fn run(
    batch: &Batch,
    printer: &mut JobPrinter,
    progress_enabled: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<BatchReport, CommandError> {
    let Resolved {
        connected,
        down,
        no_key,
    } = resolve(batch).await?;
    let total = connected.len() + down.len() + no_key.len();
    if total == 0 {
        return Err(CommandError::Master {
            code: ControlError::NoMinions,
            message: String::new(),
        });
    }
    let window = batch.size.window(connected.len());
    let _ = writeln!(
        err,
        "brine: running on {} minions, {window} at a time{}",
        connected.len(),
        if down.is_empty() {
            String::new()
        } else {
            format!(" ({} not connected)", down.len())
        }
    );
    let mut progress = Progress::new(progress_enabled, total);
    let unsent = |ids: Vec<MinionId>, state: MinionState| {
        ids.into_iter().map(move |id| MinionOutcome {
            id,
            state,
            ret: None,
        })
    };
    let mut outcomes: Vec<MinionOutcome> = unsent(down, MinionState::NotConnected)
        .chain(unsent(no_key, MinionState::NoKey))
        .collect();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut queue: VecDeque<MinionId> = connected.into();
    // Minions started and not yet finished; slots that free up at a time (--batch-wait).
    let mut active: BTreeSet<MinionId> = BTreeSet::new();
    let mut freeing: Vec<Instant> = Vec::new();
    let mut free = window;
    let mut jids = Vec::new();
    let mut stopped_by: Option<MinionId> = None;
    loop {
        let now = Instant::now();
        free += freeing.iter().filter(|at| **at <= now).count();
        freeing.retain(|at| *at > now);
        if stopped_by.is_none() && free > 0 && !queue.is_empty() {
            let take = free.min(queue.len());
            let ids: Vec<MinionId> = queue.drain(..take).collect();
            free -= take;
            active.extend(ids.iter().cloned());
            progress.clear(err);
            let names: Vec<&str> = ids.iter().map(MinionId::as_str).collect();
            let _ = writeln!(err, "brine: executing on {}", names.join(", "));
            tokio::spawn(refill(batch.clone(), ids, tx.clone()));
        }
        if active.is_empty() && (queue.is_empty() || stopped_by.is_some()) {
            break;
        }
        progress.draw(err);
        let next_free = freeing.iter().min().copied();
        let event = tokio::select! {
            event = rx.recv() => event,
            _ = sleep_until(next_free) => continue,
        };
        let Some(event) = event else { break };
        match event {
            Event::Published(jid) => jids.push(jid),
            Event::Running(id) => progress.on_running(&id),
            Event::Note(note) => {
                progress.clear(err);
                let _ = writeln!(err, "{note}");
            }
            Event::Return(ret) => {
                progress.clear(err);
                printer.on_return(&ret, out).map_err(CommandError::Output)?;
                progress.on_return(&ret.id);
                if batch.failhard && !succeeded(&ret) && stopped_by.is_none() {
                    stopped_by = Some(ret.id.clone());
                }
            }
            Event::Done(ids, report) => {
                for id in ids {
                    if active.remove(&id) {
                        freeing.push(Instant::now() + batch.wait);
                    }
                }
                outcomes.extend(report.minions);
            }
            Event::Failed(error) => {
                progress.clear(err);
                return Err(error);
            }
        }
    }
    progress.clear(err);
    if let Some(failed) = stopped_by {
        if !queue.is_empty() {
            let rest: Vec<&str> = queue.iter().map(MinionId::as_str).collect();
            let _ = writeln!(
                err,
                "brine: --failhard: {failed} failed; not run on: {}",
                rest.join(", ")
            );
        }
        // Listed like every targeted minion: the batch never sent them the job.
        outcomes.extend(unsent(queue.drain(..).collect(), MinionState::NotRun));
    }
    Ok(BatchReport {
        jids,
        minions: outcomes,
    })
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The minions a job for the batch's target expects, each sorted by id.
struct Resolved {
    connected: Vec<MinionId>,
    down: Vec<MinionId>,
    /// Ids the target names that have no accepted key.
    no_key: Vec<MinionId>,
}

async fn resolve(batch: &Batch) -> Result<Resolved, CommandError> {
    let mut conn = Connection::connect(&batch.socket).await?;
    conn.send(&ControlRequest::MatchTarget {
        target: batch.request.target.clone(),
    })
    .await?;
    match conn.next_event(Instant::now() + ANSWER_TIMEOUT).await? {
        Some(ControlEvent::Minions { minions, no_key }) => {
            let (up, down): (Vec<_>, Vec<_>) = minions.into_iter().partition(|m| m.connected);
            Ok(Resolved {
                connected: up.into_iter().map(|m| m.id).collect(),
                down: down.into_iter().map(|m| m.id).collect(),
                no_key,
            })
        }
        Some(ControlEvent::Error { code, message }) => Err(CommandError::Master { code, message }),
        Some(other) => Err(CommandError::Unexpected(event_name(&other))),
        None => Err(CommandError::Incomplete),
    }
}

/// One refill: a job for `ids`, followed to its end.
async fn refill(batch: Batch, ids: Vec<MinionId>, tx: mpsc::UnboundedSender<Event>) {
    match follow_refill(&batch, &ids, &tx).await {
        Ok(report) => {
            let _ = tx.send(Event::Done(ids, report));
        }
        Err(error) => {
            let _ = tx.send(Event::Failed(error));
        }
    }
}

async fn follow_refill(
    batch: &Batch,
    ids: &[MinionId],
    tx: &mpsc::UnboundedSender<Event>,
) -> Result<JobReport, CommandError> {
    let mut request = batch.request.clone();
    request.target = Target::List(ids.iter().map(ToString::to_string).collect());
    let mut conn = Connection::connect(&batch.socket).await?;
    conn.send(&ControlRequest::Publish(request)).await?;
    let mut deadline = Instant::now() + batch.timeout + DONE_MARGIN;
    loop {
        let event = match conn.next_event(deadline).await? {
            Some(ControlEvent::Published { jid, .. }) => Event::Published(jid),
            Some(ControlEvent::Return(ret)) => Event::Return(ret),
            Some(ControlEvent::Running { minion }) => Event::Running(minion),
            Some(ControlEvent::StillRunning { minions, wait_ms }) => {
                let wait = Duration::from_millis(wait_ms);
                deadline = deadline.max(Instant::now() + wait + DONE_MARGIN);
                Event::Note(crate::job::still_running_note(&minions, wait))
            }
            Some(ControlEvent::Done(report)) => return Ok(report),
            Some(ControlEvent::Error { code, message }) => {
                return Err(CommandError::Master { code, message })
            }
            Some(other) => return Err(CommandError::Unexpected(event_name(&other))),
            None => return Err(CommandError::Incomplete),
        };
        let _ = tx.send(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_counts_or_shares() {
        assert_eq!("10".parse(), Ok(BatchSize::Count(10)));
        assert_eq!("25%".parse(), Ok(BatchSize::Percent(25)));
        for bad in ["0", "0%", "101%", "-1", "x", "%", ""] {
            assert!(bad.parse::<BatchSize>().is_err(), "{bad}");
        }
        assert_eq!(BatchSize::Count(10).window(3), 3);
        assert_eq!(BatchSize::Count(2).window(3), 2);
        assert_eq!(BatchSize::Percent(25).window(10), 3, "rounded up");
        assert_eq!(BatchSize::Percent(1).window(10), 1);
        assert_eq!(BatchSize::Percent(50).window(0), 1);
    }
}
