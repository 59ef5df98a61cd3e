//! The return port: minion requests, each answered exactly once, many at a time.
//!
//! Minions talk REQ; the master serves them with a ROUTER socket, which is wire-compatible
//! (a REQ peer's request arrives as `[peer, "", body]`, the answer goes back as
//! `[peer, "", answer]`). Unlike REP, ROUTER does not make the master answer one request
//! before it reads the next: each request is handled in a task of its own (at most
//! [`MAX_IN_FLIGHT`] at once), so a thousand returns arriving together wait on one store
//! commit (the store batches them), not on a thousand in a row. A minion's REQ socket still
//! sends one request at a time, so requests of one minion never overlap.
//!
//! Each request is an envelope (bounded decoding, see `brine_proto::limits`) of one of three
//! kinds, and every one gets exactly one answer, even when it is malformed, so that no
//! minion's REQ socket is left waiting. Nothing a peer sends stops the loop.
//!
//! - `plain`: only `master_keys` (the master's public keys, for pinning); anything else is
//!   refused: nothing acts before authentication.
//! - `handshake`: Noise IK msg1 carrying `hello`. The master authenticates the minion's static
//!   key and looks it up: a new id's key becomes pending (or accepted with `auto_accept`), a
//!   second key for a known id is denied. An accepted key gets `welcome` (session id, group
//!   key) in msg2 and a session; the others get `not_accepted` or `rejected`.
//! - `sealed`: a request in a session. The id the request names must be the session's id.
//!
//! | request   | effect                                        | reply                 |
//! |-----------|-----------------------------------------------|-----------------------|
//! | keepalive | liveness refreshed                            | ok                    |
//! | pending   | live jobs that expect it and lack its return  | jobs                  |
//! | receipt   | the job is running there                      | ok                    |
//! | return    | stored once per (jid, minion); watchers told  | ok (also for resends) |
//! | group_key | the current group key                         | group_key             |
//! | goodbye   | not connected from now on                     | ok                    |
//!
//! Each request needs at most one short store call; ending a job runs in its own task.
//!
//! The socket lives on three threads of its own ([`SocketThread`], see `socket_thread`): its connection tasks, the
//! loop that receives, and the loop that sends. The zeromq crate blocks a thread on a lock in
//! places (see [`SocketThread`]); on threads of their own, none of that can stall the master's
//! runtime or wait on itself. Should one block for good all the same, its heartbeat (and the
//! receiving loop's) stops, and systemd's watchdog restarts the master.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use brine_proto::codec::BodyKind;
use brine_proto::control::KeyState;
use brine_proto::msg::ReplyError;
use brine_proto::{
    decode, encode, now_ms, Envelope, EnvelopeRef, MasterReply, MinionId, MinionRequest,
};
use bytes::Bytes;
use tokio::sync::{mpsc, Semaphore};
use tracing::{debug, info, warn};
use zeromq::{RouterSocket, SocketRecv, SocketSend, ZmqMessage};

use brine_daemon::watchdog::Heartbeat;
use brine_proto::limits::MAX_GRAINS_BYTES;

use crate::large_requests::{Busy, LargeRequests, LARGE_REQUEST_BYTES};
use crate::sessions::{Entry, Hello};
use crate::socket_thread::SocketThread;
use crate::store::ReturnOutcome;
use crate::Shared;

/// The most requests handled at once; the receiving loop waits when they are all busy.
pub const MAX_IN_FLIGHT: usize = 512;
/// How long an answer may wait for room in its peer's queue (a peer that does not read).
const SEND_TIMEOUT: Duration = Duration::from_secs(1);
/// Anyone who reaches the return port can present keys as fast as it likes: what the master
/// logs about unaccepted keys is limited.
static KEY_LOG: LazyLock<brine_daemon::LogLimiter> =
    LazyLock::new(|| brine_daemon::LogLimiter::new("unaccepted minion keys"));
/// Whether `grains` fit [`MAX_GRAINS_BYTES`] (a minion keeps to it; one that does not, does not
/// make the master hold its megabytes).
fn grains_fit(grains: &brine_proto::Map) -> bool {
    encode(grains).len() <= MAX_GRAINS_BYTES
}

