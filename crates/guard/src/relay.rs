//! One guarded connection: the deadlines, the upstream connection and the two relay
//! directions, with at most one read chunk held per direction.
//!
//! A connection goes through three steps:
//!
//! 1. The guard answers the peer's handshake itself, as the upstream socket would (its greeting
//!    once the peer's 10-byte signature has checked out, since libzmq waits for ours before it
//!    sends the rest; and the READY command), and reads on until the peer's first message is
//!    complete. Until then nothing is connected upstream: port scanners, HTTP probes, silent
//!    connections and peers that send garbage never reach the zeromq socket, whose peer
//!    bookkeeping takes locks on every connection that comes and goes.
//! 2. The guard connects to the upstream socket on loopback, passes on what it has read, and
//!    skips the socket's own greeting and READY (the peer has had the guard's).
//! 3. Both directions run side by side until either side closes, the peer breaks the
//!    protocol or a limit, a deadline passes, or the guard shuts down. Peer→upstream bytes are
//!    checked by the [`ClientStream`] parser before they are written; a read that contains a
//!    violation is not forwarded at all. Upstream→peer bytes are relayed as they are, their
//!    messages counted. A large message's bytes wait for budget (see `budget`); once it has
//!    been answered (every message sent upstream has its reply, as a REQ peer's always has
//!    before it says more), the upstream connection is closed, seen closed by the socket and
//!    replaced by a fresh one, and only then does the budget go back: the zeromq socket keeps
//!    a read buffer of a connection's largest message for as long as the connection lives. The
//!    socket's ROUTER answers by connection, so nothing is outstanding on the old one.
//!
//! Buffers: each direction reads into a buffer of at most `read_chunk` bytes, writes it out,
//! and reuses it while bytes keep coming; when the socket has nothing more to read the buffer
//! is released, so an idle connection holds none.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::time::{timeout, timeout_at, Instant};
use tracing::{debug, warn};

use crate::budget::Held;
use crate::occupancy::{Seat, Source};
use crate::protocol::{self, ClientStream, Pause, Replies, UpstreamHandshake, Violation};
use crate::Shared;

