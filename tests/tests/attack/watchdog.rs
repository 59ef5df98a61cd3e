//! systemd's watchdog, with the test standing in for systemd: it binds the datagram socket that
//! `NOTIFY_SOCKET` names, gives the daemon `WATCHDOG_USEC` (no `WATCHDOG_PID`: it cannot know
//! the pid before the start, and without it the watchdog is the process's own) and reads what
//! the daemon says. A real `brine-master` says `READY=1`, keeps saying `WATCHDOG=1` while it
//! serves minions and the CLI, and `STOPPING=1` when it stops. When one of its loops stalls
//! (through a fail point, as a lock held inside the zeromq crate would stall it), it stops
//! saying `WATCHDOG=1` while the process lives on, so systemd would restart it. The same for a
//! real `brine-minion` whose main loop stalls.
//!
//! Before the watchdog the daemons said nothing at all: every one of these tests failed at
//! its first `READY=1`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use brine_tests::fleet::{bounded, Fleet, MinionOptions, PROCESS_LIMIT};
use tokio::net::UnixDatagram;

/// `WATCHDOG_USEC`: the daemon checks its loops and says `WATCHDOG=1` every second.
const WATCHDOG: Duration = Duration::from_secs(2);
/// How long a healthy daemon is watched.
const HEALTHY: Duration = Duration::from_secs(3);
/// How long a stalled daemon must stay silent: systemd would have killed it three times over.
const SILENT: Duration = Duration::from_secs(6);
/// A fail point that stalls its loop for longer than any of these tests runs.
const STALL: &str = "sleep(60000)";

/// The test's end of the notification socket.
struct Systemd {
    socket: UnixDatagram,
    path: PathBuf,
}

impl Systemd {
    fn bind(dir: &Path, name: &str) -> Self {
        let path = dir.join(name);
        let socket = UnixDatagram::bind(&path).expect("binding the notification socket");
        Self { socket, path }
    }

    /// The environment systemd gives a `Type=notify` service with `WatchdogSec=`, and the fail
    /// point `failpoint` configured with `actions`.
    fn env(&self, failpoint: &str, actions: &str) -> Vec<(String, String)> {
        vec![
            ("NOTIFY_SOCKET".into(), self.path.display().to_string()),
            ("WATCHDOG_USEC".into(), WATCHDOG.as_micros().to_string()),
            ("FAILPOINTS".into(), format!("{failpoint}={actions}")),
        ]
    }

    /// The lines of the next message, or None when none comes within `limit`.
    async fn next(&self, limit: Duration) -> Option<Vec<String>> {
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(limit, self.socket.recv(&mut buf))
            .await
            .ok()?
            .expect("reading the notification socket");
        let text = String::from_utf8_lossy(&buf[..n]);
        Some(text.lines().map(str::to_owned).collect())
    }

    /// Reads until a message says `line`, within `limit`.
    async fn expect(&self, line: &str, limit: Duration) {
        bounded(&format!("the daemon to say {line}"), limit, async {
            while !self
                .next(limit)
                .await
                .is_some_and(|lines| lines.iter().any(|l| l == line))
            {}
        })
        .await
    }

    /// Reads for `HEALTHY` while `work` runs: `WATCHDOG=1` must come at least every
    /// `WATCHDOG_USEC` (or systemd would kill the daemon). Returns how many came.
    async fn alive_while(&self, work: impl std::future::Future<Output = ()>) -> usize {
        let until = Instant::now() + HEALTHY;
        tokio::pin!(work);
        let mut working = true;
        let mut pings = 0;
        while Instant::now() < until {
            tokio::select! {
                () = &mut work, if working => working = false,
                lines = self.next(WATCHDOG) => {
                    let lines = lines.unwrap_or_else(|| {
                        panic!("no WATCHDOG=1 for {WATCHDOG:?} from a healthy daemon ({pings} before)")
                    });
                    pings += usize::from(lines.iter().any(|l| l == "WATCHDOG=1"));
                }
            }
        }
        assert!(pings >= 2, "{pings} WATCHDOG=1 in {HEALTHY:?}");
        pings
    }

    /// Drops what was said so far.
    fn drain(&self) {
        let mut buf = vec![0u8; 4096];
        while self.socket.try_recv(&mut buf).is_ok() {}
    }

    /// After a stall: at most one `WATCHDOG=1` (from a check that came before the stall took
    /// hold), then none for `SILENT`.
    async fn falls_silent(&self) {
        let mut late = 0;
        while let Some(lines) = self.next(SILENT).await {
            if lines.iter().any(|l| l == "WATCHDOG=1") {
                late += 1;
                assert!(late <= 1, "WATCHDOG=1 kept coming after the stall");
            }
        }
    }
}

/// A master whose `failpoint` is set to `actions`, reporting to a new [`Systemd`].
async fn watched_master(failpoint: &str, actions: &str) -> (Fleet, Systemd) {
    let mut fleet = Fleet::new().await;
    let systemd = Systemd::bind(&fleet.dir, "master-notify.sock");
    fleet.master_env = systemd.env(failpoint, actions);
    fleet.start_master().await;
    systemd.expect("READY=1", PROCESS_LIMIT).await;
    (fleet, systemd)
}

