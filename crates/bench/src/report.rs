//! The markdown report: the run's command line and machine, the issue's targets with a
//! verdict each, then one table per measurement (median, min, max; ratios to the transport
//! baseline), sizes that were not run with the reason, and the failures in full.

use std::fmt::Write;
use std::time::Duration;

use crate::measure::fleet::Fleet;
use crate::runner::{Results, SizeOutcome};
use crate::stats::{fmt_mb, fmt_ms, fmt_rate, millis, Summary};

/// The whole report.
pub fn render(results: &Results) -> String {
    let mut out = String::new();
    header(&mut out, results);
    machine(&mut out, results);
    targets(&mut out, results);
    pings(&mut out, results);
    baseline(&mut out, results);
    ingest(&mut out, results);
    cpu(&mut out, results);
    memory(&mut out, results);
    connect(&mut out, results);
    one_minion(&mut out, results);
    cli(&mut out, results);
    settings(&mut out, results);
    warnings(&mut out, results);
    failures(&mut out, results);
    out
}

fn header(out: &mut String, r: &Results) {
    let _ = writeln!(out, "# brine benchmark\n");
    if r.settings.smoke {
        let _ = writeln!(
            out,
            "**Smoke run**: one small fleet, one repetition. It checks that the benchmark works; \
             its figures mean little.\n"
        );
    }
    let _ = writeln!(
        out,
        "Measured {} on commit `{}`, binaries from `{}`:\n\n```sh\n{}\n```\n",
        r.machine.date,
        r.machine.commit,
        r.settings.bin_dir.display(),
        r.command_line
    );
}

fn machine(out: &mut String, r: &Results) {
    let m = &r.machine;
    let _ = writeln!(out, "## Machine\n");
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(out, "| processors (nproc) | {} |", m.nproc);
    let _ = writeln!(out, "| CPU | {} |", m.cpu_model);
    let _ = writeln!(out, "| kernel | {} |", m.kernel);
    let memory = m.memory_total.map_or("unknown".into(), fmt_mb);
    let _ = writeln!(out, "| memory | {memory} |");
    let _ = writeln!(
        out,
        "| open files per process (hard limit) | {} |",
        m.fd_limit
    );
    let _ = writeln!(
        out,
        "| load average (1, 5, 15 min) at the start; at the end | {}; {} |",
        m.load, r.load_end
    );
    let _ = writeln!(
        out,
        "| largest fleet that fits (by the costs measured) | about {} minions |\n",
        r.largest_fit
    );
}

/// One of the issue's targets.
struct Target {
    what: &'static str,
    limit: &'static str,
    bound: Bound,
    figure: Figure,
    /// How the figure is written.
    show: fn(f64) -> String,
}

/// Which side of its limit a figure must be on.
#[derive(Debug, Clone, Copy)]
enum Bound {
    AtMost(f64),
    AtLeast(f64),
}

/// Where a target's figure comes from.
enum Figure {
    /// The fleet of this many minions (and the rest of the run, for its baseline).
    Fleet(usize, fn(&Results, &Fleet) -> Option<f64>),
    /// The rest of the run.
    Run(fn(&Results) -> Option<f64>),
}

