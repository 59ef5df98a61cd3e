//! Golden fixtures: the wire format of protocol v1, byte for byte, checked in.
//!
//! `tests/golden/v1/<name>.msgpack` holds, built from the fixed values below:
//!
//! - one **message** per variant of every message type (publications, minion requests, master
//!   replies, control requests and events, `brine-key`'s commands), as its bare msgpack: the
//!   bytes a Noise handshake payload, a sealed envelope or the group key's ciphertext carries,
//!   and the payload of one control-socket frame (without the 4-byte length prefix);
//! - one **target** of each kind the fixed jobs do not carry (`target_*`: grain, grain regex,
//!   ipcidr, compound, nodegroup), as its bare msgpack;
//! - the two layers of a publication, `publication_header` (the bytes the master signs) and
//!   `signed_publication` (a signed envelope's body);
//! - one **frame** (`frame_*`) per envelope kind, exactly one ZMQ frame as it travels: plain
//!   (`master_keys` both ways, an error outside a session), handshake, sealed (with its
//!   session) and signed. Handshake and sealed bodies are fixed stand-in bytes (the real ones
//!   are Noise output and differ every time); the signed one holds `signed_publication` with
//!   a fixed stand-in signature and ciphertext.
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
//! Once a release has shipped, an intended change of v1's bytes is a protocol change: bump
//! `PROTOCOL_VERSION`, keep the old fixtures under their version's folder, and update
//! docs/PROTOCOL.md (which quotes some of the files in hex).
//!
//! History: the v1 fixtures were re-blessed once, before the first release, when the security
//! layer was added (envelope kinds `handshake`/`sealed`/`signed` and `session`, `master_keys`,
//! `group_key`, the new `welcome`, signed publications, `brine-key`'s messages; messages are
//! now kept bare beside the frames). No release had shipped, so v1 was not bumped.

use std::collections::BTreeSet;
use std::fmt::{Debug, Write as _};
use std::path::{Path, PathBuf};

use brine_proto::codec::{BodyKind, Envelope};
use brine_proto::control::{
    ActiveJob, ControlError, ControlEvent, ControlRequest, JobQuery, JobReport, JobSummary,
    KeyCommand, KeyInfo, KeySelection, KeyState, MinionOutcome, MinionProgress, MinionState,
    MinionStatus, PublishRequest,
};
use brine_proto::msg::{PublicationHeader, Recipients, ReplyError, SignedPublication, Tick};
use brine_proto::{
    decode, decode_envelope, encode, GrainExpr, Jid, Job, JobReturn, Map, MasterReply, MinionId,
    MinionRequest, Publication, Target, Value,
};
use serde::{de::DeserializeOwned, Serialize};
use serde_json::json;

// ---- the fixed values ----

/// 2026-11-25T13:02:01.123456Z, and the same instant in milliseconds.
const JID: &str = "20261125130201123456";
const T0_MS: u64 = 1_795_611_721_123;
/// An older job, for listings.
const OLD_JID: &str = "20261124090000000001";

/// The session id of the fixed welcome and sealed frame (high bit set: a full uint 64).
const SESSION: u64 = 0x8c3f_52a1_0b7e_d4c9;
/// The fixed group key epoch of the welcome and the publication header.
const EPOCH: u32 = 3;

fn jid() -> Jid {
    Jid::new(JID).unwrap()
}

/// `len` fixed stand-in bytes counting up from `first` (keys, nonces, signatures,
/// ciphertexts: real ones are random).
fn counting(first: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| first.wrapping_add(i as u8)).collect()
}

fn master_noise_key() -> Vec<u8> {
    counting(0x20, 32)
}

fn master_sign_key() -> Vec<u8> {
    counting(0x40, 32)
}

