//! Hostile inputs, one by one: each of the attacks the limits and the grammars exist for gets
//! the exact error it must get, on every decoder a socket can reach.
//!
//! Messages are written here field by field (`common::msgpack`), so that any field can hold
//! any bytes.

mod common;

use brine_proto::codec::{BodyKind, Envelope};
use brine_proto::control::{
    ControlEvent, ControlRequest, JobQuery, KeyCommand, KeySelection, PublishRequest,
};
use brine_proto::limits::{MAX_COLLECTION_LEN, MAX_DEPTH, MAX_FRAME_BYTES, MAX_TOTAL_ITEMS};
use brine_proto::msg::{PublicationHeader, SignedPublication};
use brine_proto::{
    decode, decode_envelope, encode, encode_envelope, DecodeError, FunctionName, Jid, Job,
    JobReturn, Map, MasterReply, MinionId, MinionRequest, Publication, Target, Value,
};
use common::msgpack::{array, bin, int, map, raw_str, s, uint};
use proptest::prelude::*;
use serde_json::json;

// ---- messages written by hand ----

/// An envelope `{v, kind, body}` with any version and any body bytes.
fn envelope_v(v: u64, body: &[u8]) -> Vec<u8> {
    map(&[("v", uint(v)), ("kind", s("plain")), ("body", bin(body))])
}

fn envelope(body: &[u8]) -> Vec<u8> {
    envelope_v(1, body)
}

/// A v1 envelope whose `body` field is `raw` msgpack, bin or not.
fn envelope_raw_body(raw: &[u8]) -> Vec<u8> {
    map(&[("v", uint(1)), ("kind", s("plain")), ("body", raw.to_vec())])
}

/// `haystack` with the first `needle` replaced by `with`.
fn replace_once(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let at = haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle present");
    [&haystack[..at], with, &haystack[at + needle.len()..]].concat()
}

/// `depth` arrays, each holding the next, the innermost holding nil.
fn nested_arrays(depth: usize) -> Vec<u8> {
    let mut b = vec![0x91; depth];
    b.push(0xc0);
    b
}

/// `depth` maps, each `{"a": next}`, the innermost value nil.
fn nested_maps(depth: usize) -> Vec<u8> {
    let mut b = Vec::with_capacity(depth * 3 + 1);
    for _ in 0..depth {
        b.extend_from_slice(&[0x81, 0xa1, b'a']);
    }
    b.push(0xc0);
    b
}

fn keepalive(id: Vec<u8>) -> Vec<u8> {
    map(&[("type", s("keepalive")), ("id", id)])
}

// ---- running every decoder ----

