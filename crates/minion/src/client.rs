//! The one client through which a minion talks to the master's REP socket: the Lazy Pirate
//! pattern, over an authenticated and encrypted Noise session.
//!
//! On a new REQ socket the client first asks the master's public keys (`master_keys`, plain)
//! and checks them against the pin ([`MasterTrust`]), then runs the Noise IK handshake with
//! `hello` as its payload. The master's `welcome` opens a session; every request after that is
//! sealed in it. A request is sent and its answer awaited under `request_timeout`. On a timeout
//! or any error the socket and its session are dropped (the zeromq crate's REQ never reconnects
//! by itself, and a REQ that lost its answer can never send again), and the same request is
//! sent again on a new socket and session after a capped, jittered backoff. Resending is safe
//! because every request is idempotent on the master. The caller learns of each new session
//! through [`Answer::welcome`], so it can re-synchronise (spooled returns, catch-up).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use brine_crypto::{Fingerprint, GroupKey, MasterPublic, MinionKeys, Session};
use brine_proto::codec::BodyKind;
use brine_proto::msg::ReplyError;
use brine_proto::{decode, encode, Envelope, MasterReply, MinionRequest};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use zeromq::{ReqSocket, Socket, SocketOptions, SocketRecv, SocketSend, ZmqMessage};

/// What a new session brought.
#[derive(Debug, Clone)]
pub struct Welcome {
    pub master: MasterPublic,
    pub master_time_ms: u64,
    pub keepalive_interval: Duration,
    pub tick_interval: Duration,
    pub group: GroupKey,
}

/// The master's answer to one request.
#[derive(Debug)]
pub struct Answer {
    pub reply: MasterReply,
    /// A new session was opened since the previous answer.
    pub welcome: Option<Welcome>,
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
    Decode(String),
    #[error("{0}")]
    Untrusted(String),
    #[error("{0}")]
    Handshake(String),
    #[error("the master refused this minion: {0}")]
    Refused(String),
    #[error("{0}")]
    Pending(String),
    #[error("the session ended: {0}")]
    NoSession(String),
}

impl AttemptError {
    /// Whether an operator must act: logged as an error, not a warning.
    fn needs_operator(&self) -> bool {
        matches!(self, AttemptError::Untrusted(_) | AttemptError::Refused(_))
    }
}

/// How the minion decides to trust the master's keys.
#[derive(Debug, Clone)]
pub struct MasterTrust {
    /// `master_fingerprint` from the configuration.
    pub fingerprint: Option<Fingerprint>,
    /// `trust_first_master`: pin the first master's key seen, when no fingerprint is set.
    pub trust_first: bool,
    /// Where a key trusted on first use is kept.
    pub pinned_file: PathBuf,
}

impl MasterTrust {
    /// Accepts `public` if it is the pinned master.
    fn check(&self, public: &MasterPublic) -> Result<(), String> {
        let seen = public.fingerprint();
        if let Some(wanted) = &self.fingerprint {
            return if &seen == wanted {
                Ok(())
            } else {
                Err(format!(
                    "the master's key has fingerprint {seen}, not the configured master_fingerprint {wanted}: refusing to talk to it"
                ))
            };
        }
        match MasterPublic::load(&self.pinned_file) {
            Ok(Some(pinned)) if &pinned == public => Ok(()),
            Ok(Some(pinned)) => Err(format!(
                "the master's key changed: it has fingerprint {seen}, but {} pins {}: refusing to talk to it",
                self.pinned_file.display(),
                pinned.fingerprint()
            )),
            Ok(None) if self.trust_first => {
                public
                    .save(&self.pinned_file)
                    .map_err(|e| format!("pinning the master's key: {e}"))?;
                warn!(fingerprint = %seen, pinned = %self.pinned_file.display(), "TRUSTING THE MASTER'S KEY ON FIRST USE; set master_fingerprint to pin it explicitly");
                Ok(())
            }
            Ok(None) => Err(format!(
                "no master_fingerprint is configured and trust_first_master is off; the master offers {seen} (check it with `brine-key master-finger` on the master)"
            )),
            Err(err) => Err(format!("reading the pinned master key: {err}")),
        }
    }
}

