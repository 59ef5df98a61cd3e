//! The binaries against a scripted master: a real unix socket in a temporary directory that
//! reads the request frame and answers with a fixed list of event frames, then closes.

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use assert_cmd::cargo::cargo_bin_cmd;
use brine_proto::control::{
    ControlError, ControlEvent, ControlRequest, JobQuery, JobReport, MinionOutcome, MinionState,
    MinionStatus,
};
use brine_proto::frame::ControlCodec;
use brine_proto::{Jid, JobReturn, Map, MinionId, Target, Value};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixListener;
use tokio::time::timeout;
use tokio_util::codec::Framed;

const JID: &str = "20261125130201123456";
const LIMIT: Duration = Duration::from_secs(30);

fn jid() -> Jid {
    Jid::new(JID).unwrap()
}

fn id(s: &str) -> MinionId {
    MinionId::new(s).unwrap()
}

fn ret(minion: &str, value: Value, success: bool) -> JobReturn {
    let ret = JobReturn::new(id(minion), jid(), "test.ping", value).ran(0, 1);
    if success {
        ret
    } else {
        ret.failed()
    }
}

fn returned(r: &JobReturn) -> MinionOutcome {
    MinionOutcome {
        id: r.id.clone(),
        state: MinionState::Returned,
        ret: Some(r.clone()),
    }
}

fn missing(minion: &str, state: MinionState) -> MinionOutcome {
    MinionOutcome {
        id: id(minion),
        state,
        ret: None,
    }
}

fn report(minions: Vec<MinionOutcome>) -> JobReport {
    JobReport {
        jid: jid(),
        fun: "test.ping".into(),
        target: Target::Glob("*".into()),
        arg: vec![],
        kwarg: Map::new(),
        user: "root".into(),
        published_ms: 1_795_611_721_123,
        deadline_ms: 1_795_611_726_123,
        minions,
    }
}

fn published(ids: &[&str]) -> ControlEvent {
    ControlEvent::Published {
        jid: jid(),
        minions: ids.iter().map(|s| id(s)).collect(),
    }
}

/// Serves one connection with `events`, runs `bin` with `args` against it, and gives the
/// request the master received and the binary's output.
async fn exchange(bin: &str, args: &[&str], events: Vec<ControlEvent>) -> (ControlRequest, Output) {
    let dir = tempfile::tempdir().unwrap();
    let socket: PathBuf = dir.path().join("master.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let master = tokio::spawn(timeout(LIMIT, async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut frames = Framed::new(stream, ControlCodec);
        let body = frames.next().await.unwrap().unwrap();
        let request: ControlRequest = brine_proto::decode(&body).unwrap();
        for event in events {
            let bytes = Bytes::from(brine_proto::encode(&event));
            frames.send(bytes).await.unwrap();
        }
        frames.get_mut().shutdown().await.unwrap();
        request
    }));

    let mut cmd = match bin {
        "brine" => cargo_bin_cmd!("brine"),
        _ => cargo_bin_cmd!("brine-run"),
    };
    cmd.arg("--socket")
        .arg(&socket)
        .args(args)
        .env_remove("BRINE_SOCKET")
        .timeout(LIMIT);
    let output = timeout(LIMIT, tokio::task::spawn_blocking(move || cmd.output()))
        .await
        .expect("the binary finished in time")
        .unwrap()
        .unwrap();
    let request = master.await.unwrap().expect("the binary connected in time");
    (request, output)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn a_minion_not_connected_is_shown_and_exits_3() {
    let web1 = ret("web1", json!(true), true);
    let events = vec![
        published(&["web1", "web2"]),
        ControlEvent::Return(web1.clone()),
        ControlEvent::Done(report(vec![
            missing("web2", MinionState::NotConnected),
            returned(&web1),
        ])),
    ];
    let (request, out) = exchange(
        "brine",
        &["-t", "7", "web*", "test.echo", "hello", "42", "n=[1, 2]"],
        events,
    )
    .await;

    let ControlRequest::Publish(req) = request else {
        panic!("expected publish, got {request:?}");
    };
    assert_eq!(req.target, Target::Glob("web*".into()));
    assert_eq!(req.fun.as_str(), "test.echo");
    assert_eq!(Value::Array(req.arg), json!(["hello", 42]));
    assert_eq!(Value::Object(req.kwarg), json!({"n": [1, 2]}));
    assert_eq!(req.timeout_ms, 7000);
    assert!(req.wait);

    assert_eq!(out.status.code(), Some(3), "stderr: {}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "web1:\n    True\nweb2:\n    Minion did not return. [Not connected]\n"
    );
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
}

#[tokio::test]
async fn json_output_is_one_document_and_success_is_0() {
    let web1 = ret("web1", json!({"pid": 7}), true);
    let web2 = ret("web2", json!("ok"), true);
    let events = vec![
        published(&["web1", "web2"]),
        ControlEvent::Return(web2.clone()),
        ControlEvent::Return(web1.clone()),
        ControlEvent::Done(report(vec![returned(&web2), returned(&web1)])),
    ];
    let (_, out) = exchange("brine", &["--out", "json", "*", "test.ping"], events).await;
    assert_eq!(out.status.code(), Some(0));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc, json!({"web1": {"pid": 7}, "web2": "ok"}));
    assert!(text(&out.stdout).contains("\n    \"web1\""));
}

