//! The body of every fuzz target, in one place.
//!
//! Two users include this file: the cargo-fuzz binaries (`fuzz/fuzz_targets/<name>.rs`, through
//! the `brine-fuzz` library) and the corpus replay test of the workspace
//! (`tests/tests/fuzz_corpus.rs`, with `#[path]`), which runs every file of
//! `fuzz/corpus/<name>/` through [`TARGETS`] on stable Rust. So it may use only what both have:
//! `brine_proto`, `brine_crypto`, `brine_guard`, `tempfile` and std (no serde, hence the macros).
//!
//! Each target takes bytes as a peer (or the owner of a key file) could write them and calls
//! the same public functions the daemons call on them. Nothing may panic. Where a property is
//! cheap to state, the target asserts it too, so the fuzzer finds wrong answers and not only
//! crashes:
//! - every message that decodes encodes again into bytes that decode to the same message;
//! - the guard's ZMTP parser gives the same verdict whatever the split of the stream;
//! - a sealed session message opens exactly once, and any cut, flipped bit or extra byte makes
//!   it fail without breaking the session;
//! - a key file that loads is never rewritten, and a corrupt one is never quoted in the error.
//!
//! The keys are fixed (the constants below), so seeds made with them (`examples/seed_corpus.rs`)
//! get past signature checks, handshakes and decryption, and a crash reproduces from its input.
//! They are test keys, published here: never use them anywhere else.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::sync::OnceLock;

use brine_crypto::{
    initiate, respond, GroupKey, KeyError, MasterKeys, MasterPublic, MinionKeys, Session,
    MASTER_KEY_FILE, MASTER_PUB_FILE, MINION_KEY_FILE,
};
use brine_guard::protocol::{ClientStream, StreamLimits};
use brine_guard::GuardLimits;
use brine_proto::codec::BodyKind;
use brine_proto::control::{ControlEvent, ControlRequest};
use brine_proto::msg::{PublicationHeader, SignedPublication, PUBLICATION_AAD};
use brine_proto::{
    decode, decode_envelope, encode, Envelope, MasterReply, MinionRequest, Publication,
};

/// A fuzz target: bytes in, no panic.
pub type Target = fn(&[u8]);

/// Every target by name: the name of its binary in `fuzz/fuzz_targets/` and of its corpus
/// directory in `fuzz/corpus/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("envelope", envelope),
    ("minion_request", minion_request),
    ("master_reply", master_reply),
    ("publication", publication),
    ("signed_publication", signed_publication),
    ("publication_header", publication_header),
    ("control_request", control_request),
    ("control_event", control_event),
    ("noise_respond", noise_respond),
    ("noise_finish", noise_finish),
    ("session_open", session_open),
    ("group_decrypt", group_decrypt),
    ("signature_verify", signature_verify),
    ("key_file", key_file),
    ("zmtp_stream", zmtp_stream),
    ("master_rep", master_rep),
    ("minion_pub", minion_pub),
];

// ---- the fixed keys ----

/// The master's key file the fuzzers use (test keys, not secret).
pub const MASTER_KEY_TEXT: &str = "\
# brine fuzzing master key: published test key, never use it anywhere else
format: brine-master-key-v1
x25519-secret: 02c1185ea0ca3e06bb8cbf5f204f36d4bc688a9de75a8a009430ebd21f71125e
x25519-public: 53ebe1c5ed87df8e4e6ec30a231352ef25288a00e66a256616e00a0f079b3411
ed25519-secret: b96a4b2ce60979d1030f0433e2238d9fe4ee137c9b89b645afdca3893c840796
ed25519-public: 8966ddc96a00440fa6c9c37b7d0a0840a94a263b61545f5d7069e9cb5732cbcf
";

/// The minion's key file the fuzzers use (test key, not secret).
pub const MINION_KEY_TEXT: &str = "\
# brine fuzzing minion key: published test key, never use it anywhere else
format: brine-minion-key-v1
x25519-secret: a13a2332ba0398800e594863c14d0ce6305f6f4e4af22ff8c8cd808a7735d1ee
x25519-public: 489197224bc36a1a2dcb6f4144882159a5b1b2c8e9fb1fb3fb243e91677bdb05
";

/// The group key epoch and key the fuzzers use.
pub const GROUP_EPOCH: u32 = 7;
pub const GROUP_KEY: [u8; 32] = *b"brine-fuzz group key, not secret";

/// The fixed keys, loaded once per process through the public loaders.
#[derive(Debug)]
pub struct Fixed {
    pub master: MasterKeys,
    pub minion: MinionKeys,
    pub group: GroupKey,
}