type Outcome = (&'static str, Result<(), DecodeError>);

/// The result of every bare decoder on `bytes`: the control socket's, the envelope's (both
/// ways), the PUB layers', and the network messages' (as applied to an opened body).
fn bare_decoders(bytes: &[u8]) -> Vec<Outcome> {
    fn run<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<(), DecodeError> {
        decode::<T>(bytes).map(drop)
    }
    vec![
        ("Publication", run::<Publication>(bytes)),
        ("MinionRequest", run::<MinionRequest>(bytes)),
        ("MasterReply", run::<MasterReply>(bytes)),
        ("ControlRequest", run::<ControlRequest>(bytes)),
        ("ControlEvent", run::<ControlEvent>(bytes)),
        ("KeyCommand", run::<KeyCommand>(bytes)),
        ("SignedPublication", run::<SignedPublication>(bytes)),
        ("PublicationHeader", run::<PublicationHeader>(bytes)),
        ("Envelope", run::<Envelope>(bytes)),
        (
            "Envelope::from_bytes",
            Envelope::from_bytes(bytes).map(drop),
        ),
    ]
}

/// The result of every enveloped decoder on `bytes`: what the TCP sockets run.
fn enveloped_decoders(bytes: &[u8]) -> Vec<Outcome> {
    fn run<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<(), DecodeError> {
        decode_envelope::<T>(bytes).map(drop)
    }
    vec![
        ("enveloped Publication", run::<Publication>(bytes)),
        ("enveloped MinionRequest", run::<MinionRequest>(bytes)),
        ("enveloped MasterReply", run::<MasterReply>(bytes)),
        ("enveloped ControlRequest", run::<ControlRequest>(bytes)),
        ("enveloped ControlEvent", run::<ControlEvent>(bytes)),
        (
            "enveloped SignedPublication",
            run::<SignedPublication>(bytes),
        ),
    ]
}

#[track_caller]
fn check_all(outcomes: Vec<Outcome>, bytes: &[u8], expected: &impl Fn(&DecodeError) -> bool) {
    for (decoder, result) in outcomes {
        match result {
            Err(e) if expected(&e) => {}
            other => panic!("{decoder} gave {other:?} for {:02x?}", head(bytes)),
        }
    }
}

/// Every decoder, bare and enveloped, fails on the frame `bytes` with the `expected` error.
#[track_caller]
fn all_fail(bytes: &[u8], expected: impl Fn(&DecodeError) -> bool) {
    check_all(bare_decoders(bytes), bytes, &expected);
    check_all(enveloped_decoders(bytes), bytes, &expected);
}

/// As [`all_fail`], and the message decoders also fail on `bytes` as the body of a valid
/// envelope.
#[track_caller]
fn all_fail_bare_and_enveloped(bytes: &[u8], expected: impl Fn(&DecodeError) -> bool) {
    all_fail(bytes, &expected);
    let wrapped = envelope(bytes);
    check_all(enveloped_decoders(&wrapped), &wrapped, &expected);
}

fn head(bytes: &[u8]) -> &[u8] {
    &bytes[..bytes.len().min(64)]
}

#[track_caller]
fn malformed<T>(bytes: &[u8])
where
    T: serde::de::DeserializeOwned + std::fmt::Debug,
{
    let bare = decode::<T>(bytes);
    assert!(
        matches!(bare, Err(DecodeError::Malformed(_))),
        "{bare:?} for {:02x?}",
        head(bytes)
    );
    let wrapped = decode_envelope::<T>(&envelope(bytes));
    assert!(
        matches!(wrapped, Err(DecodeError::Malformed(_))),
        "{wrapped:?} in an envelope"
    );
}

fn is_too_deep(e: &DecodeError) -> bool {
    *e == DecodeError::TooDeep { max: MAX_DEPTH }
}

fn is_malformed(e: &DecodeError) -> bool {
    matches!(e, DecodeError::Malformed(_))
}

// ---- fixed valid values ----

const JID: &str = "20261125130201123456";

fn web1() -> MinionId {
    MinionId::new("web1").unwrap()
}

fn job() -> Job {
    Job {
        jid: Jid::new(JID).unwrap(),
        target: Target::Glob("web*".into()),
        fun: "test.ping".into(),
        arg: vec![],
        kwarg: Map::new(),
        timeout_ms: 5_000,
        expires_ms: 1_795_611_781_123,
        master_time_ms: 1_795_611_721_123,
        user: "root".into(),
    }
}

fn job_return() -> JobReturn {
    JobReturn::new(web1(), Jid::new(JID).unwrap(), "test.ping", true).ran(1, 2)
}

// ---- the hand-written msgpack is msgpack ----

#[test]
fn hand_written_msgpack_agrees_with_rmp_serde() {
    for n in [
        0u64,
        1,
        0x7f,
        0x80,
        0xff,
        0x100,
        0xffff,
        0x1_0000,
        0xffff_ffff,
        1 << 32,
        u64::MAX,
    ] {
        assert_eq!(uint(n), rmp_serde::to_vec(&n).unwrap(), "{n}");
    }
    for n in [
        -1i64,
        -32,
        -33,
        -128,
        -129,
        -32_768,
        -32_769,
        i64::from(i32::MIN),
        i64::MIN,
    ] {
        assert_eq!(int(n), rmp_serde::to_vec(&n).unwrap(), "{n}");
    }
    for len in [0usize, 31, 32, 0xff, 0x100, 0xffff, 0x1_0000] {
        let text = "x".repeat(len);
        assert_eq!(s(&text), rmp_serde::to_vec(&text).unwrap(), "str {len}");
        let bytes = vec![7u8; len];
        let expected = rmp_serde::to_vec(&serde_bytes::Bytes::new(&bytes)).unwrap();
        assert_eq!(bin(&bytes), expected, "bin {len}");
        let items = vec![json!(null); len];
        let expected = rmp_serde::to_vec(&items).unwrap();
        assert_eq!(array(&vec![vec![0xc0]; len]), expected, "array {len}");
    }
    let fields = [("a", uint(1)), ("b", s("c"))];
    let expected = rmp_serde::to_vec_named(&json!({"a": 1, "b": "c"})).unwrap();
    assert_eq!(map(&fields), expected);
}

// ---- depth ----

#[test]
fn nesting_past_sixteen_levels_is_too_deep() {
    for depth in [MAX_DEPTH + 1, 1_000, 100_000] {
        all_fail_bare_and_enveloped(&nested_arrays(depth), is_too_deep);
        all_fail_bare_and_enveloped(&nested_maps(depth), is_too_deep);
        // Inside a field of an otherwise valid message, before serde looks at the field.
        all_fail_bare_and_enveloped(&keepalive(nested_arrays(depth)), is_too_deep);
    }
}

#[test]
fn sixteen_levels_are_accepted_and_seventeen_are_not() {
    // A publication is one map, its `arg` a second level: 14 more arrays make 16 in all.
    fn with_arg_depth(levels: usize) -> Publication {
        let mut arg = Value::Null;
        for _ in 0..levels {
            arg = Value::Array(vec![arg]);
        }
        Publication::Job(Job {
            arg: vec![arg],
            ..job()
        })
    }
    let ok = with_arg_depth(MAX_DEPTH - 2);
    assert_eq!(decode::<Publication>(&encode(&ok)), Ok(ok.clone()));
    assert_eq!(
        decode_envelope::<Publication>(&encode_envelope(&ok)),
        Ok(ok)
    );

    let deep = with_arg_depth(MAX_DEPTH - 1);
    assert_eq!(
        decode::<Publication>(&encode(&deep)),
        Err(DecodeError::TooDeep { max: MAX_DEPTH })
    );
    assert_eq!(
        decode_envelope::<Publication>(&encode_envelope(&deep)),
        Err(DecodeError::TooDeep { max: MAX_DEPTH })
    );
}

// ---- sizes and lengths ----

#[test]
fn sixteen_million_empty_strings_are_refused() {
    let count = 16_000_000usize;
    let mut bytes = common::msgpack::array_header(count);
    bytes.resize(count + 5, 0xa0);
    let expected = |e: &DecodeError| {
        *e == DecodeError::CollectionTooLong {
            len: count,
            max: MAX_COLLECTION_LEN,
        }
    };
    all_fail_bare_and_enveloped(&bytes, expected);
}

#[test]
fn frames_over_sixteen_mib_are_refused_unread() {
    let bytes = vec![0xc0; MAX_FRAME_BYTES + 1];
    all_fail(&bytes, |e| {
        *e == DecodeError::TooLarge {
            len: MAX_FRAME_BYTES + 1,
            max: MAX_FRAME_BYTES,
        }
    });
}

#[test]
fn collections_of_the_limit_are_accepted_and_longer_ones_are_not() {
    let with_kwargs = |n: usize| {
        Publication::Job(Job {
            kwarg: (0..n).map(|i| (format!("k{i}"), Value::Null)).collect(),
            ..job()
        })
    };
    let ok = with_kwargs(MAX_COLLECTION_LEN);
    assert_eq!(
        decode_envelope::<Publication>(&encode_envelope(&ok)),
        Ok(ok)
    );

    let long = with_kwargs(MAX_COLLECTION_LEN + 1);
    let expected = Err(DecodeError::CollectionTooLong {
        len: MAX_COLLECTION_LEN + 1,
        max: MAX_COLLECTION_LEN,
    });
    assert_eq!(decode::<Publication>(&encode(&long)), expected);
    assert_eq!(
        decode_envelope::<Publication>(&encode_envelope(&long)),
        expected
    );
}

#[test]
fn more_than_a_million_values_are_refused() {
    // Sixteen arrays of 65,536 nils: every collection within its limit, 1,048,576 values in all.
    let arg = vec![Value::Array(vec![Value::Null; MAX_COLLECTION_LEN]); 16];
    let publication = Publication::Job(Job { arg, ..job() });
    let expected = Err(DecodeError::TooManyItems {
        max: MAX_TOTAL_ITEMS,
    });
    assert_eq!(decode::<Publication>(&encode(&publication)), expected);
    assert_eq!(
        decode_envelope::<Publication>(&encode_envelope(&publication)),
        expected
    );
}

#[test]
fn lengths_of_four_gigabytes_without_bodies_are_refused() {
    // str32, bin32, array32, map32, ext32 (with its type byte), each claiming 0xffffffff.
    let claims: [&[u8]; 5] = [
        &[0xdb, 0xff, 0xff, 0xff, 0xff],
        &[0xc6, 0xff, 0xff, 0xff, 0xff],
        &[0xdd, 0xff, 0xff, 0xff, 0xff],
        &[0xdf, 0xff, 0xff, 0xff, 0xff],
        &[0xc9, 0xff, 0xff, 0xff, 0xff, 0x01],
    ];
    // Strings, bins and exts are cut short; arrays and maps are over the element limit first.
    let refused = |e: &DecodeError| {
        matches!(
            e,
            DecodeError::Truncated | DecodeError::CollectionTooLong { .. }
        )
    };
    for claim in claims {
        // Alone, as a field of a message, and as the envelope's body.
        all_fail_bare_and_enveloped(claim, refused);
        all_fail_bare_and_enveloped(&keepalive(claim.to_vec()), refused);
        all_fail(&envelope_raw_body(claim), refused);
    }
    // The likeliest of them, a bin32 body with nothing behind it, is a truncation.
    let bytes = envelope_raw_body(&[0xc6, 0xff, 0xff, 0xff, 0xff]);
    assert_eq!(
        decode_envelope::<MinionRequest>(&bytes),
        Err(DecodeError::Truncated)
    );
}

#[test]
fn reserved_marker_is_malformed() {
    all_fail_bare_and_enveloped(&[0xc1], is_malformed);
    all_fail_bare_and_enveloped(&keepalive(vec![0xc1]), is_malformed);
}

// ---- strings ----

#[test]
fn invalid_utf8_in_a_str_field_is_malformed() {
    let bad = raw_str(&[b'w', 0xff, 0xfe, b'1']);
    // A validated id, a plain String field, the type tag, a value, a map key.
    malformed::<MinionRequest>(&keepalive(bad.clone()));
    malformed::<MinionRequest>(&map(&[("type", bad.clone()), ("id", s("web1"))]));
    for (field, placeholder) in [
        ("fun", json!("PLACEHOLDER")),
        ("user", json!("PLACEHOLDER")),
        ("arg", json!(["PLACEHOLDER"])),
        ("kwarg", json!({"PLACEHOLDER": 1})),
        ("target", json!({"type": "glob", "expr": "PLACEHOLDER"})),
    ] {
        let mut tree = serde_json::to_value(Publication::Job(job())).unwrap();
        tree[field] = placeholder;
        let packed = rmp_serde::to_vec_named(&tree).unwrap();
        malformed::<Publication>(&replace_once(&packed, &s("PLACEHOLDER"), &bad));
    }
    let bad_value = map(&[
        ("type", s("hello")),
        ("id", s("web1")),
        ("version", s("0.1.0")),
        ("grains", map(&[("os", bad.clone())])),
    ]);
    malformed::<MinionRequest>(&bad_value);
    // The envelope's own kind.
    let bytes = map(&[("v", uint(1)), ("kind", bad), ("body", bin(&[0xc0]))]);
    all_fail(&bytes, is_malformed);
}

// ---- framing ----

#[test]
fn trailing_bytes_are_refused() {
    let ok = encode(&MinionRequest::Keepalive { id: web1() });
    for extra in [1usize, 3] {
        let mut bytes = ok.clone();
        bytes.extend(std::iter::repeat_n(0xc0, extra));
        let expected = Err(DecodeError::TrailingBytes { extra });
        assert_eq!(decode::<MinionRequest>(&bytes), expected);
        // Behind the envelope and behind the body inside it.
        let mut wrapped = encode_envelope(&MinionRequest::Keepalive { id: web1() });
        wrapped.extend(std::iter::repeat_n(0xc0, extra));
        assert_eq!(decode_envelope::<MinionRequest>(&wrapped), expected);
        assert_eq!(
            decode_envelope::<MinionRequest>(&envelope(&bytes)),
            expected
        );
    }
}

#[test]
fn empty_input_is_truncated() {
    all_fail_bare_and_enveloped(&[], |e| *e == DecodeError::Truncated);
}

// ---- message shape ----

#[test]
fn unknown_message_types_are_malformed() {
    // `publish` is a control verb: the network sockets do not know it.
    let publish = encode(&ControlRequest::Publish(PublishRequest {
        target: Target::Glob("*".into()),
        fun: FunctionName::new("cmd.run").unwrap(),
        arg: vec![json!("id")],
        kwarg: Map::new(),
        timeout_ms: 1_000,
        wait: true,
    }));
    malformed::<MinionRequest>(&publish);
    malformed::<Publication>(&publish);
    for tag in ["nope", "", "Keepalive", "KEEPALIVE"] {
        let bytes = map(&[("type", s(tag)), ("id", s("web1"))]);
        malformed::<Publication>(&bytes);
        malformed::<MinionRequest>(&bytes);
        malformed::<MasterReply>(&bytes);
        malformed::<ControlRequest>(&bytes);
        malformed::<ControlEvent>(&bytes);
    }
    // No tag at all, and messages that are not maps.
    for bytes in [
        map(&[("id", s("web1"))]),
        s("keepalive"),
        uint(1),
        vec![0xc0],
        array(&[]),
    ] {
        malformed::<Publication>(&bytes);
        malformed::<MinionRequest>(&bytes);
        malformed::<MasterReply>(&bytes);
        malformed::<ControlRequest>(&bytes);
        malformed::<ControlEvent>(&bytes);
    }
}

proptest! {
    /// No control request (the CLI's verbs) is a valid request on the network sockets.
    #[test]
    fn control_requests_are_not_minion_requests(x in common::control_request()) {
        prop_assert!(decode::<MinionRequest>(&encode(&x)).is_err());
        prop_assert!(decode_envelope::<MinionRequest>(&encode_envelope(&x)).is_err());
    }
}

/// Adds `"unexpected": 1` to the map at `pointer` (JSON pointer) of `msg`'s tree.
fn with_unknown_field(msg: &impl serde::Serialize, pointer: &str) -> Vec<u8> {
    let mut tree = serde_json::to_value(msg).unwrap();
    tree.pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer} in the message"))
        .as_object_mut()
        .unwrap()
        .insert("unexpected".into(), json!(1));
    rmp_serde::to_vec_named(&tree).unwrap()
}

