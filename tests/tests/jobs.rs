//! Jobs end to end: a real master and real minions in this process.

use std::time::Duration;

use brine_proto::control::{ControlError, ControlEvent};
use brine_proto::Target;
use brine_tests::{TestMaster, TestMinion};

#[tokio::test]
async fn ping_reaches_every_minion() {
    let dir = tempfile::tempdir().unwrap();
    let master = TestMaster::start(dir.path()).await;
    let ids = ["m1", "m2", "m3", "m4", "m5"];
    let minions = master.start_minions(dir.path(), &ids);
    master.wait_connected(&ids).await;

    let events = master.ping_all(5).await;
    let streamed = events
        .iter()
        .filter(|e| matches!(e, ControlEvent::Return(_)))
        .count();
    assert_eq!(streamed, 5, "each return is streamed as it arrives");

    TestMinion::stop_all(minions).await;
    master.stop().await;
}

#[tokio::test]
async fn a_target_matching_nothing_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let master = TestMaster::start(dir.path()).await;
    let events = master
        .publish(
            Target::Glob("nobody*".into()),
            "test.ping",
            vec![],
            Duration::from_secs(1),
        )
        .await;
    assert!(
        matches!(
            events.as_slice(),
            [ControlEvent::Error {
                code: ControlError::NoMinions,
                ..
            }]
        ),
        "{events:?}"
    );
    master.stop().await;
}
