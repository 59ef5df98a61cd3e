//! Proptest strategies that build only valid brine messages, shared by the wire tests.
//!
//! "Valid" means what a correct peer could send: ids that follow the id grammar, jids minted by
//! `Jid::from_micros`, JSON values with string keys, bounded depth and no NaN or infinity.
//! There is one strategy per message variant (so every variant is tested on its own) and one per
//! top-level type that picks any of its variants.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use brine_proto::codec::{BodyKind, Envelope};
use brine_proto::control::{
    ActiveJob, ControlError, ControlEvent, ControlRequest, JobQuery, JobReport, JobSummary,
    KeyCommand, KeyInfo, KeySelection, KeyState, MinionOutcome, MinionProgress, MinionState,
    MinionStatus, PublishRequest,
};
use brine_proto::msg::{PublicationHeader, Recipients, ReplyError, SignedPublication, Tick};
use brine_proto::{
    GrainExpr, Jid, Job, JobReturn, Map, MasterReply, MinionId, MinionRequest, Publication, Target,
    Value,
};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;

/// The last instant a 20-digit jid can spell: 9999-12-31T23:59:59.999999Z.
pub const MAX_JID_MICROS: u64 = 253_402_300_799_999_999;

/// The id grammar, as a regex: the oracle the validator is checked against.
pub const ID_GRAMMAR: &str = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$";

/// Any text, control characters and all of Unicode included.
pub fn text() -> impl Strategy<Value = String> {
    "(?s).{0,24}"
}

pub fn minion_id() -> impl Strategy<Value = MinionId> {
    "[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
        .prop_filter("ids never hold '..'", |s| !s.contains(".."))
        .prop_map(|s| MinionId::new(s).expect("the strategy follows the id grammar"))
}

pub fn jid() -> impl Strategy<Value = Jid> {
    (0..=MAX_JID_MICROS).prop_map(Jid::from_micros)
}

/// Any bytes (keys, nonces, signatures, ciphertexts, sealed bodies): the wire types carry them
/// opaquely, whatever their length; the crypto layer checks the lengths.
pub fn bytes() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..80)
}

/// Bytes of exactly the length a key or signature has.
pub fn bytes_of(len: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), len..=len)
}