#[test]
fn unknown_fields_are_malformed() {
    use brine_proto::control::{JobReport, JobSummary, MinionOutcome, MinionState, MinionStatus};
    use brine_proto::msg::{ReplyError, Tick};

    let job = Publication::Job(job());
    malformed::<Publication>(&with_unknown_field(&job, ""));
    let tick = Publication::Tick(Tick {
        seq: 1,
        master_time_ms: 2,
        tick_interval_ms: 3,
    });
    malformed::<Publication>(&with_unknown_field(&tick, ""));

    for req in [
        MinionRequest::Hello {
            id: web1(),
            version: "0.1.0".into(),
            grains: Map::new(),
        },
        MinionRequest::Keepalive { id: web1() },
        MinionRequest::Pending { id: web1() },
        MinionRequest::Receipt {
            id: web1(),
            jid: Jid::new(JID).unwrap(),
        },
        MinionRequest::Return(job_return()),
        MinionRequest::Goodbye { id: web1() },
        MinionRequest::MasterKeys {},
        MinionRequest::GroupKey { id: web1() },
    ] {
        malformed::<MinionRequest>(&with_unknown_field(&req, ""));
    }

    for reply in [
        MasterReply::Welcome {
            session: 9,
            master_time_ms: 1,
            keepalive_interval_ms: 2,
            tick_interval_ms: 3,
            group_epoch: 4,
            group_key: vec![5; 32],
        },
        MasterReply::MasterKeys {
            noise: vec![1; 32],
            sign: vec![2; 32],
        },
        MasterReply::GroupKey {
            epoch: 4,
            key: vec![5; 32],
        },
        MasterReply::Error {
            code: ReplyError::Refused,
            message: "no".into(),
        },
    ] {
        malformed::<MasterReply>(&with_unknown_field(&reply, ""));
    }
    let jobs = MasterReply::Jobs {
        jobs: vec![self::job()],
    };
    malformed::<MasterReply>(&with_unknown_field(&jobs, ""));
    malformed::<MasterReply>(&with_unknown_field(&jobs, "/jobs/0"));

    let publish = ControlRequest::Publish(PublishRequest {
        target: Target::List(vec!["web1".into()]),
        fun: FunctionName::new("test.ping").unwrap(),
        arg: vec![],
        kwarg: Map::new(),
        timeout_ms: 1,
        wait: false,
    });
    malformed::<ControlRequest>(&with_unknown_field(&publish, ""));
    let lookup = ControlRequest::LookupJob {
        jid: Jid::new(JID).unwrap(),
        wait: true,
    };
    malformed::<ControlRequest>(&with_unknown_field(&lookup, ""));
    let list = ControlRequest::ListJobs(JobQuery::newest(10));
    malformed::<ControlRequest>(&with_unknown_field(&list, ""));
    let search = ControlRequest::ListJobs(JobQuery {
        limit: 10,
        search_function: Some("test.*".into()),
        search_target: Some("web*".into()),
        start_time_ms: Some(1),
        end_time_ms: Some(2),
    });
    malformed::<ControlRequest>(&with_unknown_field(&search, ""));
    malformed::<ControlRequest>(&with_unknown_field(&ControlRequest::ActiveJobs {}, ""));
    for command in [
        KeyCommand::List {},
        KeyCommand::Accept {
            ids: vec![web1()],
            fingerprint: Some("ab:cd".into()),
            preaccept: false,
        },
        KeyCommand::Reject(KeySelection::id(&web1())),
        KeyCommand::Delete(KeySelection::id(&web1())),
    ] {
        malformed::<KeyCommand>(&with_unknown_field(&command, ""));
        malformed::<ControlRequest>(&with_unknown_field(&ControlRequest::Keys(command), ""));
    }
    let keys = ControlEvent::Keys {
        master_fingerprint: "ab:cd".into(),
        keys: vec![brine_proto::control::KeyInfo {
            id: web1(),
            state: brine_proto::control::KeyState::Pending,
            fingerprint: "ef:01".into(),
        }],
    };
    malformed::<ControlEvent>(&with_unknown_field(&keys, ""));
    malformed::<ControlEvent>(&with_unknown_field(&keys, "/keys/0"));

    let done = ControlEvent::Done(JobReport {
        jid: Jid::new(JID).unwrap(),
        fun: "test.ping".into(),
        target: Target::Glob("*".into()),
        arg: vec![],
        kwarg: Map::new(),
        user: "root".into(),
        published_ms: 1,
        deadline_ms: 2,
        minions: vec![MinionOutcome {
            id: web1(),
            state: MinionState::Returned,
            ret: Some(job_return()),
        }],
    });
    for pointer in ["", "/minions/0", "/minions/0/ret"] {
        malformed::<ControlEvent>(&with_unknown_field(&done, pointer));
    }
    let jobs = ControlEvent::Jobs {
        jobs: vec![JobSummary {
            jid: Jid::new(JID).unwrap(),
            fun: "test.ping".into(),
            target: Target::Glob("*".into()),
            user: "root".into(),
            published_ms: 1,
            expected: 2,
            returned: 1,
        }],
    };
    malformed::<ControlEvent>(&with_unknown_field(&jobs, "/jobs/0"));
    let active = ControlEvent::ActiveJobs {
        jobs: vec![brine_proto::control::ActiveJob {
            jid: Jid::new(JID).unwrap(),
            fun: "test.sleep".into(),
            target: Target::Glob("*".into()),
            user: "root".into(),
            published_ms: 1,
            minions: vec![brine_proto::control::MinionProgress {
                id: web1(),
                state: MinionState::Running,
            }],
        }],
        omitted: 0,
    };
    for pointer in ["", "/jobs/0", "/jobs/0/minions/0"] {
        malformed::<ControlEvent>(&with_unknown_field(&active, pointer));
    }
    let minions = ControlEvent::Minions {
        minions: vec![MinionStatus {
            id: web1(),
            connected: true,
            last_seen_ms: 1,
            version: "0.1.0".into(),
        }],
        no_key: vec![],
    };
    malformed::<ControlEvent>(&with_unknown_field(&minions, "/minions/0"));
    let published = ControlEvent::Published {
        jid: Jid::new(JID).unwrap(),
        minions: vec![web1()],
    };
    malformed::<ControlEvent>(&with_unknown_field(&published, ""));
    malformed::<ControlEvent>(&with_unknown_field(&ControlEvent::Return(job_return()), ""));

    // The envelope.
    let bytes = map(&[
        ("v", uint(1)),
        ("kind", s("plain")),
        (
            "body",
            bin(&encode(&MinionRequest::Keepalive { id: web1() })),
        ),
        ("sig", bin(&[0; 64])),
    ]);
    all_fail(&bytes, is_malformed);
}

