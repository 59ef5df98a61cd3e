//! Messages between minions and the master over TCP.
//!
//! Two sockets, two message sets, each message inside an [`crate::Envelope`]:
//!
//! - PUB (master binds 4505, minions subscribe to [`TOPIC_EVERYONE`] and their own [`topic_of`]):
//!   [`Publication`], a job or a heartbeat tick. PUB drops what a subscriber misses, so nothing depends on a publication
//!   arriving: minions catch up over REQ.
//! - REQ→REP (master binds 4506): the minion asks with a [`MinionRequest`], the master answers
//!   with exactly one [`MasterReply`]. A minion sends no new request before the answer (or before
//!   it gives up on the socket and builds a new one). Every request is idempotent: a resend after
//!   a lost answer changes nothing and gets the same answer.
//!
//! The sequence for a minion on every new REQ socket:
//!
//! 1. `master_keys` in a `plain` envelope (answer `master_keys`): the master's public keys,
//!    which the minion checks against its pinned fingerprint before trusting them.
//! 2. `hello` as the payload of a Noise IK `handshake` envelope. The master authenticates the
//!    minion's static key, looks it up (pending / accepted / rejected / denied), and answers in
//!    the handshake's second message: `welcome` (with the session id and the group key) for an
//!    accepted key, `error not_accepted` / `error rejected` otherwise.
//! 3. Everything else in `sealed` envelopes of that session: `pending` (answer `jobs`), then, as
//!    things happen, `receipt` (answer `ok`), `return` (answer `ok` once stored), `group_key`
//!    when a publication names a newer key epoch (answer `group_key`), `grains` when its grains
//!    change (answer `ok`), `keepalive` every interval (answer `ok`), `goodbye` when it stops. An answer `error no_session` (the master
//!    restarted) or any failure makes the minion start again at 1 on a new socket.
//!
//! The id a request names must be the id bound to the session's key: the master refuses any
//! other. Publications are `signed` envelopes: a [`SignedPublication`] whose header carries the
//! expiry, jid and (for a job of up to [`MAX_LISTED_RECIPIENTS`](crate::limits::MAX_LISTED_RECIPIENTS) minions) the minions it is for in
//! the clear, so a minion can refuse a stale, already executed or someone else's job before it
//! decrypts anything, and the publication sealed with the group key. A PUB message is two frames:
//! its topic ([`TOPIC_EVERYONE`], or [`topic_of`] one minion, once per listed minion) and the
//! envelope.

use serde::{Deserialize, Serialize};

use crate::{Jid, Map, MinionId, Target, Value};

/// The topic (first frame) of a publication every minion receives: ticks, and jobs for more
/// minions than a header lists. A minion subscribes to it and to [`topic_of`] its own id.
pub const TOPIC_EVERYONE: &[u8] = b"all\n";

/// The topic of a publication for the minion `id`: the PUB socket sends it to that minion's
/// subscription alone, so a job for a few minions never reaches the others. (The newline ends
/// the id: it is in no id, so `web1`'s topic is no prefix of `web10`'s.)
pub fn topic_of(id: &MinionId) -> Vec<u8> {
    [b"to:", id.as_str().as_bytes(), b"\n"].concat()
}

/// What the master broadcasts on PUB.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Publication {
    Job(Job),
    Tick(Tick),
}

/// One job, as published and as handed out by catch-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    pub jid: Jid,
    pub target: Target,
    /// `module.function`.
    pub fun: String,
    pub arg: Vec<Value>,
    pub kwarg: Map,
    /// How long the function may run on the minion before it is killed.
    pub timeout_ms: u64,
    /// On the master's clock: a job not started by then never starts.
    pub expires_ms: u64,
    /// The master's clock when this was sent, so minions judge expiry on the master's clock.
    pub master_time_ms: u64,
    /// Who asked for the job (user name on the master).
    pub user: String,
}

/// The master's heartbeat, published every `tick_interval`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tick {
    /// Counts up from 1 at every master start.
    pub seq: u64,
    pub master_time_ms: u64,
    pub tick_interval_ms: u64,
}

/// Authenticated with every publication's ciphertext: binds it to brine's publication use.
pub const PUBLICATION_AAD: &[u8] = b"brine publication v1";