#[tokio::test]
async fn a_failed_function_is_1_and_verbose_names_the_job() {
    let web1 = ret("web1", json!("command not found"), false);
    let events = vec![
        published(&["web1", "web2"]),
        ControlEvent::Return(web1.clone()),
        ControlEvent::Done(report(vec![
            returned(&web1),
            returned(&ret("web2", json!(true), true)),
        ])),
    ];
    let (_, out) = exchange("brine", &["-v", "*", "cmd.run", "nope"], events).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with(&format!("Executing job with jid {JID}\n---")));
    assert_eq!(
        text(&out.stdout),
        "web1:\n    command not found\nweb2:\n    True\n"
    );
}

#[tokio::test]
async fn verbose_lists_the_missing_on_stderr() {
    let events = vec![
        published(&["web1"]),
        ControlEvent::Done(report(vec![missing("web1", MinionState::NoResponse)])),
    ];
    let (_, out) = exchange("brine", &["-v", "--out", "yaml", "*", "test.ping"], events).await;
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).ends_with("web1: Minion did not return. [No response]\n"));
    let doc: Value = serde_norway::from_slice(&out.stdout).unwrap();
    assert_eq!(doc, json!({"web1": "Minion did not return. [No response]"}));
}

#[tokio::test]
async fn no_matching_minion_is_4() {
    let events = vec![ControlEvent::Error {
        code: ControlError::NoMinions,
        message: "nothing matched".into(),
    }];
    let (_, out) = exchange("brine", &["nosuch*", "test.ping"], events).await;
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(text(&out.stderr), "No minions matched the target.\n");
    assert!(out.stdout.is_empty());
}

#[tokio::test]
async fn a_connection_closed_before_done_is_69() {
    let events = vec![
        published(&["web1"]),
        ControlEvent::Return(ret("web1", json!(true), true)),
    ];
    let (_, out) = exchange("brine", &["*", "test.ping"], events).await;
    assert_eq!(out.status.code(), Some(69));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("closed the connection before the job was done"));
    // The job exists: the jid to find it again is printed.
    assert!(
        stderr.contains(&format!("brine-run jobs.lookup {} --wait", jid())),
        "{stderr}"
    );
}

#[tokio::test]
async fn async_prints_the_jid_and_does_not_wait() {
    let (request, out) = exchange(
        "brine",
        &["--async", "*", "test.ping"],
        vec![published(&["web1"])],
    )
    .await;
    let ControlRequest::Publish(req) = request else {
        panic!("expected publish");
    };
    assert!(!req.wait);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout),
        format!("Executed command with job ID: {JID}\n")
    );
}

#[tokio::test]
async fn jobs_lookup_prints_like_brine() {
    let web1 = ret("web1", json!([1, 2]), true);
    let events = vec![ControlEvent::Done(report(vec![
        returned(&web1),
        missing("web2", MinionState::Running),
    ]))];
    let (request, out) = exchange("brine-run", &["jobs.lookup", JID], events).await;
    assert_eq!(
        request,
        ControlRequest::LookupJob {
            jid: jid(),
            wait: false
        }
    );
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        text(&out.stdout),
        "web1:\n    - 1\n    - 2\nweb2:\n    Minion has not returned yet. [Running]\n"
    );
}

#[tokio::test]
async fn jobs_lookup_of_an_unknown_jid_is_1() {
    let events = vec![ControlEvent::Error {
        code: ControlError::NotFound,
        message: format!("no job {JID}"),
    }];
    let (_, out) = exchange("brine-run", &["jobs.lookup", JID, "--wait"], events).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!("brine-run: not found: no job {JID}\n")
    );
}

#[tokio::test]
async fn manage_status_splits_up_and_down() {
    let status = |s: &str, connected| MinionStatus {
        id: id(s),
        connected,
        last_seen_ms: 0,
        version: "0.1.0".into(),
    };
    let events = vec![ControlEvent::Minions {
        minions: vec![status("web1", true), status("db1", false)],
        no_key: vec![],
    }];
    let (request, out) = exchange(
        "brine-run",
        &["manage.status", "--out", "json"],
        events.clone(),
    )
    .await;
    assert_eq!(request, ControlRequest::Minions {});
    assert_eq!(out.status.code(), Some(0));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc, json!({"up": ["web1"], "down": ["db1"]}));

    let (_, out) = exchange("brine-run", &["manage.down"], events).await;
    assert_eq!(text(&out.stdout), "- db1\n");
}

#[tokio::test]
async fn jobs_list_prints_a_table() {
    let events = vec![ControlEvent::Jobs {
        jobs: vec![brine_proto::control::JobSummary {
            jid: jid(),
            fun: "test.ping".into(),
            target: Target::Glob("*".into()),
            user: "root".into(),
            published_ms: 1_795_611_721_123,
            expected: 2,
            returned: 2,
        }],
    }];
    let (request, out) = exchange("brine-run", &["jobs.list", "--limit", "3"], events).await;
    assert_eq!(request, ControlRequest::ListJobs(JobQuery::newest(3)));
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("JID "), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "{JID}  test.ping  *       root  2026-11-25 13:02:01  2/2"
        )),
        "{stdout}"
    );
}
