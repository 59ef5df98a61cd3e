//! The end-to-end harness: real masters and minions, in this process, on ephemeral loopback
//! ports, each with its own temporary state; and a real client for the master's control socket.
//!
//! Timings are short (ticks and keepalives every 200 ms) so that liveness is decided within a
//! second. Every wait here is bounded: a hang fails the test instead of stalling it.

pub mod fleet;
pub mod postgres;
pub mod raw_minion;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use brine_master::{Master, MasterConfig};
use brine_minion::MinionConfig;
use brine_proto::control::{ControlEvent, ControlRequest, MinionState, PublishRequest};
use brine_proto::frame::ControlCodec;
use brine_proto::{FunctionName, Jid, Map, MinionId, Target, Value};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::task::JoinHandle;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

/// The longest any single step of a test may take.
pub const STEP: Duration = Duration::from_secs(20);

/// Awaits `fut`, failing the test if it takes longer than [`STEP`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// A master running in this process.
#[derive(Debug)]
pub struct TestMaster {
    pub publish_port: u16,
    pub ret_port: u16,
    /// What minions pin.
    pub fingerprint: String,
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    stop: CancellationToken,
    handle: JoinHandle<Result<(), brine_master::MasterError>>,
}

/// A master configuration for tests: loopback, given ports (0 = any), state under `dir`.
pub fn master_config(dir: &Path, publish_port: u16, ret_port: u16) -> MasterConfig {
    MasterConfig {
        interface: [127, 0, 0, 1].into(),
        publish_port,
        ret_port,
        socket: dir.join("master.sock"),
        state_dir: dir.join("master"),
        tick_interval: Duration::from_millis(200),
        keepalive_interval: Duration::from_millis(200),
        shutdown_grace: Duration::from_secs(2),
        // Tests accept keys by themselves unless they test key acceptance.
        auto_accept: true,
        ..MasterConfig::default()
    }
}

impl TestMaster {
    /// Starts a master with state under `dir`, on any free ports.
    pub async fn start(dir: &Path) -> Self {
        Self::start_with(master_config(dir, 0, 0)).await
    }

    /// Starts a master with state under `dir` on the given ports (a restart).
    pub async fn start_on(dir: &Path, publish_port: u16, ret_port: u16) -> Self {
        Self::start_with(master_config(dir, publish_port, ret_port)).await
    }

    pub async fn start_with(config: MasterConfig) -> Self {
        let socket = config.socket.clone();
        let state_dir = config.state_dir.clone();
        let master = within("binding the master", Master::bind(config))
            .await
            .expect("master binds");
        let stop = CancellationToken::new();
        let publish_port = master.publish_addr().port();
        let ret_port = master.ret_addr().port();
        let fingerprint = master.fingerprint().to_string();
        let token = stop.clone();
        let handle = tokio::spawn(master.run(async move { token.cancelled().await }));
        Self {
            publish_port,
            ret_port,
            fingerprint,
            socket,
            state_dir,
            stop,
            handle,
        }
    }

    /// Stops the master gracefully and waits for it.
    pub async fn stop(self) {
        self.stop.cancel();
        within("stopping the master", self.handle)
            .await
            .expect("master task")
            .expect("master stopped cleanly");
    }

    /// Sends one control request and collects every event until the master closes.
    pub async fn control(&self, request: ControlRequest) -> Vec<ControlEvent> {
        control(&self.socket, request).await
    }

    /// Asserts that `jobs.lookup` (without waiting) gives every expected minion of job `jid`
    /// exactly these states, sorted by id.
    pub async fn assert_job_states(&self, jid: &Jid, expected: &[(&str, MinionState)]) {
        let lookup = ControlRequest::LookupJob {
            jid: jid.clone(),
            wait: false,
        };
        let events = self.control(lookup).await;
        let states: Vec<(&str, MinionState)> = report(&events)
            .minions
            .iter()
            .map(|m| (m.id.as_str(), m.state))
            .collect();
        assert_eq!(states, expected, "the minions of job {jid}");
    }

    /// Publishes `fun` to `target` and waits for the job's end.
    pub async fn publish(
        &self,
        target: Target,
        fun: &str,
        arg: Vec<Value>,
        timeout: Duration,
    ) -> Vec<ControlEvent> {
        self.control(ControlRequest::Publish(PublishRequest {
            target,
            fun: FunctionName::new(fun).expect("a function name"),
            arg,
            kwarg: Map::new(),
            timeout_ms: timeout.as_millis() as u64,
            wait: true,
        }))
        .await
    }

    /// A configuration for a minion of this master, pinned to its key.
    pub fn minion_config(&self, dir: &Path, id: &str) -> MinionConfig {
        MinionConfig {
            master_fingerprint: self.fingerprint.clone(),
            ..minion_config(dir, id, self.publish_port, self.ret_port)
        }
    }

    /// Starts one minion per id, all pointed at this master.
    pub fn start_minions(&self, dir: &Path, ids: &[&str]) -> Vec<TestMinion> {
        ids.iter()
            .map(|id| TestMinion::start_with(self.minion_config(dir, id)))
            .collect()
    }