/// The targets of the issue, in its order.
const TARGETS: [Target; 10] = [
    Target {
        what: "`test.ping`, 1000 minions, median",
        limit: "≤ 100 ms",
        bound: Bound::AtMost(100.0),
        figure: Figure::Fleet(1000, |_, f| ping_ms(f)),
        show: fmt_ms,
    },
    Target {
        what: "`test.ping`, 1000 minions, ratio to the transport baseline",
        limit: "≤ 3×",
        bound: Bound::AtMost(3.0),
        figure: Figure::Fleet(1000, baseline_ratio),
        show: |x| format!("{x:.1}×"),
    },
    Target {
        what: "`test.ping`, 10000 minions, median",
        limit: "≤ 1.5 s",
        bound: Bound::AtMost(1500.0),
        figure: Figure::Fleet(10_000, |_, f| ping_ms(f)),
        show: fmt_ms,
    },
    Target {
        what: "returns ingested, 1000 minions returning at once, median",
        limit: "≥ 30000/s",
        bound: Bound::AtLeast(30_000.0),
        figure: Figure::Fleet(1000, |_, f| {
            let rates: Vec<f64> = f.rates.iter().map(|x| x.ingest).collect();
            Summary::of(&rates).map(|s| s.median)
        }),
        show: fmt_rate,
    },
    Target {
        what: "master RSS, 10000 minions (the larger of idle and during pings)",
        limit: "≤ 150 MB",
        bound: Bound::AtMost(150e6),
        figure: Figure::Fleet(10_000, |_, f| {
            Some(f.master_idle_rss.max(f.master_ping_rss) as f64)
        }),
        show: |x| fmt_mb(x as u64),
    },
    Target {
        what: "one minion daemon, idle RSS",
        limit: "≤ 8 MB",
        bound: Bound::AtMost(8e6),
        figure: Figure::Run(|r| r.minion.as_ref().ok().map(|m| m.idle_rss as f64)),
        show: |x| fmt_mb(x as u64),
    },
    Target {
        what: "one minion daemon, idle CPU",
        limit: "≤ 0.1 % of a core",
        bound: Bound::AtMost(0.001),
        figure: Figure::Run(|r| r.minion.as_ref().ok().map(|m| m.idle_cpu)),
        show: |x| format!("{:.3} %", x * 100.0),
    },
    Target {
        what: "`brine --version`, median",
        limit: "≤ 5 ms",
        bound: Bound::AtMost(5.0),
        figure: Figure::Run(|r| r.version.as_deref().ok().and_then(median_ms)),
        show: fmt_ms,
    },
    Target {
        what: "`test.ping`, 1 minion, median",
        limit: "≤ 20 ms",
        bound: Bound::AtMost(20.0),
        figure: Figure::Run(|r| r.minion.as_ref().ok().and_then(|m| median_ms(&m.pings))),
        show: fmt_ms,
    },
    Target {
        what: "10000 minions connected after the master starts",
        limit: "≤ 10 s",
        bound: Bound::AtMost(10_000.0),
        figure: Figure::Fleet(10_000, |_, f| Some(millis(&f.connect))),
        show: fmt_ms,
    },
];

fn median_ms(samples: &[Duration]) -> Option<f64> {
    Summary::of_millis(samples).map(|s| s.median)
}

fn ping_ms(fleet: &Fleet) -> Option<f64> {
    median_ms(&fleet.pings)
}

/// The fleet's median ping over the median baseline round with as many clients.
fn baseline_ratio(r: &Results, fleet: &Fleet) -> Option<f64> {
    Some(ping_ms(fleet)? / median_ms(r.baseline(fleet.n)?)?)
}

/// How a figure compares with its target.
#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    Met,
    /// By how much, in words.
    Missed(String),
    NotMeasured(String),
}

impl Bound {
    fn judge(self, figure: f64) -> Verdict {
        match self {
            Bound::AtMost(limit) if figure <= limit => Verdict::Met,
            Bound::AtMost(limit) => Verdict::Missed(format!("{:.1}× the limit", figure / limit)),
            Bound::AtLeast(limit) if figure >= limit => Verdict::Met,
            Bound::AtLeast(limit) => {
                Verdict::Missed(format!("{:.0} % of the target", figure / limit * 100.0))
            }
        }
    }
}

impl Verdict {
    fn text(&self) -> String {
        match self {
            Verdict::Met => "met".into(),
            Verdict::Missed(by) => format!("**missed** ({by})"),
            Verdict::NotMeasured(why) => format!("not measured: {why}"),
        }
    }
}

impl Target {
    /// The figure as written, and its verdict. A target on a fleet size that did not run
    /// shows the largest fleet's figure beside the reason, for orientation.
    fn judge(&self, r: &Results) -> (String, Verdict) {
        let judged = |figure: Option<f64>, missing: &str| match figure {
            Some(x) => ((self.show)(x), self.bound.judge(x)),
            None => ("—".into(), Verdict::NotMeasured(missing.into())),
        };
        match &self.figure {
            Figure::Run(read) => judged(read(r), "its measurement failed"),
            Figure::Fleet(n, read) => match r.fleet(*n) {
                Ok(fleet) => judged(read(r, fleet), "its transport baseline failed"),
                Err(why) => {
                    let nearest = r.largest_fleet().and_then(|fleet| {
                        let x = read(r, fleet)?;
                        Some(format!("— (with {} minions: {})", fleet.n, (self.show)(x)))
                    });
                    (
                        nearest.unwrap_or_else(|| "—".into()),
                        Verdict::NotMeasured(why),
                    )
                }
            },
        }
    }
}