/// A SHA-256 fingerprint as the master writes it (32 colon-separated lowercase hex pairs), or
/// any text (the wire does not check the grammar; the master does).
pub fn fingerprint() -> impl Strategy<Value = String> {
    prop_oneof![
        bytes_of(32).prop_map(|b| {
            b.iter()
                .map(|x| format!("{x:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        }),
        text(),
    ]
}

/// A JSON value of at most four nested containers, with finite numbers only.
pub fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite numbers only", |f| {
            serde_json::Number::from_f64(f).map(Value::Number)
        }),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map(text(), inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

pub fn map() -> impl Strategy<Value = Map> {
    btree_map(text(), value(), 0..4).prop_map(|m| m.into_iter().collect())
}

pub fn args() -> impl Strategy<Value = Vec<Value>> {
    vec(value(), 0..4)
}

pub fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        text().prop_map(Target::Glob),
        vec(text(), 0..4).prop_map(Target::List),
        text().prop_map(Target::Regex),
        (text(), any::<char>())
            .prop_map(|(pattern, delimiter)| Target::Grain(GrainExpr { pattern, delimiter })),
        text().prop_map(|p| Target::GrainPcre(GrainExpr::new(p))),
        text().prop_map(Target::Ipcidr),
        text().prop_map(Target::Compound),
        text().prop_map(Target::Nodegroup),
    ]
}

// ---- minion ↔ master (TCP) ----

pub fn job() -> impl Strategy<Value = Job> {
    (
        jid(),
        target(),
        text(),
        args(),
        map(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        text(),
    )
        .prop_map(
            |(jid, target, fun, arg, kwarg, timeout_ms, expires_ms, master_time_ms, user)| Job {
                jid,
                target,
                fun,
                arg,
                kwarg,
                timeout_ms,
                expires_ms,
                master_time_ms,
                user,
            },
        )
}

pub fn tick() -> impl Strategy<Value = Tick> {
    (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
        |(seq, master_time_ms, tick_interval_ms)| Tick {
            seq,
            master_time_ms,
            tick_interval_ms,
        },
    )
}

pub fn publication_job() -> impl Strategy<Value = Publication> {
    job().prop_map(Publication::Job)
}

pub fn publication_tick() -> impl Strategy<Value = Publication> {
    tick().prop_map(Publication::Tick)
}

pub fn publication() -> impl Strategy<Value = Publication> {
    prop_oneof![publication_job(), publication_tick()]
}

pub fn job_return() -> impl Strategy<Value = JobReturn> {
    (
        minion_id(),
        jid(),
        text(),
        value(),
        any::<i32>(),
        any::<bool>(),
        any::<u64>(),
        any::<u64>(),
        // interrupted, rejected: never both.
        prop_oneof![
            Just((false, false)),
            Just((true, false)),
            Just((false, true))
        ],
    )
        .prop_map(
            |(
                id,
                jid,
                fun,
                ret,
                retcode,
                success,
                started_ms,
                finished_ms,
                (interrupted, rejected),
            )| {
                JobReturn {
                    id,
                    jid,
                    fun,
                    ret,
                    retcode,
                    success,
                    started_ms,
                    finished_ms,
                    interrupted,
                    rejected,
                }
            },
        )
}

pub fn request_hello() -> impl Strategy<Value = MinionRequest> {
    (minion_id(), text(), map()).prop_map(|(id, version, grains)| MinionRequest::Hello {
        id,
        version,
        grains,
    })
}

pub fn request_keepalive() -> impl Strategy<Value = MinionRequest> {
    minion_id().prop_map(|id| MinionRequest::Keepalive { id })
}

pub fn request_pending() -> impl Strategy<Value = MinionRequest> {
    minion_id().prop_map(|id| MinionRequest::Pending { id })
}

pub fn request_receipt() -> impl Strategy<Value = MinionRequest> {
    (minion_id(), jid()).prop_map(|(id, jid)| MinionRequest::Receipt { id, jid })
}

pub fn request_return() -> impl Strategy<Value = MinionRequest> {
    job_return().prop_map(MinionRequest::Return)
}

pub fn request_goodbye() -> impl Strategy<Value = MinionRequest> {
    minion_id().prop_map(|id| MinionRequest::Goodbye { id })
}

pub fn request_master_keys() -> impl Strategy<Value = MinionRequest> {
    Just(MinionRequest::MasterKeys {})
}

pub fn request_group_key() -> impl Strategy<Value = MinionRequest> {
    minion_id().prop_map(|id| MinionRequest::GroupKey { id })
}

pub fn request_grains() -> impl Strategy<Value = MinionRequest> {
    (minion_id(), map()).prop_map(|(id, grains)| MinionRequest::Grains { id, grains })
}

pub fn minion_request() -> impl Strategy<Value = MinionRequest> {
    prop_oneof![
        request_master_keys(),
        request_hello(),
        request_keepalive(),
        request_pending(),
        request_receipt(),
        request_return(),
        request_goodbye(),
        request_group_key(),
        request_grains(),
    ]
}

pub fn reply_error() -> impl Strategy<Value = ReplyError> {
    prop_oneof![
        Just(ReplyError::Malformed),
        Just(ReplyError::UnknownMinion),
        Just(ReplyError::Unavailable),
        Just(ReplyError::Refused),
        Just(ReplyError::NotAccepted),
        Just(ReplyError::Rejected),
        Just(ReplyError::NoSession),
    ]
}

pub fn reply_master_keys() -> impl Strategy<Value = MasterReply> {
    prop_oneof![(bytes_of(32), bytes_of(32)), (bytes(), bytes())]
        .prop_map(|(noise, sign)| MasterReply::MasterKeys { noise, sign })
}

pub fn reply_welcome() -> impl Strategy<Value = MasterReply> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
        prop_oneof![bytes_of(32), bytes()],
    )
        .prop_map(
            |(
                session,
                master_time_ms,
                keepalive_interval_ms,
                tick_interval_ms,
                group_epoch,
                group_key,
            )| MasterReply::Welcome {
                session,
                master_time_ms,
                keepalive_interval_ms,
                tick_interval_ms,
                group_epoch,
                group_key,
            },
        )
}

