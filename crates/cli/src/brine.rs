//! The `brine` command: Salt's `salt '<target>' module.function [args] [key=value]`.
//!
//! It publishes one job through the master's control socket, then, unless `--async`, prints
//! every targeted minion's return (or why there is none) and exits with a code that says how
//! the job went (see [`crate::exit`]).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use brine_proto::control::{ControlEvent, ControlRequest, MinionOutcome, PublishRequest};
use brine_proto::target::DEFAULT_DELIMITER;
use brine_proto::{FunctionName, GrainExpr, Target};
use clap::{value_parser, ArgGroup, Parser};
use tokio::time::Instant;

use crate::args::parse_args;
use crate::batch::{self, Batch, BatchSize};
use crate::client::{ClientError, Connection, ANSWER_TIMEOUT, DEFAULT_SOCKET, DONE_MARGIN};
use crate::error::{event_name, CommandError};
use crate::exit;
use crate::job::follow;
use crate::output::{
    color_wanted, missing_text, summary, JobFormat, JobPrinter, Palette, Progress,
};
use crate::Terminals;

/// Run a function on the minions a target matches, the way `salt` does.
///
/// Example: brine -L web1,web2 cmd.run 'uptime' timeout=10
///
/// Also: `brine completions bash|zsh|fish [COMMAND]` prints a completion script and
/// `brine manpage [COMMAND]` a man page, for brine, brine-run, brine-key or brine-call.
#[derive(Debug, Parser)]
#[command(
    name = "brine",
    version,
    after_help = exit::BRINE_HELP,
    allow_negative_numbers = true,
    group(ArgGroup::new("target_kind").multiple(false))
)]
pub struct Cli {
    /// The target is a comma-separated list of minion ids
    #[arg(short = 'L', long = "list", group = "target_kind")]
    pub list: bool,

    /// The target is a regular expression, matched from the start of the id
    #[arg(short = 'E', long = "pcre", group = "target_kind")]
    pub pcre: bool,

    /// The target is a grain and a glob for its value, key:value ('os:Debian'; nested keys
    /// key:key:value; any item of a list grain; case does not matter)
    #[arg(short = 'G', long = "grain", group = "target_kind")]
    pub grain: bool,

    /// The target is a grain and a regular expression for its value, key:regex
    /// ('os:(Debian|Ubuntu)'), matched from the start of the value
    #[arg(short = 'P', long = "grain-pcre", group = "target_kind")]
    pub grain_pcre: bool,

    /// The target is an address or a network ('10.0.0.0/8'), matched against the minions'
    /// ipv4 and ipv6 grains
    #[arg(short = 'S', long = "ipcidr", group = "target_kind")]
    pub ipcidr: bool,

    /// The target is a nodegroup defined in the master's configuration
    #[arg(short = 'N', long = "nodegroup", group = "target_kind")]
    pub nodegroup: bool,

    /// The target is a compound expression: 'web* and G@os:Debian or not L@db1,db2', with
    /// G@ (grain), P@ (grain regex), E@ (id regex), L@ (list), S@ (address or network),
    /// N@ (nodegroup), a bare word an id glob, and and, or, not and parentheses
    #[arg(short = 'C', long = "compound", group = "target_kind")]
    pub compound: bool,

    /// The separator of nested grain keys for -G and -P (default ':'); in a compound target
    /// write it between letter and @: 'G;@pkg;apache'
    #[arg(long, value_name = "CHAR")]
    pub delimiter: Option<char>,

