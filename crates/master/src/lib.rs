//! The brine master: publishes jobs to minions, collects their returns, serves the local CLI.
//!
//! [`Master::bind`] validates nothing further (the config is already valid), opens the job
//! store, binds the PUB and ROUTER sockets and the control socket; [`Master::run`] serves until the
//! shutdown future resolves. Four tasks share one [`Shared`] state:
//!
//! - [`publish`]: owns the PUB socket; sends jobs and the heartbeat tick.
//! - [`rep`]: owns the return port (a REQ-compatible ROUTER); answers minion requests, many at
//!   a time, quickly.
//! - [`control`]: the unix socket; one task per CLI connection.
//! - the job timers ([`Shared::track_deadline`]) and the pruner.
//!
//! Beside them, systemd's watchdog ([`brine_daemon::watchdog`]) is told the master is alive
//! only while the publish loop, the return port's receiving loop, the control socket's accept
//! loop and every zeromq socket thread keep turning.

pub mod acl;
pub mod audit;
pub mod config;
pub mod control;
pub mod jobs;
pub mod keyring;
pub mod large_requests;
pub mod publish;
pub mod registry;
pub mod rep;
pub mod sessions;
pub mod socket_thread;
pub mod store;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use brine_crypto::{GroupKey, KeyError, MasterKeys};
use brine_daemon::watchdog::Watchdog;

use brine_guard::{Guard, GuardLimits};
use brine_proto::{now_ms, Jid};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};
use zeromq::{PubSocket, RouterSocket, Socket};

pub use config::MasterConfig;
use jobs::JobHub;
use registry::Registry;
use sessions::Sessions;
use socket_thread::SocketThread;
use store::{Store, StoreError, StoreHandle};

/// Why the master could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("binding {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: String,
        source: std::io::Error,
    },
    #[error("starting {what}: {source}")]
    Thread {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("starting the {what} socket: {source}")]
    Zmq {
        what: &'static str,
        source: zeromq::ZmqError,
    },
    #[error("control socket {path}: {reason}")]
    ControlSocket { path: PathBuf, reason: String },
    #[error("master keys: {0}")]
    Keys(#[from] KeyError),
}

/// State shared by the master's tasks.
#[derive(Debug)]
pub struct Shared {
    pub config: MasterConfig,
    pub store: StoreHandle,
    pub registry: Registry,
    /// The configuration's nodegroups, as compound expressions.
    pub nodegroups: BTreeMap<String, String>,
    pub jobs: JobHub,
    pub publisher: mpsc::Sender<publish::Outgoing>,
    pub cancel: CancellationToken,
    pub tasks: TaskTracker,
    /// systemd's watchdog: each loop it watches beats a heartbeat of it.
    pub watchdog: Arc<Watchdog>,
    /// The master's identity: Noise static key and publication signing key.
    pub keys: MasterKeys,
    group: RwLock<Arc<GroupKey>>,
    sessions: Mutex<Sessions>,
}

