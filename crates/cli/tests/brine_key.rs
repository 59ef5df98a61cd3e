//! `brine-key` against a scripted master: a real unix socket in a temporary directory that
//! answers each connection's request with events chosen by the test, and records the requests.
//! The binary is run for its surface (flags, help, exit codes, the --yes rule, output); the
//! question at a terminal is driven in-process through `brine_cli::key::run`.

use std::io;
use std::path::PathBuf;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use assert_cmd::cargo::cargo_bin_cmd;
use brine_cli::key::{self, Cli};
use brine_cli::{exit, CommandError};
use brine_proto::control::{
    ControlError, ControlEvent, ControlRequest, KeyCommand, KeyInfo, KeySelection, KeyState,
};
use brine_proto::frame::ControlCodec;
use brine_proto::MinionId;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixListener;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_util::codec::Framed;

const LIMIT: Duration = Duration::from_secs(30);
const MASTER_FP: &str = "e3:b0:c4:42:98:fc:1c:14:9a:fb:f4:c8:99:6f:b9:24:\
                         27:ae:41:e4:64:9b:93:4c:a4:95:99:1b:78:52:b8:55";
const FP_1: &str = "00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:\
                    00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff";
const FP_2: &str = "ff:ee:dd:cc:bb:aa:99:88:77:66:55:44:33:22:11:00:\
                    ff:ee:dd:cc:bb:aa:99:88:77:66:55:44:33:22:11:00";

fn id(s: &str) -> MinionId {
    MinionId::new(s).unwrap()
}

fn key(minion: &str, state: KeyState, fingerprint: &str) -> KeyInfo {
    KeyInfo {
        id: id(minion),
        state,
        fingerprint: fingerprint.to_owned(),
    }
}

fn keys(keys: Vec<KeyInfo>) -> ControlEvent {
    ControlEvent::Keys {
        master_fingerprint: MASTER_FP.to_owned(),
        keys,
    }
}

/// What the scripted master knows: web1 accepted, db1 pending.
fn known() -> Vec<KeyInfo> {
    vec![
        key("web1", KeyState::Accepted, FP_1),
        key("db1", KeyState::Pending, FP_2),
    ]
}

type Answer = dyn Fn(&ControlRequest) -> Vec<ControlEvent> + Send + Sync;

/// A master that answers every connection with `answer(request)`, then closes it.
struct FakeMaster {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    requests: Arc<Mutex<Vec<ControlRequest>>>,
    task: JoinHandle<()>,
}

impl FakeMaster {
    fn start(
        answer: impl Fn(&ControlRequest) -> Vec<ControlEvent> + Send + Sync + 'static,
    ) -> Self {
        let answer: Arc<Answer> = Arc::new(answer);
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("master.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let mut frames = Framed::new(stream, ControlCodec);
                let body = frames.next().await.unwrap().unwrap();
                let request: ControlRequest = brine_proto::decode(&body).unwrap();
                let events = answer(&request);
                seen.lock().unwrap().push(request);
                for event in events {
                    frames
                        .send(Bytes::from(brine_proto::encode(&event)))
                        .await
                        .unwrap();
                }
                frames.get_mut().shutdown().await.unwrap();
            }
        });
        Self {
            _dir: dir,
            socket,
            requests,
            task,
        }
    }

    /// Answers `list` with [`known`] and anything else with `events`.
    fn answering(events: Vec<ControlEvent>) -> Self {
        Self::start(move |request| match request {
            ControlRequest::Keys(KeyCommand::List {}) => vec![keys(known())],
            _ => events.clone(),
        })
    }

    fn requests(&self) -> Vec<ControlRequest> {
        self.requests.lock().unwrap().clone()
    }

    /// Runs the binary with `args` against this master (stdin: `stdin`, never a terminal).
    async fn brine_key(&self, args: &[&str], stdin: &str) -> Output {
        let mut cmd = cargo_bin_cmd!("brine-key");
        cmd.arg("--socket")
            .arg(&self.socket)
            .args(args)
            .env_remove("BRINE_SOCKET")
            .env("NO_COLOR", "1")
            .write_stdin(stdin.to_owned())
            .timeout(LIMIT);
        timeout(LIMIT, tokio::task::spawn_blocking(move || cmd.output()))
            .await
            .expect("brine-key finished in time")
            .unwrap()
            .unwrap()
    }
}