/// A publication as it travels: the signed header and the master's Ed25519 signature over it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedPublication {
    /// An encoded [`PublicationHeader`].
    #[serde(with = "serde_bytes")]
    pub header: Vec<u8>,
    /// Ed25519 signature of `header` by the master's signing key.
    #[serde(with = "serde_bytes")]
    pub sig: Vec<u8>,
}

/// What the signature covers: the facts a minion checks before decrypting, and the ciphertext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicationHeader {
    /// Which group key sealed `ciphertext`.
    pub group_epoch: u32,
    /// The job's jid (none for a tick).
    pub jid: Option<Jid>,
    /// A job's minions, when the master expects at most [`MAX_LISTED_RECIPIENTS`](crate::limits::MAX_LISTED_RECIPIENTS): exactly
    /// those run it, and any other drops it before decrypting anything. None for a tick, and
    /// for a job that expects more minions: a minion its target matches runs it only once the
    /// master has confirmed that it expects it (a `receipt` answered `ok`). So a captured
    /// publication replayed to a minion the master did not expect (its grains changed since)
    /// runs nowhere.
    pub to: Option<Recipients>,
    /// On the master's clock: after this the publication is stale.
    pub expires_ms: u64,
    /// The master's clock when this was sent.
    pub master_time_ms: u64,
    /// XChaCha20-Poly1305 nonce (24 bytes).
    #[serde(with = "serde_bytes")]
    pub nonce: Vec<u8>,
    /// The encoded [`Publication`], sealed with the group key.
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
}

/// The minions a publication is for, as its header carries them: each id followed by a line
/// feed, in one bin. A minion finds its own in it without decoding a list (a header for 1000
/// minions decoded as ids cost each of them 1000 allocations per job).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Recipients(#[serde(with = "serde_bytes")] Vec<u8>);

impl Recipients {
    pub fn of<'a>(ids: impl IntoIterator<Item = &'a MinionId>) -> Self {
        let mut bytes = Vec::new();
        for id in ids {
            bytes.extend_from_slice(id.as_str().as_bytes());
            bytes.push(b'\n');
        }
        Self(bytes)
    }

    /// Whether `id` is one of them.
    pub fn lists(&self, id: &MinionId) -> bool {
        self.0
            .split(|b| *b == b'\n')
            .any(|listed| listed == id.as_str().as_bytes())
    }
}

/// What a minion asks the master over REQ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum MinionRequest {
    /// Before authentication (plain): the master's public keys.
    MasterKeys {},
    /// Registration: sent first on every (re)connect.
    Hello {
        id: MinionId,
        version: String,
        grains: Map,
    },
    /// "I am alive", every `keepalive_interval`.
    Keepalive { id: MinionId },
    /// Catch-up: "which live jobs are there for me?"
    Pending { id: MinionId },
    /// "I have received job `jid` and started it."
    Receipt { id: MinionId, jid: Jid },
    /// The result of a job.
    Return(JobReturn),
    /// The minion is stopping; it is not connected from now on.
    Goodbye { id: MinionId },
    /// "Send me the current group key" (a publication named a newer epoch).
    GroupKey { id: MinionId },
    /// The minion's grains changed since its hello (`grains.setval`, `grains.delval`,
    /// `saltutil.refresh_grains`): all of them, as they are now.
    Grains { id: MinionId, grains: Map },
}

impl MinionRequest {
    /// The id the request speaks for (none for `master_keys`).
    pub fn minion_id(&self) -> Option<&MinionId> {
        match self {
            MinionRequest::MasterKeys {} => None,
            MinionRequest::Hello { id, .. }
            | MinionRequest::Keepalive { id }
            | MinionRequest::Pending { id }
            | MinionRequest::Receipt { id, .. }
            | MinionRequest::Goodbye { id }
            | MinionRequest::GroupKey { id }
            | MinionRequest::Grains { id, .. } => Some(id),
            MinionRequest::Return(ret) => Some(&ret.id),
        }
    }
}

/// A minion's result for one job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobReturn {
    pub id: MinionId,
    pub jid: Jid,
    pub fun: String,
    /// What the function returned (or the error text when it failed).
    #[serde(rename = "return")]
    pub ret: Value,
    /// 0 on success; the process exit code for `cmd.*`; 1 (or more) when the function failed.
    pub retcode: i32,
    pub success: bool,
    /// On the minion's clock.
    pub started_ms: u64,
    pub finished_ms: u64,
    /// The job was cut off by a restart of the minion and never re-run: `return` holds the
    /// reason. Absent (false) in an ordinary return.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
    /// The minion refused to start the job (for example its journal could not record it, or
    /// the function is disabled there): `return` holds the reason; the job did not run.
    /// Absent (false) in an ordinary return; never set together with `interrupted`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rejected: bool,
}

