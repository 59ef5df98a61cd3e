//! A brine cluster on loopback for one measurement: the configuration files, a real
//! `brine-master`, its minions (a `brine-swarm`, or one `brine-minion` daemon), and the CLI
//! commands run against it.
//!
//! The master listens on 127.0.0.1 on two ports that were free a moment before, keeps its
//! state and its control socket in the run's temporary directory, accepts every key
//! (`auto_accept`) and otherwise runs with the shipped defaults (ticks every 5 s, keepalives
//! every 10 s). Minions trust the first master they meet (`trust_first_master`): the swarm may
//! start before the master has made its key.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use tokio::process::Command;

use crate::proc::{excerpt, run_timed, Child, Timed};

/// The binaries a run uses, all found in one directory but `brine-minion`, which may come from
/// another build (the one for size).
#[derive(Debug, Clone)]
pub struct Bins {
    dir: PathBuf,
    minion: Option<PathBuf>,
}

/// What every run needs; `brine-swarm` is checked when a fleet starts.
const REQUIRED: [&str; 4] = ["brine", "brine-run", "brine-master", "brine-minion"];

impl Bins {
    /// The binaries in `dir` (`brine-minion` at `minion` when given); an error naming the
    /// first one missing.
    pub fn new(dir: &Path, minion: Option<&Path>) -> anyhow::Result<Self> {
        let bins = Self {
            dir: dir.to_owned(),
            minion: minion.map(Path::to_owned),
        };
        for name in REQUIRED {
            bins.path(name)?;
        }
        Ok(bins)
    }

    /// The path of `name`, which must exist.
    pub fn path(&self, name: &str) -> anyhow::Result<PathBuf> {
        let path = match &self.minion {
            Some(minion) if name == "brine-minion" => minion.clone(),
            _ => self.dir.join(name),
        };
        if !path.is_file() {
            bail!(
                "{} not found (build it: cargo build --release --workspace --bins; or give --bin-dir)",
                path.display()
            );
        }
        Ok(path)
    }
}

/// The master's two TCP ports.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub publish: u16,
    pub ret: u16,
}

impl Ports {
    /// Two loopback ports that were free a moment ago (both bound at once, so they differ).
    pub fn free() -> anyhow::Result<Self> {
        let a = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
        let b = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
        Ok(Self {
            publish: a.local_addr()?.port(),
            ret: b.local_addr()?.port(),
        })
    }
}

/// A path as a TOML basic string. JSON's string escapes are all valid TOML escapes.
fn toml_string(path: &Path) -> String {
    serde_json::to_string(&path.to_string_lossy()).expect("a string serializes")
}

/// A running `brine-master`.
#[derive(Debug)]
pub struct Master {
    child: Child,
    pub socket: PathBuf,
    pub state_dir: PathBuf,
}

