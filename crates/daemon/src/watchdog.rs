//! The systemd watchdog (`Type=notify`, `WatchdogSec=`): tells the service manager when the
//! daemon is ready and when it stops, and that it is alive only while every loop that holds a
//! [`Heartbeat`] has turned since the last time it said so. A loop stuck inside a dependency (a
//! thread blocked on a lock, a future that is never woken) then gets the daemon restarted
//! instead of leaving it running and deaf.
//!
//! A watched loop beats on every turn. An idle loop must still turn: it selects on
//! [`Heartbeat::ticker`] too, which fires four times per check, so that idle is never taken for
//! stuck; a thread with no loop of ours runs [`Heartbeat::pulse`] instead, which beats for as long
//! as the thread is free to run it. The watchdog checks the heartbeats at half the interval
//! systemd gives in `WATCHDOG_USEC` (as sd_watchdog_enabled(3) advises) and sends `WATCHDOG=1`
//! only when each one moved since the check before. Without `WATCHDOG_USEC`, or with a
//! `WATCHDOG_PID` that is not this process's, nothing is checked; without `NOTIFY_SOCKET`
//! nothing is sent (`sd_notify` does nothing then).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::time::{Interval, MissedTickBehavior};
use tracing::{error, info, warn};

/// How often an idle loop turns when no watchdog checks it: often enough to cost nothing.
const TURN_UNWATCHED: Duration = Duration::from_secs(3600);
/// How many times a loop turns, at least, between two checks.
const TURNS_PER_CHECK: u32 = 4;

/// The daemon's watchdog: the heartbeats of the loops it watches and how often it checks them.
#[derive(Debug)]
pub struct Watchdog {
    /// Half of `WATCHDOG_USEC`; `None` when systemd watches nothing.
    check_every: Option<Duration>,
    heartbeats: Mutex<Vec<Heartbeat>>,
}

/// The running checks of a [`Watchdog`]; dropping it stops them (before the loops end, at
/// shutdown).
#[derive(Debug)]
pub struct Watching {
    _stop: std::sync::mpsc::Sender<()>,
}

/// One watched loop's count of turns.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    beats: Arc<Beats>,
    turn_every: Duration,
}

#[derive(Debug)]
struct Beats {
    name: String,
    turns: AtomicU64,
}

impl Watchdog {
    /// The watchdog systemd asked for in this process's environment (none outside systemd).
    pub fn from_env() -> Self {
        Self::checking_every(sd_notify::watchdog_enabled().map(|timeout| timeout / 2))
    }

    fn checking_every(check_every: Option<Duration>) -> Self {
        Self {
            check_every,
            heartbeats: Mutex::default(),
        }
    }

    /// A new heartbeat named `name` (in the log line that says a loop stopped), watched from
    /// the next check on.
    pub fn heartbeat(&self, name: impl Into<String>) -> Heartbeat {
        let heartbeat = Heartbeat {
            beats: Arc::new(Beats {
                name: name.into(),
                turns: AtomicU64::new(0),
            }),
            turn_every: self
                .check_every
                .map_or(TURN_UNWATCHED, |every| every / TURNS_PER_CHECK),
        };
        self.heartbeats().push(heartbeat.clone());
        heartbeat
    }

    fn heartbeats(&self) -> std::sync::MutexGuard<'_, Vec<Heartbeat>> {
        self.heartbeats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the thread that checks the heartbeats every half watchdog interval and tells
    /// systemd the daemon is alive after every check that found each of them moved; dropping
    /// the returned [`Watching`] stops it. None when systemd watches nothing.
    ///
    /// A thread of its own, not a task: the loops it watches share a runtime, and a tokio
    /// worker blocked for good can hold up the others (whoever holds the runtime's I/O and
    /// timer driver may be the one blocked), which would silence the watchdog without a word
    /// about which loop stopped.
    pub fn start(self: &Arc<Self>) -> std::io::Result<Option<Watching>> {
        let Some(every) = self.check_every else {
            return Ok(None);
        };
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let watchdog = Arc::clone(self);
        std::thread::Builder::new()
            .name("brine-watchdog".into())
            .spawn(move || watchdog.check(every, &stopped))?;
        info!(every = ?every, "telling systemd's watchdog the daemon is alive while its loops turn");
        Ok(Some(Watching { _stop: stop }))
    }

