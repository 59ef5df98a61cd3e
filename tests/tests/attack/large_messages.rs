//! Large messages in transit on the return port, and what the zeromq socket keeps of them.
//!
//! The zeromq socket reads a message whole before the master can refuse it, and keeps a read
//! buffer as large as the largest message a connection carried for as long as that connection
//! lives. Before the guard's byte budget, peers without a key that sent two small messages (as
//! a minion's first two are) and then one of 16 MiB each cost the master 16 MiB at once; and
//! an accepted minion's one large return stayed in the master for as long as its connection.
//! Now large messages pass the guard only under a budget shared by the port (64 MiB, at most
//! half of it for one host), and once one has been answered the guard replaces its upstream
//! connection, so that the socket's buffer goes with the old one.

use std::time::Duration;

use brine_proto::{JobReturn, MasterReply, MinionId, MinionRequest, Value};
use brine_tests::fleet::{bounded, eventually, Fleet, MinionOptions};
use brine_tests::raw_minion::RawMinion;
use tokio::io::AsyncWriteExt;

use crate::{reset_peak, rss_of, zmtp, MIB};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_messages_of_peers_without_a_key_wait_for_the_budget() {
    const PEERS: usize = 48;
    /// Hosts the peers come from (127.0.0.10 and on), so that the port's whole budget is used.
    const HOSTS: usize = 8;
    /// The guard's budget (64 MiB) in the zeromq socket's buffers, the guard's read chunks and
    /// what the allocator keeps: measured 52-57 MiB; 169 MiB without the budget.
    const PEAK_RISE: u64 = 96 * MIB;
    let mut fleet = Fleet::new().await;
    fleet.start_master().await;
    fleet.add_minion("web1", MinionOptions::default()).await;
    fleet.wait_connected(&["web1"]).await;
    let pid = fleet.master_pid().unwrap();
    let baseline = rss_of(pid).now;
    reset_peak(pid);

    let small = [zmtp::frame_more(b""), zmtp::frame(b"\x80")].concat();
    let large = [
        zmtp::frame_more(b""),
        zmtp::frame(&vec![0xc0; 16 * 1024 * 1024]),
    ]
    .concat();
    let port = fleet.ret_port;
    let peers = (0..PEERS).map(|n| {
        let (small, large) = (&small, &large);
        async move {
            let host = [127, 0, 0, 10 + (n % HOSTS) as u8];
            let mut stream = zmtp::connect_from(host, port).await.expect("connecting");
            stream.write_all(&zmtp::handshake("REQ")).await.unwrap();
            stream.write_all(small).await.unwrap();
            stream.write_all(small).await.unwrap();
            // The guard reads it only once it holds budget for it.
            stream.write_all(large).await.is_ok()
        }
    });
    let (sent, ()) = bounded(
        "the large messages to go through",
        Duration::from_secs(120),
        futures::future::join(futures::future::join_all(peers), fleet.ping(&["web1"])),
    )
    .await;
    let rss = rss_of(pid);
    eprintln!(
        "master RSS: {} MiB before, {} MiB peak after {PEERS} peers without a key sent 16 MiB each ({} went through)",
        baseline / MIB,
        rss.peak / MIB,
        sent.iter().filter(|whole| **whole).count(),
    );
    assert!(
        rss.peak < baseline + PEAK_RISE,
        "the master's peak rose by {} MiB",
        (rss.peak - baseline) / MIB
    );
    fleet.ping(&["web1"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_return_does_not_stay_in_the_master_while_its_connection_lives() {
    const ID: &str = "big2";
    /// How close to the baseline the master must come back; the return is 16 MiB.
    const SETTLED_RISE: u64 = 8 * MIB;
    let mut fleet = Fleet::new().await;
    fleet.start_master().await;
    fleet.add_minion("web1", MinionOptions::default()).await;
    fleet.wait_connected(&["web1"]).await;
    let pid = fleet.master_pid().unwrap();

    let id = MinionId::new(ID).unwrap();
    let mut minion = RawMinion::connect(fleet.ret_port).await;
    let reply = minion.hello(ID).await;
    assert!(matches!(reply, MasterReply::Welcome { .. }), "{reply:?}");
    let keepalive = MinionRequest::Keepalive { id: id.clone() };
    assert_eq!(minion.ask(&keepalive).await.1, MasterReply::Ok {});
    fleet.wait_connected(&[ID]).await;
    let jid = fleet.publish(120, &[ID, "test.ping"]).await;
    let ret = MinionRequest::Return(JobReturn {
        id: id.clone(),
        jid,
        fun: "test.ping".into(),
        ret: Value::String("x".repeat(16 * 1024 * 1024 - 128 * 1024)),
        retcode: 0,
        success: true,
        started_ms: 0,
        finished_ms: 0,
        interrupted: false,
        rejected: false,
    });
    fleet.ping(&["web1"]).await;
    let baseline = rss_of(pid).now;

    assert_eq!(minion.ask(&ret).await.1, MasterReply::Ok {});
    drop(ret);
    let settled = eventually(
        "the master's memory to come back near where it was",
        Duration::from_secs(30),
        || async {
            let now = rss_of(pid).now;
            (now < baseline + SETTLED_RISE).then_some(now)
        },
    )
    .await;
    eprintln!(
        "master RSS: {} MiB before a 16 MiB return, {} MiB after it",
        baseline / MIB,
        settled / MIB
    );
    // The same connection still serves it: the zeromq crate's REQ never reconnects.
    assert_eq!(minion.ask(&keepalive).await.1, MasterReply::Ok {});
    fleet.ping(&["web1"]).await;
}
