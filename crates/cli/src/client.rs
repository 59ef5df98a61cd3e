//! The client end of the master's control socket.
//!
//! The sequence (see `brine_proto::control`): connect to the unix socket, send one
//! [`ControlRequest`] frame, then read [`ControlEvent`] frames until the master closes the
//! connection, each framed by `brine_proto::frame::ControlCodec`.
//! Every step is bounded: connecting and sending by [`CONNECT_TIMEOUT`], reading by a deadline
//! the caller chooses (for a job: its timeout plus [`DONE_MARGIN`], since the master sends
//! `done` at the job's deadline).

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use brine_proto::control::{ControlEvent, ControlRequest};
use brine_proto::frame::{ControlCodec, FrameError};
use brine_proto::DecodeError;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::net::UnixStream;
use tokio::time::{timeout_at, Instant};
use tokio_util::codec::Framed;

/// Where the master listens unless `--socket` or `BRINE_SOCKET` say otherwise.
pub const DEFAULT_SOCKET: &str = "/run/brine/master.sock";
/// How long connecting to the master and sending the request may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for the answer to a request that is not a job (`published`, `jobs`, ...).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long past a job's timeout to wait for the master's `done`.
pub const DONE_MARGIN: Duration = Duration::from_secs(10);

/// Why talking to the master failed. Each of these means exit code 69.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot reach the master at {}: {} (is brine-master running?)",
        path.display(),
        describe_io(source)
    )]
    Connect { path: PathBuf, source: io::Error },
    #[error("cannot reach the master at {}: permission denied: {why}", path.display())]
    ConnectDenied { path: PathBuf, why: String },
    #[error("cannot reach the master at {}: timed out after {}s", path.display(), CONNECT_TIMEOUT.as_secs())]
    ConnectTimeout { path: PathBuf },
    #[error("sending the request to the master: {0}")]
    Send(#[source] FrameError),
    #[error("sending the request to the master: timed out after {}s", CONNECT_TIMEOUT.as_secs())]
    SendTimeout,
    #[error("reading the master's answer: {}", describe_frame_error(.0))]
    Read(#[source] FrameError),
    #[error("the master sent an answer this brine cannot read: {0}")]
    Decode(#[source] DecodeError),
    #[error("no answer from the master in time (waited {}s)", .0.as_secs())]
    Timeout(Duration),
}

/// Why this user may not connect to the socket at `path`, as the operator fixes it: the
/// socket's group and mode, or the directory that cannot be entered.
fn why_denied(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt as _;
    match std::fs::metadata(path) {
        Ok(meta) => {
            let gid = meta.gid();
            let group = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
                .ok()
                .flatten()
                .map_or_else(|| gid.to_string(), |g| g.name);
            format!(
                "the socket (mode {:04o}) is for group {group}: run as root, or join the group \
                 (sudo usermod -aG {group} $USER, then log in again)",
                meta.mode() & 0o7777
            )
        }
        Err(_) => {
            let dir = path.parent().unwrap_or(path);
            format!(
                "this user cannot enter {}: run as root, or ask for the master's socket_group",
                dir.display()
            )
        }
    }
}

/// An io error as people read it: "No such file or directory" rather than "... (os error 2)".
pub fn describe_io(err: &io::Error) -> String {
    let text = err.to_string();
    match text.rfind(" (os error ") {
        Some(at) if err.raw_os_error().is_some() => text[..at].to_owned(),
        _ => text,
    }
}

/// A frame error as people read it (see [`describe_io`]).
fn describe_frame_error(err: &FrameError) -> String {
    match err {
        FrameError::Io(err) => describe_io(err),
        other => other.to_string(),
    }
}

/// One open connection to the master's control socket.
#[derive(Debug)]
pub struct Connection {
    frames: Framed<UnixStream, ControlCodec>,
    /// When the connection started waiting for events: the reference for [`ClientError::Timeout`].
    waiting_since: Instant,
}

impl Connection {
    /// Connects to the control socket at `path` within [`CONNECT_TIMEOUT`].
    pub async fn connect(path: &Path) -> Result<Self, ClientError> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, UnixStream::connect(path))
            .await
            .map_err(|_| ClientError::ConnectTimeout {
                path: path.to_owned(),
            })?
            .map_err(|source| match source.kind() {
                io::ErrorKind::PermissionDenied => ClientError::ConnectDenied {
                    path: path.to_owned(),
                    why: why_denied(path),
                },
                _ => ClientError::Connect {
                    path: path.to_owned(),
                    source,
                },
            })?;
        Ok(Self {
            frames: Framed::new(stream, ControlCodec),
            waiting_since: Instant::now(),
        })
    }

    /// Sends the one request of this connection.
    pub async fn send(&mut self, request: &ControlRequest) -> Result<(), ClientError> {
        let body = Bytes::from(brine_proto::encode(request));
        tokio::time::timeout(CONNECT_TIMEOUT, self.frames.send(body))
            .await
            .map_err(|_| ClientError::SendTimeout)?
            .map_err(ClientError::Send)?;
        self.waiting_since = Instant::now();
        Ok(())
    }

    /// The next event, or `None` when the master has closed the connection. Fails when no
    /// event has arrived by `deadline`.
    pub async fn next_event(
        &mut self,
        deadline: Instant,
    ) -> Result<Option<ControlEvent>, ClientError> {
        let frame = timeout_at(deadline, self.frames.next())
            .await
            .map_err(|_| {
                ClientError::Timeout(deadline.saturating_duration_since(self.waiting_since))
            })?;
        match frame {
            None => Ok(None),
            Some(Err(err)) => Err(ClientError::Read(err)),
            Some(Ok(bytes)) => brine_proto::decode(&bytes)
                .map(Some)
                .map_err(ClientError::Decode),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_socket_says_where_and_why() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.sock");
        let err = Connection::connect(&path).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot reach the master at {}: No such file or directory (is brine-master running?)",
                path.display()
            )
        );
    }
}
