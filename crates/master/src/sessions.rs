//! The Noise sessions of minions on the REP socket, named by a random id that the minion puts
//! on every `sealed` envelope.
//!
//! A handshake by an accepted key makes an *unproven* session: the handshake's first message
//! can be replayed by anyone who recorded it, and a replay must change nothing. Only when the
//! session's first sealed request opens (which needs the minion's own ephemeral secret) does the
//! session become the minion's one *proven* session, replacing its previous one; only then is
//! the minion registered as connected. A few unproven sessions per minion are kept, the oldest
//! dropped first.
//!
//! A session ends when the minion's key is rejected or deleted, when a newer proven session
//! replaces it, and when the master restarts (sessions live in memory only; minions get
//! `no_session` and start again). A message that fails to open leaves its session as it was.

use std::collections::{HashMap, VecDeque};

use brine_crypto::Session;
use brine_proto::{Map, MinionId};

/// The most unproven sessions kept per minion.
pub const MAX_UNPROVEN_PER_MINION: usize = 4;

/// One session.
#[derive(Debug)]
pub struct Entry {
    pub id: MinionId,
    pub noise: Session,
    /// What the minion's hello said, while the session is unproven.
    pub unproven: Option<Hello>,
}

/// What a hello tells the master, registered once its session proves itself.
#[derive(Debug, Clone)]
pub struct Hello {
    pub version: String,
    pub grains: Map,
}

/// Sessions by id: at most one proven and a few unproven per minion.
#[derive(Debug, Default)]
pub struct Sessions {
    by_sid: HashMap<u64, Entry>,
    proven: HashMap<MinionId, u64>,
    unproven: HashMap<MinionId, VecDeque<u64>>,
}

impl Sessions {
    /// A session id not in use (never 0).
    pub fn fresh_sid(&self) -> u64 {
        loop {
            let sid = rand::random::<u64>();
            if sid != 0 && !self.by_sid.contains_key(&sid) {
                return sid;
            }
        }
    }

    /// Stores a session made by a handshake, unproven until its first sealed request opens.
    pub fn insert_unproven(&mut self, sid: u64, id: MinionId, hello: Hello, noise: Session) {
        let queue = self.unproven.entry(id.clone()).or_default();
        queue.push_back(sid);
        while queue.len() > MAX_UNPROVEN_PER_MINION {
            if let Some(oldest) = queue.pop_front() {
                self.by_sid.remove(&oldest);
            }
        }
        self.by_sid.insert(
            sid,
            Entry {
                id,
                noise,
                unproven: Some(hello),
            },
        );
    }

    /// Takes a session out while a request is handled; [`Sessions::put_back`] or
    /// [`Sessions::prove`] returns it.
    pub fn take(&mut self, sid: u64) -> Option<Entry> {
        let entry = self.by_sid.remove(&sid)?;
        if self.proven.get(&entry.id) == Some(&sid) {
            self.proven.remove(&entry.id);
        }
        Some(entry)
    }

    /// Returns a session taken with [`Sessions::take`]: an unproven one as it was, a proven one
    /// unless the minion has proven a newer one in the meantime.
    pub fn put_back(&mut self, sid: u64, entry: Entry) {
        if entry.unproven.is_some() {
            if self
                .unproven
                .get(&entry.id)
                .is_some_and(|q| q.contains(&sid))
            {
                self.by_sid.insert(sid, entry);
            }
        } else if !self.proven.contains_key(&entry.id) {
            self.proven.insert(entry.id.clone(), sid);
            self.by_sid.insert(sid, entry);
        }
    }

    /// The session's first sealed request opened: it becomes the minion's session, ending the
    /// previous one.
    pub fn prove(&mut self, sid: u64, mut entry: Entry) {
        entry.unproven = None;
        if let Some(queue) = self.unproven.get_mut(&entry.id) {
            queue.retain(|s| *s != sid);
        }
        if let Some(old) = self.proven.insert(entry.id.clone(), sid) {
            self.by_sid.remove(&old);
        }
        self.by_sid.insert(sid, entry);
    }

    /// Ends every session of `id` (its key was rejected or deleted).
    pub fn end(&mut self, id: &MinionId) {
        if let Some(sid) = self.proven.remove(id) {
            self.by_sid.remove(&sid);
        }
        for sid in self.unproven.remove(id).unwrap_or_default() {
            self.by_sid.remove(&sid);
        }
    }

    pub fn len(&self) -> usize {
        self.by_sid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_sid.is_empty()
    }
}
