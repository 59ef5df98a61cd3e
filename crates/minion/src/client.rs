//! The one client through which a minion talks to the master's REP socket: the Lazy Pirate
//! pattern.
//!
//! A request is sent on a REQ socket and its answer awaited under `request_timeout`. On a
//! timeout or any error the socket is dropped (the zeromq crate's REQ never reconnects by
//! itself, and a REQ that lost its answer can never send again), a new one is connected under
//! `connect_timeout`, and the same request is sent again after a capped, jittered backoff.
//! Resending is safe because every request is idempotent on the master. The caller learns
//! through [`Answer::reconnected`] that the link was rebuilt, so it can say hello again and
//! catch up on what it may have missed.

use std::time::Duration;

use brine_proto::{decode_envelope, encode_envelope, MasterReply, MinionRequest};
use rand::Rng;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use zeromq::{ReqSocket, Socket, SocketOptions, SocketRecv, SocketSend, ZmqMessage};

/// The master's answer to one request.
#[derive(Debug)]
pub struct Answer {
    pub reply: MasterReply,
    /// A new socket had to be made since the previous answer.
    pub reconnected: bool,
}

/// Asking stopped because the minion is stopping.
#[derive(Debug, thiserror::Error)]
#[error("cancelled while waiting for the master")]
pub struct Cancelled;

#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error("connecting: {0}")]
    Connect(zeromq::ZmqError),
    #[error("sending: {0}")]
    Send(zeromq::ZmqError),
    #[error("receiving: {0}")]
    Recv(zeromq::ZmqError),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("unreadable answer: {0}")]
    Decode(brine_proto::DecodeError),
}

/// Timings of the client.
#[derive(Debug, Clone)]
pub struct ClientTimings {
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub retry_max: Duration,
}

/// A Lazy Pirate REQ client for one master endpoint.
pub struct ReqClient {
    endpoint: String,
    timings: ClientTimings,
    socket: Option<ReqSocket>,
    /// A socket was dropped since the last answer.
    broken: bool,
    failures: u32,
}

impl std::fmt::Debug for ReqClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReqClient")
            .field("endpoint", &self.endpoint)
            .field("connected", &self.socket.is_some())
            .field("failures", &self.failures)
            .finish()
    }
}

impl ReqClient {
    pub fn new(endpoint: String, timings: ClientTimings) -> Self {
        Self {
            endpoint,
            timings,
            socket: None,
            broken: false,
            failures: 0,
        }
    }

    /// Sends `request` until the master answers, or until `cancel` fires.
    pub async fn request(
        &mut self,
        request: &MinionRequest,
        cancel: &CancellationToken,
    ) -> Result<Answer, Cancelled> {
        let bytes = encode_envelope(request);
        loop {
            let attempt = tokio::select! {
                _ = cancel.cancelled() => return Err(Cancelled),
                attempt = self.attempt(&bytes) => attempt,
            };
            match attempt {
                Ok(reply) => {
                    if self.failures > 0 {
                        info!(master = %self.endpoint, "master reachable again");
                    }
                    self.failures = 0;
                    let reconnected = std::mem::take(&mut self.broken);
                    return Ok(Answer { reply, reconnected });
                }
                Err(err) => {
                    self.socket = None;
                    self.broken = true;
                    self.failures = self.failures.saturating_add(1);
                    let pause = self.backoff();
                    // Say so at the first failure and then now and again, never silently.
                    if self.failures == 1 || self.failures.is_power_of_two() {
                        warn!(master = %self.endpoint, cause = %err, attempts = self.failures, retry_in = ?pause, "master not answering; retrying");
                    }
                    tokio::select! {
                        _ = cancel.cancelled() => return Err(Cancelled),
                        _ = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
    }

    /// Sends once, with a single attempt, giving up after `request_timeout` (for goodbye).
    pub async fn request_once(&mut self, request: &MinionRequest) -> Option<MasterReply> {
        let bytes = encode_envelope(request);
        match self.attempt(&bytes).await {
            Ok(reply) => Some(reply),
            Err(_) => {
                self.socket = None;
                None
            }
        }
    }

    async fn attempt(&mut self, bytes: &[u8]) -> Result<MasterReply, AttemptError> {
        let socket = match &mut self.socket {
            Some(socket) => socket,
            None => {
                let mut options = SocketOptions::default();
                options.connect_timeout(self.timings.connect_timeout);
                let mut socket = ReqSocket::with_options(options);
                socket
                    .connect(&self.endpoint)
                    .await
                    .map_err(AttemptError::Connect)?;
                self.socket.insert(socket)
            }
        };
        let timeout = self.timings.request_timeout;
        let exchange = async {
            socket
                .send(ZmqMessage::from(bytes.to_vec()))
                .await
                .map_err(AttemptError::Send)?;
            socket.recv().await.map_err(AttemptError::Recv)
        };
        let message = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| AttemptError::Timeout(timeout))??;
        let frame = message.into_vec().into_iter().next().unwrap_or_default();
        decode_envelope(&frame).map_err(AttemptError::Decode)
    }

    /// Exponential from 100 ms, capped at `retry_max`, with ±50 % jitter so a fleet does not
    /// come back in step.
    fn backoff(&self) -> Duration {
        let base = Duration::from_millis(100)
            .saturating_mul(1u32 << self.failures.min(16).saturating_sub(1))
            .min(self.timings.retry_max);
        base.mul_f64(rand::rng().random_range(0.5..1.5))
            .min(self.timings.retry_max)
    }
}