impl Shared {
    /// The minions' Noise sessions.
    pub fn sessions(&self) -> MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The group key publications are sealed with now.
    pub fn group_key(&self) -> Arc<GroupKey> {
        Arc::clone(&self.group.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Replaces the group key with a new epoch (stored first): a minion that has been rejected
    /// or deleted cannot read what is published from now on. Accepted minions fetch the new
    /// key over their session when they see its epoch.
    pub async fn rotate_group_key(&self) -> Result<(), StoreError> {
        let next = GroupKey::generate(self.group_key().epoch() + 1);
        let (epoch, key) = (next.epoch(), next.key_bytes());
        self.store
            .call(move |s| s.put_group_key(epoch, &key, now_ms()))
            .await?;
        *self.group.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
        info!(epoch, "group key rotated");
        Ok(())
    }

    /// Ends every trace of `id` in the running master: sessions and liveness. Its key state
    /// and job records stay in the store.
    pub fn disconnect(&self, id: &brine_proto::MinionId) {
        self.sessions().end(id);
        self.registry.forget(id);
    }

    /// When a job whose deadline is `deadline_ms` must end at the latest: a minion may start
    /// it up to the deadline and run it for `timeout_ms`; its return then has a liveness window
    /// to arrive.
    pub fn time_limit_ms(&self, deadline_ms: u64, timeout_ms: u64) -> u64 {
        deadline_ms + timeout_ms + self.config.liveness_window().as_millis() as u64
    }

    /// Ends `jid` at its deadline (or at once when the deadline has passed): every expected
    /// minion without a return is settled, except those still running the job, which it waits
    /// for until they return, disconnect, or `time_limit_ms` passes. A job whose minions have
    /// all returned ends earlier, through [`Shared::end_job`].
    pub fn track_deadline(self: &Arc<Self>, jid: Jid, deadline_ms: u64, time_limit_ms: u64) {
        let shared = Arc::clone(self);
        self.tasks.spawn(async move {
            let wait = Duration::from_millis(deadline_ms.saturating_sub(now_ms()));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shared.cancel.cancelled() => return,
            }
            let mut told = false;
            loop {
                let time_is_up = now_ms() >= time_limit_ms;
                let connected = |id: &brine_proto::MinionId| shared.registry.is_connected(id);
                let Some(settlement) = shared.jobs.settle(&jid, connected, time_is_up) else {
                    return; // every minion returned: the job has ended
                };
                if settlement.running.is_empty() {
                    shared.end_job(&jid).await;
                    return;
                }
                if !settlement.settled.is_empty() {
                    let (key, states) = (jid.clone(), settlement.settled);
                    if let Err(err) = shared.store.call(move |s| s.settle(&key, &states)).await {
                        // The job's end writes them again.
                        warn!(%jid, cause = %err, "could not store final states");
                    }
                }
                if !told {
                    info!(%jid, running = settlement.running.len(), "deadline passed; waiting for the minions still running the job");
                    shared.jobs.still_running(&jid, settlement.running, time_limit_ms);
                    told = true;
                }
                let left = Duration::from_millis(time_limit_ms.saturating_sub(now_ms()));
                // Liveness changes at keepalive granularity: look again then, or at the limit.
                tokio::select! {
                    _ = tokio::time::sleep(left.min(shared.config.keepalive_interval)) => {}
                    _ = shared.cancel.cancelled() => return,
                }
            }
        });
    }

    /// Writes every expected minion's final state and tells the watchers. Idempotent.
    pub async fn end_job(self: &Arc<Self>, jid: &Jid) {
        let Some(states) = self.jobs.final_states(jid) else {
            return;
        };
        let key = jid.clone();
        match self.store.call(move |s| s.finalize(&key, &states)).await {
            Ok(()) => self.jobs.close(jid),
            Err(err) => {
                // The job stays open in the store; the next start finalizes it.
                error!(%jid, cause = %err, "could not store the final states of a job");
                self.jobs.close(jid);
            }
        }
    }
}

/// A master with its sockets bound, ready to [`run`](Master::run).
pub struct Master {
    shared: Arc<Shared>,
    publish_rx: mpsc::Receiver<publish::Outgoing>,
    pub_socket: PubSocket,
    pub_threads: [SocketThread; 2],
    rep_socket: RouterSocket,
    rep_connections: SocketThread,
    control: tokio::net::UnixListener,
    publish_addr: SocketAddr,
    ret_addr: SocketAddr,
}

impl std::fmt::Debug for Master {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Master")
            .field("publish_addr", &self.publish_addr)
            .field("ret_addr", &self.ret_addr)
            .finish_non_exhaustive()
    }
}

/// Open files one connected minion costs the master: on each of the two ports, the guard's
/// end of the minion's connection, the guard's connection to the zeromq socket, and the
/// socket's end of it.
const FILES_PER_MINION: u64 = 6;
/// Open files kept for everything else: the store, the audit log, CLI clients, listeners.
const FILES_RESERVED: u64 = 512;

/// How many minions may be connected at once without the master running out of open files
/// (the guards refuse connections beyond it, so the master never does).
fn minion_capacity(open_file_limit: Option<u64>) -> usize {
    match open_file_limit {
        Some(limit) => (limit.saturating_sub(FILES_RESERVED) / FILES_PER_MINION).max(1) as usize,
        None => usize::MAX,
    }
}

/// Binds a TCP listener with a backlog of 1024 (std's default of 128 drops connection storms).
fn listen(addr: SocketAddr, what: &'static str) -> Result<std::net::TcpListener, MasterError> {
    brine_guard::listen(addr).map_err(|source| MasterError::Bind {
        what,
        addr: addr.to_string(),
        source,
    })
}

/// Binds a zeromq socket on a loopback port that only its guard connects to.
async fn bind_behind_guard<S: Socket>(
    socket: &mut S,
    what: &'static str,
) -> Result<SocketAddr, MasterError> {
    let inner = listen(SocketAddr::from(([127, 0, 0, 1], 0)), what)?;
    let addr = inner.local_addr().map_err(|source| MasterError::Bind {
        what,
        addr: "127.0.0.1:0".into(),
        source,
    })?;
    socket
        .bind_listener(inner)
        .await
        .map_err(|source| MasterError::Zmq { what, source })?;
    Ok(addr)
}

