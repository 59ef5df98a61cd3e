//! The local control socket: how the CLI asks the master for things.
//!
//! A unix socket (never TCP), mode 0660, group `socket_group` (until the server runs it is
//! 0600). Each connection carries one [`ControlRequest`] and the master's stream of
//! [`ControlEvent`]s (see `brine_proto::control` for the sequence). The caller's uid, gid and
//! pid come from the kernel (SO_PEERCRED); a connection whose credentials cannot be read is
//! refused. How many connections and request bytes each caller may hold is decided in
//! [`admission`] before the request is read; what each caller may do is decided in
//! [`crate::acl`]; every publish attempt and key command is written to the audit log
//! ([`crate::audit`]).
//!
//! Publishing: compile the target, check the function against the caller's ACL, resolve the
//! target against the registry (the expected minions; an id the target names outright that
//! has no accepted key is expected too, `no_key` from the start, and sent nothing), check
//! every expected minion against the ACL, write the `allowed` audit line (no line, no job:
//! fail closed), write the job to the store, register it with the job hub, and only then
//! publish it. A store failure answers `error storage` and publishes nothing.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use brine_proto::control::{
    ControlError, ControlEvent, ControlRequest, JobQuery, KeyCommand, MinionState, MinionStatus,
    PublishRequest, MAX_ACTIVE_MINIONS, MAX_SEARCH_PATTERN_BYTES,
};
use brine_proto::frame::ControlCodec;
use brine_proto::limits::MAX_JOB_BYTES;
use brine_proto::{decode, encode, now_ms, Job, MinionId, TargetMatcher};
use bytes::Bytes;
use futures::SinkExt;
use tokio::net::{UnixListener, UnixStream};
use tokio_util::codec::Framed;
use tracing::{debug, error, info, warn};

use crate::acl::{Acl, Caller};
use crate::audit::{self, AuditLog, Outcome, Record, Written};
use crate::jobs::JobEvent;
use crate::{MasterError, Shared};

mod admission;

use admission::{Admission, Refusal};

/// How long accepting pauses after a failed accept.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// The longest wait a client may ask for.
const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);

/// The error code of a refusal by the authorization rules.
const DENIED: ControlError = ControlError::Denied;

type Connection = Framed<UnixStream, ControlCodec>;

/// What every control connection needs besides [`Shared`].
#[derive(Debug)]
struct Guard {
    acl: Acl,
    audit: Arc<AuditLog>,
    /// The master's own (effective) uid: privileged like root.
    master_uid: u32,
}

/// Binds the control socket, replacing a stale socket file but never a live master's. The
/// socket is mode 0600 until [`serve`] gives it to `socket_group` and opens it to 0660.
pub fn bind(path: &Path) -> Result<UnixListener, MasterError> {
    let err = |reason: String| MasterError::ControlSocket {
        path: path.to_path_buf(),
        reason,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| err(format!("creating its directory: {e}")))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(err("another master is listening on it".into()));
        }
        std::fs::remove_file(path).map_err(|e| err(format!("removing the stale socket: {e}")))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| err(e.to_string()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| err(format!("setting its mode: {e}")))?;
    Ok(listener)
}

/// Gives the socket to `group` (when it names a group the master may give it to: else it keeps
/// the master's own group, with a warning) and sets its mode to 0660.
fn open_socket(path: &Path, group: &str) {
    if !group.is_empty() {
        match nix::unistd::Group::from_name(group) {
            Ok(Some(found)) => {
                if let Err(err) = std::os::unix::fs::chown(path, None, Some(found.gid.as_raw())) {
                    warn!(group, cause = %err, "could not give the control socket to socket_group; it keeps the master's own group");
                }
            }
            Ok(None) => {
                warn!(
                    group,
                    "socket_group does not exist; the control socket keeps the master's own group"
                );
            }
            Err(err) => {
                warn!(group, cause = %err, "could not look up socket_group; the control socket keeps the master's own group");
            }
        }
    }
    if let Err(err) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)) {
        error!(socket = %path.display(), cause = %err, "could not set the control socket's mode to 0660; only the master's user and root can use it");
    }
}

