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
//!    violation is not forwarded at all. Upstream→peer bytes are relayed as they are.
//!
//! Buffers: each direction reads into a buffer of at most `read_chunk` bytes, writes it out,
//! and reuses it while bytes keep coming; when the socket has nothing more to read the buffer
//! is released, so an idle connection holds none.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{timeout, timeout_at, Instant};
use tracing::{debug, warn};

use crate::occupancy::Seat;
use crate::protocol::{ClientStream, UpstreamHandshake, Violation};
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
    /// The peer sent no message for the idle timeout.
    Idle,
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
    let accepted = Instant::now();
    shared.counters.active.fetch_add(1, Ordering::SeqCst);
    configure(&peer, &shared);
    let close = tokio::select! {
        biased;
        _ = shared.cancel.cancelled() => Close::Shutdown,
        _ = seat.evicted.cancelled() => Close::Evicted,
        close = relay(&mut peer, &shared, accepted) => close,
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

async fn relay(peer: &mut TcpStream, shared: &Shared, accepted: Instant) -> Close {
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

    // 2. The upstream connection, within the handshake deadline: the peer's bytes so far go
    //    up, the socket's own greeting and READY (the peer has had ours) are skipped.
    let connect = TcpStream::connect(shared.upstream);
    let mut upstream = match timeout_at(accepted + shared.limits.handshake_timeout, connect).await {
        Ok(Ok(upstream)) => upstream,
        Ok(Err(err)) => return Close::UpstreamUnreachable(err),
        Err(_) => return Close::UpstreamUnreachable(io::ErrorKind::TimedOut.into()),
    };
    if let Err(err) = upstream.set_nodelay(true) {
        debug!(cause = %err, "could not set TCP_NODELAY upstream");
    }
    let (mut upstream_rx, mut upstream_tx) = upstream.split();
    if upstream_tx.write_all(&first).await.is_err() {
        return Close::UpstreamClosed;
    }
    shared
        .counters
        .forwarded
        .fetch_add(first.len() as u64, Ordering::SeqCst);
    drop(first);
    let skip = skip_upstream_handshake(&mut upstream_rx, chunk);
    let rest = match timeout(shared.limits.handshake_timeout, skip).await {
        Ok(Ok(rest)) => rest,
        Ok(Err(close)) => return close,
        Err(_) => return Close::UpstreamUnreachable(io::ErrorKind::TimedOut.into()),
    };
    if !rest.is_empty() && peer_tx.write_all(&rest).await.is_err() {
        return Close::PeerClosed;
    }

    // 3. Both directions.
    tokio::select! {
        close = peer_to_upstream(&mut peer_rx, &mut upstream_tx, &mut stream, shared, accepted) => close,
        close = upstream_to_peer(&mut upstream_rx, &mut peer_tx, shared) => close,
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

/// Checks and forwards what the peer sends, under the deadline that applies.
async fn peer_to_upstream(
    peer: &mut ReadHalf<'_>,
    upstream: &mut WriteHalf<'_>,
    stream: &mut ClientStream,
    shared: &Shared,
    accepted: Instant,
) -> Close {
    let chunk = shared.limits.read_chunk;
    let mut buf = BytesMut::new();
    let mut last_message = Instant::now();
    loop {
        let deadline = deadline(shared, accepted, stream, last_message);
        match read_before(peer, &mut buf, chunk, deadline).await {
            Ok(0) => return Close::PeerClosed,
            Ok(_) => {}
            Err(close) => return close,
        }
        let messages = stream.messages();
        if let Err(violation) = stream.feed(&buf) {
            return Close::Violation(violation);
        }
        if stream.messages() > messages {
            last_message = Instant::now();
        }
        // Our own socket: no stall limit.
        if upstream.write_all(&buf).await.is_err() {
            return Close::UpstreamClosed;
        }
        shared
            .counters
            .forwarded
            .fetch_add(buf.len() as u64, Ordering::SeqCst);
        buf.clear();
    }
}

/// Relays what our own socket sends, closing when the peer stops reading.
async fn upstream_to_peer(
    upstream: &mut ReadHalf<'_>,
    peer: &mut WriteHalf<'_>,
    shared: &Shared,
) -> Close {
    let chunk = shared.limits.read_chunk;
    let stall = shared.limits.write_stall_timeout;
    let mut buf = BytesMut::new();
    loop {
        match read_some(upstream, &mut buf, chunk).await {
            Ok(0) | Err(_) => return Close::UpstreamClosed,
            Ok(_) => {}
        }
        let mut rest = &buf[..];
        while !rest.is_empty() {
            match timeout(stall, peer.write(rest)).await {
                Err(_) => return Close::WriteStalled,
                Ok(Ok(0) | Err(_)) => return Close::PeerClosed,
                Ok(Ok(n)) => rest = &rest[n..],
            }
        }
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
    if buf.is_empty() {
        tokio::select! {
            biased;
            ready = src.readable() => ready?,
            () = std::future::ready(()) => {
                *buf = BytesMut::new();
                src.readable().await?;
            }
        }
    }
    if buf.capacity() == buf.len() {
        buf.reserve(chunk - buf.len());
    }
    let room = chunk - buf.len();
    src.read_buf(&mut (&mut *buf).limit(room)).await
}
