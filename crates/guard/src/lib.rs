//! A ZMTP 3.x guard in front of a zeromq socket: the public port belongs to the guard, which
//! checks what every peer sends and relays it to the real socket on a loopback endpoint.
//!
//! The zeromq crate (0.7) trusts its peers: a frame header claiming 2^60 bytes aborts the
//! process, a stream of empty frames grows one message without bound, a silent connection is
//! kept forever. The guard stands between the network and the crate:
//!
//! ```text
//! peer ──tcp──▶ Guard (public port) ──tcp 127.0.0.1──▶ zeromq socket (loopback, port 0)
//! ```
//!
//! - [`listen`] binds the public port (backlog 1024, reuse-address).
//! - [`Guard::spawn`] accepts on it, at most [`GuardLimits::max_connections`] at a time, and
//!   runs one task per connection (the `relay` module). The client→server bytes go through the
//!   incremental ZMTP parser ([`protocol`]) and are forwarded only once checked; the
//!   server→client bytes come from our own socket and are relayed as they are.
//! - Large messages go upstream only under a byte budget shared by the port (`budget`), and
//!   the upstream connection that carried one is replaced once it has been answered.
//! - A connection that breaks a limit or a deadline is closed on both sides, counted in
//!   [`GuardStats`] and logged (`warn!`, the excess of a flood at `debug!`).
//!
//! The zeromq socket sees every peer as a connection from 127.0.0.1; brine never trusts ZMTP
//! identities, so nothing is lost.

mod budget;
mod occupancy;
pub mod protocol;
mod relay;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use brine_daemon::LogLimiter;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn, Instrument};

use budget::Budget;
use occupancy::{Occupancy, Source, Verdict};
use protocol::StreamLimits;

/// Largest frame on the return port: brine's own limit for one envelope
/// (`brine_proto::limits::MAX_FRAME_BYTES`).
const RETURN_MAX_FRAME: u64 = 16 * 1024 * 1024;
/// The guard's read buffer can never be larger than this, whatever the configuration says.
const MAX_READ_CHUNK: usize = 1024 * 1024;
/// The READY command is never allowed to be larger than this.
const MAX_COMMAND: u64 = 64 * 1024;

/// What one port accepts from its peers. Build one from [`GuardLimits::return_port`] or
/// [`GuardLimits::publish_port`] and adjust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardLimits {
    /// Largest message frame, in bytes.
    pub max_frame: u64,
    /// Most frames in one multipart message.
    pub max_frames_per_message: usize,
    /// Largest message (the sum of its frames), in bytes.
    pub max_message: u64,
    /// Largest command frame (the READY command of the handshake), in bytes; at most 64 KiB.
    pub max_command: u64,
    /// Most messages one connection may send in its life (`u64::MAX`: no limit).
    pub max_messages: u64,
    /// Every message must be a ZMTP 3.0 subscription or cancellation (a publishing port).
    pub subscriptions_only: bool,
    /// The first `early_messages` messages of a connection may be at most
    /// `max_early_message` bytes each: what a peer says before it can have authenticated.
    pub early_messages: u64,
    pub max_early_message: u64,
    /// The upstream zeromq socket's type (`"ROUTER"`, `"PUB"`), which the guard answers each
    /// peer's handshake as.
    pub socket_type: &'static str,
    /// The greeting and the READY command must have arrived this long after accept.
    pub handshake_timeout: Duration,
    /// The first complete message must have arrived this long after accept.
    pub first_message_timeout: Duration,
    /// A write toward the peer that makes no progress for this long closes the connection
    /// (a peer that does not read must not hold our socket's send queue forever).
    pub write_stall_timeout: Duration,
    /// A connection whose peer has not taken every byte the upstream socket sent it for this
    /// long is closed (`None`: never). The guard counts from the moment it last had nothing to
    /// write and the socket nothing to read: a peer that reads a little now and then, slower
    /// than the socket publishes, passes `write_stall_timeout` while the PUB socket queues up
    /// to 100,000 messages for it; bounding how far behind it may fall bounds that queue by
    /// what the port published within this time.
    pub max_lag: Option<Duration>,
    /// Most connections open at once. Each costs two file descriptors in the guard and one in
    /// the zeromq socket. When they are all taken, a connection from a host that holds fewer
    /// than the busiest host closes the busiest host's oldest one; any other is closed at once
    /// (see `occupancy`).
    pub max_connections: usize,
    /// A connection that has sent messages and then sends none for this long is closed
    /// (`None`: never; a subscriber has nothing to say after its subscription).
    pub idle_timeout: Option<Duration>,
    /// Size of a read, in bytes, and so the most the guard holds per connection direction,
    /// and only while bytes are passing: an idle connection holds no buffer.
    pub read_chunk: usize,
    /// TCP keepalive idle time on the peer's connection (the zeromq crate has none), so that
    /// a vanished host does not hold a connection forever. `None` leaves it off.
    pub tcp_keepalive: Option<Duration>,
    /// A message of more bytes than this is large: the zeromq socket reads it whole before
    /// anything behind it can refuse it, and keeps a read buffer of its size for as long as
    /// the connection it came on lives. So its bytes go upstream only under the port's
    /// `large_budget`, and once it has been answered the guard replaces the upstream
    /// connection it went on by a fresh one (the peer keeps its connection).
    pub large_message: u64,
    /// The most bytes of large messages on their way upstream at once, all connections of the
    /// port together (at most `u32::MAX`). A connection that would pass it is not read from
    /// until budget comes back.
    pub large_budget: u64,
    /// The most of `large_budget` the connections of one host (an IPv4 address or an IPv6
    /// /64) hold at once; at least `max_message`, so that any message can get through.
    pub large_budget_per_host: u64,
    /// How long a large message may wait for budget, then for its last byte, then for its
    /// answer, each; past it the connection is closed.
    pub large_message_timeout: Duration,
}