impl Master {
    /// Opens the store and binds every socket.
    pub async fn bind(config: MasterConfig) -> Result<Self, MasterError> {
        let keys = MasterKeys::load_or_create(&config.pki_dir())?;
        let mut store = Store::open(&config.state_dir)?;
        let known = store.minions()?;
        let stored = store
            .group_key()?
            .and_then(|(epoch, bytes)| Some((epoch, <[u8; 32]>::try_from(bytes.as_slice()).ok()?)));
        let group = match stored {
            Some((epoch, key)) => GroupKey::from_bytes(epoch, key),
            None => {
                let group = GroupKey::generate(1);
                store.put_group_key(group.epoch(), &group.key_bytes(), now_ms())?;
                group
            }
        };
        let store = StoreHandle::spawn(store).map_err(|source| MasterError::Thread {
            what: "the job store's thread",
            source,
        })?;

        // The public ports belong to the ZMTP guards; the zeromq sockets listen on loopback
        // behind them (see brine_guard: the crate alone trusts its peers' frame sizes).
        let cancel = CancellationToken::new();
        let tasks = TaskTracker::new();
        let watchdog = Arc::new(Watchdog::from_env());
        // The publish socket's fan-out task runs on one thread of its own, its connection
        // tasks (subscriptions, peers coming and going) on another (see socket_thread):
        // the crate takes blocking locks in both, which must never stop the master's runtime.
        let socket_thread = |name: &'static str| {
            SocketThread::start(name, &watchdog)
                .map_err(|source| MasterError::Thread { what: name, source })
        };
        let pub_fanout = socket_thread("brine-pub-fanout")?;
        let pub_connections = socket_thread("brine-pub-conn")?;
        let pub_socket = pub_fanout.run(async { PubSocket::new() }).await;
        let (pub_socket, pub_inner) = pub_connections
            .run(async {
                let mut socket = pub_socket;
                let addr = bind_behind_guard(&mut socket, "the publish socket").await?;
                Ok::<_, MasterError>((socket, addr))
            })
            .await?;
        // The return socket's connection tasks run on a thread of their own (see socket_thread).
        let rep_connections = socket_thread("brine-rep-conn")?;
        let (rep_socket, rep_inner) = rep_connections
            .run(async {
                let mut socket = RouterSocket::new();
                let addr = bind_behind_guard(&mut socket, "the return socket").await?;
                Ok::<_, MasterError>((socket, addr))
            })
            .await?;
        let capacity = minion_capacity(brine_daemon::open_file_limit());
        info!(
            minions = capacity,
            "the open-file limit holds this many connected minions ({FILES_PER_MINION} files each); more are refused at the ports"
        );
        let limited = |mut limits: GuardLimits| {
            limits.max_connections = limits.max_connections.min(capacity);
            limits
        };
        let guard = |name: &'static str, port: u16, upstream, limits| {
            let addr = SocketAddr::new(config.interface, port);
            let public = listen(addr, name)?;
            Guard::spawn(name, public, upstream, limits, cancel.clone(), &tasks).map_err(|source| {
                MasterError::Bind {
                    what: name,
                    addr: addr.to_string(),
                    source,
                }
            })
        };
        let publish_guard = guard(
            "the publish port",
            config.publish_port,
            pub_inner,
            limited(GuardLimits::publish_port()),
        )?;
        // A minion says something at least every keepalive interval (the welcome tells it
        // ours); a connection quiet for six of them is not a minion's, or a dead one.
        let ret_limits = GuardLimits {
            idle_timeout: Some((config.keepalive_interval * 6).max(Duration::from_secs(1))),
            ..limited(GuardLimits::return_port())
        };
        let ret_guard = guard("the return port", config.ret_port, rep_inner, ret_limits)?;
        let (publish_addr, ret_addr) = (publish_guard.local_addr(), ret_guard.local_addr());
        let control = control::bind(&config.socket)?;

        let (publisher, publish_rx) = mpsc::channel(1024);
        let registry = Registry::new(config.liveness_window(), known);
        let shared = Arc::new(Shared {
            nodegroups: config.nodegroup_expressions(),
            config,
            store,
            registry,
            jobs: JobHub::default(),
            publisher,
            cancel,
            tasks,
            watchdog,
            keys,
            group: RwLock::new(Arc::new(group)),
            sessions: Mutex::new(Sessions::default()),
        });
        Ok(Self {
            shared,
            publish_rx,
            pub_socket,
            pub_threads: [pub_fanout, pub_connections],
            rep_socket,
            rep_connections,
            control,
            publish_addr,
            ret_addr,
        })
    }

    /// The address the PUB socket is bound to (the real port when 0 was asked for).
    pub fn publish_addr(&self) -> SocketAddr {
        self.publish_addr
    }

    /// The address the REP socket is bound to.
    pub fn ret_addr(&self) -> SocketAddr {
        self.ret_addr
    }

    /// The fingerprint minions pin (`master_fingerprint`).
    pub fn fingerprint(&self) -> brine_crypto::Fingerprint {
        self.shared.keys.fingerprint()
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets in-flight work finish for
    /// up to `shutdown_grace`, and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), MasterError> {
        let Master {
            shared,
            publish_rx,
            pub_socket,
            pub_threads,
            rep_socket,
            rep_connections,
            control,
            publish_addr,
            ret_addr,
        } = self;
        info!(%publish_addr, %ret_addr, socket = %shared.config.socket.display(), fingerprint = %shared.keys.fingerprint(), "brine-master serving");

        resume_open_jobs(&shared).await?;
        let watching = shared
            .watchdog
            .start()
            .map_err(|source| MasterError::Thread {
                what: "the watchdog's thread",
                source,
            })?;

        shared.tasks.spawn(publish::run(
            Arc::clone(&shared),
            pub_socket,
            pub_threads,
            publish_rx,
        ));
        shared
            .tasks
            .spawn(rep::run(Arc::clone(&shared), rep_socket, rep_connections));
        shared
            .tasks
            .spawn(control::serve(Arc::clone(&shared), control));
        shared.tasks.spawn(prune(Arc::clone(&shared)));
        // Every socket is bound and every loop started: `systemctl start` may return.
        brine_daemon::watchdog::ready();

        shutdown.await;
        info!("shutting down");
        brine_daemon::watchdog::stopping();
        // The loops end now: they are no longer watched.
        drop(watching);
        shared.cancel.cancel();
        shared.tasks.close();
        if tokio::time::timeout(shared.config.shutdown_grace, shared.tasks.wait())
            .await
            .is_err()
        {
            warn!("in-flight work did not finish within the grace period");
        }
        let _ = std::fs::remove_file(&shared.config.socket);
        info!("stopped");
        Ok(())
    }
}