/// A fingerprint in the form the master writes (SHA-256 as colon-separated hex pairs).
fn fingerprint_of(seed: u8) -> String {
    counting(seed, 32)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
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
    let ret = json!({"echoed": "hello", "pid": 4242});
    JobReturn::new(id("web1"), jid(), "test.echo", ret).ran(T0_MS + 5, T0_MS + 17)
}

fn failed_return() -> JobReturn {
    JobReturn::new(
        id("db-2.example.com"),
        jid(),
        "cmd.run",
        "sh: 1: nope: not found",
    )
    .with_outcome(127, false)
    .ran(T0_MS + 6, T0_MS + 9)
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
        MinionRequest::MasterKeys {},
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
        MinionRequest::GroupKey { id: id("web1") },
        MinionRequest::Grains {
            id: id("web1"),
            grains: map(json!({"os": "Debian", "roles": ["web", "cache"]})),
        },
    ]
}

fn master_keys() -> MasterReply {
    MasterReply::MasterKeys {
        noise: master_noise_key(),
        sign: master_sign_key(),
    }
}

fn no_session() -> MasterReply {
    MasterReply::Error {
        code: ReplyError::NoSession,
        message: "no such session: handshake again".into(),
    }
}

fn master_replies() -> Vec<MasterReply> {
    vec![
        master_keys(),
        MasterReply::Welcome {
            session: SESSION,
            master_time_ms: T0_MS,
            keepalive_interval_ms: 30_000,
            tick_interval_ms: 5_000,
            group_epoch: EPOCH,
            group_key: counting(0x00, 32),
        },
        MasterReply::GroupKey {
            epoch: EPOCH + 1,
            key: counting(0x60, 32),
        },
        MasterReply::Ok {},
        MasterReply::Jobs {
            jobs: vec![Job {
                target: Target::List(vec!["web1".into(), "web2".into()]),
                ..job()
            }],
        },
        MasterReply::Error {
            code: ReplyError::NotAccepted,
            message: "the key of web1 (ab:cd:…) is pending on the master".into(),
        },
    ]
}

fn control_requests() -> Vec<ControlRequest> {
    vec![
        ControlRequest::Publish(PublishRequest {
            target: Target::List(vec!["web1".into(), "db-2.example.com".into()]),
            fun: brine_proto::FunctionName::new("cmd.run").unwrap(),
            arg: vec![json!("uptime")],
            kwarg: map(json!({"cwd": "/tmp"})),
            timeout_ms: 10_000,
            wait: true,
        }),
        ControlRequest::LookupJob {
            jid: jid(),
            wait: false,
        },
        ControlRequest::ListJobs(JobQuery::newest(20)),
        ControlRequest::ListJobs(JobQuery {
            limit: 100,
            search_function: Some("test.*".into()),
            search_target: Some("web[!2]*".into()),
            start_time_ms: Some(T0_MS - 3_600_000),
            end_time_ms: Some(T0_MS),
        }),
        ControlRequest::ActiveJobs {},
        ControlRequest::Minions {},
        ControlRequest::MatchTarget {
            target: Target::Grain(GrainExpr::new("role:web")),
        },
        ControlRequest::Keys(KeyCommand::List {}),
        ControlRequest::Keys(KeyCommand::Accept {
            ids: vec![id("web1"), id("db-2.example.com")],
            fingerprint: Some(fingerprint_of(0xa0)),
            preaccept: false,
        }),
        ControlRequest::Keys(KeyCommand::Reject(KeySelection::id(&id("web2")))),
        ControlRequest::Keys(KeyCommand::Delete(KeySelection {
            ids: vec!["web3".into(), "db*".into()],
            states: vec![KeyState::Pending, KeyState::Preaccepted],
        })),
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
        ControlEvent::Running { minion: id("web3") },
        ControlEvent::StillRunning {
            minions: vec![id("web3")],
            wait_ms: 3_600_000,
        },
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
        ControlEvent::ActiveJobs {
            jobs: vec![ActiveJob {
                jid: jid(),
                fun: "test.sleep".into(),
                target: Target::Glob("web*".into()),
                user: "root".into(),
                published_ms: T0_MS,
                minions: vec![
                    MinionProgress {
                        id: id("web1"),
                        state: MinionState::Returned,
                    },
                    MinionProgress {
                        id: id("web2"),
                        state: MinionState::Running,
                    },
                    MinionProgress {
                        id: id("web3"),
                        state: MinionState::Waiting,
                    },
                ],
            }],
            omitted: 2,
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
            no_key: vec![],
        },
        ControlEvent::Keys {
            master_fingerprint: fingerprint_of(0x80),
            keys: vec![
                KeyInfo {
                    id: id("db-2.example.com"),
                    state: KeyState::Pending,
                    fingerprint: fingerprint_of(0xc0),
                },
                KeyInfo {
                    id: id("web1"),
                    state: KeyState::Accepted,
                    fingerprint: fingerprint_of(0xa0),
                },
                KeyInfo {
                    id: id("web1"),
                    state: KeyState::Denied,
                    fingerprint: fingerprint_of(0xe0),
                },
                KeyInfo {
                    id: id("web2"),
                    state: KeyState::Rejected,
                    fingerprint: fingerprint_of(0x10),
                },
            ],
        },
        ControlEvent::Error {
            code: ControlError::NoMinions,
            message: "target web9* matched no minion".into(),
        },
    ]
}