impl GuardLimits {
    /// For the REP (return) port: requests and returns of up to 16 MiB.
    pub fn return_port() -> Self {
        Self {
            max_frame: RETURN_MAX_FRAME,
            max_frames_per_message: 8,
            max_message: RETURN_MAX_FRAME + 64 * 1024,
            max_command: 4096,
            max_messages: u64::MAX,
            subscriptions_only: false,
            // brine's minion asks for the master's keys, then sends its Noise handshake (at
            // most 64 KiB): nothing larger comes before a session exists.
            early_messages: 2,
            max_early_message: 72 * 1024,
            socket_type: "ROUTER",
            handshake_timeout: Duration::from_secs(10),
            first_message_timeout: Duration::from_secs(10),
            write_stall_timeout: Duration::from_secs(15),
            // A REQ peer may take its time over a 16 MiB answer; what it has not read yet is
            // the ROUTER's one reply, not a queue.
            max_lag: None,
            max_connections: 16_384,
            // A minion sends a keepalive every 10 s; the master sets this from its own interval.
            idle_timeout: Some(Duration::from_secs(60)),
            read_chunk: 64 * 1024,
            tcp_keepalive: Some(Duration::from_secs(60)),
            // What brine's master calls a large request: everything but returns is smaller.
            large_message: 64 * 1024,
            // The master handles 64 MiB of large requests at once and answers more
            // `unavailable` (brine-master's `large_requests`): more in transit would only wait
            // in the zeromq socket. Half for one host: two returns of the largest size.
            large_budget: 64 * 1024 * 1024,
            large_budget_per_host: 32 * 1024 * 1024,
            // A return of 16 MiB within it needs 280 KB/s.
            large_message_timeout: Duration::from_secs(60),
        }
    }

    /// For the PUB (publish) port: subscribers send only subscriptions, a few bytes each. A
    /// brine minion sends one per connection; every subscription costs the zeromq socket
    /// memory and a lock for as long as the connection lives, so a peer gets a few, no more.
    pub fn publish_port() -> Self {
        Self {
            max_frame: 256,
            max_frames_per_message: 1,
            max_message: 256,
            max_messages: 16,
            subscriptions_only: true,
            socket_type: "PUB",
            idle_timeout: None,
            // A minion reads continuously and gets a tick every second; 10 s lets a 1 MiB job
            // through a 1 Mbit/s link, and what a stuck subscriber retains is then what the
            // master published in the last 10 s.
            max_lag: Some(Duration::from_secs(10)),
            ..Self::return_port()
        }
    }