impl Drop for FakeMaster {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn offline(args: &[&str]) -> Output {
    cargo_bin_cmd!("brine-key")
        .args(args)
        .env_remove("BRINE_SOCKET")
        .timeout(LIMIT)
        .output()
        .unwrap()
}

#[test]
fn help_lists_the_subcommands_and_exit_codes() {
    let out = offline(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for word in [
        "list",
        "accept",
        "reject",
        "delete",
        "finger",
        "master-finger",
        "BRINE_SOCKET",
        "--out",
        "Exit codes:",
        "Proceed? [y/N]",
    ] {
        assert!(help.contains(word), "{word:?} missing from\n{help}");
    }
    for code in ["  0 ", "  1 ", "  2 ", "  69 "] {
        assert!(help.contains(code), "{code:?} missing from\n{help}");
    }

    let out = offline(&["accept", "--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for word in ["--all", "--fingerprint", "--yes", "--print-fingerprint"] {
        assert!(help.contains(word), "{word:?} missing from\n{help}");
    }
}

#[test]
fn version_names_the_program() {
    let out = offline(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout),
        format!("brine-key {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn an_unreachable_master_is_69_with_one_clear_line() {
    for args in [
        &["--socket", "/nonexistent", "list"][..],
        &["master-finger", "--socket", "/nonexistent"],
        &["--socket", "/nonexistent", "accept", "web1", "--yes"],
    ] {
        let out = offline(args);
        assert_eq!(out.status.code(), Some(69), "{args:?}");
        assert!(out.stdout.is_empty());
        assert_eq!(
            text(&out.stderr),
            "brine-key: cannot reach the master at /nonexistent: No such file or directory \
             (is brine-master running?)\n"
        );
    }
}

#[test]
fn bad_ids_fingerprints_and_flag_mixes_are_usage_errors() {
    for args in [
        &["accept"][..],
        &["accept", "--all", "web1"],
        &["accept", "../etc"],
        &["accept", "web1", "--fingerprint", "ab:cd:ef"],
        &["reject"],
        &["delete", "a b"],
        &["list", "--out", "xml"],
    ] {
        let out = offline(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty());
    }
    let out = offline(&["accept", "web1", "--fingerprint", "nope"]);
    assert!(
        text(&out.stderr).contains("32 hex pairs like ab:cd:ef"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn changes_without_a_terminal_need_yes_and_send_nothing() {
    let master = FakeMaster::answering(vec![]);
    for args in [
        &["accept", "db1"][..],
        &["accept", "--all"],
        &["reject", "web1"],
        &["delete", "web1"],
    ] {
        // Even a "y" on a pipe is not a confirmation: scripts must say --yes.
        let out = master.brine_key(args, "y\n").await;
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty());
        let err = text(&out.stderr);
        assert!(
            err.starts_with("brine-key: stdin is not a terminal"),
            "{err}"
        );
        assert!(err.contains("--yes"), "{err}");
    }
    assert_eq!(master.requests(), vec![], "nothing reached the master");
}

#[tokio::test]
async fn list_for_scripts_groups_keys_by_state() {
    let master = FakeMaster::answering(vec![]);
    let out = master.brine_key(&["list", "--out", "json"], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc,
        json!({
            "master_fingerprint": MASTER_FP,
            "accepted": [{"id": "web1", "fingerprint": FP_1}],
            "pending": [{"id": "db1", "fingerprint": FP_2}],
            "rejected": [],
            "denied": [],
            "preaccepted": [],
        })
    );
    assert_eq!(
        master.requests(),
        vec![ControlRequest::Keys(KeyCommand::List {})]
    );

    let out = master.brine_key(&["list", "--out", "yaml"], "").await;
    let yaml: serde_json::Value = serde_norway::from_slice(&out.stdout).unwrap();
    assert_eq!(yaml, doc);
}

#[tokio::test]
async fn list_for_people_is_salt_keys_layout() {
    let master = FakeMaster::answering(vec![]);
    let out = master.brine_key(&["list"], "").await;
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout),
        format!(
            "Accepted Keys:\nweb1  {FP_1}\nDenied Keys:\nUnaccepted Keys:\ndb1   {FP_2}\n\
             Rejected Keys:\n"
        )
    );
}

#[tokio::test]
async fn accept_with_yes_sends_ids_and_fingerprint_and_prints_each_key() {
    let master = FakeMaster::answering(vec![keys(vec![key("db1", KeyState::Accepted, FP_2)])]);
    let out = master
        .brine_key(&["accept", "db1", "--fingerprint", FP_2, "--yes"], "")
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("Key for minion db1 accepted: {FP_2}\n")
    );
    assert_eq!(
        master.requests(),
        vec![ControlRequest::Keys(KeyCommand::Accept {
            ids: vec![id("db1")],
            fingerprint: Some(FP_2.into()),
            preaccept: false,
        })],
        "--yes goes straight to the change"
    );

    let out = master
        .brine_key(&["--out", "json", "accept", "--all", "-y"], "")
        .await;
    assert_eq!(out.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc,
        json!({"accepted": [{"id": "db1", "fingerprint": FP_2}]})
    );
    assert_eq!(
        master.requests()[1],
        ControlRequest::Keys(KeyCommand::Accept {
            ids: vec![],
            fingerprint: None,
            preaccept: false,
        })
    );
}

#[tokio::test]
async fn accept_all_with_nothing_pending_is_0() {
    let master = FakeMaster::answering(vec![keys(vec![])]);
    let out = master.brine_key(&["accept", "--all", "--yes"], "").await;
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "No key was accepted.\n");
}

#[tokio::test]
async fn a_fingerprint_mismatch_is_1_with_the_masters_message() {
    let message = format!("the key of db1 has fingerprint {FP_2}, not {FP_1}: not accepted");
    let master = FakeMaster::answering(vec![ControlEvent::Error {
        code: ControlError::BadRequest,
        message: message.clone(),
    }]);
    let out = master
        .brine_key(&["accept", "db1", "--fingerprint", FP_1, "--yes"], "")
        .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(text(&out.stderr), format!("brine-key: {message}\n"));
}

#[tokio::test]
async fn an_unknown_id_is_1_with_the_masters_message() {
    let master = FakeMaster::answering(vec![ControlEvent::Error {
        code: ControlError::NotFound,
        message: "web9 has no pending or accepted key".into(),
    }]);
    let out = master.brine_key(&["reject", "web9", "--yes"], "").await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "brine-key: web9 has no pending or accepted key\n"
    );
    assert_eq!(
        master.requests(),
        vec![ControlRequest::Keys(KeyCommand::Reject(KeySelection::id(
            &id("web9")
        )))]
    );
}

#[tokio::test]
async fn reject_and_delete_with_yes_print_the_keys_they_changed() {
    let master = FakeMaster::start(|request| match request {
        ControlRequest::Keys(KeyCommand::Reject { .. }) => {
            vec![keys(vec![key("web1", KeyState::Rejected, FP_1)])]
        }
        ControlRequest::Keys(KeyCommand::Delete { .. }) => vec![keys(vec![
            key("web1", KeyState::Accepted, FP_1),
            key("web1", KeyState::Denied, FP_2),
        ])],
        _ => vec![],
    });
    let out = master.brine_key(&["reject", "web1", "--yes"], "").await;
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout),
        format!("Key for minion web1 rejected: {FP_1}\n")
    );
    let out = master.brine_key(&["delete", "web1", "-y"], "").await;
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout),
        format!(
            "Key for minion web1 deleted: {FP_1} (was accepted)\n\
             Key for minion web1 deleted: {FP_2} (was denied)\n"
        )
    );
    assert_eq!(
        master.requests()[1],
        ControlRequest::Keys(KeyCommand::Delete(KeySelection::id(&id("web1"))))
    );
}