/// Accepts control connections until the master is cancelled, each served in a task of its
/// own. The accept loop beats a watchdog heartbeat on every turn, and turns when idle too.
pub async fn serve(shared: Arc<Shared>, listener: UnixListener) {
    let heartbeat = shared
        .watchdog
        .heartbeat("the control socket's accept loop");
    let mut turn = heartbeat.ticker();
    let acl = Acl::compile(&shared.config.publisher_acl).unwrap_or_else(|reason| {
        // The configuration was validated; should this still fail, nobody gets anything.
        error!(%reason, "publisher_acl does not compile; only root and the master's user may publish");
        Acl::default()
    });
    let audit = AuditLog::new(shared.config.audit_log_path());
    if let Err(err) = audit.touch() {
        error!(path = %audit.path().display(), cause = %err, "cannot write the audit log; every publish and key change is refused until it can be written");
    }
    let guard = Arc::new(Guard {
        acl,
        audit,
        master_uid: nix::unistd::geteuid().as_raw(),
    });
    open_socket(&shared.config.socket, &shared.config.socket_group);
    let admission = Arc::new(Admission::default());
    loop {
        heartbeat.beat();
        // Every connection is accepted at once: who may be served is decided by its caller.
        let mut stream = tokio::select! {
            _ = shared.cancel.cancelled() => return,
            // `accept` is cancel-safe: a turn loses no connection.
            _ = turn.tick() => continue,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of open files or memory: pause rather than spin (and flood the log).
                    warn!(cause = %err, "accepting a control connection failed; pausing for 100 ms");
                    tokio::select! {
                        _ = shared.cancel.cancelled() => return,
                        _ = tokio::time::sleep(ACCEPT_PAUSE) => {}
                    }
                    continue;
                }
            },
        };
        // Blocks this loop as a dependency that hangs would (watchdog tests).
        fail::fail_point!("master-control-stall");
        let shared = Arc::clone(&shared);
        let guard = Arc::clone(&guard);
        let admission = Arc::clone(&admission);
        shared.tasks.clone().spawn(async move {
            let caller = match caller(&stream) {
                Ok(caller) => caller,
                Err(err) => {
                    warn!(cause = %err, "refused a control connection: its credentials cannot be read");
                    let mut conn = framed(stream);
                    let _ = send_error(&mut conn, DENIED, "the master cannot tell who you are").await;
                    return;
                }
            };
            let privileged = caller.is_privileged(guard.master_uid);
            let admitted = match admission.seat(&caller, privileged).await {
                Ok(seat) => admission
                    .read_request(&mut stream, &seat)
                    .await
                    .map(|request| (seat, request)),
                Err(refusal) => Err(refusal),
            };
            let served = match admitted {
                Ok((_seat, Some(request))) => {
                    let mut conn = framed(stream);
                    serve_client(&shared, &guard, &mut conn, caller, &request.frame).await
                }
                Ok((_, None)) => Ok(()),
                Err(Refusal::Gone(err)) => Err(err),
                Err(Refusal::Busy(message)) => {
                    debug!(uid = caller.uid, user = %caller.user, %message, "control connection refused: busy");
                    send_error(&mut framed(stream), ControlError::Busy, message).await
                }
                Err(Refusal::BadRequest(message)) => {
                    send_error(&mut framed(stream), ControlError::BadRequest, message).await
                }
            };
            if let Err(err) = served {
                debug!(cause = %err, "control client went away");
            }
        });
    }
}

/// The connection after its request: the master's events, framed.
fn framed(stream: UnixStream) -> Connection {
    Framed::new(stream, ControlCodec)
}

/// Who is calling, from the kernel's peer credentials; the user name is `uid:<n>` when the
/// uid has none.
fn caller(stream: &UnixStream) -> std::io::Result<Caller> {
    let cred = stream.peer_cred()?;
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(cred.uid()))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| format!("uid:{}", cred.uid()));
    Ok(Caller {
        uid: cred.uid(),
        gid: cred.gid(),
        pid: cred.pid(),
        user,
    })
}

/// Writes a line for a request that is refused or failed anyway: a failure is only logged.
/// Whether the line was written (a refusal over its user's rate is only counted).
async fn audit_best_effort(guard: &Guard, record: Record) -> Written {
    match guard.audit.write(&record).await {
        Ok(written) => written,
        Err(err) => {
            error!(path = %guard.audit.path().display(), cause = %err, outcome = ?record.outcome, "could not write the audit log");
            Written::Yes
        }
    }
}

