//! The errors a command can end with, each with its exit code and its line for stderr.

use std::io;
use std::process::ExitCode;

use brine_proto::control::{ControlError, ControlEvent};

use crate::client::{describe_io, ClientError};
use crate::exit;

/// Why a command did not get (or could not print) its answer.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{}", master_text(*.code, .message))]
    Master { code: ControlError, message: String },
    #[error("the master closed the connection before the job was done")]
    Incomplete,
    /// The master closed the connection without any answer to a request that is not a job.
    #[error("the master closed the connection without answering")]
    NoAnswer,
    /// The master refused a `brine-key` command (unknown id, no key in the right state,
    /// fingerprint mismatch): its message, exit 1.
    #[error("{0}")]
    Refused(String),
    /// The operator did not confirm a key change at the prompt: nothing was sent, exit 1.
    #[error("not confirmed: no key was changed")]
    Declined,
    #[error("the master answered with an unexpected `{0}` event")]
    Unexpected(&'static str),
    #[error("{0}")]
    Usage(String),
    #[error("writing the output: {}", describe_io(.0))]
    Output(#[source] io::Error),
}

fn master_text(code: ControlError, message: &str) -> String {
    match code {
        ControlError::NoMinions => "No minions matched the target.".to_owned(),
        ControlError::BadRequest => format!("the master refused the request: {message}"),
        ControlError::NotFound => format!("not found: {message}"),
        ControlError::Storage => format!("the master's job store failed: {message}"),
        ControlError::ShuttingDown => format!("the master is shutting down: {message}"),
        ControlError::Denied => format!("permission denied: {message}"),
        ControlError::Busy => format!("the master is busy: {message}"),
    }
}

impl CommandError {
    /// The documented exit code for this error (see [`crate::exit`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            // The kernel refused this user the socket: a permission, not an absent master.
            CommandError::Client(crate::client::ClientError::ConnectDenied { .. }) => exit::DENIED,
            CommandError::Client(_)
            | CommandError::Incomplete
            | CommandError::NoAnswer
            | CommandError::Unexpected(_) => exit::UNAVAILABLE,
            CommandError::Refused(_) | CommandError::Declined => exit::FAILED,
            CommandError::Master { code, .. } => exit::for_master_error(*code),
            CommandError::Usage(_) => exit::USAGE,
            CommandError::Output(_) => exit::FAILED,
        }
    }

    /// The line for stderr, or `None` when silence is right (stdout is a closed pipe, as in
    /// `brine '*' test.ping | head -1`).
    pub fn message(&self, program: &str) -> Option<String> {
        match self {
            CommandError::Output(e) if e.kind() == io::ErrorKind::BrokenPipe => None,
            // Salt's words, without a program prefix.
            CommandError::Master {
                code: ControlError::NoMinions,
                ..
            } => Some(self.to_string()),
            _ => Some(format!("{program}: {self}")),
        }
    }

    /// Prints the message on stderr and gives the exit code.
    pub fn report(&self, program: &str) -> ExitCode {
        if let Some(line) = self.message(program) {
            eprintln!("{line}");
        }
        ExitCode::from(self.exit_code())
    }
}

/// The name of an event, for messages.
pub fn event_name(event: &ControlEvent) -> &'static str {
    match event {
        ControlEvent::Published { .. } => "published",
        ControlEvent::Return(_) => "return",
        ControlEvent::Running { .. } => "running",
        ControlEvent::StillRunning { .. } => "still_running",
        ControlEvent::Done(_) => "done",
        ControlEvent::Jobs { .. } => "jobs",
        ControlEvent::ActiveJobs { .. } => "active_jobs",
        ControlEvent::Minions { .. } => "minions",
        ControlEvent::Keys { .. } => "keys",
        ControlEvent::Error { .. } => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_minions_is_salts_sentence_and_code_4() {
        let e = CommandError::Master {
            code: ControlError::NoMinions,
            message: "target web* matched nothing".into(),
        };
        assert_eq!(
            e.message("brine").unwrap(),
            "No minions matched the target."
        );
        assert_eq!(e.exit_code(), exit::NO_MINIONS);
    }

    #[test]
    fn a_closed_pipe_is_silent() {
        let e = CommandError::Output(io::ErrorKind::BrokenPipe.into());
        assert_eq!(e.message("brine"), None);
        let e = CommandError::Incomplete;
        assert_eq!(
            e.message("brine").unwrap(),
            "brine: the master closed the connection before the job was done"
        );
        assert_eq!(e.exit_code(), exit::UNAVAILABLE);
    }

    #[test]
    fn key_refusals_and_declines_are_1_and_a_silent_master_is_69() {
        let e = CommandError::Refused("web9 has no pending or rejected key".into());
        assert_eq!(
            e.message("brine-key").unwrap(),
            "brine-key: web9 has no pending or rejected key"
        );
        assert_eq!(e.exit_code(), exit::FAILED);
        assert_eq!(CommandError::Declined.exit_code(), exit::FAILED);
        assert_eq!(CommandError::NoAnswer.exit_code(), exit::UNAVAILABLE);
    }
}