    /// Checks that the limits make sense together.
    pub fn validate(&self) -> Result<(), InvalidLimits> {
        let fail = |what| Err(InvalidLimits(what));
        if self.max_frames_per_message == 0 {
            return fail("max_frames_per_message must be at least 1");
        }
        if self.max_messages == 0 {
            return fail("max_messages must be at least 1");
        }
        if !(1..=64).contains(&self.socket_type.len())
            || !self.socket_type.bytes().all(|b| b.is_ascii_uppercase())
        {
            return fail("socket_type must be a zeromq socket type such as ROUTER");
        }
        if self.max_message < self.max_frame {
            return fail("max_message must be at least max_frame");
        }
        if !(64..=MAX_COMMAND).contains(&self.max_command) {
            return fail("max_command must be between 64 bytes and 64 KiB");
        }
        if self.handshake_timeout.is_zero()
            || self.first_message_timeout.is_zero()
            || self.write_stall_timeout.is_zero()
            || self.max_lag.is_some_and(|lag| lag.is_zero())
        {
            return fail("timeouts must be longer than zero");
        }
        if self.max_connections == 0 || self.max_connections > Semaphore::MAX_PERMITS {
            return fail("max_connections must be at least 1 (and below 2^61)");
        }
        if !(1024..=MAX_READ_CHUNK).contains(&self.read_chunk) {
            return fail("read_chunk must be between 1 KiB and 1 MiB");
        }
        if self.idle_timeout.is_some_and(|idle| idle.is_zero()) {
            return fail("idle_timeout must be longer than zero");
        }
        if self.tcp_keepalive.is_some_and(|idle| idle.is_zero()) {
            return fail("tcp_keepalive must be longer than zero");
        }
        if self.large_message < self.max_message
            && !(self.max_message..=self.large_budget).contains(&self.large_budget_per_host)
        {
            return fail("large_budget_per_host must be between max_message and large_budget");
        }
        if self.large_budget > u64::from(u32::MAX) {
            return fail("large_budget must be at most 4 GiB");
        }
        if self.large_message_timeout.is_zero() {
            return fail("large_message_timeout must be longer than zero");
        }
        Ok(())
    }

    /// What the stream parser checks, from these limits.
    pub fn stream(&self) -> StreamLimits {
        StreamLimits {
            max_frame: self.max_frame,
            max_frames_per_message: self.max_frames_per_message,
            max_message: self.max_message,
            max_command: self.max_command,
            max_messages: self.max_messages,
            subscriptions_only: self.subscriptions_only,
            early_messages: self.early_messages,
            max_early_message: self.max_early_message,
        }
    }
}

impl Default for GuardLimits {
    fn default() -> Self {
        Self::return_port()
    }
}

