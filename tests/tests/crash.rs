//! The master dies after storing a return and before answering it: the minion resends the
//! return to the restarted master, which stores it once and answers ok. The job ran once.
//!
//! The "death" is the `master-return-stored` fail point: it panics the REP task at exactly that
//! moment, dropping the socket without an answer, as a killed process would.

use std::time::Duration;

use brine_proto::control::{ControlEvent, ControlRequest, MinionState, PublishRequest};
use brine_proto::{Map, Target};
use brine_tests::{within, TestMaster, TestMinion};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_return_stored_but_never_answered_lands_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let master = TestMaster::start(dir.path()).await;
    let (publish_port, ret_port) = (master.publish_port, master.ret_port);
    let minion = TestMinion::start_with(master.minion_config(dir.path(), "m1"));
    master.wait_connected(&["m1"]).await;

    let ran = dir.path().join("ran");
    fail::cfg("master-return-stored", "1*panic").unwrap();
    let events = master
        .control(ControlRequest::Publish(PublishRequest {
            target: Target::Glob("*".into()),
            fun: brine_proto::FunctionName::new("cmd.run").unwrap(),
            arg: vec![format!("echo once >> {}", ran.display()).into()],
            kwarg: Map::from_iter([("shell".to_string(), true.into())]),
            timeout_ms: 30_000,
            wait: false,
        }))
        .await;
    let Some(ControlEvent::Published { jid, .. }) = events.first() else {
        panic!("not published: {events:?}");
    };
    let jid = jid.clone();

    // Wait until the return is stored (the REP task died right after).
    within("the return being stored", async {
        loop {
            let events = master
                .control(ControlRequest::LookupJob {
                    jid: jid.clone(),
                    wait: false,
                })
                .await;
            if let Some(ControlEvent::Done(report)) = events.first() {
                if report.minions[0].state == MinionState::Returned {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    fail::remove("master-return-stored");
    master.stop().await;

    let master = TestMaster::start_on(dir.path(), publish_port, ret_port).await;
    master.wait_connected(&["m1"]).await;
    let events = master
        .control(ControlRequest::LookupJob {
            jid: jid.clone(),
            wait: true,
        })
        .await;
    let report = brine_tests::report(&events);
    assert_eq!(report.minions.len(), 1);
    assert_eq!(report.minions[0].state, MinionState::Returned);
    let content = std::fs::read_to_string(&ran).unwrap();
    assert_eq!(content, "once\n", "the job ran exactly once");

    minion.stop().await;
    master.stop().await;
    // The minion's spool is empty: the resent return was acknowledged.
    let journal = brine_minion::journal::Journal::open(&dir.path().join("minions").join("m1"))
        .unwrap()
        .spooled()
        .unwrap();
    assert!(journal.is_empty(), "{journal:?}");
}
