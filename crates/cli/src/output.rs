//! Rendering of what the master answers, for people (`human`, Salt's nested outputter) and for
//! scripts (`json`, `yaml`). Shared by `brine` and `brine-run`; this module only builds text,
//! the callers decide where it goes.
//!
//! The human layout follows Salt's `nested` outputter: each minion id followed by `:`, its
//! return below it indented by four spaces; scalars on one line (`True`, `False`, `None` as Salt
//! prints them), maps as a `----------` rule then `key:` lines with the values four spaces
//! further in, lists as `- item` lines (`|_` introduces a collection inside a list).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::{self, Write};

use brine_proto::control::{ActiveJob, JobReport, JobSummary, MinionOutcome, MinionState};
use brine_proto::{JobReturn, Map, MinionId, Value};
use serde::Serialize;

/// How answers are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// Salt's nested layout, coloured on a terminal.
    #[default]
    Human,
    /// One JSON document, indented by four spaces.
    Json,
    /// One YAML document.
    Yaml,
}

/// How `brine` prints a job: [`OutputFormat`]'s formats, and two that give one line per minion
/// and stream them as the returns arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum JobFormat {
    /// Salt's nested layout, coloured on a terminal.
    #[default]
    Human,
    /// One JSON document, indented by four spaces.
    Json,
    /// One YAML document.
    Yaml,
    /// Salt's `txt`: `minion: value`, a line for each line of a text value.
    Txt,
    /// One JSON object per line, `{"minion": value}`, as each return arrives.
    Ndjson,
}

impl From<OutputFormat> for JobFormat {
    fn from(format: OutputFormat) -> Self {
        match format {
            OutputFormat::Human => JobFormat::Human,
            OutputFormat::Json => JobFormat::Json,
            OutputFormat::Yaml => JobFormat::Yaml,
        }
    }
}

impl JobFormat {
    /// Whether the format is a data document for scripts (no progress, summary on stderr).
    pub fn is_data(self) -> bool {
        matches!(self, JobFormat::Json | JobFormat::Yaml | JobFormat::Ndjson)
    }
}

/// Whether to colour output: only on a terminal, and never when `NO_COLOR` is set (non-empty).
pub fn color_wanted(stdout_is_terminal: bool) -> bool {
    stdout_is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// ANSI colours, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Palette {
    enabled: bool,
}

#[derive(Debug, Clone, Copy)]
enum Color {
    Green,
    LightGreen,
    Red,
    LightRed,
    Yellow,
    LightYellow,
    Cyan,
}

impl Color {
    fn code(self) -> &'static str {
        match self {
            Color::Green => "\x1b[0;32m",
            Color::LightGreen => "\x1b[1;32m",
            Color::Red => "\x1b[0;31m",
            Color::LightRed => "\x1b[1;31m",
            Color::Yellow => "\x1b[0;33m",
            Color::LightYellow => "\x1b[1;33m",
            Color::Cyan => "\x1b[0;36m",
        }
    }
}

const RESET: &str = "\x1b[0m";

impl Palette {
    pub fn new(enabled: bool) -> Self {
        Self { enabled }
    }

    pub fn plain() -> Self {
        Self::new(false)
    }

    /// One output line: `indent` spaces, then the coloured `prefix` and `text`, then `suffix`.
    fn line(
        self,
        out: &mut String,
        indent: usize,
        color: Color,
        prefix: &str,
        text: &str,
        suffix: &str,
    ) {
        let (start, end) = if self.enabled {
            (color.code(), RESET)
        } else {
            ("", "")
        };
        let _ = writeln!(out, "{:indent$}{start}{prefix}{text}{end}{suffix}", "");
    }
}

/// Renders a value alone in Salt's nested layout (used for `manage.*`).
pub fn nested(value: &Value, palette: Palette) -> String {
    let mut out = String::new();
    display(value, 0, "", palette, &mut out);
    out
}

