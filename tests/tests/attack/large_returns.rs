//! Large messages on the return port. Before any authentication: 48 connections each sending
//! a 16 MiB message raised the master by 812 MB; the guard now closes a connection whose
//! first messages (before a handshake can have happened) pass 72 KiB.
//!
//! An accepted minion sending returns of 16 MiB, several at once, for a job it was given:
//! through its proven session and through unproven ones (before their first request has
//! proven them), each on a connection of its own. Before the fix the master opened, decoded
//! and stored every one of them at the same time (4 raised it by 236 MB) and kept the memory
//! for good. Now one minion has one large request handled at a time (the others are answered
//! `unavailable`, which a minion retries later), all large requests together have a byte
//! budget, and the master hands its freed heap back to the OS.

use std::time::Duration;

use brine_proto::msg::ReplyError;
use brine_proto::{JobReturn, MasterReply, MinionId, MinionRequest, Value};
use brine_tests::fleet::{bounded, eventually, Fleet, MinionOptions};
use brine_tests::raw_minion::RawMinion;

use crate::{reset_peak, rss_of, zmtp, MIB};

/// The attacker's id: a new key, accepted by the fleet's `auto_accept`.
const ATTACKER: &str = "big1";
/// Returns at most this large (encoded) fit a frame; a minion sends nothing larger.
const RETURN_BYTES: usize = 16 * 1024 * 1024 - 128 * 1024;
/// The proven session and `MAX_UNPROVEN_PER_MINION` unproven ones, one return on each at once.
const SESSIONS: usize = 5;
const ROUNDS: usize = 3;
/// What the attack may raise the master's peak by: one round's returns in the zeromq socket's
/// read buffers (80 MiB, read before any code of ours sees them, and kept by the crate while
/// their connections live) and one return being decoded and stored (about four times its
/// size); measured 161 MiB. The attack's 15 returns are 238 MiB; they raised the master by
/// 439 MiB before.
const PEAK_RISE: u64 = 192 * MIB;
/// How close to the baseline the master must come back.
const SETTLED_RISE: u64 = 32 * MIB;

