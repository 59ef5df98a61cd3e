//! The brine minion: receives jobs from the master, runs them, and returns the results.
//!
//! [`run`] starts two tasks beside the main loop: [`sub`] (the SUB socket, publications in)
//! and [`link`] (the REQ socket and its Noise session, everything the minion says). The main
//! loop is driven by one closed set of events ([`Event`]): publications, catch-up results, the
//! link's welcome and group keys, a watchdog timer, and a timer that has the journal write
//! the deletions of acknowledged returns no job has carried (also done once at shutdown).
//! Under systemd, the service manager is told the minion is alive while the main loop turns
//! ([`brine_daemon::watchdog`]).
//!
//! A publication is checked in this order before anything in it is used: the master's
//! signature (the key pinned at the handshake), the expiry in the signed header (on the
//! master's clock, estimated from its welcome and ticks), its recipients (a header that lists
//! minions, this one not among them, is dropped), "not already started here" (the journal),
//! and only then is it decrypted with the group key and decoded. A job runs only where the
//! master expects it: one whose header lists this minion at once; one for more minions than a
//! header lists if its target matches and the master then answers its `receipt` with `ok`.
//! Running is: marked started, run in its own task under its time limit (acknowledged by a
//! `receipt` if it outlives 50 ms); the return is spooled before it is sent. Jobs from catch-up
//! come over the authenticated session, for this minion, and go through the same expiry and
//! journal checks.

mod backoff;
pub mod client;
pub mod journal;
pub mod link;
pub mod running;
pub mod sub;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use brine_crypto::{GroupKey, MasterPublic, MinionKeys};
use brine_daemon::watchdog::Watchdog;
use brine_modules::{Context, GrainStore, GrainStoreError};
use brine_proto::codec::BodyKind;
use brine_proto::msg::{PublicationHeader, SignedPublication, PUBLICATION_AAD};
use brine_proto::{
    decode, now_ms, Envelope, Job, JobReturn, Map, MinionId, MinionRequest, Publication,
};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn, Instrument};

pub use brine_config::MinionConfig;
use client::{ClientTimings, MasterTrust, ReqClient};
use journal::{Journal, JournalError};
use link::{Command, Link, LinkEvent};
use running::JobTable;
use sub::SubEvent;