/// Writes the `allowed` line that must exist before the request is carried out.
async fn audit_required(guard: &Guard, record: Record) -> Result<(), String> {
    guard.audit.write(&record).await.map(drop).map_err(|err| {
        error!(path = %guard.audit.path().display(), cause = %err, "could not write the audit log; the request is refused");
        format!("the master could not write its audit log, so nothing was done: {err}")
    })
}

/// Audits, logs and answers a refusal by the authorization rules. The master's own log says
/// it only when the audit log does: both are bounded per user the same way.
async fn deny(
    guard: &Guard,
    conn: &mut Connection,
    caller: &Caller,
    request: audit::Request,
    reason: String,
) -> std::io::Result<()> {
    let summary = request.summary();
    let record = Record::new(caller, request, Outcome::Denied).because(&reason);
    // The reason as the audit line has it: it may quote the caller's function name at length.
    let logged = record.reason.clone().unwrap_or_default();
    if audit_best_effort(guard, record).await == Written::Yes {
        warn!(uid = caller.uid, gid = caller.gid, pid = caller.pid, user = %caller.user, request = %summary, reason = %logged, "control request denied");
    }
    send_error(conn, DENIED, reason.to_string()).await
}

/// Peeks at the client's end: it sends one request, then only reads, so the end of the stream
/// (or any byte more) means it is done with the connection. `WouldBlock` while it listens.
fn peek_done(conn: &Connection) -> std::io::Result<()> {
    use nix::sys::socket::{recv, MsgFlags};
    use std::os::fd::AsRawFd;
    let flags = MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT;
    match recv(conn.get_ref().as_raw_fd(), &mut [0u8; 1], flags) {
        Err(nix::errno::Errno::EAGAIN) => Err(std::io::ErrorKind::WouldBlock.into()),
        _ => Ok(()),
    }
}

/// Whether the client has closed its end now. (tokio's `try_read` answers from its cached
/// readiness and may not look.)
fn client_gone(conn: &Connection) -> bool {
    peek_done(conn).is_ok()
}

/// Resolves when the client closes its end, so that a waiting connection gives its seat back
/// then and not when its job ends.
async fn client_hung_up(conn: &Connection) {
    let stream = conn.get_ref();
    loop {
        if stream.readable().await.is_err() {
            return;
        }
        match stream.try_io(tokio::io::Interest::READABLE, || peek_done(conn)) {
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => continue,
            _ => return,
        }
    }
}

async fn send(conn: &mut Connection, event: &ControlEvent) -> std::io::Result<()> {
    Ok(conn.send(Bytes::from(encode(event))).await?)
}

async fn send_error(
    conn: &mut Connection,
    code: ControlError,
    message: impl Into<String>,
) -> std::io::Result<()> {
    send(
        conn,
        &ControlEvent::Error {
            code,
            message: message.into(),
        },
    )
    .await
}

