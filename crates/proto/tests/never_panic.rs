//! "Arbitrary bytes never panic": whatever a peer sends, every decoder a socket can reach returns
//! `Ok` or a typed `DecodeError`. A panic anywhere fails the test. The decoders: the envelope
//! (`Envelope::from_bytes`, and `decode_envelope` for plain ones), every message type, the
//! signed publication and its header (PUB), and the control messages with `brine-key`'s.
//!
//! The inputs are random bytes, msgpack-shaped noise built from brine's own field names and tags
//! (so the decoders get deep into the message types), valid messages with one part swapped for
//! noise, and byte-level mutations of valid encodings (truncation at every offset, flipped,
//! inserted and deleted bytes). What is accepted must also be stable: encoding the decoded value
//! and decoding that again gives the same value.

mod common;

use std::fmt::Debug;

use brine_proto::codec::{BodyKind, Envelope};
use brine_proto::control::{ControlEvent, ControlRequest, KeyCommand};
use brine_proto::msg::{PublicationHeader, SignedPublication};
use brine_proto::{
    decode, decode_envelope, encode, encode_envelope, MasterReply, MinionRequest, Publication,
    Value,
};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::select;
use serde::{de::DeserializeOwned, Serialize};

/// Decodes `bytes` as `T`; if that is accepted, the value must survive a round trip.
fn decode_as<T>(bytes: &[u8], envelope: bool) -> Result<(), TestCaseError>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let (decoded, again) = if envelope {
        let Ok(v) = decode_envelope::<T>(bytes) else {
            return Ok(());
        };
        let again = decode_envelope::<T>(&encode_envelope(&v));
        (v, again)
    } else {
        let Ok(v) = decode::<T>(bytes) else {
            return Ok(());
        };
        let again = decode::<T>(&encode(&v));
        (v, again)
    };
    prop_assert_eq!(
        again,
        Ok(decoded),
        "accepted input is not stable: {:02x?}",
        bytes
    );
    Ok(())
}

/// Feeds `bytes` to every decoder a socket can reach: the TCP sockets (bare and enveloped) and
/// the control socket (bare).
fn decode_everything(bytes: &[u8]) -> Result<(), TestCaseError> {
    for envelope in [false, true] {
        decode_as::<Publication>(bytes, envelope)?;
        decode_as::<MinionRequest>(bytes, envelope)?;
        decode_as::<MasterReply>(bytes, envelope)?;
        decode_as::<ControlRequest>(bytes, envelope)?;
        decode_as::<ControlEvent>(bytes, envelope)?;
        decode_as::<SignedPublication>(bytes, envelope)?;
        decode_as::<PublicationHeader>(bytes, envelope)?;
        decode_as::<KeyCommand>(bytes, envelope)?;
    }
    decode_as::<Envelope>(bytes, false)?;
    from_bytes_is_stable(bytes)?;
    Ok(())
}

/// `Envelope::from_bytes` (what the master's REP loop and the minion's SUB run first) never
/// panics; what it accepts is of this version, survives `to_bytes`, and opens with
/// `decode_envelope` exactly when it is plain.
fn from_bytes_is_stable(bytes: &[u8]) -> Result<(), TestCaseError> {
    let Ok(envelope) = Envelope::from_bytes(bytes) else {
        return Ok(());
    };
    prop_assert_eq!(envelope.v, brine_proto::PROTOCOL_VERSION);
    prop_assert_eq!(
        Envelope::from_bytes(&envelope.to_bytes()),
        Ok(envelope.clone())
    );
    if envelope.kind != BodyKind::Plain {
        prop_assert_eq!(
            decode_envelope::<Value>(bytes),
            Err(brine_proto::DecodeError::WrongKind(envelope.kind))
        );
    }
    Ok(())
}

/// A valid message of any top-level type, as bare bytes and as an envelope.
#[derive(Debug, Clone)]
enum Message {
    Publication(Publication),
    MinionRequest(MinionRequest),
    MasterReply(MasterReply),
    ControlRequest(ControlRequest),
    ControlEvent(ControlEvent),
    Envelope(Envelope),
    SignedPublication(SignedPublication),
    PublicationHeader(PublicationHeader),
}