#[tokio::test]
async fn finger_and_master_finger() {
    let master = FakeMaster::answering(vec![]);
    let out = master.brine_key(&["master-finger"], "").await;
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), format!("{MASTER_FP}\n"));

    let out = master.brine_key(&["finger"], "").await;
    assert_eq!(
        text(&out.stdout),
        format!(
            "Master Key:\n{MASTER_FP}\nAccepted Keys:\nweb1  {FP_1}\nUnaccepted Keys:\ndb1   {FP_2}\n"
        )
    );
    let out = master.brine_key(&["finger", "db1"], "").await;
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout),
        format!("Unaccepted Keys:\ndb1  {FP_2}\n")
    );

    let out = master.brine_key(&["finger", "web9"], "").await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "brine-key: web9 has no key\n");
}

#[tokio::test]
async fn a_master_that_says_nothing_or_shuts_down_is_69() {
    let master = FakeMaster::start(|_| vec![]);
    let out = master.brine_key(&["list"], "").await;
    assert_eq!(out.status.code(), Some(69));
    assert_eq!(
        text(&out.stderr),
        "brine-key: the master closed the connection without answering\n"
    );
    let master = FakeMaster::start(|_| {
        vec![ControlEvent::Error {
            code: ControlError::ShuttingDown,
            message: "stopping".into(),
        }]
    });
    let out = master.brine_key(&["accept", "db1", "--yes"], "").await;
    assert_eq!(out.status.code(), Some(69));
}