    /// The checking thread's loop, until `stopped` says so (its sender is dropped).
    fn check(&self, every: Duration, stopped: &std::sync::mpsc::Receiver<()>) {
        let mut seen = Vec::new();
        self.stuck(&mut seen);
        let mut stalled = false;
        loop {
            // A whole period between two checks, even after this thread was held up (a check
            // right after another would find the loops stuck): the pings drift by microseconds.
            if stopped.recv_timeout(every) != Err(RecvTimeoutError::Timeout) {
                return;
            }
            let stuck = self.stuck(&mut seen);
            if stuck.is_empty() {
                if stalled {
                    info!("every watched loop turns again; telling systemd the daemon is alive");
                    stalled = false;
                }
                notify(NotifyState::Watchdog, "that the daemon is alive");
            } else {
                // Once per check while it lasts: systemd ends it within WatchdogSec.
                error!(loops = ?stuck, "stopped turning: systemd is no longer told that the daemon is alive, and restarts it when WatchdogSec passes");
                stalled = true;
            }
        }
    }

    /// The names of the heartbeats that did not move since `seen` (their turns at the check
    /// before, in the order they were made), which becomes their turns now. Heartbeats made
    /// since that check are judged from the next one.
    fn stuck(&self, seen: &mut Vec<u64>) -> Vec<String> {
        let heartbeats = self.heartbeats();
        let mut stuck = Vec::new();
        for (i, heartbeat) in heartbeats.iter().enumerate() {
            let turns = heartbeat.beats.turns.load(Ordering::Relaxed);
            match seen.get_mut(i) {
                Some(before) => {
                    if *before == turns {
                        stuck.push(heartbeat.beats.name.clone());
                    }
                    *before = turns;
                }
                None => seen.push(turns),
            }
        }
        stuck
    }
}

impl Heartbeat {
    /// The loop turned.
    pub fn beat(&self) {
        self.beats.turns.fetch_add(1, Ordering::Relaxed);
    }

    /// A timer for the loop's `select!`: an idle loop must still turn this often (a quarter of
    /// the watchdog's check period). Its first tick is at once.
    pub fn ticker(&self) -> Interval {
        let mut ticker = tokio::time::interval(self.turn_every);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ticker
    }

    /// Beats at every tick of [`Heartbeat::ticker`], for ever: run on a runtime of its own
    /// thread, it shows that nothing blocks that thread.
    pub async fn pulse(self) {
        let mut ticker = self.ticker();
        loop {
            ticker.tick().await;
            self.beat();
        }
    }
}

/// Tells systemd the daemon is serving (`READY=1`): `systemctl start` returns, and units
/// ordered after it start.
pub fn ready() {
    notify(NotifyState::Ready, "that the daemon is ready");
}

/// Tells systemd the daemon is shutting down (`STOPPING=1`).
pub fn stopping() {
    notify(NotifyState::Stopping, "that the daemon is stopping");
}

fn notify(state: NotifyState<'_>, what: &str) {
    if let Err(err) = sd_notify::notify(&[state]) {
        warn!(cause = %err, "could not tell systemd {what}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_that_did_not_move_since_the_last_check_is_stuck() {
        let watchdog = Watchdog::checking_every(Some(Duration::from_secs(1)));
        let (publish, control) = (watchdog.heartbeat("publish"), watchdog.heartbeat("control"));
        let mut seen = Vec::new();
        assert!(
            watchdog.stuck(&mut seen).is_empty(),
            "the first look sets the baseline"
        );
        publish.beat();
        control.beat();
        assert!(watchdog.stuck(&mut seen).is_empty());
        publish.beat();
        assert_eq!(watchdog.stuck(&mut seen), ["control"]);
        let late = watchdog.heartbeat("late");
        control.beat();
        assert_eq!(
            watchdog.stuck(&mut seen),
            ["publish"],
            "a new heartbeat is judged from the next check"
        );
        drop(late); // the watchdog keeps watching it: a loop that ended has stopped turning
        publish.beat();
        control.beat();
        assert_eq!(watchdog.stuck(&mut seen), ["late"]);
    }

    #[test]
    fn loops_turn_four_times_per_check_and_rarely_when_unwatched() {
        let watched = Watchdog::checking_every(Some(Duration::from_secs(15)));
        assert_eq!(
            watched.heartbeat("a").turn_every,
            Duration::from_millis(3750)
        );
        let unwatched = Watchdog::checking_every(None);
        assert_eq!(unwatched.heartbeat("a").turn_every, TURN_UNWATCHED);
    }
}
