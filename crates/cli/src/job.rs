//! Following one job on a control connection: the loop shared by `brine` and
//! `brine-run jobs.lookup --wait`.
//!
//! After the first answer (`published`), the master sends one `return` per minion as it arrives
//! and then `done` with the state of every expected minion; the connection closing before
//! `done` is an error, as is any other event.

use std::io::Write;

use brine_proto::control::{ControlEvent, JobReport};
use tokio::time::Instant;

use crate::client::Connection;
use crate::error::{event_name, CommandError};
use crate::output::JobPrinter;

/// Reads events until `done`, handing each return to `printer`, and gives the final report.
/// A `published` event (the first answer of `lookup_job` with `wait`) is passed over.
pub async fn follow(
    conn: &mut Connection,
    deadline: Instant,
    printer: &mut JobPrinter,
    out: &mut dyn Write,
) -> Result<JobReport, CommandError> {
    loop {
        match conn.next_event(deadline).await? {
            Some(ControlEvent::Return(ret)) => {
                printer.on_return(&ret, out).map_err(CommandError::Output)?;
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
