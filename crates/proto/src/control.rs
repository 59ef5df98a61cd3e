//! Messages between the CLI and the master over the local control socket.
//!
//! The control socket is a unix socket (never TCP). Each frame is a 4-byte big-endian length
//! followed by that many bytes of msgpack (no envelope: both ends are on one host and one build).
//! The client sends one [`ControlRequest`]; the master answers with a stream of
//! [`ControlEvent`]s and closes the connection after the last:
//!
//! - `publish`: `published` (jid and expected minions) or `error`; then, unless the request
//!   said `wait = false`, one `return` per minion as it arrives and finally `done` with the
//!   state of every expected minion. When the deadline passes while minions that acknowledged
//!   the job are still running it, `still_running` comes first and the master waits for them
//!   (up to the job's time limit) before `done`.
//! - `lookup_job`: `done` (with `wait`: the returns stored so far, then those still coming,
//!   then `done`).
//! - `list_jobs`: `jobs` (the newest jobs that pass the query's filters).
//! - `active_jobs`: `active_jobs` (the jobs still live, with where each expected minion stands).
//! - `minions`: `minions`.
//! - `keys`: `keys` (the key list after the command), or `error`.

use serde::{Deserialize, Serialize};

use crate::{FunctionName, Jid, JobReturn, Map, MinionId, Target, TargetMatcher, Value};

/// What the CLI asks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ControlRequest {
    Publish(PublishRequest),
    LookupJob {
        jid: Jid,
        /// Stream the returns of a job still in flight, then `done`.
        wait: bool,
    },
    ListJobs(JobQuery),
    /// The live jobs (answer `active_jobs`): Salt's `jobs.active`.
    ActiveJobs {},
    Minions {},
    /// The minions a job for this target would expect, with their liveness (answer
    /// `minions`; a named id with an accepted key that never said hello is not connected,
    /// last seen at 0): what `brine --batch` works through.
    MatchTarget {
        target: Target,
    },
    /// `brine-key`: list, accept, reject, delete minion keys.
    Keys(KeyCommand),
}

/// What `brine-key` asks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum KeyCommand {
    /// Every key with its state and fingerprint, and the master's fingerprint.
    List {},
    /// Pending (or rejected) keys become accepted: the listed ids, or every pending key when
    /// `ids` is empty. With `fingerprint`, the keys must have exactly that fingerprint; for one
    /// id, the fingerprint chooses: the id's key that has it (pending, rejected or denied: the
    /// key a squatter's made denied) is accepted and the id's other keys become denied. When no
    /// key of the id has it yet and `preaccept` is set, the id is `preaccepted`: the key with
    /// that fingerprint is accepted when it comes, and every other key of the id is denied.
    Accept {
        ids: Vec<MinionId>,
        fingerprint: Option<String>,
        preaccept: bool,
    },
    /// The selected keys (pending or accepted unless `states` says) become rejected; the group
    /// key rotates if one was accepted.
    Reject(KeySelection),
    /// The selected keys (any state unless `states` says) are forgotten; the group key rotates
    /// if one was accepted.
    Delete(KeySelection),
}

/// The keys a `reject` or `delete` is about: the keys of the ids that match one of `ids`, in
/// one of `states`. One rule for the CLI's confirmation and the master.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySelection {
    /// Globs on the minion id, in the target glob dialect (`*`, `?`, `[abc]`): `web*`, or an
    /// id, which matches itself. At most [`MAX_KEY_PATTERNS`].
    pub ids: Vec<String>,
    /// Only keys in these states; empty: the states the command applies to.
    pub states: Vec<KeyState>,
}

/// What the master and the CLI answer when no key of `id` has the fingerprint `wanted` and no
/// preaccept was asked for: most likely a typo, so nothing changes. `current` is the id's key
/// that is not denied, if any.
pub fn no_key_with_fingerprint(id: &MinionId, current: Option<&KeyInfo>, wanted: &str) -> String {
    match current {
        Some(key) => format!(
            "the key of {id} has fingerprint {}, not {wanted}: not accepted (to accept the key \
             with {wanted} when it is presented, and deny the others, add --preaccept)",
            key.fingerprint
        ),
        None => format!(
            "{id} has no key with fingerprint {wanted} (add --preaccept to accept it when the \
             minion presents it)"
        ),
    }
}

/// The states `reject` applies to: an operator rejects a key that waits or that is in.
pub const REJECTABLE: [KeyState; 2] = [KeyState::Pending, KeyState::Accepted];

/// The states an `accept` of an id applies to: a key that waits, or one rejected before.
pub const ACCEPTABLE: [KeyState; 2] = [KeyState::Pending, KeyState::Rejected];

/// The most id patterns one `reject` or `delete` may carry.
pub const MAX_KEY_PATTERNS: usize = 1024;