#[test]
fn missing_fields_are_malformed() {
    malformed::<MinionRequest>(&map(&[("type", s("keepalive"))]));
    malformed::<MinionRequest>(&map(&[("type", s("receipt")), ("id", s("web1"))]));
    let mut tree = serde_json::to_value(Publication::Job(job())).unwrap();
    tree.as_object_mut().unwrap().remove("expires_ms");
    malformed::<Publication>(&rmp_serde::to_vec_named(&tree).unwrap());
    let bytes = map(&[("v", uint(1)), ("kind", s("plain"))]);
    all_fail(&bytes, is_malformed);
}

#[test]
fn wrong_types_are_malformed() {
    // Ids and jids are str, never numbers.
    malformed::<MinionRequest>(&keepalive(uint(1)));
    malformed::<MinionRequest>(&map(&[
        ("type", s("receipt")),
        ("id", s("web1")),
        ("jid", uint(u64::MAX)),
    ]));
    // The type tag is a str (a number is taken as the variant's index: see docs/PROTOCOL.md).
    malformed::<MinionRequest>(&map(&[("type", array(&[])), ("id", s("web1"))]));
    malformed::<MinionRequest>(&map(&[("type", uint(99)), ("id", s("web1"))]));
    // Times are unsigned.
    let tick = |seq: Vec<u8>| {
        map(&[
            ("type", s("tick")),
            ("seq", seq),
            ("master_time_ms", uint(1)),
            ("tick_interval_ms", uint(1)),
        ])
    };
    assert!(decode::<Publication>(&tick(uint(1))).is_ok());
    malformed::<Publication>(&tick(int(-1)));
    malformed::<Publication>(&tick(s("1")));
    malformed::<Publication>(&tick(vec![0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0])); // 1.0
    malformed::<Publication>(&tick(vec![0xc3])); // true
                                                 // retcode is an i32, success a bool, arg an array, kwarg and grains maps.
    let mut ret = serde_json::to_value(MinionRequest::Return(job_return())).unwrap();
    for (field, value) in [
        ("retcode", json!(1u64 << 31)),
        ("retcode", json!("0")),
        ("success", json!(1)),
        ("success", json!(null)),
    ] {
        let original = ret[field].clone();
        ret[field] = value;
        malformed::<MinionRequest>(&rmp_serde::to_vec_named(&ret).unwrap());
        ret[field] = original;
    }
    let mut job = serde_json::to_value(Publication::Job(job())).unwrap();
    for (field, value) in [
        ("arg", json!({})),
        ("kwarg", json!([])),
        ("target", json!("*")),
        ("target", json!({"type": "grain", "expr": "os:Linux"})),
        ("target", json!({"type": "list", "expr": "web1"})),
    ] {
        let original = job[field].clone();
        job[field] = value;
        malformed::<Publication>(&rmp_serde::to_vec_named(&job).unwrap());
        job[field] = original;
    }
    // Map keys are strings.
    let bytes = map(&[
        ("type", s("hello")),
        ("id", s("web1")),
        ("version", s("0.1.0")),
        ("grains", vec![0x81, 0x01, 0xc0]),
    ]);
    malformed::<MinionRequest>(&bytes);
    // Error codes come from a closed set.
    let bytes = map(&[
        ("type", s("error")),
        ("code", s("teapot")),
        ("message", s("")),
    ]);
    malformed::<MasterReply>(&bytes);
    malformed::<ControlEvent>(&bytes);
    // The envelope: v a u16, kind a known str, body bin.
    for bytes in [
        map(&[("v", s("1")), ("kind", s("plain")), ("body", bin(&[0xc0]))]),
        map(&[
            ("v", uint(70_000)),
            ("kind", s("plain")),
            ("body", bin(&[0xc0])),
        ]),
        map(&[("v", int(-1)), ("kind", s("plain")), ("body", bin(&[0xc0]))]),
        map(&[("v", uint(1)), ("kind", s("curve")), ("body", bin(&[0xc0]))]),
        map(&[("v", uint(1)), ("kind", uint(9)), ("body", bin(&[0xc0]))]),
        map(&[("v", uint(1)), ("kind", s("plain")), ("body", uint(0))]),
    ] {
        all_fail(&bytes, is_malformed);
    }
}

