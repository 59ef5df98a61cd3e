//! The `brine-run` command: Salt's `salt-run` runners for jobs and minions.
//!
//! Each subcommand sends one request on the control socket and prints the answer:
//! `jobs.list` → `list_jobs` (its filters in Salt's `key=value` words or as flags),
//! `jobs.active` → `active_jobs`, `jobs.lookup` → `lookup_job` (printed like `brine` prints a
//! job, or with `--missing` only the minions without a return), `manage.up|down|status` →
//! `minions`.

use std::io::Write;
use std::time::Duration;

use brine_proto::control::{ControlEvent, ControlRequest, JobQuery, MinionStatus, MAX_LISTED_JOBS};
use brine_proto::{Jid, Value};
use clap::{value_parser, Parser, Subcommand};
use tokio::time::Instant;

use crate::client::{Connection, ANSWER_TIMEOUT};
use crate::error::{event_name, CommandError};
use crate::exit;
use crate::job::follow;
use crate::output::{
    color_wanted, render_active_jobs, render_data, render_jobs, render_missing, JobPrinter,
    Palette, Progress,
};
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

/// What `jobs.list` says about its times, in `--help`.
const TIME_HELP: &str = "A TIME is UTC \"YYYY-MM-DD HH:MM:SS\" (or just the date: midnight), or \
RFC 3339 with its offset (2026-11-25T13:02:01.250Z, 2026-11-25T14:02:01+01:00).";

/// The runners.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List recent jobs, newest first; with Salt's filters, only the jobs that pass all of them
    ///
    /// The filters come as flags or in Salt's form, as words after the command:
    /// `brine-run jobs.list_jobs search_function='test.*' search_target=web1`. A GLOB is
    /// fnmatch's (`*`, `?`, `[abc]`, `[!abc]`), case-sensitive.
    #[command(name = "jobs.list", visible_alias = "jobs.list_jobs", after_help = TIME_HELP)]
    JobsList {
        /// Show at most this many jobs
        #[arg(
            long,
            default_value_t = 100,
            value_parser = value_parser!(u32).range(1..=i64::from(MAX_LISTED_JOBS))
        )]
        limit: u32,

        /// Only jobs whose function matches GLOB (`test.*`)
        #[arg(long, value_name = "GLOB")]
        search_function: Option<String>,

        /// Only jobs whose target as written (`web*`, `L@web1,web2`) or one of whose expected
        /// minions matches GLOB
        #[arg(long, value_name = "GLOB")]
        search_target: Option<String>,

        /// Only jobs started at or after TIME
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        start_time: Option<u64>,

        /// Only jobs started at or before TIME
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        end_time: Option<u64>,

        /// The same filters in Salt's form: search_function=GLOB, search_target=GLOB,
        /// start_time=TIME, end_time=TIME
        #[arg(value_name = "KEY=VALUE", value_parser = parse_filter)]
        filters: Vec<Filter>,
    },

    /// The jobs still in flight, and which minions are running each, have returned or not answered
    ///
    /// One entry per live job, keyed by jid, as Salt's `jobs.active` gives it: its `Function`,
    /// `Target`, `User` and `StartTime`, and the ids that are `Running` (acknowledged, no return
    /// yet), `Returned`, `Waiting` (no word yet, before the deadline)
    /// and `Missing` (the deadline passed without an answer: `jobs.lookup JID --missing` says
    /// why).
    #[command(name = "jobs.active")]
    JobsActive,

    /// Show a job's returns and the state of every expected minion
    #[command(name = "jobs.lookup", visible_alias = "jobs.lookup_jid")]
    JobsLookup {
        /// The job id: 20 digits, a UTC time stamp %Y%m%d%H%M%S%f
        jid: Jid,

        /// Wait for a job still in flight, showing returns as they arrive
        #[arg(long)]
        wait: bool,

        /// Show only the expected minions that did not return, one a line with its state
        /// (json/yaml: id → what jobs.lookup shows for it); the exit code is jobs.lookup's
        #[arg(long)]
        missing: bool,

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

/// One of `jobs.list_jobs`'s filters in Salt's `key=value` form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    SearchFunction(String),
    SearchTarget(String),
    /// ms since the epoch, UTC.
    StartTime(u64),
    EndTime(u64),
}

impl Filter {
    fn key(&self) -> &'static str {
        match self {
            Filter::SearchFunction(_) => "search_function",
            Filter::SearchTarget(_) => "search_target",
            Filter::StartTime(_) => "start_time",
            Filter::EndTime(_) => "end_time",
        }
    }
}