impl KeySelection {
    /// The keys of one id, in any state.
    pub fn id(id: &MinionId) -> Self {
        Self {
            ids: vec![id.as_str().to_owned()],
            states: Vec::new(),
        }
    }

    /// Compiles the patterns; the selection then applies to keys in `states`, or in those of
    /// `applicable` it names (a command applies to some states only: reject to pending and
    /// accepted keys). Refuses no pattern, more than [`MAX_KEY_PATTERNS`], a bad glob, and
    /// states the command does not apply to.
    pub fn compile(&self, applicable: &[KeyState]) -> Result<KeyMatcher, String> {
        if self.ids.is_empty() {
            return Err("no minion id or pattern".to_owned());
        }
        if self.ids.len() > MAX_KEY_PATTERNS {
            return Err(format!(
                "{} patterns: at most {MAX_KEY_PATTERNS} in one command",
                self.ids.len()
            ));
        }
        let ids = self
            .ids
            .iter()
            .map(|p| id_pattern(p))
            .collect::<Result<Vec<_>, _>>()?;
        let states = if self.states.is_empty() {
            applicable.to_vec()
        } else if let Some(other) = self.states.iter().find(|s| !applicable.contains(s)) {
            let names: Vec<&str> = applicable.iter().map(|s| s.name()).collect();
            return Err(format!(
                "this command applies to {} keys, not {}",
                names.join(" and "),
                other.name()
            ));
        } else {
            self.states.clone()
        };
        Ok(KeyMatcher { ids, states })
    }

    /// The patterns, as the CLI and the master's messages show them.
    pub fn describe(&self) -> String {
        self.ids.join(", ")
    }

    /// What the master and the CLI answer when it selects no key: `web1 has no pending or
    /// accepted key`, `web* has no key`.
    pub fn nothing_matched(&self, applicable: &[KeyState]) -> String {
        let states = if self.states.is_empty() {
            applicable
        } else {
            &self.states
        };
        if states.len() == KeyState::ALL.len() {
            return format!("{} has no key", self.describe());
        }
        let names: Vec<&str> = states.iter().map(|s| s.name()).collect();
        format!("{} has no {} key", self.describe(), names.join(" or "))
    }
}

/// Checks a [`KeySelection`] pattern: an id, or a glob of id characters and `*?[]!`.
pub fn check_id_pattern(pattern: &str) -> Result<(), String> {
    id_pattern(pattern).map(drop)
}

fn id_pattern(pattern: &str) -> Result<TargetMatcher, String> {
    if pattern.is_empty() || pattern.len() > 4 * crate::id::MAX_ID_LEN {
        return Err(format!(
            "{pattern:?}: an id pattern has 1 to {} characters",
            4 * crate::id::MAX_ID_LEN
        ));
    }
    if let Some(bad) = pattern
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._-*?[]!".contains(*c)))
    {
        return Err(format!(
            "{pattern:?}: {bad:?} is neither in a minion id nor in a glob"
        ));
    }
    Target::Glob(pattern.to_owned())
        .compile()
        .map_err(|e| e.to_string())
}

/// A compiled [`KeySelection`].
#[derive(Debug, Clone)]
pub struct KeyMatcher {
    ids: Vec<TargetMatcher>,
    states: Vec<KeyState>,
}

impl KeyMatcher {
    pub fn matches(&self, key: &KeyInfo) -> bool {
        self.states.contains(&key.state) && self.ids.iter().any(|m| m.matches_id(key.id.as_str()))
    }
}

/// Which jobs `list_jobs` asks for: the newest `limit` of those that pass every filter given.
///
/// A filter that is absent (or nil) does not filter. An unfiltered query is encoded exactly as
/// `{type: list_jobs, limit}`: the filters are left out of the map when they are absent.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobQuery {
    /// At most this many, newest first (the master caps it at [`MAX_LISTED_JOBS`]).
    pub limit: u32,
    /// A glob (`*`, `?`, `[abc]`, `[!abc]`, case-sensitive) the function must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_function: Option<String>,
    /// A glob that the target as written (`web*`, `L@web1,web2`, `G@os:Debian`) or the id of
    /// one of the expected minions must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_target: Option<String>,
    /// Only jobs published at or after this time (master clock, ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time_ms: Option<u64>,
    /// Only jobs published at or before this time (master clock, ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time_ms: Option<u64>,
}

/// The most jobs one `list_jobs` answers with, whatever its `limit`.
pub const MAX_LISTED_JOBS: u32 = 10_000;
/// The longest glob `search_function` or `search_target` may be, in bytes.
pub const MAX_SEARCH_PATTERN_BYTES: usize = 256;

impl JobQuery {
    /// The newest `limit` jobs, unfiltered.
    pub fn newest(limit: u32) -> Self {
        Self {
            limit,
            ..Self::default()
        }
    }