impl Message {
    fn bare(&self) -> Vec<u8> {
        match self {
            Message::Publication(m) => encode(m),
            Message::MinionRequest(m) => encode(m),
            Message::MasterReply(m) => encode(m),
            Message::ControlRequest(m) => encode(m),
            Message::ControlEvent(m) => encode(m),
            Message::Envelope(m) => encode(m),
            Message::SignedPublication(m) => encode(m),
            Message::PublicationHeader(m) => encode(m),
        }
    }

    fn wrapped(&self) -> Vec<u8> {
        match self {
            Message::Publication(m) => encode_envelope(m),
            Message::MinionRequest(m) => encode_envelope(m),
            Message::MasterReply(m) => encode_envelope(m),
            Message::ControlRequest(m) => encode_envelope(m),
            Message::ControlEvent(m) => encode_envelope(m),
            Message::Envelope(m) => encode_envelope(m),
            Message::SignedPublication(m) => encode_envelope(m),
            Message::PublicationHeader(m) => encode_envelope(m),
        }
    }

    /// The message as a JSON-like tree (bytes fields become arrays of small integers).
    fn tree(&self) -> Option<Value> {
        let tree = match self {
            Message::Publication(m) => serde_json::to_value(m),
            Message::MinionRequest(m) => serde_json::to_value(m),
            Message::MasterReply(m) => serde_json::to_value(m),
            Message::ControlRequest(m) => serde_json::to_value(m),
            Message::ControlEvent(m) => serde_json::to_value(m),
            Message::Envelope(m) => serde_json::to_value(m),
            Message::SignedPublication(m) => serde_json::to_value(m),
            Message::PublicationHeader(m) => serde_json::to_value(m),
        };
        Some(tree.expect("brine messages convert to JSON values"))
    }

    /// Whether a decoder of this message's own type accepts `bytes`.
    fn own_decoder_accepts(&self, bytes: &[u8], envelope: bool) -> bool {
        fn ok<T: DeserializeOwned>(bytes: &[u8], envelope: bool) -> bool {
            if envelope {
                decode_envelope::<T>(bytes).is_ok()
            } else {
                decode::<T>(bytes).is_ok()
            }
        }
        match self {
            Message::Publication(_) => ok::<Publication>(bytes, envelope),
            Message::MinionRequest(_) => ok::<MinionRequest>(bytes, envelope),
            Message::MasterReply(_) => ok::<MasterReply>(bytes, envelope),
            Message::ControlRequest(_) => ok::<ControlRequest>(bytes, envelope),
            Message::ControlEvent(_) => ok::<ControlEvent>(bytes, envelope),
            Message::Envelope(_) => ok::<Envelope>(bytes, envelope),
            Message::SignedPublication(_) => ok::<SignedPublication>(bytes, envelope),
            Message::PublicationHeader(_) => ok::<PublicationHeader>(bytes, envelope),
        }
    }
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        common::publication().prop_map(Message::Publication),
        common::minion_request().prop_map(Message::MinionRequest),
        common::master_reply().prop_map(Message::MasterReply),
        common::control_request().prop_map(Message::ControlRequest),
        common::control_event().prop_map(Message::ControlEvent),
        common::envelope().prop_map(Message::Envelope),
        common::current_envelope().prop_map(Message::Envelope),
        common::signed_publication().prop_map(Message::SignedPublication),
        common::publication_header().prop_map(Message::PublicationHeader),
    ]
}