// ---- grammars on the wire ----

#[test]
fn hostile_ids_are_malformed() {
    let too_long = "a".repeat(65);
    for id in [
        "../x", "..", ".", "a/b", "a\\b", "a\0b", "", &too_long, "é", "aé", "web1\n", " web1",
        "-web1", "a..b", "web1/", "*",
    ] {
        malformed::<MinionRequest>(&keepalive(s(id)));
        malformed::<MinionRequest>(&map(&[("type", s("goodbye")), ("id", s(id))]));
        let mut ret = serde_json::to_value(MinionRequest::Return(job_return())).unwrap();
        ret["id"] = json!(id);
        malformed::<MinionRequest>(&rmp_serde::to_vec_named(&ret).unwrap());
        let published = map(&[
            ("type", s("published")),
            ("jid", s(JID)),
            ("minions", array(&[s("web1"), s(id)])),
        ]);
        malformed::<ControlEvent>(&published);
    }
    // The longest id is fine.
    let longest = "a".repeat(64);
    assert!(decode::<MinionRequest>(&keepalive(s(&longest))).is_ok());
}

#[test]
fn jids_that_are_not_time_stamps_are_malformed() {
    let receipt = |jid: Vec<u8>| map(&[("type", s("receipt")), ("id", s("web1")), ("jid", jid)]);
    assert!(decode::<MinionRequest>(&receipt(s(JID))).is_ok());
    for jid in [
        "0",
        "18446744073709551615",
        "",
        "2026112513020112345",
        "202611251302011234567",
        "2026112513020112345x",
        "20261325130201123456",
        "20261100130201123456",
        "20261125250201123456",
        "00000000000000000000",
        " 20261125130201123456",
    ] {
        malformed::<MinionRequest>(&receipt(s(jid)));
        malformed::<Jid>(&s(jid));
    }
    malformed::<MinionRequest>(&receipt(uint(20_261_125_130_201)));
}

// ---- versions ----

#[test]
fn other_envelope_versions_are_unsupported() {
    let body = encode(&MinionRequest::Keepalive { id: web1() });
    assert!(decode_envelope::<MinionRequest>(&envelope_v(1, &body)).is_ok());
    for v in [0u16, 2, u16::MAX] {
        let bytes = envelope_v(u64::from(v), &body);
        assert_eq!(
            decode_envelope::<MinionRequest>(&bytes),
            Err(DecodeError::UnsupportedVersion(v))
        );
        // Plain decoding of the envelope still works: a server can read `v` and answer.
        assert_eq!(decode::<Envelope>(&bytes).map(|e| e.v), Ok(v));
    }
}

// ---- the security layer: envelope kinds and sessions ----

/// A v1 envelope of `kind` (any str) with an optional raw `session` field around `body`.
fn envelope_of(kind: &str, session: Option<Vec<u8>>, body: &[u8]) -> Vec<u8> {
    let mut fields = vec![("v", uint(1)), ("kind", s(kind))];
    if let Some(session) = session {
        fields.push(("session", session));
    }
    fields.push(("body", bin(body)));
    map(&fields)
}

const SECURE_KINDS: [BodyKind; 3] = [BodyKind::Handshake, BodyKind::Sealed, BodyKind::Signed];

fn kind_word(kind: BodyKind) -> &'static str {
    match kind {
        BodyKind::Plain => "plain",
        BodyKind::Handshake => "handshake",
        BodyKind::Sealed => "sealed",
        BodyKind::Signed => "signed",
    }
}

#[test]
fn a_sealed_envelope_without_a_session_is_still_an_envelope() {
    // The envelope does not tie `session` to `kind`: the master refuses a sealed request
    // without one (`error malformed`), the codec does not. So the bytes decode ...
    let body = encode(&MinionRequest::Keepalive { id: web1() });
    let bytes = envelope_of("sealed", None, &body);
    let envelope = Envelope::from_bytes(&bytes).expect("a sealed envelope decodes");
    assert_eq!(
        envelope,
        Envelope {
            v: 1,
            kind: BodyKind::Sealed,
            session: None,
            body: body.clone(),
        }
    );
    assert_eq!(decode::<Envelope>(&bytes), Ok(envelope));
    // ... but nothing reads the body as a message without opening it first.
    assert_eq!(
        decode_envelope::<MinionRequest>(&bytes),
        Err(DecodeError::WrongKind(BodyKind::Sealed))
    );
    // The other mismatches decode too: a session on a plain, handshake or signed envelope.
    for kind in ["plain", "handshake", "signed"] {
        let bytes = envelope_of(kind, Some(uint(42)), &body);
        assert_eq!(Envelope::from_bytes(&bytes).unwrap().session, Some(42));
    }
    // A plain envelope with a session still opens as plain (the session means nothing there).
    let bytes = envelope_of("plain", Some(uint(42)), &body);
    assert_eq!(
        decode_envelope::<MinionRequest>(&bytes),
        Ok(MinionRequest::Keepalive { id: web1() })
    );
}

#[test]
fn decode_envelope_opens_only_plain_envelopes() {
    let keepalive = encode(&MinionRequest::Keepalive { id: web1() });
    let bodies: [&[u8]; 4] = [&keepalive, &[], &[0xc1], &[0xc6, 0xff, 0xff, 0xff, 0xff]];
    for kind in SECURE_KINDS {
        for body in bodies {
            for session in [None, Some(7), Some(u64::MAX)] {
                let bytes = Envelope::new(kind, session, body.to_vec()).to_bytes();
                let expected = || DecodeError::WrongKind(kind);
                // Whatever the body holds, valid or not: it is never looked at.
                assert_eq!(decode_envelope::<MinionRequest>(&bytes), Err(expected()));
                assert_eq!(decode_envelope::<MasterReply>(&bytes), Err(expected()));
                assert_eq!(decode_envelope::<Publication>(&bytes), Err(expected()));
                assert_eq!(
                    decode_envelope::<SignedPublication>(&bytes),
                    Err(expected())
                );
                assert_eq!(decode_envelope::<Value>(&bytes), Err(expected()));
                let envelope = Envelope::from_bytes(&bytes).unwrap();
                assert_eq!((envelope.kind, envelope.session), (kind, session));
                assert_eq!(envelope.body, body);
            }
        }
        // The version is checked before the kind.
        let other_version = map(&[
            ("v", uint(2)),
            ("kind", s(kind_word(kind))),
            ("body", bin(&keepalive)),
        ]);
        assert_eq!(
            decode_envelope::<MinionRequest>(&other_version),
            Err(DecodeError::UnsupportedVersion(2))
        );
        assert_eq!(
            Envelope::from_bytes(&other_version),
            Err(DecodeError::UnsupportedVersion(2))
        );
    }
    let shown = DecodeError::WrongKind(BodyKind::Sealed).to_string();
    assert_eq!(shown, "a Sealed envelope is not allowed here");
}

