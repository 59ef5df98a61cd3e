//! End to end, with real processes: a `brine-master` (auto_accept) on loopback, a
//! `brine-swarm` of 5 minions trusting it on first use, and the real `brine` CLI pinging them
//! all; then SIGTERM, and the swarm stops cleanly.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use brine_tests::fleet::{bounded, Fleet, PROCESS_LIMIT};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running `brine-swarm`, killed on drop; its log is printed when the test fails.
struct SwarmProcess {
    child: Child,
    log: PathBuf,
}

impl SwarmProcess {
    /// Starts `brine-swarm --config <config> <args>`, its stderr in `log`.
    fn start(config: &Path, log: &Path, args: &[&str]) -> Self {
        let stderr = std::fs::File::create(log).expect("creating the swarm's log");
        let child = Command::new(env!("CARGO_BIN_EXE_brine-swarm"))
            .arg("--config")
            .arg(config)
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .expect("starting brine-swarm");
        Self {
            child,
            log: log.to_path_buf(),
        }
    }

    /// The first line the swarm prints on stdout.
    async fn first_line(&mut self) -> String {
        let stdout = self.child.stdout.as_mut().expect("piped stdout");
        let mut line = String::new();
        bounded(
            "the swarm's started line",
            PROCESS_LIMIT,
            BufReader::new(stdout).read_line(&mut line),
        )
        .await
        .expect("reading the swarm's stdout");
        line
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for SwarmProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- brine-swarm log\n{}", self.log());
        }
    }
}

fn write_swarm_config(fleet: &Fleet, state_dir: &Path) -> PathBuf {
    let path = fleet.dir.join("swarm.toml");
    std::fs::write(
        &path,
        format!(
            "id = \"e2e\"\nmaster = \"127.0.0.1\"\npublish_port = {}\nret_port = {}\n\
             state_dir = \"{}\"\nrequest_timeout = \"1s\"\nconnect_timeout = \"1s\"\n\
             retry_max = \"300ms\"\nshutdown_grace = \"2s\"\ntrust_first_master = true\n",
            fleet.publish_port,
            fleet.ret_port,
            state_dir.display()
        ),
    )
    .expect("writing the swarm's configuration");
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn a_swarm_of_five_answers_a_ping_from_the_real_cli_and_stops_on_sigterm() {
    let mut fleet = Fleet::new().await;
    fleet.start_master().await;
    let state_dir = fleet.dir.join("swarm");
    let config = write_swarm_config(&fleet, &state_dir);
    let mut swarm = SwarmProcess::start(
        &config,
        &fleet.dir.join("swarm.log"),
        &["--minions", "5", "--log-level", "info"],
    );
    let ids = [
        "e2e-00001",
        "e2e-00002",
        "e2e-00003",
        "e2e-00004",
        "e2e-00005",
    ];

    assert_eq!(
        swarm.first_line().await,
        "brine-swarm: 5 minions started (ids e2e-00001..e2e-00005)\n"
    );
    fleet.wait_connected(&ids).await;

    let socket = fleet.handle.socket.display().to_string();
    // No shell here: "*" is what `brine '*' test.ping` passes.
    let out = fleet
        .brine(&["--socket", &socket, "--out", "json", "*", "test.ping"])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let returns = out.json();
    let returned = returns.as_object().expect("a map of returns");
    assert_eq!(returned.len(), ids.len(), "{returns}");
    for id in ids {
        assert_eq!(returns[id], serde_json::json!(true), "{returns}");
    }

    // Each instance has its own state directory and its own key.
    let keys: std::collections::BTreeSet<Vec<u8>> = ids
        .iter()
        .map(|id| std::fs::read(state_dir.join(id).join("pki/minion.key")).expect("a key file"))
        .collect();
    assert_eq!(keys.len(), ids.len(), "instances share keys");

    let pid = swarm.child.id().expect("the swarm runs") as i32;
    kill(Pid::from_raw(pid), Signal::SIGTERM).expect("sending SIGTERM");
    let status = bounded(
        "the swarm to stop after SIGTERM",
        PROCESS_LIMIT,
        swarm.child.wait(),
    )
    .await
    .expect("waiting for the swarm");
    assert_eq!(status.code(), Some(0), "{status}");

    // Every instance said goodbye: the master no longer counts any as connected.
    fleet
        .wait_connected_as(&ids, false, Duration::from_secs(10))
        .await;
    // Each instance logs inside a span naming it, its link task included.
    let log = swarm.log();
    for id in ids {
        let span = format!("minion{{id={id}}}");
        assert!(
            log.lines()
                .any(|l| l.contains(&span) && l.contains("brine_minion::link")),
            "no link log line in the span {span}"
        );
    }
}

/// A configuration for a master that is not there (nothing listens on port 9).
fn write_lonely_config(dir: &Path, state_dir: &Path) -> PathBuf {
    let path = dir.join("swarm.toml");
    std::fs::write(
        &path,
        format!(
            "id = \"lone\"\nmaster = \"127.0.0.1\"\npublish_port = 9\nret_port = 9\n\
             state_dir = \"{}\"\nrequest_timeout = \"1s\"\nconnect_timeout = \"1s\"\n\
             retry_max = \"300ms\"\nshutdown_grace = \"1s\"\ntrust_first_master = true\n",
            state_dir.display()
        ),
    )
    .expect("writing the swarm's configuration");
    path
}

#[tokio::test]
async fn one_failing_minion_is_logged_with_its_id_and_the_others_go_on() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let state_dir = dir.path().join("state");
    let pki = state_dir.join("lone-00002").join("pki");
    std::fs::create_dir_all(&pki).expect("creating a pki directory");
    std::fs::write(pki.join("minion.key"), "not a key\n").expect("writing a broken key");
    let config = write_lonely_config(dir.path(), &state_dir);
    let mut swarm = SwarmProcess::start(&config, &dir.path().join("swarm.log"), &["-n", "3"]);

    assert_eq!(
        swarm.first_line().await,
        "brine-swarm: 3 minions started (ids lone-00001..lone-00003)\n"
    );
    let failed = brine_tests::fleet::eventually(
        "the broken minion's error in the log",
        PROCESS_LIMIT,
        || async {
            swarm
                .log()
                .lines()
                .find(|l| l.contains("ERROR minion{id=lone-00002}"))
                .map(str::to_owned)
        },
    )
    .await;
    assert!(failed.contains("this minion failed"), "{failed}");
    assert!(
        matches!(swarm.child.try_wait(), Ok(None)),
        "the swarm stopped"
    );

    let pid = swarm.child.id().expect("the swarm runs") as i32;
    kill(Pid::from_raw(pid), Signal::SIGTERM).expect("sending SIGTERM");
    let status = bounded("the swarm to stop", PROCESS_LIMIT, swarm.child.wait())
        .await
        .expect("waiting for the swarm");
    assert_eq!(status.code(), Some(0), "{status}");
}

