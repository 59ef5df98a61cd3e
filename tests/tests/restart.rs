//! Start order and restarts: minions wait for a master that is not there yet, and come back by
//! themselves when the master restarts.

use brine_tests::{free_port, TestMaster, TestMinion};

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
    master.ping_all(2).await;
    TestMinion::stop_all(minions).await;
    master.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minions_come_back_after_a_master_restart() {
    let dir = tempfile::tempdir().unwrap();
    let master = TestMaster::start(dir.path()).await;
    let (publish_port, ret_port) = (master.publish_port, master.ret_port);
    let minions = master.start_minions(dir.path(), &["r1", "r2", "r3"]);
    master.wait_connected(&["r1", "r2", "r3"]).await;
    master.ping_all(3).await;

    master.stop().await;
    let master = TestMaster::start_on(dir.path(), publish_port, ret_port).await;
    // The registry survived the restart: all three are expected, and they answer without
    // being restarted themselves.
    master.wait_connected(&["r1", "r2", "r3"]).await;
    master.ping_all(3).await;

    TestMinion::stop_all(minions).await;
    master.stop().await;
}