    /// Pings every minion and asserts that all `expected` of them returned `true`; returns
    /// the job's events.
    pub async fn ping_all(&self, expected: usize) -> Vec<ControlEvent> {
        let events = self
            .publish(
                Target::Glob("*".into()),
                "test.ping",
                vec![],
                Duration::from_secs(5),
            )
            .await;
        let report = report(&events);
        assert_eq!(report.minions.len(), expected, "{report:?}");
        for outcome in &report.minions {
            assert_eq!(outcome.state, MinionState::Returned, "{outcome:?}");
            assert_eq!(
                outcome.ret.as_ref().map(|r| &r.ret),
                Some(&Value::Bool(true))
            );
        }
        events
    }

    /// Waits until every one of `ids` is connected.
    pub async fn wait_connected(&self, ids: &[&str]) {
        within("minions connecting", async {
            loop {
                let events = self.control(ControlRequest::Minions {}).await;
                if let Some(ControlEvent::Minions { minions, .. }) = events.first() {
                    let all = ids
                        .iter()
                        .all(|id| minions.iter().any(|m| m.id.as_str() == *id && m.connected));
                    if all {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
    }
}

/// Sends one control request to the socket at `path` and collects the events.
pub async fn control(path: &Path, request: ControlRequest) -> Vec<ControlEvent> {
    within("a control request", async {
        let stream = tokio::net::UnixStream::connect(path)
            .await
            .expect("control socket connects");
        let mut conn = Framed::new(stream, ControlCodec);
        conn.send(Bytes::from(brine_proto::encode(&request)))
            .await
            .expect("request sent");
        let mut events = Vec::new();
        while let Some(frame) = conn.next().await {
            let frame = frame.expect("control frame");
            events.push(brine_proto::decode(&frame).expect("control event decodes"));
        }
        events
    })
    .await
}

/// A minion running in this process.
#[derive(Debug)]
pub struct TestMinion {
    pub id: MinionId,
    stop: CancellationToken,
    handle: JoinHandle<Result<(), brine_minion::MinionError>>,
}

/// A minion configuration for tests: state under `dir/<id>`, fast retries, trusting the first
/// master it meets (tests that know the master's fingerprint pin it instead).
pub fn minion_config(dir: &Path, id: &str, publish_port: u16, ret_port: u16) -> MinionConfig {
    MinionConfig {
        id: id.into(),
        master: "127.0.0.1".into(),
        publish_port,
        ret_port,
        state_dir: dir.join("minions").join(id),
        request_timeout: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(1),
        retry_max: Duration::from_millis(300),
        shutdown_grace: Duration::from_secs(2),
        trust_first_master: true,
        ..MinionConfig::default()
    }
}

impl TestMinion {
    /// Starts a minion for a master that may not run yet (trusting it on first use).
    pub fn start(dir: &Path, id: &str, publish_port: u16, ret_port: u16) -> Self {
        Self::start_with(minion_config(dir, id, publish_port, ret_port))
    }

    pub fn start_with(config: MinionConfig) -> Self {
        let id = config.minion_id().expect("valid test minion id");
        let stop = CancellationToken::new();
        let token = stop.clone();
        let handle = tokio::spawn(brine_minion::run(
            config,
            async move { token.cancelled().await },
        ));
        Self { id, stop, handle }
    }

    /// Stops the minion gracefully (it says goodbye) and waits for it.
    pub async fn stop(self) {
        self.stop.cancel();
        within("stopping a minion", self.handle)
            .await
            .expect("minion task")
            .expect("minion stopped cleanly");
    }

    /// Stops every minion of `minions`.
    pub async fn stop_all(minions: Vec<TestMinion>) {
        for minion in minions {
            minion.stop().await;
        }
    }
}

/// The events of a finished publish: (published minions, report).
pub fn report(events: &[ControlEvent]) -> &brine_proto::control::JobReport {
    events
        .iter()
        .find_map(|e| match e {
            ControlEvent::Done(report) => Some(report),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no done event in {events:?}"))
}

/// The path of a workspace binary (`brine`, `brine-run`, `brine-master`, `brine-minion`),
/// built on first use when a plain `cargo test` did not build it.
pub fn binary(name: &str) -> PathBuf {
    static BUILD: std::sync::Once = std::sync::Once::new();
    // target/debug/deps/<test exe> → target/debug/<name>
    let dir = std::env::current_exe()
        .expect("test executable path")
        .parent()
        .and_then(Path::parent)
        .expect("target directory")
        .to_path_buf();
    let path = dir.join(name);
    BUILD.call_once(|| {
        let status = std::process::Command::new(env!("CARGO"))
            // The whole workspace, so the daemons carry the features the tests enable (fail
            // points) and are the same binaries `scripts/test.sh` builds.
            .args(["build", "--workspace", "--bins"])
            .status()
            .expect("running cargo build");
        assert!(status.success(), "building the binaries failed");
    });
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// What a command printed and how it ended.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a CLI binary against `socket` with `args`, bounded by [`STEP`].
pub async fn cli(name: &str, socket: &Path, args: &[&str]) -> Output {
    let output = within(
        "a CLI command",
        tokio::process::Command::new(binary(name))
            .args(args)
            .env("BRINE_SOCKET", socket)
            .env("NO_COLOR", "1")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("CLI runs");
    Output {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A master and `ids` minions, all connected.
#[derive(Debug)]
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub master: TestMaster,
    pub minions: Vec<TestMinion>,
}

impl Cluster {
    pub async fn start(ids: &[&str]) -> Self {
        Self::start_with(ids, |_| {}).await
    }

    /// Like [`Cluster::start`], with the master's configuration changed by `adjust` first.
    pub async fn start_with(ids: &[&str], adjust: impl FnOnce(&mut MasterConfig)) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut config = master_config(dir.path(), 0, 0);
        adjust(&mut config);
        let master = TestMaster::start_with(config).await;
        let minions = master.start_minions(dir.path(), ids);
        master.wait_connected(ids).await;
        Self {
            dir,
            master,
            minions,
        }
    }

    /// Runs `brine` with `args` against this cluster's master.
    pub async fn brine(&self, args: &[&str]) -> Output {
        cli("brine", &self.master.socket, args).await
    }

    /// Runs `brine-run` with `args` against this cluster's master.
    pub async fn brine_run(&self, args: &[&str]) -> Output {
        cli("brine-run", &self.master.socket, args).await
    }

    /// Starts one more minion, its configuration changed by `adjust`, and waits until it is
    /// connected.
    pub async fn add_minion(&mut self, id: &str, adjust: impl FnOnce(&mut MinionConfig)) {
        let mut config = self.master.minion_config(self.dir.path(), id);
        adjust(&mut config);
        self.minions.push(TestMinion::start_with(config));
        self.master.wait_connected(&[id]).await;
    }

    /// Stops the minion with this id (it says goodbye).
    pub async fn stop_minion(&mut self, id: &str) {
        let at = self
            .minions
            .iter()
            .position(|m| m.id.as_str() == id)
            .expect("a minion with that id");
        self.minions.remove(at).stop().await;
    }

    pub async fn stop(self) {
        TestMinion::stop_all(self.minions).await;
        self.master.stop().await;
    }
}

/// Parses a JSON document printed by `--out json`.
pub fn json(output: &Output) -> serde_json::Value {
    serde_json::from_str(&output.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {output:?}"))
}

/// A loopback port that was free a moment ago (for a master that must start later).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The request that publishes `fun` and answers `published` without waiting for returns.
pub fn publish_no_wait(
    target: Target,
    fun: &str,
    arg: Vec<Value>,
    kwarg: Map,
    timeout: Duration,
) -> ControlRequest {
    ControlRequest::Publish(PublishRequest {
        target,
        fun: FunctionName::new(fun).expect("a function name"),
        arg,
        kwarg,
        timeout_ms: timeout.as_millis() as u64,
        wait: false,
    })
}

/// The jid of the one `published` event a [`publish_no_wait`] request is answered with.
pub fn published_jid(events: &[ControlEvent]) -> Jid {
    match events {
        [ControlEvent::Published { jid, .. }] => jid.clone(),
        other => panic!("not published: {other:?}"),
    }
}

/// `setpriv`, when the tests can run commands as other users.
pub fn setpriv() -> Option<PathBuf> {
    if !fleet::is_root() {
        eprintln!("note: not running as root, so the tools cannot run as other users: skipped");
        return None;
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("setpriv"))
            .find(|path| path.is_file())
    });
    if found.is_none() {
        eprintln!("note: setpriv (util-linux) is missing, so the tools cannot run as other users: skipped");
    }
    found
}

/// What `brine-minion --print-fingerprint` prints for a minion whose state is in `state_dir`
/// (its key is at `<state_dir>/pki/minion.key`, made now if the minion has none yet: what an
/// operator does on the minion's host before accepting its key).
pub async fn printed_fingerprint(id: &str, state_dir: &Path) -> String {
    let config = state_dir.with_extension("print.toml");
    let text = format!(
        "id = {:?}\nmaster = \"127.0.0.1\"\nstate_dir = {:?}\n",
        id,
        state_dir.to_str().expect("a UTF-8 temporary path")
    );
    std::fs::write(&config, text).unwrap();
    let output = within(
        "brine-minion --print-fingerprint",
        tokio::process::Command::new(binary("brine-minion"))
            .arg("--config")
            .arg(&config)
            .arg("--print-fingerprint")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("brine-minion runs");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// Whether the minion journal in `state_dir` (SQLite's main file or write-ahead log) holds
/// `needle`: a jid there means the minion started that job.
pub fn journal_mentions(state_dir: &Path, needle: &str) -> bool {
    ["journal.sqlite", "journal.sqlite-wal"].iter().any(|name| {
        std::fs::read(state_dir.join(name))
            .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
    })
}