/// One request as it arrived: the peer's routing id and the frames after the delimiter.
struct Request {
    peer: Bytes,
    frames: Vec<Bytes>,
}

/// Serves the return socket, bound on `connections`, until the master is cancelled; then
/// closes it and stops its threads.
pub async fn run(shared: Arc<Shared>, socket: RouterSocket, connections: SocketThread) {
    let (recv_thread, send_thread) = match (
        SocketThread::start("brine-rep-recv", &shared.watchdog),
        SocketThread::start("brine-rep-send", &shared.watchdog),
    ) {
        (Ok(recv), Ok(send)) => (recv, send),
        (Err(err), _) | (_, Err(err)) => {
            // Only when the system is out of threads; the master cannot serve minions.
            tracing::error!(cause = %err, "cannot start the return socket's threads");
            shared.cancel.cancel();
            connections.stop().await;
            return;
        }
    };
    let (sender, receiver) = socket.split();
    let (requests_tx, mut requests) = mpsc::channel::<Request>(MAX_IN_FLIGHT);
    let (answers, answers_rx) = mpsc::channel::<ZmqMessage>(MAX_IN_FLIGHT);
    let cancel = shared.cancel.clone();
    let heartbeat = shared
        .watchdog
        .heartbeat("the return port's receiving loop");
    let receiving = recv_thread.run(receive(receiver, requests_tx, heartbeat, cancel));
    let sending = send_thread.run(send(sender, answers_rx));

    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let large = LargeRequests::new();
    let dispatching = async {
        while let Some(Request { peer, frames }) = requests.recv().await {
            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                break;
            };
            let (shared, large, answers) =
                (Arc::clone(&shared), Arc::clone(&large), answers.clone());
            tokio::spawn(async move {
                let answer = match <[Bytes; 1]>::try_from(frames) {
                    Ok([frame]) => answer(&shared, &large, frame).await,
                    Err(frames) => plain(&error(
                        ReplyError::Malformed,
                        format!("expected 1 frame, got {}", frames.len()),
                    )),
                };
                let message = ZmqMessage::try_from(vec![peer, Bytes::new(), answer.into()])
                    .expect("three frames");
                let _ = answers.send(message).await;
                drop(slot);
            });
        }
        // Every handler holds a slot until its answer is queued.
        let _ = slots.acquire_many(MAX_IN_FLIGHT as u32).await;
        drop(answers);
    };
    let (_, receiver, sender) = tokio::join!(dispatching, receiving, sending);
    drop((receiver, sender));
    for thread in [recv_thread, send_thread, connections] {
        thread.stop().await;
    }
}

/// The receiving loop (on its own thread): every request that came from a REQ peer goes to
/// the dispatcher; anything without the REQ delimiter is dropped (no REQ peer would read an
/// answer to it). Beats `heartbeat` on every turn, idle or not; a dispatcher that takes no
/// more requests for a whole watchdog check therefore stops it too. Gives the socket half back
/// at the end.
async fn receive(
    mut receiver: zeromq::RouterRecvHalf,
    requests: mpsc::Sender<Request>,
    heartbeat: Heartbeat,
    cancel: tokio_util::sync::CancellationToken,
) -> zeromq::RouterRecvHalf {
    let mut turn = heartbeat.ticker();
    loop {
        heartbeat.beat();
        let received = tokio::select! {
            _ = cancel.cancelled() => return receiver,
            // The router's `recv` is a stream's `next`: dropping it for a turn loses nothing.
            _ = turn.tick() => continue,
            received = receiver.recv() => received,
        };
        let message = match received {
            Ok(message) => message,
            Err(err) => {
                debug!(cause = %err, "a peer on the return port failed");
                continue;
            }
        };
        // Blocks this thread as a lock held inside the zeromq crate would (watchdog tests).
        fail::fail_point!("master-rep-stall");
        let mut frames = message.into_vec().into_iter();
        let (Some(peer), Some(delimiter)) = (frames.next(), frames.next()) else {
            continue;
        };
        if !delimiter.is_empty() {
            debug!("dropped a message without the REQ delimiter");
            continue;
        }
        let request = Request {
            peer,
            frames: frames.collect(),
        };
        if requests.send(request).await.is_err() {
            return receiver;
        }
    }
}

