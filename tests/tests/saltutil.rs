//! The minion's housekeeping functions end to end: grains set on a minion reach the master's
//! targeting and survive a restart; a running job is seen, found and killed.

use std::time::Duration;

use brine_tests::fleet::eventually;
use brine_tests::{json, Cluster};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grains_set_on_a_minion_reach_the_master_and_survive_a_restart() {
    let mut cluster = Cluster::start(&["web1", "web2"]).await;
    let out = cluster
        .brine(&["--out", "json", "web1", "grains.setval", "role", "web"])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(json(&out), json!({"web1": {"role": "web"}}));
    // The update travels beside the return: wait until the master has it.
    let cluster_ref = &cluster;
    eventually(
        "the master matching web1 by its new grain",
        Duration::from_secs(10),
        || async move {
            let out = cluster_ref
                .brine(&["--out", "json", "-t", "2", "-G", "role:web", "test.ping"])
                .await;
            (out.code == 0).then(|| json(&out))
        },
    )
    .await;
    let out = cluster
        .brine(&["--out", "json", "-G", "role:web", "test.ping"])
        .await;
    assert_eq!(json(&out), json!({"web1": true}), "web2 has no role");

    cluster.stop_minion("web1").await;
    cluster.add_minion("web1", |_| {}).await;
    let out = cluster
        .brine(&["--out", "json", "web1", "grains.get", "role"])
        .await;
    assert_eq!(json(&out), json!({"web1": "web"}), "kept across a restart");

    let out = cluster
        .brine(&[
            "--out",
            "json",
            "web1",
            "grains.delval",
            "role",
            "destructive=true",
        ])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let cluster_ref = &cluster;
    eventually(
        "the master forgetting web1's grain",
        Duration::from_secs(10),
        || async move {
            let out = cluster_ref.brine(&["-G", "role:web", "test.ping"]).await;
            (out.code == 4).then_some(())
        },
    )
    .await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_job_is_found_and_killed_and_its_return_says_so() {
    let cluster = Cluster::start(&["web1"]).await;
    let out = cluster
        .brine(&["--async", "web1", "cmd.run", "sleep 60"])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let jid = out
        .stdout
        .split_whitespace()
        .last()
        .expect("a jid")
        .to_owned();

    let cluster_ref = &cluster;
    let jid_ref = jid.as_str();
    let found = eventually(
        "saltutil.find_job seeing the job",
        Duration::from_secs(10),
        || async move {
            let out = cluster_ref
                .brine(&["--out", "json", "web1", "saltutil.find_job", jid_ref])
                .await;
            let found = json(&out)["web1"].clone();
            (found != json!({})).then_some(found)
        },
    )
    .await;
    assert_eq!(found["fun"], json!("cmd.run"));
    assert_eq!(found["arg"], json!(["sleep 60"]));
    let out = cluster
        .brine(&["--out", "json", "web1", "saltutil.running"])
        .await;
    let running = json(&out)["web1"].clone();
    assert!(
        running
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["jid"] == json!(jid)),
        "{out:?}"
    );

    let out = cluster
        .brine(&["--out", "json", "web1", "saltutil.kill_job", &jid])
        .await;
    assert_eq!(json(&out), json!({"web1": true}), "{out:?}");
    let out = cluster
        .brine_run(&["--out", "json", "jobs.lookup", &jid, "--wait"])
        .await;
    assert_eq!(out.code, 1, "the killed job failed: {out:?}");
    assert_eq!(
        json(&out),
        json!({"web1": "cmd.run: killed by saltutil.kill_job"})
    );
    let out = cluster
        .brine(&["--out", "json", "web1", "saltutil.kill_job", &jid])
        .await;
    assert_eq!(out.code, 1, "{out:?}");
    cluster.stop().await;
}