fn targets(out: &mut String, r: &Results) {
    let _ = writeln!(out, "## Targets\n");
    let _ = writeln!(
        out,
        "The issue's targets, each against this run's figure.\n"
    );
    let _ = writeln!(
        out,
        "| target | limit | measured | verdict |\n|---|---|---|---|"
    );
    for target in &TARGETS {
        let (measured, verdict) = target.judge(r);
        let _ = writeln!(
            out,
            "| {} | {} | {measured} | {} |",
            target.what,
            target.limit,
            verdict.text()
        );
    }
    out.push('\n');
}

/// `| median | min | max |` cells of durations, in ms.
fn duration_cells(samples: &[Duration]) -> String {
    match Summary::of_millis(samples) {
        Some(s) => format!(
            "{} | {} | {}",
            fmt_ms(s.median),
            fmt_ms(s.min),
            fmt_ms(s.max)
        ),
        None => "— | — | —".into(),
    }
}

/// What a table other than the pings' says for a size not run.
const SEE_PING: &str = "not run (see test.ping wall time)";

/// `1 timed run`, `5 timed runs`.
fn count(n: impl Into<u64>, what: &str) -> String {
    match n.into() {
        1 => format!("1 {what}"),
        n => format!("{n} {what}s"),
    }
}

/// The row for a size without a fleet: why, spread over `columns` cells.
fn missing_row(n: usize, why: &str, columns: usize) -> String {
    format!("| {n} | {why} |{}", " |".repeat(columns.saturating_sub(1)))
}

/// Calls `row` with each size's fleet, or writes why there is none: the whole reason for a
/// size not run `with_reason`, else a pointer to the table that has it.
fn fleet_rows(
    out: &mut String,
    r: &Results,
    columns: usize,
    with_reason: bool,
    row: impl Fn(&Fleet) -> String,
) {
    for (n, outcome) in &r.sizes {
        let line = match outcome {
            SizeOutcome::NotRun(reason) if with_reason => {
                missing_row(*n, &format!("not run: {reason}"), columns)
            }
            SizeOutcome::NotRun(_) => missing_row(*n, SEE_PING, columns),
            SizeOutcome::Ran { fleet: Err(_), .. } => {
                missing_row(*n, "failed (see Failures)", columns)
            }
            SizeOutcome::Ran {
                fleet: Ok(fleet), ..
            } => format!("| {n} | {} |", row(fleet)),
        };
        let _ = writeln!(out, "{line}");
    }
    out.push('\n');
}

fn pings(out: &mut String, r: &Results) {
    let _ = writeln!(out, "## test.ping wall time\n");
    let _ = writeln!(
        out,
        "`brine '*' test.ping --out json`, from starting the process to its exit, every minion \
         listed as returning `true` and exit code 0; {} after one untimed. The ratio is the \
         median over the transport baseline's median with as many clients.\n",
        count(r.settings.reps, "timed run")
    );
    let _ = writeln!(
        out,
        "| minions | median | min | max | baseline median | ratio to baseline |\n|---|---|---|---|---|---|"
    );
    fleet_rows(out, r, 5, true, |f| {
        let base = r.baseline(f.n).and_then(median_ms);
        let ping = median_ms(&f.pings);
        format!(
            "{} | {} | {}",
            duration_cells(&f.pings),
            base.map_or("—".into(), fmt_ms),
            ping.zip(base)
                .map_or("—".into(), |(p, b)| format!("{:.1}×", p / b))
        )
    });
}

