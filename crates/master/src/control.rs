//! The local control socket: how the CLI asks the master for things.
//!
//! A unix socket (never TCP), mode 0660. Each connection carries one
//! [`ControlRequest`] and the master's stream of [`ControlEvent`]s (see
//! `brine_proto::control` for the sequence). The caller's uid comes from the kernel
//! (SO_PEERCRED) and is recorded on each job it publishes.
//!
//! Publishing: compile the target, resolve it against the registry (the expected minions),
//! write the job to the store, register it with the job hub, and only then publish it. A store
//! failure answers `error storage` and publishes nothing.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use brine_proto::control::{ControlError, ControlEvent, ControlRequest, PublishRequest};
use brine_proto::limits::MAX_FRAME_BYTES;
use brine_proto::{decode, encode, now_ms, Job, Publication};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tracing::{debug, info, warn};

use crate::jobs::JobEvent;
use crate::{MasterError, Shared};

/// The most CLI connections served at once.
const MAX_CLIENTS: usize = 256;
/// How long a client has to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait a client may ask for.
const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);

type Connection = Framed<UnixStream, LengthDelimitedCodec>;

/// Binds the control socket, replacing a stale socket file but never a live master's.
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
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| err(format!("setting its mode: {e}")))?;
    Ok(listener)
}

pub async fn serve(shared: Arc<Shared>, listener: UnixListener) {
    let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
    loop {
        let permit = tokio::select! {
            _ = shared.cancel.cancelled() => return,
            permit = Arc::clone(&slots).acquire_owned() => permit.expect("never closed"),
        };
        let stream = tokio::select! {
            _ = shared.cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    warn!(cause = %err, "accepting a control connection failed");
                    continue;
                }
            },
        };
        let shared = Arc::clone(&shared);
        shared.tasks.clone().spawn(async move {
            let _permit = permit;
            let user = caller(&stream);
            let mut conn = Framed::new(
                stream,
                LengthDelimitedCodec::builder()
                    .max_frame_length(MAX_FRAME_BYTES)
                    .new_codec(),
            );
            if let Err(err) = serve_client(&shared, &mut conn, user).await {
                debug!(cause = %err, "control client went away");
            }
        });
    }
}

/// The caller's user name (or uid) from the kernel's peer credentials.
fn caller(stream: &UnixStream) -> String {
    match stream.peer_cred() {
        Ok(cred) => nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(cred.uid()))
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| format!("uid:{}", cred.uid())),
        Err(_) => "unknown".into(),
    }
}

async fn send(conn: &mut Connection, event: &ControlEvent) -> std::io::Result<()> {
    conn.send(Bytes::from(encode(event))).await
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
    conn: &mut Connection,
    user: String,
) -> std::io::Result<()> {
    let frame = match tokio::time::timeout(REQUEST_TIMEOUT, conn.next()).await {
        Ok(Some(frame)) => frame?,
        Ok(None) => return Ok(()),
        Err(_) => return send_error(conn, ControlError::BadRequest, "no request within 10s").await,
    };
    let request: ControlRequest = match decode(&frame) {
        Ok(request) => request,
        Err(err) => return send_error(conn, ControlError::BadRequest, err.to_string()).await,
    };
    match request {
        ControlRequest::Publish(publish) => serve_publish(shared, conn, publish, user).await,
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
        ControlRequest::ListJobs { limit } => {
            match shared.store.call(move |s| s.list_jobs(limit)).await {
                Ok(jobs) => send(conn, &ControlEvent::Jobs { jobs }).await,
                Err(err) => send_error(conn, ControlError::Storage, err.to_string()).await,
            }
        }
        ControlRequest::Minions {} => {
            let minions = shared.registry.snapshot();
            send(conn, &ControlEvent::Minions { minions }).await
        }
    }
}

async fn serve_publish(
    shared: &Arc<Shared>,
    conn: &mut Connection,
    request: PublishRequest,
    user: String,
) -> std::io::Result<()> {
    let matcher = match request.target.compile() {
        Ok(matcher) => matcher,
        Err(err) => return send_error(conn, ControlError::BadRequest, err.to_string()).await,
    };
    if let Err(reason) = check_function_name(&request.fun) {
        return send_error(conn, ControlError::BadRequest, reason).await;
    }
    let minions = shared.registry.matching(&matcher);
    if minions.is_empty() {
        return send_error(
            conn,
            ControlError::NoMinions,
            "no minions matched the target",
        )
        .await;
    }
    let wait = Duration::from_millis(request.timeout_ms).min(MAX_WAIT);
    let published_ms = now_ms();
    let deadline_ms = published_ms + wait.as_millis() as u64;
    let job = Job {
        jid: shared.jobs.mint_jid(),
        target: request.target,
        fun: request.fun,
        arg: request.arg,
        kwarg: request.kwarg,
        timeout_ms: shared.config.job_timeout.as_millis() as u64,
        expires_ms: deadline_ms,
        master_time_ms: published_ms,
        user,
    };
    let (stored_job, expected) = (job.clone(), minions.clone());
    if let Err(err) = shared
        .store
        .call(move |s| s.insert_job(&stored_job, published_ms, deadline_ms, &expected))
        .await
    {
        warn!(cause = %err, "could not store a job; nothing published");
        return send_error(
            conn,
            ControlError::Storage,
            format!("the master could not store the job, nothing was published: {err}"),
        )
        .await;
    }
    shared.jobs.open(&job.jid, minions.iter().cloned(), []);
    let events = request.wait.then(|| shared.jobs.watch(&job.jid)).flatten();
    shared.track_deadline(job.jid.clone(), deadline_ms);
    info!(jid = %job.jid, fun = %job.fun, target = %job.target, user = %job.user, minions = minions.len(), "job published");
    let jid = job.jid.clone();
    if shared.publisher.send(Publication::Job(job)).await.is_err() {
        return send_error(conn, ControlError::ShuttingDown, "the master is stopping").await;
    }
    send(
        conn,
        &ControlEvent::Published {
            jid: jid.clone(),
            minions,
        },
    )
    .await?;
    match events {
        Some(events) => stream_until_done(shared, conn, &jid, events).await,
        None => Ok(()),
    }
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
            event = events.recv() => event,
        };
        match event {
            Some(JobEvent::Return(ret)) => send(conn, &ControlEvent::Return(ret)).await?,
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

/// `module.function`: two non-empty words of `[A-Za-z0-9_]`.
fn check_function_name(fun: &str) -> Result<(), String> {
    let ok = fun.len() <= 128
        && fun.split_once('.').is_some_and(|(m, f)| {
            !m.is_empty()
                && !f.is_empty()
                && m.chars()
                    .chain(f.chars())
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{fun:?} is not a function name of the form module.function"
        ))
    }
}
