//! Following one job on a control connection: the loop shared by `brine` and
//! `brine-run jobs.lookup --wait`.
//!
//! After the first answer (`published`), the master sends one `return` per minion as it arrives
//! and then `done` with the state of every expected minion; the connection closing before
//! `done` is an error, as is any other event. When the deadline passes while minions are still
//! running the job, the master says so (`still_running`) and waits for them up to the job's time
//! limit: so does the CLI, with a note on stderr. `running` events (a minion acknowledged the
//! job) only feed the progress line.

use std::io::Write;
use std::time::Duration;

use brine_proto::control::{ControlEvent, JobReport};
use brine_proto::MinionId;
use tokio::time::Instant;

use crate::client::{Connection, DONE_MARGIN};
use crate::error::{event_name, CommandError};
use crate::output::{JobPrinter, Progress};

/// Reads events until `done`, handing each return to `printer`, and gives the final report.
/// A `published` event (the first answer of `lookup_job` with `wait`) is passed over; a
/// `still_running` one moves `deadline` to the master's new limit and is told on `notes`,
/// where `progress` is drawn too (and erased before anything else is printed).
pub async fn follow(
    conn: &mut Connection,
    deadline: Instant,
    printer: &mut JobPrinter,
    progress: &mut Progress,
    out: &mut dyn Write,
    notes: &mut dyn Write,
) -> Result<JobReport, CommandError> {
    let followed = follow_events(conn, deadline, printer, progress, out, notes).await;
    progress.clear(notes);
    followed
}

async fn follow_events(
    conn: &mut Connection,
    mut deadline: Instant,
    printer: &mut JobPrinter,
    progress: &mut Progress,
    out: &mut dyn Write,
    notes: &mut dyn Write,
) -> Result<JobReport, CommandError> {
    progress.draw(notes);
    loop {
        match conn.next_event(deadline).await? {
            Some(ControlEvent::Return(ret)) => {
                progress.clear(notes);
                printer.on_return(&ret, out).map_err(CommandError::Output)?;
                progress.on_return(&ret.id);
                progress.draw(notes);
            }
            Some(ControlEvent::Running { minion }) => {
                progress.on_running(&minion);
                progress.draw(notes);
            }
            Some(ControlEvent::StillRunning { minions, wait_ms }) => {
                let wait = Duration::from_millis(wait_ms);
                deadline = deadline.max(Instant::now() + wait + DONE_MARGIN);
                progress.clear(notes);
                let _ = writeln!(notes, "{}", still_running_note(&minions, wait));
                progress.draw(notes);
            }
            Some(ControlEvent::Done(report)) => return Ok(report),
            Some(ControlEvent::Published { .. }) => {}
            Some(ControlEvent::Error { code, message }) => {
                return Err(CommandError::Master { code, message })
            }
            Some(other) => return Err(CommandError::Unexpected(event_name(&other))),
            None => return Err(CommandError::Incomplete),
        }
    }
}

/// Most ids named in the `still_running` note; the rest are counted.
const NAMED_IN_NOTE: usize = 5;

/// What the CLI says when the deadline passes while minions are still running the job.
pub(crate) fn still_running_note(minions: &[MinionId], wait: Duration) -> String {
    let mut names: Vec<&str> = minions
        .iter()
        .take(NAMED_IN_NOTE)
        .map(MinionId::as_str)
        .collect();
    let more = minions.len().saturating_sub(NAMED_IN_NOTE);
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    names.sort_unstable();
    let (count, verb) = match minions.len() {
        1 => ("1 minion".to_owned(), "is"),
        n => (format!("{n} minions"), "are"),
    };
    format!(
        "brine: the deadline has passed and {count} {verb} still running the job ({}{more}); \
         waiting for the returns until the job's time limit, at most {:#} more (Ctrl-C stops \
         waiting, the job goes on)",
        names.join(", "),
        jiff::SignedDuration::from_secs(wait.as_secs() as i64)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_still_running_note_names_the_minions_and_the_wait() {
        let ids: Vec<MinionId> = ["web2", "web1"]
            .iter()
            .map(|n| MinionId::new(*n).unwrap())
            .collect();
        let note = still_running_note(&ids, Duration::from_secs(90));
        assert!(
            note.contains("2 minions are still running the job (web1, web2)"),
            "{note}"
        );
        assert!(note.contains("at most 1m 30s more"), "{note}");
        let long = still_running_note(&ids, Duration::from_secs(3634));
        assert!(
            long.contains("until the job's time limit, at most 1h 34s more"),
            "{long}"
        );
        let many: Vec<MinionId> = (0..8)
            .map(|i| MinionId::new(format!("m{i}")).unwrap())
            .collect();
        let note = still_running_note(&many, Duration::from_secs(1));
        assert!(note.contains("(m0, m1, m2, m3, m4 and 3 more)"), "{note}");
        assert!(still_running_note(&ids[..1], Duration::ZERO).contains("1 minion is still"));
    }
}
