//! brine-swarm: N real minions in one process, a load tool for benchmarks.
//!
//! Each instance is the minion library itself ([`brine_minion::run`]), not a mock: its own id,
//! keys, journal, SUB and REQ sockets, the full handshake, verification and return path. A
//! [`Swarm`] derives every instance's configuration from one ordinary minion configuration:
//! instance `n` is `<id>-<n>` (`n` zero-padded to 5 digits, counted from `--first`) and keeps
//! its state, keys included, in `state_dir/<instance id>/`.
//!
//! [`run`] starts the instances at a bounded rate ([`Ramp`]), so that the start is not a
//! connection storm, each inside a tracing span naming its id. It tells its caller once every
//! instance has been started and has its keys and journal (it is then connecting, with the
//! minion library's jittered backoff), logs an instance that fails (an unreadable key, an
//! unusable state directory) without stopping the others, and at shutdown gives every instance
//! the same cancellation and waits, bounded, for all of them to say goodbye.

pub mod limits;

use std::future::Future;
use std::num::NonZeroU32;
use std::time::Duration;

use brine_crypto::MinionKeys;
use brine_minion::journal::Journal;
use brine_minion::{MinionConfig, MinionError};
use brine_proto::{IdError, MinionId};
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn, Instrument};

/// Why the swarm cannot run, or did not end well.
#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    #[error("--first {first} with --minions {count} goes past the largest instance number")]
    Range { first: u32, count: u32 },
    #[error("minion id {id:?}: {source}")]
    Id { id: String, source: IdError },
    #[error("every one of the {0} minions failed (see the log)")]
    AllFailed(u32),
    #[error("{left} minions did not stop within {grace:?}")]
    StopTimeout { left: usize, grace: Duration },
}

/// Why one instance stopped before the swarm did.
#[derive(Debug, thiserror::Error)]
enum InstanceError {
    /// Its keys or journal could not be made ready: it never connected.
    #[error(transparent)]
    State(MinionError),
    #[error("preparing its keys and journal: {0}")]
    StatePanicked(JoinError),
    /// It stopped while it ran.
    #[error(transparent)]
    Run(MinionError),
}

impl InstanceError {
    /// Whether the instance failed before it was ready.
    fn before_ready(&self) -> bool {
        !matches!(self, InstanceError::Run(_))
    }
}

/// At shutdown, how long the swarm waits beyond an instance's own bound (its jobs'
/// `shutdown_grace`, then one `request_timeout` for the goodbye).
const STOP_MARGIN: Duration = Duration::from_secs(5);

/// N instances derived from one minion configuration.
#[derive(Debug)]
pub struct Swarm {
    base: MinionConfig,
    prefix: MinionId,
    first: u32,
    count: u32,
}

impl Swarm {
    /// Instances `first..first + count` of the minion configured by `base`, whose `id` (the host
    /// name when empty) becomes the prefix of theirs. Every instance id must be valid.
    pub fn new(base: MinionConfig, first: u32, count: u32) -> Result<Self, SwarmError> {
        let prefix = base.minion_id().map_err(|source| SwarmError::Id {
            id: base.id.clone(),
            source,
        })?;
        let last = first
            .checked_add(count.saturating_sub(1))
            .filter(|_| first >= 1 && count >= 1)
            .ok_or(SwarmError::Range { first, count })?;
        let swarm = Self {
            base,
            prefix,
            first,
            count,
        };
        // Ids differ only in their digits: the first and the longest stand for all.
        for number in [first, last] {
            let id = swarm.id_text(number);
            MinionId::new(id.clone()).map_err(|source| SwarmError::Id { id, source })?;
        }
        Ok(swarm)
    }

    /// How many instances.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The configuration every instance shares.
    pub fn base(&self) -> &MinionConfig {
        &self.base
    }

    /// The id of instance `number`: `<prefix>-00042`.
    fn id_text(&self, number: u32) -> String {
        format!("{}-{number:05}", self.prefix.as_str())
    }

    /// The instance numbers, `first..=last`.
    fn numbers(&self) -> std::ops::RangeInclusive<u32> {
        self.first..=self.first + (self.count - 1)
    }

    /// "m-00001..m-01000": the ids this swarm runs.
    pub fn id_range(&self) -> String {
        let numbers = self.numbers();
        format!(
            "{}..{}",
            self.id_text(*numbers.start()),
            self.id_text(*numbers.end())
        )
    }