pub fn reply_group_key() -> impl Strategy<Value = MasterReply> {
    (any::<u32>(), prop_oneof![bytes_of(32), bytes()])
        .prop_map(|(epoch, key)| MasterReply::GroupKey { epoch, key })
}

pub fn reply_ok() -> impl Strategy<Value = MasterReply> {
    Just(MasterReply::Ok {})
}

pub fn reply_jobs() -> impl Strategy<Value = MasterReply> {
    vec(job(), 0..3).prop_map(|jobs| MasterReply::Jobs { jobs })
}

pub fn reply_error_msg() -> impl Strategy<Value = MasterReply> {
    (reply_error(), text()).prop_map(|(code, message)| MasterReply::Error { code, message })
}

pub fn master_reply() -> impl Strategy<Value = MasterReply> {
    prop_oneof![
        reply_master_keys(),
        reply_welcome(),
        reply_group_key(),
        reply_ok(),
        reply_jobs(),
        reply_error_msg(),
    ]
}

pub fn body_kind() -> impl Strategy<Value = BodyKind> {
    prop_oneof![
        Just(BodyKind::Plain),
        Just(BodyKind::Handshake),
        Just(BodyKind::Sealed),
        Just(BodyKind::Signed),
    ]
}

/// An envelope of any version and kind, with or without a session, around any body (the body
/// is opaque to the envelope, and the envelope does not tie `session` to `kind`).
pub fn envelope() -> impl Strategy<Value = Envelope> {
    (
        any::<u16>(),
        body_kind(),
        proptest::option::of(any::<u64>()),
        vec(any::<u8>(), 0..64),
    )
        .prop_map(|(v, kind, session, body)| Envelope {
            v,
            kind,
            session,
            body,
        })
}

/// An envelope of this protocol version, as a correct peer sends it: a session exactly on
/// sealed envelopes.
pub fn current_envelope() -> impl Strategy<Value = Envelope> {
    (body_kind(), any::<u64>(), vec(any::<u8>(), 0..64)).prop_map(|(kind, session, body)| {
        let session = (kind == BodyKind::Sealed).then_some(session);
        Envelope::new(kind, session, body)
    })
}

/// A publication header with any contents (jid for jobs, none for ticks).
pub fn publication_header() -> impl Strategy<Value = PublicationHeader> {
    (
        any::<u32>(),
        proptest::option::of(jid()),
        proptest::option::of(vec(minion_id(), 0..4).prop_map(|ids| Recipients::of(&ids))),
        any::<u64>(),
        any::<u64>(),
        prop_oneof![bytes_of(24), bytes()],
        bytes(),
    )
        .prop_map(
            |(group_epoch, jid, to, expires_ms, master_time_ms, nonce, ciphertext)| {
                PublicationHeader {
                    group_epoch,
                    jid,
                    to,
                    expires_ms,
                    master_time_ms,
                    nonce,
                    ciphertext,
                }
            },
        )
}

/// A signed publication whose header is an encoded header (as the master makes them), or any
/// bytes (the type does not look inside before the signature is checked).
pub fn signed_publication() -> impl Strategy<Value = SignedPublication> {
    (
        prop_oneof![
            publication_header().prop_map(|h| brine_proto::encode(&h)),
            bytes()
        ],
        prop_oneof![bytes_of(64), bytes()],
    )
        .prop_map(|(header, sig)| SignedPublication { header, sig })
}

// ---- CLI ↔ master (control socket) ----

pub fn function_name() -> impl Strategy<Value = brine_proto::FunctionName> {
    "[a-z_][a-z0-9_]{0,10}\\.[a-z_][a-z0-9_]{0,10}"
        .prop_map(|s| brine_proto::FunctionName::new(s).expect("the grammar"))
}

pub fn publish_request() -> impl Strategy<Value = PublishRequest> {
    (
        target(),
        function_name(),
        args(),
        map(),
        any::<u64>(),
        any::<bool>(),
    )
        .prop_map(
            |(target, fun, arg, kwarg, timeout_ms, wait)| PublishRequest {
                target,
                fun,
                arg,
                kwarg,
                timeout_ms,
                wait,
            },
        )
}