/// Timings of the client.
#[derive(Debug, Clone)]
pub struct ClientTimings {
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub retry_max: Duration,
}

/// A REQ socket with its session.
struct Connection {
    socket: ReqSocket,
    session: Option<(u64, Session)>,
}

/// A Lazy Pirate REQ client for one master endpoint.
pub struct ReqClient {
    endpoint: String,
    timings: ClientTimings,
    keys: Arc<MinionKeys>,
    trust: MasterTrust,
    hello: MinionRequest,
    connection: Option<Connection>,
    /// A session opened by an attempt whose request then failed: told with the next answer.
    unreported: Option<Welcome>,
    failures: u32,
}

impl std::fmt::Debug for ReqClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReqClient")
            .field("endpoint", &self.endpoint)
            .field("connected", &self.connection.is_some())
            .field("failures", &self.failures)
            .finish_non_exhaustive()
    }
}

impl ReqClient {
    pub fn new(
        endpoint: String,
        timings: ClientTimings,
        keys: Arc<MinionKeys>,
        trust: MasterTrust,
        hello: MinionRequest,
    ) -> Self {
        Self {
            endpoint,
            timings,
            keys,
            trust,
            hello,
            connection: None,
            unreported: None,
            failures: 0,
        }
    }

    /// The grains every hello from now on carries (the next session's, after a reconnect).
    pub fn set_hello_grains(&mut self, new: brine_proto::Map) {
        if let MinionRequest::Hello { grains, .. } = &mut self.hello {
            *grains = new;
        }
    }

