//! Writes the seed inputs of every target into `fuzz/corpus/<target>/seed-<name>`: the golden
//! fixtures of `crates/proto/tests/golden/v1/`, and valid messages made with the fixed keys of
//! `src/targets.rs` (signed publications, Noise handshakes, sealed messages, key files, ZMTP
//! streams), so the fuzzers start past the checks a random input never passes.
//!
//! ```sh
//! cd fuzz && cargo run --example seed_corpus
//! ```
//!
//! Handshakes and nonces are random, so a rerun rewrites some seeds with other (equally valid)
//! bytes; the names stay the same.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use brine_crypto::{initiate, respond, MasterPublic, MinionKeys};
use brine_fuzz::targets::{fixed, session_pair, MASTER_KEY_TEXT, MINION_KEY_TEXT, TARGETS};
use brine_proto::codec::BodyKind;
use brine_proto::msg::{PublicationHeader, SignedPublication, PUBLICATION_AAD};
use brine_proto::{decode, encode, Envelope, Publication};

type Seeds = BTreeMap<&'static str, Vec<(String, Vec<u8>)>>;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// The golden fixtures by name (without `.msgpack`).
fn golden() -> BTreeMap<String, Vec<u8>> {
    let dir = fuzz_dir().join("../crates/proto/tests/golden/v1");
    fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            (name, fs::read(&path).unwrap())
        })
        .collect()
}

fn envelope(kind: BodyKind, session: Option<u64>, body: Vec<u8>) -> Vec<u8> {
    Envelope::new(kind, session, body).to_bytes()
}

/// A publication signed with the fixed master key and sealed with the fixed group key:
/// (header bytes, signed publication bytes, signed envelope).
fn signed(publication: &Publication) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let fixed = fixed();
    let (nonce, ciphertext) = fixed.group.encrypt(&encode(publication), PUBLICATION_AAD);
    let jid = match publication {
        Publication::Job(job) => Some(job.jid.clone()),
        Publication::Tick(_) => None,
    };
    let header = encode(&PublicationHeader {
        group_epoch: fixed.group.epoch(),
        jid,
        to: None,
        expires_ms: u64::MAX / 2,
        master_time_ms: 1_795_611_721_123,
        nonce: nonce.to_vec(),
        ciphertext,
    });
    let sig = fixed.master.sign(&header).to_vec();
    let body = encode(&SignedPublication {
        header: header.clone(),
        sig,
    });
    let frame = envelope(BodyKind::Signed, None, body.clone());
    (header, body, frame)
}

/// A ZMTP 3.1 greeting with the NULL mechanism, as a client sends it.
fn greeting() -> Vec<u8> {
    let mut g = vec![0u8; 64];
    g[0] = 0xff;
    g[9] = 0x7f;
    g[10] = 3;
    g[11] = 1;
    g[12..16].copy_from_slice(b"NULL");
    g
}

/// The READY command with `Socket-Type: socket_type` (and an empty identity, as libzmq sends).
fn ready(socket_type: &[u8]) -> Vec<u8> {
    let mut body = vec![5];
    body.extend_from_slice(b"READY");
    for (name, value) in [(&b"Socket-Type"[..], socket_type), (b"Identity", b"")] {
        body.push(name.len() as u8);
        body.extend_from_slice(name);
        body.extend_from_slice(&(value.len() as u32).to_be_bytes());
        body.extend_from_slice(value);
    }
    [vec![0x04, body.len() as u8], body].concat()
}

/// One message frame (`more`: another frame of the message follows).
fn zmtp_frame(body: &[u8], more: bool) -> Vec<u8> {
    let more = u8::from(more);
    let mut out = if body.len() > 255 {
        let mut h = vec![0x02 | more];
        h.extend_from_slice(&(body.len() as u64).to_be_bytes());
        h
    } else {
        vec![more, body.len() as u8]
    };
    out.extend_from_slice(body);
    out
}

fn add(seeds: &mut Seeds, target: &'static str, name: impl Into<String>, bytes: Vec<u8>) {
    seeds.entry(target).or_default().push((name.into(), bytes));
}