/// How long one group key is used before the daily rotation replaces it.
const GROUP_KEY_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Binds and runs a master until `shutdown` resolves.
pub async fn run(
    config: MasterConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), MasterError> {
    Master::bind(config).await?.run(shutdown).await
}

/// Jobs that were in flight when the master last stopped carry on: their returns are still
/// stored, and they end at their deadline.
async fn resume_open_jobs(shared: &Arc<Shared>) -> Result<(), MasterError> {
    let open = shared.store.call(|s| s.open_jobs()).await?;
    for job in open {
        let jid = job.jid.clone();
        let report = shared.store.call(move |s| s.report(&jid)).await?;
        let Some(report) = report else { continue };
        let minions = report.minions.into_iter().map(|m| (m.id, m.state));
        if shared.jobs.open(&job.jid, minions).is_some() {
            // Every minion's answer arrived before the restart; only the end was not recorded.
            shared.end_job(&job.jid).await;
        } else {
            info!(jid = %job.jid, "resuming a job that was in flight");
            let time_limit_ms = shared.time_limit_ms(job.deadline_ms, job.timeout_ms);
            shared.track_deadline(job.jid, job.deadline_ms, time_limit_ms);
        }
    }
    Ok(())
}

/// Once a minute, deletes jobs older than `keep_jobs`; once a day, rotates the group key.
async fn prune(shared: Arc<Shared>) {
    let mut every = tokio::time::interval(Duration::from_secs(60));
    let mut rotated = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shared.cancel.cancelled() => return,
        }
        if rotated.elapsed() >= GROUP_KEY_LIFETIME {
            match shared.rotate_group_key().await {
                Ok(()) => rotated = tokio::time::Instant::now(),
                Err(err) => warn!(cause = %err, "rotating the group key failed"),
            }
        }
        let cutoff = now_ms().saturating_sub(shared.config.keep_jobs.as_millis() as u64);
        match shared.store.call(move |s| s.prune(cutoff)).await {
            Ok(0) => {}
            Ok(n) => info!(jobs = n, "pruned old jobs"),
            Err(err) => warn!(cause = %err, "pruning old jobs failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_file_limit_caps_the_minions_the_ports_admit() {
        assert_eq!(minion_capacity(Some(20_000)), 3248);
        assert_eq!(minion_capacity(Some(100)), 1);
        assert_eq!(minion_capacity(None), usize::MAX);
    }
}