#[test]
fn unknown_envelope_kinds_are_malformed() {
    let body = encode(&MinionRequest::Keepalive { id: web1() });
    for kind in [
        "",
        "Sealed",
        "SEALED",
        "curve",
        "encrypted",
        "signed ",
        "plain\0",
        "publish",
    ] {
        let bytes = envelope_of(kind, None, &body);
        all_fail(&bytes, is_malformed);
        assert!(matches!(
            Envelope::from_bytes(&bytes),
            Err(DecodeError::Malformed(_))
        ));
    }
}

#[test]
fn an_envelope_session_is_a_u64_or_absent() {
    let body = [0xc0];
    // nil reads as no session (never write it: leave the field out).
    let nil = Envelope::from_bytes(&envelope_of("sealed", Some(vec![0xc0]), &body)).unwrap();
    assert_eq!(nil.session, None);
    for n in [0, 1, 0xff, 0x1_0000, u64::from(u32::MAX) + 1, u64::MAX] {
        let envelope = Envelope::from_bytes(&envelope_of("sealed", Some(uint(n)), &body));
        assert_eq!(envelope.unwrap().session, Some(n));
    }
    for bad in [
        int(-1),
        int(i64::MIN),
        s("42"),
        s(""),
        vec![0xc3],                               // true
        vec![0xcb, 0x40, 0x45, 0, 0, 0, 0, 0, 0], // 42.0
        array(&[uint(42)]),
        map(&[("id", uint(42))]),
        bin(&[0, 0, 0, 0, 0, 0, 0, 42]),
    ] {
        let bytes = envelope_of("sealed", Some(bad.clone()), &body);
        all_fail(&bytes, is_malformed);
    }
    // Cut short inside the session.
    let bytes = envelope_of("sealed", Some(uint(u64::MAX)), &body);
    let at = bytes.windows(7).position(|w| w == b"session").unwrap() + 7;
    for len in at..at + 9 {
        assert!(Envelope::from_bytes(&bytes[..len]).is_err(), "cut at {len}");
    }
    // Given twice.
    let twice = map(&[
        ("v", uint(1)),
        ("kind", s("sealed")),
        ("session", uint(1)),
        ("session", uint(2)),
        ("body", bin(&body)),
    ]);
    assert!(matches!(
        Envelope::from_bytes(&twice),
        Err(DecodeError::Malformed(_))
    ));
}

#[test]
fn envelope_from_bytes_applies_the_limits() {
    assert_eq!(
        Envelope::from_bytes(&vec![0xc0; MAX_FRAME_BYTES + 1]),
        Err(DecodeError::TooLarge {
            len: MAX_FRAME_BYTES + 1,
            max: MAX_FRAME_BYTES
        })
    );
    assert_eq!(
        Envelope::from_bytes(&nested_arrays(MAX_DEPTH + 1)),
        Err(DecodeError::TooDeep { max: MAX_DEPTH })
    );
    assert_eq!(Envelope::from_bytes(&[]), Err(DecodeError::Truncated));
    let mut trailing = Envelope::new(BodyKind::Sealed, Some(1), vec![1, 2]).to_bytes();
    trailing.push(0xc0);
    assert_eq!(
        Envelope::from_bytes(&trailing),
        Err(DecodeError::TrailingBytes { extra: 1 })
    );
    // A sealed body claiming 4 GiB with nothing behind it.
    let bytes = map(&[
        ("v", uint(1)),
        ("kind", s("sealed")),
        ("session", uint(1)),
        ("body", vec![0xc6, 0xff, 0xff, 0xff, 0xff]),
    ]);
    assert_eq!(Envelope::from_bytes(&bytes), Err(DecodeError::Truncated));
}

// ---- the security layer: messages ----

fn header() -> PublicationHeader {
    PublicationHeader {
        group_epoch: 3,
        jid: Some(Jid::new(JID).unwrap()),
        to: None,
        expires_ms: 1_795_611_781_123,
        master_time_ms: 1_795_611_721_123,
        nonce: vec![7; 24],
        ciphertext: vec![9; 40],
    }
}

/// `msg`'s tree with `field` set to `value` (raw msgpack), everything else as brine writes it.
fn with_field(msg: &impl serde::Serialize, field: &str, value: Vec<u8>) -> Vec<u8> {
    let tree = serde_json::to_value(msg).unwrap();
    let mut fields: Vec<(&str, Vec<u8>)> = Vec::new();
    let object = tree.as_object().unwrap();
    for (name, v) in object {
        if name != field {
            fields.push((name, rmp_serde::to_vec_named(v).unwrap()));
        }
    }
    fields.push((field, value));
    map(&fields)
}

/// `msg`'s tree without `field`.
fn without_field(msg: &impl serde::Serialize, field: &str) -> Vec<u8> {
    let mut tree = serde_json::to_value(msg).unwrap();
    tree.as_object_mut()
        .unwrap()
        .remove(field)
        .expect("field present");
    rmp_serde::to_vec_named(&tree).unwrap()
}

#[test]
fn hostile_signed_publications_are_refused() {
    let signed = SignedPublication {
        header: encode(&header()),
        sig: vec![0x5a; 64],
    };
    assert_eq!(
        decode::<SignedPublication>(&encode(&signed)),
        Ok(signed.clone())
    );
    malformed::<SignedPublication>(&with_unknown_field(&signed, ""));
    malformed::<SignedPublication>(&without_field(&signed, "sig"));
    malformed::<SignedPublication>(&without_field(&signed, "header"));
    // The header is bytes (the signed encoding), never a nested map: the signature covers
    // exactly those bytes.
    let as_map = rmp_serde::to_vec_named(&header()).unwrap();
    malformed::<SignedPublication>(&with_field(&signed, "header", as_map));
    for bad in [uint(1), vec![0xc0], vec![0xc3], map(&[])] {
        malformed::<SignedPublication>(&with_field(&signed, "sig", bad.clone()));
        malformed::<SignedPublication>(&with_field(&signed, "header", bad));
    }
    // A typed message is not a signed publication.
    malformed::<SignedPublication>(&encode(&Publication::Job(job())));
    malformed::<SignedPublication>(&map(&[
        ("type", s("signed")),
        ("header", bin(&[])),
        ("sig", bin(&[])),
    ]));
    // A length of 4 GiB with no bytes behind it.
    let claim = map(&[
        ("header", vec![0xc6, 0xff, 0xff, 0xff, 0xff]),
        ("sig", bin(&[0; 64])),
    ]);
    assert_eq!(
        decode::<SignedPublication>(&claim),
        Err(DecodeError::Truncated)
    );
    // The wire type does not judge lengths: a short signature decodes and fails verification
    // in brine-crypto.
    let short = SignedPublication {
        sig: vec![1],
        ..signed
    };
    assert_eq!(decode::<SignedPublication>(&encode(&short)), Ok(short));
}