pub fn control_publish() -> impl Strategy<Value = ControlRequest> {
    publish_request().prop_map(ControlRequest::Publish)
}

pub fn control_lookup_job() -> impl Strategy<Value = ControlRequest> {
    (jid(), any::<bool>()).prop_map(|(jid, wait)| ControlRequest::LookupJob { jid, wait })
}

pub fn job_query() -> impl Strategy<Value = JobQuery> {
    (
        any::<u32>(),
        proptest::option::of(text()),
        proptest::option::of(text()),
        proptest::option::of(any::<u64>()),
        proptest::option::of(any::<u64>()),
    )
        .prop_map(
            |(limit, search_function, search_target, start_time_ms, end_time_ms)| JobQuery {
                limit,
                search_function,
                search_target,
                start_time_ms,
                end_time_ms,
            },
        )
}

pub fn control_list_jobs() -> impl Strategy<Value = ControlRequest> {
    job_query().prop_map(ControlRequest::ListJobs)
}

pub fn control_active_jobs() -> impl Strategy<Value = ControlRequest> {
    Just(ControlRequest::ActiveJobs {})
}

pub fn control_minions() -> impl Strategy<Value = ControlRequest> {
    Just(ControlRequest::Minions {})
}

pub fn control_match_target() -> impl Strategy<Value = ControlRequest> {
    target().prop_map(|target| ControlRequest::MatchTarget { target })
}

pub fn key_list() -> impl Strategy<Value = KeyCommand> {
    Just(KeyCommand::List {})
}

pub fn key_accept() -> impl Strategy<Value = KeyCommand> {
    (
        vec(minion_id(), 0..4),
        proptest::option::of(fingerprint()),
        any::<bool>(),
    )
        .prop_map(|(ids, fingerprint, preaccept)| KeyCommand::Accept {
            ids,
            fingerprint,
            preaccept,
        })
}

pub fn key_selection() -> impl Strategy<Value = KeySelection> {
    (
        vec(
            prop_oneof![
                minion_id().prop_map(|id| id.as_str().to_owned()),
                "[a-z]{0,4}\\*"
            ],
            1..4,
        ),
        vec(key_state(), 0..3),
    )
        .prop_map(|(ids, states)| KeySelection { ids, states })
}

pub fn key_reject() -> impl Strategy<Value = KeyCommand> {
    key_selection().prop_map(KeyCommand::Reject)
}

pub fn key_delete() -> impl Strategy<Value = KeyCommand> {
    key_selection().prop_map(KeyCommand::Delete)
}

pub fn key_command() -> impl Strategy<Value = KeyCommand> {
    prop_oneof![key_list(), key_accept(), key_reject(), key_delete()]
}

pub fn control_keys_list() -> impl Strategy<Value = ControlRequest> {
    key_list().prop_map(ControlRequest::Keys)
}

pub fn control_keys_accept() -> impl Strategy<Value = ControlRequest> {
    key_accept().prop_map(ControlRequest::Keys)
}

pub fn control_keys_reject() -> impl Strategy<Value = ControlRequest> {
    key_reject().prop_map(ControlRequest::Keys)
}

pub fn control_keys_delete() -> impl Strategy<Value = ControlRequest> {
    key_delete().prop_map(ControlRequest::Keys)
}

pub fn control_keys() -> impl Strategy<Value = ControlRequest> {
    key_command().prop_map(ControlRequest::Keys)
}

pub fn control_request() -> impl Strategy<Value = ControlRequest> {
    prop_oneof![
        control_publish(),
        control_lookup_job(),
        control_list_jobs(),
        control_active_jobs(),
        control_minions(),
        control_match_target(),
        control_keys(),
    ]
}

pub fn key_state() -> impl Strategy<Value = KeyState> {
    prop_oneof![
        Just(KeyState::Pending),
        Just(KeyState::Accepted),
        Just(KeyState::Rejected),
        Just(KeyState::Denied),
        Just(KeyState::Preaccepted),
    ]
}