pub fn fixed() -> &'static Fixed {
    static FIXED: OnceLock<Fixed> = OnceLock::new();
    FIXED.get_or_init(|| {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let master_dir = key_dir(tmp.path(), "master");
        write_key_file(
            &master_dir.join(MASTER_KEY_FILE),
            MASTER_KEY_TEXT.as_bytes(),
        );
        let minion_dir = key_dir(tmp.path(), "minion");
        write_key_file(
            &minion_dir.join(MINION_KEY_FILE),
            MINION_KEY_TEXT.as_bytes(),
        );
        Fixed {
            master: MasterKeys::load_or_create(&master_dir).expect("the fixed master key loads"),
            minion: MinionKeys::load_or_create(&minion_dir).expect("the fixed minion key loads"),
            group: GroupKey::from_bytes(GROUP_EPOCH, GROUP_KEY),
        }
    })
}

/// A fresh key directory `parent/name`, mode 0700 as the key loaders demand.
fn key_dir(parent: &Path, name: &str) -> std::path::PathBuf {
    let dir = parent.join(name);
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .expect("a key directory");
    dir
}

/// Writes a key file with mode 0600, as the key loaders demand.
fn write_key_file(path: &Path, contents: &[u8]) {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| file.write_all(contents))
        .expect("a key file");
}

/// A live session pair after a real handshake with the fixed keys: (minion's, master's).
pub fn session_pair() -> (Session, Session) {
    let fixed = fixed();
    let (initiator, msg1) =
        initiate(&fixed.minion, &fixed.master.public(), b"hello").expect("initiate");
    let responder = respond(&fixed.master, &msg1).expect("respond");
    let (master_side, msg2) = responder.accept(b"welcome").expect("accept");
    let (minion_side, _) = initiator.finish(&msg2).expect("finish");
    (minion_side, master_side)
}

// ---- messages (crates/proto) ----

/// Decodes `$bytes` as `$ty` with `brine_proto::decode`; a message that decodes must encode
/// again into bytes that decode to the same message. Evaluates to `Option<$ty>`.
macro_rules! decoded {
    ($ty:ty, $bytes:expr) => {
        match decode::<$ty>($bytes) {
            Ok(msg) => {
                same_after_reencoding!($ty, &msg);
                Some(msg)
            }
            Err(_) => None,
        }
    };
}

/// The same for `brine_proto::decode_envelope` (a plain envelope around the message).
macro_rules! decoded_from_envelope {
    ($ty:ty, $bytes:expr) => {
        match decode_envelope::<$ty>($bytes) {
            Ok(msg) => {
                same_after_reencoding!($ty, &msg);
                Some(msg)
            }
            Err(_) => None,
        }
    };
}

macro_rules! same_after_reencoding {
    ($ty:ty, $msg:expr) => {{
        let msg: &$ty = $msg;
        let again = decode::<$ty>(&encode(msg));
        assert_eq!(
            again.as_ref(),
            Ok(msg),
            "a decoded {} does not survive encoding and decoding",
            stringify!($ty)
        );
    }};
}

/// `Envelope::from_bytes`: the outer frame of every message on the master's TCP sockets.
pub fn envelope(data: &[u8]) {
    if let Ok(envelope) = Envelope::from_bytes(data) {
        let again = Envelope::from_bytes(&envelope.to_bytes());
        assert_eq!(
            again.as_ref(),
            Ok(&envelope),
            "an envelope changed on re-encoding"
        );
    }
}

/// What the master's REP socket decodes (plain, or inside a handshake or a session).
pub fn minion_request(data: &[u8]) {
    decoded!(MinionRequest, data);
    decoded_from_envelope!(MinionRequest, data);
}

/// What a minion decodes from the master's answers.
pub fn master_reply(data: &[u8]) {
    decoded!(MasterReply, data);
    decoded_from_envelope!(MasterReply, data);
}

/// A decrypted publication (PUB).
pub fn publication(data: &[u8]) {
    decoded!(Publication, data);
    decoded_from_envelope!(Publication, data);
}

/// The body of a `signed` envelope on PUB, decoded before the signature is checked.
pub fn signed_publication(data: &[u8]) {
    decoded!(SignedPublication, data);
}

/// A publication's header (decoded only after its signature verified, but fuzzed on its own).
pub fn publication_header(data: &[u8]) {
    decoded!(PublicationHeader, data);
}

/// The master's side of the control socket: one frame from a local user (any uid that may
/// connect, not only root).
pub fn control_request(data: &[u8]) {
    decoded!(ControlRequest, data);
}

