//! The command-line tools against a real master and real minions.

use std::time::Duration;

use brine_proto::control::{ControlEvent, ControlRequest, JobQuery, MinionState};
use brine_tests::{json, Cluster, Output};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brine_pings_every_minion_and_exits_0() {
    let cluster = Cluster::start(&["web1", "web2", "db1"]).await;
    let out = cluster.brine(&["--out", "json", "*", "test.ping"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        json(&out),
        serde_json::json!({"db1": true, "web1": true, "web2": true})
    );

    let out = cluster.brine(&["*", "test.ping"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    for id in ["web1", "web2", "db1"] {
        assert!(out.stdout.contains(&format!("{id}:")), "{out:?}");
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_and_regex_targets_pick_exactly_their_minions() {
    let cluster = Cluster::start(&["web1", "web2", "db1", "db2"]).await;
    let out = cluster
        .brine(&["--out", "json", "-L", "web2,db1", "test.ping"])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(json(&out), serde_json::json!({"db1": true, "web2": true}));

    let out = cluster
        .brine(&["--out", "json", "-E", "db[0-9]$", "test.ping"])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(json(&out), serde_json::json!({"db1": true, "db2": true}));

    let out = cluster
        .brine(&["--out", "json", "web?", "test.echo", "hi"])
        .await;
    assert_eq!(json(&out), serde_json::json!({"web1": "hi", "web2": "hi"}));
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_matching_nothing_exits_4() {
    let cluster = Cluster::start(&["web1"]).await;
    let out = cluster.brine(&["nothing*", "test.ping"]).await;
    assert_eq!(out.code, 4, "{out:?}");
    assert!(out.stderr.contains("No minions matched"), "{out:?}");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_minion_is_reported_not_connected() {
    let mut cluster = Cluster::start(&["up1", "down1"]).await;
    cluster.stop_minion("down1").await;
    let out = cluster.brine(&["-v", "*", "test.ping"]).await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stdout.contains("up1:"), "{out:?}");
    assert!(out.stdout.contains("Not connected"), "{out:?}");

    let out = cluster.brine_run(&["--out", "json", "manage.status"]).await;
    assert_eq!(
        json(&out),
        serde_json::json!({"up": ["up1"], "down": ["down1"]}),
        "{out:?}"
    );
    cluster.stop().await;
}

/// `brine -t 1 '*' cmd.run ...` of a command that sleeps `seconds` on the minion "slow" only,
/// then prints "done".
async fn run_slow_on_slow(cluster: &Cluster, seconds: u32) -> Output {
    let command = format!(r#"test "$BRINE_MINION_ID" != slow || sleep {seconds}; echo done"#);
    let args = [
        "--out",
        "json",
        "-t",
        "1",
        "*",
        "cmd.run",
        &command,
        "shell=true",
    ];
    cluster.brine(&args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minion_still_running_at_the_deadline_is_waited_for() {
    let cluster = Cluster::start(&["fast1", "fast2", "slow"]).await;
    let out = run_slow_on_slow(&cluster, 3).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        json(&out),
        serde_json::json!({"fast1": "done", "fast2": "done", "slow": "done"})
    );
    assert!(
        out.stderr
            .contains("1 minion is still running the job (slow)"),
        "{out:?}"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_past_the_job_timeout_is_killed_and_reported_failed() {
    let cluster = Cluster::start_with(&["fast1", "fast2", "slow"], |master| {
        master.job_timeout = Duration::from_secs(2);
    })
    .await;
    let out = run_slow_on_slow(&cluster, 60).await;
    assert_eq!(out.code, 1, "{out:?}");
    let doc = json(&out);
    assert_eq!(doc["fast1"], "done");
    assert_eq!(doc["fast2"], "done");
    assert!(
        doc["slow"].as_str().unwrap().contains("timed out"),
        "{out:?}"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minion_rejects_a_disabled_function_with_the_reason() {
    let mut cluster = Cluster::start(&["open1"]).await;
    cluster
        .add_minion("locked", |minion| {
            minion.disabled_functions = vec!["cmd.*".into()];
        })
        .await;
    let out = cluster
        .brine(&["--out", "json", "*", "cmd.run", "echo hi"])
        .await;
    assert_eq!(out.code, 1, "{out:?}");
    let doc = json(&out);
    assert_eq!(doc["open1"], "hi");
    let refusal = doc["locked"].as_str().unwrap();
    assert!(
        refusal.starts_with("Job rejected: cmd.run is disabled"),
        "{out:?}"
    );

    // The job's record says rejected; the minion runs what is not disabled.
    let listed = cluster
        .master
        .control(ControlRequest::ListJobs(JobQuery::newest(1)))
        .await;
    let [ControlEvent::Jobs { jobs }] = &listed[..] else {
        panic!("{listed:?}");
    };
    let states = [
        ("locked", MinionState::Rejected),
        ("open1", MinionState::Returned),
    ];
    cluster
        .master
        .assert_job_states(&jobs[0].jid, &states)
        .await;
    let out = cluster.brine(&["--out", "json", "*", "test.ping"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cmd_run_from_the_cli_runs_through_a_shell_as_in_salt() {
    let cluster = Cluster::start(&["m1"]).await;
    let dir = tempfile::tempdir().unwrap();
    for name in ["a", "b", "c"] {
        std::fs::write(dir.path().join(name), "").unwrap();
    }
    let listing = format!("ls {} | wc -l", dir.path().display());
    let out = cluster
        .brine(&["--out", "json", "*", "cmd.run", &listing])
        .await;
    assert_eq!(
        (out.code, json(&out)),
        (0, serde_json::json!({"m1": "3"})),
        "{out:?}"
    );
    let out = cluster
        .brine(&["--out", "json", "*", "cmd.run", "echo $BRINE_MINION_ID"])
        .await;
    assert_eq!(json(&out), serde_json::json!({"m1": "m1"}), "{out:?}");
    // shell=false (or python_shell=False) passes the words to the program as they are.
    for off in ["shell=false", "python_shell=False"] {
        let out = cluster
            .brine(&["--out", "json", "*", "cmd.run", "echo $HOME | x", off])
            .await;
        assert_eq!(
            json(&out),
            serde_json::json!({"m1": "$HOME | x"}),
            "{off}: {out:?}"
        );
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cmd_run_returns_stdout_and_a_failing_retcode_exits_1() {
    let cluster = Cluster::start(&["m1"]).await;
    let out = cluster
        .brine(&["--out", "json", "*", "cmd.run", "echo hello world"])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(json(&out), serde_json::json!({"m1": "hello world"}));

    let out = cluster
        .brine(&[
            "--out",
            "json",
            "*",
            "cmd.run_all",
            "sh -c 'echo oops >&2; exit 3'",
        ])
        .await;
    assert_eq!(out.code, 1, "{out:?}");
    let doc = json(&out);
    assert_eq!(doc["m1"]["retcode"], 3);
    assert_eq!(doc["m1"]["stderr"], "oops");

    let out = cluster.brine(&["*", "tset.ping"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout.contains("test.ping"),
        "suggests the right name: {out:?}"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brine_run_lists_and_looks_up_jobs() {
    let cluster = Cluster::start(&["m1", "m2"]).await;
    let out = cluster.brine(&["--async", "*", "test.echo", "later"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let jid = out
        .stdout
        .split_whitespace()
        .last()
        .expect("a jid")
        .to_string();
    assert_eq!(jid.len(), 20, "{out:?}");

    let out = cluster
        .brine_run(&["--out", "json", "jobs.lookup", &jid, "--wait"])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        json(&out),
        serde_json::json!({"m1": "later", "m2": "later"})
    );

    let out = cluster.brine_run(&["jobs.list"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains(&jid), "{out:?}");
    assert!(out.stdout.contains("test.echo"), "{out:?}");
    cluster.stop().await;
}
