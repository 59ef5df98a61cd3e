//! Jobs in flight: who is expected, who has returned, who is watching, and when each job ends.
//!
//! The store is the record; the [`JobHub`] is the live view the master needs to stream returns
//! to CLI watchers and to end a job at its deadline (or as soon as every expected minion has
//! returned). Ending a job writes each expected minion's final state to the store: `returned`,
//! or, for the rest, `no_response` when the registry says it is connected and `not_connected`
//! when it is not.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use brine_proto::control::MinionState;
use brine_proto::{Jid, JobReturn, MinionId};
use tokio::sync::mpsc;

/// What a watcher of a job hears.
#[derive(Debug, Clone)]
pub enum JobEvent {
    Return(JobReturn),
    /// The job has ended and its final states are stored.
    Done,
}

#[derive(Debug)]
struct LiveJob {
    expected: BTreeSet<MinionId>,
    returned: BTreeSet<MinionId>,
    watchers: Vec<mpsc::UnboundedSender<JobEvent>>,
}

/// The live jobs of this master process.
#[derive(Debug, Default)]
pub struct JobHub {
    jobs: Mutex<HashMap<Jid, LiveJob>>,
    last_jid_micros: Mutex<u64>,
}

/// A job that has become complete (every expected minion returned).
#[derive(Debug)]
pub struct Complete;

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

    /// Starts tracking a job; `returned` are minions whose returns are already stored.
    pub fn open(
        &self,
        jid: &Jid,
        expected: impl IntoIterator<Item = MinionId>,
        returned: impl IntoIterator<Item = MinionId>,
    ) {
        self.lock().insert(
            jid.clone(),
            LiveJob {
                expected: expected.into_iter().collect(),
                returned: returned.into_iter().collect(),
                watchers: Vec::new(),
            },
        );
    }

    /// Subscribes to a live job's events; None when the job is not live (ended or unknown).
    pub fn watch(&self, jid: &Jid) -> Option<mpsc::UnboundedReceiver<JobEvent>> {
        let mut jobs = self.lock();
        let job = jobs.get_mut(jid)?;
        let (tx, rx) = mpsc::unbounded_channel();
        job.watchers.push(tx);
        Some(rx)
    }

    /// A stored return: tells the watchers. Some(Complete) when every expected minion has now
    /// returned, so the job can end before its deadline.
    pub fn returned(&self, ret: &JobReturn) -> Option<Complete> {
        let mut jobs = self.lock();
        let job = jobs.get_mut(&ret.jid)?;
        job.returned.insert(ret.id.clone());
        job.watchers
            .retain(|w| w.send(JobEvent::Return(ret.clone())).is_ok());
        (job.returned.len() >= job.expected.len()).then_some(Complete)
    }

    /// The final state of every expected minion, judged now; None when the job is not live.
    pub fn final_states(
        &self,
        jid: &Jid,
        is_connected: impl Fn(&MinionId) -> bool,
    ) -> Option<BTreeMap<MinionId, MinionState>> {
        let jobs = self.lock();
        let job = jobs.get(jid)?;
        Some(
            job.expected
                .iter()
                .map(|id| {
                    let state = if job.returned.contains(id) {
                        MinionState::Returned
                    } else if is_connected(id) {
                        MinionState::NoResponse
                    } else {
                        MinionState::NotConnected
                    };
                    (id.clone(), state)
                })
                .collect(),
        )
    }

    /// The job has ended (its final states are stored): tells the watchers and forgets it.
    pub fn close(&self, jid: &Jid) {
        if let Some(job) = self.lock().remove(jid) {
            for watcher in job.watchers {
                let _ = watcher.send(JobEvent::Done);
            }
        }
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

    #[test]
    fn watchers_hear_returns_and_the_end() {
        let hub = JobHub::default();
        let jid = hub.mint_jid();
        let a = MinionId::new("a").unwrap();
        let b = MinionId::new("b").unwrap();
        hub.open(&jid, [a.clone(), b.clone()], []);
        let mut rx = hub.watch(&jid).unwrap();
        let ret = JobReturn {
            id: a.clone(),
            jid: jid.clone(),
            fun: "test.ping".into(),
            ret: true.into(),
            retcode: 0,
            success: true,
            started_ms: 0,
            finished_ms: 0,
            interrupted: false,
        };
        assert!(hub.returned(&ret).is_none());
        let states = hub.final_states(&jid, |id| id == &b).unwrap();
        assert_eq!(states[&a], MinionState::Returned);
        assert_eq!(states[&b], MinionState::NoResponse);
        hub.close(&jid);
        assert!(matches!(rx.try_recv(), Ok(JobEvent::Return(_))));
        assert!(matches!(rx.try_recv(), Ok(JobEvent::Done)));
        assert!(!hub.is_live(&jid));
    }
}
