//! The brine master: publishes jobs to minions, collects their returns, serves the local CLI.
//!
//! [`Master::bind`] validates nothing further (the config is already valid), opens the job
//! store, binds the PUB and REP sockets and the control socket; [`Master::run`] serves until the
//! shutdown future resolves. Four tasks share one [`Shared`] state:
//!
//! - [`publish`]: owns the PUB socket; sends jobs and the heartbeat tick.
//! - [`rep`]: owns the REP socket; answers minion requests, one at a time, quickly.
//! - [`control`]: the unix socket; one task per CLI connection.
//! - the job timers ([`Shared::track_deadline`]) and the pruner.

pub mod config;
pub mod control;
pub mod jobs;
pub mod publish;
pub mod registry;
pub mod rep;
pub mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use brine_proto::{now_ms, Jid, Publication};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};
use zeromq::{PubSocket, RepSocket, Socket};

pub use config::MasterConfig;
use jobs::JobHub;
use registry::Registry;
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
    #[error("starting the {what} socket: {source}")]
    Zmq {
        what: &'static str,
        source: zeromq::ZmqError,
    },
    #[error("control socket {path}: {reason}")]
    ControlSocket { path: PathBuf, reason: String },
}

/// State shared by the master's tasks.
#[derive(Debug)]
pub struct Shared {
    pub config: MasterConfig,
    pub store: StoreHandle,
    pub registry: Registry,
    pub jobs: JobHub,
    pub publisher: mpsc::Sender<Publication>,
    pub cancel: CancellationToken,
    pub tasks: TaskTracker,
}

impl Shared {
    /// Ends `jid` at its deadline (or at once when the deadline has passed).
    pub fn track_deadline(self: &Arc<Self>, jid: Jid, deadline_ms: u64) {
        let shared = Arc::clone(self);
        self.tasks.spawn(async move {
            let wait = Duration::from_millis(deadline_ms.saturating_sub(now_ms()));
            tokio::select! {
                _ = tokio::time::sleep(wait) => shared.end_job(&jid).await,
                _ = shared.cancel.cancelled() => {}
            }
        });
    }

    /// Writes every expected minion's final state and tells the watchers. Idempotent.
    pub async fn end_job(self: &Arc<Self>, jid: &Jid) {
        let Some(states) = self
            .jobs
            .final_states(jid, |id| self.registry.is_connected(id))
        else {
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
    publish_rx: mpsc::Receiver<Publication>,
    pub_socket: PubSocket,
    rep_socket: RepSocket,
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

/// Binds a TCP listener with a backlog of 1024 (std's default of 128 drops connection storms).
fn listen(addr: SocketAddr, what: &'static str) -> Result<std::net::TcpListener, MasterError> {
    let bind_err = |source| MasterError::Bind {
        what,
        addr: addr.to_string(),
        source,
    };
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .map_err(bind_err)?;
    socket.set_reuse_address(true).map_err(bind_err)?;
    socket.bind(&addr.into()).map_err(bind_err)?;
    socket.listen(1024).map_err(bind_err)?;
    socket.set_nonblocking(true).map_err(bind_err)?;
    let listener: std::net::TcpListener = socket.into();
    Ok(listener)
}

impl Master {
    /// Opens the store and binds every socket.
    pub async fn bind(config: MasterConfig) -> Result<Self, MasterError> {
        let store = Store::open(&config.state_dir)?;
        let known = store.minions()?;
        let store = StoreHandle::new(store);

        let publish = listen(
            SocketAddr::new(config.interface, config.publish_port),
            "the publish port",
        )?;
        let ret = listen(
            SocketAddr::new(config.interface, config.ret_port),
            "the return port",
        )?;
        let publish_addr = publish.local_addr().map_err(|source| MasterError::Bind {
            what: "the publish port",
            addr: config.publish_port.to_string(),
            source,
        })?;
        let ret_addr = ret.local_addr().map_err(|source| MasterError::Bind {
            what: "the return port",
            addr: config.ret_port.to_string(),
            source,
        })?;
        let mut pub_socket = PubSocket::new();
        pub_socket
            .bind_listener(publish)
            .await
            .map_err(|source| MasterError::Zmq {
                what: "publish",
                source,
            })?;
        let mut rep_socket = RepSocket::new();
        rep_socket
            .bind_listener(ret)
            .await
            .map_err(|source| MasterError::Zmq {
                what: "return",
                source,
            })?;
        let control = control::bind(&config.socket)?;

        let (publisher, publish_rx) = mpsc::channel(1024);
        let registry = Registry::new(config.liveness_window(), known);
        let shared = Arc::new(Shared {
            config,
            store,
            registry,
            jobs: JobHub::default(),
            publisher,
            cancel: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        Ok(Self {
            shared,
            publish_rx,
            pub_socket,
            rep_socket,
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

    /// Serves until `shutdown` resolves, then stops accepting, lets in-flight work finish for
    /// up to `shutdown_grace`, and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), MasterError> {
        let Master {
            shared,
            publish_rx,
            pub_socket,
            rep_socket,
            control,
            publish_addr,
            ret_addr,
        } = self;
        info!(%publish_addr, %ret_addr, socket = %shared.config.socket.display(), "brine-master serving");

        resume_open_jobs(&shared).await?;

        shared.tasks.spawn(publish::run(
            pub_socket,
            publish_rx,
            shared.config.tick_interval,
            shared.cancel.clone(),
        ));
        shared
            .tasks
            .spawn(rep::run(Arc::clone(&shared), rep_socket));
        shared
            .tasks
            .spawn(control::serve(Arc::clone(&shared), control));
        shared.tasks.spawn(prune(Arc::clone(&shared)));

        shutdown.await;
        info!("shutting down");
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
        let returned = report
            .minions
            .iter()
            .filter(|m| m.ret.is_some())
            .map(|m| m.id.clone());
        shared.jobs.open(
            &job.jid,
            report.minions.iter().map(|m| m.id.clone()),
            returned,
        );
        if report.minions.iter().all(|m| m.ret.is_some()) {
            // Every return arrived before the restart; only the end was not recorded.
            shared.end_job(&job.jid).await;
        } else {
            info!(jid = %job.jid, "resuming a job that was in flight");
            shared.track_deadline(job.jid, job.deadline_ms);
        }
    }
    Ok(())
}

/// Deletes jobs older than `keep_jobs`, once a minute.
async fn prune(shared: Arc<Shared>) {
    let mut every = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shared.cancel.cancelled() => return,
        }
        let cutoff = now_ms().saturating_sub(shared.config.keep_jobs.as_millis() as u64);
        match shared.store.call(move |s| s.prune(cutoff)).await {
            Ok(0) => {}
            Ok(n) => info!(jobs = n, "pruned old jobs"),
            Err(err) => warn!(cause = %err, "pruning old jobs failed"),
        }
    }
}