    /// Seconds to wait for minions that have not returned (the job goes on running after it;
    /// how long it may run is the master's job_timeout)
    #[arg(
        short,
        long,
        default_value_t = 5,
        value_name = "SECONDS",
        value_parser = value_parser!(u64).range(1..=86_400)
    )]
    pub timeout: u64,

    /// Output format: human (Salt's nested layout), json, yaml, txt (`minion: value` lines)
    /// or ndjson (a JSON object per line, as each return arrives)
    #[arg(
        long,
        visible_alias = "output",
        value_enum,
        default_value_t,
        value_name = "FORMAT"
    )]
    pub out: JobFormat,

    /// Print every return at the end, sorted by id, instead of each as it arrives
    #[arg(long = "static")]
    pub static_output: bool,

    /// After the returns, print how many minions were targeted, returned, did not return and
    /// failed (on stderr for json, yaml and ndjson)
    #[arg(long)]
    pub summary: bool,

    /// Publish the job, print its jid and exit without waiting for returns
    #[arg(long = "async", conflicts_with = "batch")]
    pub no_wait: bool,

    /// Run on this many connected minions at a time (a count, or a share such as 25%),
    /// starting the next as each finishes, like Salt's batch mode
    #[arg(short = 'b', long = "batch-size", value_name = "N|N%")]
    pub batch: Option<BatchSize>,

    /// With --batch-size: seconds to wait after a minion finishes before the next starts
    #[arg(long, value_name = "SECONDS", requires = "batch", default_value_t = 0.0,
          value_parser = parse_seconds)]
    pub batch_wait: f64,

    /// With --batch-size: start no new minion after a function failed
    #[arg(long, requires = "batch")]
    pub failhard: bool,

    /// Print the jid first, and the minions that did not return last (on stderr)
    #[arg(short, long)]
    pub verbose: bool,

    /// The master's control socket
    #[arg(long, env = "BRINE_SOCKET", default_value = DEFAULT_SOCKET, value_name = "PATH")]
    pub socket: PathBuf,

    /// Print the documentation of functions (a module, a function or a glob; every function
    /// without one) from the modules brine ships, like `salt -d`, and exit
    #[arg(
        short = 'd',
        long = "doc",
        value_name = "FUNCTION",
        num_args = 0..=1,
        default_missing_value = ""
    )]
    pub doc: Option<String>,

    /// Which minions: a glob on their ids such as 'web*' (default), or what -L, -E, -G, -P,
    /// -S, -N or -C says
    #[arg(value_name = "TARGET", required_unless_present = "doc")]
    pub target: Option<String>,

    /// The function to run, as module.function (test.ping, cmd.run, ...)
    #[arg(value_name = "FUNCTION", required_unless_present = "doc")]
    pub fun: Option<FunctionName>,

    /// Arguments: key=value is a keyword argument, anything else positional. Values are typed
    /// like YAML: true/false, null, numbers, [flow, lists], {flow: maps}; the rest are strings
    #[arg(value_name = "ARGS")]
    pub args: Vec<String>,
}

/// A number of seconds from 0 to a day.
fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(secs) if (0.0..=86_400.0).contains(&secs) => Ok(secs),
        _ => Err("expected a number of seconds from 0 to 86400".to_owned()),
    }
}

/// The separator Salt prints after the jid in verbose mode.
const RULE: &str = "-------------------------------------------";

impl Cli {
    /// The target expression, checked (a bad glob or regex is a usage error).
    pub fn target(&self) -> Result<Target, CommandError> {
        let expr = self.target.clone().unwrap_or_default();
        let grain = || GrainExpr {
            pattern: expr.clone(),
            delimiter: self.delimiter.unwrap_or(DEFAULT_DELIMITER),
        };
        if self.delimiter.is_some() && !(self.grain || self.grain_pcre) {
            return Err(CommandError::Usage(
                "--delimiter goes with -G or -P; in a compound target write G;@key;value".into(),
            ));
        }
        let target = if self.list {
            Target::list_from_str(&expr)
        } else if self.pcre {
            Target::Regex(expr)
        } else if self.grain {
            Target::Grain(grain())
        } else if self.grain_pcre {
            Target::GrainPcre(grain())
        } else if self.ipcidr {
            Target::Ipcidr(expr)
        } else if self.compound {
            Target::Compound(expr)
        } else if self.nodegroup {
            Target::Nodegroup(expr)
        } else {
            Target::Glob(expr)
        };
        // Nodegroups are the master's: it checks their names.
        target
            .validate()
            .map_err(|e| CommandError::Usage(format!("invalid target: {e}")))?;
        Ok(target)
    }

    /// How the returns are printed: human output streams on a terminal only (piped, it comes
    /// sorted), txt and ndjson always, nothing with --static.
    fn printer(&self, terminals: Terminals) -> JobPrinter {
        let palette = Palette::new(color_wanted(terminals.stdout));
        let stream = !self.static_output && (terminals.stdout || self.out != JobFormat::Human);
        JobPrinter::new(self.out, palette, stream)
    }

    /// The request this command line sends.
    pub fn request(&self) -> Result<ControlRequest, CommandError> {
        let args = parse_args(&self.args);
        Ok(ControlRequest::Publish(PublishRequest {
            target: self.target()?,
            fun: self
                .fun
                .clone()
                .ok_or_else(|| CommandError::Usage("a function to run is required".to_owned()))?,
            arg: args.arg,
            kwarg: args.kwarg,
            timeout_ms: self.timeout.saturating_mul(1000),
            wait: !self.no_wait,
        }))
    }
}