async fn serve_client(
    shared: &Arc<Shared>,
    guard: &Guard,
    conn: &mut Connection,
    caller: Caller,
    frame: &[u8],
) -> std::io::Result<()> {
    let request: ControlRequest = match decode(frame) {
        Ok(request) => request,
        Err(err) => return send_error(conn, ControlError::BadRequest, err.to_string()).await,
    };
    match request {
        ControlRequest::Publish(publish) => {
            serve_publish(shared, guard, conn, publish, caller).await
        }
        ControlRequest::LookupJob { jid, wait } => {
            // Subscribe before reading the record, so nothing falls between the two.
            let events = if wait { shared.jobs.watch(&jid) } else { None };
            let key = jid.clone();
            match shared.store.call(move |s| s.report(&key)).await {
                Ok(Some(report)) => match events {
                    Some(events) => {
                        for ret in report.minions.iter().filter_map(|m| m.ret.clone()) {
                            send(conn, &ControlEvent::Return(ret)).await?;
                        }
                        stream_until_done(shared, conn, &jid, events).await
                    }
                    None => send(conn, &ControlEvent::Done(report)).await,
                },
                Ok(None) => send_error(conn, ControlError::NotFound, format!("no job {jid}")).await,
                Err(err) => send_error(conn, ControlError::Storage, err.to_string()).await,
            }
        }
        ControlRequest::ListJobs(query) => {
            if let Err(reason) = check_job_query(&query) {
                return send_error(conn, ControlError::BadRequest, reason).await;
            }
            match shared.store.call(move |s| s.list_jobs(&query)).await {
                Ok(jobs) => send(conn, &ControlEvent::Jobs { jobs }).await,
                Err(err) => send_error(conn, ControlError::Storage, err.to_string()).await,
            }
        }
        ControlRequest::ActiveJobs {} => {
            // The hub says which jobs are live and where their minions stand; the store adds
            // what each job is.
            let (live, omitted) = shared.jobs.progress(MAX_ACTIVE_MINIONS);
            match shared.store.call(move |s| s.active_jobs(live)).await {
                Ok(jobs) => send(conn, &ControlEvent::ActiveJobs { jobs, omitted }).await,
                Err(err) => send_error(conn, ControlError::Storage, err.to_string()).await,
            }
        }
        ControlRequest::Minions {} => {
            let minions = shared.registry.snapshot();
            let no_key = Vec::new();
            send(conn, &ControlEvent::Minions { minions, no_key }).await
        }
        ControlRequest::MatchTarget { target } => {
            let matcher = match target
                .expand_nodegroups(&shared.nodegroups)
                .and_then(|t| t.compile())
            {
                Ok(matcher) => matcher,
                Err(err) => {
                    return send_error(conn, ControlError::BadRequest, err.to_string()).await
                }
            };
            let (unseen, no_key) = match unknown_named(shared, &matcher).await {
                Ok(unknown) => unknown,
                Err(Unresolved(code, reason)) => return send_error(conn, code, reason).await,
            };
            let mut minions = shared.registry.matching_statuses(&matcher);
            // Named ids with an accepted key that never said hello.
            minions.extend(unseen.into_iter().map(|id| MinionStatus {
                id,
                connected: false,
                last_seen_ms: 0,
                version: String::new(),
            }));
            minions.sort_by(|a, b| a.id.cmp(&b.id));
            send(conn, &ControlEvent::Minions { minions, no_key }).await
        }
        ControlRequest::Keys(command) => serve_keys(shared, guard, conn, command, caller).await,
    }
}

/// `brine-key`: root and the master's user only. Every command but `list` is audited first
/// (fail closed); every refusal is audited.
async fn serve_keys(
    shared: &Arc<Shared>,
    guard: &Guard,
    conn: &mut Connection,
    command: KeyCommand,
    caller: Caller,
) -> std::io::Result<()> {
    let request = audit::Request::keys(&command);
    if !caller.is_privileged(guard.master_uid) {
        let reason = format!(
            "user {} may not manage keys (only root and the master's user may)",
            caller.user
        );
        return deny(guard, conn, &caller, request, reason).await;
    }
    let audited = !matches!(command, KeyCommand::List {});
    if audited {
        let allowed = Record::new(&caller, request.clone(), Outcome::Allowed);
        if let Err(message) = audit_required(guard, allowed).await {
            return send_error(conn, ControlError::Storage, message).await;
        }
    }
    let answer = crate::keyring::command(shared, command).await;
    // The allowed line said it may be done; one that was not done says so, and why.
    if let (true, ControlEvent::Error { code, message }) = (audited, &answer) {
        let outcome = match code {
            ControlError::NotFound | ControlError::BadRequest => Outcome::Refused,
            _ => Outcome::Failed,
        };
        audit_best_effort(
            guard,
            Record::new(&caller, request, outcome).because(message),
        )
        .await;
    }
    send(conn, &answer).await
}