/// The sending loop (on its own thread): each answer to its peer, until every handler is done.
/// Gives the socket half back at the end.
async fn send(
    mut sender: zeromq::RouterSendHalf,
    mut answers: mpsc::Receiver<ZmqMessage>,
) -> zeromq::RouterSendHalf {
    while let Some(answer) = answers.recv().await {
        match tokio::time::timeout(SEND_TIMEOUT, sender.send(answer)).await {
            Ok(Ok(())) => {}
            // The peer left, or does not read: its REQ resends on a new socket if it is alive.
            Ok(Err(err)) => debug!(cause = %err, "could not answer a minion"),
            Err(_) => debug!("a minion's queue stayed full; dropped its answer"),
        }
    }
    sender
}

fn error(code: ReplyError, message: impl Into<String>) -> MasterReply {
    MasterReply::Error {
        code,
        message: message.into(),
    }
}

/// A reply outside any session.
fn plain(reply: &MasterReply) -> Vec<u8> {
    Envelope::new(BodyKind::Plain, None, encode(reply)).to_bytes()
}

/// Answers one request. The frame is read in place and let go of as soon as its body is
/// opened: a large request costs its size as few times as it can.
async fn answer(shared: &Arc<Shared>, large: &Arc<LargeRequests>, frame: Bytes) -> Vec<u8> {
    let envelope = match EnvelopeRef::from_bytes(&frame) {
        Ok(envelope) => envelope,
        Err(err) => {
            debug!(cause = %err, "malformed envelope");
            return plain(&error(ReplyError::Malformed, err.to_string()));
        }
    };
    if envelope.kind != BodyKind::Sealed && envelope.body.len() > LARGE_REQUEST_BYTES {
        // Whoever sends it need not hold a key: not worth decoding.
        return plain(&error(
            ReplyError::Malformed,
            format!("only a sealed request may be larger than {LARGE_REQUEST_BYTES} bytes"),
        ));
    }
    match envelope.kind {
        BodyKind::Plain => match decode::<MinionRequest>(envelope.body) {
            Ok(MinionRequest::MasterKeys {}) => {
                let public = shared.keys.public();
                plain(&MasterReply::MasterKeys {
                    noise: public.noise.to_vec(),
                    sign: public.sign.to_vec(),
                })
            }
            Ok(_) => plain(&error(
                ReplyError::Malformed,
                "only master_keys may be sent before the handshake",
            )),
            Err(err) => plain(&error(ReplyError::Malformed, err.to_string())),
        },
        BodyKind::Handshake => handshake(shared, envelope.body).await,
        BodyKind::Sealed => match envelope.session {
            Some(sid) => {
                let body = frame.slice_ref(envelope.body);
                drop(frame);
                sealed(shared, large, sid, body).await
            }
            None => plain(&error(
                ReplyError::Malformed,
                "a sealed request needs a session",
            )),
        },
        BodyKind::Signed => plain(&error(
            ReplyError::Malformed,
            "signed envelopes are for publications",
        )),
    }
}