/// Why a connection ended.
#[derive(Debug)]
enum Close {
    /// The peer closed or reset its connection.
    PeerClosed,
    /// The upstream socket closed its side.
    UpstreamClosed,
    /// The upstream socket could not be reached.
    UpstreamUnreachable(io::Error),
    /// The peer broke the protocol or a limit.
    Violation(Violation),
    /// The greeting and READY did not arrive in time.
    HandshakeTimeout,
    /// No complete message arrived in time.
    FirstMessageTimeout,
    /// The peer stopped reading what we send it.
    WriteStalled,
    /// The peer fell behind what we send it by the maximum lag.
    Lagging,
    /// The peer sent no message for the idle timeout.
    Idle,
    /// A large message did not get budget, arrive whole or get its answer (which) within the
    /// large-message timeout.
    LargeMessage(&'static str),
    /// Its room went to a host that held fewer connections.
    Evicted,
    /// The guard is shutting down.
    Shutdown,
}

/// Serves one accepted connection; `_permit` holds its place under the connection cap, `seat`
/// its host's share of it.
pub(crate) async fn serve(
    mut peer: TcpStream,
    addr: SocketAddr,
    shared: Arc<Shared>,
    _permit: OwnedSemaphorePermit,
    seat: Seat,
) {
    let source = seat.source();
    let accepted = Instant::now();
    shared.counters.active.fetch_add(1, Ordering::SeqCst);
    configure(&peer, &shared);
    let close = tokio::select! {
        biased;
        _ = shared.cancel.cancelled() => Close::Shutdown,
        _ = seat.evicted.cancelled() => Close::Evicted,
        close = relay(&mut peer, &shared, source, accepted) => close,
    };
    drop(seat);
    // Count before the peer sees the connection close.
    report(&shared, addr, close);
    shared.counters.active.fetch_sub(1, Ordering::SeqCst);
    drop(peer);
}

fn configure(peer: &TcpStream, shared: &Shared) {
    if let Err(err) = peer.set_nodelay(true) {
        debug!(cause = %err, "could not set TCP_NODELAY");
    }
    if let Some(idle) = shared.limits.tcp_keepalive {
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(idle)
            .with_interval(idle / 6);
        if let Err(err) = socket2::SockRef::from(peer).set_tcp_keepalive(&keepalive) {
            debug!(cause = %err, "could not set TCP keepalive");
        }
    }
}

fn report(shared: &Shared, peer: SocketAddr, close: Close) {
    let limits = &shared.limits;
    let counters = &shared.counters;
    let (counter, reason) = match close {
        Close::PeerClosed | Close::UpstreamClosed | Close::Shutdown => {
            debug!(reason = ?close, "connection closed");
            return;
        }
        Close::Violation(violation) => (&counters.violations, violation.to_string()),
        Close::HandshakeTimeout => (
            &counters.timeouts,
            format!("no ZMTP handshake within {:?}", limits.handshake_timeout),
        ),
        Close::FirstMessageTimeout => (
            &counters.timeouts,
            format!(
                "no complete message within {:?}",
                limits.first_message_timeout
            ),
        ),
        Close::WriteStalled => (
            &counters.stalls,
            format!("peer read nothing for {:?}", limits.write_stall_timeout),
        ),
        Close::Lagging => (
            &counters.stalls,
            format!(
                "peer fell behind by {:?}",
                limits.max_lag.unwrap_or_default()
            ),
        ),
        Close::LargeMessage(what) => (
            &counters.timeouts,
            format!(
                "a large message waited for {what} for {:?}",
                limits.large_message_timeout
            ),
        ),
        Close::Idle => (
            &counters.idle,
            format!(
                "no message for {:?}",
                limits.idle_timeout.unwrap_or_default()
            ),
        ),
        Close::Evicted => (
            &counters.evicted,
            "closed to make room for a host that held fewer connections".to_string(),
        ),
        Close::UpstreamUnreachable(err) => (
            &counters.upstream_failures,
            format!("upstream socket unreachable: {err}"),
        ),
    };
    counter.fetch_add(1, Ordering::SeqCst);
    if shared.log.admit() {
        warn!(guard = shared.name, %peer, %reason, "connection closed");
    } else {
        debug!(guard = shared.name, %peer, %reason, "connection closed");
    }
}

/// The deadline that applies now, given what the peer has sent and when its last message
/// ended (`last_message`).
fn deadline(
    shared: &Shared,
    accepted: Instant,
    stream: &ClientStream,
    last_message: Instant,
) -> Option<(Instant, Close)> {
    let limits = &shared.limits;
    let first = (
        accepted + limits.first_message_timeout,
        Close::FirstMessageTimeout,
    );
    if !stream.handshake_done() {
        let handshake = (accepted + limits.handshake_timeout, Close::HandshakeTimeout);
        Some(if handshake.0 <= first.0 {
            handshake
        } else {
            first
        })
    } else if stream.messages() == 0 {
        Some(first)
    } else {
        limits
            .idle_timeout
            .map(|idle| (last_message + idle, Close::Idle))
    }
}

async fn relay(peer: &mut TcpStream, shared: &Shared, source: Source, accepted: Instant) -> Close {
    let chunk = shared.limits.read_chunk;
    let mut stream = ClientStream::new(shared.limits.stream());
    let (mut peer_rx, mut peer_tx) = peer.split();

    // 1. The peer's handshake and first message, answered by the guard itself: nothing is
    //    connected upstream before the whole of it has checked out.
    let mut first = BytesMut::new();
    let mut answered = false;
    while stream.messages() == 0 {
        let deadline = deadline(shared, accepted, &stream, accepted);
        let mut piece = BytesMut::new();
        match read_before(&mut peer_rx, &mut piece, chunk, deadline).await {
            Ok(0) => return Close::PeerClosed,
            Ok(_) => {}
            Err(close) => return close,
        }
        if let Err(violation) = stream.feed(&piece) {
            return Close::Violation(violation);
        }
        first.extend_from_slice(&piece);
        if !answered && stream.signature_seen() {
            // libzmq waits for our signature before it sends the rest of its greeting; the
            // zeromq crate for our greeting before its READY, and for our READY before its
            // first message.
            match timeout(
                shared.limits.write_stall_timeout,
                peer_tx.write_all(&shared.answer),
            )
            .await
            {
                Ok(Ok(())) => answered = true,
                Ok(Err(_)) => return Close::PeerClosed,
                Err(_) => return Close::WriteStalled,
            }
        }
    }

    // From here on large messages need budget. The first one, which the guard holds itself
    // until it is complete, needs none (the early limit bounds it), but what followed it in
    // the same read may be the start of one.
    let (replied_tx, replied) = watch::channel(0);
    let under_way = stream.pause_at_large(shared.limits.large_message);
    let mut relay = PeerSide {
        stream,
        pending: BytesMut::new(),
        held: None,
        last_message: Instant::now(),
        replied,
    };
    if let Some(bytes) = under_way {
        if let Err(close) = relay.claim(shared, source, bytes).await {
            return close;
        }
    }

    // 2. The upstream connection, within the handshake deadline: the peer's bytes so far go
    //    up, the socket's own greeting and READY (the peer has had ours) are skipped.
    let deadline = accepted + shared.limits.handshake_timeout;
    let mut replies = Replies::default();
    let mut upstream = match connect_upstream(shared, deadline, &first).await {
        Ok((upstream, rest)) => {
            if !rest.is_empty() && peer_tx.write_all(&rest).await.is_err() {
                return Close::PeerClosed;
            }
            replies.feed(&rest);
            replied_tx.send_replace(replies.messages());
            upstream
        }
        Err(close) => return close,
    };
    drop(first);

    // 3. Both directions, until a large message has been answered: then the upstream
    //    connection, whose read buffer in the zeromq socket has grown to that message's size
    //    and would stay so for as long as it lives, is replaced by a fresh one.
    loop {
        let (mut upstream_rx, mut upstream_tx) = upstream.split();
        let step = tokio::select! {
            step = relay.run(&mut peer_rx, &mut upstream_tx, shared, source, accepted) => step,
            close = upstream_to_peer(&mut upstream_rx, &mut peer_tx, &mut replies, &replied_tx, shared) => Step::Close(close),
        };
        match step {
            Step::Close(close) => {
                if relay.held.is_some() {
                    // The peer need not wait for the budget to go back.
                    let _ = peer_tx.shutdown().await;
                    let deadline = Instant::now() + shared.limits.handshake_timeout;
                    close_upstream(upstream, deadline).await;
                }
                return close;
            }
            Step::Refresh => {}
        }
        upstream = match refresh(upstream, relay.stream.socket_type(), shared).await {
            Ok(upstream) => upstream,
            Err(close) => return close,
        };
        relay.held = None;
        shared.counters.refreshes.fetch_add(1, Ordering::SeqCst);
    }
}

/// Connects to the upstream socket by `deadline`, sends it `hello` (a handshake and what
/// follows it) and reads its greeting and READY; returns the connection and what came after
/// them.
async fn connect_upstream(
    shared: &Shared,
    deadline: Instant,
    hello: &[u8],
) -> Result<(TcpStream, BytesMut), Close> {
    let connect = TcpStream::connect(shared.upstream);
    let mut upstream = match timeout_at(deadline, connect).await {
        Ok(Ok(upstream)) => upstream,
        Ok(Err(err)) => return Err(Close::UpstreamUnreachable(err)),
        Err(_) => return Err(Close::UpstreamUnreachable(io::ErrorKind::TimedOut.into())),
    };
    if let Err(err) = upstream.set_nodelay(true) {
        debug!(cause = %err, "could not set TCP_NODELAY upstream");
    }
    let (mut upstream_rx, mut upstream_tx) = upstream.split();
    if upstream_tx.write_all(hello).await.is_err() {
        return Err(Close::UpstreamClosed);
    }
    shared
        .counters
        .forwarded
        .fetch_add(hello.len() as u64, Ordering::SeqCst);
    let skip = skip_upstream_handshake(&mut upstream_rx, shared.limits.read_chunk);
    let rest = match timeout(shared.limits.handshake_timeout, skip).await {
        Ok(Ok(rest)) => rest,
        Ok(Err(close)) => return Err(close),
        Err(_) => return Err(Close::UpstreamUnreachable(io::ErrorKind::TimedOut.into())),
    };
    Ok((upstream, rest))
}

/// Replaces the upstream connection `old`, which has answered everything it was sent, with a
/// fresh one that the guard opens with a handshake of its own as the peer's socket type.
async fn refresh(old: TcpStream, socket_type: &[u8], shared: &Shared) -> Result<TcpStream, Close> {
    let deadline = Instant::now() + shared.limits.handshake_timeout;
    close_upstream(old, deadline).await;
    let hello = protocol::handshake(socket_type);
    let (upstream, rest) = connect_upstream(shared, deadline, &hello).await?;
    if !rest.is_empty() {
        warn!("the upstream socket spoke first on a fresh connection");
        return Err(Close::UpstreamClosed);
    }
    Ok(upstream)
}

/// Closes an upstream connection and waits, until `deadline`, for the socket to close its
/// side: only then has it let go of what it read on it (budget held for a large message goes
/// back after this), and forgotten the peer's identity (a peer that named an Identity in its
/// READY comes back under the same one on a fresh connection).
async fn close_upstream(mut old: TcpStream, deadline: Instant) {
    let closed = timeout_at(deadline, async {
        old.shutdown().await?;
        let mut scrap = [0u8; 256];
        while old.read(&mut scrap).await? > 0 {}
        io::Result::Ok(())
    })
    .await;
    if !matches!(closed, Ok(Ok(()))) {
        debug!("the upstream socket did not close a connection in time");
    }
}

/// Reads the upstream socket's greeting and READY; returns what came after them.
async fn skip_upstream_handshake(
    upstream: &mut ReadHalf<'_>,
    chunk: usize,
) -> Result<BytesMut, Close> {
    let mut skipper = UpstreamHandshake::default();
    loop {
        let mut buf = BytesMut::new();
        match read_some(upstream, &mut buf, chunk).await {
            Ok(0) | Err(_) => return Err(Close::UpstreamClosed),
            Ok(_) => {}
        }
        match skipper.feed(&buf) {
            Ok(Some(end)) => return Ok(buf.split_off(end)),
            Ok(None) => {}
            Err(reason) => {
                warn!(%reason, "the upstream socket broke its handshake");
                return Err(Close::UpstreamClosed);
            }
        }
    }
}

/// What peer→upstream relaying does next.
enum Step {
    Close(Close),
    /// A large message has been answered: replace the upstream connection.
    Refresh,
}

/// The peer→upstream direction, kept across upstream connections.
struct PeerSide {
    stream: ClientStream,
    /// Bytes read from the peer, checked whole, not yet passed on.
    pending: BytesMut,
    /// Budget for the large message in transit (until the upstream connection that read it
    /// is gone), with the deadline its last byte must come by.
    held: Option<(Held, Instant)>,
    /// When the peer's last message ended.
    last_message: Instant,
    /// The replies relayed to the peer so far.
    replied: watch::Receiver<u64>,
}

impl PeerSide {
    /// Checks and forwards what the peer sends, under the deadline that applies, taking
    /// budget for large messages; returns when the connection must close, or once a large
    /// message has been answered.
    async fn run(
        &mut self,
        peer: &mut ReadHalf<'_>,
        upstream: &mut WriteHalf<'_>,
        shared: &Shared,
        source: Source,
        accepted: Instant,
    ) -> Step {
        let chunk = shared.limits.read_chunk;
        loop {
            if self.pending.is_empty() {
                let deadline = match &self.held {
                    Some((_, by)) => Some((*by, Close::LargeMessage("its bytes to arrive"))),
                    None => deadline(shared, accepted, &self.stream, self.last_message),
                };
                match read_before(peer, &mut self.pending, chunk, deadline).await {
                    Ok(0) => return Step::Close(Close::PeerClosed),
                    Ok(_) => {}
                    Err(close) => return Step::Close(close),
                }
                // A read that breaks a limit anywhere is not passed on at all.
                if let Err(violation) = self.stream.clone().feed(&self.pending) {
                    return Step::Close(Close::Violation(violation));
                }
            }
            let messages = self.stream.messages();
            let (used, pause) = match self.stream.feed_until_pause(&self.pending) {
                Ok(fed) => fed,
                Err(violation) => return Step::Close(Close::Violation(violation)),
            };
            if self.stream.messages() > messages {
                self.last_message = Instant::now();
            }
            if let Some(Pause::Claim(bytes)) = pause {
                if let Err(close) = self.claim(shared, source, bytes).await {
                    return Step::Close(close);
                }
            }
            // Our own socket: no stall limit.
            if upstream.write_all(&self.pending[..used]).await.is_err() {
                return Step::Close(Close::UpstreamClosed);
            }
            shared
                .counters
                .forwarded
                .fetch_add(used as u64, Ordering::SeqCst);
            self.pending.advance(used);
            if pause == Some(Pause::LargeEnd) {
                // The budget is kept until the connection that read the message is gone.
                return self.answered(shared).await;
            }
        }
    }

