//! The Noise sessions of minions on the REP socket: one per minion, named by a random id that
//! the minion puts on every `sealed` envelope.
//!
//! A session is made by an accepted minion's handshake and replaces that minion's previous
//! one. It ends when the minion's key is rejected or deleted, when a message fails to open
//! (altered, replayed or out of order: the minion starts again with a new handshake), and when
//! the master restarts (sessions live in memory only; minions get `no_session` and start again).

use std::collections::HashMap;

use brine_crypto::Session;
use brine_proto::MinionId;

/// One minion's session.
#[derive(Debug)]
pub struct Entry {
    pub id: MinionId,
    pub noise: Session,
}

/// Sessions by id, at most one per minion.
#[derive(Debug, Default)]
pub struct Sessions {
    by_sid: HashMap<u64, Entry>,
    by_minion: HashMap<MinionId, u64>,
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

    /// Stores `noise` as `id`'s session under `sid`, ending its previous one.
    pub fn insert(&mut self, sid: u64, id: MinionId, noise: Session) {
        if let Some(old) = self.by_minion.insert(id.clone(), sid) {
            self.by_sid.remove(&old);
        }
        self.by_sid.insert(sid, Entry { id, noise });
    }

    /// Takes a session out while a request is handled; [`Sessions::put_back`] returns it.
    pub fn take(&mut self, sid: u64) -> Option<Entry> {
        let entry = self.by_sid.remove(&sid)?;
        self.by_minion.remove(&entry.id);
        Some(entry)
    }

    /// Returns a session taken with [`Sessions::take`], unless the minion has made a newer one
    /// in the meantime.
    pub fn put_back(&mut self, sid: u64, entry: Entry) {
        if !self.by_minion.contains_key(&entry.id) {
            self.insert(sid, entry.id.clone(), entry.noise);
        }
    }

    /// Ends `id`'s session (its key was rejected or deleted).
    pub fn end(&mut self, id: &MinionId) {
        if let Some(sid) = self.by_minion.remove(id) {
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
