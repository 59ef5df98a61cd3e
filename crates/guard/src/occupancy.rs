//! Who holds the guard's connections, by source, so that a full port is shared fairly.
//!
//! The connection cap keeps the master within its open files, but a cap alone is first come,
//! first served: one host that opens as many idle connections as the cap allows locks every
//! real minion out for as long as it holds them. So when the port is full and a connection
//! arrives from a source that holds fewer connections than the busiest source, the busiest
//! source's oldest connection is closed to make room; a connection from the busiest source
//! itself is refused. A source is an IPv4 address, or an IPv6 /64 (what one host can use).
//! Many minions behind one address share its room, as they share the address.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

/// The unit connections are counted by: one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Source(u128);

impl Source {
    pub(crate) fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self(u128::from(u32::from(v4))),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(u128::from(u32::from(v4))),
                // The /64, tagged so it cannot equal an IPv4 address.
                None => Self((u128::from(v6) >> 64) | (1 << 127)),
            },
        }
    }
}

/// What a new connection may do when the port is full.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Close it: its source holds the most connections already.
    Refuse,
    /// Room is being made: this connection of the busiest source was told to close.
    Evicted,
}

#[derive(Debug, Default)]
struct Table {
    /// Every open connection by source, oldest first, with the token that closes it.
    by_source: HashMap<Source, BTreeMap<u64, CancellationToken>>,
    /// (connections, source), so that the busiest source is the last entry.
    load: BTreeSet<(usize, Source)>,
    next: u64,
}

impl Table {
    fn count(&self, source: Source) -> usize {
        self.by_source.get(&source).map_or(0, BTreeMap::len)
    }

    fn set_count(&mut self, source: Source, from: usize, to: usize) {
        if from > 0 {
            self.load.remove(&(from, source));
        }
        if to > 0 {
            self.load.insert((to, source));
        }
    }
}

/// The table of open connections.
#[derive(Debug, Default)]
pub(crate) struct Occupancy {
    table: Mutex<Table>,
}

/// One registered connection; dropping it forgets the connection.
#[derive(Debug)]
pub(crate) struct Seat {
    occupancy: Arc<Occupancy>,
    source: Source,
    id: u64,
    /// Fires when the connection must close to make room for another source's.
    pub(crate) evicted: CancellationToken,
}

impl Occupancy {
    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers an open connection from `source`.
    pub(crate) fn sit(self: &Arc<Self>, source: Source) -> Seat {
        let evicted = CancellationToken::new();
        let mut table = self.table();
        let id = table.next;
        table.next += 1;
        let before = table.count(source);
        table
            .by_source
            .entry(source)
            .or_default()
            .insert(id, evicted.clone());
        table.set_count(source, before, before + 1);
        Seat {
            occupancy: Arc::clone(self),
            source,
            id,
            evicted,
        }
    }

    /// The port is full and a connection from `source` arrived: close the busiest source's
    /// oldest connection, unless `source` is (one of) the busiest itself.
    pub(crate) fn make_room(&self, source: Source) -> Verdict {
        let table = self.table();
        let mine = table.count(source);
        let Some(&(most, busiest)) = table.load.last() else {
            return Verdict::Refuse;
        };
        // Evicting a source that would then hold fewer than the newcomer's would only move the
        // unfairness around.
        if most <= mine + 1 {
            return Verdict::Refuse;
        }
        match table
            .by_source
            .get(&busiest)
            .and_then(|c| c.values().next())
        {
            Some(oldest) => {
                oldest.cancel();
                Verdict::Evicted
            }
            None => Verdict::Refuse,
        }
    }

    #[cfg(test)]
    fn count(&self, source: Source) -> usize {
        self.table().count(source)
    }
}

impl Seat {
    /// The host the connection comes from.
    pub(crate) fn source(&self) -> Source {
        self.source
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        let mut table = self.occupancy.table();
        let before = table.count(self.source);
        if let Some(connections) = table.by_source.get_mut(&self.source) {
            connections.remove(&self.id);
            if connections.is_empty() {
                table.by_source.remove(&self.source);
            }
        }
        let after = table.count(self.source);
        table.set_count(self.source, before, after);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Source {
        Source::of(s.parse().unwrap())
    }

    #[test]
    fn a_host_is_an_ipv4_address_or_an_ipv6_64() {
        assert_eq!(ip("10.0.0.1"), ip("::ffff:10.0.0.1"));
        assert_ne!(ip("10.0.0.1"), ip("10.0.0.2"));
        assert_eq!(ip("2001:db8::1"), ip("2001:db8::ffff"));
        assert_ne!(ip("2001:db8::1"), ip("2001:db8:0:1::1"));
        assert_ne!(ip("::1"), ip("0.0.0.1"));
    }

    #[test]
    fn the_busiest_source_makes_room_oldest_first() {
        let occupancy = Arc::new(Occupancy::default());
        let attacker = ip("10.0.0.66");
        let seats: Vec<_> = (0..5).map(|_| occupancy.sit(attacker)).collect();
        let minion = occupancy.sit(ip("10.0.0.1"));
        // The attacker itself gets no room; another host does, at the attacker's expense.
        assert_eq!(occupancy.make_room(attacker), Verdict::Refuse);
        assert_eq!(occupancy.make_room(ip("10.0.0.2")), Verdict::Evicted);
        assert!(seats[0].evicted.is_cancelled());
        assert!(seats[1..].iter().all(|s| !s.evicted.is_cancelled()));
        assert!(!minion.evicted.is_cancelled());
        drop(seats);
        assert_eq!(occupancy.count(attacker), 0);
        assert_eq!(occupancy.count(ip("10.0.0.1")), 1);
    }

    #[test]
    fn sources_that_hold_as_much_as_the_newcomer_keep_their_room() {
        let occupancy = Arc::new(Occupancy::default());
        let a = occupancy.sit(ip("10.0.0.1"));
        let _b = occupancy.sit(ip("10.0.0.2"));
        assert_eq!(occupancy.make_room(ip("10.0.0.2")), Verdict::Refuse);
        assert_eq!(occupancy.make_room(ip("10.0.0.3")), Verdict::Refuse);
        let _a2 = occupancy.sit(ip("10.0.0.1"));
        assert_eq!(occupancy.make_room(ip("10.0.0.3")), Verdict::Evicted);
        assert!(a.evicted.is_cancelled());
    }
}