    /// Waits for `bytes` more budget, up to the large-message timeout.
    async fn claim(&mut self, shared: &Shared, source: Source, bytes: u64) -> Result<(), Close> {
        let wait = shared.limits.large_message_timeout;
        let mut held = self.held.take().map(|(held, _)| held);
        let claim = shared.budget.claim(source, &mut held, bytes);
        if timeout(wait, claim).await.is_err() {
            return Err(Close::LargeMessage("budget"));
        }
        let by = match self.held {
            Some((_, by)) => by,
            None => Instant::now() + wait,
        };
        self.held = held.map(|held| (held, by));
        Ok(())
    }

    /// Waits until every message sent upstream has been answered (a REQ peer waits for its
    /// answer anyway), up to the large-message timeout.
    async fn answered(&mut self, shared: &Shared) -> Step {
        let sent = self.stream.messages();
        let wait = self.replied.wait_for(|&replied| replied >= sent);
        match timeout(shared.limits.large_message_timeout, wait).await {
            Ok(Ok(_)) => Step::Refresh,
            Ok(Err(_)) => Step::Close(Close::UpstreamClosed),
            Err(_) => Step::Close(Close::LargeMessage("its answer")),
        }
    }
}

/// Relays what our own socket sends, closing when the peer stops reading or falls behind by
/// the maximum lag.
async fn upstream_to_peer(
    upstream: &mut ReadHalf<'_>,
    peer: &mut WriteHalf<'_>,
    replies: &mut Replies,
    replied: &watch::Sender<u64>,
    shared: &Shared,
) -> Close {
    let chunk = shared.limits.read_chunk;
    let stall = shared.limits.write_stall_timeout;
    let mut buf = BytesMut::new();
    // Since when the peer has been behind: the last time the guard had written everything
    // and the socket had nothing more, so that the socket's queue for this peer was empty.
    let mut behind_since = Instant::now();
    loop {
        match read_some_waiting(upstream, &mut buf, chunk).await {
            Ok((0, _)) | Err(_) => return Close::UpstreamClosed,
            Ok((_, waited)) => {
                if waited {
                    behind_since = Instant::now();
                }
            }
        }
        let mut rest = &buf[..];
        while !rest.is_empty() {
            let stalled = Instant::now() + stall;
            let (by, close) = match shared.limits.max_lag {
                Some(lag) if behind_since + lag < stalled => (behind_since + lag, Close::Lagging),
                _ => (stalled, Close::WriteStalled),
            };
            match timeout_at(by, peer.write(rest)).await {
                Err(_) => return close,
                Ok(Ok(0) | Err(_)) => return Close::PeerClosed,
                Ok(Ok(n)) => rest = &rest[n..],
            }
        }
        replies.feed(&buf);
        replied.send_replace(replies.messages());
        buf.clear();
    }
}

/// [`read_some`] from the peer, failing with the deadline's reason when it passes first.
async fn read_before(
    peer: &mut ReadHalf<'_>,
    buf: &mut BytesMut,
    chunk: usize,
    deadline: Option<(Instant, Close)>,
) -> Result<usize, Close> {
    let read = read_some(peer, buf, chunk);
    let read = match deadline {
        Some((at, reason)) => match timeout_at(at, read).await {
            Ok(read) => read,
            Err(_) => return Err(reason),
        },
        None => read.await,
    };
    // A reset is the peer closing too.
    Ok(read.unwrap_or(0))
}

/// Appends one read (at most `chunk` bytes in all) to `buf`; `Ok(0)` at end of stream. An
/// empty `buf` gives its memory back while the socket has nothing to read, so an idle
/// connection holds no buffer; while bytes keep coming it is reused.
async fn read_some(src: &mut ReadHalf<'_>, buf: &mut BytesMut, chunk: usize) -> io::Result<usize> {
    Ok(read_some_waiting(src, buf, chunk).await?.0)
}

/// [`read_some`], saying too whether the socket had nothing to read when it was called.
async fn read_some_waiting(
    src: &mut ReadHalf<'_>,
    buf: &mut BytesMut,
    chunk: usize,
) -> io::Result<(usize, bool)> {
    let mut waited = false;
    if buf.is_empty() {
        tokio::select! {
            biased;
            ready = src.readable() => ready?,
            () = std::future::ready(()) => {
                waited = true;
                *buf = BytesMut::new();
                src.readable().await?;
            }
        }
    }
    if buf.capacity() == buf.len() {
        buf.reserve(chunk - buf.len());
    }
    let room = chunk - buf.len();
    Ok((src.read_buf(&mut (&mut *buf).limit(room)).await?, waited))
}
