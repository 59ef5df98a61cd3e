//! The fault harness: a fleet of REAL `brine-master` and `brine-minion` processes, each with
//! its own TOML configuration and state in a temporary directory, that a test can kill -9,
//! restart, stop, freeze (SIGSTOP), cut off behind a TCP fault proxy, or start under
//! `LD_PRELOAD` tricks; and the real CLI (`brine`, `brine-run`, `brine-key`) or the control
//! socket to drive it.
//!
//! Every wait is bounded (a hang fails the test with what it was waiting for) and polls a
//! condition; no sleep stands in for synchronisation. Children are killed on drop; when a test
//! fails, the tail of every process's log is printed.
//!
//! Execution counting: `cmd.*` children see `BRINE_MINION_ID`, so a job made with
//! [`Handle::counting`] appends one line per execution to a file per (tag, minion), which
//! [`Handle::count`] reads.
//!
//! This module uses nothing else of `brine_tests`, so that it can be included as
//! `pub mod fleet;` in the library or through `#[path]` by a test file.
//!
//! Binaries: the fault tests need the fail points, which exist only when brine-master and
//! brine-minion are built with their `failpoints` feature. `cargo build --workspace --bins`
//! (what `scripts/test.sh` runs first) builds them so, because brine-tests, a member, enables
//! the feature; a `cargo build -p brine-master` does not, and replaces the binaries in
//! `target/debug` with ones without fail points. So the fleet builds with `--workspace`, links
//! the binaries into its own directory (an inode cargo will not change under it) and checks that
//! the fail points are in them, building again if another build won the race.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use brine_proto::control::{ControlEvent, ControlRequest, JobReport, MinionStatus};
use brine_proto::frame::ControlCodec;
use brine_proto::{Jid, Map, Target, Value};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::codec::Framed;

/// How often a condition is polled.
pub const POLL: Duration = Duration::from_millis(50);
/// The longest one request to the master or one CLI command may take.
pub const REQUEST_LIMIT: Duration = Duration::from_secs(30);
/// The longest a process may take to start serving or to die.
pub const PROCESS_LIMIT: Duration = Duration::from_secs(20);

/// Awaits `fut` for at most `limit`, failing the test with `what` when it takes longer.
pub async fn bounded<T>(what: &str, limit: Duration, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out after {limit:?}: {what}"))
}