/// `search_function=GLOB`, `search_target=GLOB`, `start_time=TIME` or `end_time=TIME`.
fn parse_filter(word: &str) -> Result<Filter, String> {
    let Some((key, value)) = word.split_once('=') else {
        return Err("expected KEY=VALUE, such as search_function='test.*'".into());
    };
    match key {
        "search_function" => Ok(Filter::SearchFunction(value.into())),
        "search_target" => Ok(Filter::SearchTarget(value.into())),
        "start_time" => parse_time(value).map(Filter::StartTime),
        "end_time" => parse_time(value).map(Filter::EndTime),
        other => Err(format!(
            "unknown filter `{other}`: jobs.list_jobs takes search_function, search_target, \
             start_time and end_time"
        )),
    }
}

/// A time as ms since the epoch: RFC 3339 (with its offset), or a date and time without one,
/// taken as UTC (`2026-11-25 13:02:01`, `2026-11-25T13:02:01.250`, `2026-11-25`).
fn parse_time(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let instant = text.parse::<jiff::Timestamp>().or_else(|_| {
        text.parse::<jiff::civil::DateTime>()
            .and_then(|utc| jiff::tz::Offset::UTC.to_timestamp(utc))
    });
    let instant = instant.map_err(|_| {
        format!(
            "`{text}` is not a time: expected UTC \"YYYY-MM-DD HH:MM:SS\" or RFC 3339 \
             (2026-11-25T13:02:01Z)"
        )
    })?;
    u64::try_from(instant.as_millisecond()).map_err(|_| format!("`{text}` is before 1970"))
}

/// Puts `value` in `slot` unless a value is there already: each filter is given once.
fn set_once<T>(slot: &mut Option<T>, value: T, key: &str) -> Result<(), CommandError> {
    if slot.is_some() {
        return Err(CommandError::Usage(format!("{key} is given twice")));
    }
    *slot = Some(value);
    Ok(())
}

impl Command {
    /// The request this subcommand sends; a usage error for filters that contradict each
    /// other.
    pub fn request(&self) -> Result<ControlRequest, CommandError> {
        Ok(match self {
            Command::JobsList {
                limit,
                search_function,
                search_target,
                start_time,
                end_time,
                filters,
            } => {
                let mut query = JobQuery {
                    limit: *limit,
                    search_function: search_function.clone(),
                    search_target: search_target.clone(),
                    start_time_ms: *start_time,
                    end_time_ms: *end_time,
                };
                for filter in filters {
                    let key = filter.key();
                    match filter.clone() {
                        Filter::SearchFunction(glob) => {
                            set_once(&mut query.search_function, glob, key)?
                        }
                        Filter::SearchTarget(glob) => {
                            set_once(&mut query.search_target, glob, key)?
                        }
                        Filter::StartTime(ms) => set_once(&mut query.start_time_ms, ms, key)?,
                        Filter::EndTime(ms) => set_once(&mut query.end_time_ms, ms, key)?,
                    }
                }
                if let (Some(start), Some(end)) = (query.start_time_ms, query.end_time_ms) {
                    if start > end {
                        return Err(CommandError::Usage(
                            "start_time is later than end_time: no job can pass both".into(),
                        ));
                    }
                }
                ControlRequest::ListJobs(query)
            }
            Command::JobsActive => ControlRequest::ActiveJobs {},
            Command::JobsLookup { jid, wait, .. } => ControlRequest::LookupJob {
                jid: jid.clone(),
                wait: *wait,
            },
            Command::ManageUp | Command::ManageDown | Command::ManageStatus => {
                ControlRequest::Minions {}
            }
        })
    }
}