/// Salt's `nested.display`: one value at `indent`, its first line after `prefix`.
fn display(value: &Value, indent: usize, prefix: &str, palette: Palette, out: &mut String) {
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => {
            palette.line(
                out,
                indent,
                Color::LightYellow,
                prefix,
                &scalar_text(value),
                "",
            );
        }
        Value::String(s) => {
            let pad = " ".repeat(prefix.len());
            for (i, line) in s.lines().enumerate() {
                let p = if i == 0 { prefix } else { &pad };
                palette.line(out, indent, Color::Green, p, line, "");
            }
        }
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::Array(_) | Value::Object(_) => {
                        palette.line(out, indent, Color::Green, "", "|_", "");
                        let p = if item.is_object() { "" } else { "- " };
                        display(item, indent + 2, p, palette, out);
                    }
                    _ => display(item, indent, "- ", palette, out),
                }
            }
        }
        Value::Object(map) => {
            if indent > 0 {
                palette.line(out, indent, Color::Cyan, prefix, "----------", "");
            }
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for key in keys {
                palette.line(out, indent, Color::Cyan, prefix, key, ":");
                display(&map[key], indent + 4, "", palette, out);
            }
        }
    }
}

/// A scalar as Salt prints it: `True`, `False`, `None`, numbers as they are.
fn scalar_text(value: &Value) -> String {
    match value {
        Value::Null => "None".to_owned(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The text that stands for a minion without a return.
pub fn missing_text(state: MinionState) -> &'static str {
    match state {
        MinionState::NotConnected => "Minion did not return. [Not connected]",
        MinionState::NoResponse => "Minion did not return. [No response]",
        MinionState::Running => "Minion has not returned yet. [Running]",
        MinionState::Waiting => "Minion has not returned yet. [Waiting]",
        MinionState::Interrupted => "Minion did not finish. [Interrupted]",
        MinionState::Rejected => "Minion rejected the job. [Rejected]",
        MinionState::NoKey => "Minion did not return. [No accepted key]",
        MinionState::NotRun => "Minion was not sent the job. [Not run]",
        // A report that says "returned" without the return: say so rather than hide it.
        MinionState::Returned => "Minion did not return. [No return data]",
    }
}

/// Whether a return counts as a success (what exit code 0 needs).
pub fn succeeded(ret: &JobReturn) -> bool {
    ret.success && ret.retcode == 0
}

/// One minion's block in the human layout: its return.
pub fn human_return(ret: &JobReturn, palette: Palette) -> String {
    let mut out = String::new();
    let color = if succeeded(ret) {
        Color::LightGreen
    } else {
        Color::LightRed
    };
    palette.line(&mut out, 0, color, "", ret.id.as_str(), ":");
    display(&ret.ret, 4, "", palette, &mut out);
    out
}

/// One minion's block in the human layout: its return, or why there is none.
pub fn human_outcome(outcome: &MinionOutcome, palette: Palette) -> String {
    match (&outcome.ret, outcome.state) {
        (Some(ret), state) if state.has_return() => human_return(ret, palette),
        (_, state) => {
            let mut out = String::new();
            palette.line(&mut out, 0, Color::Yellow, "", outcome.id.as_str(), ":");
            palette.line(&mut out, 4, Color::Red, "", missing_text(state), "");
            out
        }
    }
}

/// Salt's `txt` lines for one minion: `id: line` for each line of a text value, `id: value`
/// for anything else (maps and lists as compact JSON).
pub fn txt_lines(id: &MinionId, value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::String(text) if !text.is_empty() => {
            for line in text.lines() {
                let _ = writeln!(out, "{id}: {line}");
            }
        }
        Value::Array(_) | Value::Object(_) => {
            let _ = writeln!(out, "{id}: {value}");
        }
        scalar => {
            let _ = writeln!(out, "{id}: {}", scalar_text(scalar));
        }
    }
    out
}

/// One `ndjson` line: `{"id": value}`.
pub fn ndjson_line(id: &MinionId, value: &Value) -> String {
    let mut line = Map::new();
    line.insert(id.to_string(), value.clone());
    format!("{}\n", Value::Object(line))
}

/// What a minion stands for in `json`/`yaml` output: its return value, or the missing text.
pub fn outcome_value(outcome: &MinionOutcome) -> Value {
    match (&outcome.ret, outcome.state) {
        (Some(ret), state) if state.has_return() => ret.ret.clone(),
        (_, state) => Value::String(missing_text(state).to_owned()),
    }
}

/// A job's (or a batch's) minions sorted by id.
pub fn sorted_outcomes(minions: &[MinionOutcome]) -> Vec<&MinionOutcome> {
    let mut outcomes: Vec<&MinionOutcome> = minions.iter().collect();
    outcomes.sort_by(|a, b| a.id.cmp(&b.id));
    outcomes
}

/// Salt's `--static` document: minion id → return (or the missing text), sorted by id.
pub fn report_map(minions: &[MinionOutcome]) -> Map {
    sorted_outcomes(minions)
        .into_iter()
        .map(|o| (o.id.to_string(), outcome_value(o)))
        .collect()
}

/// A whole report (its minions) in one format.
pub fn render_report(minions: &[MinionOutcome], format: OutputFormat, palette: Palette) -> String {
    match format {
        OutputFormat::Human => sorted_outcomes(minions)
            .into_iter()
            .map(|o| human_outcome(o, palette))
            .collect(),
        OutputFormat::Json | OutputFormat::Yaml => {
            render_data(&Value::Object(report_map(minions)), format, palette)
        }
    }
}

/// Any data in one format (human: the nested layout).
pub fn render_data(value: &Value, format: OutputFormat, palette: Palette) -> String {
    match format {
        OutputFormat::Human => nested(value, palette),
        OutputFormat::Json => json_pretty(value),
        OutputFormat::Yaml => {
            serde_norway::to_string(value).expect("a JSON value always serializes as YAML")
        }
    }
}

/// JSON indented by four spaces, with a final newline.
pub fn json_pretty<T: Serialize + ?Sized>(value: &T) -> String {
    let mut buf = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, formatter);
    value
        .serialize(&mut ser)
        .expect("brine values always serialize as JSON");
    buf.push(b'\n');
    String::from_utf8(buf).expect("serde_json writes UTF-8")
}

