//! brine's wire contract: every message that crosses a socket, the envelope that carries it,
//! the limits applied to untrusted bytes, and the grammars of minion ids, function names, jids
//! and targets.
//!
//! This crate does no I/O (the control socket's codec only frames bytes). The master, the minion and the CLI all speak through the types
//! here, so a change of the wire format is a change of this crate (and of `docs/PROTOCOL.md`
//! and the golden fixtures under `tests/golden/`).

pub mod codec;
pub mod control;
pub mod fnmatch;
pub mod frame;
pub mod fun;
pub mod id;
pub mod jid;
pub mod limits;
pub mod msg;
pub mod target;

pub use codec::{
    decode, decode_envelope, encode, encode_envelope, DecodeError, Envelope, EnvelopeRef,
};
pub use fnmatch::Fnmatch;
pub use fun::{FunctionName, FunctionNameError};
pub use id::{IdError, MinionId};
pub use jid::{Jid, JidError};
pub use msg::{Job, JobReturn, MasterReply, MinionRequest, Publication};
pub use target::{GrainExpr, Target, TargetError, TargetMatcher};

/// A dynamic value: function arguments and return data. Maps have string keys.
pub type Value = serde_json::Value;
/// Keyword arguments and other string-keyed maps of values.
pub type Map = serde_json::Map<String, Value>;

/// The version of the wire protocol this build speaks, carried in every [`Envelope`].
pub const PROTOCOL_VERSION: u16 = 1;

/// Milliseconds since the Unix epoch: the one time format on the wire.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