/// Why the minion could not start.
#[derive(Debug, thiserror::Error)]
pub enum MinionError {
    #[error("minion id: {0}")]
    Id(#[from] brine_proto::IdError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("minion keys: {0}")]
    Keys(#[from] brine_crypto::KeyError),
    #[error("master_fingerprint: {0}")]
    Fingerprint(#[from] brine_crypto::ParseFingerprintError),
    #[error("disabled_functions: {0}")]
    DisabledFunctions(String),
    #[error("grains: {0}")]
    Grains(#[from] GrainStoreError),
    #[error("starting the watchdog's thread: {0}")]
    Watchdog(std::io::Error),
}

/// The tick interval assumed until the master says otherwise.
const DEFAULT_TICK: Duration = Duration::from_secs(5);
/// A gap of this many tick intervals without a tick means the subscription is dead.
const MISSED_TICKS: u32 = 3;
/// The largest encoded return: what still fits a sealed frame under the frame limit.
const MAX_RETURN_BYTES: usize = brine_proto::limits::MAX_FRAME_BYTES - 64 * 1024;
/// A job still running this long after it started is acknowledged with a receipt (sooner ones
/// only with their return): half of a ping's requests saved, at no cost to "running" versus
/// "never got it", which the master needs only at the deadline (at least a second away).
const RECEIPT_AFTER: Duration = Duration::from_millis(50);
/// A change of the clock offset to the master larger than this is logged.
const CLOCK_SKEW_WARNING_MS: i64 = 2_000;
/// How often the journal is asked to write the acknowledged returns' deletions that no job's
/// write has carried for a whole period (see [`Journal::flush_waiting`]).
const JOURNAL_FLUSH: Duration = Duration::from_secs(1);
/// How long a finished job's jid is kept: no job stays live longer than a day after it was
/// published (the master's longest wait), and after that its expiry alone keeps it from
/// starting again; the second day is margin.
const JOURNAL_KEEP: Duration = Duration::from_secs(48 * 3600);
/// How often jids older than [`JOURNAL_KEEP`] are forgotten (and once at start).
const JOURNAL_PRUNE: Duration = Duration::from_secs(3600);

/// Everything that drives the main loop.
#[derive(Debug)]
enum Event {
    Sub(SubEvent),
    Link(LinkEvent),
    /// grains.setval, grains.delval or saltutil.refresh_grains changed the grains.
    Grains(Map),
    Watchdog,
    FlushJournal,
    PruneJournal,
    Shutdown,
}

/// The main loop's state.
struct Minion {
    id: MinionId,
    grains: Arc<GrainStore>,
    running: Arc<JobTable>,
    /// `disabled_functions`: jobs for these are rejected.
    disabled: Vec<brine_proto::Fnmatch>,
    journal: Arc<Mutex<Journal>>,
    commands: mpsc::UnboundedSender<Command>,
    rebuild_sub: Arc<Notify>,
    jobs: TaskTracker,
    tick_interval: Duration,
    last_tick: Option<(u64, Instant)>,
    /// The subscription is new: catch up once its first tick proves it is live.
    awaiting_first_tick: bool,
    /// When the current subscription connected (its silence counts from then until a tick).
    subscribed_at: Option<Instant>,
    /// The master's keys, from the current session (publications are verified with them).
    master: Option<MasterPublic>,
    group: Option<GroupKey>,
    /// The master's clock minus ours, in milliseconds.
    clock_offset_ms: i64,
    /// A group key fetch was asked for this epoch already.
    fetching_epoch: Option<u32>,
}

/// Runs a minion until `shutdown` resolves: then no new job starts, running jobs get
/// `shutdown_grace` to finish and return, and the minion says goodbye.
pub async fn run(
    config: MinionConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), MinionError> {
    let id = config.minion_id()?;
    let keys = Arc::new(MinionKeys::load_or_create(&config.pki_dir())?);
    let trust = MasterTrust {
        fingerprint: config.pinned_fingerprint()?,
        trust_first: config.trust_first_master,
        pinned_file: config.pki_dir().join(brine_crypto::MASTER_PUB_FILE),
    };
    let mut journal = Journal::open(&config.state_dir)?;
    let interrupted = journal.interrupt_unfinished(&id, now_ms())?;
    for ret in &interrupted {
        warn!(jid = %ret.jid, fun = %ret.fun, "job was cut off by a restart; reporting it as interrupted");
    }
    let journal = Arc::new(Mutex::new(journal));
    let grains = Arc::new(GrainStore::open(
        &id,
        config.grains.clone(),
        &config.state_dir,
    )?);
    let mut grain_changes = grains.subscribe();
    info!(minion = %id, master = %config.master, fingerprint = %keys.fingerprint(), "brine-minion starting");

    // systemd is told the minion is alive while its main loop turns.
    let systemd = Arc::new(Watchdog::from_env());
    let heartbeat = systemd.heartbeat("the main loop");
    let mut turn = heartbeat.ticker();
    let watching = systemd.start().map_err(MinionError::Watchdog)?;

    // The link outlives the SUB task: at shutdown it still delivers returns and says goodbye.
    let stop_sub = CancellationToken::new();
    let stop_link = CancellationToken::new();
    let (sub_tx, mut sub_rx) = mpsc::channel(1024);
    let (link_tx, mut link_rx) = mpsc::channel(64);
    let (commands, command_rx) = mpsc::unbounded_channel();
    let rebuild_sub = Arc::new(Notify::new());

    let subscriber = tokio::spawn(
        sub::run(
            id.clone(),
            config.endpoint(config.publish_port),
            config.connect_timeout,
            config.retry_max,
            sub_tx,
            Arc::clone(&rebuild_sub),
            stop_sub.clone(),
        )
        .in_current_span(),
    );
    let hello = MinionRequest::Hello {
        id: id.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
        grains: Map::clone(&grains.current()),
    };
    let link = Link {
        id: id.clone(),
        client: ReqClient::new(
            config.endpoint(config.ret_port),
            ClientTimings {
                request_timeout: config.request_timeout,
                connect_timeout: config.connect_timeout,
                retry_max: config.retry_max,
            },
            keys,
            trust,
            hello,
        ),
        journal: Arc::clone(&journal),
        events: link_tx,
        stop: stop_link.clone(),
        keepalive_interval: Duration::from_secs(10),
        unavailable_pause: config.retry_max.min(Duration::from_secs(1)),
        resync: true,
    };
    let mut link = tokio::spawn(link.run(command_rx).in_current_span());

    let mut minion = Minion {
        id: id.clone(),
        grains,
        running: Arc::default(),
        disabled: config
            .disabled_function_patterns()
            .map_err(MinionError::DisabledFunctions)?,
        journal: Arc::clone(&journal),
        commands,
        rebuild_sub,
        jobs: TaskTracker::new(),
        tick_interval: DEFAULT_TICK,
        last_tick: None,
        awaiting_first_tick: false,
        subscribed_at: None,
        master: None,
        group: None,
        clock_offset_ms: 0,
        fetching_epoch: None,
    };

    // Serving does not wait for the master: it may be down, and the minion connects when it
    // comes (any start order).
    brine_daemon::watchdog::ready();

    let mut watchdog = tokio::time::interval(Duration::from_millis(250));
    let mut flush = tokio::time::interval(JOURNAL_FLUSH);
    let mut prune = tokio::time::interval(JOURNAL_PRUNE);
    tokio::pin!(shutdown);
    loop {
        heartbeat.beat();
        let event = tokio::select! {
            _ = &mut shutdown => Event::Shutdown,
            _ = turn.tick() => continue,
            Some(event) = sub_rx.recv() => Event::Sub(event),
            Some(event) = link_rx.recv() => Event::Link(event),
            Ok(()) = grain_changes.changed() => {
                Event::Grains(Map::clone(&grain_changes.borrow_and_update()))
            }
            _ = watchdog.tick() => Event::Watchdog,
            _ = flush.tick() => Event::FlushJournal,
            _ = prune.tick() => Event::PruneJournal,
        };
        match event {
            Event::Shutdown => break,
            Event::Sub(SubEvent::Connected) => {
                minion.awaiting_first_tick = true;
                minion.subscribed_at = Some(Instant::now());
                minion.last_tick = None;
            }
            Event::Sub(SubEvent::Publication(bytes)) => minion.receive(&bytes),
            Event::Link(LinkEvent::Jobs(jobs)) => jobs.into_iter().for_each(|j| minion.offer(j)),
            Event::Link(LinkEvent::Welcome(welcome)) => {
                minion.tick_interval = welcome.tick_interval;
                minion.set_master_clock(welcome.master_time_ms);
                minion.master = Some(welcome.master);
                minion.group = Some(welcome.group);
                minion.fetching_epoch = None;
            }
            Event::Link(LinkEvent::GroupKey(group)) => {
                if minion
                    .group
                    .as_ref()
                    .is_none_or(|g| g.epoch() < group.epoch())
                {
                    minion.group = Some(group);
                }
                minion.fetching_epoch = None;
            }
            Event::Grains(grains) => {
                info!("grains changed; telling the master");
                minion.command(Command::Grains(grains));
            }
            Event::Watchdog => minion.watch_ticks(),
            Event::FlushJournal => {
                let flushed = minion
                    .journal
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .flush_waiting();
                if let Err(err) = flushed {
                    warn!(cause = %err, "cannot remove acknowledged returns from the spool; a restart would send them again");
                }
            }
            Event::PruneJournal => {
                let cutoff = now_ms().saturating_sub(JOURNAL_KEEP.as_millis() as u64);
                let pruned = minion
                    .journal
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .prune(cutoff);
                match pruned {
                    Ok(0) => {}
                    Ok(n) => debug!(jobs = n, "forgot old jobs in the journal"),
                    Err(err) => warn!(cause = %err, "cannot forget old jobs in the journal"),
                }
            }
        }
    }

    info!("shutting down");
    brine_daemon::watchdog::stopping();
    drop(watching);
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
    // The link has had its last answers: what they acknowledged leaves the spool on disk.
    let flushed = journal.lock().unwrap_or_else(|p| p.into_inner()).flush();
    if let Err(err) = flushed {
        warn!(cause = %err, "cannot remove acknowledged returns from the spool; the next start sends them again");
    }
    info!("stopped");
    Ok(())
}

/// Why a publication was dropped.
#[derive(Debug, thiserror::Error)]
enum Dropped {
    #[error("no session with the master yet: cannot verify")]
    NoMaster,
    #[error("unreadable: {0}")]
    Malformed(String),
    #[error("bad signature")]
    Forged,
    #[error("stale (expired {0} ms ago on the master's clock)")]
    Stale(i64),
    #[error("already started here")]
    Executed,
    #[error("sealed with group key epoch {0}, which this minion does not hold yet")]
    UnknownEpoch(u32),
    #[error("sealed with group key epoch {0}, older than this minion's")]
    OldEpoch(u32),
    #[error("did not decrypt")]
    Undecryptable,
    #[error("for other minions")]
    NotForThisMinion,
}

/// Who vouches that this minion is to run a job it opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Vouched {
    /// The signed header lists this minion.
    Listed,
    /// The header lists nobody (a job for many minions): the master must confirm it.
    ToBeConfirmed,
}

impl Minion {
    /// Verifies, checks and opens one PUB message, then acts on it.
    fn receive(&mut self, bytes: &[u8]) {
        match self.open(bytes) {
            Ok((Publication::Tick(tick), _)) => self.on_tick(tick),
            Ok((Publication::Job(job), Vouched::Listed)) => self.offer(job),
            Ok((Publication::Job(job), Vouched::ToBeConfirmed)) => self.claim(job),
            Err(Dropped::UnknownEpoch(epoch)) => {
                if self.fetching_epoch != Some(epoch) {
                    debug!(epoch, "a publication under a newer group key: fetching it");
                    self.fetching_epoch = Some(epoch);
                    self.command(Command::FetchGroupKey);
                }
            }
            Err(reason @ (Dropped::Forged | Dropped::Malformed(_) | Dropped::Undecryptable)) => {
                warn!(%reason, "dropped a publication");
            }
            Err(reason) => debug!(%reason, "dropped a publication"),
        }
    }

    /// The checks, in order: signature, expiry, recipients, journal, then decryption.
    fn open(&mut self, bytes: &[u8]) -> Result<(Publication, Vouched), Dropped> {
        let master = self.master.ok_or(Dropped::NoMaster)?;
        let envelope =
            Envelope::from_bytes(bytes).map_err(|e| Dropped::Malformed(e.to_string()))?;
        if envelope.kind != BodyKind::Signed {
            return Err(Dropped::Malformed(format!(
                "{:?} envelope on PUB",
                envelope.kind
            )));
        }
        let signed: SignedPublication =
            decode(&envelope.body).map_err(|e| Dropped::Malformed(e.to_string()))?;
        master
            .verify(&signed.header, &signed.sig)
            .map_err(|_| Dropped::Forged)?;
        let header: PublicationHeader =
            decode(&signed.header).map_err(|e| Dropped::Malformed(e.to_string()))?;
        let late = self.master_now_ms() - header.expires_ms as i64;
        if late >= 0 {
            return Err(Dropped::Stale(late));
        }
        let vouched = match &header.to {
            Some(to) if to.lists(&self.id) => Vouched::Listed,
            Some(_) => return Err(Dropped::NotForThisMinion),
            None => Vouched::ToBeConfirmed,
        };
        if let Some(jid) = &header.jid {
            let journal = self.journal.lock().unwrap_or_else(|p| p.into_inner());
            if journal.has_started(jid) {
                return Err(Dropped::Executed);
            }
        }
        let group = self.group.as_ref().ok_or(Dropped::NoMaster)?;
        if header.group_epoch > group.epoch() {
            return Err(Dropped::UnknownEpoch(header.group_epoch));
        }
        if header.group_epoch < group.epoch() {
            // Sealed before the last rotation; catch-up brings anything it held.
            return Err(Dropped::OldEpoch(header.group_epoch));
        }
        let plaintext = group
            .decrypt(&header.nonce, &header.ciphertext, PUBLICATION_AAD)
            .map_err(|_| Dropped::Undecryptable)?;
        let publication: Publication =
            decode(&plaintext).map_err(|e| Dropped::Malformed(e.to_string()))?;
        if let Publication::Job(job) = &publication {
            if Some(&job.jid) != header.jid.as_ref() {
                return Err(Dropped::Malformed("the header names another jid".into()));
            }
        }
        self.set_master_clock(header.master_time_ms);
        Ok((publication, vouched))
    }

    fn on_tick(&mut self, tick: brine_proto::msg::Tick) {
        self.tick_interval = Duration::from_millis(tick.tick_interval_ms.max(10));
        let gap = self.last_tick.is_some_and(|(seq, _)| tick.seq != seq + 1);
        if gap || std::mem::take(&mut self.awaiting_first_tick) {
            debug!(
                seq = tick.seq,
                "catching up after a (re)subscription or a tick gap"
            );
            self.command(Command::CatchUp);
        }
        self.last_tick = Some((tick.seq, Instant::now()));
    }

    /// Learns the master's clock from a time stamp it just sent.
    fn set_master_clock(&mut self, master_time_ms: u64) {
        let offset = master_time_ms as i64 - now_ms() as i64;
        if (offset - self.clock_offset_ms).abs() > CLOCK_SKEW_WARNING_MS {
            warn!(skew_ms = offset, "this host's clock differs from the master's; expiry is judged on the master's clock");
        }
        self.clock_offset_ms = offset;
    }

    /// Now, on the master's clock.
    fn master_now_ms(&self) -> i64 {
        now_ms() as i64 + self.clock_offset_ms
    }

    fn command(&self, command: Command) {
        // The link outlives the main loop; a send only fails when it has already stopped.
        let _ = self.commands.send(command);
    }

    /// No tick for three intervals: the subscription is dead (or half-open). Rebuild it.
    /// A subscription that never heard a tick is watched from when it connected.
    fn watch_ticks(&mut self) {
        let Some(since) = self.last_tick.map(|(_, at)| at).or(self.subscribed_at) else {
            return;
        };
        if since.elapsed() > self.tick_interval * MISSED_TICKS {
            warn!(silent_for = ?since.elapsed(), "no tick from the master; rebuilding the subscription");
            self.last_tick = None;
            self.subscribed_at = None;
            self.rebuild_sub.notify_one();
        }
    }

    /// The return that says this minion will not run `job`, and why.
    fn rejection(&self, job: &Job, started_ms: u64, reason: String) -> JobReturn {
        let reason = format!("Job rejected: {reason}");
        JobReturn::rejection(self.id.clone(), job.jid.clone(), job.fun.clone(), reason)
            .ran(started_ms, now_ms())
    }

    /// A job for more minions than its header lists: if its target matches this minion, the
    /// master is asked (a receipt) whether it expects this minion, and the job runs only if it
    /// does. The master's word, not the grains of now: they may have changed since it
    /// published (a replayed publication must not run where it was not meant to).
    fn claim(&mut self, job: Job) {
        match job.target.compile() {
            Ok(matcher) if matcher.matches(self.id.as_str(), &self.grains.current()) => {
                self.command(Command::Claim(job));
            }
            Ok(_) => {}
            Err(err) => {
                warn!(jid = %job.jid, cause = %err, "ignoring a job with an invalid target")
            }
        }
    }

    /// Runs `job`, which the master expects of this minion (its publication listed this
    /// minion, the master confirmed it, or catch-up handed it out), if it is live and never
    /// started here; rejects it (with a return that says why) when its function is disabled
    /// here or it cannot be recorded.
    fn offer(&mut self, job: Job) {
        // Blocks the main loop as a dependency that hangs would (watchdog tests).
        fail::fail_point!("minion-loop-stall");
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
                // Not recorded, so not spooled: catch-up offers the job again while it lives.
                warn!(jid = %job.jid, cause = %err, "cannot record a job as started; rejecting it");
                let reason = format!("cannot record the job as started: {err}");
                self.command(Command::Return(self.rejection(&job, started_ms, reason)));
                return;
            }
        }
        if let Some(pattern) = self.disabled.iter().find(|p| p.matches(&job.fun)) {
            warn!(jid = %job.jid, fun = %job.fun, "rejecting a job for a disabled function");
            let reason = format!(
                "{} is disabled on this minion (disabled_functions: {:?})",
                job.fun,
                pattern.as_str()
            );
            let ret = self.rejection(&job, started_ms, reason);
            let spooled = self
                .journal
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .finish(&ret);
            if let Err(err) = spooled {
                warn!(jid = %ret.jid, cause = %err, "cannot spool a return; sending it unspooled");
            }
            self.command(Command::Return(ret));
            return;
        }
        info!(jid = %job.jid, fun = %job.fun, "running job");
        let context = Context {
            jobs: Some(Arc::clone(&self.running) as Arc<dyn brine_modules::RunningJobs>),
            ..Context::with_store(self.id.clone(), Arc::clone(&self.grains))
        };
        let killed = self.running.start(&job, started_ms);
        let running = Arc::clone(&self.running);
        let journal = Arc::clone(&self.journal);
        let commands = self.commands.clone();
        self.jobs.spawn(async move {
            let limit = Duration::from_millis(job.timeout_ms);
            let finished = {
                let run = tokio::time::timeout(
                    limit,
                    brine_modules::execute(&context, &job.fun, job.arg, job.kwarg),
                );
                tokio::pin!(run);
                // A job done within RECEIPT_AFTER is acknowledged by its return, which follows
                // at once; only a longer one needs the receipt that says it is running.
                let run = async {
                    tokio::select! {
                        finished = &mut run => finished,
                        _ = tokio::time::sleep(RECEIPT_AFTER) => {
                            let _ = commands.send(Command::Receipt(job.jid.clone()));
                            run.await
                        }
                    }
                };
                // saltutil.kill_job: dropping the call kills its process group.
                tokio::select! {
                    finished = run => Some(finished),
                    _ = killed.cancelled() => None,
                }
            };
            running.finish(job.jid.as_str());
            let outcome = match finished {
                Some(Ok(outcome)) => outcome,
                Some(Err(_)) => brine_modules::Outcome::failure(
                    format!("{}: timed out after {limit:?}", job.fun),
                    1,
                ),
                None => brine_modules::Outcome::failure(
                    format!("{}: killed by saltutil.kill_job", job.fun),
                    1,
                ),
            };
            let mut ret = JobReturn::new(context.id, job.jid, job.fun, outcome.ret)
                .with_outcome(outcome.retcode, outcome.success)
                .ran(started_ms, now_ms());
            let size = brine_proto::encode(&ret).len();
            if size > MAX_RETURN_BYTES {
                // It would never fit a frame: say so instead of retrying it forever.
                ret.ret = brine_proto::Value::String(format!(
                    "{}: the return is {size} bytes, more than the {MAX_RETURN_BYTES} a return may hold",
                    ret.fun
                ));
                ret.retcode = 1;
                ret.success = false;
            }
            let spooled = journal
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .finish(&ret);
            if let Err(err) = spooled {
                warn!(jid = %ret.jid, cause = %err, "cannot spool a return; sending it unspooled");
            }
            // Fault tests kill the minion here: finished and spooled, not yet sent.
            fail::fail_point!("minion-return-spooled");
            let _ = commands.send(Command::Return(ret));
        }.in_current_span());
    }
}

#[cfg(test)]
mod tests {
    //! What a minion does with publications from the network: the checks of `Minion::open`,
    //! with real keys and real ciphertext, the test playing the master.