/// The CLI's side of the control socket.
pub fn control_event(data: &[u8]) {
    decoded!(ControlEvent, data);
}

// ---- the channel (crates/crypto) ----

/// `respond`: the master reads a Noise msg1 from anybody, then decodes its hello as it does.
pub fn noise_respond(data: &[u8]) {
    let Ok(responder) = respond(&fixed().master, data) else {
        return;
    };
    decoded!(MinionRequest, responder.payload());
    let _ = responder.accept(b"error");
}

/// `Initiator::finish`: the minion reads the master's msg2 (from whoever answers on the port).
pub fn noise_finish(data: &[u8]) {
    let fixed = fixed();
    let (initiator, _msg1) =
        initiate(&fixed.minion, &fixed.master.public(), b"hello").expect("initiate");
    if let Ok((_session, payload)) = initiator.finish(data) {
        decoded!(MasterReply, &payload);
    }
}

/// `Session::open`. The first byte picks the game:
/// - even: the rest is a sealed message from a third party, opened by both sides of a live
///   session; it must not open, and the session must still work afterwards;
/// - odd: bits 1-2 pick a tampering, bits 3-7 a repeat count; the next two bytes are the
///   tampering's parameter and the rest, repeated, is a plaintext, sealed by one side and
///   opened (as it is, cut, with a flipped bit, or extended) by the other.
pub fn session_open(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (mut minion, mut master) = session_pair();
    if mode & 1 == 0 {
        assert!(master.open(rest).is_err(), "a forged message opened");
        assert!(minion.open(rest).is_err(), "a forged message opened");
        still_in_step(&mut minion, &mut master);
        still_in_step(&mut master, &mut minion);
        return;
    }
    let (param, payload) = rest.split_at(rest.len().min(2));
    let param = param.iter().fold(0usize, |n, &b| n << 8 | usize::from(b));
    let plaintext = payload.repeat(1 + usize::from(mode >> 3));
    let sealed = minion.seal(&plaintext).expect("seal");
    let tampered = match (mode >> 1) & 3 {
        0 => {
            assert_eq!(master.open(&sealed).as_deref(), Ok(&plaintext[..]));
            assert!(master.open(&sealed).is_err(), "a replayed message opened");
            still_in_step(&mut minion, &mut master);
            return;
        }
        1 => sealed[..param % sealed.len()].to_vec(),
        2 => {
            let mut flipped = sealed.clone();
            let bit = param % (sealed.len() * 8);
            flipped[bit / 8] ^= 1 << (bit % 8);
            flipped
        }
        _ => [&sealed[..], &[param as u8], payload].concat(),
    };
    assert!(master.open(&tampered).is_err(), "a tampered message opened");
    assert_eq!(
        master.open(&sealed).as_deref(),
        Ok(&plaintext[..]),
        "a failed open broke the session"
    );
    still_in_step(&mut master, &mut minion);
}

/// One message from `from` opens at `to`.
fn still_in_step(from: &mut Session, to: &mut Session) {
    let sealed = from.seal(b"still there?").expect("seal");
    assert_eq!(to.open(&sealed).as_deref(), Ok(&b"still there?"[..]));
}

/// `GroupKey::decrypt` with the fixed group key: the first byte (mod 32) is the nonce length,
/// then the nonce, then the ciphertext; a publication that decrypts is decoded.
pub fn group_decrypt(data: &[u8]) {
    let Some((&nonce_len, rest)) = data.split_first() else {
        return;
    };
    let (nonce, ciphertext) = rest.split_at(rest.len().min(usize::from(nonce_len % 32)));
    if let Ok(plaintext) = fixed().group.decrypt(nonce, ciphertext, PUBLICATION_AAD) {
        decoded!(Publication, &plaintext);
    }
}

/// `MasterPublic::verify`: `sig(64) message` against the fixed master key, and
/// `key(32) sig(64) message` against a key from the input (a minion takes the master's keys
/// from the network before it checks their fingerprint).
pub fn signature_verify(data: &[u8]) {
    let (sig, message) = data.split_at(data.len().min(64));
    let _ = fixed().master.public().verify(message, sig);
    if let Some((sign, rest)) = data.split_first_chunk::<32>() {
        let (sig, message) = rest.split_at(rest.len().min(64));
        let key = MasterPublic {
            noise: [0; 32],
            sign: *sign,
        };
        let _ = key.verify(message, sig);
    }
}

