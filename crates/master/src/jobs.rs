//! Jobs in flight: who is expected, who is running the job, who has returned, who is watching,
//! and when each job ends.
//!
//! The store is the record; the [`JobHub`] is the live view the master needs to stream returns
//! to CLI watchers and to end a job. A job ends as soon as every expected minion has returned;
//! otherwise its deadline settles each minion without a return: `no_response` when the registry
//! says it is connected, `not_connected` when it is not, except a minion that acknowledged the
//! job and is still connected: it is still running the job, and stays `running` until it
//! returns, disconnects, or the job's time limit passes (Salt's `find_job`, without the
//! polling). The job ends when every expected minion has returned or is settled.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use brine_proto::control::{MinionProgress, MinionState};
use brine_proto::{now_ms, Jid, JobReturn, MinionId};
use tokio::sync::mpsc;

/// What a watcher of a job hears.
#[derive(Debug, Clone)]
pub enum JobEvent {
    Return(JobReturn),
    /// A minion acknowledged the job.
    Running(MinionId),
    /// The deadline has passed and these minions are still running the job; the master waits
    /// for them at most `wait_ms` more.
    StillRunning {
        minions: Vec<MinionId>,
        wait_ms: u64,
    },
    /// The job has ended and its final states are stored.
    Done,
}

#[derive(Debug)]
struct LiveJob {
    expected: BTreeSet<MinionId>,
    /// Minions whose receipt arrived: they are running the job (or have returned).
    acknowledged: BTreeSet<MinionId>,
    /// Minions whose return is stored, with the state it gives ([`MinionState::of_return`]).
    returned: BTreeMap<MinionId, MinionState>,
    /// Final states given without a return: `no_key` from the start, the others at or after
    /// the deadline.
    settled: BTreeMap<MinionId, MinionState>,
    /// Past the deadline: the minions still running the job, and until when (master clock,
    /// ms) the job waits for them. Told to every watcher, also to those who come later.
    overtime: Option<(Vec<MinionId>, u64)>,
    watchers: Vec<mpsc::UnboundedSender<JobEvent>>,
}

impl LiveJob {
    fn is_complete(&self) -> bool {
        self.expected
            .iter()
            .all(|id| self.returned.contains_key(id) || self.settled.contains_key(id))
    }

    /// Where `id` stands, by the one rule ([`MinionState::of`]).
    fn state_of(&self, id: &MinionId) -> MinionState {
        MinionState::of(
            self.returned.get(id).copied(),
            self.settled.get(id).copied(),
            self.acknowledged.contains(id),
        )
    }

    fn tell(&mut self, event: JobEvent) {
        self.watchers.retain(|w| w.send(event.clone()).is_ok());
    }

    fn overtime_event(&self) -> Option<JobEvent> {
        let (minions, until_ms) = self.overtime.clone()?;
        Some(JobEvent::StillRunning {
            minions,
            wait_ms: until_ms.saturating_sub(now_ms()),
        })
    }
}

/// The live jobs of this master process.
#[derive(Debug, Default)]
pub struct JobHub {
    jobs: Mutex<HashMap<Jid, LiveJob>>,
    last_jid_micros: Mutex<u64>,
}

/// A job that has become complete: every expected minion returned or is settled.
#[derive(Debug)]
pub struct Complete;

/// What a look at a job past its deadline decided.
#[derive(Debug, Default, PartialEq)]
pub struct Settlement {
    /// Minions settled by this look, with their final state.
    pub settled: BTreeMap<MinionId, MinionState>,
    /// Minions still running the job.
    pub running: Vec<MinionId>,
}