    use super::*;
    use brine_crypto::MasterKeys;
    use brine_proto::msg::Tick;
    use brine_proto::{encode, Jid, Map, Target};

    struct Fixture {
        minion: Minion,
        master: MasterKeys,
        group: GroupKey,
        _dir: tempfile::TempDir,
        commands: mpsc::UnboundedReceiver<Command>,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let master = MasterKeys::generate();
        let group = GroupKey::generate(3);
        let (commands, command_rx) = mpsc::unbounded_channel();
        let id = MinionId::new("m1").unwrap();
        let minion = Minion {
            id: id.clone(),
            grains: Arc::new(GrainStore::open(&id, Map::new(), dir.path()).unwrap()),
            running: Arc::default(),
            disabled: vec![brine_proto::Fnmatch::new("cmd.*").unwrap()],
            journal: Arc::new(Mutex::new(Journal::open(dir.path()).unwrap())),
            commands,
            rebuild_sub: Arc::new(Notify::new()),
            jobs: TaskTracker::new(),
            tick_interval: DEFAULT_TICK,
            last_tick: None,
            awaiting_first_tick: false,
            subscribed_at: None,
            master: Some(master.public()),
            group: Some(group.clone()),
            clock_offset_ms: 0,
            fetching_epoch: None,
        };
        Fixture {
            minion,
            master,
            group,
            _dir: dir,
            commands: command_rx,
        }
    }