#[tokio::test]
async fn when_every_minion_fails_the_swarm_exits_1_without_a_started_line() {
    let dir = tempfile::tempdir().expect("temporary directory");
    // A file where the state directory should be: no instance can keep its state.
    let state_dir = dir.path().join("state");
    std::fs::write(&state_dir, "").expect("writing a file");
    let config = write_lonely_config(dir.path(), &state_dir);
    let mut swarm = SwarmProcess::start(&config, &dir.path().join("swarm.log"), &["-n", "3"]);

    let status = bounded("the swarm to give up", PROCESS_LIMIT, swarm.child.wait())
        .await
        .expect("waiting for the swarm");
    assert_eq!(status.code(), Some(1), "{status}");
    assert_eq!(swarm.first_line().await, "");
    let log = swarm.log();
    assert!(
        log.ends_with("brine-swarm: every one of the 3 minions failed (see the log)\n"),
        "{log}"
    );
    for id in ["lone-00001", "lone-00002", "lone-00003"] {
        assert!(log.contains(&format!("ERROR minion{{id={id}}}")), "{log}");
    }
}

/// A job for more than 16 minions goes once to everyone, its header listing the 300 it is for:
/// all of them answer, once each. (Past 2048, each minion asks the master first: a swarm that
/// large takes minutes in a debug build, so that path is the minion's unit test and the
/// benchmark's.)
#[tokio::test(flavor = "multi_thread")]
async fn a_job_for_hundreds_of_minions_is_answered_by_all() {
    const COUNT: usize = 300;
    let mut fleet = Fleet::new().await;
    fleet.start_master().await;
    let state_dir = fleet.dir.join("swarm");
    let config = write_swarm_config(&fleet, &state_dir);
    let minions = COUNT.to_string();
    let mut swarm = SwarmProcess::start(
        &config,
        &fleet.dir.join("swarm.log"),
        &["--minions", &minions, "--ramp-per-sec", "1000"],
    );
    let started = swarm.first_line().await;
    assert!(
        started.starts_with(&format!("brine-swarm: {COUNT} minions started")),
        "{started}{}",
        swarm.log()
    );
    let ids: Vec<String> = (1..=COUNT).map(|n| format!("e2e-{n:05}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    fleet
        .wait_connected_as(&ids, true, Duration::from_secs(120))
        .await;

    let out = bounded(
        "a ping of the swarm",
        Duration::from_secs(90),
        fleet.brine(&["--out", "json", "-t", "60", "*", "test.ping"]),
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let returns = out.json();
    let returned = returns.as_object().expect("a map of returns");
    assert_eq!(returned.len(), COUNT, "{returns}");
    assert!(
        returned.values().all(|v| v == &serde_json::json!(true)),
        "{returns}"
    );
}