/// Prints one job's returns: as they arrive when streaming, otherwise all at once from the
/// final report, sorted by id.
#[derive(Debug)]
pub struct JobPrinter {
    format: JobFormat,
    palette: Palette,
    stream: bool,
    shown: BTreeSet<MinionId>,
}

impl JobPrinter {
    /// `stream` applies to the formats of a block or line per minion (human, txt, ndjson): json
    /// and yaml are one document.
    pub fn new(format: JobFormat, palette: Palette, stream: bool) -> Self {
        Self {
            format,
            palette,
            stream: stream && !matches!(format, JobFormat::Json | JobFormat::Yaml),
            shown: BTreeSet::new(),
        }
    }

    /// A return arrived.
    pub fn on_return(&mut self, ret: &JobReturn, out: &mut dyn Write) -> io::Result<()> {
        if self.stream && self.shown.insert(ret.id.clone()) {
            let text = match self.format {
                JobFormat::Txt => txt_lines(&ret.id, &ret.ret),
                JobFormat::Ndjson => ndjson_line(&ret.id, &ret.ret),
                _ => human_return(ret, self.palette),
            };
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
        Ok(())
    }

    /// The job (or batch) is over: print what has not been shown of its minions, sorted by
    /// id.
    pub fn finish(&mut self, minions: &[MinionOutcome], out: &mut dyn Write) -> io::Result<()> {
        let rest = || {
            sorted_outcomes(minions)
                .into_iter()
                .filter(|o| !self.shown.contains(&o.id))
        };
        let text: String = match self.format {
            JobFormat::Human => rest().map(|o| human_outcome(o, self.palette)).collect(),
            JobFormat::Txt => rest()
                .map(|o| txt_lines(&o.id, &outcome_value(o)))
                .collect(),
            JobFormat::Ndjson => rest()
                .map(|o| ndjson_line(&o.id, &outcome_value(o)))
                .collect(),
            JobFormat::Json => render_report(minions, OutputFormat::Json, self.palette),
            JobFormat::Yaml => render_report(minions, OutputFormat::Yaml, self.palette),
        };
        out.write_all(text.as_bytes())?;
        out.flush()
    }
}

/// Salt's `--summary` block: how many minions were targeted, returned, did not return, and
/// returned a failure.
pub fn summary(minions: &[MinionOutcome]) -> String {
    let targeted = minions.len();
    let returned: Vec<_> = minions
        .iter()
        .filter_map(|m| m.has_return().then_some(m.ret.as_ref()).flatten())
        .collect();
    let errors = returned.iter().filter(|r| !succeeded(r)).count();
    let rule = "-------------------------------------------";
    format!(
        "{rule}\nSummary\n{rule}\n# of minions targeted: {targeted}\n\
         # of minions returned: {}\n# of minions that did not return: {}\n\
         # of minions with errors: {errors}\n{rule}\n",
        returned.len(),
        targeted - returned.len()
    )
}

/// The live progress line on a terminal's stderr: `12/40 returned, 3 running`, redrawn in
/// place and erased before anything else is printed.
#[derive(Debug)]
pub struct Progress {
    enabled: bool,
    expected: usize,
    returned: BTreeSet<MinionId>,
    running: BTreeSet<MinionId>,
    drawn: bool,
}

/// Carriage return and "erase to the end of the line".
const ERASE_LINE: &str = "\r\x1b[K";

impl Progress {
    /// A progress line for a job expecting `expected` minions; `enabled` only for a terminal.
    pub fn new(enabled: bool, expected: usize) -> Self {
        Self {
            enabled,
            expected,
            returned: BTreeSet::new(),
            running: BTreeSet::new(),
            drawn: false,
        }
    }