/// The CLI's requests that publish nothing, for as long as the caller reads.
async fn cli_requests(fleet: &Fleet) {
    loop {
        let out = fleet.brine_run(&["manage.status"]).await;
        assert_eq!(out.code, 0, "brine-run manage.status: {out:?}");
    }
}

/// Asserts the master lives on and logged the loop that stopped.
fn stalled_but_alive(fleet: &mut Fleet, stuck: &str) {
    assert!(fleet.master_alive(), "the stalled master exited");
    assert!(
        logged_stop(&fleet.master_log(), stuck),
        "the master did not log that {stuck} stopped"
    );
}

/// Whether `log` has the watchdog's line saying that the loop `name` stopped turning.
fn logged_stop(log: &str, name: &str) -> bool {
    log.lines()
        .any(|l| l.contains("stopped turning") && l.contains(name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_master_says_ready_alive_while_it_serves_and_stopping() {
    let (mut fleet, systemd) = watched_master("master-pub-stall", "off").await;
    fleet.add_minion("web1", MinionOptions::default()).await;
    fleet.wait_connected(&["web1"]).await;
    let pings = systemd
        .alive_while(async {
            loop {
                fleet.ping(&["web1"]).await;
                let out = fleet.brine_run(&["manage.status"]).await;
                assert_eq!(out.code, 0, "brine-run manage.status: {out:?}");
            }
        })
        .await;
    eprintln!("{pings} WATCHDOG=1 while serving pings");
    let status = fleet.stop_master().await;
    assert!(status.success(), "the master stopped with {status}");
    systemd.expect("STOPPING=1", WATCHDOG).await;
}

/// The publish loop stalls on the first job it publishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_publish_loop_stops_the_watchdog() {
    let (mut fleet, systemd) = watched_master("master-pub-stall", STALL).await;
    fleet.add_minion("web1", MinionOptions::default()).await;
    fleet.wait_connected(&["web1"]).await;
    systemd.alive_while(cli_requests(&fleet)).await;

    systemd.drain();
    fleet.publish(30, &["web1", "test.ping"]).await;
    systemd.falls_silent().await;
    // A blocked worker may hold up the master's whole runtime, so the control socket may or
    // may not answer now; the watchdog's thread tells which loop stopped either way.
    stalled_but_alive(&mut fleet, "the publish loop");
}

/// The return port's receiving loop (and its thread) stalls on the first request a minion sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_return_port_stops_the_watchdog() {
    let (mut fleet, systemd) = watched_master("master-rep-stall", STALL).await;
    systemd.alive_while(cli_requests(&fleet)).await;

    systemd.drain();
    fleet.add_minion("web1", MinionOptions::default()).await;
    systemd.falls_silent().await;
    stalled_but_alive(&mut fleet, "the return port's receiving loop");
    // The return socket's loops run on threads of their own: the rest of the master serves on.
    assert!(
        fleet.try_minions().await.is_some(),
        "the control socket stopped answering too"
    );
}

/// The control socket's accept loop stalls on its third connection: the harness's start makes
/// the first two (its probe for an answer, then `brine-key master-finger`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_control_loop_stops_the_watchdog() {
    let (mut fleet, systemd) =
        watched_master("master-control-stall", &format!("2*off->{STALL}")).await;
    fleet.add_minion("web1", MinionOptions::default()).await;
    systemd.alive_while(std::future::pending()).await;

    systemd.drain();
    // Accepted, never served: the loop stalls on it.
    let handle = fleet.handle();
    let request = tokio::spawn(async move { handle.try_minions().await });
    systemd.falls_silent().await;
    assert!(
        !request.is_finished(),
        "the control loop served the request"
    );
    request.abort();
    stalled_but_alive(&mut fleet, "the control socket's accept loop");
}

/// The minion's main loop stalls on the first job it is offered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_minion_stops_the_watchdog() {
    let mut fleet = Fleet::new().await;
    fleet.start_master().await;
    let systemd = Systemd::bind(&fleet.dir, "minion-notify.sock");
    let options = MinionOptions {
        env: systemd.env("minion-loop-stall", STALL),
        ..MinionOptions::default()
    };
    fleet.add_minion("web1", options).await;
    systemd.expect("READY=1", PROCESS_LIMIT).await;
    fleet.wait_connected(&["web1"]).await;
    // Connected and idle: subscribed, keeping its session alive.
    systemd.alive_while(std::future::pending()).await;

    systemd.drain();
    fleet.publish(30, &["web1", "test.ping"]).await;
    systemd.falls_silent().await;
    assert!(fleet.minion_alive("web1"), "the stalled minion exited");
    assert!(
        logged_stop(&fleet.minion_log("web1"), "the main loop"),
        "the minion did not log that its main loop stopped"
    );
}
