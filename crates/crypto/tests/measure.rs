//! A quick measurement of the crate's costs, printed and never asserted:
//! `cargo test -p brine-crypto --release -- --nocapture measure`.
//!
//! Each figure is one thread doing the work in a loop for a fixed wall-clock time; numbers
//! from a debug build only show how slow unoptimised cryptography is.

use std::hint::black_box;
use std::time::{Duration, Instant};

use brine_crypto::{initiate, respond, GroupKey, MasterKeys, MinionKeys};

/// How long each figure is measured for.
const BUDGET: Duration = Duration::from_millis(400);

/// Runs `step` until `BUDGET` is spent (at least once) and returns calls per second.
fn rate(mut step: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut calls = 0u64;
    while calls == 0 || start.elapsed() < BUDGET {
        step();
        calls += 1;
    }
    calls as f64 / start.elapsed().as_secs_f64()
}

fn report(what: &str, per_second: f64) {
    println!(
        "measure: {what:<58} {per_second:>12.0} /s  ({:>8.2} µs each)",
        1e6 / per_second
    );
}

#[test]
fn measure_throughput() {
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!("measure: brine-crypto, {profile} build, one thread");
    let minion = MinionKeys::generate();
    let master = MasterKeys::generate();
    let pinned = master.public();

    report(
        "full handshake, both sides (initiate+respond+accept+finish)",
        rate(|| {
            let (initiator, msg1) = initiate(&minion, &pinned, b"hello").unwrap();
            let (_, msg2) = respond(&master, &msg1).unwrap().accept(b"ok").unwrap();
            black_box(initiator.finish(&msg2).unwrap());
        }),
    );

    let (_, msg1) = initiate(&minion, &pinned, b"hello").unwrap();
    report(
        "master's side of a handshake (respond+accept)",
        rate(|| {
            black_box(respond(&master, &msg1).unwrap().accept(b"ok").unwrap());
        }),
    );

    let (initiator, msg1) = initiate(&minion, &pinned, b"").unwrap();
    let (mut master_session, msg2) = respond(&master, &msg1).unwrap().accept(b"").unwrap();
    let (mut minion_session, _) = initiator.finish(&msg2).unwrap();
    let message = [0x5au8; 200];
    report(
        "seal+open of a 200-byte message",
        rate(|| {
            let sealed = minion_session.seal(&message).unwrap();
            black_box(master_session.open(&sealed).unwrap());
        }),
    );

    let big = vec![0x5au8; 1024 * 1024];
    let per_second = rate(|| {
        let sealed = minion_session.seal(&big).unwrap();
        black_box(master_session.open(&sealed).unwrap());
    });
    report("seal+open of a 1 MiB message", per_second);
    println!("measure: {:<58} {per_second:>12.0} MiB/s", "  = throughput");

    let signature = master.sign(&message);
    report(
        "sign a 200-byte message",
        rate(|| {
            black_box(master.sign(&message));
        }),
    );
    report(
        "verify a 200-byte message (strict)",
        rate(|| pinned.verify(&message, &signature).unwrap()),
    );

    let group = GroupKey::generate(1);
    report(
        "group key encrypt+decrypt of a 200-byte message",
        rate(|| {
            let (nonce, ciphertext) = group.encrypt(&message, b"header");
            black_box(group.decrypt(&nonce, &ciphertext, b"header").unwrap());
        }),
    );
}