    /// No progress line at all.
    pub fn off() -> Self {
        Self::new(false, 0)
    }

    pub fn line(&self) -> String {
        format!(
            "{}/{} returned, {} running",
            self.returned.len(),
            self.expected,
            self.running.len()
        )
    }

    pub fn on_running(&mut self, id: &MinionId) {
        if !self.returned.contains(id) {
            self.running.insert(id.clone());
        }
    }

    pub fn on_return(&mut self, id: &MinionId) {
        self.running.remove(id);
        self.returned.insert(id.clone());
    }

    /// Draws the line (replacing the one drawn before).
    pub fn draw(&mut self, err: &mut dyn Write) {
        if self.enabled {
            let _ = write!(err, "{ERASE_LINE}{}", self.line());
            let _ = err.flush();
            self.drawn = true;
        }
    }

    /// Erases the line, if one is drawn.
    pub fn clear(&mut self, err: &mut dyn Write) {
        if self.drawn {
            let _ = write!(err, "{ERASE_LINE}");
            let _ = err.flush();
            self.drawn = false;
        }
    }
}

/// A UTC time in milliseconds since the epoch as `YYYY-MM-DD HH:MM:SS`.
pub fn utc_time(ms: u64) -> String {
    let ms = i64::try_from(ms).unwrap_or(i64::MAX);
    let time = jiff::Timestamp::from_millisecond(ms).unwrap_or(jiff::Timestamp::MAX);
    time.strftime("%Y-%m-%d %H:%M:%S").to_string()
}

/// `jobs.list` in one format: a table for people, a list of records for scripts.
pub fn render_jobs(jobs: &[JobSummary], format: OutputFormat, palette: Palette) -> String {
    if format != OutputFormat::Human {
        let records: Vec<Value> = jobs
            .iter()
            .map(|j| {
                serde_json::json!({
                    "jid": j.jid.as_str(),
                    "function": j.fun,
                    "target": j.target.to_string(),
                    "user": j.user,
                    "start_time": format!("{}Z", utc_time(j.published_ms).replace(' ', "T")),
                    "expected": j.expected,
                    "returned": j.returned,
                })
            })
            .collect();
        return render_data(&Value::Array(records), format, palette);
    }
    let header = [
        "JID",
        "FUNCTION",
        "TARGET",
        "USER",
        "STARTED (UTC)",
        "RETURNED",
    ]
    .map(String::from);
    let rows: Vec<[String; 6]> = jobs
        .iter()
        .map(|j| {
            [
                j.jid.to_string(),
                j.fun.clone(),
                j.target.to_string(),
                j.user.clone(),
                utc_time(j.published_ms),
                format!("{}/{}", j.returned, j.expected),
            ]
        })
        .collect();
    table(&header, &rows)
}

/// `jobs.active` as Salt's runner gives it: jid → `Function`, `Target`, `User`, `StartTime`
/// (RFC 3339, UTC) and the ids, sorted, under the heading of their state
/// ([`active_heading`]): always `Running`, `Returned`, `Waiting` and `Missing`, and `Rejected`
/// and `Interrupted` when some minion is. For people, the nested layout of that map, as Salt
/// prints it.
pub fn render_active_jobs(jobs: &[ActiveJob], format: OutputFormat, palette: Palette) -> String {
    let map: Map = jobs
        .iter()
        .map(|job| {
            let mut entry = serde_json::json!({
                "Function": job.fun,
                "Target": job.target.to_string(),
                "User": job.user,
                "StartTime": format!("{}Z", utc_time(job.published_ms).replace(' ', "T")),
            });
            let mut headings: BTreeMap<&str, Vec<&str>> =
                ["Running", "Returned", "Waiting", "Missing"]
                    .into_iter()
                    .map(|heading| (heading, Vec::new()))
                    .collect();
            for m in &job.minions {
                headings
                    .entry(active_heading(m.state))
                    .or_default()
                    .push(m.id.as_str());
            }
            for (heading, mut ids) in headings {
                ids.sort_unstable();
                entry[heading] = Value::from(ids);
            }
            (job.jid.to_string(), entry)
        })
        .collect();
    render_data(&Value::Object(map), format, palette)
}

/// The heading `jobs.active` lists a minion under: its state's, except that the states of a
/// minion that will not answer (`no_response`, `not_connected`, `no_key`) are `Missing`
/// (`jobs.lookup JID --missing` says which).
pub fn active_heading(state: MinionState) -> &'static str {
    match state {
        MinionState::Returned => "Returned",
        MinionState::Running => "Running",
        MinionState::Waiting => "Waiting",
        MinionState::Rejected => "Rejected",
        MinionState::Interrupted => "Interrupted",
        MinionState::NoResponse
        | MinionState::NotConnected
        | MinionState::NoKey
        | MinionState::NotRun => "Missing",
    }
}

