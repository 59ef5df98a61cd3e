//! Start order and restarts: minions wait for a master that is not there yet, and come back by
//! themselves when the master restarts.

use std::time::Duration;

use brine_proto::control::MinionState;
use brine_proto::Target;
use brine_tests::{free_port, report, TestMaster, TestMinion};

async fn ping_all(master: &TestMaster, expected: usize) {
    let events = master
        .publish(
            Target::Glob("*".into()),
            "test.ping",
            vec![],
            Duration::from_secs(5),
        )
        .await;
    let report = report(&events);
    assert_eq!(report.minions.len(), expected);
    assert!(
        report
            .minions
            .iter()
            .all(|m| m.state == MinionState::Returned),
        "{report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minions_started_before_the_master_connect_when_it_comes() {
    let dir = tempfile::tempdir().unwrap();
    let (publish_port, ret_port) = (free_port(), free_port());
    let minions: Vec<_> = ["early1", "early2"]
        .iter()
        .map(|id| TestMinion::start(dir.path(), id, publish_port, ret_port))
        .collect();
    let master = TestMaster::start_on(dir.path(), publish_port, ret_port).await;
    master.wait_connected(&["early1", "early2"]).await;
    ping_all(&master, 2).await;
    for minion in minions {
        minion.stop().await;
    }
    master.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minions_come_back_after_a_master_restart() {
    let dir = tempfile::tempdir().unwrap();
    let master = TestMaster::start(dir.path()).await;
    let (publish_port, ret_port) = (master.publish_port, master.ret_port);
    let minions: Vec<_> = ["r1", "r2", "r3"]
        .iter()
        .map(|id| TestMinion::start(dir.path(), id, publish_port, ret_port))
        .collect();
    master.wait_connected(&["r1", "r2", "r3"]).await;
    ping_all(&master, 3).await;

    master.stop().await;
    let master = TestMaster::start_on(dir.path(), publish_port, ret_port).await;
    // The registry survived the restart: all three are expected, and they answer without
    // being restarted themselves.
    master.wait_connected(&["r1", "r2", "r3"]).await;
    ping_all(&master, 3).await;

    for minion in minions {
        minion.stop().await;
    }
    master.stop().await;
}
