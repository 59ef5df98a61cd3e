//! `brine`'s output options against a real master and minions: txt, ndjson, --static,
//! --summary, and the progress line, which appears only when stderr is a terminal.

use brine_tests::{binary, within, Cluster};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txt_ndjson_and_the_summary_give_every_minion() {
    let mut cluster = Cluster::start(&["web1", "web2", "down1"]).await;
    cluster.stop_minion("down1").await;
    let out = cluster
        .brine(&["--out", "txt", "-t", "1", "*", "cmd.run", "printf 'a\\nb'"])
        .await;
    assert_eq!(out.code, 3, "{out:?}");
    let mut lines: Vec<&str> = out.stdout.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        [
            "down1: Minion did not return. [Not connected]",
            "web1: a",
            "web1: b",
            "web2: a",
            "web2: b"
        ],
        "{out:?}"
    );

    let out = cluster
        .brine(&["--out", "ndjson", "--summary", "-t", "1", "*", "test.ping"])
        .await;
    let mut lines: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    lines.sort_by_key(|l| l.to_string());
    assert_eq!(
        lines,
        [
            json!({"down1": "Minion did not return. [Not connected]"}),
            json!({"web1": true}),
            json!({"web2": true})
        ]
    );
    assert!(
        out.stderr.contains("# of minions targeted: 3")
            && out.stderr.contains("# of minions that did not return: 1"),
        "the summary goes to stderr beside data: {out:?}"
    );

    let out = cluster
        .brine(&["--static", "--summary", "-t", "1", "web*", "test.ping"])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .starts_with("web1:\n    True\nweb2:\n    True\n----"),
        "{out:?}"
    );
    assert!(
        out.stdout.contains("# of minions with errors: 0"),
        "{out:?}"
    );
    assert!(
        !out.stderr.contains("returned,"),
        "no progress off a terminal: {out:?}"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_sees_the_progress_line_and_it_is_erased() {
    let cluster = Cluster::start(&["web1", "web2"]).await;
    // `script` gives the command a terminal; it copies what the terminal showed to stdout.
    let brine = binary("brine");
    let command = format!(
        "{} -t 5 '*' cmd.run 'sleep 0.3; echo done' shell=true",
        brine.display()
    );
    let output = within(
        "brine on a terminal",
        tokio::process::Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .env("BRINE_SOCKET", &cluster.master.socket)
            .env("NO_COLOR", "1")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("script runs");
    let screen = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{screen}");
    assert!(screen.contains("0/2 returned, 0 running"), "{screen:?}");
    assert!(
        screen.contains("returned, 1 running") || screen.contains("returned, 2 running"),
        "receipts show as running: {screen:?}"
    );
    assert!(
        screen.contains("\r\x1b[K"),
        "the line is erased: {screen:?}"
    );
    assert!(
        screen.contains("web1:") && screen.contains("done"),
        "{screen:?}"
    );
    cluster.stop().await;
}