/// Polls `probe` every [`POLL`] until it gives `Some`, for at most `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        let left = limit.saturating_sub(started.elapsed());
        if let Ok(Some(value)) = tokio::time::timeout(left, probe()).await {
            return value;
        }
        if started.elapsed() >= limit {
            panic!("timed out after {limit:?}: {what}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A small seeded generator (splitmix64): tests print the seed so a failure can be replayed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from `FAULT_SEED` when it is set, else from the clock and pid.
    pub fn from_env_or_time() -> (Self, u64) {
        let seed = std::env::var("FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                let nanos = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0);
                nanos ^ (u64::from(std::process::id()) << 32)
            });
        (Self(seed), seed)
    }

    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi` (`lo` when the range is empty).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            lo
        } else {
            lo + self.next_u64() % (hi - lo)
        }
    }

    pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.range(lo, hi))
    }
}

// ---------------------------------------------------------------------------------------------
// Binaries

/// The binaries a fleet runs, linked into its own directory.
#[derive(Debug, Clone)]
pub struct Bins {
    pub master: PathBuf,
    pub minion: PathBuf,
    pub brine: PathBuf,
    pub brine_run: PathBuf,
    pub brine_key: PathBuf,
}

/// (binary, a string only a build with fail points contains)
const BINARIES: [(&str, Option<&str>); 5] = [
    ("brine-master", Some("master-return-stored")),
    ("brine-minion", Some("minion-return-spooled")),
    ("brine", None),
    ("brine-run", None),
    ("brine-key", None),
];

/// `target/debug` (the test executable is `target/debug/deps/<name>`).
fn target_debug_dir() -> PathBuf {
    std::env::current_exe()
        .expect("test executable path")
        .parent()
        .and_then(Path::parent)
        .expect("target directory")
        .to_path_buf()
}

fn cargo_build() {
    let output = std::process::Command::new(env!("CARGO"))
        .args(["build", "--workspace", "--bins", "--quiet"])
        .output()
        .expect("running cargo build");
    assert!(
        output.status.success(),
        "building the binaries failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Whether the file at `path` contains `needle` (grep is fast on 100 MB debug binaries).
fn file_contains(path: &Path, needle: &str) -> bool {
    std::process::Command::new("grep")
        .args(["-qaF", needle])
        .arg(path)
        .status()
        .is_ok_and(|s| s.success())
}

impl Bins {
    /// Builds the binaries (once per process unless a check fails) and links them into `dir`.
    pub fn prepare(dir: &Path) -> Self {
        static BUILT: Mutex<bool> = Mutex::new(false);
        let source = target_debug_dir();
        std::fs::create_dir_all(dir).expect("creating the binaries directory");
        let mut why = String::new();
        for _attempt in 0..6 {
            {
                let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
                if !*built || !why.is_empty() {
                    cargo_build();
                    *built = true;
                }
            }
            why.clear();
            for (name, marker) in BINARIES {
                let from = source.join(name);
                let to = dir.join(name);
                let _ = std::fs::remove_file(&to);
                let linked =
                    std::fs::hard_link(&from, &to).or_else(|_| std::fs::copy(&from, &to).map(drop));
                if let Err(err) = linked {
                    why = format!("{} could not be linked: {err}", from.display());
                    break;
                }
                if let Some(marker) = marker {
                    if !file_contains(&to, marker) {
                        why = format!(
                            "{} has no fail points (it was built without the `failpoints` feature)",
                            from.display()
                        );
                        break;
                    }
                }
            }
            if why.is_empty() {
                return Self {
                    master: dir.join("brine-master"),
                    minion: dir.join("brine-minion"),
                    brine: dir.join("brine"),
                    brine_run: dir.join("brine-run"),
                    brine_key: dir.join("brine-key"),
                };
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("no usable binaries: {why}; another build without the `failpoints` feature keeps replacing them");
    }
}

// ---------------------------------------------------------------------------------------------
// Ports

/// A loopback port that is free now and lies below the kernel's ephemeral range, so that no
/// outgoing connection (a minion reconnecting while the master is down) can take it before the
/// master binds it again. Falls back to an ephemeral port when there is no room below.
pub fn quiet_port() -> u16 {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|w| w.parse::<u16>().ok())
        })
        .unwrap_or(32768);
    let (mut rng, _) = Rng::from_env_or_time();
    // Different processes start from different places; FAULT_SEED must not pin ports.
    rng = Rng::new(rng.next_u64() ^ u64::from(std::process::id()) ^ nanos_now());
    if low > 12000 {
        for _ in 0..500 {
            let port = rng.range(10000, u64::from(low)) as u16;
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn nanos_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64 ^ d.as_secs())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// The TCP fault proxy

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward everything.
    Pass,
    /// A silent partition: connections stay open (new ones are accepted and held) and nothing
    /// is forwarded either way. Bytes wait in the kernel's buffers, as TCP retransmission would
    /// deliver them after a real partition heals.
    Blackhole,
    /// Every connection, open or new, is reset (RST).
    Reset,
}

/// The state every relay of one port watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PortState {
    mode: Mode,
    /// Connections accepted under an earlier epoch are severed: silent forever.
    epoch: u64,
}

/// One proxied port.
#[derive(Debug)]
pub struct ProxyPort {
    pub port: u16,
    state: watch::Sender<PortState>,
    /// Bytes forwarded from the master to the minion.
    delivered: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl ProxyPort {
    async fn start(upstream: u16) -> Self {
        let (state, _) = watch::channel(PortState {
            mode: Mode::Pass,
            epoch: 0,
        });
        let listener = bind_quiet().await;
        let port = listener.local_addr().expect("proxy address").port();
        let upstream = SocketAddr::from(([127, 0, 0, 1], upstream));
        let delivered = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(accept_loop(
            listener,
            upstream,
            state.subscribe(),
            Arc::clone(&delivered),
        ));
        Self {
            port,
            state,
            delivered,
            task,
        }
    }

    /// How many bytes the master has sent the minion through this port so far.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    pub fn set(&self, mode: Mode) {
        self.state.send_modify(|s| s.mode = mode);
    }

    pub fn mode(&self) -> Mode {
        self.state.borrow().mode
    }

    /// A half-open failure (NAT state lost, a peer that vanished): every open connection goes
    /// silent for good, without a FIN or RST, while new connections pass.
    pub fn sever(&self) {
        self.state.send_modify(|s| s.epoch += 1);
    }
}

impl Drop for ProxyPort {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A userspace TCP proxy in front of the master's two ports, for one minion.
#[derive(Debug)]
pub struct Proxy {
    /// In front of the master's PUB port.
    pub publish: ProxyPort,
    /// In front of the master's REP port.
    pub ret: ProxyPort,
}

impl Proxy {
    /// Listens on two new quiet ports, forwarding to the master's `publish` and `ret` ports.
    pub async fn start(publish: u16, ret: u16) -> Self {
        Self {
            publish: ProxyPort::start(publish).await,
            ret: ProxyPort::start(ret).await,
        }
    }

    /// Both ports.
    pub fn set(&self, mode: Mode) {
        self.publish.set(mode);
        self.ret.set(mode);
    }

    /// Both ports.
    pub fn sever(&self) {
        self.publish.sever();
        self.ret.sever();
    }
}

async fn bind_quiet() -> TcpListener {
    for _ in 0..50 {
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", quiet_port())).await {
            return listener;
        }
    }
    panic!("no free port for the proxy");
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    state: watch::Receiver<PortState>,
    delivered: Arc<AtomicU64>,
) {
    // Dropping the set (when the task is aborted) aborts every relay.
    let mut relays = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((client, _)) = accepted {
                    let epoch = state.borrow().epoch;
                    relays.spawn(relay(client, upstream, state.clone(), epoch, Arc::clone(&delivered)));
                }
            }
            Some(_) = relays.join_next(), if !relays.is_empty() => {}
        }
    }
}

/// Waits until this connection may forward; false when it must be reset (or the proxy is
/// gone). A severed connection waits until a reset.
async fn until_pass(state: &mut watch::Receiver<PortState>, epoch: u64) -> bool {
    let ready = state
        .wait_for(|s| s.mode == Mode::Reset || (s.mode == Mode::Pass && s.epoch == epoch))
        .await
        .map(|s| s.mode == Mode::Pass);
    ready.unwrap_or(false)
}

async fn relay(
    client: TcpStream,
    upstream: SocketAddr,
    mut state: watch::Receiver<PortState>,
    epoch: u64,
    delivered: Arc<AtomicU64>,
) {
    if !until_pass(&mut state, epoch).await {
        let _ = client.set_zero_linger();
        return;
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        let _ = client.set_zero_linger();
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let mut watch_reset = state.clone();
    let reset = {
        let forward = async {
            tokio::join!(
                pump(
                    &mut client_read,
                    &mut server_write,
                    state.clone(),
                    epoch,
                    None
                ),
                pump(
                    &mut server_read,
                    &mut client_write,
                    state.clone(),
                    epoch,
                    Some(&delivered)
                ),
            )
        };
        tokio::select! {
            _ = forward => false,
            _ = watch_reset.wait_for(|s| s.mode == Mode::Reset) => true,
        }
    };
    if reset {
        let _ = client_read.as_ref().set_zero_linger();
        let _ = server_read.as_ref().set_zero_linger();
    }
}

/// Copies one direction while the connection may forward; holds (reads nothing) while it may
/// not; ends on end of stream, an error or a reset. Counts what it wrote into `count`.
async fn pump(
    from: &mut OwnedReadHalf,
    to: &mut OwnedWriteHalf,
    mut state: watch::Receiver<PortState>,
    epoch: u64,
    count: Option<&AtomicU64>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if !until_pass(&mut state, epoch).await {
            return;
        }
        let read = tokio::select! {
            read = from.read(&mut buf) => read,
            // The state changed: look at it again before reading (a read is cancel-safe).
            _ = state.changed() => continue,
        };
        let n = match read {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(n) => n,
        };
        // Read while passing, but a partition may have started since: hold the bytes.
        if !until_pass(&mut state, epoch).await {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
        if let Some(count) = count {
            count.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// tmpfs

/// A tmpfs mounted for the duration of a test (lazily unmounted on drop).
#[derive(Debug)]
pub struct Tmpfs {
    pub path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it, e.g. "2m") on `path`.
    pub fn mount(path: &Path, size: &str) -> Result<Self, String> {
        std::fs::create_dir_all(path).map_err(|e| e.to_string())?;
        let output = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(path)
            .output()
            .map_err(|e| format!("running mount: {e}"))?;
        if output.status.success() {
            Ok(Self {
                path: path.to_path_buf(),
            })
        } else {
            Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

/// Whether this process runs as root (read from /proc, no libc needed).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------------------------
// Talking to the master

/// What a command printed and how it ended.
#[derive(Debug, Clone)]
pub struct CliOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    /// The stdout as JSON (for `--out json`).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

/// One control request; Err when the master cannot be reached or breaks off.
pub async fn try_control(
    socket: &Path,
    request: &ControlRequest,
) -> Result<Vec<ControlEvent>, String> {
    let exchange = async {
        let stream = tokio::net::UnixStream::connect(socket)
            .await
            .map_err(|e| format!("connecting to {}: {e}", socket.display()))?;
        let mut conn = Framed::new(stream, ControlCodec);
        conn.send(Bytes::from(brine_proto::encode(request)))
            .await
            .map_err(|e| format!("sending: {e}"))?;
        let mut events = Vec::new();
        while let Some(frame) = conn.next().await {
            let frame = frame.map_err(|e| format!("reading: {e}"))?;
            events.push(brine_proto::decode(&frame).map_err(|e| format!("decoding: {e}"))?);
        }
        Ok(events)
    };
    tokio::time::timeout(REQUEST_LIMIT, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {REQUEST_LIMIT:?}")))
}

/// What a test needs to talk to the master, cloneable so that one task can publish while
/// another kills and restarts the master.
#[derive(Debug, Clone)]
pub struct Handle {
    pub socket: PathBuf,
    pub bins: Bins,
    /// Where execution counters are written.
    pub counters: PathBuf,
}

impl Handle {
    pub async fn control(&self, request: ControlRequest) -> Vec<ControlEvent> {
        try_control(&self.socket, &request)
            .await
            .unwrap_or_else(|e| panic!("control request {request:?}: {e}"))
    }

    /// Runs a CLI binary against the master, bounded by [`REQUEST_LIMIT`].
    pub async fn cli(&self, bin: &Path, args: &[&str]) -> CliOutput {
        let output = bounded(
            &format!("{} {}", bin.display(), args.join(" ")),
            REQUEST_LIMIT,
            Command::new(bin)
                .args(args)
                .env("BRINE_SOCKET", &self.socket)
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("the CLI runs");
        CliOutput {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    pub async fn brine(&self, args: &[&str]) -> CliOutput {
        self.cli(&self.bins.brine, args).await
    }

    pub async fn brine_run(&self, args: &[&str]) -> CliOutput {
        self.cli(&self.bins.brine_run, args).await
    }

    /// `brine --async -t <timeout> <args>`: the jid, or the CLI's output when it failed.
    pub async fn try_publish(&self, timeout_s: u64, args: &[&str]) -> Result<Jid, CliOutput> {
        let timeout = timeout_s.to_string();
        let mut all = vec!["--async", "-t", timeout.as_str()];
        all.extend_from_slice(args);
        let out = self.brine(&all).await;
        let jid = out
            .stdout
            .trim()
            .strip_prefix("Executed command with job ID: ")
            .and_then(|j| Jid::new(j.to_string()).ok());
        match jid {
            Some(jid) if out.code == 0 => Ok(jid),
            _ => Err(out),
        }
    }

    /// Like [`Handle::try_publish`], failing the test when the job was not published.
    pub async fn publish(&self, timeout_s: u64, args: &[&str]) -> Jid {
        self.try_publish(timeout_s, args)
            .await
            .unwrap_or_else(|out| panic!("publishing {args:?} failed: {out:?}"))
    }

    /// Publishes through the control socket (no argument parsing): the jid.
    pub async fn publish_control(
        &self,
        target: Target,
        fun: &str,
        arg: Vec<Value>,
        kwarg: Map,
        timeout: Duration,
    ) -> Jid {
        let request = crate::publish_no_wait(target, fun, arg, kwarg, timeout);
        crate::published_jid(&self.control(request).await)
    }

    /// The job's record now (`lookup_job` without wait); None when the master cannot say.
    pub async fn try_lookup(&self, jid: &Jid) -> Option<JobReport> {
        let request = ControlRequest::LookupJob {
            jid: jid.clone(),
            wait: false,
        };
        match try_control(&self.socket, &request)
            .await
            .ok()?
            .into_iter()
            .next()
        {
            Some(ControlEvent::Done(report)) => Some(report),
            _ => None,
        }
    }

    pub async fn lookup(&self, jid: &Jid) -> JobReport {
        self.try_lookup(jid)
            .await
            .unwrap_or_else(|| panic!("no record of job {jid}"))
    }

    /// `brine-run --out json jobs.lookup <jid> --wait`: the JSON document and the exit code,
    /// then the record with every state (from the control socket).
    pub async fn wait_job(&self, jid: &Jid) -> (CliOutput, JobReport) {
        let out = self
            .brine_run(&[
                "--out",
                "json",
                "jobs.lookup",
                jid.as_str(),
                "--wait",
                "-t",
                "25",
            ])
            .await;
        let report = self.lookup(jid).await;
        (out, report)
    }

    /// Polls the record until every expected minion's state satisfies `done`.
    pub async fn wait_states(
        &self,
        jid: &Jid,
        limit: Duration,
        done: impl Fn(&brine_proto::control::MinionOutcome) -> bool,
    ) -> JobReport {
        let last = Mutex::new(None);
        let found = tokio::time::timeout(limit, async {
            loop {
                if let Some(report) = self.try_lookup(jid).await {
                    if report.minions.iter().all(&done) {
                        return report;
                    }
                    *last.lock().unwrap() = Some(report);
                }
                tokio::time::sleep(POLL).await;
            }
        })
        .await;
        found.unwrap_or_else(|_| {
            panic!(
                "job {jid}: the states did not settle within {limit:?}; last record: {:#?}",
                last.lock().unwrap()
            )
        })
    }

    /// The registry's view of every minion; None when the master does not answer.
    pub async fn try_minions(&self) -> Option<Vec<MinionStatus>> {
        match try_control(&self.socket, &ControlRequest::Minions {})
            .await
            .ok()?
            .into_iter()
            .next()
        {
            Some(ControlEvent::Minions { minions, .. }) => Some(minions),
            _ => None,
        }
    }

    /// Waits until each of `ids` is connected (`true`) or not (`false`).
    pub async fn wait_connected_as(&self, ids: &[&str], connected: bool, limit: Duration) {
        let what = format!(
            "{ids:?} {} in the master's registry",
            if connected {
                "connected"
            } else {
                "not connected"
            }
        );
        eventually(&what, limit, || async {
            let minions = self.try_minions().await?;
            ids.iter()
                .all(|id| {
                    minions
                        .iter()
                        .any(|m| m.id.as_str() == *id && m.connected == connected)
                })
                .then_some(())
        })
        .await
    }

    pub async fn wait_connected(&self, ids: &[&str]) {
        self.wait_connected_as(ids, true, PROCESS_LIMIT).await
    }

    /// `brine --out json -L <ids> test.ping`: every one answers `true`.
    pub async fn ping(&self, ids: &[&str]) {
        let list = ids.join(",");
        let out = self
            .brine(&["--out", "json", "-t", "10", "-L", &list, "test.ping"])
            .await;
        assert_eq!(out.code, 0, "ping {ids:?}: {out:?}");
        let json = out.json();
        for id in ids {
            assert_eq!(json[*id], serde_json::json!(true), "ping {id}: {out:?}");
        }
    }

    /// A shell command that appends one line per execution to the counter of (`tag`, minion),
    /// after `before` (for example "sleep 1; ").
    pub fn counting(&self, tag: &str, before: &str) -> String {
        format!(
            "{before}echo x >> {}/{tag}-$BRINE_MINION_ID",
            self.counters.display()
        )
    }

    /// How many times the job tagged `tag` ran on `id`.
    pub fn count(&self, tag: &str, id: &str) -> usize {
        std::fs::read_to_string(self.counters.join(format!("{tag}-{id}")))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }
}

// ---------------------------------------------------------------------------------------------
// The fleet

/// Options of a minion.
#[derive(Debug, Clone, Default)]
pub struct MinionOptions {
    /// Reach the master through a [`Proxy`] of its own.
    pub proxied: bool,
    /// Extra environment (FAILPOINTS, LD_PRELOAD, FAKETIME, ...), kept across restarts.
    pub env: Vec<(String, String)>,
}

#[derive(Debug)]
struct MinionSlot {
    config: PathBuf,
    log: PathBuf,
    env: Vec<(String, String)>,
    proxy: Option<Proxy>,
    child: Option<Child>,
}

/// A master and its minions, all real processes.
#[derive(Debug)]
pub struct Fleet {
    pub handle: Handle,
    pub dir: PathBuf,
    pub publish_port: u16,
    pub ret_port: u16,
    pub master_state: PathBuf,
    /// What minions pin (`brine-key master-finger`).
    pub fingerprint: String,
    master_config: PathBuf,
    master_log: PathBuf,
    /// Environment of the next master start (FAILPOINTS, ...).
    pub master_env: Vec<(String, String)>,
    /// The master's `tick_interval` (and `keepalive_interval`) from its next start.
    pub tick_interval: String,
    /// More lines of master.toml, from its next start.
    pub master_extra: String,
    /// The master's open-file limit (soft and hard) from its next start.
    pub master_nofile: Option<u64>,
    /// The master's `socket_group` from its next start (none: the master's own group).
    pub socket_group: String,
    /// The master's `auto_accept` from its next start (true unless a test enrolls by hand).
    pub auto_accept: bool,
    master: Option<Child>,
    minions: BTreeMap<String, MinionSlot>,
    mounts: Vec<Tmpfs>,
    _tmp: tempfile::TempDir,
}

impl std::ops::Deref for Fleet {
    type Target = Handle;
    fn deref(&self) -> &Handle {
        &self.handle
    }
}

fn toml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn log_level() -> String {
    std::env::var("FAULT_LOG").unwrap_or_else(|_| "info".into())
}

/// Starts `bin --config config`, its stdout and stderr appended to `log`; under
/// `prlimit --nofile=N:N` when `nofile` is given (the process keeps its pid).
fn spawn(
    bin: &Path,
    config: &Path,
    log: &Path,
    env: &[(String, String)],
    nofile: Option<u64>,
) -> Child {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("opening a log file");
    let _ = writeln!(
        file,
        "==== fleet: starting {} (env {env:?}) at {:?}",
        bin.display(),
        SystemTime::now()
    );
    let err = file.try_clone().expect("log file handle");
    let mut command = match nofile {
        Some(n) => {
            let mut prlimit = Command::new("prlimit");
            prlimit.arg(format!("--nofile={n}:{n}")).arg("--").arg(bin);
            prlimit
        }
        None => Command::new(bin),
    };
    command
        .arg("--config")
        .arg(config)
        .env_remove("RUST_LOG")
        .env_remove("FAILPOINTS")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::from(file))
        .stderr(Stdio::from(err))
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()))
}

/// Sends `signal` ("KILL", "TERM", "STOP", "CONT") to `pid`.
pub fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .status()
        .expect("running kill");
    assert!(status.success(), "kill -s {signal} {pid} failed");
}

/// Sends `signal` to every process of the process group `pgid`; false when there is none.
pub fn signal_group(pgid: u32, signal: &str) -> bool {
    std::process::Command::new("kill")
        .args(["-s", signal, "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

async fn reap(child: &mut Child, what: &str) -> std::process::ExitStatus {
    bounded(what, PROCESS_LIMIT, child.wait())
        .await
        .expect("waiting for a child")
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Fleet {
    /// A master (not started yet): configuration and state in a new temporary directory,
    /// state under `master_state` when given (a tmpfs, for example).
    pub async fn new() -> Self {
        let tmp = tempfile::tempdir().expect("temporary directory");
        let dir = tmp.path().to_path_buf();
        let bins_dir = dir.join("bin");
        let bins = tokio::task::spawn_blocking(move || Bins::prepare(&bins_dir))
            .await
            .expect("preparing the binaries");
        let counters = dir.join("count");
        std::fs::create_dir_all(&counters).expect("counters directory");
        let socket = dir.join("master.sock");
        Self {
            handle: Handle {
                socket,
                bins,
                counters,
            },
            publish_port: quiet_port(),
            ret_port: quiet_port(),
            master_state: dir.join("master"),
            fingerprint: String::new(),
            master_config: dir.join("master.toml"),
            master_log: dir.join("master.log"),
            master_env: Vec::new(),
            tick_interval: "200ms".into(),
            master_extra: String::new(),
            master_nofile: None,
            socket_group: String::new(),
            auto_accept: true,
            master: None,
            minions: BTreeMap::new(),
            mounts: Vec::new(),
            dir,
            _tmp: tmp,
        }
    }

    /// A started master and minions `ids`, all connected.
    pub async fn start(ids: &[&str]) -> Self {
        let mut fleet = Self::new().await;
        fleet.start_master().await;
        for id in ids {
            fleet.add_minion(id, MinionOptions::default()).await;
        }
        fleet.wait_connected(ids).await;
        fleet
    }

    /// Keeps a tmpfs mounted until the fleet's processes are gone.
    pub fn keep_mount(&mut self, mount: Tmpfs) {
        self.mounts.push(mount);
    }

    fn write_master_config(&self) {
        let config = format!(
            "interface = \"127.0.0.1\"\npublish_port = {}\nret_port = {}\nsocket = {}\n\
             socket_group = {}\nstate_dir = {}\ntick_interval = {}\n\
             keepalive_interval = {}\nshutdown_grace = \"2s\"\nauto_accept = {}\n\
             log_level = {}\n{}\n",
            self.publish_port,
            self.ret_port,
            toml_str(&self.handle.socket.display().to_string()),
            toml_str(&self.socket_group),
            toml_str(&self.master_state.display().to_string()),
            toml_str(&self.tick_interval),
            toml_str(&self.tick_interval),
            self.auto_accept,
            toml_str(&log_level()),
            self.master_extra,
        );
        std::fs::write(&self.master_config, config).expect("writing master.toml");
    }

    pub fn master_pid(&self) -> Option<u32> {
        self.master.as_ref().and_then(Child::id)
    }

    /// Starts the master (same ports, same state) and waits until its control socket answers.
    pub async fn start_master(&mut self) {
        assert!(self.master.is_none(), "the master runs already");
        self.write_master_config();
        let child = spawn(
            &self.handle.bins.master,
            &self.master_config,
            &self.master_log,
            &self.master_env,
            self.master_nofile,
        );
        self.master = Some(child);
        let started = Instant::now();
        loop {
            if let Some(status) = self
                .master
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.master = None;
                panic!(
                    "the master exited at start ({status}):\n{}",
                    tail(&self.master_log, 30)
                );
            }
            if self.try_minions().await.is_some() {
                break;
            }
            assert!(
                started.elapsed() < PROCESS_LIMIT,
                "the master did not serve its control socket within {PROCESS_LIMIT:?}:\n{}",
                tail(&self.master_log, 30)
            );
            tokio::time::sleep(POLL).await;
        }
        if self.fingerprint.is_empty() {
            let out = self
                .handle
                .cli(&self.handle.bins.brine_key, &["master-finger"])
                .await;
            assert_eq!(out.code, 0, "brine-key master-finger: {out:?}");
            self.fingerprint = out.stdout.trim().to_owned();
            assert_eq!(self.fingerprint.len(), 32 * 3 - 1, "{out:?}");
        }
    }

    /// kill -9 of the master; returns once it is reaped.
    pub async fn kill_master(&mut self) {
        let mut child = self.master.take().expect("the master runs");
        if let Some(pid) = child.id() {
            signal(pid, "KILL");
        }
        reap(&mut child, "the killed master to exit").await;
    }

    /// SIGTERM to the master; returns once it has exited.
    pub async fn stop_master(&mut self) -> std::process::ExitStatus {
        let mut child = self.master.take().expect("the master runs");
        if let Some(pid) = child.id() {
            signal(pid, "TERM");
        }
        reap(&mut child, "the master to stop").await
    }

    pub fn sigstop_master(&self) {
        signal(self.master_pid().expect("the master runs"), "STOP");
    }

    pub fn sigcont_master(&self) {
        signal(self.master_pid().expect("the master runs"), "CONT");
    }

    /// Whether the master process is still alive.
    pub fn master_alive(&mut self) -> bool {
        self.master
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Adds and starts a minion (it connects by itself; see [`Handle::wait_connected`]).
    pub async fn add_minion(&mut self, id: &str, options: MinionOptions) {
        assert!(!self.fingerprint.is_empty(), "start the master first");
        let state_dir = self.minion_state_dir(id);
        std::fs::create_dir_all(&state_dir).expect("minion state directory");
        let proxy = if options.proxied {
            Some(Proxy::start(self.publish_port, self.ret_port).await)
        } else {
            None
        };
        let (publish_port, ret_port) = proxy
            .as_ref()
            .map_or((self.publish_port, self.ret_port), |p| {
                (p.publish.port, p.ret.port)
            });
        let config = self.dir.join(format!("minion-{id}.toml"));
        std::fs::write(
            &config,
            format!(
                "id = {}\nmaster = \"127.0.0.1\"\npublish_port = {publish_port}\n\
                 ret_port = {ret_port}\nstate_dir = {}\nrequest_timeout = \"1s\"\n\
                 connect_timeout = \"1s\"\nretry_max = \"300ms\"\nshutdown_grace = \"2s\"\n\
                 master_fingerprint = {}\nlog_level = {}\n",
                toml_str(id),
                toml_str(&state_dir.display().to_string()),
                toml_str(&self.fingerprint),
                toml_str(&log_level()),
            ),
        )
        .expect("writing a minion config");
        let slot = MinionSlot {
            config,
            log: self.dir.join(format!("minion-{id}.log")),
            env: options.env,
            proxy,
            child: None,
        };
        let previous = self.minions.insert(id.to_owned(), slot);
        assert!(previous.is_none(), "minion {id} exists already");
        self.start_minion(id).await;
    }

    fn slot(&mut self, id: &str) -> &mut MinionSlot {
        self.minions
            .get_mut(id)
            .unwrap_or_else(|| panic!("no minion {id}"))
    }

    /// Starts (again) the minion `id`, with the environment it was added with.
    pub async fn start_minion(&mut self, id: &str) {
        let bin = self.handle.bins.minion.clone();
        let slot = self.slot(id);
        assert!(slot.child.is_none(), "minion {id} runs already");
        slot.child = Some(spawn(&bin, &slot.config, &slot.log, &slot.env, None));
    }

    /// Replaces the environment the minion `id` gets at its next start.
    pub fn set_minion_env(&mut self, id: &str, env: Vec<(String, String)>) {
        self.slot(id).env = env;
    }

    pub fn minion_pid(&self, id: &str) -> Option<u32> {
        self.minions
            .get(id)
            .and_then(|s| s.child.as_ref())
            .and_then(Child::id)
    }

    /// Whether the minion process is still the one that was started.
    pub fn minion_alive(&mut self, id: &str) -> bool {
        self.slot(id)
            .child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// kill -9 of the minion `id`; returns once it is reaped.
    pub async fn kill_minion(&mut self, id: &str) {
        let mut child = self.slot(id).child.take().expect("the minion runs");
        if let Some(pid) = child.id() {
            signal(pid, "KILL");
        }
        reap(&mut child, "the killed minion to exit").await;
    }

    /// SIGTERM to the minion `id`; returns once it has exited.
    pub async fn stop_minion(&mut self, id: &str) -> std::process::ExitStatus {
        let mut child = self.slot(id).child.take().expect("the minion runs");
        if let Some(pid) = child.id() {
            signal(pid, "TERM");
        }
        reap(&mut child, "the minion to stop").await
    }

    /// Where the minion `id` keeps its state (its key in `pki/`), before or after it started.
    pub fn minion_state_dir(&self, id: &str) -> PathBuf {
        self.dir.join("minions").join(id)
    }

    /// The proxy between the minion `id` and the master.
    pub fn proxy(&self, id: &str) -> &Proxy {
        self.minions[id]
            .proxy
            .as_ref()
            .unwrap_or_else(|| panic!("minion {id} has no proxy"))
    }

    pub fn master_log(&self) -> String {
        std::fs::read_to_string(&self.master_log).unwrap_or_default()
    }

    pub fn minion_log(&self, id: &str) -> String {
        std::fs::read_to_string(&self.minions[id].log).unwrap_or_default()
    }

    /// A clone of the handle, for a task that publishes while another kills.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("FAULT_SHOW_LOGS").is_some() {
            eprintln!(
                "---- fleet in {}: master log (last lines)\n{}",
                self.dir.display(),
                tail(&self.master_log, 60)
            );
            for (id, slot) in &self.minions {
                eprintln!("---- minion {id} log (last lines)\n{}", tail(&slot.log, 30));
            }
            if std::env::var_os("FAULT_KEEP").is_some() && std::thread::panicking() {
                let kept = std::mem::replace(
                    &mut self._tmp,
                    tempfile::tempdir().expect("temporary directory"),
                );
                eprintln!("---- FAULT_KEEP: leaving {}", kept.keep().display());
            }
        }
        // Kill the processes before the mounts under them go and the directory is removed.
        if let Some(child) = self.master.as_mut() {
            let _ = child.start_kill();
        }
        for slot in self.minions.values_mut() {
            if let Some(child) = slot.child.as_mut() {
                let _ = child.start_kill();
            }
        }
        self.mounts.clear();
    }
}