// ---- the security layer's wrappings ----

fn publication_header() -> PublicationHeader {
    PublicationHeader {
        group_epoch: EPOCH,
        jid: Some(jid()),
        to: Some(Recipients::of(&[id("web1"), id("db-2.example.com")])),
        expires_ms: T0_MS + 60_000,
        master_time_ms: T0_MS,
        nonce: counting(0x80, 24),
        ciphertext: counting(0xa0, 40),
    }
}

fn signed_publication() -> SignedPublication {
    SignedPublication {
        header: encode(&publication_header()),
        sig: counting(0xc0, 64),
    }
}

/// The frames: one per envelope kind, and the plain ones for each message that travels plain.
fn frames() -> Vec<(&'static str, Envelope)> {
    let plain = |body: Vec<u8>| Envelope::new(BodyKind::Plain, None, body);
    // A sealed keepalive is one chunk: its 2-byte length (44 = 4 + 24 + 16) then the chunk.
    let mut sealed = vec![0x00, 0x2c];
    sealed.extend(counting(0xd0, 44));
    vec![
        (
            "frame_plain_master_keys_request",
            plain(encode(&MinionRequest::MasterKeys {})),
        ),
        (
            "frame_plain_master_keys_reply",
            plain(encode(&master_keys())),
        ),
        ("frame_plain_error", plain(encode(&no_session()))),
        (
            "frame_handshake",
            Envelope::new(BodyKind::Handshake, None, counting(0x30, 48)),
        ),
        (
            "frame_sealed",
            Envelope::new(BodyKind::Sealed, Some(SESSION), sealed),
        ),
        (
            "frame_signed",
            Envelope::new(BodyKind::Signed, None, encode(&signed_publication())),
        ),
    ]
}

// ---- naming: one fixture per variant ----

/// A top-level message type and the file name of each of its variants.
///
/// The matches have no wildcard on purpose: a new variant does not compile until it is named
/// here, and then the test asks for its fixture.
trait Wire: Serialize + DeserializeOwned + PartialEq + Debug + Clone + 'static {
    fn name(&self) -> &'static str;
}

impl Wire for Publication {
    fn name(&self) -> &'static str {
        match self {
            Publication::Job(_) => "publication_job",
            Publication::Tick(_) => "publication_tick",
        }
    }
}