/// Limits that do not make sense; [`Guard::spawn`] refuses them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid guard limits: {0}")]
pub struct InvalidLimits(&'static str);

/// Binds a TCP listener for a guard: reuse-address, a backlog of 1024 (std's default of 128
/// drops connection storms), non-blocking.
pub fn listen(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// A running guard: its address and its counters. The tasks belong to the tracker given to
/// [`Guard::spawn`] and stop when its cancellation token fires; dropping this handle stops
/// nothing.
#[derive(Debug, Clone)]
pub struct Guard {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
}

/// A snapshot of a guard's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuardStats {
    /// Connections accepted since the start.
    pub accepted: u64,
    /// Connections open now.
    pub active: u64,
    /// Connections closed because the peer broke the protocol or a size limit.
    pub violations: u64,
    /// Connections closed because the handshake or the first message came too late.
    pub timeouts: u64,
    /// Connections closed because the peer stopped reading or fell behind by `max_lag`.
    pub stalls: u64,
    /// Connections closed because they sent nothing for `idle_timeout`.
    pub idle: u64,
    /// Connections closed to make room for a host that held fewer.
    pub evicted: u64,
    /// Connections closed at once because the port was full and their host held the most.
    pub refused: u64,
    /// Connections closed because the upstream socket could not be reached.
    pub upstream_failures: u64,
    /// Bytes checked and forwarded from peers to the upstream socket.
    pub forwarded: u64,
    /// Upstream connections replaced by fresh ones after a large message.
    pub refreshes: u64,
}

impl Guard {
    /// Accepts on `listener` (from [`listen`]) and relays every connection that keeps to
    /// `limits` to `upstream`, until `cancel` fires. `name` labels the logs ("publish",
    /// "return"). Invalid `limits` are an `InvalidInput` error.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with I/O enabled.
    pub fn spawn(
        name: &'static str,
        listener: std::net::TcpListener,
        upstream: SocketAddr,
        limits: GuardLimits,
        cancel: CancellationToken,
        tracker: &TaskTracker,
    ) -> io::Result<Guard> {
        limits
            .validate()
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        let local_addr = listener.local_addr()?;
        let answer = protocol::handshake(limits.socket_type.as_bytes());
        let budget = Budget::new(limits.large_budget, limits.large_budget_per_host);
        let shared = Arc::new(Shared {
            name,
            upstream,
            limits,
            cancel,
            counters: Counters::default(),
            log: LogLimiter::new(name),
            answer,
            occupancy: Arc::default(),
            budget,
        });
        let span = tracing::info_span!("guard", guard = name, %local_addr, %upstream);
        tracker.spawn(accept_loop(listener, Arc::clone(&shared), tracker.clone()).instrument(span));
        Ok(Guard { local_addr, shared })
    }

    /// The public address the guard accepts on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The counters now.
    pub fn stats(&self) -> GuardStats {
        let c = &self.shared.counters;
        GuardStats {
            accepted: c.accepted.load(Ordering::SeqCst),
            active: c.active.load(Ordering::SeqCst),
            violations: c.violations.load(Ordering::SeqCst),
            timeouts: c.timeouts.load(Ordering::SeqCst),
            stalls: c.stalls.load(Ordering::SeqCst),
            idle: c.idle.load(Ordering::SeqCst),
            evicted: c.evicted.load(Ordering::SeqCst),
            refused: c.refused.load(Ordering::SeqCst),
            upstream_failures: c.upstream_failures.load(Ordering::SeqCst),
            forwarded: c.forwarded.load(Ordering::SeqCst),
            refreshes: c.refreshes.load(Ordering::SeqCst),
        }
    }
}

/// What the accept loop and the connection tasks share.
#[derive(Debug)]
struct Shared {
    name: &'static str,
    upstream: SocketAddr,
    limits: GuardLimits,
    cancel: CancellationToken,
    counters: Counters,
    log: LogLimiter,
    /// The greeting and READY the guard answers each peer with, as the upstream socket.
    answer: Vec<u8>,
    /// Who holds the connections.
    occupancy: Arc<Occupancy>,
    /// The bytes of large messages in transit.
    budget: Arc<Budget>,
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    active: AtomicU64,
    violations: AtomicU64,
    timeouts: AtomicU64,
    stalls: AtomicU64,
    idle: AtomicU64,
    evicted: AtomicU64,
    refused: AtomicU64,
    upstream_failures: AtomicU64,
    forwarded: AtomicU64,
    refreshes: AtomicU64,
}

/// How long a newcomer waits for the room an eviction makes.
const EVICTION_WAIT: Duration = Duration::from_secs(1);

/// Accepts connections until cancelled, one task each; when the port is full, shares it
/// fairly between hosts (see `occupancy`).
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, tracker: TaskTracker) {
    let room = Arc::new(Semaphore::new(shared.limits.max_connections));
    loop {
        let (stream, peer) = tokio::select! {
            _ = shared.cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_failed(&shared, &err).await;
                    continue;
                }
            },
        };
        let source = Source::of(peer.ip());
        let permit = match Arc::clone(&room).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                let verdict = shared.occupancy.make_room(source);
                let permit = match verdict {
                    Verdict::Refuse => None,
                    Verdict::Evicted => tokio::select! {
                        _ = shared.cancel.cancelled() => break,
                        permit = tokio::time::timeout(EVICTION_WAIT, Arc::clone(&room).acquire_owned()) => {
                            permit.ok().and_then(Result::ok)
                        }
                    },
                };
                match permit {
                    Some(permit) => permit,
                    None => {
                        shared.counters.refused.fetch_add(1, Ordering::SeqCst);
                        if shared.log.admit() {
                            warn!(
                                %peer,
                                max_connections = shared.limits.max_connections,
                                "connection cap reached and this host holds the most; closed"
                            );
                        }
                        drop(stream);
                        continue;
                    }
                }
            }
        };
        shared.counters.accepted.fetch_add(1, Ordering::SeqCst);
        let seat = shared.occupancy.sit(source);
        let span = tracing::debug_span!("connection", %peer);
        tracker
            .spawn(relay::serve(stream, peer, Arc::clone(&shared), permit, seat).instrument(span));
    }
    debug!("stopped accepting");
}

/// A failed accept: the connection's own trouble is skipped; running out of file descriptors
/// or memory pauses accepting briefly instead of spinning.
async fn accept_failed(shared: &Shared, err: &io::Error) {
    use io::ErrorKind::*;
    if matches!(
        err.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted | WouldBlock
    ) {
        debug!(cause = %err, "accept failed");
        return;
    }
    if shared.log.admit() {
        warn!(cause = %err, "accept failed; pausing for 100 ms");
    }
    tokio::select! {
        _ = shared.cancel.cancelled() => {}
        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_presets_are_valid() {
        GuardLimits::return_port().validate().unwrap();
        GuardLimits::publish_port().validate().unwrap();
    }

    #[test]
    fn nonsense_is_refused() {
        let bad = [
            GuardLimits {
                max_frames_per_message: 0,
                ..GuardLimits::default()
            },
            GuardLimits {
                max_message: 10,
                ..GuardLimits::default()
            },
            GuardLimits {
                max_command: 1 << 20,
                ..GuardLimits::default()
            },
            GuardLimits {
                handshake_timeout: Duration::ZERO,
                ..GuardLimits::default()
            },
            GuardLimits {
                max_connections: 0,
                ..GuardLimits::default()
            },
            GuardLimits {
                read_chunk: 16,
                ..GuardLimits::default()
            },
        ];
        for limits in bad {
            assert!(limits.validate().is_err(), "{limits:?}");
        }
    }
}