/// Runs `brine-key` in-process as if stdin were a terminal, answering the question with
/// `answer`; gives the result, what it printed and the questions asked.
async fn at_terminal(
    master: &FakeMaster,
    args: &[&str],
    answer: bool,
) -> (Result<u8, CommandError>, String, Vec<String>) {
    let socket = master.socket.to_str().unwrap();
    let cli = Cli::parse_args(
        ["brine-key", "--socket", socket]
            .into_iter()
            .chain(args.iter().copied()),
    )
    .unwrap();
    let mut questions = Vec::new();
    let mut ask = |q: &str| -> io::Result<bool> {
        questions.push(q.to_owned());
        Ok(answer)
    };
    let mut out = Vec::new();
    let result = timeout(LIMIT, key::run(&cli, &mut out, false, Some(&mut ask)))
        .await
        .expect("brine-key finished in time");
    (result, text(&out), questions)
}

#[tokio::test]
async fn at_a_terminal_the_keys_are_shown_and_yes_changes_exactly_them() {
    let master = FakeMaster::answering(vec![keys(vec![key("db1", KeyState::Accepted, FP_2)])]);
    let (result, out, questions) = at_terminal(&master, &["accept", "--all"], true).await;
    assert_eq!(result.unwrap(), exit::SUCCESS);
    assert_eq!(
        questions,
        vec![format!(
            "The following keys are going to be accepted:\nUnaccepted Keys:\ndb1  {FP_2}\n\
             Proceed? [y/N] "
        )]
    );
    assert_eq!(out, format!("Key for minion db1 accepted: {FP_2}\n"));
    // The ids shown, pinned to the one fingerprint shown: a key that arrives between the
    // question and the answer is not accepted.
    assert_eq!(
        master.requests(),
        vec![
            ControlRequest::Keys(KeyCommand::List {}),
            ControlRequest::Keys(KeyCommand::Accept {
                ids: vec![id("db1")],
                fingerprint: Some(FP_2.into()),
                preaccept: false,
            }),
        ]
    );
}

#[tokio::test]
async fn at_a_terminal_no_changes_nothing_and_is_1() {
    let master = FakeMaster::answering(vec![]);
    let (result, out, questions) = at_terminal(&master, &["reject", "web1"], false).await;
    let err = result.unwrap_err();
    assert_eq!(err.exit_code(), exit::FAILED);
    assert_eq!(
        err.message("brine-key").unwrap(),
        "brine-key: not confirmed: no key was changed"
    );
    assert!(out.is_empty());
    assert_eq!(
        questions,
        vec![format!(
            "The following keys are going to be rejected:\nAccepted Keys:\nweb1  {FP_1}\n\
             Proceed? [y/N] "
        )]
    );
    assert_eq!(
        master.requests(),
        vec![ControlRequest::Keys(KeyCommand::List {})]
    );
}

#[tokio::test]
async fn at_a_terminal_an_id_without_a_key_is_refused_without_a_question() {
    let master = FakeMaster::answering(vec![]);
    let (result, _, questions) = at_terminal(&master, &["accept", "web1"], true).await;
    let err = result.unwrap_err();
    assert_eq!(err.exit_code(), exit::FAILED);
    assert_eq!(err.to_string(), "web1 has no pending or rejected key");
    assert!(questions.is_empty());

    // With nothing pending there is nothing to ask.
    let empty = FakeMaster::start(|_| vec![keys(vec![])]);
    let (result, out, questions) = at_terminal(&empty, &["accept", "--all"], true).await;
    assert_eq!(result.unwrap(), exit::SUCCESS);
    assert_eq!(out, "No key was accepted.\n");
    assert!(questions.is_empty());
    assert_eq!(
        empty.requests(),
        vec![ControlRequest::Keys(KeyCommand::List {})]
    );

    let (result, _, questions) = at_terminal(&master, &["delete", "nobody"], true).await;
    assert_eq!(result.unwrap_err().to_string(), "nobody has no key");
    assert!(questions.is_empty());
}