/// Runs the command: results on `out`. Gives the exit code.
pub async fn run(
    cli: &Cli,
    out: &mut dyn Write,
    stdout_is_terminal: bool,
) -> Result<u8, CommandError> {
    let palette = Palette::new(color_wanted(stdout_is_terminal));
    let request = cli.command.request()?;
    let mut conn = Connection::connect(&cli.master.socket).await?;
    conn.send(&request).await?;
    let deadline = Instant::now()
        + match cli.command {
            Command::JobsLookup {
                wait: true,
                timeout,
                ..
            } => Duration::from_secs(timeout),
            _ => ANSWER_TIMEOUT,
        };

    if let Command::JobsLookup { wait, missing, .. } = cli.command {
        let stream = wait && stdout_is_terminal && !missing;
        let mut printer = JobPrinter::new(cli.master.out.into(), palette, stream);
        let report = follow(
            &mut conn,
            deadline,
            &mut printer,
            &mut Progress::off(),
            out,
            &mut std::io::stderr(),
        )
        .await?;
        if missing {
            let text = render_missing(&report, cli.master.out, palette);
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .map_err(CommandError::Output)?;
        } else {
            printer
                .finish(&report.minions, out)
                .map_err(CommandError::Output)?;
        }
        return Ok(exit::for_outcomes(&report.minions));
    }

    let text = match (conn.next_event(deadline).await?, &cli.command) {
        (Some(ControlEvent::Jobs { jobs }), Command::JobsList { .. }) => {
            render_jobs(&jobs, cli.master.out, palette)
        }
        (Some(ControlEvent::ActiveJobs { jobs, omitted }), Command::JobsActive) => {
            if omitted > 0 {
                eprintln!(
                    "brine-run: {omitted} older live job(s) left out: the answer holds at most \
                     {} minions in all (brine-run jobs.list shows every job)",
                    brine_proto::control::MAX_ACTIVE_MINIONS
                );
            }
            render_active_jobs(&jobs, cli.master.out, palette)
        }
        (Some(ControlEvent::Minions { minions, .. }), command) => {
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
        let request = |words: &[&str]| parse(words).unwrap().command.request().unwrap();
        let cli = parse(&["jobs.list", "--limit", "5", "--out", "json"]).unwrap();
        assert_eq!(
            cli.command.request().unwrap(),
            ControlRequest::ListJobs(JobQuery::newest(5))
        );
        assert_eq!(cli.master.out, crate::output::OutputFormat::Json);
        assert_eq!(
            request(&["jobs.list"]),
            ControlRequest::ListJobs(JobQuery::newest(100))
        );
        assert_eq!(
            request(&[
                "jobs.lookup_jid",
                "20261125130201123456",
                "--wait",
                "--missing"
            ]),
            ControlRequest::LookupJob {
                jid: Jid::new("20261125130201123456").unwrap(),
                wait: true
            }
        );
        assert_eq!(request(&["jobs.active"]), ControlRequest::ActiveJobs {});
        assert_eq!(request(&["manage.status"]), ControlRequest::Minions {});
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

    /// 2026-11-25T13:02:01Z in ms.
    const T: u64 = 1_795_611_721_000;

    #[test]
    fn salts_filter_words_and_the_flags_make_the_same_query() {
        let query = |words: &[&str]| match parse(words).unwrap().command.request().unwrap() {
            ControlRequest::ListJobs(query) => query,
            other => panic!("{other:?}"),
        };
        let expected = JobQuery {
            limit: 7,
            search_function: Some("test.*".into()),
            search_target: Some("web[!2]".into()),
            start_time_ms: Some(T),
            end_time_ms: Some(T + 250),
        };
        assert_eq!(
            query(&[
                "jobs.list_jobs",
                "search_function=test.*",
                "search_target=web[!2]",
                "start_time=2026-11-25 13:02:01",
                "end_time=2026-11-25T13:02:01.250Z",
                "--limit",
                "7",
            ]),
            expected
        );
        assert_eq!(
            query(&[
                "jobs.list",
                "--limit=7",
                "--search-function",
                "test.*",
                "--search-target=web[!2]",
                "--start-time",
                "2026-11-25T14:02:01+01:00",
                "--end-time",
                "2026-11-25 13:02:01.25",
            ]),
            expected
        );
        // A flag and a word together: each filter once.
        let q = query(&[
            "jobs.list",
            "--search-function",
            "test.*",
            "end_time=2026-11-25",
        ]);
        assert_eq!(q.search_function.as_deref(), Some("test.*"));
        assert_eq!(q.end_time_ms, Some(T - (13 * 3600 + 2 * 60 + 1) * 1000));
    }

    #[test]
    fn bad_filters_are_usage_errors() {
        for words in [
            &["jobs.list_jobs", "search_metadata={}"][..],
            &["jobs.list_jobs", "search_function"],
            &["jobs.list_jobs", "start_time=yesterday"],
            &["jobs.list_jobs", "start_time=1969-12-31 23:59:59"],
            &["jobs.list", "--end-time", "2026-13-01 00:00:00"],
            &["jobs.list", "--limit", "10001"],
        ] {
            let e = parse(words).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{words:?}: {e}");
        }
        let e = parse(&["jobs.list_jobs", "start_time=yesterday"]).unwrap_err();
        assert!(e.to_string().contains("YYYY-MM-DD HH:MM:SS"), "{e}");
        let e = parse(&["jobs.list_jobs", "search_metadata={}"]).unwrap_err();
        assert!(
            e.to_string().contains("unknown filter `search_metadata`"),
            "{e}"
        );
        for words in [
            &["jobs.list", "--search-target", "a", "search_target=b"][..],
            &[
                "jobs.list",
                "start_time=2026-11-25",
                "start_time=2026-11-26",
            ],
            &["jobs.list", "start_time=2026-11-26", "end_time=2026-11-25"],
        ] {
            let e = parse(words).unwrap().command.request().unwrap_err();
            assert_eq!(e.exit_code(), exit::USAGE, "{words:?}");
        }
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
