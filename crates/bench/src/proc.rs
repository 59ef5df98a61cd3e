//! The child processes of a run. Every daemon (master, swarm, minion, the baseline's halves) is
//! held by a [`Child`], which kills and reaps it on every exit path: an error, a panic, an
//! early return. Its stderr (and its stdout, unless read) goes to a log file whose last lines
//! become part of any error about it. Short CLI commands are timed by [`run_timed`].

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{ChildStdout, Command};

/// How long [`Drop`] waits for a killed process to be reaped.
const REAP_WAIT: Duration = Duration::from_secs(2);

/// A running daemon, killed and reaped when dropped.
#[derive(Debug)]
pub struct Child {
    name: String,
    pid: u32,
    inner: tokio::process::Child,
    log: PathBuf,
    stdout: Option<Lines<BufReader<ChildStdout>>>,
}

impl Child {
    /// Starts `command` as `name`, its stderr appended to `log`; its stdout is kept for
    /// [`Child::next_line`] when `read_stdout`, otherwise it goes to the log too. The
    /// environment's `RUST_LOG` is removed, so the configured log levels hold.
    pub fn spawn(
        name: &str,
        mut command: Command,
        log: &Path,
        read_stdout: bool,
    ) -> anyhow::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("creating {}", log.display()))?;
        let stdout = if read_stdout {
            Stdio::piped()
        } else {
            Stdio::from(file.try_clone().context("duplicating a log file handle")?)
        };
        command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::from(file))
            .env_remove("RUST_LOG")
            .kill_on_drop(true);
        let mut inner = command
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", command.as_std().get_program()))?;
        let pid = inner.id().context("a just-started process has a pid")?;
        let stdout = inner.stdout.take().map(|out| BufReader::new(out).lines());
        Ok(Self {
            name: name.to_owned(),
            pid,
            inner,
            log: log.to_owned(),
            stdout,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The next line the process prints on stdout, waiting at most `timeout`; `what` says what
    /// the line means, for the error.
    pub async fn next_line(&mut self, timeout: Duration, what: &str) -> anyhow::Result<String> {
        let lines = self
            .stdout
            .as_mut()
            .ok_or_else(|| anyhow!("{}'s stdout is not read", self.name))?;
        match tokio::time::timeout(timeout, lines.next_line()).await {
            Ok(Ok(Some(line))) => Ok(line),
            Ok(Ok(None)) => {
                let status = self.wait_briefly().await;
                Err(self.failure(&format!("{} ended before {what} ({status})", self.name)))
            }
            Ok(Err(err)) => Err(self.failure(&format!("reading {}'s output: {err}", self.name))),
            Err(_) => Err(self.failure(&format!(
                "{} did not print {what} within {timeout:?}",
                self.name
            ))),
        }
    }

    /// An error if the process has ended.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        match self.inner.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(self.failure(&format!("{} exited ({status})", self.name))),
            Err(err) => Err(self.failure(&format!("checking on {}: {err}", self.name))),
        }
    }

    /// Asks the process to stop (SIGTERM) and waits up to `grace`; then kills it. An error
    /// when it had to be killed or did not exit cleanly.
    pub async fn stop(mut self, grace: Duration) -> anyhow::Result<()> {
        if let Ok(Some(status)) = self.inner.try_wait() {
            return Err(self.failure(&format!("{} had already exited ({status})", self.name)));
        }
        // The pid is still ours: the process has not been reaped.
        let _ = kill(Pid::from_raw(self.pid as i32), Signal::SIGTERM);
        match tokio::time::timeout(grace, self.inner.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(self.failure(&format!("{} stopped with {status}", self.name))),
            Ok(Err(err)) => Err(anyhow!("waiting for {}: {err}", self.name)),
            Err(_) => Err(anyhow!(
                "{} did not stop within {grace:?} of SIGTERM; killed",
                self.name
            )),
        }
        // Drop kills and reaps whatever is left.
    }

    /// The exit status, if the process ends within a moment.
    async fn wait_briefly(&mut self) -> String {
        match tokio::time::timeout(Duration::from_secs(1), self.inner.wait()).await {
            Ok(Ok(status)) => status.to_string(),
            _ => "still running".into(),
        }
    }

    /// An error about this process that ends with the last lines of its log.
    pub fn failure(&self, message: &str) -> anyhow::Error {
        anyhow!("{message}\n{}", log_tail(&self.log, 15))
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Ok(None) = self.inner.try_wait() {
            let _ = self.inner.start_kill();
            let deadline = Instant::now() + REAP_WAIT;
            while matches!(self.inner.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// The last `lines` lines of a log file, indented, under a heading naming it.
fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => {
            let all: Vec<&str> = text.lines().collect();
            let tail = &all[all.len().saturating_sub(lines)..];
            format!(
                "  last lines of {}:\n{}",
                path.display(),
                tail.iter()
                    .map(|l| format!("    {l}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        }
        Ok(_) => format!("  ({} is empty)", path.display()),
        Err(err) => format!("  ({}: {err})", path.display()),
    }
}

/// How a timed command ended.
#[derive(Debug)]
pub struct Timed {
    /// From just before the process was started to its exit (its output read to the end).
    pub elapsed: Duration,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Timed {
    /// An error unless the command exited with 0.
    pub fn ensure_success(&self, what: &str) -> anyhow::Result<()> {
        if self.status.success() {
            return Ok(());
        }
        bail!(
            "{what} failed ({}): {}{}",
            self.status,
            self.stderr.trim(),
            if self.stdout.trim().is_empty() {
                String::new()
            } else {
                format!("\n  stdout: {}", excerpt(&self.stdout, 400))
            }
        )
    }
}

/// Runs `program args` to its end, at most `timeout` (killed after it), and times it.
pub async fn run_timed(program: &Path, args: &[&str], timeout: Duration) -> anyhow::Result<Timed> {
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .kill_on_drop(true);
    let started = Instant::now();
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", program.display()))?;
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| {
            anyhow!(
                "{} {} took longer than {timeout:?}",
                program.display(),
                args.join(" ")
            )
        })?
        .with_context(|| format!("waiting for {}", program.display()))?;
    Ok(Timed {
        elapsed: started.elapsed(),
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// The first `max` characters of `text`, on one line.
pub fn excerpt(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        format!("{}…", flat.chars().take(max).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_dropped_child_is_killed_and_reaped() {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new("sleep");
        command.arg("60");
        let child = Child::spawn("sleep", command, &dir.path().join("sleep.log"), false).unwrap();
        let pid = child.pid();
        drop(child);
        // Reaped: no process has that pid any more (not even a zombie).
        assert_eq!(
            kill(Pid::from_raw(pid as i32), None),
            Err(nix::errno::Errno::ESRCH)
        );
    }

    #[tokio::test]
    async fn a_silent_child_times_out_with_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new("sh");
        command.args(["-c", "echo starting >&2; sleep 60"]);
        let mut child =
            Child::spawn("quiet", command, &dir.path().join("quiet.log"), true).unwrap();
        let err = child
            .next_line(Duration::from_millis(300), "its ready line")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("did not print its ready line"), "{err}");
        assert!(err.contains("starting"), "{err}");
    }

    #[tokio::test]
    async fn timed_commands_report_status_and_output() {
        let timed = run_timed(
            Path::new("sh"),
            &["-c", "echo out; echo err >&2; exit 3"],
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert_eq!(timed.status.code(), Some(3));
        assert_eq!(timed.stdout, "out\n");
        assert!(timed
            .ensure_success("sh")
            .unwrap_err()
            .to_string()
            .contains("err"));
        let late = run_timed(Path::new("sleep"), &["5"], Duration::from_millis(100)).await;
        assert!(late.unwrap_err().to_string().contains("longer than"));
    }
}