/// `jobs.lookup --missing`: the expected minions without a return, sorted by id. For people
/// one line each, the id then its state (`web2  not connected`); for scripts a map of id → the
/// text `jobs.lookup` shows for it.
pub fn render_missing(report: &JobReport, format: OutputFormat, palette: Palette) -> String {
    let missing: Vec<&MinionOutcome> = sorted_outcomes(&report.minions)
        .into_iter()
        .filter(|o| !o.has_return())
        .collect();
    if format != OutputFormat::Human {
        let map: Map = missing
            .iter()
            .map(|o| (o.id.to_string(), outcome_value(o)))
            .collect();
        return render_data(&Value::Object(map), format, palette);
    }
    let width = missing
        .iter()
        .map(|o| o.id.as_str().len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for o in missing {
        let id = format!("{:<width$}", o.id.as_str());
        palette.line(
            &mut out,
            0,
            Color::Yellow,
            "",
            &id,
            &format!("  {}", o.state.describe()),
        );
    }
    out
}

/// Left-aligned columns two spaces apart; the last column is not padded.
fn table<const N: usize>(header: &[String; N], rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in std::iter::once(header).chain(rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 < N {
                let _ = write!(line, "{cell:<width$}  ", width = widths[i]);
            } else {
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use brine_proto::{Jid, Target};
    use serde_json::json;

    use super::*;

    fn id(s: &str) -> MinionId {
        MinionId::new(s).unwrap()
    }

    fn jid() -> Jid {
        Jid::new("20261125130201123456").unwrap()
    }

    fn ret(minion: &str, value: Value, success: bool) -> JobReturn {
        let ret = JobReturn::new(id(minion), jid(), "test.fun", value);
        if success {
            ret
        } else {
            ret.failed()
        }
    }

    fn returned(minion: &str, value: Value) -> MinionOutcome {
        MinionOutcome {
            id: id(minion),
            state: MinionState::Returned,
            ret: Some(ret(minion, value, true)),
        }
    }

    fn missing(minion: &str, state: MinionState) -> MinionOutcome {
        MinionOutcome {
            id: id(minion),
            state,
            ret: None,
        }
    }

    fn report(minions: Vec<MinionOutcome>) -> JobReport {
        JobReport {
            jid: jid(),
            fun: "test.fun".into(),
            target: Target::Glob("*".into()),
            arg: vec![],
            kwarg: Map::new(),
            user: "root".into(),
            published_ms: 0,
            deadline_ms: 0,
            minions,
        }
    }

    fn human(minions: Vec<MinionOutcome>) -> String {
        render_report(&minions, OutputFormat::Human, Palette::plain())
    }

    #[test]
    fn scalars_sit_below_the_id_indented_by_four() {
        let text = human(vec![
            returned("web2", json!(true)),
            returned("web1", json!(42)),
            returned("web3", json!(null)),
            returned("web4", json!("line one\nline two")),
            returned("web5", json!(1.5)),
        ]);
        assert_eq!(
            text,
            "web1:\n    42\nweb2:\n    True\nweb3:\n    None\nweb4:\n    line one\n    line two\nweb5:\n    1.5\n"
        );
    }

    #[test]
    fn maps_get_a_rule_and_sorted_keys() {
        let text = human(vec![returned(
            "web1",
            json!({"b": {"inner": false}, "a": "x", "c": {}}),
        )]);
        assert_eq!(
            text,
            "\
web1:
    ----------
    a:
        x
    b:
        ----------
        inner:
            False
    c:
        ----------
"
        );
    }

    #[test]
    fn lists_are_dash_lines_and_nested_collections_get_a_bar() {
        let text = human(vec![returned(
            "web1",
            json!(["a", 1, ["x", "y"], {"k": "v"}]),
        )]);
        assert_eq!(
            text,
            "\
web1:
    - a
    - 1
    |_
      - x
      - y
    |_
      ----------
      k:
          v
"
        );
    }

    #[test]
    fn a_multi_line_string_in_a_list_keeps_its_alignment() {
        let text = nested(&json!(["one\ntwo"]), Palette::plain());
        assert_eq!(text, "- one\n  two\n");
    }

    #[test]
    fn missing_minions_say_why() {
        let text = human(vec![
            missing("web3", MinionState::NoResponse),
            missing("web2", MinionState::NotConnected),
            returned("web1", json!(true)),
        ]);
        assert_eq!(
            text,
            "\
web1:
    True
web2:
    Minion did not return. [Not connected]
web3:
    Minion did not return. [No response]
"
        );
    }

    #[test]
    fn colours_only_when_asked() {
        let o = returned("web1", json!(true));
        let plain = human_outcome(&o, Palette::plain());
        assert!(!plain.contains('\x1b'));
        let coloured = human_outcome(&o, Palette::new(true));
        assert!(coloured.starts_with("\x1b[1;32mweb1\x1b[0m:\n"));
        let failed = MinionOutcome {
            ret: Some(ret("web1", json!("boom"), false)),
            ..o
        };
        assert!(human_outcome(&failed, Palette::new(true)).starts_with("\x1b[1;31mweb1"));
    }

    #[test]
    fn json_is_one_document_of_id_to_return() {
        let r = report(vec![
            returned("web2", json!({"a": [1, 2]})),
            returned("web1", json!(true)),
            missing("web3", MinionState::NotConnected),
        ]);
        let text = render_report(&r.minions, OutputFormat::Json, Palette::plain());
        assert_eq!(
            text,
            r#"{
    "web1": true,
    "web2": {
        "a": [
            1,
            2
        ]
    },
    "web3": "Minion did not return. [Not connected]"
}
"#
        );
    }

    #[test]
    fn yaml_is_the_same_map() {
        let r = report(vec![
            returned("web1", json!(true)),
            missing("web2", MinionState::NoResponse),
        ]);
        let text = render_report(&r.minions, OutputFormat::Yaml, Palette::plain());
        let back: Value = serde_norway::from_str(&text).unwrap();
        assert_eq!(
            back,
            json!({"web1": true, "web2": "Minion did not return. [No response]"})
        );
    }

    #[test]
    fn the_printer_streams_then_shows_only_the_rest() {
        let r = report(vec![
            returned("web1", json!(1)),
            returned("web2", json!(2)),
            missing("web3", MinionState::NotConnected),
        ]);
        let mut printer = JobPrinter::new(JobFormat::Human, Palette::plain(), true);
        let mut out = Vec::new();
        printer
            .on_return(r.minions[1].ret.as_ref().unwrap(), &mut out)
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out), "web2:\n    2\n");
        printer.finish(&r.minions, &mut out).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out),
            "web2:\n    2\nweb1:\n    1\nweb3:\n    Minion did not return. [Not connected]\n"
        );
    }

    #[test]
    fn the_printer_prints_once_when_not_streaming() {
        let r = report(vec![returned("web2", json!(2)), returned("web1", json!(1))]);
        let mut printer = JobPrinter::new(JobFormat::Human, Palette::plain(), false);
        let mut out = Vec::new();
        printer
            .on_return(r.minions[0].ret.as_ref().unwrap(), &mut out)
            .unwrap();
        assert!(out.is_empty());
        printer.finish(&r.minions, &mut out).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out),
            "web1:\n    1\nweb2:\n    2\n"
        );
    }

    #[test]
    fn txt_and_ndjson_give_a_line_per_minion_and_stream() {
        let r = report(vec![
            returned("web1", json!("a\nb")),
            returned("web2", json!({"k": true})),
            missing("web3", MinionState::NoResponse),
        ]);
        let mut printer = JobPrinter::new(JobFormat::Txt, Palette::plain(), true);
        let mut out = Vec::new();
        printer
            .on_return(r.minions[1].ret.as_ref().unwrap(), &mut out)
            .unwrap();
        printer.finish(&r.minions, &mut out).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out),
            "web2: {\"k\":true}\nweb1: a\nweb1: b\nweb3: Minion did not return. [No response]\n"
        );
        let mut printer = JobPrinter::new(JobFormat::Ndjson, Palette::plain(), false);
        let mut out = Vec::new();
        printer.finish(&r.minions, &mut out).unwrap();
        let lines: Vec<Value> = String::from_utf8_lossy(&out)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines,
            vec![
                json!({"web1": "a\nb"}),
                json!({"web2": {"k": true}}),
                json!({"web3": "Minion did not return. [No response]"})
            ]
        );
        assert_eq!(txt_lines(&id("m"), &json!(false)), "m: False\n");
    }

    #[test]
    fn the_summary_counts_like_salt() {
        let mut failed = returned("web2", json!("x"));
        if let Some(ret) = failed.ret.as_mut() {
            ret.success = false;
        }
        let r = report(vec![
            returned("web1", json!(true)),
            failed,
            missing("web3", MinionState::NotConnected),
        ]);
        let text = summary(&r.minions);
        assert!(text.contains("# of minions targeted: 3\n"), "{text}");
        assert!(text.contains("# of minions returned: 2\n"), "{text}");
        assert!(
            text.contains("# of minions that did not return: 1\n"),
            "{text}"
        );
        assert!(text.contains("# of minions with errors: 1\n"), "{text}");
    }

    #[test]
    fn progress_counts_running_and_returned_and_erases_itself() {
        let mut progress = Progress::new(true, 3);
        let mut err = Vec::new();
        progress.on_running(&id("web1"));
        progress.on_running(&id("web2"));
        progress.on_return(&id("web1"));
        assert_eq!(progress.line(), "1/3 returned, 1 running");
        progress.draw(&mut err);
        progress.clear(&mut err);
        progress.clear(&mut err);
        assert_eq!(
            String::from_utf8_lossy(&err),
            "\r\x1b[K1/3 returned, 1 running\r\x1b[K"
        );
        let mut off = Progress::off();
        let mut err = Vec::new();
        off.draw(&mut err);
        off.clear(&mut err);
        assert!(err.is_empty());
    }

    #[test]
    fn times_are_utc() {
        assert_eq!(utc_time(0), "1970-01-01 00:00:00");
        assert_eq!(utc_time(1_795_611_721_123), "2026-11-25 13:02:01");
    }

    #[test]
    fn jobs_table_lines_up() {
        let jobs = vec![JobSummary {
            jid: jid(),
            fun: "test.ping".into(),
            target: Target::list_from_str("web1,web2"),
            user: "root".into(),
            published_ms: 1_795_611_721_123,
            expected: 2,
            returned: 1,
        }];
        let text = render_jobs(&jobs, OutputFormat::Human, Palette::plain());
        assert_eq!(
            text,
            "\
JID                   FUNCTION   TARGET       USER  STARTED (UTC)        RETURNED
20261125130201123456  test.ping  L@web1,web2  root  2026-11-25 13:02:01  1/2
"
        );
        let json: Value =
            serde_json::from_str(&render_jobs(&jobs, OutputFormat::Json, Palette::plain()))
                .unwrap();
        assert_eq!(json[0]["start_time"], "2026-11-25T13:02:01Z");
        assert_eq!(json[0]["returned"], 1);
    }

    #[test]
    fn active_jobs_are_salts_map_of_jid_to_job() {
        use brine_proto::control::MinionProgress;
        let progress = |name: &str, state| MinionProgress {
            id: id(name),
            state,
        };
        let jobs = vec![ActiveJob {
            jid: jid(),
            fun: "test.sleep".into(),
            target: Target::Glob("web*".into()),
            user: "root".into(),
            published_ms: 1_795_611_721_123,
            minions: vec![
                progress("web4", MinionState::Running),
                progress("web1", MinionState::Returned),
                progress("web3", MinionState::Rejected),
                progress("web2", MinionState::Running),
                progress("web5", MinionState::Waiting),
                progress("web6", MinionState::NotConnected),
            ],
        }];
        let json: Value = serde_json::from_str(&render_active_jobs(
            &jobs,
            OutputFormat::Json,
            Palette::plain(),
        ))
        .unwrap();
        assert_eq!(
            json,
            json!({"20261125130201123456": {
                "Function": "test.sleep",
                "Target": "web*",
                "User": "root",
                "StartTime": "2026-11-25T13:02:01Z",
                "Running": ["web2", "web4"],
                "Returned": ["web1"],
                "Rejected": ["web3"],
                "Waiting": ["web5"],
                "Missing": ["web6"],
            }})
        );
        let human = render_active_jobs(&jobs, OutputFormat::Human, Palette::plain());
        assert!(
            human.starts_with(
                "20261125130201123456:\n    ----------\n    Function:\n        test.sleep\n"
            ),
            "{human}"
        );
        assert!(
            human.contains("    Running:\n        - web2\n        - web4\n"),
            "{human}"
        );
        assert_eq!(
            render_active_jobs(&[], OutputFormat::Json, Palette::plain()),
            "{}\n"
        );
    }

    #[test]
    fn missing_lists_only_the_minions_without_a_return() {
        let rejected = MinionOutcome {
            state: MinionState::Rejected,
            ..returned("web0", json!("Job rejected: disabled"))
        };
        let r = report(vec![
            missing("web3", MinionState::NoResponse),
            returned("web1", json!(true)),
            missing("db10", MinionState::NotConnected),
            missing("web2", MinionState::Running),
            rejected,
        ]);
        assert_eq!(
            render_missing(&r, OutputFormat::Human, Palette::plain()),
            "db10  not connected\nweb2  running\nweb3  no response\n"
        );
        let json: Value =
            serde_json::from_str(&render_missing(&r, OutputFormat::Json, Palette::plain()))
                .unwrap();
        assert_eq!(
            json,
            json!({
                "db10": "Minion did not return. [Not connected]",
                "web2": "Minion has not returned yet. [Running]",
                "web3": "Minion did not return. [No response]",
            })
        );
        let all_back = report(vec![returned("web1", json!(true))]);
        assert_eq!(
            render_missing(&all_back, OutputFormat::Human, Palette::plain()),
            ""
        );
        assert_eq!(
            render_missing(&all_back, OutputFormat::Yaml, Palette::plain()),
            "{}\n"
        );
    }
}