async fn serve_publish(
    shared: &Arc<Shared>,
    guard: &Guard,
    conn: &mut Connection,
    request: PublishRequest,
    caller: Caller,
) -> std::io::Result<()> {
    let mut audited = audit::Request::publish(
        &request.target,
        request.fun.as_str(),
        &request.arg,
        &request.kwarg,
    );
    let record = |audited: &audit::Request, outcome| Record::new(&caller, audited.clone(), outcome);
    let invalid = |reason: String| {
        let line = record(&audited, Outcome::Invalid).because(&reason);
        async move {
            audit_best_effort(guard, line).await;
            reason
        }
    };
    // Minions know no nodegroups: they get the expression the group stands for.
    let compiled = request
        .target
        .expand_nodegroups(&shared.nodegroups)
        .and_then(|target| target.compile().map(|matcher| (target, matcher)));
    let (target, matcher) = match compiled {
        Ok(compiled) => compiled,
        Err(err) => {
            let reason = invalid(err.to_string()).await;
            return send_error(conn, ControlError::BadRequest, reason).await;
        }
    };
    // Every job is stored and sent to each of its minions: its size is bounded.
    let size = encode(&(&target, &request.fun, &request.arg, &request.kwarg)).len();
    if size > MAX_JOB_BYTES {
        let reason = invalid(format!(
            "the job's function, arguments and target take {size} bytes, more than the \
             {MAX_JOB_BYTES} a job may (send bulk data as files)"
        ))
        .await;
        return send_error(conn, ControlError::BadRequest, reason).await;
    }
    let privileged = caller.is_privileged(guard.master_uid);
    // The function first: a caller who may not run it learns nothing about the minions.
    if !privileged {
        if let Err(reason) = guard.acl.check_function(&caller.user, request.fun.as_str()) {
            return deny(guard, conn, &caller, audited, reason).await;
        }
    }
    let (unseen, no_key) = match unknown_named(shared, &matcher).await {
        Ok(unknown) => unknown,
        Err(Unresolved(code, reason)) => {
            let line = match code {
                ControlError::BadRequest => record(&audited, Outcome::Invalid),
                _ => record(&audited, Outcome::Failed),
            };
            audit_best_effort(guard, line.because(&reason)).await;
            return send_error(conn, code, reason).await;
        }
    };
    let mut minions = shared.registry.matching(&matcher);
    minions.extend(unseen);
    minions.sort();
    audited.resolved(minions.len() + no_key.len());
    if minions.is_empty() && no_key.is_empty() {
        audit_best_effort(guard, record(&audited, Outcome::NoMinions)).await;
        return send_error(
            conn,
            ControlError::NoMinions,
            "no minions matched the target",
        )
        .await;
    }
    if !privileged {
        let targeted: Vec<MinionId> = minions.iter().chain(&no_key).cloned().collect();
        if let Err(reason) = guard
            .acl
            .check(&caller.user, request.fun.as_str(), &targeted)
        {
            return deny(guard, conn, &caller, audited, reason).await;
        }
    }
    let wait = Duration::from_millis(request.timeout_ms).min(MAX_WAIT);
    let published_ms = now_ms();
    let deadline_ms = published_ms + wait.as_millis() as u64;
    if client_gone(conn) {
        // The CLI gave up (the master was frozen or overloaded) and told its user the job may
        // still run: it does not, since nobody is left to see it.
        info!(fun = %request.fun, user = %caller.user, "the client went away before its job was stored; not publishing it");
        let line = record(&audited, Outcome::Failed)
            .because("the client went away before the job was stored; nothing was published");
        audit_best_effort(guard, line).await;
        return Ok(());
    }
    let jid = shared.jobs.mint_jid();
    audited.minted(&jid);
    // No audit line, no job.
    if let Err(message) = audit_required(guard, record(&audited, Outcome::Allowed)).await {
        return send_error(conn, ControlError::Storage, message).await;
    }
    let job = Job {
        jid,
        target,
        fun: request.fun.into(),
        arg: request.arg,
        kwarg: request.kwarg,
        timeout_ms: shared.config.job_timeout.as_millis() as u64,
        expires_ms: deadline_ms,
        master_time_ms: published_ms,
        user: caller.user.clone(),
    };
    let (stored_job, expected, unkeyed) = (job.clone(), minions.clone(), no_key.clone());
    if let Err(err) = shared
        .store
        .call(move |s| s.insert_job(&stored_job, published_ms, deadline_ms, &expected, &unkeyed))
        .await
    {
        warn!(cause = %err, "could not store a job; nothing published");
        audit_best_effort(
            guard,
            record(&audited, Outcome::Failed).because(format!("storing the job: {err}")),
        )
        .await;
        return send_error(
            conn,
            ControlError::Storage,
            format!("the master could not store the job, nothing was published: {err}"),
        )
        .await;
    }
    let expected = minions.iter().map(|id| (id.clone(), MinionState::Waiting));
    let unkeyed = no_key.iter().map(|id| (id.clone(), MinionState::NoKey));
    let complete = shared.jobs.open(&job.jid, expected.chain(unkeyed));
    let events = request.wait.then(|| shared.jobs.watch(&job.jid)).flatten();
    let jid = job.jid.clone();
    if complete.is_some() {
        // Only ids without a key: nothing to send, and nothing to wait for.
        info!(%jid, fun = %job.fun, target = %job.target, user = %job.user, no_key = no_key.len(), "job for ids without an accepted key only; nothing published");
        shared.end_job(&jid).await;
    } else {
        let time_limit_ms = shared.time_limit_ms(deadline_ms, job.timeout_ms);
        shared.track_deadline(jid.clone(), deadline_ms, time_limit_ms);
        info!(%jid, fun = %job.fun, target = %job.target, user = %job.user, uid = caller.uid, minions = minions.len(), no_key = no_key.len(), "job published");
    }
    let outgoing = crate::publish::Outgoing {
        job,
        expected: minions.clone(),
    };
    if complete.is_none() && shared.publisher.send(outgoing).await.is_err() {
        audit_best_effort(
            guard,
            record(&audited, Outcome::Failed).because("the master is stopping"),
        )
        .await;
        return send_error(conn, ControlError::ShuttingDown, "the master is stopping").await;
    }
    send(
        conn,
        &ControlEvent::Published {
            jid: jid.clone(),
            minions: minions.into_iter().chain(no_key).collect(),
        },
    )
    .await?;
    match events {
        Some(events) => stream_until_done(shared, conn, &jid, events).await,
        None => Ok(()),
    }
}

