//! `brine -b N|N%`: a job run on a few minions at a time, like Salt's batch mode.
//!
//! The master is asked first which known minions the target matches and which of them are
//! connected (`minions` with a target). The ones not connected are reported `[Not connected]`
//! and sent nothing. The connected ones are worked through in a sliding window: at most N run
//! the function at once; whenever minions finish (they returned, or their job ended without
//! them), as many new ones start, each refill one job of its own with a list target, after
//! `--batch-wait` seconds. With `--failhard` the first failed return stops new starts; the jobs
//! running finish, and the minions never started are named on stderr. Every job is an ordinary
//! job of the master (`brine-run jobs.list` shows them all); the output is the returns of all
//! of them together, as for one job.

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

/// Runs the batch: returns through `printer` on `out`, progress and notes on `err`. Gives the
/// report of all its jobs together (and of the minions not connected).
pub async fn run(
    batch: &Batch,
    printer: &mut JobPrinter,
    progress_enabled: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<JobReport, CommandError> {
    let (connected, down) = resolve(batch).await?;
    let total = connected.len() + down.len();
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
    let mut outcomes: Vec<MinionOutcome> = down
        .iter()
        .map(|id| MinionOutcome {
            id: id.clone(),
            state: MinionState::NotConnected,
            ret: None,
        })
        .collect();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut queue: VecDeque<MinionId> = connected.into();
    // Minions started and not yet finished; slots that free up at a time (--batch-wait).
    let mut active: BTreeSet<MinionId> = BTreeSet::new();
    let mut freeing: Vec<Instant> = Vec::new();
    let mut free = window;
    let mut first_jid = None;
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
            Event::Published(jid) => {
                first_jid.get_or_insert(jid);
            }
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
    let jid = first_jid.unwrap_or_else(|| Jid::from_micros(0));
    if let Some(failed) = stopped_by {
        if !queue.is_empty() {
            let rest: Vec<&str> = queue.iter().map(MinionId::as_str).collect();
            let _ = writeln!(
                err,
                "brine: --failhard: {failed} failed; not run on: {}",
                rest.join(", ")
            );
        }
        // Listed like every targeted minion, as refused: the batch never sent them the job.
        let reason = format!("Not run: --failhard stopped the batch after {failed} failed");
        outcomes.extend(queue.drain(..).map(|id| MinionOutcome {
            state: MinionState::Rejected,
            ret: Some(JobReturn {
                id: id.clone(),
                jid: jid.clone(),
                fun: batch.request.fun.clone(),
                ret: reason.clone().into(),
                retcode: 1,
                success: false,
                started_ms: 0,
                finished_ms: 0,
                interrupted: false,
                rejected: true,
            }),
            id,
        }));
    }
    Ok(JobReport {
        jid,
        fun: batch.request.fun.clone(),
        target: batch.request.target.clone(),
        arg: batch.request.arg.clone(),
        kwarg: batch.request.kwarg.clone(),
        user: String::new(),
        published_ms: 0,
        deadline_ms: 0,
        minions: outcomes,
    })
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The target's minions, connected and not, sorted by id.
async fn resolve(batch: &Batch) -> Result<(Vec<MinionId>, Vec<MinionId>), CommandError> {
    let mut conn = Connection::connect(&batch.socket).await?;
    conn.send(&ControlRequest::MatchTarget {
        target: batch.request.target.clone(),
    })
    .await?;
    match conn.next_event(Instant::now() + ANSWER_TIMEOUT).await? {
        Some(ControlEvent::Minions { minions }) => {
            let (up, down): (Vec<_>, Vec<_>) = minions.into_iter().partition(|m| m.connected);
            Ok((
                up.into_iter().map(|m| m.id).collect(),
                down.into_iter().map(|m| m.id).collect(),
            ))
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
