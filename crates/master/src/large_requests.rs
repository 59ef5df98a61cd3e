//! How many large requests (returns of up to 16 MiB) the return port handles at once.
//!
//! A request is opened, decoded and stored in a task of its own, many at a time, and a large
//! one costs a few times its size while it is (the frame, its plaintext, the decoded return,
//! the row being written). A minion's own REQ socket sends one request at a time, but one key
//! can hold several sessions (a proven one, a few unproven ones, each on a connection of its
//! own) and send on all of them at once: 4 returns of 16 MiB raised the master by 236 MB. So a
//! large request is handled only if its minion has no other large request being handled and
//! the large requests being handled, all minions together, stay within a budget of bytes.
//! Any other is answered `unavailable` at once, without being decoded: a minion keeps the
//! return spooled and sends it again after a pause.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use brine_proto::MinionId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A request above this size (sealed) is large. Everything but a return is far smaller (the
/// largest, grains, at most 48 KiB); most returns are too.
pub const LARGE_REQUEST_BYTES: usize = 64 * 1024;
/// The most bytes of large requests handled at once: four returns of the largest size, or a
/// hundred of 640 KiB. The store writes one at a time anyway; more at once would only wait.
pub const LARGE_REQUESTS_BUDGET: usize = 64 * 1024 * 1024;

/// The large requests being handled.
#[derive(Debug)]
pub struct LargeRequests {
    bytes: Arc<Semaphore>,
    minions: Mutex<HashSet<MinionId>>,
}

/// Why a large request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Busy {
    #[error("another large request of this minion is being handled; send it again later")]
    Minion,
    #[error("the master is handling as many large requests as it takes; send it again later")]
    Budget,
}

/// A large request being handled: its minion's turn and its bytes of the budget, given back
/// when it is dropped.
#[derive(Debug)]
pub struct Admitted {
    owner: Arc<LargeRequests>,
    id: MinionId,
    _bytes: OwnedSemaphorePermit,
}

impl LargeRequests {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            bytes: Arc::new(Semaphore::new(LARGE_REQUESTS_BUDGET)),
            minions: Mutex::new(HashSet::new()),
        })
    }

    fn minions(&self) -> std::sync::MutexGuard<'_, HashSet<MinionId>> {
        self.minions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a large request of `len` bytes from `id`, or says why not.
    pub fn admit(self: &Arc<Self>, id: &MinionId, len: usize) -> Result<Admitted, Busy> {
        if !self.minions().insert(id.clone()) {
            return Err(Busy::Minion);
        }
        let permits = u32::try_from(len.min(LARGE_REQUESTS_BUDGET)).expect("the budget fits");
        match Arc::clone(&self.bytes).try_acquire_many_owned(permits) {
            Ok(bytes) => Ok(Admitted {
                owner: Arc::clone(self),
                id: id.clone(),
                _bytes: bytes,
            }),
            Err(_) => {
                self.minions().remove(id);
                Err(Busy::Budget)
            }
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.owner.minions().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX_RETURN: usize = 16 * 1024 * 1024;

    fn id(name: &str) -> MinionId {
        MinionId::new(name).unwrap()
    }

    #[test]
    fn one_large_request_per_minion_at_a_time() {
        let large = LargeRequests::new();
        let first = large.admit(&id("web1"), MAX_RETURN).unwrap();
        assert_eq!(
            large.admit(&id("web1"), MAX_RETURN).unwrap_err(),
            Busy::Minion
        );
        let other = large.admit(&id("web2"), MAX_RETURN).unwrap();
        drop(first);
        large.admit(&id("web1"), MAX_RETURN).unwrap();
        drop(other);
    }

    #[test]
    fn all_minions_together_stay_within_the_budget() {
        let large = LargeRequests::new();
        let held: Vec<Admitted> = (0..LARGE_REQUESTS_BUDGET / MAX_RETURN)
            .map(|n| large.admit(&id(&format!("web{n}")), MAX_RETURN).unwrap())
            .collect();
        assert_eq!(
            large.admit(&id("db1"), MAX_RETURN).unwrap_err(),
            Busy::Budget
        );
        // A refusal by the budget does not keep the minion's turn.
        assert_eq!(large.admit(&id("db1"), 1).unwrap_err(), Busy::Budget);
        drop(held);
        large.admit(&id("db1"), MAX_RETURN).unwrap();
    }
}
