//! Messages between minions and the master over TCP.
//!
//! Two sockets, two message sets, each message inside an [`crate::Envelope`]:
//!
//! - PUB (master binds 4505, minions subscribe to everything): [`Publication`], a job or a
//!   heartbeat tick. PUB drops what a subscriber misses, so nothing depends on a publication
//!   arriving: minions catch up over REQ.
//! - REQ→REP (master binds 4506): the minion asks with a [`MinionRequest`], the master answers
//!   with exactly one [`MasterReply`]. A minion sends no new request before the answer (or before
//!   it gives up on the socket and builds a new one). Every request is idempotent: a resend after
//!   a lost answer changes nothing and gets the same answer.
//!
//! The sequence for a minion: `hello` (answer `welcome`) → `pending` (answer `jobs`, the jobs
//! still live for it) → then, as things happen: `receipt` when a job arrives (answer `ok`),
//! `return` when it finishes (answer `ok` once stored), `keepalive` every interval (answer `ok`,
//! or `error` with code `unknown_minion` when the master has forgotten it, upon which the minion
//! says `hello` again), `goodbye` when it stops.

use serde::{Deserialize, Serialize};

use crate::{Jid, Map, MinionId, Target, Value};

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

/// What a minion asks the master over REQ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum MinionRequest {
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
}

impl MinionRequest {
    /// The id the request speaks for.
    pub fn minion_id(&self) -> &MinionId {
        match self {
            MinionRequest::Hello { id, .. }
            | MinionRequest::Keepalive { id }
            | MinionRequest::Pending { id }
            | MinionRequest::Receipt { id, .. }
            | MinionRequest::Goodbye { id } => id,
            MinionRequest::Return(ret) => &ret.id,
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
}

/// The master's one answer to a [`MinionRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum MasterReply {
    /// Answer to `hello`.
    Welcome {
        master_time_ms: u64,
        keepalive_interval_ms: u64,
        tick_interval_ms: u64,
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
    /// The master does not know this minion (yet): say `hello` first.
    UnknownMinion,
    /// The master could not store the request; try again later.
    Unavailable,
    /// The request is valid but refers to something the minion may not report (for example a
    /// return for a job it was not targeted by). Resending will not help.
    Refused,
}