    /// Sends `request` until the master answers, or until `cancel` fires.
    pub async fn request(
        &mut self,
        request: &MinionRequest,
        cancel: &CancellationToken,
    ) -> Result<Answer, Cancelled> {
        let bytes = encode(request);
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
                    return Ok(Answer {
                        reply,
                        welcome: self.unreported.take(),
                    });
                }
                Err(err) => {
                    self.connection = None;
                    self.failures = self.failures.saturating_add(1);
                    let pause = self.backoff();
                    // Say so at the first failure and then now and again, never silently.
                    if self.failures == 1 || self.failures.is_power_of_two() {
                        if let AttemptError::Pending(what) = &err {
                            warn!(master = %self.endpoint, attempts = self.failures, retry_in = ?pause, "{what}; retrying");
                        } else if err.needs_operator() {
                            error!(master = %self.endpoint, cause = %err, attempts = self.failures, retry_in = ?pause, "cannot talk to the master; retrying");
                        } else {
                            warn!(master = %self.endpoint, cause = %err, attempts = self.failures, retry_in = ?pause, "master not answering; retrying");
                        }
                    }
                    tokio::select! {
                        _ = cancel.cancelled() => return Err(Cancelled),
                        _ = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
    }

    /// Sends once, with a single attempt (for goodbye), only over an open session.
    pub async fn request_once(&mut self, request: &MinionRequest) -> Option<MasterReply> {
        let connection = self.connection.as_ref()?;
        connection.session.as_ref()?;
        match self.attempt(&encode(request)).await {
            Ok(reply) => Some(reply),
            Err(_) => {
                self.connection = None;
                None
            }
        }
    }

    /// One try: a socket and a session if there are none, then the sealed request.
    async fn attempt(&mut self, request: &[u8]) -> Result<MasterReply, AttemptError> {
        if self.connection.is_none() {
            let mut options = SocketOptions::default();
            options.connect_timeout(self.timings.connect_timeout);
            let mut socket = ReqSocket::with_options(options);
            socket
                .connect(&self.endpoint)
                .await
                .map_err(AttemptError::Connect)?;
            self.connection = Some(Connection {
                socket,
                session: None,
            });
        }
        if self
            .connection
            .as_ref()
            .is_some_and(|c| c.session.is_none())
        {
            let welcome = self.open_session().await?;
            self.unreported = Some(welcome);
        }
        let timeout = self.timings.request_timeout;
        let connection = self.connection.as_mut().expect("connected above");
        let (sid, session) = connection.session.as_mut().expect("session opened above");
        let sealed = session
            .seal(request)
            .map_err(|e| AttemptError::NoSession(e.to_string()))?;
        let answer = exchange(
            &mut connection.socket,
            Envelope::new(BodyKind::Sealed, Some(*sid), sealed),
            timeout,
        )
        .await?;
        match answer.kind {
            BodyKind::Sealed => {
                let plaintext = session
                    .open(&answer.body)
                    .map_err(|e| AttemptError::NoSession(e.to_string()))?;
                match decode(&plaintext).map_err(|e| AttemptError::Decode(e.to_string()))? {
                    // The master no longer knows this session's minion: start again.
                    MasterReply::Error {
                        code: ReplyError::NoSession | ReplyError::UnknownMinion,
                        message,
                    } => Err(AttemptError::NoSession(message)),
                    reply => Ok(reply),
                }
            }
            BodyKind::Plain => match decode::<MasterReply>(&answer.body) {
                Ok(MasterReply::Error { code, message }) => Err(if code == ReplyError::NoSession {
                    AttemptError::NoSession(message)
                } else {
                    AttemptError::Decode(format!("{code:?}: {message}"))
                }),
                Ok(other) => Err(AttemptError::Decode(format!("unexpected {other:?}"))),
                Err(e) => Err(AttemptError::Decode(e.to_string())),
            },
            kind => Err(AttemptError::Decode(format!(
                "unexpected {kind:?} envelope"
            ))),
        }
    }

    /// `master_keys` (checked against the pin), then the handshake carrying hello.
    async fn open_session(&mut self) -> Result<Welcome, AttemptError> {
        let timeout = self.timings.request_timeout;
        let connection = self.connection.as_mut().expect("connected before");
        let keys_answer = exchange(
            &mut connection.socket,
            Envelope::new(BodyKind::Plain, None, encode(&MinionRequest::MasterKeys {})),
            timeout,
        )
        .await?;
        let master = match decode::<MasterReply>(&keys_answer.body) {
            Ok(MasterReply::MasterKeys { noise, sign }) if keys_answer.kind == BodyKind::Plain => {
                match (
                    <[u8; 32]>::try_from(noise.as_slice()),
                    <[u8; 32]>::try_from(sign.as_slice()),
                ) {
                    (Ok(noise), Ok(sign)) => MasterPublic { noise, sign },
                    _ => {
                        return Err(AttemptError::Decode(
                            "master keys of the wrong length".into(),
                        ))
                    }
                }
            }
            Ok(other) => return Err(AttemptError::Decode(format!("unexpected {other:?}"))),
            Err(e) => return Err(AttemptError::Decode(e.to_string())),
        };
        self.trust.check(&master).map_err(AttemptError::Untrusted)?;

        let (initiator, msg1) = brine_crypto::initiate(&self.keys, &master, &encode(&self.hello))
            .map_err(|e| AttemptError::Handshake(e.to_string()))?;
        let answer = exchange(
            &mut connection.socket,
            Envelope::new(BodyKind::Handshake, None, msg1),
            timeout,
        )
        .await?;
        let reply = match answer.kind {
            BodyKind::Handshake => {
                let (session, payload) = initiator.finish(&answer.body).map_err(|e| {
                    AttemptError::Handshake(format!("the master failed the handshake: {e}"))
                })?;
                let reply: MasterReply =
                    decode(&payload).map_err(|e| AttemptError::Decode(e.to_string()))?;
                if let MasterReply::Welcome { session: sid, .. } = &reply {
                    connection.session = Some((*sid, session));
                }
                reply
            }
            BodyKind::Plain => {
                decode(&answer.body).map_err(|e| AttemptError::Decode(e.to_string()))?
            }
            kind => {
                return Err(AttemptError::Decode(format!(
                    "unexpected {kind:?} envelope"
                )))
            }
        };
        match reply {
            MasterReply::Welcome {
                master_time_ms,
                keepalive_interval_ms,
                tick_interval_ms,
                group_epoch,
                group_key,
                ..
            } => {
                let key = <[u8; 32]>::try_from(group_key.as_slice())
                    .map_err(|_| AttemptError::Decode("a group key of the wrong length".into()))?;
                Ok(Welcome {
                    master,
                    master_time_ms,
                    keepalive_interval: Duration::from_millis(keepalive_interval_ms.max(10)),
                    tick_interval: Duration::from_millis(tick_interval_ms.max(10)),
                    group: GroupKey::from_bytes(group_epoch, key),
                })
            }
            MasterReply::Error {
                code: ReplyError::NotAccepted,
                ..
            } => {
                let id = match &self.hello {
                    MinionRequest::Hello { id, .. } => id.as_str(),
                    _ => "<id>",
                };
                Err(AttemptError::Pending(format!(
                    "this minion's key is not accepted yet: on the master, run \
                     `brine-key accept {id} --fingerprint {}`",
                    self.keys.fingerprint()
                )))
            }
            // The master's message names the key and its fingerprint.
            MasterReply::Error {
                code: ReplyError::Rejected,
                message,
            } => Err(AttemptError::Refused(message)),
            MasterReply::Error { code, message } => {
                Err(AttemptError::Handshake(format!("{code:?}: {message}")))
            }
            other => Err(AttemptError::Decode(format!("unexpected {other:?}"))),
        }
    }

    fn backoff(&self) -> Duration {
        crate::backoff::jittered(self.failures, self.timings.retry_max)
    }
}

/// Sends one envelope and reads the answer's envelope, under `timeout`.
async fn exchange(
    socket: &mut ReqSocket,
    envelope: Envelope,
    timeout: Duration,
) -> Result<Envelope, AttemptError> {
    let exchange = async {
        socket
            .send(ZmqMessage::from(envelope.to_bytes()))
            .await
            .map_err(AttemptError::Send)?;
        socket.recv().await.map_err(AttemptError::Recv)
    };
    let message = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| AttemptError::Timeout(timeout))??;
    let frame = message.into_vec().into_iter().next().unwrap_or_default();
    Envelope::from_bytes(&frame).map_err(|e| AttemptError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use brine_crypto::MasterKeys;

    fn trust(
        dir: &std::path::Path,
        fingerprint: Option<Fingerprint>,
        trust_first: bool,
    ) -> MasterTrust {
        MasterTrust {
            fingerprint,
            trust_first,
            pinned_file: dir.join("master.pub"),
        }
    }

    #[test]
    fn a_pinned_fingerprint_admits_only_that_master() {
        let dir = tempfile::tempdir().unwrap();
        let master = MasterKeys::generate().public();
        let other = MasterKeys::generate().public();
        let pinned = trust(dir.path(), Some(master.fingerprint()), false);
        assert!(pinned.check(&master).is_ok());
        let refusal = pinned.check(&other).unwrap_err();
        assert!(
            refusal.contains(&other.fingerprint().to_string()),
            "{refusal}"
        );
    }

    #[test]
    fn without_a_pin_no_master_is_trusted_unless_first_use_is_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let master = MasterKeys::generate().public();
        let other = MasterKeys::generate().public();
        assert!(trust(dir.path(), None, false).check(&master).is_err());
        assert!(!dir.path().join("master.pub").exists());

        let tofu = trust(dir.path(), None, true);
        assert!(tofu.check(&master).is_ok(), "first use pins");
        assert!(tofu.check(&master).is_ok(), "the pinned master again");
        let refusal = tofu.check(&other).unwrap_err();
        assert!(refusal.contains("changed"), "{refusal}");
    }
}
