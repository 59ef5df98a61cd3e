//! The `brine-run` command: Salt's `salt-run` runners for jobs and minions.
//!
//! Each subcommand sends one request on the control socket and prints the answer:
//! `jobs.list` → `list_jobs`, `jobs.lookup` → `lookup_job` (printed like `brine` prints a job),
//! `manage.up|down|status` → `minions`.

use std::io::Write;
use std::time::Duration;

use brine_proto::control::{ControlEvent, ControlRequest, MinionStatus};
use brine_proto::{Jid, Value};
use clap::{value_parser, Parser, Subcommand};
use tokio::time::Instant;

use crate::client::{Connection, ANSWER_TIMEOUT};
use crate::error::{event_name, CommandError};
use crate::exit;
use crate::job::follow;
use crate::output::{color_wanted, render_data, render_jobs, JobPrinter, Palette, Progress};
use crate::MasterOptions;

/// Ask the master about jobs and minions, the way `salt-run` does.
#[derive(Debug, Parser)]
#[command(name = "brine-run", version, after_help = exit::BRINE_RUN_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub master: MasterOptions,

    #[command(subcommand)]
    pub command: Command,
}

/// The runners.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List recent jobs, newest first
    #[command(name = "jobs.list", visible_alias = "jobs.list_jobs")]
    JobsList {
        /// Show at most this many jobs
        #[arg(long, default_value_t = 100, value_parser = value_parser!(u32).range(1..))]
        limit: u32,
    },

    /// Show a job's returns and the state of every expected minion
    #[command(name = "jobs.lookup", visible_alias = "jobs.lookup_jid")]
    JobsLookup {
        /// The job id: 20 digits, a UTC time stamp %Y%m%d%H%M%S%f
        jid: Jid,

        /// Wait for a job still in flight, showing returns as they arrive
        #[arg(long)]
        wait: bool,

        /// With --wait: the longest to wait for the job to finish, in seconds
        #[arg(
            short,
            long,
            default_value_t = 3600,
            value_name = "SECONDS",
            value_parser = value_parser!(u64).range(1..)
        )]
        timeout: u64,
    },

    /// List the ids of the connected minions
    #[command(name = "manage.up")]
    ManageUp,

    /// List the ids of the known minions that are not connected
    #[command(name = "manage.down")]
    ManageDown,

    /// Both lists: {"up": [...], "down": [...]}
    #[command(name = "manage.status")]
    ManageStatus,
}

impl Command {
    /// The request this subcommand sends.
    pub fn request(&self) -> ControlRequest {
        match self {
            Command::JobsList { limit } => ControlRequest::ListJobs { limit: *limit },
            Command::JobsLookup { jid, wait, .. } => ControlRequest::LookupJob {
                jid: jid.clone(),
                wait: *wait,
            },
            Command::ManageUp | Command::ManageDown | Command::ManageStatus => {
                ControlRequest::Minions {}
            }
        }
    }
}

/// Runs the command: results on `out`. Gives the exit code.
pub async fn run(
    cli: &Cli,
    out: &mut dyn Write,
    stdout_is_terminal: bool,
) -> Result<u8, CommandError> {
    let palette = Palette::new(color_wanted(stdout_is_terminal));
    let mut conn = Connection::connect(&cli.master.socket).await?;
    conn.send(&cli.command.request()).await?;
    let deadline = Instant::now()
        + match cli.command {
            Command::JobsLookup {
                wait: true,
                timeout,
                ..
            } => Duration::from_secs(timeout),
            _ => ANSWER_TIMEOUT,
        };

    if let Command::JobsLookup { wait, .. } = cli.command {
        let mut printer =
            JobPrinter::new(cli.master.out.into(), palette, wait && stdout_is_terminal);
        let report = follow(
            &mut conn,
            deadline,
            &mut printer,
            &mut Progress::off(),
            out,
            &mut std::io::stderr(),
        )
        .await?;
        printer.finish(&report, out).map_err(CommandError::Output)?;
        return Ok(exit::for_report(&report));
    }

    let text = match (conn.next_event(deadline).await?, &cli.command) {
        (Some(ControlEvent::Jobs { jobs }), Command::JobsList { .. }) => {
            render_jobs(&jobs, cli.master.out, palette)
        }
        (Some(ControlEvent::Minions { minions }), command) => {
            render_data(&minion_lists(&minions, command), cli.master.out, palette)
        }
        (Some(ControlEvent::Error { code, message }), _) => {
            return Err(CommandError::Master { code, message })
        }
        (Some(other), _) => return Err(CommandError::Unexpected(event_name(&other))),
        (None, _) => return Err(CommandError::Incomplete),
    };
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(CommandError::Output)?;
    Ok(exit::SUCCESS)
}

/// `manage.up` / `manage.down`: sorted ids; `manage.status`: both under `up` and `down`.
pub fn minion_lists(minions: &[MinionStatus], command: &Command) -> Value {
    let ids = |connected: bool| {
        let mut ids: Vec<&str> = minions
            .iter()
            .filter(|m| m.connected == connected)
            .map(|m| m.id.as_str())
            .collect();
        ids.sort_unstable();
        Value::from(ids)
    };
    match command {
        Command::ManageUp => ids(true),
        Command::ManageDown => ids(false),
        _ => serde_json::json!({"up": ids(true), "down": ids(false)}),
    }
}

#[cfg(test)]
mod tests {
    use brine_proto::MinionId;
    use clap::CommandFactory;
    use serde_json::json;

    use super::*;

    fn parse(words: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("brine-run").chain(words.iter().copied()))
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn subcommands_become_requests() {
        let cli = parse(&["jobs.list", "--limit", "5", "--out", "json"]).unwrap();
        assert_eq!(cli.command.request(), ControlRequest::ListJobs { limit: 5 });
        assert_eq!(cli.master.out, crate::output::OutputFormat::Json);
        let cli = parse(&["jobs.list"]).unwrap();
        assert_eq!(
            cli.command.request(),
            ControlRequest::ListJobs { limit: 100 }
        );
        let cli = parse(&["jobs.lookup_jid", "20261125130201123456", "--wait"]).unwrap();
        assert_eq!(
            cli.command.request(),
            ControlRequest::LookupJob {
                jid: Jid::new("20261125130201123456").unwrap(),
                wait: true
            }
        );
        let cli = parse(&["manage.status"]).unwrap();
        assert_eq!(cli.command.request(), ControlRequest::Minions {});
    }

    #[test]
    fn a_bad_jid_is_a_usage_error_that_states_the_grammar() {
        let e = parse(&["jobs.lookup", "notajid"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("20 decimal digits"), "{e}");
        assert_eq!(
            parse(&["jobs.list", "--limit", "0"])
                .unwrap_err()
                .exit_code(),
            2
        );
    }

    #[test]
    fn minions_split_into_up_and_down() {
        let status = |id: &str, connected| MinionStatus {
            id: MinionId::new(id).unwrap(),
            connected,
            last_seen_ms: 0,
            version: "0.1.0".into(),
        };
        let minions = [
            status("web2", true),
            status("db1", false),
            status("web1", true),
        ];
        assert_eq!(
            minion_lists(&minions, &Command::ManageUp),
            json!(["web1", "web2"])
        );
        assert_eq!(minion_lists(&minions, &Command::ManageDown), json!(["db1"]));
        assert_eq!(
            minion_lists(&minions, &Command::ManageStatus),
            json!({"up": ["web1", "web2"], "down": ["db1"]})
        );
    }
}