impl Master {
    /// Writes `dir/master.toml` and starts the master; it is serving once
    /// [`Master::wait_ready`] returns.
    pub fn start(bins: &Bins, dir: &Path, ports: Ports) -> anyhow::Result<Self> {
        let socket = dir.join("master.sock");
        let state_dir = dir.join("master");
        let config = dir.join("master.toml");
        let text = format!(
            "interface = \"127.0.0.1\"\n\
             publish_port = {}\n\
             ret_port = {}\n\
             socket = {}\n\
             socket_group = \"\"\n\
             state_dir = {}\n\
             auto_accept = true\n\
             log_level = \"info\"\n",
            ports.publish,
            ports.ret,
            toml_string(&socket),
            toml_string(&state_dir),
        );
        std::fs::write(&config, text).with_context(|| format!("writing {}", config.display()))?;
        let mut command = Command::new(bins.path("brine-master")?);
        command.arg("--config").arg(&config);
        let child = Child::spawn("brine-master", command, &dir.join("master.log"), false)?;
        Ok(Self {
            child,
            socket,
            state_dir,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// The job store, read for the returns' timestamps.
    pub fn store(&self) -> PathBuf {
        self.state_dir.join("jobs.sqlite")
    }

    /// How many minions the master counts as connected (`brine-run manage.up`); `None` while
    /// its control socket does not answer.
    pub async fn connected(&self, bins: &Bins) -> anyhow::Result<Option<usize>> {
        let socket = self.socket.to_string_lossy();
        let run = run_timed(
            &bins.path("brine-run")?,
            &["--socket", &socket, "--out", "json", "manage.up"],
            Duration::from_secs(10),
        )
        .await?;
        if !run.status.success() {
            return Ok(None);
        }
        let ids: serde_json::Value = serde_json::from_str(&run.stdout).with_context(|| {
            format!(
                "brine-run manage.up printed no JSON: {}",
                excerpt(&run.stdout, 200)
            )
        })?;
        let ids = ids.as_array().ok_or_else(|| {
            anyhow!(
                "brine-run manage.up printed no list: {}",
                excerpt(&run.stdout, 200)
            )
        })?;
        Ok(Some(ids.len()))
    }

    /// Waits until the control socket answers.
    pub async fn wait_ready(&mut self, bins: &Bins, timeout: Duration) -> anyhow::Result<()> {
        self.wait_connected(bins, 0, timeout).await.map(|_| ())
    }

    /// Polls `manage.up` every 50 ms until at least `n` minions are connected; the time from
    /// the call. An error when the master exits or `timeout` passes first.
    pub async fn wait_connected(
        &mut self,
        bins: &Bins,
        n: usize,
        timeout: Duration,
    ) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let mut seen = None;
        loop {
            self.child.ensure_running()?;
            seen = self.connected(bins).await?.or(seen);
            if seen.is_some_and(|up| up >= n) {
                return Ok(started.elapsed());
            }
            if started.elapsed() > timeout {
                let answer = if seen.is_some() {
                    "the master answers"
                } else {
                    "the master's control socket never answered"
                };
                return Err(self.child.failure(&format!(
                    "{} of {n} minions connected after {timeout:?} ({answer})",
                    seen.unwrap_or(0)
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        self.child.ensure_running()
    }

    /// Stops the master with SIGTERM (killed after 15 s).
    pub async fn stop(self) -> anyhow::Result<()> {
        self.child.stop(Duration::from_secs(15)).await
    }
}

/// Writes a minion configuration for the master on `ports`, state under `state_dir`.
fn minion_config(
    path: &Path,
    id: &str,
    ports: Ports,
    state_dir: &Path,
    log_level: &str,
) -> anyhow::Result<()> {
    let text = format!(
        "id = \"{id}\"\n\
         master = \"127.0.0.1\"\n\
         publish_port = {}\n\
         ret_port = {}\n\
         state_dir = {}\n\
         trust_first_master = true\n\
         log_level = \"{log_level}\"\n",
        ports.publish,
        ports.ret,
        toml_string(state_dir),
    );
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// The id prefix of the swarm's minions: `bench-00001`, `bench-00002`, ...
pub const SWARM_ID: &str = "bench";

/// A running `brine-swarm` of `n` minions.
#[derive(Debug)]
pub struct Swarm {
    child: Child,
}

impl Swarm {
    /// Starts `n` minions of the master on `ports` (which need not run yet), logging warnings
    /// only, and waits up to `timeout` for the swarm to say they are all started.
    pub async fn start(
        bins: &Bins,
        dir: &Path,
        ports: Ports,
        n: usize,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let config = dir.join("swarm.toml");
        minion_config(&config, SWARM_ID, ports, &dir.join("minions"), "warn")?;
        let mut command = Command::new(bins.path("brine-swarm")?);
        command.arg("--config").arg(&config).args([
            "--minions",
            &n.to_string(),
            "--log-level",
            "warn",
        ]);
        let mut child = Child::spawn("brine-swarm", command, &dir.join("swarm.log"), true)?;
        child
            .next_line(timeout, "that its minions are started")
            .await?;
        Ok(Self { child })
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        self.child.ensure_running()
    }

    /// Stops the swarm with SIGTERM (killed after 30 s).
    pub async fn stop(self) -> anyhow::Result<()> {
        self.child.stop(Duration::from_secs(30)).await
    }
}

/// Starts one `brine-minion` daemon (`bench-minion`) of the master on `ports`, logging at the
/// shipped level.
pub fn start_minion(bins: &Bins, dir: &Path, ports: Ports) -> anyhow::Result<Child> {
    let config = dir.join("minion.toml");
    minion_config(&config, "bench-minion", ports, &dir.join("minion"), "info")?;
    let mut command = Command::new(bins.path("brine-minion")?);
    command.arg("--config").arg(&config);
    Child::spawn("brine-minion", command, &dir.join("minion.log"), false)
}

/// How long `brine` waits for returns (`-t`) on a fleet of `n`: far longer than a ping takes,
/// so that a slow ping shows as slow, not as missing minions.
fn ping_wait(n: usize) -> u64 {
    10 + n as u64 / 100
}

/// Runs `brine '*' test.ping --out json` and checks that it exited with 0 and printed
/// `true` for exactly `expected` minions; the wall time from its start to its exit.
pub async fn ping(bins: &Bins, socket: &Path, expected: usize) -> anyhow::Result<Duration> {
    let wait = ping_wait(expected);
    let socket = socket.to_string_lossy();
    let run = run_timed(
        &bins.path("brine")?,
        &[
            "--socket",
            &socket,
            "--out",
            "json",
            "-t",
            &wait.to_string(),
            "*",
            "test.ping",
        ],
        Duration::from_secs(wait + 30),
    )
    .await?;
    check_ping(&run, expected)?;
    Ok(run.elapsed)
}

/// Exit code 0 and a JSON object of `expected` ids, each `true`.
fn check_ping(run: &Timed, expected: usize) -> anyhow::Result<()> {
    run.ensure_success("brine '*' test.ping")?;
    let json: serde_json::Value = serde_json::from_str(&run.stdout)
        .with_context(|| format!("brine printed no JSON: {}", excerpt(&run.stdout, 200)))?;
    let returns = json.as_object().ok_or_else(|| {
        anyhow!(
            "brine printed no JSON object: {}",
            excerpt(&run.stdout, 200)
        )
    })?;
    let returned = returns.values().filter(|v| **v == true).count();
    if returns.len() != expected || returned != expected {
        bail!(
            "brine listed {} minions, {returned} of them returning true; expected {expected}",
            returns.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_toml_strings() {
        assert_eq!(toml_string(Path::new("/tmp/a b")), "\"/tmp/a b\"");
        assert_eq!(toml_string(Path::new("/tmp/q\"\\")), "\"/tmp/q\\\"\\\\\"");
    }

    #[test]
    fn free_ports_differ() {
        let ports = Ports::free().unwrap();
        assert_ne!(ports.publish, ports.ret);
    }

    #[test]
    fn the_minion_config_names_the_master_and_trusts_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        let ports = Ports { publish: 1, ret: 2 };
        minion_config(&path, "bench", ports, &dir.path().join("s t"), "warn").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("publish_port = 1\n"), "{text}");
        assert!(text.contains("trust_first_master = true"), "{text}");
    }
}
