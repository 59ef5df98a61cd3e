//! Key enrollment under a flood and a squatter. Before the fix, 4,096 pending keys (the cap)
//! were made in 5.9 s, after which every new minion got `unavailable`, and clearing them took
//! 4,096 single deletes; a key presented for `web2` before the real `web2`'s made the real key
//! denied, and `brine-key accept web2 --fingerprint <the real one>` failed: the operator could
//! not let the real minion in. Now the fingerprint chooses among all of an id's keys, an id can
//! be preaccepted by fingerprint (and gets in while the pending keys are at their cap), and one
//! command clears every pending key in one transaction.

use std::time::Duration;

use brine_proto::msg::ReplyError;
use brine_proto::MasterReply;
use brine_tests::fleet::{bounded, Fleet, MinionOptions};
use brine_tests::printed_fingerprint;
use brine_tests::raw_minion::RawMinion;
use serde_json::Value;

const CAP: usize = 4096;
const FLOODERS: usize = 4;

fn code(reply: &MasterReply) -> Option<ReplyError> {
    match reply {
        MasterReply::Error { code, .. } => Some(*code),
        _ => None,
    }
}

/// `brine-key list --out json`.
async fn key_lists(fleet: &Fleet) -> Value {
    let out = bounded(
        "brine-key list",
        Duration::from_secs(20),
        fleet.cli(&fleet.bins.brine_key, &["list", "--out", "json"]),
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    serde_json::from_str(&out.stdout).unwrap()
}

fn fingerprints_of(lists: &Value, state: &str, id: &str) -> Vec<String> {
    lists[state]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["id"] == id)
        .map(|k| k["fingerprint"].as_str().unwrap().to_owned())
        .collect()
}

async fn brine_key(fleet: &Fleet, args: &[&str]) -> brine_tests::fleet::CliOutput {
    bounded(
        "brine-key",
        Duration::from_secs(60),
        fleet.cli(&fleet.bins.brine_key, args),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_flood_and_a_squatter_cannot_keep_the_real_minions_out() {
    let mut fleet = Fleet::new().await;
    fleet.auto_accept = false;
    fleet.start_master().await;

    // A squatter presents a key for web2 before the real web2 does.
    let mut squatter = RawMinion::connect(fleet.ret_port).await;
    let reply = squatter.hello("web2").await;
    assert_eq!(code(&reply), Some(ReplyError::NotAccepted), "{reply:?}");

    // Keys for 4,096 made-up ids fill the pending keys to their cap.
    let flood_started = std::time::Instant::now();
    let log_before = fleet.master_log().len();
    let flood = (0..FLOODERS).map(|n| {
        let ret_port = fleet.ret_port;
        tokio::spawn(async move {
            let mut raw = RawMinion::connect(ret_port).await;
            let mut last = None;
            for i in (n..CAP).step_by(FLOODERS) {
                raw.new_key();
                last = code(&raw.hello(&format!("flood{i}")).await);
            }
            last
        })
    });
    for flooder in flood {
        let last = bounded("a flooder", Duration::from_secs(240), flooder)
            .await
            .unwrap();
        assert!(last.is_some(), "no key of the flood was accepted");
    }
    // (A connection quiet for six keepalive intervals is closed: the squatter connects anew.)
    let mut squatter = RawMinion::connect(fleet.ret_port).await;
    let reply = squatter.hello("one-more").await;
    assert_eq!(
        code(&reply),
        Some(ReplyError::Unavailable),
        "the pending keys are at their cap: {reply:?}"
    );

    // The master's log says a bounded number of times what the flood did.
    let windows = flood_started.elapsed().as_secs() / 10 + 2;
    let lines = fleet.master_log()[log_before..]
        .lines()
        .filter(|l| l.contains("brine_master::rep"))
        .count() as u64;
    assert!(
        lines <= 20 * windows,
        "{lines} lines about the flood's keys in {windows} windows of 10 s"
    );

    // The real web2 comes: its key is denied, the squatter's pending.
    fleet.add_minion("web2", MinionOptions::default()).await;
    let real = printed_fingerprint("web2", &fleet.minion_state_dir("web2")).await;
    brine_tests::fleet::eventually(
        "the real web2's key to be denied",
        Duration::from_secs(20),
        || async {
            let lists = key_lists(&fleet).await;
            (fingerprints_of(&lists, "denied", "web2") == [real.clone()]).then_some(())
        },
    )
    .await;

    // The operator, who holds the real fingerprint, lets the real web2 in.
    let out = brine_key(&fleet, &["accept", "web2", "--fingerprint", &real, "--yes"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        format!("Key for minion web2 accepted: {real}\n"),
        "{out:?}"
    );
    fleet.wait_connected(&["web2"]).await;

    // A minion that has not connected yet is preaccepted by its fingerprint, and gets in
    // while the pending keys are still at their cap.
    let db1 = printed_fingerprint("db1", &fleet.minion_state_dir("db1")).await;
    let out = brine_key(
        &fleet,
        &[
            "accept",
            "db1",
            "--fingerprint",
            &db1,
            "--preaccept",
            "--yes",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("db1 preaccepted"), "{out:?}");
    fleet.add_minion("db1", MinionOptions::default()).await;
    fleet.wait_connected(&["web2", "db1"]).await;

    bounded(
        "a ping of the real minions",
        Duration::from_secs(20),
        fleet.ping(&["web2", "db1"]),
    )
    .await;

    // One command clears the flood, and only the flood.
    let out = brine_key(
        &fleet,
        &[
            "delete", "--all", "--state", "pending", "--yes", "--out", "json",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let deleted: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        deleted["deleted"].as_array().unwrap().len(),
        CAP - 1,
        "the flood's keys: the squatter's took the first place, and is denied now"
    );
    let lists = key_lists(&fleet).await;
    assert_eq!(lists["pending"], Value::Array(vec![]));
    assert_eq!(fingerprints_of(&lists, "accepted", "web2"), [real]);
    assert_eq!(fingerprints_of(&lists, "accepted", "db1"), [db1]);
    assert_eq!(fingerprints_of(&lists, "denied", "web2").len(), 1);

    // New minions may enroll again.
    let mut newcomer = RawMinion::connect(fleet.ret_port).await;
    let reply = newcomer.hello("new1").await;
    assert_eq!(code(&reply), Some(ReplyError::NotAccepted), "{reply:?}");

    // A real minion whose key waits says what to run on the master, fingerprint and all.
    fleet.add_minion("new2", MinionOptions::default()).await;
    let new2 = printed_fingerprint("new2", &fleet.minion_state_dir("new2")).await;
    let command = format!("brine-key accept new2 --fingerprint {new2}");
    brine_tests::fleet::eventually(
        "new2 to say how to accept its key",
        Duration::from_secs(20),
        || async { fleet.minion_log("new2").contains(&command).then_some(()) },
    )
    .await;
}