impl Wire for MinionRequest {
    fn name(&self) -> &'static str {
        match self {
            MinionRequest::MasterKeys {} => "minion_request_master_keys",
            MinionRequest::Hello { .. } => "minion_request_hello",
            MinionRequest::Keepalive { .. } => "minion_request_keepalive",
            MinionRequest::Pending { .. } => "minion_request_pending",
            MinionRequest::Receipt { .. } => "minion_request_receipt",
            MinionRequest::Return(_) => "minion_request_return",
            MinionRequest::Goodbye { .. } => "minion_request_goodbye",
            MinionRequest::GroupKey { .. } => "minion_request_group_key",
            MinionRequest::Grains { .. } => "minion_request_grains",
        }
    }
}

impl Wire for MasterReply {
    fn name(&self) -> &'static str {
        match self {
            MasterReply::MasterKeys { .. } => "master_reply_master_keys",
            MasterReply::Welcome { .. } => "master_reply_welcome",
            MasterReply::GroupKey { .. } => "master_reply_group_key",
            MasterReply::Ok {} => "master_reply_ok",
            MasterReply::Jobs { .. } => "master_reply_jobs",
            MasterReply::Error { .. } => "master_reply_error",
        }
    }
}

impl Wire for ControlRequest {
    fn name(&self) -> &'static str {
        match self {
            ControlRequest::Publish(_) => "control_request_publish",
            ControlRequest::LookupJob { .. } => "control_request_lookup_job",
            ControlRequest::ListJobs(query) if query.is_unfiltered() => "control_request_list_jobs",
            ControlRequest::ListJobs(_) => "control_request_list_jobs_filtered",
            ControlRequest::ActiveJobs {} => "control_request_active_jobs",
            ControlRequest::Minions {} => "control_request_minions",
            ControlRequest::MatchTarget { .. } => "control_request_match_target",
            ControlRequest::Keys(KeyCommand::List {}) => "control_request_keys_list",
            ControlRequest::Keys(KeyCommand::Accept { .. }) => "control_request_keys_accept",
            ControlRequest::Keys(KeyCommand::Reject { .. }) => "control_request_keys_reject",
            ControlRequest::Keys(KeyCommand::Delete { .. }) => "control_request_keys_delete",
        }
    }
}