/// `SESSIONS` sessions of the attacker's key, each on a REQ socket of its own: the first
/// proven by a keepalive, the others unproven. The master knows a session by its id, not by
/// the connection it was made on, and answers the socket that asked. Each socket first says
/// two small things, as a minion's first two messages are (the guard allows no more before a
/// handshake can have happened).
async fn sessions(attacker: &mut RawMinion, ret_port: u16) -> Vec<RawMinion> {
    let id = MinionId::new(ATTACKER).unwrap();
    let mut sockets = Vec::new();
    for n in 0..SESSIONS {
        let reply = attacker.hello(ATTACKER).await;
        assert!(matches!(reply, MasterReply::Welcome { .. }), "{reply:?}");
        if n == 0 {
            let (_, reply) = attacker
                .ask(&MinionRequest::Keepalive { id: id.clone() })
                .await;
            assert_eq!(reply, MasterReply::Ok {});
        }
        let mut socket = RawMinion::connect(ret_port).await;
        socket.master_keys().await;
        socket.master_keys().await;
        socket.session = attacker.session.take();
        sockets.push(socket);
    }
    sockets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_returns_of_one_minion_are_bounded_and_given_back() {
    let mut fleet = Fleet::new().await;
    // The attacker's first connection makes every round's sessions and is quiet meanwhile:
    // the return port's idle deadline (six keepalive intervals) must outlast a round.
    fleet.tick_interval = "1s".into();
    fleet.start_master().await;
    fleet.add_minion("web1", MinionOptions::default()).await;
    fleet.wait_connected(&["web1"]).await;
    let pid = fleet.master_pid().unwrap();

    let mut attacker = RawMinion::connect(fleet.ret_port).await;
    let mut round = sessions(&mut attacker, fleet.ret_port).await;
    fleet.wait_connected(&[ATTACKER]).await;
    let jid = fleet.publish(120, &[ATTACKER, "test.ping"]).await;
    let ret = JobReturn {
        id: MinionId::new(ATTACKER).unwrap(),
        jid: jid.clone(),
        fun: "test.ping".into(),
        ret: Value::String("x".repeat(RETURN_BYTES)),
        retcode: 0,
        success: true,
        started_ms: 0,
        finished_ms: 0,
        interrupted: false,
        rejected: false,
    };
    let request = MinionRequest::Return(ret);
    fleet.ping(&["web1"]).await;

    let baseline = rss_of(pid).now;
    reset_peak(pid);
    let mut answers = Vec::new();
    for n in 0..ROUNDS {
        if n > 0 {
            // The zeromq socket keeps, for as long as a connection lives, a read buffer as
            // large as the largest message it carried: the last round's go first.
            drop(round);
            round = sessions(&mut attacker, fleet.ret_port).await;
        }
        // Every return of the round at once, and the real minion served meanwhile.
        let returns =
            futures::future::join_all(round.iter_mut().map(|socket| socket.ask(&request)));
        let (replies, ()) = bounded(
            "a round of large returns",
            Duration::from_secs(60),
            futures::future::join(returns, fleet.ping(&["web1"])),
        )
        .await;
        answers.extend(replies.into_iter().map(|(_, reply)| reply));
    }
    let rss = rss_of(pid);
    eprintln!(
        "master RSS: {} MiB before, {} MiB peak, {} MiB after {} returns of {} MiB; answers: {answers:?}",
        baseline / MIB,
        rss.peak / MIB,
        rss.now / MIB,
        ROUNDS * SESSIONS,
        RETURN_BYTES as u64 / MIB,
    );
    for reply in &answers {
        assert!(
            matches!(
                reply,
                MasterReply::Ok {}
                    | MasterReply::Error {
                        code: ReplyError::Unavailable,
                        ..
                    }
            ),
            "{reply:?}"
        );
    }
    // `ok` means stored (and committed); one per round at least.
    assert!(
        answers.iter().filter(|r| **r == MasterReply::Ok {}).count() >= ROUNDS,
        "returns were not stored: {answers:?}"
    );
    assert!(
        rss.peak < baseline + PEAK_RISE,
        "the master's peak rose by {} MiB",
        (rss.peak - baseline) / MIB
    );

    // The attacker's connections closed, nothing of the attack stays.
    drop((round, attacker));
    let settled = eventually(
        "the master's memory to come back near where it was",
        Duration::from_secs(30),
        || async {
            let now = rss_of(pid).now;
            (now < baseline + SETTLED_RISE).then_some(now)
        },
    )
    .await;
    eprintln!("master RSS settled at {} MiB", settled / MIB);
    fleet.ping(&["web1"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_messages_before_authentication_are_cut_off() {
    const PEERS: usize = 48;
    let mut fleet = Fleet::new().await;
    fleet.start_master().await;
    fleet.add_minion("web1", MinionOptions::default()).await;
    fleet.wait_connected(&["web1"]).await;
    let pid = fleet.master_pid().unwrap();
    let baseline = rss_of(pid).now;
    reset_peak(pid);

    let message = [
        zmtp::frame_more(b""),
        zmtp::frame(&vec![0xc0; 16 * 1024 * 1024]),
    ]
    .concat();
    let port = fleet.ret_port;
    let peers = (0..PEERS).map(|_| {
        let message = &message;
        async move {
            let mut stream = zmtp::connect(port, "REQ").await.expect("connecting");
            let sent_whole = zmtp::send(&mut stream, message).await;
            zmtp::closed_within(&mut stream, Duration::from_secs(10)).await;
            sent_whole
        }
    });
    let (sent, ()) = bounded(
        "the attackers to be closed",
        Duration::from_secs(60),
        futures::future::join(futures::future::join_all(peers), fleet.ping(&["web1"])),
    )
    .await;
    assert!(
        sent.iter().all(|whole| !whole),
        "a 16 MiB message went through"
    );
    let peak = rss_of(pid).peak;
    eprintln!(
        "master RSS: {} MiB before, {} MiB peak after {PEERS} unauthenticated 16 MiB messages",
        baseline / MIB,
        peak / MIB
    );
    assert!(
        peak < baseline + 16 * MIB,
        "the master's peak rose by {} MiB",
        (peak - baseline) / MIB
    );
    fleet.ping(&["web1"]).await;
}