fn baseline(out: &mut String, r: &Results) {
    let _ = writeln!(out, "## Transport baseline\n");
    let _ = writeln!(
        out,
        "The bare zeromq crate in two processes (`brine-bench baseline-server` and \
         `baseline-client`): one {}-byte PUB message to N SUB sockets, and each SUB's REQ of {} \
         bytes answered by one REP; from the PUB send until the N-th answer. No cryptography, no \
         storage. {} after a synchronising one.\n",
        crate::baseline::BODY,
        crate::baseline::BODY,
        count(r.settings.reps, "timed round")
    );
    let _ = writeln!(out, "| clients | median | min | max |\n|---|---|---|---|");
    for (n, outcome) in &r.sizes {
        let line = match outcome {
            SizeOutcome::NotRun(_) => missing_row(*n, SEE_PING, 3),
            SizeOutcome::Ran {
                baseline: Err(_), ..
            } => missing_row(*n, "failed (see Failures)", 3),
            SizeOutcome::Ran {
                baseline: Ok(rounds),
                ..
            } => format!("| {n} | {} |", duration_cells(rounds)),
        };
        let _ = writeln!(out, "{line}");
    }
    out.push('\n');
}

fn ingest(out: &mut String, r: &Results) {
    let _ = writeln!(out, "## Returns ingested\n");
    let _ = writeln!(
        out,
        "From the master's job store, for each timed ping: the ingest rate is (N − 1) returns \
         over the time from the first return stored to the last; end to end is N over the time \
         from publishing to the last return stored. The send spread (first to last return sent, \
         minion clock) against the store spread (master clock, the same clock on loopback) shows \
         whether returns waited for the master: when the store spread is much longer, the ingest \
         rate is the master's capacity. Median (min–max); millisecond clocks.\n"
    );
    let _ = writeln!(
        out,
        "| minions | ingest rate | end to end | send spread | store spread |\n|---|---|---|---|---|"
    );
    fleet_rows(out, r, 4, false, |f| {
        let spread = |values: Vec<f64>, fmt: fn(f64) -> String| match Summary::of(&values) {
            Some(s) => format!("{} ({}–{})", fmt(s.median), fmt(s.min), fmt(s.max)),
            None => "—".into(),
        };
        let ms = |x: f64| format!("{x:.0} ms");
        format!(
            "{} | {} | {} | {}",
            spread(f.rates.iter().map(|x| x.ingest).collect(), fmt_rate),
            spread(f.rates.iter().map(|x| x.end_to_end).collect(), fmt_rate),
            spread(
                f.rates.iter().map(|x| x.send_spread_ms as f64).collect(),
                ms
            ),
            spread(
                f.rates.iter().map(|x| x.store_spread_ms as f64).collect(),
                ms
            ),
        )
    });
}

fn cpu(out: &mut String, r: &Results) {
    let _ = writeln!(out, "## CPU per ping\n");
    let _ = writeln!(
        out,
        "CPU time (user + system, all threads) the master and the swarm used during the timed \
         pings, per ping (clock ticks of 10 ms, summed over the pings). Busy is both together \
         over the pings' wall time times the {} processors: near 100 % means the machine, not \
         brine's waiting, set the pace. The CLI's own CPU is not included.\n",
        r.machine.nproc
    );
    let _ = writeln!(
        out,
        "| minions | master | swarm | busy |\n|---|---|---|---|"
    );
    let nproc = r.machine.nproc.max(1) as f64;
    fleet_rows(out, r, 3, false, |f| {
        let runs = f.pings.len().max(1) as f64;
        let wall: Duration = f.pings.iter().sum();
        let busy = (f.master_cpu + f.swarm_cpu).as_secs_f64() / (wall.as_secs_f64() * nproc);
        format!(
            "{} | {} | {:.0} %",
            fmt_ms(millis(&f.master_cpu) / runs),
            fmt_ms(millis(&f.swarm_cpu) / runs),
            busy * 100.0
        )
    });
}