    /// Whether no filter is set.
    pub fn is_unfiltered(&self) -> bool {
        self.search_function.is_none()
            && self.search_target.is_none()
            && self.start_time_ms.is_none()
            && self.end_time_ms.is_none()
    }
}

/// A job to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    pub target: Target,
    pub fun: FunctionName,
    pub arg: Vec<Value>,
    pub kwarg: Map,
    /// How long to wait for minions that have not answered: the job's deadline. (How long the
    /// job may run on a minion is the master's `job_timeout`.)
    pub timeout_ms: u64,
    /// Stream returns and `done`; false answers with `published` only (`--async`).
    pub wait: bool,
}

/// What the master answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ControlEvent {
    Published {
        jid: Jid,
        minions: Vec<MinionId>,
    },
    Return(JobReturn),
    /// A minion acknowledged the job: it is running it (sent to the watchers of that moment,
    /// for progress; a quick job is acknowledged by its return alone).
    Running {
        minion: MinionId,
    },
    /// The deadline has passed, and these minions acknowledged the job and are still running
    /// it: the master waits for their returns for at most `wait_ms` more before `done`.
    StillRunning {
        minions: Vec<MinionId>,
        wait_ms: u64,
    },
    Done(JobReport),
    Jobs {
        jobs: Vec<JobSummary>,
    },
    /// The live jobs, newest first. When they would not fit in one answer (more than
    /// [`MAX_ACTIVE_MINIONS`] expected minions in all), the oldest are left out and counted in
    /// `omitted`.
    ActiveJobs {
        jobs: Vec<ActiveJob>,
        omitted: u32,
    },
    Minions {
        minions: Vec<MinionStatus>,
        /// Answering `match_target`: the ids the target names outright that have no
        /// accepted key (a job for the target would list them `no_key`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        no_key: Vec<MinionId>,
    },
    /// The keys after a `keys` command (for accept/reject/delete: the keys it changed).
    Keys {
        master_fingerprint: String,
        keys: Vec<KeyInfo>,
    },
    Error {
        code: ControlError,
        message: String,
    },
}

/// Why the master did not do what the CLI asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlError {
    /// The request was malformed or invalid (bad target, bad function name).
    BadRequest,
    /// The target matched no known minion.
    NoMinions,
    /// No job with that jid.
    NotFound,
    /// The job store failed (for example the disk is full); nothing was published.
    Storage,
    /// The master is shutting down.
    ShuttingDown,
    /// The caller may not do this (`publisher_acl`; key commands are for root and the master's
    /// user). Nothing was done.
    Denied,
    /// The master serves as many connections (or request bytes) for this caller as it serves
    /// at once; nothing was done, and trying again later may succeed.
    Busy,
}

/// The record of one job: every expected minion with one state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobReport {
    pub jid: Jid,
    pub fun: String,
    pub target: Target,
    pub arg: Vec<Value>,
    pub kwarg: Map,
    pub user: String,
    pub published_ms: u64,
    /// When the master stops waiting for returns.
    pub deadline_ms: u64,
    pub minions: Vec<MinionOutcome>,
}

/// One expected minion's part in a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinionOutcome {
    pub id: MinionId,
    pub state: MinionState,
    /// The return, when `state` is `returned`.
    pub ret: Option<JobReturn>,
}

impl MinionOutcome {
    /// Whether the minion reported back (a return, a rejection or an interrupted job's
    /// notice), so that its `ret` says how the function went.
    pub fn has_return(&self) -> bool {
        self.ret.is_some() && self.state.has_return()
    }
}

/// Where an expected minion stands in a job. Its name (`name`, `from_name`) is the one serde
/// writes: on the wire, in the store, in the CLI's `json`/`yaml` output.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum MinionState {
    /// Its return is stored.
    Returned,
    /// It acknowledged the job and is running it: before the deadline, and after it for as long
    /// as the minion stays connected and the job is within its time limit (`job_timeout`).
    Running,
    /// Before the deadline: no word from it about this job yet.
    Waiting,
    /// After the deadline: it was connected but did not return (it never acknowledged the job,
    /// or it acknowledged it and ran past the job's time limit).
    NoResponse,
    /// After the deadline: it was not connected (or it disconnected while it was running the
    /// job).
    NotConnected,
    /// The minion restarted while it ran the job; the job was not run again. Final.
    Interrupted,
    /// The minion refused to start the job; its return says why. Final.
    Rejected,
    /// The target names this id (a list, or `L@` in a compound) and the master holds no
    /// accepted key for it: nothing was sent to it. Final from the start.
    NoKey,
    /// Only in the CLI's report of a batch (`-b`): the batch never sent the job to this
    /// minion (`--failhard` stopped it first). Never stored by the master.
    NotRun,
}

