//! `brine --batch-size`: a window of minions at a time, through the real CLI against a real
//! master and minions.

use brine_tests::{json, Cluster};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_the_window_runs_at_once_and_every_minion_runs() {
    let ids = ["m1", "m2", "m3", "m4", "m5"];
    let cluster = Cluster::start(&ids).await;
    let log = cluster.dir.path().join("batch.log");
    let command = format!(
        "echo start >> {log}; sleep 0.2; echo end >> {log}; echo $BRINE_MINION_ID",
        log = log.display()
    );
    let out = cluster
        .brine(&[
            "--out",
            "json",
            "-b",
            "2",
            "*",
            "cmd.run",
            &command,
            "shell=true",
        ])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        json(&out),
        json!({"m1": "m1", "m2": "m2", "m3": "m3", "m4": "m4", "m5": "m5"})
    );
    let (mut running, mut most, mut starts) = (0i32, 0i32, 0);
    for line in std::fs::read_to_string(&log).unwrap().lines() {
        match line {
            "start" => {
                running += 1;
                starts += 1;
            }
            _ => running -= 1,
        }
        most = most.max(running);
    }
    assert_eq!(starts, 5);
    assert_eq!(most, 2, "the window is 2");
    assert!(
        out.stderr.contains("running on 5 minions, 2 at a time"),
        "{out:?}"
    );

    let out = cluster
        .brine(&["-b", "40%", "-t", "5", "*", "test.ping"])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("2 at a time"),
        "40% of 5, rounded up: {out:?}"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failhard_stops_new_starts_and_names_the_minions_not_run() {
    let mut cluster = Cluster::start(&["m1", "m2", "m3", "m4"]).await;
    cluster.stop_minion("m4").await;
    let out = cluster
        .brine(&[
            "--out",
            "json",
            "-b",
            "1",
            "--failhard",
            "*",
            "cmd.run",
            "test \"$BRINE_MINION_ID\" != m2",
            "shell=true",
        ])
        .await;
    assert_eq!(out.code, 3, "m4 did not return, m2 failed: {out:?}");
    let returns = json(&out);
    assert_eq!(returns["m1"], json!(""), "{out:?}");
    assert!(returns.get("m2").is_some(), "{out:?}");
    assert_eq!(
        returns["m4"],
        json!("Minion did not return. [Not connected]"),
        "{out:?}"
    );
    assert_eq!(
        returns["m3"],
        json!("Minion was not sent the job. [Not run]"),
        "listed, never omitted, and not as a refusal of m3's: {out:?}"
    );
    assert!(
        out.stderr.contains("--failhard: m2 failed; not run on: m3"),
        "{out:?}"
    );
    // The report names the batch's jobs, one per refill, and each can be looked up.
    let jids: Vec<String> = out
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("brine: the batch ran as job(s) "))
        .and_then(|rest| rest.split(':').next())
        .unwrap_or_else(|| panic!("no jids named: {out:?}"))
        .split(", ")
        .map(str::to_owned)
        .collect();
    assert_eq!(jids.len(), 2, "m1 then m2: {out:?}");
    for (jid, minion) in jids.iter().zip(["m1", "m2"]) {
        let lookup = cluster
            .brine_run(&["--out", "json", "jobs.lookup", jid])
            .await;
        let doc = json(&lookup);
        let ids: Vec<&String> = doc.as_object().expect("a map").keys().collect();
        assert_eq!(ids, [minion], "{lookup:?}");
    }
    // An id the target names without a key is answered for, and sent nothing.
    let out = cluster
        .brine(&["--out", "json", "-b", "1", "-L", "m1,ghost", "test.ping"])
        .await;
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(
        json(&out),
        json!({"m1": true, "ghost": "Minion did not return. [No accepted key]"}),
        "{out:?}"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_batch_options_are_usage_errors() {
    let cluster = Cluster::start(&["m1"]).await;
    for args in [
        &["-b", "0", "*", "test.ping"][..],
        &["-b", "101%", "*", "test.ping"],
        &["--batch-wait", "1", "*", "test.ping"],
        &["--failhard", "*", "test.ping"],
        &["-b", "1", "--async", "*", "test.ping"],
    ] {
        let out = cluster.brine(args).await;
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
    }
    let out = cluster.brine(&["-b", "1", "nothing*", "test.ping"]).await;
    assert_eq!(out.code, 4, "{out:?}");
    cluster.stop().await;
}