fn memory(out: &mut String, r: &Results) {
    let _ = writeln!(out, "## Master memory\n");
    let _ = writeln!(
        out,
        "The master's VmRSS one second after all minions connected (idle), its largest VmRSS \
         sampled every 10 ms during the timed pings, and VmHWM after them (its peak over its \
         life, the connection storm included). Open files and the swarm's VmRSS, measured \
         idle, are what the size check scales up to judge larger fleets.\n"
    );
    let _ = writeln!(
        out,
        "| minions | master idle | master during pings | master VmHWM | master open files | swarm open files | swarm VmRSS |\n|---|---|---|---|---|---|---|"
    );
    fleet_rows(out, r, 6, false, |f| {
        format!(
            "{} | {} | {} | {} | {} | {}",
            fmt_mb(f.master_idle_rss),
            fmt_mb(f.master_ping_rss),
            fmt_mb(f.master_hwm),
            f.usage.master_fds,
            f.usage.swarm_fds,
            fmt_mb(f.usage.swarm_rss)
        )
    });
}

fn connect(out: &mut String, r: &Results) {
    let _ = writeln!(out, "## Connect after master start\n");
    let _ = writeln!(
        out,
        "The swarm starts first and its minions back off (exponential from 100 ms, jittered, \
         capped at the shipped `retry_max` of 10 s); the master starts when the swarm says all \
         are started. Time from starting the master until `brine-run manage.up` lists all N \
         (connected and authenticated), polled every 50 ms. One measurement per size.\n"
    );
    let _ = writeln!(
        out,
        "| minions | all connected after | master started after the swarm |\n|---|---|---|"
    );
    fleet_rows(out, r, 2, false, |f| {
        format!(
            "{} | {}",
            fmt_ms(millis(&f.connect)),
            fmt_ms(millis(&f.master_down))
        )
    });
}

fn one_minion(out: &mut String, r: &Results) {
    let _ = writeln!(out, "## One minion daemon\n");
    match &r.minion {
        Ok(m) => {
            let _ = writeln!(
                out,
                "One `brine-minion` process, connected and idle for {:.1} s (the master's ticks \
                 every 5 s, its keepalives every 10 s): VmRSS at the end, utime + stime over the \
                 window (resolution {:.3} % of a core).\n",
                m.idle_window.as_secs_f64(),
                m.cpu_resolution * 100.0
            );
            let _ = writeln!(out, "| idle VmRSS | idle CPU |\n|---|---|");
            let _ = writeln!(
                out,
                "| {} | {:.3} % of a core |\n",
                fmt_mb(m.idle_rss),
                m.idle_cpu * 100.0
            );
        }
        Err(_) => {
            let _ = writeln!(out, "Failed (see Failures).\n");
        }
    }
}

fn cli(out: &mut String, r: &Results) {
    let _ = writeln!(out, "## CLI start-up\n");
    let _ = writeln!(
        out,
        "Process start to exit, {} after one untimed.\n",
        count(r.settings.cli_runs, "timed run")
    );
    let _ = writeln!(out, "| command | median | min | max |\n|---|---|---|---|");
    let row =
        |samples: Option<&[Duration]>| samples.map_or("failed | — | —".into(), duration_cells);
    let _ = writeln!(
        out,
        "| `brine --version` | {} |",
        row(r.version.as_deref().ok())
    );
    let _ = writeln!(
        out,
        "| `brine '*' test.ping`, 1 minion | {} |\n",
        row(r.minion.as_ref().ok().map(|m| m.pings.as_slice()))
    );
}

fn settings(out: &mut String, r: &Results) {
    let s = &r.settings;
    let _ = writeln!(out, "## Settings\n");
    let sizes: Vec<String> = s.sizes.iter().map(usize::to_string).collect();
    let _ = writeln!(
        out,
        "- fleet sizes {}; {} each; {} of each CLI measurement; the one minion idles {} s\n\
         - master: 127.0.0.1, `auto_accept = true`, state and control socket in a temporary \
         directory, the shipped defaults otherwise (`log_level = \"info\"`, ticks 5 s, \
         keepalives 10 s)\n\
         - minions: `trust_first_master = true`, the shipped defaults otherwise; the swarm logs \
         warnings only (`--log-level warn`), the one minion daemon at `info`\n\
         - every process on this one machine, over loopback\n",
        sizes.join(", "),
        count(s.reps, "timed repetition"),
        count(s.cli_runs, "timed run"),
        s.idle.as_secs()
    );
}

fn warnings(out: &mut String, r: &Results) {
    let warnings = r.warnings();
    if warnings.is_empty() {
        return;
    }
    let _ = writeln!(out, "## Warnings\n");
    let _ = writeln!(
        out,
        "Not failures of a measurement, but not as it should be either.\n"
    );
    for warning in warnings {
        let _ = writeln!(out, "```text\n{warning}\n```\n");
    }
}