/// Why a target could not be resolved: the error code and the reason.
struct Unresolved(ControlError, String);

/// The ids the target names outright that the registry does not know, sorted and split: those
/// whose key is accepted (a minion that has not said hello yet: a job expects it and is sent
/// to it like any other), and those without an accepted key (Salt's "missing" minions:
/// `no_key`). A named id that cannot be a minion id is a bad request.
async fn unknown_named(
    shared: &Arc<Shared>,
    matcher: &TargetMatcher,
) -> Result<(Vec<MinionId>, Vec<MinionId>), Unresolved> {
    let mut unknown = Vec::new();
    for name in matcher.named_ids() {
        let id = MinionId::new(name).map_err(|err| {
            Unresolved(
                ControlError::BadRequest,
                format!("the target names {name:?}, which cannot be a minion id: {err}"),
            )
        })?;
        if !shared.registry.is_known(&id) {
            unknown.push(id);
        }
    }
    if unknown.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let named = unknown.clone();
    let accepted = shared
        .store
        .call(move |s| s.accepted_among(&named))
        .await
        .map_err(|err| Unresolved(ControlError::Storage, err.to_string()))?;
    unknown.retain(|id| !accepted.contains(id));
    Ok((accepted, unknown))
}

/// Forwards returns as they are stored, then the job's full record when it ends.
async fn stream_until_done(
    shared: &Arc<Shared>,
    conn: &mut Connection,
    jid: &brine_proto::Jid,
    mut events: tokio::sync::mpsc::UnboundedReceiver<JobEvent>,
) -> std::io::Result<()> {
    loop {
        let event = tokio::select! {
            _ = shared.cancel.cancelled() => {
                return send_error(conn, ControlError::ShuttingDown, "the master is stopping; the job goes on: see brine-run jobs.lookup").await;
            }
            _ = client_hung_up(conn) => return Ok(()),
            event = events.recv() => event,
        };
        match event {
            Some(JobEvent::Return(ret)) => send(conn, &ControlEvent::Return(ret)).await?,
            Some(JobEvent::Running(minion)) => {
                send(conn, &ControlEvent::Running { minion }).await?
            }
            Some(JobEvent::StillRunning { minions, wait_ms }) => {
                send(conn, &ControlEvent::StillRunning { minions, wait_ms }).await?
            }
            Some(JobEvent::Done) | None => break,
        }
    }
    let key = jid.clone();
    match shared.store.call(move |s| s.report(&key)).await {
        Ok(Some(report)) => send(conn, &ControlEvent::Done(report)).await,
        Ok(None) => {
            send_error(
                conn,
                ControlError::NotFound,
                format!("job {jid} was pruned"),
            )
            .await
        }
        Err(err) => send_error(conn, ControlError::Storage, err.to_string()).await,
    }
}

/// A `list_jobs` query's globs are bounded; times may come in any order (an empty range
/// lists nothing).
fn check_job_query(query: &JobQuery) -> Result<(), String> {
    for (name, pattern) in [
        ("search_function", &query.search_function),
        ("search_target", &query.search_target),
    ] {
        if pattern
            .as_ref()
            .is_some_and(|p| p.len() > MAX_SEARCH_PATTERN_BYTES)
        {
            return Err(format!(
                "{name} is longer than {MAX_SEARCH_PATTERN_BYTES} bytes"
            ));
        }
    }
    Ok(())
}
