//! Golden fixtures: the wire format of protocol v1, byte for byte, checked in.
//!
//! `tests/golden/v1/<name>.msgpack` holds one message per variant, built from the fixed values
//! below, exactly as it travels: network messages (publications, minion requests, master
//! replies) inside their envelope, as one ZMQ frame; control messages bare, as the payload of
//! one control-socket frame (without the 4-byte length prefix).
//!
//! The test encodes the fixed values and demands the same bytes as the file, and decodes the
//! file and demands the same value, so that any change of the wire format fails here first.
//!
//! To regenerate the files after an intended change of the format:
//!
//! ```sh
//! BRINE_BLESS=1 cargo test -p brine-proto --test golden
//! ```
//!
//! An intended change of v1's bytes is a protocol change: bump `PROTOCOL_VERSION`, keep the old
//! fixtures under their version's folder, and update docs/PROTOCOL.md (which quotes two of the
//! files in hex).

use std::collections::BTreeSet;
use std::fmt::{Debug, Write as _};
use std::path::{Path, PathBuf};

use brine_proto::codec::BodyKind;
use brine_proto::control::{
    ControlError, ControlEvent, ControlRequest, JobReport, JobSummary, MinionOutcome, MinionState,
    MinionStatus, PublishRequest,
};
use brine_proto::msg::{ReplyError, Tick};
use brine_proto::{
    decode, decode_envelope, encode, encode_envelope, Jid, Job, JobReturn, Map, MasterReply,
    MinionId, MinionRequest, Publication, Target, Value,
};
use serde::{de::DeserializeOwned, Serialize};
use serde_json::json;

// ---- the fixed values ----

/// 2026-11-25T13:02:01.123456Z, and the same instant in milliseconds.
const JID: &str = "20261125130201123456";
const T0_MS: u64 = 1_795_611_721_123;
/// An older job, for listings.
const OLD_JID: &str = "20261124090000000001";

fn jid() -> Jid {
    Jid::new(JID).unwrap()
}

fn id(s: &str) -> MinionId {
    MinionId::new(s).unwrap()
}

fn map(value: Value) -> Map {
    match value {
        Value::Object(m) => m,
        other => panic!("not a map: {other}"),
    }
}

fn job() -> Job {
    Job {
        jid: jid(),
        target: Target::Glob("web*".into()),
        fun: "test.echo".into(),
        arg: vec![
            json!("hello"),
            json!(42),
            json!(-7),
            json!(1.5),
            json!(true),
            json!(null),
            json!([1, "two"]),
        ],
        kwarg: map(json!({"retries": 3, "verbose": false})),
        timeout_ms: 30_000,
        expires_ms: T0_MS + 60_000,
        master_time_ms: T0_MS,
        user: "root".into(),
    }
}

fn job_return() -> JobReturn {
    JobReturn {
        id: id("web1"),
        jid: jid(),
        fun: "test.echo".into(),
        ret: json!({"echoed": "hello", "pid": 4242}),
        retcode: 0,
        success: true,
        started_ms: T0_MS + 5,
        finished_ms: T0_MS + 17,
    }
}

fn failed_return() -> JobReturn {
    JobReturn {
        id: id("db-2.example.com"),
        jid: jid(),
        fun: "cmd.run".into(),
        ret: json!("sh: 1: nope: not found"),
        retcode: 127,
        success: false,
        started_ms: T0_MS + 6,
        finished_ms: T0_MS + 9,
    }
}

fn publications() -> Vec<Publication> {
    vec![
        Publication::Job(job()),
        Publication::Tick(Tick {
            seq: 7,
            master_time_ms: T0_MS,
            tick_interval_ms: 5_000,
        }),
    ]
}

fn minion_requests() -> Vec<MinionRequest> {
    vec![
        MinionRequest::Hello {
            id: id("web1"),
            version: "0.1.0".into(),
            grains: map(json!({"kernel": "Linux", "num_cpus": 2, "os": "Debian"})),
        },
        MinionRequest::Keepalive { id: id("web1") },
        MinionRequest::Pending { id: id("web1") },
        MinionRequest::Receipt {
            id: id("web1"),
            jid: jid(),
        },
        MinionRequest::Return(job_return()),
        MinionRequest::Goodbye { id: id("web1") },
    ]
}

fn master_replies() -> Vec<MasterReply> {
    vec![
        MasterReply::Welcome {
            master_time_ms: T0_MS,
            keepalive_interval_ms: 30_000,
            tick_interval_ms: 5_000,
        },
        MasterReply::Ok {},
        MasterReply::Jobs {
            jobs: vec![Job {
                target: Target::List(vec!["web1".into(), "web2".into()]),
                ..job()
            }],
        },
        MasterReply::Error {
            code: ReplyError::UnknownMinion,
            message: "unknown minion web1: say hello first".into(),
        },
    ]
}