    /// The configuration of instance `number`: the base with its own id and state directory
    /// (`state_dir/<id>`, which holds its keys under `pki/`).
    pub fn instance(&self, number: u32) -> MinionConfig {
        let id = self.id_text(number);
        MinionConfig {
            state_dir: self.base.state_dir.join(&id),
            id,
            ..self.base.clone()
        }
    }
}

/// How fast instances are started.
#[derive(Debug, Clone, Copy)]
pub struct Ramp {
    pub per_sec: NonZeroU32,
}

impl Ramp {
    /// When the `nth` instance (from 0) is due, counted from the start of the ramp.
    fn due(&self, nth: u32) -> Duration {
        Duration::from_secs_f64(f64::from(nth) / f64::from(self.per_sec.get()))
    }
}

/// What drives [`run`]'s loop.
#[derive(Debug)]
enum Event {
    /// SIGTERM or SIGINT.
    Shutdown,
    /// The ramp says: start the next instance.
    Due,
    /// An instance has its keys and journal and is connecting.
    Ready,
    /// An instance task ended: how, or its panic (which can only come from a running minion).
    Ended(Result<Result<(), InstanceError>, JoinError>),
}

/// What became of the instances so far.
#[derive(Debug, Default)]
struct Tally {
    launched: u32,
    ready: u32,
    ended: u32,
    failed: u32,
    /// Failed before they were ready (so never counted in `ready`).
    failed_unready: u32,
}

impl Tally {
    fn record(&mut self, ended: Result<Result<(), InstanceError>, JoinError>) {
        self.ended += 1;
        match ended {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                self.failed += 1;
                self.failed_unready += u32::from(err.before_ready());
            }
            Err(err) => {
                self.failed += 1;
                error!(cause = %err, "a minion panicked");
            }
        }
    }

    /// Instances that are ready or will never be.
    fn settled(&self) -> u32 {
        self.ready + self.failed_unready
    }
}

/// Runs one instance until `shutdown` resolves, saying on `ready` when it has its state.
///
/// Its keys and journal are created first on the blocking pool: `brine_minion::run` creates them
/// inline (directories, key files written with fsync, a new SQLite database in WAL mode), which
/// for a new instance takes milliseconds of file system work that would otherwise stall a
/// runtime worker, and with it the sockets of every instance that worker serves. `run` then
/// finds them ready and only reads them.
async fn start(
    config: MinionConfig,
    ready: mpsc::UnboundedSender<()>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), InstanceError> {
    let (pki_dir, state_dir) = (config.pki_dir(), config.state_dir.clone());
    tokio::task::spawn_blocking(move || -> Result<(), MinionError> {
        MinionKeys::load_or_create(&pki_dir)?;
        Journal::open(&state_dir)?;
        Ok(())
    })
    .await
    .map_err(InstanceError::StatePanicked)?
    .map_err(InstanceError::State)?;
    // The swarm outlives its instances: nobody to tell only when it is ending anyway.
    let _ = ready.send(());
    brine_minion::run(config, shutdown)
        .await
        .map_err(InstanceError::Run)
}