#[tokio::test]
async fn salt_key_flags_send_what_their_subcommands_send() {
    let master = FakeMaster::answering(vec![keys(vec![])]);
    let out = master.brine_key(&["-a", "db*", "-y"], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // A glob: the keys are listed, and the ids of the pending ones it matches are sent.
    assert_eq!(
        master.requests(),
        vec![
            ControlRequest::Keys(KeyCommand::List {}),
            ControlRequest::Keys(KeyCommand::Accept {
                ids: vec![id("db1")],
                fingerprint: Some(FP_2.into()),
                preaccept: false,
            }),
        ]
    );
    // An id goes straight to the master, as `accept db1 --yes` does.
    let out = master.brine_key(&["-ya", "db1"], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        master.requests()[2],
        ControlRequest::Keys(KeyCommand::Accept {
            ids: vec![id("db1")],
            fingerprint: None,
            preaccept: false,
        })
    );
    // A glob that matches no pending key sends nothing more.
    let out = master.brine_key(&["-a", "web*", "-y"], "").await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "brine-key: web* has no pending key\n");
    assert_eq!(master.requests().len(), 4, "the list only");

    for (flags, sent) in [
        (
            &["-r", "web1,db1", "-y"][..],
            KeyCommand::Reject(KeySelection {
                ids: vec!["web1".into(), "db1".into()],
                states: vec![KeyState::Pending],
            }),
        ),
        (
            &["-R", "-y"],
            KeyCommand::Reject(KeySelection {
                ids: vec!["*".into()],
                states: vec![KeyState::Pending],
            }),
        ),
        (
            &["-d", "web*", "-y"],
            KeyCommand::Delete(KeySelection {
                ids: vec!["web*".into()],
                states: vec![],
            }),
        ),
        (
            &["-D", "-y"],
            KeyCommand::Delete(KeySelection {
                ids: vec!["*".into()],
                states: vec![],
            }),
        ),
    ] {
        let out = master.brine_key(flags, "").await;
        assert_eq!(
            out.status.code(),
            Some(0),
            "{flags:?}: {}",
            text(&out.stderr)
        );
        assert_eq!(
            master.requests().last(),
            Some(&ControlRequest::Keys(sent)),
            "{flags:?}"
        );
    }
}

#[tokio::test]
async fn salt_key_flags_list_and_finger_as_the_subcommands_do() {
    let master = FakeMaster::answering(vec![]);
    for (flags, subcommand) in [
        (&["-L"][..], &["list"][..]),
        (&["-l", "all"], &["list"]),
        (&["-L", "--out", "json"], &["list", "--out", "json"]),
        (&["-F"], &["finger"]),
        (&["-f", "db1"], &["finger", "db1"]),
    ] {
        let flagged = master.brine_key(flags, "").await;
        let plain = master.brine_key(subcommand, "").await;
        assert_eq!(flagged.status.code(), Some(0), "{flags:?}");
        assert_eq!(text(&flagged.stdout), text(&plain.stdout), "{flags:?}");
    }
    let out = master.brine_key(&["-l", "un"], "").await;
    assert_eq!(
        text(&out.stdout),
        format!("Unaccepted Keys:\ndb1  {FP_2}\n")
    );
    let out = master.brine_key(&["-l", "acc", "--out", "json"], "").await;
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc,
        json!({
            "master_fingerprint": MASTER_FP,
            "accepted": [{"id": "web1", "fingerprint": FP_1}],
        })
    );
    let out = master.brine_key(&["-f", "w*"], "").await;
    assert_eq!(text(&out.stdout), format!("Accepted Keys:\nweb1  {FP_1}\n"));
}

#[tokio::test]
async fn salt_key_flags_without_yes_or_a_terminal_change_nothing() {
    let master = FakeMaster::answering(vec![]);
    for flags in [&["-a", "db1"][..], &["-A"], &["-r", "db*"], &["-D"]] {
        let out = master.brine_key(flags, "y\n").await;
        assert_eq!(out.status.code(), Some(2), "{flags:?}");
        assert!(text(&out.stderr).contains("--yes"), "{flags:?}");
    }
    assert_eq!(master.requests(), vec![], "nothing reached the master");
}

#[tokio::test]
async fn at_a_terminal_a_glob_shows_the_pending_keys_it_matches() {
    let master = FakeMaster::answering(vec![keys(vec![key("db1", KeyState::Accepted, FP_2)])]);
    let (result, _, questions) = at_terminal(&master, &["-a", "*"], true).await;
    assert_eq!(result.unwrap(), exit::SUCCESS);
    assert_eq!(
        questions,
        vec![format!(
            "The following keys are going to be accepted:\nUnaccepted Keys:\ndb1  {FP_2}\n\
             Proceed? [y/N] "
        )],
        "web1 is accepted already"
    );
    assert_eq!(
        master.requests()[1],
        ControlRequest::Keys(KeyCommand::Accept {
            ids: vec![id("db1")],
            fingerprint: Some(FP_2.into()),
            preaccept: false,
        })
    );
}
