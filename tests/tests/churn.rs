//! Connection churn on the return port: many REQ peers connecting, asking and leaving (some
//! before reading their answer), while real minions answer pings. The master must keep
//! answering everyone.
//!
//! zeromq 0.7's REP socket (and the ROUTER that replaced it) removes a departed peer with a
//! blocking lock inside `recv`; on a tokio worker this used to park the worker for good under
//! churn (see `brine_master::rep::SocketThread`),
//! after which the return port never answered again. A hang shows here as a timed-out step of
//! a peer or as a minion that no longer answers a ping ("not connected": its keepalives went
//! unanswered). Against the unfixed master this failed 14 runs of 14, after 1 to 5 seconds.
//!
//! The test builds its own runtime instead of `#[tokio::test]`: a worker parked on a lock never
//! comes back, and dropping a runtime waits for its workers, so a regression would hang the
//! test binary instead of failing it. `shutdown_timeout` lets it go.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use brine_proto::codec::BodyKind;
use brine_proto::{decode_envelope, encode, Envelope, MasterReply, MinionRequest};
use brine_tests::{within, TestMaster, TestMinion};
use zeromq::{ReqSocket, Socket, SocketRecv, SocketSend, ZmqMessage};

/// Peers connected at once. Connections, not requests, make the hang likely, so each peer asks
/// once and leaves.
const PEERS: usize = 64;
/// How long the churn goes on, at most.
const CHURN_FOR: Duration = Duration::from_secs(8);
/// How many connections, at most (a bound on the sockets left in TIME_WAIT, whatever the
/// machine's speed).
const CONNECTIONS: usize = 16_000;
/// The longest one step of one peer may take (the master answers in well under a millisecond).
const PEER_STEP: Duration = Duration::from_secs(5);

const MINIONS: [&str; 3] = ["churn1", "churn2", "churn3"];

/// Awaits `fut`, failing with `what` if it takes longer than [`PEER_STEP`].
async fn step<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PEER_STEP, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out after {PEER_STEP:?}: {what} (the return port hangs)"))
}

fn master_keys_request() -> ZmqMessage {
    let body = encode(&MinionRequest::MasterKeys {});
    ZmqMessage::from(Envelope::new(BodyKind::Plain, None, body).to_bytes())
}

/// One peer: connects, asks for the master's keys, checks the answer and leaves; when
/// `leave_early` is set it leaves right after asking, before the answer.
async fn peer(endpoint: String, leave_early: bool, answered: Arc<AtomicUsize>) {
    let mut socket = ReqSocket::new();
    step("connecting", socket.connect(&endpoint))
        .await
        .expect("the return port accepts");
    step("sending master_keys", socket.send(master_keys_request()))
        .await
        .expect("request sent");
    if leave_early {
        return;
    }
    let reply = step("waiting for the master_keys answer", socket.recv())
        .await
        .expect("an answer");
    let reply: MasterReply = decode_envelope(&reply.into_vec()[0]).expect("the answer decodes");
    assert!(
        matches!(reply, MasterReply::MasterKeys { .. }),
        "unexpected answer {reply:?}"
    );
    answered.fetch_add(1, Ordering::Relaxed);
}

async fn scenario() {
    let dir = tempfile::tempdir().unwrap();
    let master = TestMaster::start(dir.path()).await;
    let minions = master.start_minions(dir.path(), &MINIONS);
    master.wait_connected(&MINIONS).await;
    let endpoint = format!("tcp://127.0.0.1:{}", master.ret_port);

    let answered = Arc::new(AtomicUsize::new(0));
    let churning = AtomicBool::new(true);
    let started = Instant::now();
    let connections = Arc::new(AtomicUsize::new(0));
    let churn = async {
        // Each lane replaces its peer as soon as it is gone: connections and departures overlap
        // all the time.
        let lanes: Vec<_> = (0..PEERS)
            .map(|lane| {
                let (endpoint, answered) = (endpoint.clone(), Arc::clone(&answered));
                let connections = Arc::clone(&connections);
                tokio::spawn(async move {
                    while started.elapsed() < CHURN_FOR {
                        let n = connections.fetch_add(1, Ordering::Relaxed);
                        if n >= CONNECTIONS {
                            break;
                        }
                        let leave_early = (lane + n) % 3 == 2;
                        peer(endpoint.clone(), leave_early, Arc::clone(&answered)).await;
                    }
                })
            })
            .collect();
        for lane in lanes {
            // A peer's own steps are bounded; a panic in one is the test's failure.
            lane.await
                .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        }
        churning.store(false, Ordering::Relaxed);
    };
    let pings = async {
        let mut pings = 0;
        while churning.load(Ordering::Relaxed) {
            master.ping_all(MINIONS.len()).await;
            pings += 1;
        }
        pings
    };
    let ((), pings) = tokio::join!(churn, pings);
    let connections = connections.load(Ordering::Relaxed).min(CONNECTIONS);
    let answered = answered.load(Ordering::Relaxed);
    eprintln!(
        "{connections} connections, {PEERS} at a time: {answered} answers, {pings} pings in {:?}",
        started.elapsed()
    );
    assert!(pings > 0 && answered > 0);

    // Still serving: a new peer and every minion.
    peer(endpoint, false, Arc::new(AtomicUsize::new(0))).await;
    master.ping_all(MINIONS.len()).await;
    within("stopping the minions", TestMinion::stop_all(minions)).await;
    master.stop().await;
}

#[test]
fn the_return_port_survives_req_churn() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let outcome = runtime.block_on(async { tokio::spawn(scenario()).await });
    runtime.shutdown_timeout(Duration::from_secs(1));
    if let Err(err) = outcome {
        match err.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(err) => panic!("the scenario did not finish: {err}"),
        }
    }
}