/// Runs the command: results on `out`, messages on `err`. Gives the exit code.
pub async fn run(
    cli: &Cli,
    out: &mut dyn Write,
    err: &mut dyn Write,
    terminals: Terminals,
) -> Result<u8, CommandError> {
    if let Some(selector) = &cli.doc {
        return print_docs(selector, out);
    }
    if let Some(size) = cli.batch {
        return run_batch(cli, size, out, err, terminals).await;
    }
    let request = cli.request()?;
    let mut conn = Connection::connect(&cli.socket).await?;
    conn.send(&request).await?;
    let deadline = Instant::now()
        + if cli.no_wait {
            ANSWER_TIMEOUT
        } else {
            Duration::from_secs(cli.timeout) + DONE_MARGIN
        };

    let published = conn.next_event(deadline).await.inspect_err(|e| {
        if matches!(e, ClientError::Timeout(_)) {
            // The master may be stopped, not gone: the job may be stored and run later.
            let _ = writeln!(
                err,
                "brine: the master did not confirm the job in time; it may still run once the \
                 master answers again: see brine-run jobs.list before sending it again"
            );
        }
    })?;
    let (jid, minions) = match published {
        Some(ControlEvent::Published { jid, minions }) => (jid, minions),
        Some(ControlEvent::Error { code, message }) => {
            return Err(CommandError::Master { code, message })
        }
        Some(other) => return Err(CommandError::Unexpected(event_name(&other))),
        None => return Err(CommandError::Incomplete),
    };
    if cli.no_wait {
        writeln!(out, "Executed command with job ID: {jid}").map_err(CommandError::Output)?;
        return Ok(exit::SUCCESS);
    }
    if minions.is_empty() {
        return Err(CommandError::Master {
            code: brine_proto::control::ControlError::NoMinions,
            message: String::new(),
        });
    }
    if cli.verbose {
        let _ = writeln!(err, "Executing job with jid {jid}\n{RULE}\n");
    }

    let mut printer = cli.printer(terminals);
    let mut progress = Progress::new(terminals.stderr && !cli.out.is_data(), minions.len());
    let report = tokio::select! {
        report = follow(&mut conn, deadline, &mut printer, &mut progress, out, err) => match report {
            Ok(report) => report,
            Err(e) => {
                if matches!(e, CommandError::Incomplete | CommandError::Client(_)) {
                    // The job exists on the master: say how to find it again.
                    let _ = writeln!(
                        err,
                        "brine: job {jid} was published and may still be running: \
                         brine-run jobs.lookup {jid} --wait"
                    );
                }
                return Err(e);
            }
        },
        _ = tokio::signal::ctrl_c() => {
            let _ = writeln!(
                err,
                "\nExiting on Ctrl-C; the job goes on. Its jid is {jid}: \
                 brine-run jobs.lookup {jid}"
            );
            return Ok(exit::INTERRUPTED);
        }
    };
    print_report(cli, &mut printer, &report.minions, out, err)
}