/// The key file parser, through the public loaders: the input is written as `minion.key`,
/// `master.key` and `master.pub` (mode 0600 in a 0700 directory) and loaded.
pub fn key_file(data: &[u8]) {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let dir = key_dir(tmp.path(), "keys");
    for name in [MINION_KEY_FILE, MASTER_KEY_FILE, MASTER_PUB_FILE] {
        write_key_file(&dir.join(name), data);
    }
    let minion = MinionKeys::load_or_create(&dir).map(drop);
    let master = MasterKeys::load_or_create(&dir).map(drop);
    let public = MasterPublic::load(&dir.join(MASTER_PUB_FILE)).map(drop);
    for result in [minion, master, public] {
        if let Err(KeyError::Corrupt { reason, .. }) = result {
            for value in secret_looking_values(data) {
                assert!(!reason.contains(value), "a key file error quotes a value");
            }
        }
    }
    for name in [MINION_KEY_FILE, MASTER_KEY_FILE, MASTER_PUB_FILE] {
        let now = fs::read(dir.join(name)).expect("the key file is still there");
        assert!(now == data, "a loader rewrote an existing key file");
    }
}

/// The values of `name: value` lines that look like key material (at least 25 hex digits:
/// longer than any field name an error may show).
fn secret_looking_values(data: &[u8]) -> impl Iterator<Item = &str> {
    std::str::from_utf8(data)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(_, value)| value.trim())
        .filter(|value| value.len() >= 25 && value.bytes().all(|b| b.is_ascii_hexdigit()))
}

// ---- the guard (crates/guard) ----

/// `ClientStream::feed`, the guard's check of a peer's bytes, under the return port's, the
/// publish port's and tiny limits: fed at once, in chunks of a size the first byte picks, and
/// byte by byte, it must give the same verdict and count the same messages.
pub fn zmtp_stream(data: &[u8]) {
    let chunk = 1 + usize::from(data.first().copied().unwrap_or(0) % 16);
    let tiny = StreamLimits {
        max_frame: 16,
        max_frames_per_message: 2,
        max_message: 24,
        max_command: 64,
        max_messages: 3,
        subscriptions_only: false,
        early_messages: 1,
        max_early_message: 8,
    };
    for limits in [
        GuardLimits::return_port().stream(),
        GuardLimits::publish_port().stream(),
        tiny,
    ] {
        let mut whole = ClientStream::new(limits);
        let verdict = whole.feed(data);
        for size in [chunk, 1] {
            let mut split = ClientStream::new(limits);
            let split_verdict = data.chunks(size).try_for_each(|piece| split.feed(piece));
            assert_eq!(split_verdict, verdict, "the verdict depends on the split");
            assert_eq!(split.messages(), whole.messages());
            assert_eq!(split.handshake_done(), whole.handshake_done());
            assert_eq!(split.signature_seen(), whole.signature_seen());
        }
        if let Err(violation) = verdict {
            assert_eq!(
                whole.feed(b"\x00"),
                Err(violation),
                "a refused stream came back"
            );
        }
    }
}

// ---- whole paths, as the daemons walk them ----

/// One frame on the master's REP port, as `brine-master` answers it (crates/master/src/rep.rs)
/// up to the point where it would look the minion up in its store.
pub fn master_rep(data: &[u8]) {
    let Ok(envelope) = Envelope::from_bytes(data) else {
        return;
    };
    match envelope.kind {
        BodyKind::Plain => {
            decoded!(MinionRequest, &envelope.body);
        }
        BodyKind::Handshake => noise_respond(&envelope.body),
        BodyKind::Sealed if envelope.session.is_some() => {
            let (_, mut master) = session_pair();
            if let Ok(plaintext) = master.open(&envelope.body) {
                decoded!(MinionRequest, &plaintext);
            }
        }
        BodyKind::Sealed | BodyKind::Signed => {}
    }
}

/// One message on PUB, as a minion opens it (crates/minion/src/lib.rs, `Minion::open`) with the
/// fixed master key pinned and the fixed group key, without the clock and journal checks.
pub fn minion_pub(data: &[u8]) {
    let fixed = fixed();
    let Ok(envelope) = Envelope::from_bytes(data) else {
        return;
    };
    if envelope.kind != BodyKind::Signed {
        return;
    }
    let Some(signed) = decoded!(SignedPublication, &envelope.body) else {
        return;
    };
    if fixed
        .master
        .public()
        .verify(&signed.header, &signed.sig)
        .is_err()
    {
        return;
    }
    let Some(header) = decoded!(PublicationHeader, &signed.header) else {
        return;
    };
    if header.group_epoch != fixed.group.epoch() {
        return;
    }
    if let Ok(plaintext) = fixed
        .group
        .decrypt(&header.nonce, &header.ciphertext, PUBLICATION_AAD)
    {
        decoded!(Publication, &plaintext);
    }
}
