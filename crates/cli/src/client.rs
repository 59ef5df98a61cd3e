//! The client end of the master's control socket.
//!
//! The sequence (see `brine_proto::control`): connect to the unix socket, send one
//! [`ControlRequest`] frame, then read [`ControlEvent`] frames until the master closes the
//! connection. A frame is a 4-byte big-endian length followed by that many bytes of msgpack.
//! Every step is bounded: connecting and sending by [`CONNECT_TIMEOUT`], reading by a deadline
//! the caller chooses (for a job: its timeout plus [`DONE_MARGIN`], since the master sends
//! `done` at the job's deadline).

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use brine_proto::control::{ControlEvent, ControlRequest, FRAME_HEADER_BYTES};
use brine_proto::limits::MAX_FRAME_BYTES;
use brine_proto::DecodeError;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::time::{timeout_at, Instant};

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
    #[error("sending the request to the master: {}", describe_io(.0))]
    Send(#[source] io::Error),
    #[error("sending the request to the master: timed out after {}s", CONNECT_TIMEOUT.as_secs())]
    SendTimeout,
    #[error("reading the master's answer: {}", describe_io(.0))]
    Read(#[source] io::Error),
    #[error("the master closed the connection in the middle of an answer")]
    Truncated,
    #[error("the master sent a frame of {len} bytes, more than the limit of {MAX_FRAME_BYTES}")]
    FrameTooLarge { len: usize },
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

/// One open connection to the master's control socket.
#[derive(Debug)]
pub struct Connection {
    stream: UnixStream,
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
            stream,
            waiting_since: Instant::now(),
        })
    }

    /// Sends the one request of this connection.
    pub async fn send(&mut self, request: &ControlRequest) -> Result<(), ClientError> {
        let body = brine_proto::encode(request);
        tokio::time::timeout(CONNECT_TIMEOUT, write_frame(&mut self.stream, &body))
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
        let frame = timeout_at(deadline, read_frame(&mut self.stream))
            .await
            .map_err(|_| {
                ClientError::Timeout(deadline.saturating_duration_since(self.waiting_since))
            })??;
        match frame {
            None => Ok(None),
            Some(bytes) => brine_proto::decode(&bytes)
                .map(Some)
                .map_err(ClientError::Decode),
        }
    }
}

/// Writes one frame: the body's length as 4 bytes big-endian, then the body.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, body: &[u8]) -> io::Result<()> {
    let len = u32::try_from(body.len())
        .ok()
        .filter(|len| *len as usize <= MAX_FRAME_BYTES)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "request is too large"))?;
    w.write_all(&len.to_be_bytes()).await?;
    w.write_all(body).await?;
    w.flush().await
}

/// Reads one frame; `None` on a clean end of stream before its first byte.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Vec<u8>>, ClientError> {
    let mut header = [0u8; FRAME_HEADER_BYTES];
    let mut filled = 0;
    while filled < header.len() {
        let n = r
            .read(&mut header[filled..])
            .await
            .map_err(ClientError::Read)?;
        if n == 0 {
            return if filled == 0 {
                Ok(None)
            } else {
                Err(ClientError::Truncated)
            };
        }
        filled += n;
    }
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(ClientError::FrameTooLarge { len });
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await.map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => ClientError::Truncated,
        _ => ClientError::Read(e),
    })?;
    Ok(Some(body))
}

#[cfg(test)]
mod tests {
    use brine_proto::control::ControlError;

    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_end_cleanly() {
        let event = ControlEvent::Error {
            code: ControlError::NoMinions,
            message: "no".into(),
        };
        let mut buf = Vec::new();
        write_frame(&mut buf, &brine_proto::encode(&event))
            .await
            .unwrap();
        assert_eq!(&buf[..4], &((buf.len() - 4) as u32).to_be_bytes());
        let mut r = buf.as_slice();
        let frame = read_frame(&mut r).await.unwrap().unwrap();
        assert_eq!(brine_proto::decode::<ControlEvent>(&frame).unwrap(), event);
        assert!(read_frame(&mut r).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn truncated_and_oversized_frames_are_errors() {
        let mut r: &[u8] = &[0, 0];
        assert!(matches!(
            read_frame(&mut r).await,
            Err(ClientError::Truncated)
        ));
        let mut r: &[u8] = &[0, 0, 0, 5, 1, 2];
        assert!(matches!(
            read_frame(&mut r).await,
            Err(ClientError::Truncated)
        ));
        let mut r: &[u8] = &[0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_frame(&mut r).await,
            Err(ClientError::FrameTooLarge { .. })
        ));
    }

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
