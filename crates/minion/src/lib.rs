//! The brine minion: receives jobs from the master, runs them, and returns the results.
//!
//! [`run`] starts two tasks beside the main loop: [`sub`] (the SUB socket, publications in)
//! and [`link`] (the REQ socket, everything the minion says). The main loop is driven by one
//! closed set of events ([`Event`]): publications, catch-up results, the link's welcome, and a
//! watchdog timer. For each job it checks, in order: the target matches this minion, the job
//! has not expired (judged on the master's clock), and the journal has never started it. Only
//! then is the job marked started, acknowledged (`receipt`) and run in its own task under its
//! time limit; the return is spooled before it is sent.

pub mod client;
pub mod config;
pub mod journal;
pub mod link;
pub mod sub;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use brine_modules::Context;
use brine_proto::{now_ms, Job, JobReturn, MinionId, Publication};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use client::{ClientTimings, ReqClient};
pub use config::MinionConfig;
use journal::{Journal, JournalError};
use link::{Command, Link, LinkEvent};
use sub::SubEvent;

/// Why the minion could not start.
#[derive(Debug, thiserror::Error)]
pub enum MinionError {
    #[error("minion id: {0}")]
    Id(#[from] brine_proto::IdError),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// The tick interval assumed until the master says otherwise.
const DEFAULT_TICK: Duration = Duration::from_secs(5);
/// A gap of this many tick intervals without a tick means the subscription is dead.
const MISSED_TICKS: u32 = 3;

/// Everything that drives the main loop.
#[derive(Debug)]
enum Event {
    Sub(SubEvent),
    Link(LinkEvent),
    Watchdog,
    Shutdown,
}

/// The main loop's state.
struct Minion {
    id: MinionId,
    context: Arc<Context>,
    journal: Arc<Mutex<Journal>>,
    commands: mpsc::UnboundedSender<Command>,
    rebuild_sub: Arc<Notify>,
    jobs: TaskTracker,
    tick_interval: Duration,
    last_tick: Option<(u64, Instant)>,
    /// The subscription is new: catch up once its first tick proves it is live.
    awaiting_first_tick: bool,
}

/// Runs a minion until `shutdown` resolves: then no new job starts, running jobs get
/// `shutdown_grace` to finish and return, and the minion says goodbye.
pub async fn run(
    config: MinionConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), MinionError> {
    let id = config.minion_id()?;
    let mut journal = Journal::open(&config.state_dir)?;
    let interrupted = journal.interrupt_unfinished(&id, now_ms())?;
    for ret in &interrupted {
        warn!(jid = %ret.jid, fun = %ret.fun, "job was cut off by a restart; reporting it as interrupted");
    }
    let journal = Arc::new(Mutex::new(journal));
    let grains = brine_modules::collect_grains(&id);
    info!(minion = %id, master = %config.master, "brine-minion starting");

    // The link outlives the SUB task: at shutdown it still delivers returns and says goodbye.
    let stop_sub = CancellationToken::new();
    let stop_link = CancellationToken::new();
    let (sub_tx, mut sub_rx) = mpsc::channel(1024);
    let (link_tx, mut link_rx) = mpsc::channel(64);
    let (commands, command_rx) = mpsc::unbounded_channel();
    let rebuild_sub = Arc::new(Notify::new());

    let subscriber = tokio::spawn(sub::run(
        config.endpoint(config.publish_port),
        config.connect_timeout,
        config.retry_max,
        sub_tx,
        Arc::clone(&rebuild_sub),
        stop_sub.clone(),
    ));
    let link = Link {
        id: id.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
        grains: grains.clone(),
        client: ReqClient::new(
            config.endpoint(config.ret_port),
            ClientTimings {
                request_timeout: config.request_timeout,
                connect_timeout: config.connect_timeout,
                retry_max: config.retry_max,
            },
        ),
        journal: Arc::clone(&journal),
        events: link_tx,
        stop: stop_link.clone(),
        keepalive_interval: Duration::from_secs(10),
        unavailable_pause: config.retry_max.min(Duration::from_secs(1)),
        resync: true,
    };
    let mut link = tokio::spawn(link.run(command_rx));

    let mut minion = Minion {
        id: id.clone(),
        context: Arc::new(Context { id, grains }),
        journal,
        commands,
        rebuild_sub,
        jobs: TaskTracker::new(),
        tick_interval: DEFAULT_TICK,
        last_tick: None,
        awaiting_first_tick: false,
    };

    let mut watchdog = tokio::time::interval(Duration::from_millis(250));
    tokio::pin!(shutdown);
    loop {
        let event = tokio::select! {
            _ = &mut shutdown => Event::Shutdown,
            Some(event) = sub_rx.recv() => Event::Sub(event),
            Some(event) = link_rx.recv() => Event::Link(event),
            _ = watchdog.tick() => Event::Watchdog,
        };
        match event {
            Event::Shutdown => break,
            Event::Sub(SubEvent::Connected) => {
                minion.awaiting_first_tick = true;
                minion.last_tick = None;
            }
            Event::Sub(SubEvent::Publication(Publication::Tick(tick))) => {
                minion.tick_interval = Duration::from_millis(tick.tick_interval_ms.max(10));
                let gap = minion.last_tick.is_some_and(|(seq, _)| tick.seq != seq + 1);
                if gap || std::mem::take(&mut minion.awaiting_first_tick) {
                    debug!(
                        seq = tick.seq,
                        "catching up after a (re)subscription or a tick gap"
                    );
                    minion.command(Command::CatchUp);
                }
                minion.last_tick = Some((tick.seq, Instant::now()));
            }
            Event::Sub(SubEvent::Publication(Publication::Job(job))) => minion.offer(job),
            Event::Link(LinkEvent::Jobs(jobs)) => jobs.into_iter().for_each(|j| minion.offer(j)),
            Event::Link(LinkEvent::Welcome { tick_interval }) => {
                minion.tick_interval = tick_interval;
            }
            Event::Watchdog => minion.watch_ticks(),
        }
    }

    info!("shutting down");
    stop_sub.cancel();
    minion.jobs.close();
    if tokio::time::timeout(config.shutdown_grace, minion.jobs.wait())
        .await
        .is_err()
    {
        warn!("running jobs did not finish within the grace period; they will be reported as interrupted");
    }
    minion.command(Command::Goodbye);
    drop(minion);
    if tokio::time::timeout(config.request_timeout, &mut link)
        .await
        .is_err()
    {
        debug!("the link did not finish in time");
        stop_link.cancel();
        let _ = link.await;
    }
    let _ = subscriber.await;
    info!("stopped");
    Ok(())
}

impl Minion {
    fn command(&self, command: Command) {
        // The link outlives the main loop; a send only fails when it has already stopped.
        let _ = self.commands.send(command);
    }

    /// No tick for three intervals: the subscription is dead (or half-open). Rebuild it.
    fn watch_ticks(&mut self) {
        let Some((_, at)) = self.last_tick else {
            return;
        };
        if at.elapsed() > self.tick_interval * MISSED_TICKS {
            warn!(silent_for = ?at.elapsed(), "no tick from the master; rebuilding the subscription");
            self.last_tick = None;
            self.rebuild_sub.notify_one();
        }
    }

    /// Runs `job` if it is for this minion, live, and never started here.
    fn offer(&mut self, job: Job) {
        match job.target.compile() {
            Ok(matcher) if matcher.matches(self.id.as_str()) => {}
            Ok(_) => return,
            Err(err) => {
                warn!(jid = %job.jid, cause = %err, "ignoring a job with an invalid target");
                return;
            }
        }
        if job.expires_ms <= job.master_time_ms {
            debug!(jid = %job.jid, "ignoring an expired job");
            return;
        }
        let started_ms = now_ms();
        let fresh = self
            .journal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .begin(&job.jid, &job.fun, started_ms);
        match fresh {
            Ok(true) => {}
            Ok(false) => return,
            Err(err) => {
                warn!(jid = %job.jid, cause = %err, "cannot record a job as started; not running it");
                return;
            }
        }
        info!(jid = %job.jid, fun = %job.fun, "running job");
        self.command(Command::Receipt(job.jid.clone()));
        let context = Arc::clone(&self.context);
        let journal = Arc::clone(&self.journal);
        let commands = self.commands.clone();
        self.jobs.spawn(async move {
            let limit = Duration::from_millis(job.timeout_ms);
            let outcome = match tokio::time::timeout(
                limit,
                brine_modules::execute(&context, &job.fun, job.arg, job.kwarg),
            )
            .await
            {
                Ok(outcome) => outcome,
                Err(_) => brine_modules::Outcome::failure(
                    format!("{}: timed out after {limit:?}", job.fun),
                    1,
                ),
            };
            let ret = JobReturn {
                id: context.id.clone(),
                jid: job.jid,
                fun: job.fun,
                ret: outcome.ret,
                retcode: outcome.retcode,
                success: outcome.success,
                started_ms,
                finished_ms: now_ms(),
            };
            let spooled = journal
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .finish(&ret);
            if let Err(err) = spooled {
                warn!(jid = %ret.jid, cause = %err, "cannot spool a return; sending it unspooled");
            }
            let _ = commands.send(Command::Return(ret));
        });
    }
}
