//! The bytes of large messages in transit through a port, shared by all its connections.
//!
//! The zeromq crate reads a message whole before the code behind the socket can look at it,
//! and sets aside room for a frame as soon as it has read the frame's header: every large
//! message on its way costs the master its size, whoever sends it. So the guard passes a
//! large message's bytes on only once it holds budget for them, taken at the frame header
//! that makes the message large and given back once the message has gone upstream in full.
//! A connection that cannot get budget is not read from (TCP pushes back on the peer) until
//! budget comes free or its deadline passes. One host (see `occupancy`) holds at most its
//! share of the budget, so that the others always find the rest.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::occupancy::Source;

/// The budget of one port.
#[derive(Debug)]
pub(crate) struct Budget {
    total: Arc<Semaphore>,
    /// What each host may hold, and what the hosts that hold or wait for some have left.
    share: u32,
    hosts: Mutex<HashMap<Source, Arc<Semaphore>>>,
}

/// Budget held by one connection; given back when dropped.
#[derive(Debug)]
pub(crate) struct Held {
    budget: Arc<Budget>,
    source: Source,
    host: Option<OwnedSemaphorePermit>,
    total: Option<OwnedSemaphorePermit>,
}

impl Budget {
    /// `total` bytes for the port, `share` of them at most for one host (both at most
    /// `u32::MAX`, which `GuardLimits::validate` checks).
    pub(crate) fn new(total: u64, share: u64) -> Arc<Self> {
        let bytes = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        Arc::new(Self {
            total: Arc::new(Semaphore::new(bytes(total) as usize)),
            share: bytes(share),
            hosts: Mutex::default(),
        })
    }

    fn hosts(&self) -> std::sync::MutexGuard<'_, HashMap<Source, Arc<Semaphore>>> {
        self.hosts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for `bytes` more for a connection of `source`, added to what it holds already
    /// (`held`). Waits for its host's share first, then for the port's budget, each in the
    /// order asked.
    pub(crate) async fn claim(
        self: &Arc<Self>,
        source: Source,
        held: &mut Option<Held>,
        bytes: u64,
    ) {
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        let host = Arc::clone(
            self.hosts()
                .entry(source)
                .or_insert_with(|| Arc::new(Semaphore::new(self.share as usize))),
        );
        let held = held.get_or_insert_with(|| Held {
            budget: Arc::clone(self),
            source,
            host: None,
            total: None,
        });
        // Neither semaphore is ever closed.
        let Ok(from_host) = host.acquire_many_owned(bytes).await else {
            return;
        };
        merge(&mut held.host, from_host);
        let Ok(from_total) = Arc::clone(&self.total).acquire_many_owned(bytes).await else {
            return;
        };
        merge(&mut held.total, from_total);
    }

    #[cfg(test)]
    fn available(&self) -> usize {
        self.total.available_permits()
    }
}

fn merge(into: &mut Option<OwnedSemaphorePermit>, permit: OwnedSemaphorePermit) {
    match into {
        Some(held) => held.merge(permit),
        None => *into = Some(permit),
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        drop((self.total.take(), self.host.take()));
        // A host that holds and awaits nothing any more is forgotten.
        let mut hosts = self.budget.hosts();
        if hosts
            .get(&self.source)
            .is_some_and(|host| Arc::strong_count(host) == 1)
        {
            hosts.remove(&self.source);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ip(s: &str) -> Source {
        Source::of(s.parse().unwrap())
    }

    #[tokio::test]
    async fn one_host_holds_at_most_its_share_and_the_others_find_the_rest() {
        let budget = Budget::new(100, 40);
        let (a, b) = (ip("10.0.0.1"), ip("10.0.0.2"));
        let mut a1 = None;
        budget.claim(a, &mut a1, 30).await;
        let mut a2 = None;
        // Past its share: waits, even though the port has room.
        let waiting = tokio::time::timeout(Duration::from_millis(50), budget.claim(a, &mut a2, 20));
        assert!(waiting.await.is_err());
        drop(a2);
        let mut b1 = None;
        budget.claim(b, &mut b1, 40).await;
        assert_eq!(budget.available(), 30);
        // More for the same connection adds up, and all of it comes back at once.
        budget.claim(a, &mut a1, 10).await;
        assert_eq!(budget.available(), 20);
        drop(a1);
        assert_eq!(budget.available(), 60);
        drop(b1);
        assert_eq!(budget.available(), 100);
        assert!(budget.hosts().is_empty());
    }

    #[tokio::test]
    async fn a_claim_waits_until_budget_comes_back() {
        let budget = Budget::new(50, 50);
        let (a, b) = (ip("10.0.0.1"), ip("10.0.0.2"));
        let mut first = None;
        budget.claim(a, &mut first, 40).await;
        let mut second = None;
        let claim = budget.claim(b, &mut second, 20);
        tokio::pin!(claim);
        assert!(tokio::time::timeout(Duration::from_millis(50), &mut claim)
            .await
            .is_err());
        drop(first);
        tokio::time::timeout(Duration::from_secs(5), claim)
            .await
            .unwrap();
        assert_eq!(budget.available(), 30);
    }
}