impl JobReturn {
    /// A successful return of `fun` by minion `id` for job `jid`: `ret`, retcode 0, no times
    /// (see [`ran`](Self::ran)).
    pub fn new(id: MinionId, jid: Jid, fun: impl Into<String>, ret: impl Into<Value>) -> Self {
        Self {
            id,
            jid,
            fun: fun.into(),
            ret: ret.into(),
            retcode: 0,
            success: true,
            started_ms: 0,
            finished_ms: 0,
            interrupted: false,
            rejected: false,
        }
    }

    /// How the function went: its retcode and whether it succeeded (they are apart: a
    /// command's retcode may be other than 0 in a successful call).
    pub fn with_outcome(self, retcode: i32, success: bool) -> Self {
        Self {
            retcode,
            success,
            ..self
        }
    }

    /// A failure with retcode 1 whose `ret` says what went wrong.
    pub fn failed(self) -> Self {
        self.with_outcome(1, false)
    }

    /// When it ran, on the minion's clock.
    pub fn ran(self, started_ms: u64, finished_ms: u64) -> Self {
        Self {
            started_ms,
            finished_ms,
            ..self
        }
    }

    /// The minion refused to start the job; `reason` says why.
    pub fn rejection(id: MinionId, jid: Jid, fun: impl Into<String>, reason: String) -> Self {
        Self {
            rejected: true,
            ..Self::new(id, jid, fun, reason).failed()
        }
    }

    /// The minion restarted while it ran the job, and does not run it again; `notice` says so.
    pub fn interruption(id: MinionId, jid: Jid, fun: impl Into<String>, notice: String) -> Self {
        Self {
            interrupted: true,
            ..Self::new(id, jid, fun, notice).failed()
        }
    }
}

/// The master's one answer to a [`MinionRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum MasterReply {
    /// Answer to `master_keys`.
    MasterKeys {
        /// X25519 static key of the master (Noise).
        #[serde(with = "serde_bytes")]
        noise: Vec<u8>,
        /// Ed25519 key that signs publications.
        #[serde(with = "serde_bytes")]
        sign: Vec<u8>,
    },
    /// Answer to `hello` (inside the handshake).
    Welcome {
        /// Names the Noise session in later `sealed` envelopes.
        session: u64,
        master_time_ms: u64,
        keepalive_interval_ms: u64,
        tick_interval_ms: u64,
        group_epoch: u32,
        #[serde(with = "serde_bytes")]
        group_key: Vec<u8>,
    },
    /// Answer to `group_key`.
    GroupKey {
        epoch: u32,
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
    },
    /// The request was taken (and, for a return, durably stored).
    Ok {},
    /// Answer to `pending`.
    Jobs { jobs: Vec<Job> },
    /// The request was refused; the minion logs `message` and acts on `code`.
    Error { code: ReplyError, message: String },
}

/// Why the master refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyError {
    /// The bytes were not a valid request.
    Malformed,
    /// Not sent since the security layer (sessions replaced it); a minion treats it like
    /// `no_session`.
    UnknownMinion,
    /// The master could not store the request; try again later.
    Unavailable,
    /// The request is valid but refers to something the minion may not report (for example a
    /// return for a job it was not targeted by, or another minion's id). Resending will not help.
    Refused,
    /// The minion's key is pending: an operator must accept it (`brine-key accept`).
    NotAccepted,
    /// The minion's key is rejected, or it is a second key for a known id (denied).
    Rejected,
    /// The session named by a sealed request does not exist (the master restarted): start again.
    NoSession,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_list_whole_ids_only() {
        let id = |s: &str| MinionId::new(s).unwrap();
        let to = Recipients::of(&[id("web10"), id("db1")]);
        assert!(to.lists(&id("web10")) && to.lists(&id("db1")));
        for other in ["web1", "web", "eb10", "db", "db10"] {
            assert!(!to.lists(&id(other)), "{other}");
        }
        assert!(!Recipients::of(&[]).lists(&id("web1")));
    }
}
