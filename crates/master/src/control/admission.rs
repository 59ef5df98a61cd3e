//! Who gets a control connection, and how much of the master a request may hold.
//!
//! Every connection is accepted and its caller read from the kernel first, so that no caller
//! waits behind another's connections: root and the master's own user have seats of their own
//! ([`PRIVILEGED_SEATS`]), which no other user can take. The other users share
//! [`UNPRIVILEGED_SEATS`], at most [`SEATS_PER_USER`] each, and the bytes of their requests
//! being read or served at once ([`UNPRIVILEGED_REQUEST_BYTES`]). A caller over a bound is
//! answered `error busy` at once and the connection closed; nothing waits.
//!
//! A request is read by hand, not through a codec that reserves a frame's announced length up
//! front: the buffer grows only as bytes arrive, so a length prefix that promises 16 MiB and a
//! client that then stays silent costs the bytes it sent and a seat until [`REQUEST_TIMEOUT`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use brine_proto::frame::{frame_len, FRAME_HEADER_BYTES};
use tokio::io::AsyncReadExt;
use tokio::net::UnixStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::acl::Caller;

/// Connections served at once for root and the master's user.
pub const PRIVILEGED_SEATS: usize = 256;
/// Connections served at once for all other users together.
pub const UNPRIVILEGED_SEATS: usize = 256;
/// Connections served at once for one other user.
pub const SEATS_PER_USER: usize = 32;
/// The bytes of requests from other users held at once (being read, or kept while served).
pub const UNPRIVILEGED_REQUEST_BYTES: usize = 64 * 1024 * 1024;
/// How long a client has to send its whole request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a privileged caller waits for one of its seats (its own connections hold them).
const PRIVILEGED_WAIT: Duration = REQUEST_TIMEOUT;

/// Why a connection is not served.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    Busy(String),
    #[error("{0}")]
    BadRequest(String),
    /// The client closed its end, or the connection failed: nothing to answer.
    #[error("{0}")]
    Gone(std::io::Error),
}

/// How many seats each user other than root and the master's holds.
type SeatsByUser = Arc<Mutex<HashMap<u32, usize>>>;

/// The seats and byte budget of the control socket.
#[derive(Debug)]
pub struct Admission {
    privileged: Arc<Semaphore>,
    unprivileged: Arc<Semaphore>,
    per_user: SeatsByUser,
    request_bytes: Arc<Semaphore>,
}

/// A connection's seat, given back when it is dropped.
#[derive(Debug)]
pub struct Seat {
    _permit: OwnedSemaphorePermit,
    /// For another user: whose seat it is, and where it is counted.
    user: Option<(u32, SeatsByUser)>,
    /// Whether the caller's request bytes count against the shared budget.
    budgeted: bool,
}

impl Drop for Seat {
    fn drop(&mut self) {
        if let Some((uid, per_user)) = self.user.take() {
            let mut per_user = per_user.lock().expect("never poisoned");
            if let Some(count) = per_user.get_mut(&uid) {
                *count -= 1;
                if *count == 0 {
                    per_user.remove(&uid);
                }
            }
        }
    }
}

/// A request read in full, with the share of the byte budget it holds while it is served.
#[derive(Debug)]
pub struct Request {
    pub frame: Vec<u8>,
    _bytes: Option<OwnedSemaphorePermit>,
}

impl Default for Admission {
    fn default() -> Self {
        Self {
            privileged: Arc::new(Semaphore::new(PRIVILEGED_SEATS)),
            unprivileged: Arc::new(Semaphore::new(UNPRIVILEGED_SEATS)),
            per_user: Arc::default(),
            request_bytes: Arc::new(Semaphore::new(UNPRIVILEGED_REQUEST_BYTES)),
        }
    }
}