/// Runs every instance of `swarm` until `shutdown` resolves. `started` is called once, when
/// every instance has been started and has its keys and journal (or has failed), unless all of
/// them failed.
///
/// Ends with an error when every instance failed, or when some did not stop within their own
/// bound plus a margin after `shutdown`.
pub async fn run(
    swarm: Swarm,
    ramp: Ramp,
    shutdown: impl Future<Output = ()>,
    started: impl FnOnce(&Swarm),
) -> Result<(), SwarmError> {
    let stop = CancellationToken::new();
    let mut instances = JoinSet::new();
    let mut tally = Tally::default();
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let mut numbers = swarm.numbers();
    let mut started = Some(started);
    tokio::pin!(shutdown);

    info!(minions = swarm.count, ids = %swarm.id_range(), per_sec = ramp.per_sec.get(), "starting the swarm");
    let ramp_start = Instant::now();
    let next_due = tokio::time::sleep_until(ramp_start);
    tokio::pin!(next_due);
    loop {
        let event = tokio::select! {
            _ = &mut shutdown => Event::Shutdown,
            _ = &mut next_due, if tally.launched < swarm.count => Event::Due,
            Some(()) = ready_rx.recv() => Event::Ready,
            Some(ended) = instances.join_next() => Event::Ended(ended),
        };
        match event {
            Event::Shutdown => break,
            Event::Due => {
                let number = numbers.next().expect("one number per instance");
                let config = swarm.instance(number);
                // At ERROR level, so that the span is on whatever the filter lets through.
                let span = tracing::error_span!("minion", id = %config.id);
                let (ready, shutdown) = (ready_tx.clone(), stop.clone().cancelled_owned());
                instances.spawn(
                    async move {
                        let ended = start(config, ready, shutdown).await;
                        if let Err(err) = &ended {
                            error!(cause = %err, "this minion failed; the others go on");
                        }
                        ended
                    }
                    .instrument(span),
                );
                tally.launched += 1;
                next_due
                    .as_mut()
                    .reset(ramp_start + ramp.due(tally.launched));
            }
            Event::Ready => tally.ready += 1,
            // Before shutdown, only a failed instance ends.
            Event::Ended(ended) => tally.record(ended),
        }
        if tally.failed == swarm.count {
            return Err(SwarmError::AllFailed(swarm.count));
        }
        if tally.settled() == swarm.count {
            if let Some(started) = started.take() {
                info!(took = ?ramp_start.elapsed(), failed = tally.failed, "every minion started");
                started(&swarm);
            }
        }
    }

    let base = swarm.base();
    let grace = base.shutdown_grace + base.request_timeout + STOP_MARGIN;
    info!(running = instances.len(), ?grace, "stopping every minion");
    stop.cancel();
    let stopped = tokio::time::timeout(grace, async {
        while let Some(ended) = instances.join_next().await {
            tally.record(ended);
        }
    })
    .await;
    if stopped.is_err() {
        let left = instances.len();
        warn!(left, "some minions did not stop in time");
        return Err(SwarmError::StopTimeout { left, grace });
    }
    if tally.failed == swarm.count {
        return Err(SwarmError::AllFailed(swarm.count));
    }
    info!(
        stopped = tally.ended,
        failed = tally.failed,
        "swarm stopped"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(id: &str) -> MinionConfig {
        MinionConfig {
            id: id.into(),
            state_dir: "/var/lib/swarm".into(),
            ..MinionConfig::default()
        }
    }

    #[test]
    fn instances_are_numbered_from_first_with_their_own_state() {
        let swarm = Swarm::new(base("m"), 1, 1000).unwrap();
        assert_eq!(swarm.id_range(), "m-00001..m-01000");
        let one = swarm.instance(42);
        assert_eq!(one.id, "m-00042");
        assert_eq!(
            one.state_dir,
            std::path::Path::new("/var/lib/swarm/m-00042")
        );
        assert_eq!(
            one.pki_dir(),
            std::path::Path::new("/var/lib/swarm/m-00042/pki")
        );
        assert_eq!(one.master, swarm.base().master);

        let later = Swarm::new(base("m"), 1001, 1000).unwrap();
        assert_eq!(later.id_range(), "m-01001..m-02000");
        let wide = Swarm::new(base("m"), 99_999, 2).unwrap();
        assert_eq!(wide.id_range(), "m-99999..m-100000");
    }

    #[test]
    fn ids_that_would_be_invalid_are_refused_up_front() {
        let long = "a".repeat(58);
        assert!(Swarm::new(base(&long), 1, 99_999).is_ok());
        assert!(matches!(
            Swarm::new(base(&long), 1, 100_000),
            Err(SwarmError::Id { .. })
        ));
        assert!(matches!(
            Swarm::new(base("m"), u32::MAX, 2),
            Err(SwarmError::Range { .. })
        ));
        assert!(matches!(
            Swarm::new(base("m"), 0, 2),
            Err(SwarmError::Range { .. })
        ));
    }

    #[test]
    fn the_ramp_spreads_starts_evenly() {
        let ramp = Ramp {
            per_sec: NonZeroU32::new(200).unwrap(),
        };
        assert_eq!(ramp.due(0), Duration::ZERO);
        assert_eq!(ramp.due(200), Duration::from_secs(1));
        assert_eq!(ramp.due(1000), Duration::from_secs(5));
    }
}