    fn job(jid: &Jid) -> Publication {
        Publication::Job(Job {
            jid: jid.clone(),
            target: Target::Glob("*".into()),
            fun: "test.ping".into(),
            arg: vec![],
            kwarg: Map::new(),
            timeout_ms: 1000,
            expires_ms: now_ms() + 60_000,
            master_time_ms: now_ms(),
            user: "root".into(),
        })
    }

    /// Builds a PUB message's envelope as the master does for a job of many minions (no
    /// recipients listed), letting a test spoil one part.
    fn seal(
        signer: &MasterKeys,
        group: &GroupKey,
        publication: &Publication,
        expires_ms: u64,
        spoil: impl FnOnce(&mut Vec<u8>, &mut Vec<u8>),
    ) -> Vec<u8> {
        seal_for(signer, group, publication, expires_ms, None, spoil)
    }

    /// The same, for the minions `to`.
    fn seal_for(
        signer: &MasterKeys,
        group: &GroupKey,
        publication: &Publication,
        expires_ms: u64,
        to: Option<Vec<MinionId>>,
        spoil: impl FnOnce(&mut Vec<u8>, &mut Vec<u8>),
    ) -> Vec<u8> {
        let jid = match publication {
            Publication::Job(job) => Some(job.jid.clone()),
            Publication::Tick(_) => None,
        };
        let (nonce, ciphertext) = group.encrypt(&encode(publication), PUBLICATION_AAD);
        let mut header = encode(&PublicationHeader {
            group_epoch: group.epoch(),
            jid,
            to: to.as_ref().map(brine_proto::msg::Recipients::of),
            expires_ms,
            master_time_ms: now_ms(),
            nonce: nonce.to_vec(),
            ciphertext,
        });
        let mut sig = signer.sign(&header).to_vec();
        spoil(&mut header, &mut sig);
        Envelope::new(
            BodyKind::Signed,
            None,
            encode(&SignedPublication { header, sig }),
        )
        .to_bytes()
    }