/// Authenticates a minion's key and, for an accepted key, opens a session.
async fn handshake(shared: &Arc<Shared>, msg1: &[u8]) -> Vec<u8> {
    let responder = match brine_crypto::respond(&shared.keys, msg1) {
        Ok(responder) => responder,
        Err(err) => {
            debug!(cause = %err, "handshake failed");
            return plain(&error(ReplyError::Malformed, "handshake failed"));
        }
    };
    let (id, hello) = match decode::<MinionRequest>(responder.payload()) {
        Ok(MinionRequest::Hello {
            id,
            version,
            grains,
        }) => (id, Hello { version, grains }),
        Ok(_) => return plain(&error(ReplyError::Malformed, "a handshake carries hello")),
        Err(err) => return plain(&error(ReplyError::Malformed, err.to_string())),
    };
    let public = responder.remote_static();
    let fingerprint = brine_crypto::fingerprint(&public).to_string();
    let state = {
        let (key_id, fp, auto) = (id.clone(), fingerprint.clone(), shared.config.auto_accept);
        shared
            .store
            .call(move |s| s.register_key(&key_id, &public, &fp, auto, now_ms()))
            .await
    };
    let sid = shared.sessions().fresh_sid();
    let reply = match state {
        Ok(KeyState::Accepted) => welcome(shared, sid),
        Ok(KeyState::Pending) => {
            if KEY_LOG.admit() {
                info!(minion = %id, %fingerprint, "key pending: accept it with `brine-key accept {id} --fingerprint {fingerprint}`");
            } else {
                debug!(minion = %id, %fingerprint, "key pending");
            }
            error(
                ReplyError::NotAccepted,
                format!("the key of {id} ({fingerprint}) is pending on the master"),
            )
        }
        // A presented key is never preaccepted (that is a fingerprint without a key).
        Ok(state @ (KeyState::Rejected | KeyState::Denied | KeyState::Preaccepted)) => {
            if KEY_LOG.admit() {
                warn!(minion = %id, %fingerprint, ?state, "refused a minion key");
            } else {
                debug!(minion = %id, %fingerprint, ?state, "refused a minion key");
            }
            error(
                ReplyError::Rejected,
                format!("the key of {id} ({fingerprint}) is {state:?} on the master"),
            )
        }
        Err(err) => {
            if KEY_LOG.admit() {
                warn!(minion = %id, cause = %err, "could not record a minion key");
            } else {
                debug!(minion = %id, cause = %err, "could not record a minion key");
            }
            error(ReplyError::Unavailable, "the master cannot record keys now")
        }
    };
    let welcomed = matches!(reply, MasterReply::Welcome { .. });
    match responder.accept(&encode(&reply)) {
        Ok((session, msg2)) => {
            if welcomed {
                shared.sessions().insert_unproven(sid, id, hello, session);
            }
            Envelope::new(BodyKind::Handshake, None, msg2).to_bytes()
        }
        Err(err) => {
            debug!(cause = %err, "could not finish a handshake");
            plain(&error(ReplyError::Malformed, "handshake failed"))
        }
    }
}

/// Registers a minion as connected, with the grains of its hello: its session has proven
/// itself.
async fn register(shared: &Arc<Shared>, id: &MinionId, hello: Hello) -> Result<(), MasterReply> {
    let Hello {
        version,
        mut grains,
    } = hello;
    if !grains_fit(&grains) {
        // Registered without them: grain targets miss this minion until it sends fewer.
        warn!(minion = %id, limit = MAX_GRAINS_BYTES, "a hello's grains are too large; keeping none");
        grains = brine_proto::Map::new();
    }
    let (key, version_, grains_) = (id.clone(), version.clone(), grains.clone());
    if let Err(err) = shared
        .store
        .call(move |s| s.upsert_minion(&key, &version_, &grains_, now_ms()))
        .await
    {
        warn!(cause = %err, "job store unavailable");
        return Err(error(
            ReplyError::Unavailable,
            "the master cannot record minions now",
        ));
    }
    shared.registry.hello(id, &version, grains);
    info!(minion = %id, %version, "minion connected");
    Ok(())
}

/// The welcome of an accepted key's handshake.
fn welcome(shared: &Arc<Shared>, sid: u64) -> MasterReply {
    let group = shared.group_key();
    MasterReply::Welcome {
        session: sid,
        master_time_ms: now_ms(),
        keepalive_interval_ms: shared.config.keepalive_interval.as_millis() as u64,
        tick_interval_ms: shared.config.tick_interval.as_millis() as u64,
        group_epoch: group.epoch(),
        group_key: group.key_bytes().to_vec(),
    }
}

