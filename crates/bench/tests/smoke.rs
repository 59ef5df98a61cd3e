//! `brine-bench --smoke` end to end: real master, swarm, minion and CLI processes (the debug
//! binaries of the workspace, built on first use), and a report with every section. No
//! figure is judged: CI machines are too noisy for thresholds.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The report's section headings, in order.
const SECTIONS: [&str; 11] = [
    "## Machine",
    "## Targets",
    "## test.ping wall time",
    "## Transport baseline",
    "## Returns ingested",
    "## CPU per ping",
    "## Master memory",
    "## Connect after master start",
    "## One minion daemon",
    "## CLI start-up",
    "## Settings",
];

/// The smoke run must finish well within this on debug binaries.
const LIMIT: Duration = Duration::from_secs(120);

/// target/debug, built with every binary of the workspace (brine-master, brine-swarm, ...).
fn bin_dir() -> PathBuf {
    // target/debug/deps/<test exe> → target/debug
    let dir = std::env::current_exe()
        .expect("test executable path")
        .parent()
        .and_then(Path::parent)
        .expect("target directory")
        .to_path_buf();
    let status = Command::new(env!("CARGO"))
        .args(["build", "--workspace", "--bins"])
        .status()
        .expect("running cargo build");
    assert!(status.success(), "building the binaries failed");
    dir
}

#[test]
fn the_smoke_run_reports_every_section() {
    let bins = bin_dir();
    let dir = tempfile::tempdir().expect("temporary directory");
    let report = dir.path().join("report.md");
    let child = Command::new(env!("CARGO_BIN_EXE_brine-bench"))
        .arg("--smoke")
        .arg("--bin-dir")
        .arg(&bins)
        .arg("--report")
        .arg(&report)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("brine-bench starts");
    let pid = Pid::from_raw(child.id() as i32);
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output()));
    let output = match finished.recv_timeout(LIMIT) {
        Ok(output) => output.expect("brine-bench output"),
        Err(_) => {
            // On SIGTERM it kills and reaps its own children before it exits.
            let _ = kill(pid, Signal::SIGTERM);
            if finished.recv_timeout(Duration::from_secs(10)).is_err() {
                let _ = kill(pid, Signal::SIGKILL);
            }
            panic!("brine-bench --smoke took longer than {LIMIT:?}");
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "brine-bench --smoke failed ({}):\n{stderr}\n{stdout}",
        output.status
    );

    let written = std::fs::read_to_string(&report).expect("the report file");
    assert_eq!(written, stdout, "the report file and stdout differ");
    let mut from = 0;
    for section in SECTIONS {
        let at = written[from..]
            .find(&format!("\n{section}\n"))
            .unwrap_or_else(|| panic!("no {section:?} (in order) in:\n{written}"));
        from += at + section.len();
    }
    assert!(written.contains("**Smoke run**"), "{written}");
    assert!(!written.contains("## Failures"), "{written}");
    // The fleet of 20 ran: its row has figures, not a reason.
    assert!(written.contains("\n| 20 | "), "{written}");
    assert!(!written.contains("not run"), "{written}");
}