    fn later() -> u64 {
        now_ms() + 60_000
    }

    #[test]
    fn a_genuine_publication_opens() {
        let mut f = fixture();
        let jid = Jid::from_micros(now_ms() * 1000);
        let bytes = seal(&f.master, &f.group, &job(&jid), later(), |_, _| {});
        assert!(matches!(
            f.minion.open(&bytes),
            Ok((Publication::Job(j), Vouched::ToBeConfirmed)) if j.jid == jid
        ));
    }

    #[test]
    fn an_unlisted_job_runs_only_after_the_master_confirms_it() {
        let mut f = fixture();
        let jid = Jid::from_micros(now_ms() * 1000);
        // No list (a job for more minions than a header lists), a target that matches.
        f.minion
            .receive(&seal(&f.master, &f.group, &job(&jid), later(), |_, _| {}));
        let Ok(Command::Claim(claimed)) = f.commands.try_recv() else {
            panic!("the minion did not ask the master first");
        };
        assert_eq!(claimed.jid, jid);
        assert!(
            !f.minion.journal.lock().unwrap().has_started(&jid),
            "nothing started before the master's answer"
        );
        // A target that does not match: not even asked.
        let mut other = job(&Jid::from_micros(now_ms() * 1000 + 1));
        if let Publication::Job(job) = &mut other {
            job.target = Target::Glob("db*".into());
        }
        f.minion
            .receive(&seal(&f.master, &f.group, &other, later(), |_, _| {}));
        assert!(f.commands.try_recv().is_err());
    }