#[test]
fn hostile_publication_headers_are_refused() {
    let h = header();
    assert_eq!(decode::<PublicationHeader>(&encode(&h)), Ok(h.clone()));
    malformed::<PublicationHeader>(&with_unknown_field(&h, ""));
    for field in [
        "group_epoch",
        "expires_ms",
        "master_time_ms",
        "nonce",
        "ciphertext",
    ] {
        malformed::<PublicationHeader>(&without_field(&h, field));
    }
    // The epoch is a u32.
    for bad in [uint(1 << 32), int(-1), s("3"), vec![0xc0]] {
        malformed::<PublicationHeader>(&with_field(&h, "group_epoch", bad));
    }
    // Times are unsigned.
    for field in ["expires_ms", "master_time_ms"] {
        for bad in [int(-1), s("1"), vec![0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0]] {
            malformed::<PublicationHeader>(&with_field(&h, field, bad));
        }
    }
    // The jid follows the jid grammar, or is nil (a tick).
    for bad in [s("0"), s("18446744073709551615"), s("../x"), uint(1), s("")] {
        malformed::<PublicationHeader>(&with_field(&h, "jid", bad));
    }
    let tick = decode::<PublicationHeader>(&with_field(&h, "jid", vec![0xc0])).unwrap();
    assert_eq!(tick.jid, None);
    // Nonce and ciphertext are bytes; their lengths are brine-crypto's business.
    for field in ["nonce", "ciphertext"] {
        malformed::<PublicationHeader>(&with_field(&h, field, uint(0)));
        malformed::<PublicationHeader>(&with_field(&h, field, map(&[])));
        let empty = decode::<PublicationHeader>(&with_field(&h, field, bin(&[]))).unwrap();
        assert_eq!(empty.group_epoch, 3);
    }
    // A publication or a signed publication is not a header.
    malformed::<PublicationHeader>(&encode(&Publication::Job(job())));
    malformed::<PublicationHeader>(&encode(&SignedPublication {
        header: encode(&h),
        sig: vec![0; 64],
    }));
}

#[test]
fn hostile_security_requests_and_replies_are_refused() {
    // master_keys has no fields at all; group_key names the minion.
    malformed::<MinionRequest>(&map(&[("type", s("master_keys")), ("id", s("web1"))]));
    malformed::<MinionRequest>(&map(&[("type", s("group_key"))]));
    malformed::<MinionRequest>(&with_unknown_field(
        &MinionRequest::GroupKey { id: web1() },
        "",
    ));
    assert_eq!(
        decode::<MinionRequest>(&map(&[("type", s("master_keys"))])),
        Ok(MinionRequest::MasterKeys {})
    );
    // A hello carries no key: the key is the Noise static key, never a message field.
    malformed::<MinionRequest>(&map(&[
        ("type", s("hello")),
        ("id", s("web1")),
        ("version", s("0.1.0")),
        ("grains", map(&[])),
        ("key", bin(&[0; 32])),
    ]));

    let welcome = MasterReply::Welcome {
        session: 1,
        master_time_ms: 2,
        keepalive_interval_ms: 3,
        tick_interval_ms: 4,
        group_epoch: 5,
        group_key: vec![6; 32],
    };
    assert_eq!(
        decode::<MasterReply>(&encode(&welcome)),
        Ok(welcome.clone())
    );
    malformed::<MasterReply>(&with_unknown_field(&welcome, ""));
    for field in ["session", "group_epoch", "group_key"] {
        malformed::<MasterReply>(&without_field(&welcome, field));
    }
    for bad in [int(-1), s("1"), vec![0xc0]] {
        malformed::<MasterReply>(&with_field(&welcome, "session", bad));
    }
    malformed::<MasterReply>(&with_field(&welcome, "group_epoch", uint(1 << 32)));
    malformed::<MasterReply>(&with_field(&welcome, "group_key", uint(6)));

    let keys = MasterReply::MasterKeys {
        noise: vec![1; 32],
        sign: vec![2; 32],
    };
    malformed::<MasterReply>(&with_unknown_field(&keys, ""));
    malformed::<MasterReply>(&without_field(&keys, "sign"));
    malformed::<MasterReply>(&with_field(&keys, "noise", vec![0xc0]));

    let group_key = MasterReply::GroupKey {
        epoch: 1,
        key: vec![3; 32],
    };
    malformed::<MasterReply>(&with_unknown_field(&group_key, ""));
    malformed::<MasterReply>(&without_field(&group_key, "key"));
    malformed::<MasterReply>(&with_field(&group_key, "epoch", int(-1)));
    malformed::<MasterReply>(&with_field(&group_key, "epoch", uint(1 << 32)));

    // Error codes from the closed set only.
    for code in ["not_accepted", "rejected", "no_session"] {
        let bytes = map(&[("type", s("error")), ("code", s(code)), ("message", s(""))]);
        assert!(decode::<MasterReply>(&bytes).is_ok(), "{code}");
    }
    for code in [
        "NotAccepted",
        "denied",
        "pending",
        "no-session",
        "unauthorized",
    ] {
        let bytes = map(&[("type", s("error")), ("code", s(code)), ("message", s(""))]);
        malformed::<MasterReply>(&bytes);
    }
}