fn control_requests() -> Vec<ControlRequest> {
    vec![
        ControlRequest::Publish(PublishRequest {
            target: Target::List(vec!["web1".into(), "db-2.example.com".into()]),
            fun: "cmd.run".into(),
            arg: vec![json!("uptime")],
            kwarg: map(json!({"cwd": "/tmp"})),
            timeout_ms: 10_000,
            wait: true,
        }),
        ControlRequest::LookupJob {
            jid: jid(),
            wait: false,
        },
        ControlRequest::ListJobs { limit: 20 },
        ControlRequest::Minions {},
    ]
}

fn control_events() -> Vec<ControlEvent> {
    let outcome = |name: &str, state, ret| MinionOutcome {
        id: id(name),
        state,
        ret,
    };
    vec![
        ControlEvent::Published {
            jid: jid(),
            minions: vec![id("db-2.example.com"), id("web1")],
        },
        ControlEvent::Return(failed_return()),
        ControlEvent::Done(JobReport {
            jid: jid(),
            fun: "test.echo".into(),
            target: Target::Regex("web|db".into()),
            arg: vec![json!("hello")],
            kwarg: Map::new(),
            user: "root".into(),
            published_ms: T0_MS,
            deadline_ms: T0_MS + 30_000,
            minions: vec![
                outcome("web1", MinionState::Returned, Some(job_return())),
                outcome("web2", MinionState::NoResponse, None),
                outcome("web3", MinionState::NotConnected, None),
            ],
        }),
        ControlEvent::Jobs {
            jobs: vec![
                JobSummary {
                    jid: jid(),
                    fun: "test.echo".into(),
                    target: Target::Glob("web*".into()),
                    user: "root".into(),
                    published_ms: T0_MS,
                    expected: 3,
                    returned: 1,
                },
                JobSummary {
                    jid: Jid::new(OLD_JID).unwrap(),
                    fun: "test.ping".into(),
                    target: Target::Regex("db[0-9]+".into()),
                    user: "alice".into(),
                    published_ms: T0_MS - 100_921_122,
                    expected: 0,
                    returned: 0,
                },
            ],
        },
        ControlEvent::Minions {
            minions: vec![
                MinionStatus {
                    id: id("web1"),
                    connected: true,
                    last_seen_ms: T0_MS,
                    version: "0.1.0".into(),
                },
                MinionStatus {
                    id: id("web2"),
                    connected: false,
                    last_seen_ms: T0_MS - 3_600_000,
                    version: "0.1.0".into(),
                },
            ],
        },
        ControlEvent::Error {
            code: ControlError::NoMinions,
            message: "target web9* matched no minion".into(),
        },
    ]
}

// ---- naming: one fixture per variant ----

/// A top-level message type, how it travels, and the file name of each of its variants.
///
/// The matches have no wildcard on purpose: a new variant does not compile until it is named
/// here, and then the test asks for its fixture.
trait Wire: Serialize + DeserializeOwned + PartialEq + Debug + Clone + 'static {
    /// Network messages travel in an envelope; control messages do not.
    const ENVELOPED: bool;
    fn name(&self) -> &'static str;
}

impl Wire for Publication {
    const ENVELOPED: bool = true;
    fn name(&self) -> &'static str {
        match self {
            Publication::Job(_) => "publication_job",
            Publication::Tick(_) => "publication_tick",
        }
    }
}

impl Wire for MinionRequest {
    const ENVELOPED: bool = true;
    fn name(&self) -> &'static str {
        match self {
            MinionRequest::Hello { .. } => "minion_request_hello",
            MinionRequest::Keepalive { .. } => "minion_request_keepalive",
            MinionRequest::Pending { .. } => "minion_request_pending",
            MinionRequest::Receipt { .. } => "minion_request_receipt",
            MinionRequest::Return(_) => "minion_request_return",
            MinionRequest::Goodbye { .. } => "minion_request_goodbye",
        }
    }
}

impl Wire for MasterReply {
    const ENVELOPED: bool = true;
    fn name(&self) -> &'static str {
        match self {
            MasterReply::Welcome { .. } => "master_reply_welcome",
            MasterReply::Ok {} => "master_reply_ok",
            MasterReply::Jobs { .. } => "master_reply_jobs",
            MasterReply::Error { .. } => "master_reply_error",
        }
    }
}

impl Wire for ControlRequest {
    const ENVELOPED: bool = false;
    fn name(&self) -> &'static str {
        match self {
            ControlRequest::Publish(_) => "control_request_publish",
            ControlRequest::LookupJob { .. } => "control_request_lookup_job",
            ControlRequest::ListJobs { .. } => "control_request_list_jobs",
            ControlRequest::Minions {} => "control_request_minions",
        }
    }
}

impl Wire for ControlEvent {
    const ENVELOPED: bool = false;
    fn name(&self) -> &'static str {
        match self {
            ControlEvent::Published { .. } => "control_event_published",
            ControlEvent::Return(_) => "control_event_return",
            ControlEvent::Done(_) => "control_event_done",
            ControlEvent::Jobs { .. } => "control_event_jobs",
            ControlEvent::Minions { .. } => "control_event_minions",
            ControlEvent::Error { .. } => "control_event_error",
        }
    }
}

/// Whether bytes decode to a fixture's value, and if not, why.
type DecodeCheck = Box<dyn Fn(&[u8]) -> Result<(), String>>;