pub fn key_info() -> impl Strategy<Value = KeyInfo> {
    (minion_id(), key_state(), fingerprint()).prop_map(|(id, state, fingerprint)| KeyInfo {
        id,
        state,
        fingerprint,
    })
}

pub fn minion_state() -> impl Strategy<Value = MinionState> {
    proptest::sample::select(MinionState::ALL)
}

pub fn minion_outcome() -> impl Strategy<Value = MinionOutcome> {
    (
        minion_id(),
        minion_state(),
        proptest::option::of(job_return()),
    )
        .prop_map(|(id, state, ret)| MinionOutcome { id, state, ret })
}

pub fn job_report() -> impl Strategy<Value = JobReport> {
    (
        jid(),
        text(),
        target(),
        args(),
        map(),
        text(),
        any::<u64>(),
        any::<u64>(),
        vec(minion_outcome(), 0..3),
    )
        .prop_map(
            |(jid, fun, target, arg, kwarg, user, published_ms, deadline_ms, minions)| JobReport {
                jid,
                fun,
                target,
                arg,
                kwarg,
                user,
                published_ms,
                deadline_ms,
                minions,
            },
        )
}

pub fn job_summary() -> impl Strategy<Value = JobSummary> {
    (
        jid(),
        text(),
        target(),
        text(),
        any::<u64>(),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(
            |(jid, fun, target, user, published_ms, expected, returned)| JobSummary {
                jid,
                fun,
                target,
                user,
                published_ms,
                expected,
                returned,
            },
        )
}

pub fn minion_progress() -> impl Strategy<Value = MinionProgress> {
    (minion_id(), minion_state()).prop_map(|(id, state)| MinionProgress { id, state })
}

pub fn active_job() -> impl Strategy<Value = ActiveJob> {
    (
        jid(),
        text(),
        target(),
        text(),
        any::<u64>(),
        vec(minion_progress(), 0..4),
    )
        .prop_map(
            |(jid, fun, target, user, published_ms, minions)| ActiveJob {
                jid,
                fun,
                target,
                user,
                published_ms,
                minions,
            },
        )
}

pub fn minion_status() -> impl Strategy<Value = MinionStatus> {
    (minion_id(), any::<bool>(), any::<u64>(), text()).prop_map(
        |(id, connected, last_seen_ms, version)| MinionStatus {
            id,
            connected,
            last_seen_ms,
            version,
        },
    )
}

pub fn control_error() -> impl Strategy<Value = ControlError> {
    prop_oneof![
        Just(ControlError::BadRequest),
        Just(ControlError::NoMinions),
        Just(ControlError::NotFound),
        Just(ControlError::Storage),
        Just(ControlError::ShuttingDown),
        Just(ControlError::Denied),
        Just(ControlError::Busy),
    ]
}

pub fn event_published() -> impl Strategy<Value = ControlEvent> {
    (jid(), vec(minion_id(), 0..4))
        .prop_map(|(jid, minions)| ControlEvent::Published { jid, minions })
}

pub fn event_return() -> impl Strategy<Value = ControlEvent> {
    job_return().prop_map(ControlEvent::Return)
}

pub fn event_running() -> impl Strategy<Value = ControlEvent> {
    minion_id().prop_map(|minion| ControlEvent::Running { minion })
}

pub fn event_still_running() -> impl Strategy<Value = ControlEvent> {
    (vec(minion_id(), 0..4), any::<u64>())
        .prop_map(|(minions, wait_ms)| ControlEvent::StillRunning { minions, wait_ms })
}

pub fn event_done() -> impl Strategy<Value = ControlEvent> {
    job_report().prop_map(ControlEvent::Done)
}

pub fn event_jobs() -> impl Strategy<Value = ControlEvent> {
    vec(job_summary(), 0..4).prop_map(|jobs| ControlEvent::Jobs { jobs })
}

pub fn event_active_jobs() -> impl Strategy<Value = ControlEvent> {
    (vec(active_job(), 0..3), any::<u32>())
        .prop_map(|(jobs, omitted)| ControlEvent::ActiveJobs { jobs, omitted })
}

pub fn event_minions() -> impl Strategy<Value = ControlEvent> {
    (vec(minion_status(), 0..4), vec(minion_id(), 0..3))
        .prop_map(|(minions, no_key)| ControlEvent::Minions { minions, no_key })
}

pub fn event_keys() -> impl Strategy<Value = ControlEvent> {
    (fingerprint(), vec(key_info(), 0..4)).prop_map(|(master_fingerprint, keys)| {
        ControlEvent::Keys {
            master_fingerprint,
            keys,
        }
    })
}

pub fn event_error() -> impl Strategy<Value = ControlEvent> {
    (control_error(), text()).prop_map(|(code, message)| ControlEvent::Error { code, message })
}

pub fn control_event() -> impl Strategy<Value = ControlEvent> {
    prop_oneof![
        event_published(),
        event_return(),
        event_running(),
        event_still_running(),
        event_done(),
        event_jobs(),
        event_active_jobs(),
        event_minions(),
        event_keys(),
        event_error(),
    ]
}

/// Msgpack written by hand, so that a test can put any bytes in any field.
pub mod msgpack {
    fn be(marker: u8, n: u64, width: usize) -> Vec<u8> {
        [&[marker][..], &n.to_be_bytes()[8 - width..]].concat()
    }

    /// The header of a str of `len` bytes (fixstr, str 8/16/32).
    pub fn str_header(len: usize) -> Vec<u8> {
        match len as u64 {
            n @ 0..=31 => vec![0xa0 | n as u8],
            n @ 32..=0xff => be(0xd9, n, 1),
            n @ 0x100..=0xffff => be(0xda, n, 2),
            n => be(0xdb, n, 4),
        }
    }

    /// The header of an array of `len` elements (fixarray, array 16/32).
    pub fn array_header(len: usize) -> Vec<u8> {
        match len as u64 {
            n @ 0..=15 => vec![0x90 | n as u8],
            n @ 16..=0xffff => be(0xdc, n, 2),
            n => be(0xdd, n, 4),
        }
    }

    /// The header of a map of `len` entries (fixmap, map 16/32).
    pub fn map_header(len: usize) -> Vec<u8> {
        match len as u64 {
            n @ 0..=15 => vec![0x80 | n as u8],
            n @ 16..=0xffff => be(0xde, n, 2),
            n => be(0xdf, n, 4),
        }
    }

    pub fn s(text: &str) -> Vec<u8> {
        raw_str(text.as_bytes())
    }

    /// A str holding any bytes, valid UTF-8 or not.
    pub fn raw_str(bytes: &[u8]) -> Vec<u8> {
        [str_header(bytes.len()), bytes.to_vec()].concat()
    }

    pub fn bin(bytes: &[u8]) -> Vec<u8> {
        let header = match bytes.len() as u64 {
            n @ 0..=0xff => be(0xc4, n, 1),
            n @ 0x100..=0xffff => be(0xc5, n, 2),
            n => be(0xc6, n, 4),
        };
        [header, bytes.to_vec()].concat()
    }

    pub fn uint(n: u64) -> Vec<u8> {
        match n {
            0..=0x7f => vec![n as u8],
            0x80..=0xff => be(0xcc, n, 1),
            0x100..=0xffff => be(0xcd, n, 2),
            0x1_0000..=0xffff_ffff => be(0xce, n, 4),
            _ => be(0xcf, n, 8),
        }
    }

    pub fn int(n: i64) -> Vec<u8> {
        let bits = n as u64;
        match n {
            0.. => uint(bits),
            -32..=-1 => vec![n as u8],
            -128..=-33 => be(0xd0, bits, 1),
            -32_768..=-129 => be(0xd1, bits, 2),
            -2_147_483_648..=-32_769 => be(0xd2, bits, 4),
            _ => be(0xd3, bits, 8),
        }
    }

    /// A map of the given keys and already-encoded values, in that order.
    pub fn map(fields: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut b = map_header(fields.len());
        for (key, value) in fields {
            b.extend(s(key));
            b.extend_from_slice(value);
        }
        b
    }

    /// An array of already-encoded values.
    pub fn array(items: &[Vec<u8>]) -> Vec<u8> {
        let mut b = array_header(items.len());
        items.iter().for_each(|i| b.extend_from_slice(i));
        b
    }
}