#[test]
fn hostile_key_commands_are_refused() {
    let keys = |fields: &[(&str, Vec<u8>)]| {
        let mut all = vec![("type", s("keys"))];
        all.extend(fields.iter().cloned());
        map(&all)
    };
    assert_eq!(
        decode::<ControlRequest>(&keys(&[("action", s("list"))])),
        Ok(ControlRequest::Keys(KeyCommand::List {}))
    );
    // No action, an unknown one, or one spelled otherwise.
    malformed::<ControlRequest>(&keys(&[]));
    for action in [
        "",
        "purge",
        "Accept",
        "LIST",
        "finger",
        "master_finger",
        "publish",
    ] {
        malformed::<ControlRequest>(&keys(&[("action", s(action)), ("id", s("web1"))]));
    }
    malformed::<ControlRequest>(&keys(&[("action", uint(9))]));
    // Unknown fields, at the top and beside every action.
    malformed::<ControlRequest>(&keys(&[("action", s("list")), ("id", s("web1"))]));
    malformed::<ControlRequest>(&keys(&[
        ("action", s("reject")),
        ("id", s("web1")),
        ("force", vec![0xc3]),
    ]));
    malformed::<ControlRequest>(&keys(&[
        ("action", s("accept")),
        ("ids", array(&[])),
        ("fingerprint", vec![0xc0]),
        ("all", vec![0xc3]),
    ]));
    // Missing fields.
    malformed::<ControlRequest>(&keys(&[("action", s("reject"))]));
    malformed::<ControlRequest>(&keys(&[("action", s("delete"))]));
    malformed::<ControlRequest>(&keys(&[
        ("action", s("accept")),
        ("fingerprint", vec![0xc0]),
    ]));
    // Wrong types.
    malformed::<ControlRequest>(&keys(&[
        ("action", s("accept")),
        ("ids", s("web1")),
        ("fingerprint", vec![0xc0]),
    ]));
    malformed::<ControlRequest>(&keys(&[
        ("action", s("accept")),
        ("ids", array(&[])),
        ("fingerprint", uint(1)),
    ]));
    malformed::<ControlRequest>(&keys(&[
        ("action", s("reject")),
        ("id", array(&[s("web1")])),
    ]));
    // Hostile ids, wherever an id goes.
    let too_long = "a".repeat(65);
    for id in [
        "../x", "..", ".", "a/b", "a\\b", "a\0b", "", &too_long, "é", "*",
    ] {
        malformed::<ControlRequest>(&keys(&[("action", s("reject")), ("id", s(id))]));
        malformed::<ControlRequest>(&keys(&[("action", s("delete")), ("id", s(id))]));
        malformed::<ControlRequest>(&keys(&[
            ("action", s("accept")),
            ("ids", array(&[s("web1"), s(id)])),
            ("fingerprint", vec![0xc0]),
        ]));
        malformed::<ControlEvent>(&map(&[
            ("type", s("keys")),
            ("master_fingerprint", s("")),
            (
                "keys",
                array(&[map(&[
                    ("id", s(id)),
                    ("state", s("pending")),
                    ("fingerprint", s("")),
                ])]),
            ),
        ]));
    }
    // Key states come from the closed set.
    let event = |state: &str, extra: bool| {
        let mut key = vec![
            ("id", s("web1")),
            ("state", s(state)),
            ("fingerprint", s("ab:cd")),
        ];
        if extra {
            key.push(("public", bin(&[0; 32])));
        }
        map(&[
            ("type", s("keys")),
            ("master_fingerprint", s("ef:01")),
            ("keys", array(&[map(&key)])),
        ])
    };
    for state in ["pending", "accepted", "rejected", "denied"] {
        assert!(
            decode::<ControlEvent>(&event(state, false)).is_ok(),
            "{state}"
        );
        malformed::<ControlEvent>(&event(state, true));
    }
    for state in ["revoked", "Accepted", "", "unaccepted"] {
        malformed::<ControlEvent>(&event(state, false));
    }
    malformed::<ControlEvent>(&map(&[("type", s("keys")), ("keys", array(&[]))]));
}

proptest! {
    /// No `brine-key` command reaches anything on the network sockets.
    #[test]
    fn key_commands_are_not_minion_requests(x in common::control_keys()) {
        prop_assert!(decode::<MinionRequest>(&encode(&x)).is_err());
        prop_assert!(decode_envelope::<MinionRequest>(&encode_envelope(&x)).is_err());
        prop_assert!(decode::<MasterReply>(&encode(&x)).is_err());
    }

    /// A sealed, handshake or signed envelope never opens as plain, whatever it holds.
    #[test]
    fn secure_envelopes_are_never_read_as_plain(x in common::envelope()) {
        let bytes = encode(&x);
        let result = decode_envelope::<Value>(&bytes);
        if x.v != brine_proto::PROTOCOL_VERSION {
            prop_assert_eq!(result, Err(DecodeError::UnsupportedVersion(x.v)));
        } else if x.kind != BodyKind::Plain {
            prop_assert_eq!(result, Err(DecodeError::WrongKind(x.kind)));
        }
    }
}

/// docs/PROTOCOL.md §12 lists the encodings the Rust decoder accepts although brine never
/// writes them ("accepted, but never send them"). This pins that list, both ways: each one is
/// accepted as the document says, and the look-alikes it does not list are refused.
#[test]
fn documented_leniencies_are_exactly_these() {
    use brine_proto::control::ControlRequest as C;
    let keepalive = MinionRequest::Keepalive { id: web1() };
    // A message as an array of its fields in table order.
    assert_eq!(
        decode::<MinionRequest>(&array(&[s("keepalive"), s("web1")])),
        Ok(keepalive.clone())
    );
    // A closed-set word as the index of its variant (which changes when a variant is added:
    // keepalive was 1 before master_keys came first).
    assert_eq!(
        decode::<MinionRequest>(&map(&[("type", uint(2)), ("id", s("web1"))])),
        Ok(keepalive.clone())
    );
    let kind_as_number = map(&[("v", uint(1)), ("kind", uint(2)), ("body", bin(&[]))]);
    assert_eq!(
        Envelope::from_bytes(&kind_as_number).map(|e| e.kind),
        Ok(BodyKind::Sealed)
    );
    // Bytes given as a str or as an array of small integers.
    let keys = map(&[
        ("type", s("master_keys")),
        ("noise", s("x")),
        ("sign", array(&[uint(1), uint(2)])),
    ]);
    assert_eq!(
        decode::<MasterReply>(&keys),
        Ok(MasterReply::MasterKeys {
            noise: b"x".to_vec(),
            sign: vec![1, 2],
        })
    );
    let body_as_str = map(&[("v", uint(1)), ("kind", s("plain")), ("body", s("\u{c0}"))]);
    assert!(Envelope::from_bytes(&body_as_str).is_ok());
    // A str given as bin holding UTF-8.
    assert_eq!(
        decode::<MinionRequest>(&map(&[("type", s("keepalive")), ("id", bin(b"web1"))])),
        Ok(keepalive)
    );
    // 32-bit floats in values.
    let value = [0xca, 0x3f, 0xc0, 0, 0]; // 1.5 as float 32
    assert_eq!(decode::<Value>(&value), Ok(json!(1.5)));
    // Fields that may be nil, left out: read as nil.
    assert_eq!(
        decode::<C>(&map(&[
            ("type", s("keys")),
            ("action", s("accept")),
            ("ids", array(&[])),
            ("preaccept", vec![0xc2]), // false
        ])),
        Ok(C::Keys(KeyCommand::Accept {
            ids: vec![],
            fingerprint: None,
            preaccept: false,
        }))
    );
    assert_eq!(
        decode::<PublicationHeader>(&without_field(&header(), "jid")).map(|h| h.jid),
        Ok(None)
    );
    let outcome = map(&[("id", s("web1")), ("state", s("waiting"))]);
    assert!(decode::<brine_proto::control::MinionOutcome>(&outcome).is_ok());
    // An envelope's session written as nil.
    let nil_session = envelope_of("plain", Some(vec![0xc0]), &[0xc0]);
    assert_eq!(
        Envelope::from_bytes(&nil_session).map(|e| e.session),
        Ok(None)
    );

    // Not accepted: a duplicated key (the tag included), extra fields anywhere (the target
    // map and the field-less messages included).
    malformed::<MinionRequest>(&map(&[
        ("type", s("keepalive")),
        ("id", s("web1")),
        ("type", s("keepalive")),
    ]));
    malformed::<MinionRequest>(&map(&[
        ("type", s("keepalive")),
        ("id", s("web1")),
        ("id", s("web2")),
    ]));
    malformed::<Target>(&map(&[
        ("type", s("glob")),
        ("expr", s("*")),
        ("x", uint(1)),
    ]));
    malformed::<MasterReply>(&map(&[("type", s("ok")), ("x", uint(1))]));
    malformed::<C>(&map(&[("type", s("minions")), ("x", uint(1))]));
    malformed::<MinionRequest>(&map(&[("type", s("master_keys")), ("x", uint(1))]));
    // Nor a required field left out (only the nil-able ones above may be).
    malformed::<MasterReply>(&without_field(
        &MasterReply::GroupKey {
            epoch: 1,
            key: vec![],
        },
        "epoch",
    ));
}