/// Opens a request in its session, handles it, and seals the answer. A large request is
/// handled only when admitted (see `large_requests`), and answered `unavailable` otherwise.
async fn sealed(
    shared: &Arc<Shared>,
    large: &Arc<LargeRequests>,
    sid: u64,
    body: Bytes,
) -> Vec<u8> {
    let Some(mut entry) = shared.sessions().take(sid) else {
        return plain(&error(
            ReplyError::NoSession,
            "no such session: handshake again",
        ));
    };
    // Held until the request has been handled.
    let _admitted = if body.len() > LARGE_REQUEST_BYTES {
        match large.admit(&entry.id, body.len()) {
            Ok(admitted) => Some(admitted),
            Err(busy) => return not_now(shared, sid, entry, &body, busy),
        }
    } else {
        None
    };
    let plaintext = match entry.noise.open(&body) {
        Ok(plaintext) => plaintext,
        Err(err) => {
            // Altered, replayed or forged by someone who saw the session id: a failed open
            // leaves the session as it was, so the real minion carries on.
            debug!(minion = %entry.id, cause = %err, "a sealed request did not open");
            shared.sessions().put_back(sid, entry);
            return plain(&error(
                ReplyError::Malformed,
                "the sealed request did not open",
            ));
        }
    };
    drop(body);
    // The first request of a session proves the handshake was the minion's own, not a replay
    // of its hello: only now is it registered and its session made the one in use.
    let mut proven_now = false;
    if let Some(hello) = entry.unproven.clone() {
        match register(shared, &entry.id, hello).await {
            Ok(()) => proven_now = true,
            Err(refusal) => {
                let answer = match entry.noise.seal(&encode(&refusal)) {
                    Ok(sealed) => Envelope::new(BodyKind::Sealed, Some(sid), sealed).to_bytes(),
                    Err(_) => plain(&refusal),
                };
                shared.sessions().put_back(sid, entry);
                return answer;
            }
        }
    }
    let request = decode::<MinionRequest>(&plaintext);
    drop(plaintext);
    let reply = match request {
        Err(err) => error(ReplyError::Malformed, err.to_string()),
        Ok(request) if request.minion_id() != Some(&entry.id) => {
            warn!(minion = %entry.id, named = ?request.minion_id(), "a minion spoke for another id");
            error(
                ReplyError::Refused,
                format!("this session belongs to {}", entry.id),
            )
        }
        Ok(request) => handle(shared, request).await,
    };
    let answer = match entry.noise.seal(&encode(&reply)) {
        Ok(sealed) => Envelope::new(BodyKind::Sealed, Some(sid), sealed).to_bytes(),
        Err(err) => {
            warn!(minion = %entry.id, cause = %err, "could not seal an answer");
            return plain(&error(ReplyError::NoSession, "handshake again"));
        }
    };
    // A key rejected or deleted while the request was handled ends the session here.
    if shared.registry.is_known(&entry.id) {
        let mut sessions = shared.sessions();
        if proven_now {
            sessions.prove(sid, entry);
        } else {
            sessions.put_back(sid, entry);
        }
    }
    answer
}

/// Answers a large request that was not admitted `unavailable`, in its session: the minion
/// pauses and sends it again on the same session. The request is authenticated (so that the
/// session moves past it, as the minion's has) but never kept whole; one that does not open
/// is refused as any other.
fn not_now(shared: &Arc<Shared>, sid: u64, mut entry: Entry, body: &[u8], busy: Busy) -> Vec<u8> {
    if let Err(err) = entry.noise.discard(body) {
        debug!(minion = %entry.id, cause = %err, "a sealed request did not open");
        shared.sessions().put_back(sid, entry);
        return plain(&error(
            ReplyError::Malformed,
            "the sealed request did not open",
        ));
    }
    debug!(minion = %entry.id, bytes = body.len(), %busy, "a large request must wait");
    let answer = match entry
        .noise
        .seal(&encode(&error(ReplyError::Unavailable, busy.to_string())))
    {
        Ok(sealed) => Envelope::new(BodyKind::Sealed, Some(sid), sealed).to_bytes(),
        Err(err) => {
            warn!(minion = %entry.id, cause = %err, "could not seal an answer");
            return plain(&error(ReplyError::NoSession, "handshake again"));
        }
    };
    shared.sessions().put_back(sid, entry);
    answer
}