fn main() {
    let golden = golden();
    let fixed = fixed();
    let mut seeds = Seeds::new();
    let with_prefix = |prefix: &str| {
        golden
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(name, bytes)| (name.clone(), bytes.clone()))
            .collect::<Vec<_>>()
    };

    // Messages: the golden bare messages, and each inside a plain envelope.
    for (target, prefix) in [
        ("minion_request", "minion_request_"),
        ("master_reply", "master_reply_"),
        ("publication", "publication_"),
        ("control_request", "control_request_"),
        ("control_event", "control_event_"),
        ("signed_publication", "signed_publication"),
        ("publication_header", "publication_header"),
    ] {
        for (name, bytes) in with_prefix(prefix) {
            if target == "publication" && name == "publication_header" {
                continue;
            }
            if matches!(target, "minion_request" | "master_reply" | "publication") {
                let frame = envelope(BodyKind::Plain, None, bytes.clone());
                add(&mut seeds, target, format!("golden-{name}-plain"), frame);
            }
            add(&mut seeds, target, format!("golden-{name}"), bytes);
        }
    }
    for (name, bytes) in with_prefix("frame_") {
        add(
            &mut seeds,
            "envelope",
            format!("golden-{name}"),
            bytes.clone(),
        );
        add(
            &mut seeds,
            "master_rep",
            format!("golden-{name}"),
            bytes.clone(),
        );
        add(
            &mut seeds,
            "minion_pub",
            format!("golden-{name}"),
            bytes.clone(),
        );
        if name.contains("request") {
            add(
                &mut seeds,
                "minion_request",
                format!("golden-{name}"),
                bytes,
            );
        } else if name.contains("reply") || name.contains("error") {
            add(&mut seeds, "master_reply", format!("golden-{name}"), bytes);
        }
    }

    // Publications signed and sealed with the fixed keys.
    for name in ["publication_job", "publication_tick"] {
        let publication: Publication = decode(&golden[name]).unwrap();
        let (header, body, frame) = signed(&publication);
        let (nonce, ciphertext) = fixed.group.encrypt(&golden[name], PUBLICATION_AAD);
        let sig = fixed.master.sign(&header);
        add(
            &mut seeds,
            "publication_header",
            format!("fixed-{name}"),
            header.clone(),
        );
        add(
            &mut seeds,
            "signed_publication",
            format!("fixed-{name}"),
            body,
        );
        add(
            &mut seeds,
            "envelope",
            format!("fixed-{name}"),
            frame.clone(),
        );
        add(&mut seeds, "minion_pub", format!("fixed-{name}"), frame);
        add(
            &mut seeds,
            "group_decrypt",
            format!("fixed-{name}"),
            [&[24u8][..], &nonce, &ciphertext].concat(),
        );
        add(
            &mut seeds,
            "group_decrypt",
            format!("fixed-{name}-short-nonce"),
            [&[12u8][..], &nonce[..12], &ciphertext].concat(),
        );
        add(
            &mut seeds,
            "signature_verify",
            format!("fixed-{name}"),
            [&sig[..], &header].concat(),
        );
        add(
            &mut seeds,
            "signature_verify",
            format!("fixed-{name}-with-key"),
            [&fixed.master.public().sign[..], &sig, &header].concat(),
        );
    }

    // Handshakes with the fixed keys: msg1 carrying each minion request (hello is the one
    // the master expects), one from an unknown minion key, and msg2s.
    for (name, payload) in with_prefix("minion_request_") {
        let (_, msg1) = initiate(&fixed.minion, &fixed.master.public(), &payload).unwrap();
        add(
            &mut seeds,
            "noise_respond",
            format!("fixed-{name}"),
            msg1.clone(),
        );
        let frame = envelope(BodyKind::Handshake, None, msg1);
        add(
            &mut seeds,
            "master_rep",
            format!("fixed-handshake-{name}"),
            frame.clone(),
        );
        add(
            &mut seeds,
            "envelope",
            format!("fixed-handshake-{name}"),
            frame,
        );
    }
    let stranger = MinionKeys::generate();
    let hello = &golden["minion_request_hello"];
    let (_, msg1) = initiate(&stranger, &fixed.master.public(), hello).unwrap();
    add(&mut seeds, "noise_respond", "stranger-hello", msg1);
    let (_, msg1) = initiate(&fixed.minion, &fixed.master.public(), b"").unwrap();
    add(&mut seeds, "noise_respond", "empty-payload", msg1);
    for name in ["master_reply_welcome", "master_reply_error"] {
        let (_, msg1) = initiate(&fixed.minion, &fixed.master.public(), hello).unwrap();
        let responder = respond(&fixed.master, &msg1).unwrap();
        let (_, msg2) = responder.accept(&golden[name]).unwrap();
        add(
            &mut seeds,
            "noise_finish",
            format!("fixed-{name}"),
            msg2.clone(),
        );
        let frame = envelope(BodyKind::Handshake, None, msg2);
        add(
            &mut seeds,
            "envelope",
            format!("fixed-handshake-{name}"),
            frame,
        );
    }

    // Sessions: the tamperings of `targets::session_open` on a request and on a large
    // return (two chunks when repeated 17 times), and messages sealed by another session.
    let request = golden["minion_request_return"].clone();
    let large: Vec<u8> = (0..4000u32).map(|i| (i * 7 % 251) as u8).collect();
    for op in 0u8..4 {
        for (what, payload, repeat) in [("request", &request, 0u8), ("large", &large, 16)] {
            let mode = 1 | op << 1 | repeat << 3;
            let bytes = [&[mode, 0x01, 0x23][..], payload].concat();
            add(&mut seeds, "session_open", format!("op{op}-{what}"), bytes);
        }
    }
    let (mut minion, _) = session_pair();
    for (name, payload) in with_prefix("minion_request_") {
        let sealed = minion.seal(&payload).unwrap();
        add(
            &mut seeds,
            "session_open",
            format!("stranger-{name}"),
            [&[0u8][..], &sealed].concat(),
        );
        let frame = envelope(BodyKind::Sealed, Some(42), sealed);
        add(
            &mut seeds,
            "master_rep",
            format!("stranger-sealed-{name}"),
            frame,
        );
    }

    // Key files: the fixed ones, a pinned master.pub, and a few near misses.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("keys");
    fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
    fixed.master.public().save(&dir.join("master.pub")).unwrap();
    let master_pub = fs::read_to_string(dir.join("master.pub")).unwrap();
    let _: Option<MasterPublic> = MasterPublic::load(&dir.join("master.pub")).unwrap();
    for (name, text) in [
        ("master-key", MASTER_KEY_TEXT.to_owned()),
        ("minion-key", MINION_KEY_TEXT.to_owned()),
        ("master-pub", master_pub.clone()),
        ("minion-key-upper", MINION_KEY_TEXT.to_uppercase()),
        ("minion-key-crlf", MINION_KEY_TEXT.replace('\n', "\r\n")),
        ("master-pub-twice", format!("{master_pub}{master_pub}")),
    ] {
        add(&mut seeds, "key_file", name, text.into_bytes());
    }

    // ZMTP: a REQ peer sending requests (one of them large), a SUB peer subscribing.
    let handshake_req = [greeting(), ready(b"REQ")].concat();
    add(
        &mut seeds,
        "zmtp_stream",
        "req-handshake",
        handshake_req.clone(),
    );
    let mut req = handshake_req.clone();
    for name in [
        "frame_plain_master_keys_request",
        "frame_handshake",
        "frame_sealed",
    ] {
        req.extend(zmtp_frame(b"", true));
        req.extend(zmtp_frame(&golden[name], false));
    }
    add(&mut seeds, "zmtp_stream", "req-requests", req);
    let req_large = [
        handshake_req,
        zmtp_frame(b"", true),
        zmtp_frame(&large, false),
    ]
    .concat();
    add(&mut seeds, "zmtp_stream", "req-large", req_large);
    let sub = [
        greeting(),
        ready(b"SUB"),
        zmtp_frame(b"\x01", false),
        zmtp_frame(b"\x01topic", false),
    ]
    .concat();
    add(&mut seeds, "zmtp_stream", "sub-subscribe", sub);

    write(&seeds);
}

/// Writes every seed, after checking that each target got some and that each runs them.
fn write(seeds: &Seeds) {
    let corpus = fuzz_dir().join("corpus");
    for (target, run) in TARGETS {
        let list = seeds
            .get(target)
            .unwrap_or_else(|| panic!("no seeds for {target}"));
        let dir = corpus.join(target);
        fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in list {
            run(bytes);
            fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
        }
        println!("{target}: {} seeds", list.len());
    }
}