    #[test]
    fn a_publication_that_lists_other_minions_is_dropped_before_decrypting() {
        let mut f = fixture();
        let jid = Jid::from_micros(now_ms() * 1000);
        let others = vec![MinionId::new("db1").unwrap()];
        // Sealed with a key this minion does not hold: refused for its recipients alone, it
        // never got as far as decrypting.
        let wrong = GroupKey::generate(3);
        let bytes = seal_for(
            &f.master,
            &wrong,
            &job(&jid),
            later(),
            Some(others),
            |_, _| {},
        );
        assert!(matches!(
            f.minion.open(&bytes),
            Err(Dropped::NotForThisMinion)
        ));
        let mine = vec![MinionId::new("db1").unwrap(), f.minion.id.clone()];
        let bytes = seal_for(
            &f.master,
            &f.group,
            &job(&jid),
            later(),
            Some(mine),
            |_, _| {},
        );
        assert!(matches!(
            f.minion.open(&bytes),
            Ok((Publication::Job(j), Vouched::Listed)) if j.jid == jid
        ));
    }

    #[test]
    fn flipped_bits_anywhere_are_refused_before_decoding() {
        let mut f = fixture();
        let jid = Jid::from_micros(now_ms() * 1000);
        let genuine = seal(&f.master, &f.group, &job(&jid), later(), |_, _| {});
        for at in 0..genuine.len() {
            let mut bytes = genuine.clone();
            bytes[at] ^= 0x01;
            assert!(
                f.minion.open(&bytes).is_err(),
                "a flipped bit at {at} was accepted"
            );
        }
        let forged_sig = seal(&f.master, &f.group, &job(&jid), later(), |_, sig| {
            sig[7] ^= 0x80
        });
        assert!(matches!(f.minion.open(&forged_sig), Err(Dropped::Forged)));
        let forged_header = seal(&f.master, &f.group, &job(&jid), later(), |header, _| {
            let last = header.len() - 1;
            header[last] ^= 0x01;
        });
        assert!(matches!(
            f.minion.open(&forged_header),
            Err(Dropped::Forged)
        ));
    }