/// Handles a request of an authenticated minion.
async fn handle(shared: &Arc<Shared>, request: MinionRequest) -> MasterReply {
    let Some(id) = request.minion_id().cloned() else {
        return error(
            ReplyError::Malformed,
            "master_keys is not a session request",
        );
    };
    if !shared.registry.seen(&id) {
        return error(
            ReplyError::NoSession,
            format!("{id} is not registered: handshake again"),
        );
    }
    match request {
        MinionRequest::MasterKeys {} | MinionRequest::Hello { .. } => error(
            ReplyError::Malformed,
            "hello and master_keys are not session requests",
        ),
        MinionRequest::Keepalive { .. } => MasterReply::Ok {},
        MinionRequest::GroupKey { .. } => {
            let group = shared.group_key();
            MasterReply::GroupKey {
                epoch: group.epoch(),
                key: group.key_bytes().to_vec(),
            }
        }
        MinionRequest::Grains { grains, .. } if !grains_fit(&grains) => error(
            ReplyError::Refused,
            format!("grains larger than {MAX_GRAINS_BYTES} bytes are not kept"),
        ),
        MinionRequest::Grains { grains, .. } => {
            let (key, stored) = (id.clone(), grains.clone());
            match shared
                .store
                .call(move |s| s.update_grains(&key, &stored))
                .await
            {
                Ok(()) => {
                    shared.registry.set_grains(&id, grains);
                    info!(minion = %id, "grains updated");
                    MasterReply::Ok {}
                }
                Err(err) => unavailable(err),
            }
        }
        MinionRequest::Goodbye { .. } => {
            shared.registry.goodbye(&id);
            info!(minion = %id, "minion said goodbye");
            MasterReply::Ok {}
        }
        MinionRequest::Pending { .. } => {
            match shared
                .store
                .call(move |s| s.pending_for(&id, now_ms()))
                .await
            {
                Ok(jobs) => MasterReply::Jobs { jobs },
                Err(err) => unavailable(err),
            }
        }
        MinionRequest::Receipt { jid, .. } => {
            let (key, minion) = (jid.clone(), id.clone());
            match shared
                .store
                .call(move |s| s.record_receipt(&key, &minion, now_ms()))
                .await
            {
                Ok(true) => {
                    shared.jobs.acknowledged(&jid, &id);
                    MasterReply::Ok {}
                }
                Ok(false) => error(
                    ReplyError::Refused,
                    format!("job {jid} does not expect this minion"),
                ),
                Err(err) => unavailable(err),
            }
        }
        MinionRequest::Return(ret) => {
            // Lent to the store thread and given back: a return may be 16 MiB.
            match shared
                .store
                .call(move |s| Ok((s.record_return(&ret, now_ms())?, ret)))
                .await
            {
                Ok((ReturnOutcome::Stored, ret)) => {
                    debug!(jid = %ret.jid, minion = %ret.id, "return stored");
                    // Tests crash the master here: stored, not yet answered.
                    fail::fail_point!("master-return-stored");
                    if shared.jobs.returned(&ret).is_some() {
                        let shared = Arc::clone(shared);
                        let jid = ret.jid.clone();
                        // Ending a job writes to the store: not in this loop.
                        shared
                            .tasks
                            .clone()
                            .spawn(async move { shared.end_job(&jid).await });
                    }
                    MasterReply::Ok {}
                }
                Ok((ReturnOutcome::Duplicate, _)) => MasterReply::Ok {},
                Ok((ReturnOutcome::NotExpected, ret)) => error(
                    ReplyError::Refused,
                    format!(
                        "job {} does not exist or does not expect this minion",
                        ret.jid
                    ),
                ),
                Err(err) => unavailable(err),
            }
        }
    }
}

fn unavailable(err: impl std::fmt::Display) -> MasterReply {
    warn!(cause = %err, "job store unavailable");
    error(
        ReplyError::Unavailable,
        "the master cannot store this now; try again",
    )
}
