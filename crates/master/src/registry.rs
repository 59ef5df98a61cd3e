//! The registry of minions: who the master knows, who is connected right now, and the grains
//! each reported last (so a grain target's expected set is known before the job goes out).
//!
//! "Connected" is exact, not guessed: a minion is connected while its last message (hello,
//! keepalive, or any other request) is younger than the liveness window (`missed_keepalives`
//! keepalive intervals) and it has not said goodbye. Known minions and their grains survive a
//! master restart through the store; they start as not connected until they speak.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use brine_proto::control::MinionStatus;
use brine_proto::{now_ms, Map, MinionId, TargetMatcher};

use crate::store::KnownMinion;

#[derive(Debug)]
struct Entry {
    /// When the master last heard from it in this process; None since a restart.
    heard: Option<Instant>,
    last_seen_ms: u64,
    said_goodbye: bool,
    version: String,
    grains: Map,
}

/// Minion liveness, shared by the return port and the control socket.
#[derive(Debug)]
pub struct Registry {
    window: Duration,
    minions: Mutex<HashMap<MinionId, Entry>>,
}

impl Registry {
    pub fn new(window: Duration, known: Vec<KnownMinion>) -> Self {
        let minions = known
            .into_iter()
            .map(|m| {
                (
                    m.id,
                    Entry {
                        heard: None,
                        last_seen_ms: m.last_seen_ms,
                        said_goodbye: false,
                        version: m.version,
                        grains: m.grains,
                    },
                )
            })
            .collect();
        Self {
            window,
            minions: Mutex::new(minions),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<MinionId, Entry>> {
        self.minions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A hello: the minion is known and connected from now on.
    pub fn hello(&self, id: &MinionId, version: &str, grains: Map) {
        self.lock().insert(
            id.clone(),
            Entry {
                heard: Some(Instant::now()),
                last_seen_ms: now_ms(),
                said_goodbye: false,
                version: version.to_string(),
                grains,
            },
        );
    }

    /// The minion's grains changed. False when the minion is unknown.
    pub fn set_grains(&self, id: &MinionId, grains: Map) -> bool {
        match self.lock().get_mut(id) {
            Some(entry) => {
                entry.grains = grains;
                true
            }
            None => false,
        }
    }

    /// Any other request: refreshes liveness. False when the minion is unknown.
    pub fn seen(&self, id: &MinionId) -> bool {
        match self.lock().get_mut(id) {
            Some(entry) => {
                entry.heard = Some(Instant::now());
                entry.last_seen_ms = now_ms();
                entry.said_goodbye = false;
                true
            }
            None => false,
        }
    }

    /// The minion said it is stopping.
    pub fn goodbye(&self, id: &MinionId) {
        if let Some(entry) = self.lock().get_mut(id) {
            entry.said_goodbye = true;
            entry.last_seen_ms = now_ms();
        }
    }

    /// Whether the minion is registered (its key accepted and it has said hello at some time).
    pub fn is_known(&self, id: &MinionId) -> bool {
        self.lock().contains_key(id)
    }

    /// Forgets a minion whose key was rejected or deleted: it is expected by no new job.
    pub fn forget(&self, id: &MinionId) {
        self.lock().remove(id);
    }

    pub fn is_connected(&self, id: &MinionId) -> bool {
        self.lock()
            .get(id)
            .is_some_and(|entry| self.entry_connected(entry))
    }

    fn entry_connected(&self, entry: &Entry) -> bool {
        !entry.said_goodbye && entry.heard.is_some_and(|t| t.elapsed() < self.window)
    }

    /// Known minions the target matches (by id and last reported grains), sorted.
    pub fn matching(&self, matcher: &TargetMatcher) -> Vec<MinionId> {
        let mut ids: Vec<MinionId> = self
            .lock()
            .iter()
            .filter(|(id, entry)| matcher.matches(id.as_str(), &entry.grains))
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// Every known minion with its liveness, sorted by id.
    pub fn snapshot(&self) -> Vec<MinionStatus> {
        self.statuses(|_, _| true)
    }

    /// The known minions the target matches, with their liveness, sorted by id.
    pub fn matching_statuses(&self, matcher: &TargetMatcher) -> Vec<MinionStatus> {
        self.statuses(|id, entry| matcher.matches(id.as_str(), &entry.grains))
    }

    fn statuses(&self, keep: impl Fn(&MinionId, &Entry) -> bool) -> Vec<MinionStatus> {
        let minions = self.lock();
        let mut all: Vec<MinionStatus> = minions
            .iter()
            .filter(|(id, entry)| keep(id, entry))
            .map(|(id, entry)| MinionStatus {
                id: id.clone(),
                connected: self.entry_connected(entry),
                last_seen_ms: entry.last_seen_ms,
                version: entry.version.clone(),
            })
            .collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use brine_proto::Target;

    #[test]
    fn connected_means_heard_within_the_window_and_no_goodbye() {
        let a = MinionId::new("a").unwrap();
        let b = MinionId::new("b").unwrap();
        let known = vec![KnownMinion {
            id: b.clone(),
            last_seen_ms: 1,
            version: "0".into(),
            grains: Map::new(),
        }];
        let registry = Registry::new(Duration::from_secs(60), known);
        assert!(!registry.seen(&a), "unknown minions are not refreshed");
        assert!(
            !registry.is_connected(&b),
            "known from the store, not heard yet"
        );
        registry.hello(&a, "1", Map::new());
        assert!(registry.is_connected(&a));
        registry.goodbye(&a);
        assert!(!registry.is_connected(&a));
        assert!(registry.seen(&b));
        assert!(registry.is_connected(&b));
        let all = Target::Glob("*".into()).compile().unwrap();
        assert_eq!(registry.matching(&all), vec![a, b]);

        let expired = Registry::new(Duration::ZERO, vec![]);
        let c = MinionId::new("c").unwrap();
        expired.hello(&c, "1", Map::new());
        assert!(!expired.is_connected(&c));
    }

    #[test]
    fn grain_targets_match_the_grains_last_reported() {
        let web = MinionId::new("web1").unwrap();
        let db = MinionId::new("db1").unwrap();
        let grains = |os: &str| {
            let mut m = Map::new();
            m.insert("os".into(), os.into());
            m
        };
        let known = vec![KnownMinion {
            id: db.clone(),
            last_seen_ms: 1,
            version: "0".into(),
            grains: grains("Debian"),
        }];
        let registry = Registry::new(Duration::from_secs(60), known);
        registry.hello(&web, "1", grains("Ubuntu"));
        let debian = Target::Grain(brine_proto::GrainExpr::new("os:Debian"))
            .compile()
            .unwrap();
        assert_eq!(
            registry.matching(&debian),
            vec![db.clone()],
            "from the store"
        );
        assert!(registry.set_grains(&web, grains("Debian")));
        assert_eq!(registry.matching(&debian), vec![db, web]);
        assert!(!registry.set_grains(&MinionId::new("x").unwrap(), Map::new()));
    }
}