impl MinionState {
    /// Every state, in the order of their declaration (and of PROTOCOL.md).
    pub const ALL: &'static [MinionState] = <MinionState as strum::VariantArray>::VARIANTS;

    /// The state's name, as serde writes it.
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// The state a [`MinionState::name`] names.
    pub fn from_name(name: &str) -> Option<Self> {
        name.parse().ok()
    }

    /// The one rule for where an expected minion stands, used by every answer (`jobs.lookup`,
    /// `jobs.active`, the end of `brine`): a stored return decides (`returned`, its
    /// [`of_return`](Self::of_return) state); else the final state given without a return
    /// (at the deadline, or `no_key` from the start); else `running` once the minion
    /// acknowledged the job, `waiting` before.
    pub fn of(
        returned: Option<MinionState>,
        settled: Option<MinionState>,
        acknowledged: bool,
    ) -> Self {
        match (returned, settled) {
            (Some(state), _) | (None, Some(state)) => state,
            (None, None) if acknowledged => MinionState::Running,
            (None, None) => MinionState::Waiting,
        }
    }

    /// The state of a minion whose return is stored.
    pub fn of_return(ret: &JobReturn) -> Self {
        if ret.interrupted {
            MinionState::Interrupted
        } else if ret.rejected {
            MinionState::Rejected
        } else {
            MinionState::Returned
        }
    }

    /// Whether a minion in this state sent a return (an ordinary one, a rejection or an
    /// interruption notice).
    pub fn has_return(self) -> bool {
        matches!(
            self,
            MinionState::Returned | MinionState::Interrupted | MinionState::Rejected
        )
    }

    /// Whether this is a final state (the job is over for this minion).
    pub fn is_final(self) -> bool {
        !matches!(self, MinionState::Running | MinionState::Waiting)
    }

    /// Words for people.
    pub fn describe(self) -> &'static str {
        match self {
            MinionState::Returned => "returned",
            MinionState::Running => "running",
            MinionState::Waiting => "waiting",
            MinionState::NoResponse => "no response",
            MinionState::NotConnected => "not connected",
            MinionState::Interrupted => "interrupted",
            MinionState::Rejected => "rejected",
            MinionState::NoKey => "no accepted key",
            MinionState::NotRun => "not run",
        }
    }
}

/// One minion key known to the master.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyInfo {
    pub id: MinionId,
    pub state: KeyState,
    /// SHA-256 of the key, as colon-separated hex pairs.
    pub fingerprint: String,
}

/// Where a minion key stands, as in `salt-key`. Its name (`name`, `from_name`) is the one serde
/// writes: on the wire, in the store, in the CLI's `json`/`yaml` output.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum KeyState {
    /// Seen, waiting for an operator.
    Pending,
    /// May receive jobs.
    Accepted,
    /// Refused by an operator.
    Rejected,
    /// A second key for an id that already has one: never replaces the first.
    Denied,
    /// No key yet: an operator accepted the fingerprint the id's key will have, so that key is
    /// accepted when it comes and any other is denied.
    Preaccepted,
}

impl KeyState {
    /// Every state, in `salt-key`'s order of headings (then `preaccepted`).
    pub const ALL: [KeyState; 5] = [
        KeyState::Accepted,
        KeyState::Denied,
        KeyState::Pending,
        KeyState::Rejected,
        KeyState::Preaccepted,
    ];

    /// The state's name, as serde writes it.
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// The state a [`KeyState::name`] names.
    pub fn from_name(name: &str) -> Option<Self> {
        name.parse().ok()
    }
}

/// One line of `jobs.list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSummary {
    pub jid: Jid,
    pub fun: String,
    pub target: Target,
    pub user: String,
    pub published_ms: u64,
    pub expected: u32,
    pub returned: u32,
}

/// The most expected minions, over all jobs, one `active_jobs` answer lists (about 9 MiB at
/// most: well within a frame). The newest job is always listed whole.
pub const MAX_ACTIVE_MINIONS: usize = 100_000;

/// One live job of `active_jobs`: one the master is still waiting for (before its deadline,
/// or after it for minions still running it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActiveJob {
    pub jid: Jid,
    pub fun: String,
    pub target: Target,
    pub user: String,
    pub published_ms: u64,
    /// Every expected minion, sorted by id, with where it stands.
    pub minions: Vec<MinionProgress>,
}

/// Where one expected minion stands in a live job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinionProgress {
    pub id: MinionId,
    /// `returned` (a return is stored: a rejection or an interruption notice too), `running`
    /// (acknowledged, no return yet), `waiting` (no word yet, before the deadline), or the
    /// final state it was given at the deadline (`no_response`, `not_connected`).
    pub state: MinionState,
}

/// One minion in the master's registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinionStatus {
    pub id: MinionId,
    pub connected: bool,
    /// The last time the master heard from it, on the master's clock.
    pub last_seen_ms: u64,
    pub version: String,
}