fn failures(out: &mut String, r: &Results) {
    let failures = r.failures();
    if failures.is_empty() {
        return;
    }
    let _ = writeln!(out, "## Failures\n");
    for failure in failures {
        let _ = writeln!(out, "```text\n{failure}\n```\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_say_by_how_much() {
        assert_eq!(Bound::AtMost(100.0).judge(80.0), Verdict::Met);
        assert_eq!(
            Bound::AtMost(100.0).judge(250.0),
            Verdict::Missed("2.5× the limit".into())
        );
        assert_eq!(Bound::AtLeast(30_000.0).judge(45_000.0), Verdict::Met);
        assert_eq!(
            Bound::AtLeast(30_000.0).judge(15_000.0),
            Verdict::Missed("50 % of the target".into())
        );
    }

    /// A run with one fleet of 10, a size not run and a failed minion measurement.
    fn results() -> Results {
        let ms = Duration::from_millis;
        let fleet = Fleet {
            n: 10,
            master_down: ms(200),
            connect: ms(900),
            master_idle_rss: 20_000_000,
            master_ping_rss: 21_000_000,
            master_hwm: 22_000_000,
            pings: vec![ms(30), ms(20), ms(40)],
            master_cpu: ms(30),
            swarm_cpu: ms(60),
            rates: vec![],
            usage: crate::capacity::Usage {
                n: 10,
                master_fds: 150,
                swarm_fds: 100,
                master_rss: 20_000_000,
                swarm_rss: 10_000_000,
            },
            warnings: vec!["brine-swarm did not stop".into()],
        };
        Results {
            machine: crate::machine::Machine {
                nproc: 2,
                cpu_model: "a CPU".into(),
                kernel: "Linux 6".into(),
                memory_total: None,
                fd_limit: 20_000,
                date: "2026-11-25T13:02:01Z".into(),
                commit: "abc".into(),
                load: "0.10 0.20 0.30".into(),
            },
            command_line: "brine-bench --sizes 10,10000".into(),
            settings: crate::runner::Settings {
                sizes: vec![10, 10_000],
                reps: 3,
                cli_runs: 1,
                idle: Duration::from_secs(10),
                smoke: false,
                bin_dir: "/bin".into(),
            },
            version: Ok(vec![ms(3)]),
            minion: Err("the minion exited".into()),
            sizes: vec![
                (
                    10,
                    SizeOutcome::Ran {
                        baseline: Ok(vec![ms(2), ms(4), ms(3)]),
                        fleet: Ok(Box::new(fleet)),
                    },
                ),
                (10_000, SizeOutcome::NotRun("too many files".into())),
            ],
            largest_fit: 2983,
            load_end: "1.00 0.50 0.40".into(),
        }
    }

    #[test]
    fn the_report_shows_figures_reasons_and_failures() {
        let text = render(&results());
        assert!(
            text.contains("| 10 | 30.0 ms | 20.0 ms | 40.0 ms | 3.00 ms | 10.0× |"),
            "{text}"
        );
        assert!(
            text.contains("| 10000 | not run: too many files | | | | |"),
            "{text}"
        );
        assert!(
            text.contains(&format!("| 10000 | {SEE_PING} | |")),
            "{text}"
        );
        assert!(
            text.contains("| `brine --version`, median | ≤ 5 ms | 3.00 ms | met |"),
            "{text}"
        );
        assert!(
            text.contains("not measured: 10000 minions do not fit"),
            "{text}"
        );
        assert!(text.contains("| 10 | 10.0 ms | 20.0 ms | 50 % |"), "{text}");
        assert!(text.contains("## Warnings"), "{text}");
        assert!(
            text.contains("one minion daemon: the minion exited"),
            "{text}"
        );
        assert!(text.contains("3 timed runs after one untimed"), "{text}");
    }

    #[test]
    fn a_missing_size_fills_its_row() {
        assert_eq!(
            missing_row(10_000, "not run: x", 3),
            "| 10000 | not run: x | | |"
        );
    }
}