/// The end of a job (or batch): what the printer has not shown of its minions, the summary,
/// the missing minions.
fn print_report(
    cli: &Cli,
    printer: &mut JobPrinter,
    minions: &[MinionOutcome],
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, CommandError> {
    printer.finish(minions, out).map_err(CommandError::Output)?;
    if cli.summary {
        let block = summary(minions);
        let written = if cli.out.is_data() {
            err.write_all(block.as_bytes())
        } else {
            out.write_all(block.as_bytes())
        };
        written.map_err(CommandError::Output)?;
    }
    if cli.verbose {
        report_missing(minions, err);
    }
    Ok(exit::for_outcomes(minions))
}

/// `--batch-size`: the job on a window of minions at a time (see [`crate::batch`]).
async fn run_batch(
    cli: &Cli,
    size: BatchSize,
    out: &mut dyn Write,
    err: &mut dyn Write,
    terminals: Terminals,
) -> Result<u8, CommandError> {
    let ControlRequest::Publish(request) = cli.request()? else {
        unreachable!("brine's request is a publish")
    };
    let batch = Batch {
        size,
        wait: Duration::from_secs_f64(cli.batch_wait),
        failhard: cli.failhard,
        socket: cli.socket.clone(),
        request,
        timeout: Duration::from_secs(cli.timeout),
    };
    let mut printer = cli.printer(terminals);
    let progress = terminals.stderr && !cli.out.is_data();
    let report = tokio::select! {
        report = batch::run(&batch, &mut printer, progress, out, err) => report?,
        _ = tokio::signal::ctrl_c() => {
            let _ = writeln!(
                err,
                "\nExiting on Ctrl-C; the jobs started go on: brine-run jobs.list shows them"
            );
            return Ok(exit::INTERRUPTED);
        }
    };
    let code = print_report(cli, &mut printer, &report.minions, out, err)?;
    if !report.jids.is_empty() {
        let jids: Vec<&str> = report.jids.iter().map(brine_proto::Jid::as_str).collect();
        let _ = writeln!(
            err,
            "brine: the batch ran as job(s) {}: brine-run jobs.lookup JID shows each",
            jids.join(", ")
        );
    }
    Ok(code)
}

/// `-d`: the doc strings the selector picks, each under its name, indented as Salt prints them.
fn print_docs(selector: &str, out: &mut dyn Write) -> Result<u8, CommandError> {
    let selectors: Vec<String> = selector.split_whitespace().map(str::to_owned).collect();
    let docs = brine_modules::docs(&selectors);
    if docs.is_empty() {
        return Err(CommandError::Usage(format!(
            "no function matches {selector:?}: brine -d lists them all"
        )));
    }
    let mut text = String::new();
    for (name, doc) in docs {
        text.push_str(name);
        text.push_str(":\n\n");
        for line in doc.lines() {
            if !line.is_empty() {
                text.push_str("    ");
            }
            text.push_str(line);
            text.push('\n');
        }
        text.push('\n');
    }
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(CommandError::Output)?;
    Ok(exit::SUCCESS)
}

/// Verbose mode's closing lines: each minion without a return, with its state.
fn report_missing(minions: &[MinionOutcome], err: &mut dyn Write) {
    let mut missing: Vec<_> = minions.iter().filter(|m| !m.has_return()).collect();
    if missing.is_empty() {
        return;
    }
    missing.sort_by(|a, b| a.id.cmp(&b.id));
    let _ = writeln!(err, "{RULE}");
    for m in missing {
        let _ = writeln!(err, "{}: {}", m.id, missing_text(m.state));
    }
}

#[cfg(test)]
mod tests {
    use brine_proto::Value;
    use clap::CommandFactory;
    use serde_json::json;

    use super::*;

    fn parse(words: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("brine").chain(words.iter().copied()))
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_salt_command_line_becomes_a_publish_request() {
        let cli = parse(&[
            "-L",
            "web1,web2",
            "cmd.run",
            "ls -la",
            "-5",
            "cwd=/tmp",
            "-t",
            "9",
        ])
        .unwrap();
        let ControlRequest::Publish(req) = cli.request().unwrap() else {
            panic!("not a publish");
        };
        assert_eq!(req.target, Target::List(vec!["web1".into(), "web2".into()]));
        assert_eq!(req.fun.as_str(), "cmd.run");
        assert_eq!(Value::Array(req.arg), json!(["ls -la", -5]));
        assert_eq!(Value::Object(req.kwarg), json!({"cwd": "/tmp"}));
        assert_eq!(req.timeout_ms, 9000);
        assert!(req.wait);
    }

    #[test]
    fn target_kinds_and_async() {
        let cli = parse(&["-E", "web[0-9]+", "test.ping", "--async"]).unwrap();
        let ControlRequest::Publish(req) = cli.request().unwrap() else {
            panic!("not a publish");
        };
        assert_eq!(req.target, Target::Regex("web[0-9]+".into()));
        assert!(!req.wait);
        assert_eq!(req.timeout_ms, 5000);
        let cli = parse(&["web*", "test.ping"]).unwrap();
        assert_eq!(cli.target().unwrap(), Target::Glob("web*".into()));
    }

    #[test]
    fn usage_errors() {
        for words in [
            &["*"][..],
            &["*", "ping"],
            &["*", "test."],
            &["-L", "-E", "a", "test.ping"],
            &["--out", "xml", "*", "test.ping"],
            &["-t", "0", "*", "test.ping"],
        ] {
            let e = parse(words).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{words:?}");
        }
        let cli = parse(&["-E", "(", "test.ping"]).unwrap();
        assert_eq!(cli.request().unwrap_err().exit_code(), exit::USAGE);
    }
}