impl Admission {
    /// A seat for `caller`: a privileged caller waits a little for one of its own, another
    /// user gets one now or is refused.
    pub async fn seat(&self, caller: &Caller, privileged: bool) -> Result<Seat, Refusal> {
        if privileged {
            let permit = tokio::time::timeout(
                PRIVILEGED_WAIT,
                Arc::clone(&self.privileged).acquire_owned(),
            )
            .await
            .map_err(|_| {
                Refusal::Busy(format!(
                    "the master is serving {PRIVILEGED_SEATS} connections of root and its own user; try again when some end"
                ))
            })?
            .expect("never closed");
            return Ok(Seat {
                _permit: permit,
                user: None,
                budgeted: false,
            });
        }
        let busy = || {
            Refusal::Busy(format!(
                "the master is serving {SEATS_PER_USER} connections of user {} (the most it serves for one user, other than root and its own); try again when some end",
                caller.user
            ))
        };
        let mut per_user = self.per_user.lock().expect("never poisoned");
        let count = per_user.get(&caller.uid).copied().unwrap_or(0);
        if count >= SEATS_PER_USER {
            return Err(busy());
        }
        let permit = Arc::clone(&self.unprivileged)
            .try_acquire_owned()
            .map_err(|_| {
                Refusal::Busy(format!(
                    "the master is serving {UNPRIVILEGED_SEATS} connections of users other than root and its own; try again when some end"
                ))
            })?;
        per_user.insert(caller.uid, count + 1);
        Ok(Seat {
            _permit: permit,
            user: Some((caller.uid, Arc::clone(&self.per_user))),
            budgeted: true,
        })
    }

    /// Reads the one request of a connection, one control frame (`brine_proto::frame`), by hand
    /// rather than with its codec so that the buffer grows only as bytes arrive,
    /// all within [`REQUEST_TIMEOUT`]. `Ok(None)` when the client closed without sending one.
    pub async fn read_request(
        &self,
        stream: &mut UnixStream,
        seat: &Seat,
    ) -> Result<Option<Request>, Refusal> {
        let read = async {
            let mut head = [0u8; FRAME_HEADER_BYTES];
            match stream.read_exact(&mut head).await {
                Ok(_) => {}
                Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(err) => return Err(Refusal::Gone(err)),
            }
            let len = frame_len(head).map_err(|err| Refusal::BadRequest(err.to_string()))?;
            let bytes = if seat.budgeted {
                let permits = u32::try_from(len).expect("at most MAX_FRAME_BYTES");
                let permit = Arc::clone(&self.request_bytes)
                    .try_acquire_many_owned(permits)
                    .map_err(|_| {
                        Refusal::Busy(format!(
                            "the master holds {} MiB of requests from users other than root and its own, the most it holds; try again when some end",
                            UNPRIVILEGED_REQUEST_BYTES >> 20
                        ))
                    })?;
                Some(permit)
            } else {
                None
            };
            // Grows as bytes arrive: a promise of a large frame costs nothing until kept.
            let mut frame = Vec::new();
            (&mut *stream)
                .take(len as u64)
                .read_to_end(&mut frame)
                .await
                .map_err(Refusal::Gone)?;
            if frame.len() < len {
                return Err(Refusal::Gone(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the client closed in the middle of its request",
                )));
            }
            Ok(Some(Request {
                frame,
                _bytes: bytes,
            }))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, read)
            .await
            .unwrap_or_else(|_| {
                Err(Refusal::BadRequest(format!(
                    "no whole request within {}s",
                    REQUEST_TIMEOUT.as_secs()
                )))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(uid: u32) -> Caller {
        Caller {
            uid,
            gid: uid,
            pid: None,
            user: format!("uid:{uid}"),
        }
    }

    #[tokio::test]
    async fn one_user_cannot_take_every_seat_of_the_others() {
        let admission = Admission::default();
        let mut held = Vec::new();
        for _ in 0..SEATS_PER_USER {
            held.push(admission.seat(&user(1000), false).await.unwrap());
        }
        let refused = admission.seat(&user(1000), false).await.unwrap_err();
        assert!(refused.to_string().contains("uid:1000"), "{refused}");
        // Another user, and root, still get seats.
        admission.seat(&user(1001), false).await.unwrap();
        admission.seat(&user(0), true).await.unwrap();
        // A seat given back can be taken again.
        held.pop();
        admission.seat(&user(1000), false).await.unwrap();
    }

    #[tokio::test]
    async fn the_other_users_together_are_bounded_but_root_is_not_among_them() {
        let admission = Admission::default();
        let mut held = Vec::new();
        for uid in 0..(UNPRIVILEGED_SEATS / SEATS_PER_USER) as u32 {
            for _ in 0..SEATS_PER_USER {
                held.push(admission.seat(&user(2000 + uid), false).await.unwrap());
            }
        }
        assert!(matches!(
            admission.seat(&user(9999), false).await,
            Err(Refusal::Busy(_))
        ));
        for _ in 0..PRIVILEGED_SEATS {
            held.push(admission.seat(&user(0), true).await.unwrap());
        }
        drop(held);
        assert!(admission.per_user.lock().unwrap().is_empty());
    }
}