/// Every field name and tag of the protocol, so that noise looks like the real thing.
const WORDS: &[&str] = &[
    "type",
    "expr",
    "v",
    "kind",
    "body",
    "plain",
    "jid",
    "target",
    "fun",
    "arg",
    "kwarg",
    "timeout_ms",
    "expires_ms",
    "master_time_ms",
    "user",
    "seq",
    "tick_interval_ms",
    "id",
    "version",
    "grains",
    "return",
    "retcode",
    "success",
    "started_ms",
    "finished_ms",
    "keepalive_interval_ms",
    "jobs",
    "code",
    "message",
    "wait",
    "limit",
    "minions",
    "published_ms",
    "deadline_ms",
    "state",
    "ret",
    "connected",
    "last_seen_ms",
    "expected",
    "returned",
    "job",
    "tick",
    "hello",
    "keepalive",
    "pending",
    "receipt",
    "goodbye",
    "welcome",
    "ok",
    "error",
    "publish",
    "lookup_job",
    "list_jobs",
    "search_function",
    "search_target",
    "start_time_ms",
    "end_time_ms",
    "active_jobs",
    "omitted",
    "published",
    "done",
    "glob",
    "list",
    "regex",
    "malformed",
    "unknown_minion",
    "unavailable",
    "refused",
    "bad_request",
    "no_minions",
    "not_found",
    "storage",
    "shutting_down",
    "running",
    "waiting",
    "no_response",
    "not_connected",
    "interrupted",
    "rejected",
    "still_running",
    "session",
    "handshake",
    "sealed",
    "signed",
    "master_keys",
    "group_key",
    "noise",
    "sign",
    "group_epoch",
    "epoch",
    "key",
    "header",
    "sig",
    "nonce",
    "ciphertext",
    "not_accepted",
    "rejected",
    "no_session",
    "keys",
    "action",
    "ids",
    "fingerprint",
    "master_fingerprint",
    "accept",
    "reject",
    "delete",
    "accepted",
    "denied",
    "web1",
    "*",
    "20261125130201123456",
    "0",
    "",
];

fn word() -> impl Strategy<Value = String> {
    select(WORDS).prop_map(String::from)
}

/// Msgpack-shaped noise: maps keyed by protocol words, often with a `type` tag.
fn noise() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| {
            serde_json::Number::from_f64(f).map(Value::Number)
        }),
        word().prop_map(Value::String),
        common::text().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..8).prop_map(Value::Array),
            btree_map(word(), inner.clone(), 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            (word(), btree_map(word(), inner, 0..8)).prop_map(|(tag, m)| {
                let mut m: brine_proto::Map = m.into_iter().collect();
                m.insert("type".into(), Value::String(tag));
                Value::Object(m)
            }),
        ]
    })
}

/// Replaces the `n`th node of `tree` (in pre-order, modulo the node count) with `new`.
fn replace_node(tree: &mut Value, n: usize, new: Value) {
    fn count(v: &Value) -> usize {
        1 + match v {
            Value::Array(a) => a.iter().map(count).sum(),
            Value::Object(m) => m.values().map(count).sum(),
            _ => 0,
        }
    }
    fn walk(v: &mut Value, n: &mut usize, new: &mut Option<Value>) {
        if *n == 0 {
            if let Some(new) = new.take() {
                *v = new;
            }
            return;
        }
        *n -= 1;
        match v {
            Value::Array(a) => a.iter_mut().for_each(|c| walk(c, n, new)),
            Value::Object(m) => m.values_mut().for_each(|c| walk(c, n, new)),
            _ => {}
        }
    }
    let mut n = n % count(tree);
    walk(tree, &mut n, &mut Some(new));
}

/// Bytes as msgpack the way a peer would write them (maps with string keys).
fn pack(v: &Value) -> Vec<u8> {
    rmp_serde::to_vec_named(v).expect("JSON values encode")
}

/// A v1 plain envelope around any body, written field by field.
fn envelope_around(body: &[u8]) -> Vec<u8> {
    use common::msgpack::{bin, map, s, uint};
    map(&[("v", uint(1)), ("kind", s("plain")), ("body", bin(body))])
}

/// A v1 envelope of any kind (known or not), with any session field, around any body.
fn envelope_of(kind: &str, session: Option<Vec<u8>>, body: &[u8]) -> Vec<u8> {
    use common::msgpack::{bin, map, s, uint};
    let mut fields = vec![("v", uint(1)), ("kind", s(kind))];
    if let Some(session) = session {
        fields.push(("session", session));
    }
    fields.push(("body", bin(body)));
    map(&fields)
}