impl Wire for ControlEvent {
    fn name(&self) -> &'static str {
        match self {
            ControlEvent::Published { .. } => "control_event_published",
            ControlEvent::Return(_) => "control_event_return",
            ControlEvent::Running { .. } => "control_event_running",
            ControlEvent::StillRunning { .. } => "control_event_still_running",
            ControlEvent::Done(_) => "control_event_done",
            ControlEvent::Jobs { .. } => "control_event_jobs",
            ControlEvent::ActiveJobs { .. } => "control_event_active_jobs",
            ControlEvent::Minions { .. } => "control_event_minions",
            ControlEvent::Keys { .. } => "control_event_keys",
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

/// A bare value: its encoding, decoded with `decode`.
fn bare<T>(name: &'static str, value: T) -> Fixture
where
    T: Serialize + DeserializeOwned + PartialEq + Debug + 'static,
{
    Fixture {
        name,
        encoded: encode(&value),
        decodes_to_value: Box::new(move |bytes| match decode::<T>(bytes) {
            Ok(v) if v == value => Ok(()),
            Ok(v) => Err(format!("decodes to {v:?}, not {value:?}")),
            Err(e) => Err(format!("does not decode: {e}")),
        }),
    }
}

fn fixture<T: Wire>(value: T) -> Fixture {
    bare(value.name(), value)
}

/// A frame: decoded with `Envelope::from_bytes` (what a socket's reader runs first).
fn frame(name: &'static str, envelope: Envelope) -> Fixture {
    Fixture {
        name,
        encoded: envelope.to_bytes(),
        decodes_to_value: Box::new(move |bytes| match Envelope::from_bytes(bytes) {
            Ok(e) if e == envelope => Ok(()),
            Ok(e) => Err(format!("decodes to {e:?}, not {envelope:?}")),
            Err(e) => Err(format!("does not decode: {e}")),
        }),
    }
}

/// One target of each kind beyond the glob, list and regex the jobs above carry.
fn targets() -> Vec<(&'static str, Target)> {
    vec![
        ("target_grain", Target::Grain(GrainExpr::new("os:Debian"))),
        (
            "target_grain_pcre",
            Target::GrainPcre(GrainExpr {
                pattern: "pkg;apache;2\\.4.*".into(),
                delimiter: ';',
            }),
        ),
        ("target_ipcidr", Target::Ipcidr("10.0.0.0/8".into())),
        (
            "target_compound",
            Target::Compound("web* and G@os:Debian or (L@db1,db2 and not E@db2$)".into()),
        ),
        ("target_nodegroup", Target::Nodegroup("webservers".into())),
    ]
}

fn fixtures() -> Vec<Fixture> {
    let mut all = Vec::new();
    all.extend(targets().into_iter().map(|(name, t)| bare(name, t)));
    all.extend(publications().into_iter().map(fixture));
    all.extend(minion_requests().into_iter().map(fixture));
    all.extend(master_replies().into_iter().map(fixture));
    all.extend(control_requests().into_iter().map(fixture));
    all.extend(control_events().into_iter().map(fixture));
    all.push(bare("publication_header", publication_header()));
    all.push(bare("signed_publication", signed_publication()));
    all.extend(frames().into_iter().map(|(name, e)| frame(name, e)));
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

/// The frames hold what their names say, read the way a peer reads them.
#[test]
fn frames_hold_their_messages() {
    let read = |name: &str| std::fs::read(dir().join(format!("{name}.msgpack"))).unwrap();
    assert_eq!(
        decode_envelope::<MinionRequest>(&read("frame_plain_master_keys_request")),
        Ok(MinionRequest::MasterKeys {})
    );
    assert_eq!(
        decode_envelope::<MasterReply>(&read("frame_plain_master_keys_reply")),
        Ok(master_keys())
    );
    assert_eq!(
        decode_envelope::<MasterReply>(&read("frame_plain_error")),
        Ok(no_session())
    );
    // The plain frames' bodies are the bare message fixtures.
    let body = |name: &str| Envelope::from_bytes(&read(name)).unwrap().body;
    assert_eq!(
        body("frame_plain_master_keys_request"),
        read("minion_request_master_keys")
    );
    assert_eq!(
        body("frame_plain_master_keys_reply"),
        read("master_reply_master_keys")
    );
    // Handshake and sealed bodies are opened by the Noise layer, never by decode_envelope.
    for (name, kind) in [
        ("frame_handshake", BodyKind::Handshake),
        ("frame_sealed", BodyKind::Sealed),
        ("frame_signed", BodyKind::Signed),
    ] {
        assert_eq!(
            decode_envelope::<Value>(&read(name)),
            Err(brine_proto::DecodeError::WrongKind(kind))
        );
    }
    assert_eq!(
        Envelope::from_bytes(&read("frame_sealed")).unwrap().session,
        Some(SESSION)
    );
    // signed → SignedPublication → header bytes (what the signature covers) → header.
    let signed: SignedPublication = decode(&body("frame_signed")).unwrap();
    assert_eq!(encode(&signed), read("signed_publication"));
    assert_eq!(signed.header, read("publication_header"));
    assert_eq!(decode(&signed.header), Ok(publication_header()));
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
        (ReplyError::NotAccepted, "not_accepted"),
        (ReplyError::Rejected, "rejected"),
        (ReplyError::NoSession, "no_session"),
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
        (ControlError::Denied, "denied"),
        (ControlError::Busy, "busy"),
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
        (MinionState::Interrupted, "interrupted"),
        (MinionState::Rejected, "rejected"),
        (MinionState::NoKey, "no_key"),
        (MinionState::NotRun, "not_run"),
    ];
    for (x, w) in states {
        assert_eq!(word(x), w);
        // The name the store and the CLI use is serde's.
        assert_eq!((x.name(), MinionState::from_name(w)), (w, Some(x)));
    }
    assert_eq!(MinionState::ALL.len(), states.len());
    let kinds = [
        (BodyKind::Plain, "plain"),
        (BodyKind::Handshake, "handshake"),
        (BodyKind::Sealed, "sealed"),
        (BodyKind::Signed, "signed"),
    ];
    for (x, w) in kinds {
        assert_eq!(word(x), w);
    }
    let key_states = [
        (KeyState::Pending, "pending"),
        (KeyState::Accepted, "accepted"),
        (KeyState::Rejected, "rejected"),
        (KeyState::Denied, "denied"),
        (KeyState::Preaccepted, "preaccepted"),
    ];
    for (x, w) in key_states {
        assert_eq!(word(x), w);
        assert_eq!((x.name(), KeyState::from_name(w)), (w, Some(x)));
    }
    assert_eq!(KeyState::ALL.len(), key_states.len());
    // The tags of tagged messages: `type`, and `action` for brine-key's commands.
    fn tag<T: Serialize>(x: &T, field: &str) -> String {
        #[derive(serde::Deserialize)]
        struct Tags {
            #[serde(rename = "type")]
            type_: Option<String>,
            action: Option<String>,
        }
        let tags: Tags = rmp_serde::from_slice(&encode(x)).unwrap();
        match field {
            "type" => tags.type_,
            _ => tags.action,
        }
        .unwrap_or_default()
    }
    let key_actions = [
        (KeyCommand::List {}, "list"),
        (
            KeyCommand::Accept {
                ids: vec![],
                fingerprint: None,
                preaccept: false,
            },
            "accept",
        ),
        (KeyCommand::Reject(KeySelection::id(&id("web1"))), "reject"),
        (KeyCommand::Delete(KeySelection::id(&id("web1"))), "delete"),
    ];
    for (x, w) in key_actions {
        assert_eq!(tag(&ControlRequest::Keys(x.clone()), "action"), w);
        assert_eq!(tag(&ControlRequest::Keys(x.clone()), "type"), "keys");
        assert_eq!(tag(&x, "action"), w);
    }
    let request_types = [
        (MinionRequest::MasterKeys {}, "master_keys"),
        (MinionRequest::GroupKey { id: id("web1") }, "group_key"),
        (
            MinionRequest::Grains {
                id: id("web1"),
                grains: Map::new(),
            },
            "grains",
        ),
        (MinionRequest::Keepalive { id: id("web1") }, "keepalive"),
    ];
    for (x, w) in request_types {
        assert_eq!(tag(&x, "type"), w);
    }
    let reply_types = [
        (master_keys(), "master_keys"),
        (
            MasterReply::GroupKey {
                epoch: 0,
                key: vec![],
            },
            "group_key",
        ),
        (no_session(), "error"),
    ];
    for (x, w) in reply_types {
        assert_eq!(tag(&x, "type"), w);
    }
    let keys_event = ControlEvent::Keys {
        master_fingerprint: String::new(),
        keys: vec![],
    };
    assert_eq!(tag(&keys_event, "type"), "keys");
    for (target, tag) in [
        (Target::Glob("*".into()), "glob"),
        (Target::List(vec![]), "list"),
        (Target::Regex(".".into()), "regex"),
        (Target::Grain(GrainExpr::new("a:b")), "grain"),
        (Target::GrainPcre(GrainExpr::new("a:b")), "grain_pcre"),
        (Target::Ipcidr("::1".into()), "ipcidr"),
        (Target::Compound("a".into()), "compound"),
        (Target::Nodegroup("a".into()), "nodegroup"),
    ] {
        let tree: Value = rmp_serde::from_slice(&encode(&target)).unwrap();
        assert_eq!(tree["type"], tag);
    }
}