    #[test]
    fn a_valid_signature_from_another_key_is_refused() {
        let mut f = fixture();
        let impostor = MasterKeys::generate();
        let jid = Jid::from_micros(now_ms() * 1000);
        let bytes = seal(&impostor, &f.group, &job(&jid), later(), |_, _| {});
        assert!(matches!(f.minion.open(&bytes), Err(Dropped::Forged)));
    }

    #[test]
    fn a_job_for_a_disabled_function_is_rejected_spooled_and_never_run_again() {
        let mut f = fixture();
        let jid = Jid::from_micros(now_ms() * 1000);
        let Publication::Job(mut disabled) = job(&jid) else {
            unreachable!()
        };
        disabled.fun = "cmd.run".into();
        f.minion.offer(disabled.clone());
        let Ok(Command::Return(ret)) = f.commands.try_recv() else {
            panic!("no rejection sent");
        };
        assert!(ret.rejected && !ret.success, "{ret:?}");
        assert!(
            ret.ret
                .as_str()
                .unwrap()
                .contains("disabled_functions: \"cmd.*\""),
            "{ret:?}"
        );
        let spooled = f.minion.journal.lock().unwrap().spooled().unwrap();
        assert_eq!(spooled, [ret]);
        // Offered again (catch-up): already decided, nothing is sent.
        f.minion.offer(disabled);
        assert!(f.commands.try_recv().is_err());
    }

