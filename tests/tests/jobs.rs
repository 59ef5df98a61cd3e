//! Jobs end to end: a real master and real minions in this process.

use std::time::Duration;

use brine_proto::control::{
    ControlError, ControlEvent, ControlRequest, JobQuery, MinionState, PublishRequest,
};
use brine_proto::{now_ms, Map, Target};
use brine_tests::{report, within, TestMaster, TestMinion};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_minion_that_goes_away_after_the_deadline_is_not_connected() {
    let dir = tempfile::tempdir().unwrap();
    let master = TestMaster::start(dir.path()).await;
    let mut minions = master.start_minions(dir.path(), &["leaves"]);
    master.wait_connected(&["leaves"]).await;
    let socket = master.socket.clone();
    let job = tokio::spawn(async move {
        brine_tests::control(
            &socket,
            ControlRequest::Publish(PublishRequest {
                target: Target::Glob("*".into()),
                fun: brine_proto::FunctionName::new("test.sleep").unwrap(),
                arg: vec![30.into()],
                kwarg: Map::new(),
                timeout_ms: 500,
                wait: true,
            }),
        )
        .await
    });

    // Past the deadline, the record says it is running the job; then it goes away.
    within("the deadline passing with the minion running", async {
        loop {
            let listed = master
                .control(ControlRequest::ListJobs(JobQuery::newest(1)))
                .await;
            if let [ControlEvent::Jobs { jobs }] = &listed[..] {
                if let Some(job) = jobs.first() {
                    let lookup = ControlRequest::LookupJob {
                        jid: job.jid.clone(),
                        wait: false,
                    };
                    let events = master.control(lookup).await;
                    let report = report(&events);
                    if now_ms() > report.deadline_ms + 200 {
                        assert_eq!(report.minions[0].state, MinionState::Running);
                        return;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    minions.pop().unwrap().stop().await;

    let events = within("the job's end", job).await.unwrap();
    assert!(
        events.iter().any(|e| matches!(
            e,
            ControlEvent::StillRunning { minions, .. } if minions[0].as_str() == "leaves"
        )),
        "{events:?}"
    );
    assert_eq!(report(&events).minions[0].state, MinionState::NotConnected);
    master.stop().await;
}