impl JobHub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Jid, LiveJob>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new jid: the current UTC time, and always later than the last one of this process.
    pub fn mint_jid(&self) -> Jid {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        let mut last = self
            .last_jid_micros
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *last = now.max(*last + 1);
        Jid::from_micros(*last)
    }

    /// Starts tracking a job whose expected minions stand where `minions` says: `waiting`
    /// for a new job, where the store says for a job resumed after a restart. Some(Complete)
    /// when every one of them has a final state already.
    pub fn open(
        &self,
        jid: &Jid,
        minions: impl IntoIterator<Item = (MinionId, MinionState)>,
    ) -> Option<Complete> {
        let mut job = LiveJob {
            expected: BTreeSet::new(),
            acknowledged: BTreeSet::new(),
            returned: BTreeMap::new(),
            settled: BTreeMap::new(),
            overtime: None,
            watchers: Vec::new(),
        };
        for (id, state) in minions {
            match state {
                MinionState::Waiting => {}
                MinionState::Running => {
                    job.acknowledged.insert(id.clone());
                }
                state if state.has_return() => {
                    job.returned.insert(id.clone(), state);
                }
                state => {
                    job.settled.insert(id.clone(), state);
                }
            }
            job.expected.insert(id);
        }
        let complete = job.is_complete().then_some(Complete);
        self.lock().insert(jid.clone(), job);
        complete
    }

    /// Subscribes to a live job's events; None when the job is not live (ended or unknown).
    /// A watcher that comes after the deadline hears first who is still running the job.
    pub fn watch(&self, jid: &Jid) -> Option<mpsc::UnboundedReceiver<JobEvent>> {
        let mut jobs = self.lock();
        let job = jobs.get_mut(jid)?;
        let (tx, rx) = mpsc::unbounded_channel();
        if let Some(event) = job.overtime_event() {
            let _ = tx.send(event);
        }
        job.watchers.push(tx);
        Some(rx)
    }

    /// A stored receipt: the minion is running the job.
    pub fn acknowledged(&self, jid: &Jid, id: &MinionId) {
        if let Some(job) = self.lock().get_mut(jid) {
            if job.acknowledged.insert(id.clone()) && !job.returned.contains_key(id) {
                job.tell(JobEvent::Running(id.clone()));
            }
        }
    }

    /// A stored return: tells the watchers. Some(Complete) when the job can now end.
    pub fn returned(&self, ret: &JobReturn) -> Option<Complete> {
        let mut jobs = self.lock();
        let job = jobs.get_mut(&ret.jid)?;
        job.returned
            .insert(ret.id.clone(), MinionState::of_return(ret));
        job.settled.remove(&ret.id);
        // A return may be 16 MiB: copied only for those who watch.
        if !job.watchers.is_empty() {
            job.tell(JobEvent::Return(ret.clone()));
        }
        job.is_complete().then_some(Complete)
    }

    /// Settles, at or after the deadline, every expected minion that has neither returned nor
    /// been settled: a minion that acknowledged the job and `is_connected` keeps running it
    /// unless `time_is_up` (the job's time limit has passed). None when the job is not live.
    pub fn settle(
        &self,
        jid: &Jid,
        is_connected: impl Fn(&MinionId) -> bool,
        time_is_up: bool,
    ) -> Option<Settlement> {
        let mut jobs = self.lock();
        let job = jobs.get_mut(jid)?;
        let mut settlement = Settlement::default();
        for id in &job.expected {
            if job.returned.contains_key(id) || job.settled.contains_key(id) {
                continue;
            }
            let connected = is_connected(id);
            if connected && job.acknowledged.contains(id) && !time_is_up {
                settlement.running.push(id.clone());
                continue;
            }
            let state = if connected {
                MinionState::NoResponse
            } else {
                MinionState::NotConnected
            };
            settlement.settled.insert(id.clone(), state);
        }
        job.settled.extend(settlement.settled.clone());
        Some(settlement)
    }

    /// The final state of every expected minion that has returned or been settled; None when
    /// the job is not live.
    pub fn final_states(&self, jid: &Jid) -> Option<BTreeMap<MinionId, MinionState>> {
        let jobs = self.lock();
        let job = jobs.get(jid)?;
        let returned = job.returned.iter().map(|(id, state)| (id.clone(), *state));
        Some(job.settled.clone().into_iter().chain(returned).collect())
    }

    /// Tells the watchers, now and later, which minions the job is still waiting for past its
    /// deadline, and until when (master clock, ms).
    pub fn still_running(&self, jid: &Jid, minions: Vec<MinionId>, until_ms: u64) {
        if let Some(job) = self.lock().get_mut(jid) {
            job.overtime = Some((minions, until_ms));
            if let Some(event) = job.overtime_event() {
                job.tell(event);
            }
        }
    }

    /// The job has ended (its final states are stored): tells the watchers and forgets it.
    pub fn close(&self, jid: &Jid) {
        if let Some(job) = self.lock().remove(jid) {
            for watcher in job.watchers {
                let _ = watcher.send(JobEvent::Done);
            }
        }
    }

    /// Where every expected minion of every live job stands (sorted by id), newest job first,
    /// by the rule every answer uses ([`MinionState::of`]).
    /// Jobs are taken while their minions add up to at most `max_minions` (the newest one
    /// always); the second value counts the live jobs left out.
    pub fn progress(&self, max_minions: usize) -> (Vec<(Jid, Vec<MinionProgress>)>, u32) {
        let jobs = self.lock();
        let mut jids: Vec<&Jid> = jobs.keys().collect();
        jids.sort_unstable_by(|a, b| b.cmp(a));
        let mut taken = Vec::new();
        let mut listed = 0usize;
        for jid in &jids {
            let job = &jobs[*jid];
            listed += job.expected.len();
            if listed > max_minions && !taken.is_empty() {
                break;
            }
            let minions = job
                .expected
                .iter()
                .map(|id| MinionProgress {
                    id: id.clone(),
                    state: job.state_of(id),
                })
                .collect();
            taken.push(((*jid).clone(), minions));
        }
        let omitted = (jids.len() - taken.len()) as u32;
        (taken, omitted)
    }

    pub fn is_live(&self, jid: &Jid) -> bool {
        self.lock().contains_key(jid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jids_increase_even_within_one_microsecond() {
        let hub = JobHub::default();
        let mut last = hub.mint_jid();
        for _ in 0..1000 {
            let next = hub.mint_jid();
            assert!(next > last);
            last = next;
        }
    }

    fn id(name: &str) -> MinionId {
        MinionId::new(name).unwrap()
    }

    fn waiting<const N: usize>(ids: [MinionId; N]) -> [(MinionId, MinionState); N] {
        ids.map(|id| (id, MinionState::Waiting))
    }

    fn ret(jid: &Jid, minion: &MinionId) -> JobReturn {
        JobReturn::new(minion.clone(), jid.clone(), "test.ping", true)
    }

    #[test]
    fn watchers_hear_returns_and_the_end() {
        let hub = JobHub::default();
        let jid = hub.mint_jid();
        let (a, b, c) = (id("a"), id("b"), id("c"));
        hub.open(&jid, waiting([a.clone(), b.clone(), c.clone()]));
        let mut rx = hub.watch(&jid).unwrap();
        assert!(hub.returned(&ret(&jid, &a)).is_none());
        let settlement = hub.settle(&jid, |id| id == &b, false).unwrap();
        assert!(settlement.running.is_empty());
        let states = hub.final_states(&jid).unwrap();
        assert_eq!(states[&a], MinionState::Returned);
        assert_eq!(states[&b], MinionState::NoResponse);
        assert_eq!(states[&c], MinionState::NotConnected);
        hub.close(&jid);
        assert!(matches!(rx.try_recv(), Ok(JobEvent::Return(_))));
        assert!(matches!(rx.try_recv(), Ok(JobEvent::Done)));
        assert!(!hub.is_live(&jid));
    }

    #[test]
    fn a_minion_running_the_job_is_not_settled_at_the_deadline() {
        let hub = JobHub::default();
        let jid = hub.mint_jid();
        let (quiet, busy, gone) = (id("quiet"), id("busy"), id("gone"));
        hub.open(&jid, waiting([quiet.clone(), busy.clone(), gone.clone()]));
        hub.acknowledged(&jid, &busy);
        hub.acknowledged(&jid, &gone);
        let connected = |id: &MinionId| id != &gone;
        let settlement = hub.settle(&jid, connected, false).unwrap();
        assert_eq!(settlement.running, vec![busy.clone()]);
        assert_eq!(
            settlement.settled,
            BTreeMap::from([
                (gone.clone(), MinionState::NotConnected),
                (quiet.clone(), MinionState::NoResponse),
            ])
        );
        // Watchers, also those who come later, hear who is still running it.
        let mut early = hub.watch(&jid).unwrap();
        hub.still_running(&jid, settlement.running.clone(), now_ms() + 60_000);
        let mut late = hub.watch(&jid).unwrap();
        for rx in [&mut early, &mut late] {
            let Ok(JobEvent::StillRunning { minions, wait_ms }) = rx.try_recv() else {
                panic!("no still_running event");
            };
            assert_eq!(minions, vec![busy.clone()]);
            assert!(wait_ms > 50_000 && wait_ms <= 60_000, "{wait_ms}");
        }
        // A second look settles nobody twice; its return completes the job.
        let again = hub.settle(&jid, connected, false).unwrap();
        assert!(again.settled.is_empty());
        assert!(hub.returned(&ret(&jid, &busy)).is_some());
        assert_eq!(
            hub.final_states(&jid).unwrap()[&busy],
            MinionState::Returned
        );
    }

    #[test]
    fn past_the_time_limit_a_running_minion_is_no_response() {
        let hub = JobHub::default();
        let jid = hub.mint_jid();
        let busy = id("busy");
        hub.open(&jid, [(busy.clone(), MinionState::Running)]);
        assert_eq!(
            hub.settle(&jid, |_| true, false).unwrap().running,
            vec![busy.clone()]
        );
        let settlement = hub.settle(&jid, |_| true, true).unwrap();
        assert!(settlement.running.is_empty());
        assert_eq!(settlement.settled[&busy], MinionState::NoResponse);
    }

    #[test]
    fn progress_says_where_each_minion_stands_newest_job_first() {
        let hub = JobHub::default();
        let (old, new) = (hub.mint_jid(), hub.mint_jid());
        let (a, b, c, d) = (id("a"), id("b"), id("c"), id("d"));
        hub.open(&old, waiting([a.clone(), b.clone()]));
        hub.open(&new, waiting([d.clone(), c.clone(), b.clone(), a.clone()]));
        hub.acknowledged(&new, &b);
        hub.acknowledged(&new, &c);
        assert!(hub.returned(&ret(&new, &c)).is_none());
        hub.settle(&new, |id| id == &b, false).unwrap();
        let (jobs, omitted) = hub.progress(100);
        assert_eq!(omitted, 0);
        let states = |i: usize| -> Vec<(&str, MinionState)> {
            jobs[i].1.iter().map(|m| (m.id.as_str(), m.state)).collect()
        };
        assert_eq!(jobs[0].0, new);
        assert_eq!(
            states(0),
            [
                ("a", MinionState::NotConnected),
                ("b", MinionState::Running),
                ("c", MinionState::Returned),
                ("d", MinionState::NotConnected),
            ]
        );
        assert_eq!(jobs[1].0, old);
        assert_eq!(
            states(1),
            [("a", MinionState::Waiting), ("b", MinionState::Waiting)]
        );
        // A budget of minions: the newest job always, older ones while they fit.
        let (jobs, omitted) = hub.progress(5);
        assert_eq!((jobs.len(), omitted), (1, 1));
        let (jobs, omitted) = hub.progress(1);
        assert_eq!((jobs.len(), omitted), (1, 1));
        assert_eq!(jobs[0].0, new);
        hub.close(&new);
        hub.close(&old);
        assert_eq!(hub.progress(100), (vec![], 0));
    }

    #[test]
    fn progress_and_final_states_say_rejected_and_no_key_as_the_store_does() {
        let hub = JobHub::default();
        let jid = hub.mint_jid();
        let (refused, ghost, slow) = (id("refused"), id("ghost"), id("slow"));
        let minions = [
            (refused.clone(), MinionState::Waiting),
            (ghost.clone(), MinionState::NoKey),
            (slow.clone(), MinionState::Waiting),
        ];
        assert!(hub.open(&jid, minions).is_none(), "slow is still to come");
        let mut rejection = ret(&jid, &refused);
        rejection.rejected = true;
        assert!(hub.returned(&rejection).is_none());
        let (jobs, _) = hub.progress(100);
        let states: Vec<MinionState> = jobs[0].1.iter().map(|m| m.state).collect();
        assert_eq!(
            states,
            [
                MinionState::NoKey,
                MinionState::Rejected,
                MinionState::Waiting
            ]
        );
        assert!(hub.returned(&ret(&jid, &slow)).is_some());
        let states = hub.final_states(&jid).unwrap();
        assert_eq!(states[&refused], MinionState::Rejected);
        assert_eq!(states[&ghost], MinionState::NoKey);
        // A job for nobody but ids without a key is complete as it opens.
        let none = hub.mint_jid();
        assert!(hub.open(&none, [(ghost, MinionState::NoKey)]).is_some());
    }

    #[test]
    fn a_late_return_replaces_a_settled_state() {
        let hub = JobHub::default();
        let jid = hub.mint_jid();
        let (a, b) = (id("a"), id("b"));
        hub.open(&jid, waiting([a.clone(), b.clone()]));
        hub.settle(&jid, |_| false, false).unwrap();
        assert!(hub.returned(&ret(&jid, &a)).is_some());
        let states = hub.final_states(&jid).unwrap();
        assert_eq!(states[&a], MinionState::Returned);
        assert_eq!(states[&b], MinionState::NotConnected);
    }
}