    #[test]
    fn stale_and_already_executed_jobs_are_refused_before_decryption() {
        let mut f = fixture();
        let jid = Jid::from_micros(now_ms() * 1000);
        let stale = seal(&f.master, &f.group, &job(&jid), now_ms() - 1, |_, _| {});
        assert!(matches!(f.minion.open(&stale), Err(Dropped::Stale(_))));

        // A replay after a restart: the journal (on disk) remembers the jid.
        f.minion
            .journal
            .lock()
            .unwrap()
            .begin(&jid, "test.ping", now_ms())
            .unwrap();
        let replay = seal(&f.master, &f.group, &job(&jid), later(), |_, _| {});
        assert!(matches!(f.minion.open(&replay), Err(Dropped::Executed)));
    }

    #[test]
    fn expiry_is_judged_on_the_masters_clock() {
        let mut f = fixture();
        // This host runs an hour ahead of the master: a job the master publishes with a minute
        // to live is still live.
        f.minion.clock_offset_ms = -3_600_000;
        let jid = Jid::from_micros(now_ms() * 1000);
        let master_now = now_ms() - 3_600_000;
        let bytes = seal(
            &f.master,
            &f.group,
            &job(&jid),
            master_now + 60_000,
            |_, _| {},
        );
        assert!(f.minion.open(&bytes).is_ok());
    }

    #[test]
    fn another_epoch_asks_for_the_new_group_key_once() {
        let mut f = fixture();
        let newer = GroupKey::generate(4);
        let tick = Publication::Tick(Tick {
            seq: 1,
            master_time_ms: now_ms(),
            tick_interval_ms: 1000,
        });
        let bytes = seal(&f.master, &newer, &tick, later(), |_, _| {});
        assert!(matches!(
            f.minion.open(&bytes),
            Err(Dropped::UnknownEpoch(4))
        ));
        f.minion.receive(&bytes);
        f.minion.receive(&bytes);
        let mut fetches = 0;
        while let Ok(command) = f.commands.try_recv() {
            if matches!(command, Command::FetchGroupKey) {
                fetches += 1;
            }
        }
        assert_eq!(fetches, 1);
        // The right epoch number with the wrong key bytes does not decrypt.
        let wrong = GroupKey::generate(3);
        let bytes = seal(&f.master, &wrong, &tick, later(), |_, _| {});
        assert!(matches!(f.minion.open(&bytes), Err(Dropped::Undecryptable)));
    }
}