/// Something in the place of an envelope's `session`: numbers of every width and sign, nil,
/// and things that are not numbers at all.
fn session_field() -> impl Strategy<Value = Vec<u8>> {
    use common::msgpack::{int, s, uint};
    prop_oneof![
        any::<u64>().prop_map(uint),
        any::<i64>().prop_map(int),
        Just(vec![0xc0]),
        Just(vec![0xc3]),
        Just(vec![0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0]),
        common::text().prop_map(|t| s(&t)),
        vec(any::<u8>(), 0..12),
    ]
}

proptest! {
    #[test]
    fn random_bytes(bytes in vec(any::<u8>(), 0..2048)) {
        decode_everything(&bytes)?;
    }

    #[test]
    fn random_bytes_behind_a_collection_marker(
        marker in prop_oneof![0x80u8..=0x8f, 0x90u8..=0x9f, 0xdcu8..=0xdf],
        rest in vec(any::<u8>(), 0..512),
    ) {
        // A map or array marker first, so the walker and serde go past the first byte.
        let mut bytes = vec![marker];
        bytes.extend_from_slice(&rest);
        decode_everything(&bytes)?;
    }

    #[test]
    fn random_body_in_a_valid_envelope(body in vec(any::<u8>(), 0..1024)) {
        decode_everything(&envelope_around(&body))?;
    }

    #[test]
    fn random_body_in_an_envelope_of_any_kind(
        kind in prop_oneof![
            select(&["plain", "handshake", "sealed", "signed"][..]),
            select(&["Sealed", "curve", "", "encrypted"][..]),
        ],
        session in proptest::option::of(session_field()),
        body in vec(any::<u8>(), 0..1024),
    ) {
        decode_everything(&envelope_of(kind, session, &body))?;
    }

    #[test]
    fn signed_publication_around_random_header_and_sig(
        header in vec(any::<u8>(), 0..512),
        sig in vec(any::<u8>(), 0..80),
    ) {
        let signed = encode(&SignedPublication { header: header.clone(), sig });
        decode_everything(&signed)?;
        decode_everything(&envelope_of("signed", None, &signed))?;
        decode_everything(&header)?;
    }

    #[test]
    fn msgpack_shaped_noise(tree in noise()) {
        let bytes = pack(&tree);
        decode_everything(&bytes)?;
        decode_everything(&encode_envelope(&tree))?;
    }

    #[test]
    fn valid_message_with_one_part_replaced(
        msg in message(),
        at in any::<usize>(),
        new in noise(),
    ) {
        if let Some(mut tree) = msg.tree() {
            replace_node(&mut tree, at, new);
            decode_everything(&pack(&tree))?;
            decode_everything(&encode_envelope(&tree))?;
        }
    }

    #[test]
    fn every_truncation_is_an_error(msg in message()) {
        for (bytes, envelope) in [(msg.bare(), false), (msg.wrapped(), true)] {
            prop_assert!(msg.own_decoder_accepts(&bytes, envelope));
            for len in 0..bytes.len() {
                prop_assert!(
                    !msg.own_decoder_accepts(&bytes[..len], envelope),
                    "{} of {} bytes accepted: {:02x?}", len, bytes.len(), &bytes[..len]
                );
            }
        }
    }

    #[test]
    fn flipped_bytes(
        msg in message(),
        flips in vec((any::<usize>(), 1..=255u8), 1..4),
        envelope in any::<bool>(),
    ) {
        let mut bytes = if envelope { msg.wrapped() } else { msg.bare() };
        for (at, mask) in flips {
            let at = at % bytes.len();
            bytes[at] ^= mask;
        }
        decode_everything(&bytes)?;
    }

    #[test]
    fn inserted_and_deleted_bytes(
        msg in message(),
        at in any::<usize>(),
        insert in vec(any::<u8>(), 0..8),
        delete in 0..8usize,
        envelope in any::<bool>(),
    ) {
        let mut bytes = if envelope { msg.wrapped() } else { msg.bare() };
        let at = at % bytes.len();
        let end = (at + delete).min(bytes.len());
        bytes.splice(at..end, insert);
        decode_everything(&bytes)?;
    }
}