/// One fixture: its name, the bytes this build writes, and a check that bytes decode to the
/// fixed value.
struct Fixture {
    name: &'static str,
    encoded: Vec<u8>,
    decodes_to_value: DecodeCheck,
}

fn fixture<T: Wire>(value: T) -> Fixture {
    let encoded = if T::ENVELOPED {
        encode_envelope(&value)
    } else {
        encode(&value)
    };
    Fixture {
        name: value.name(),
        encoded,
        decodes_to_value: Box::new(move |bytes| {
            let decoded = if T::ENVELOPED {
                decode_envelope::<T>(bytes)
            } else {
                decode::<T>(bytes)
            };
            match decoded {
                Ok(v) if v == value => Ok(()),
                Ok(v) => Err(format!("decodes to {v:?}, not {value:?}")),
                Err(e) => Err(format!("does not decode: {e}")),
            }
        }),
    }
}

fn fixtures() -> Vec<Fixture> {
    let mut all = Vec::new();
    all.extend(publications().into_iter().map(fixture));
    all.extend(minion_requests().into_iter().map(fixture));
    all.extend(master_replies().into_iter().map(fixture));
    all.extend(control_requests().into_iter().map(fixture));
    all.extend(control_events().into_iter().map(fixture));
    all
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/v1")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn blessing() -> bool {
    std::env::var_os("BRINE_BLESS").is_some_and(|v| v == "1")
}

// ---- the tests ----

#[test]
fn fixtures_match_this_build() {
    let fixtures = fixtures();
    let names: BTreeSet<_> = fixtures.iter().map(|f| f.name).collect();
    assert_eq!(names.len(), fixtures.len(), "two fixtures share a name");

    if blessing() {
        std::fs::create_dir_all(dir()).unwrap();
        for f in &fixtures {
            std::fs::write(dir().join(format!("{}.msgpack", f.name)), &f.encoded).unwrap();
        }
    }

    let mut failures = Vec::new();
    for f in &fixtures {
        let path = dir().join(format!("{}.msgpack", f.name));
        let Ok(on_disk) = std::fs::read(&path) else {
            failures.push(format!(
                "{}: missing; write it with BRINE_BLESS=1 cargo test -p brine-proto --test golden",
                path.display()
            ));
            continue;
        };
        if on_disk != f.encoded {
            failures.push(format!(
                "{}: this build writes different bytes\n  file:  {}\n  build: {}",
                f.name,
                hex(&on_disk),
                hex(&f.encoded)
            ));
        }
        if let Err(why) = (f.decodes_to_value)(&on_disk) {
            failures.push(format!("{}: the checked-in file {why}", f.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn no_stale_fixtures() {
    let names: BTreeSet<String> = fixtures().iter().map(|f| f.name.to_string()).collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|n| n.strip_suffix(".msgpack").map(String::from))
        .collect();
    let stale: Vec<_> = on_disk.difference(&names).collect();
    assert!(stale.is_empty(), "fixtures no test writes: {stale:?}");
}

#[test]
fn every_truncated_fixture_is_an_error() {
    for f in fixtures() {
        for len in 0..f.encoded.len() {
            assert!(
                (f.decodes_to_value)(&f.encoded[..len]).is_err(),
                "{} cut to {len} bytes is accepted",
                f.name
            );
        }
    }
}

/// The words of every closed set on the wire, pinned one by one (the fixtures show only some).
#[test]
fn closed_sets_spell_as_documented() {
    fn word<T: Serialize>(x: T) -> String {
        rmp_serde::from_slice::<String>(&encode(&x)).unwrap()
    }
    let reply_errors = [
        (ReplyError::Malformed, "malformed"),
        (ReplyError::UnknownMinion, "unknown_minion"),
        (ReplyError::Unavailable, "unavailable"),
        (ReplyError::Refused, "refused"),
    ];
    for (x, w) in reply_errors {
        assert_eq!(word(x), w);
    }
    let control_errors = [
        (ControlError::BadRequest, "bad_request"),
        (ControlError::NoMinions, "no_minions"),
        (ControlError::NotFound, "not_found"),
        (ControlError::Storage, "storage"),
        (ControlError::ShuttingDown, "shutting_down"),
    ];
    for (x, w) in control_errors {
        assert_eq!(word(x), w);
    }
    let states = [
        (MinionState::Returned, "returned"),
        (MinionState::Running, "running"),
        (MinionState::Waiting, "waiting"),
        (MinionState::NoResponse, "no_response"),
        (MinionState::NotConnected, "not_connected"),
    ];
    for (x, w) in states {
        assert_eq!(word(x), w);
    }
    assert_eq!(word(BodyKind::Plain), "plain");
    for (target, tag) in [
        (Target::Glob("*".into()), "glob"),
        (Target::List(vec![]), "list"),
        (Target::Regex(".".into()), "regex"),
    ] {
        let tree: Value = rmp_serde::from_slice(&encode(&target)).unwrap();
        assert_eq!(tree["type"], tag);
    }
}
