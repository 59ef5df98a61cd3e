//! `brine-key` against a real master that does not accept keys by itself, with real minions:
//! enrollment (pending → accepted, checked by fingerprint), rejection (the minion is cut off
//! and the group key rotates), a second key for a known id (denied, never served), deletion
//! (the minion comes back as pending) and the master's own fingerprint; and the same through
//! salt-key's flags (`-L`, `-l un`, `-a 'web*' -y`, `-A`, `-r`, `-R`, `-d`, `-D`, `-f`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use brine_master::MasterConfig;
use brine_minion::MinionConfig;
use brine_proto::codec::BodyKind;
use brine_proto::control::{ControlEvent, ControlRequest, KeyCommand, KeyInfo, KeyState};
use brine_proto::msg::{PublicationHeader, SignedPublication};
use brine_proto::{decode, Envelope};
use brine_tests::{
    cli, journal_mentions, json, master_config, printed_fingerprint, report, within, Output,
    TestMaster, TestMinion,
};
use serde_json::json;
use zeromq::{Socket, SocketRecv, SubSocket};

/// A master that leaves every new key pending.
async fn start_master(dir: &Path) -> TestMaster {
    TestMaster::start_with(MasterConfig {
        auto_accept: false,
        ..master_config(dir, 0, 0)
    })
    .await
}

async fn brine_key(master: &TestMaster, args: &[&str]) -> Output {
    cli("brine-key", &master.socket, args).await
}

async fn brine(master: &TestMaster, args: &[&str]) -> Output {
    cli("brine", &master.socket, args).await
}

/// Every key the master has, straight from the control socket.
async fn keys(master: &TestMaster) -> Vec<KeyInfo> {
    match master
        .control(ControlRequest::Keys(KeyCommand::List {}))
        .await
        .as_slice()
    {
        [ControlEvent::Keys { keys, .. }] => keys.clone(),
        other => panic!("expected keys, got {other:?}"),
    }
}

/// Waits until `id` has a key in `state`; gives its fingerprint.
async fn wait_key(master: &TestMaster, id: &str, state: KeyState) -> String {
    within(&format!("the key of {id} becoming {state:?}"), async {
        loop {
            let found = keys(master)
                .await
                .into_iter()
                .find(|k| k.id.as_str() == id && k.state == state);
            if let Some(key) = found {
                return key.fingerprint;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

/// The keys of `id` as (state, fingerprint), sorted.
async fn states_of(master: &TestMaster, id: &str) -> Vec<(KeyState, String)> {
    let mut states: Vec<(KeyState, String)> = keys(master)
        .await
        .into_iter()
        .filter(|k| k.id.as_str() == id)
        .map(|k| (k.state, k.fingerprint))
        .collect();
    states.sort();
    states
}

/// A minion of `master` with state in `state_dir`, started; gives it and its state directory.
fn start_minion(master: &TestMaster, dir: &Path, id: &str) -> (TestMinion, PathBuf) {
    let config = master.minion_config(dir, id);
    let state_dir = config.state_dir.clone();
    (TestMinion::start_with(config), state_dir)
}

/// A minion whose key was accepted with `brine-key accept --fingerprint`, connected.
async fn accepted_minion(master: &TestMaster, dir: &Path, id: &str) -> (TestMinion, String) {
    let (minion, _) = start_minion(master, dir, id);
    let fingerprint = wait_key(master, id, KeyState::Pending).await;
    let out = brine_key(
        master,
        &["accept", id, "--fingerprint", &fingerprint, "--yes"],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    master.wait_connected(&[id]).await;
    (minion, fingerprint)
}

/// Every line of the master's audit log.
fn audit_lines(master: &TestMaster) -> Vec<serde_json::Value> {
    std::fs::read_to_string(master.state_dir.join("audit.log"))
        .expect("the audit log")
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Another well-formed fingerprint.
fn other_than(fingerprint: &str) -> String {
    let first = if fingerprint.starts_with('0') {
        "1"
    } else {
        "0"
    };
    format!("{first}{}", &fingerprint[1..])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_key_is_pending_with_the_minions_fingerprint_and_gets_no_job() {
    let dir = tempfile::tempdir().unwrap();
    let master = start_master(dir.path()).await;
    let (minion, state_dir) = start_minion(&master, dir.path(), "web1");
    let fingerprint = wait_key(&master, "web1", KeyState::Pending).await;
    assert_eq!(printed_fingerprint("web1", &state_dir).await, fingerprint);

    let out = brine_key(&master, &["list", "--out", "json"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        json(&out),
        json!({
            "master_fingerprint": master.fingerprint,
            "accepted": [],
            "pending": [{"id": "web1", "fingerprint": fingerprint}],
            "rejected": [],
            "denied": [],
            "preaccepted": [],
        })
    );
    let out = brine_key(&master, &["list"]).await;
    assert_eq!(
        out.stdout,
        format!(
            "Accepted Keys:\nDenied Keys:\nUnaccepted Keys:\nweb1  {fingerprint}\nRejected Keys:\n"
        ),
        "{out:?}"
    );
    let out = brine_key(&master, &["finger", "web1"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        format!("Unaccepted Keys:\nweb1  {fingerprint}\n")
    );

    // While pending it is no minion of the master's.
    let out = brine(&master, &["*", "test.ping"]).await;
    assert_eq!(out.code, 4, "{out:?}");

    // A script must say --yes: nothing changes without it.
    let out = brine_key(&master, &["accept", "web1"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("--yes"), "{out:?}");
    assert_eq!(
        states_of(&master, "web1").await,
        vec![(KeyState::Pending, fingerprint)]
    );

    minion.stop().await;
    master.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_checks_the_fingerprint_then_the_minion_answers() {
    let dir = tempfile::tempdir().unwrap();
    let master = start_master(dir.path()).await;
    let (minion, _) = start_minion(&master, dir.path(), "web1");
    let fingerprint = wait_key(&master, "web1", KeyState::Pending).await;

    let wrong = other_than(&fingerprint);
    let out = brine_key(
        &master,
        &["accept", "web1", "--fingerprint", &wrong, "--yes"],
    )
    .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert!(out.stderr.starts_with("brine-key: "), "{out:?}");
    assert!(
        out.stderr.contains(&fingerprint) && out.stderr.contains("not accepted"),
        "{out:?}"
    );
    assert_eq!(
        states_of(&master, "web1").await,
        vec![(KeyState::Pending, fingerprint.clone())]
    );
    // The audit log says it was allowed, then refused, and why: nothing was accepted.
    let lines = audit_lines(&master);
    let [.., allowed, refused] = lines.as_slice() else {
        panic!("no audit lines: {lines:?}");
    };
    assert_eq!(
        (&allowed["outcome"], &refused["outcome"]),
        (&json!("allowed"), &json!("refused")),
        "{lines:?}"
    );
    assert_eq!(refused["action"], "accept", "{refused}");
    assert!(
        refused["reason"].as_str().unwrap().contains("not accepted"),
        "{refused}"
    );

    let out = brine_key(
        &master,
        &["accept", "web1", "--fingerprint", &fingerprint, "--yes"],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        format!("Key for minion web1 accepted: {fingerprint}\n")
    );
    assert_eq!(
        states_of(&master, "web1").await,
        vec![(KeyState::Accepted, fingerprint)]
    );

    // It retries with backoff and gets in.
    master.wait_connected(&["web1"]).await;
    let out = brine(&master, &["--out", "json", "*", "test.ping"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(json(&out), json!({"web1": true}));

    // Accepting it again: it has no pending key any more.
    let out = brine_key(&master, &["accept", "web1", "--yes"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("web1"), "{out:?}");

    minion.stop().await;
    master.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_all_takes_every_pending_key() {
    let dir = tempfile::tempdir().unwrap();
    let master = start_master(dir.path()).await;
    let minions = master.start_minions(dir.path(), &["web1", "web2"]);
    let fp1 = wait_key(&master, "web1", KeyState::Pending).await;
    let fp2 = wait_key(&master, "web2", KeyState::Pending).await;

    let out = brine_key(&master, &["--out", "json", "accept", "--all", "--yes"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        json(&out),
        json!({"accepted": [
            {"id": "web1", "fingerprint": fp1},
            {"id": "web2", "fingerprint": fp2},
        ]})
    );
    master.wait_connected(&["web1", "web2"]).await;
    master.ping_all(2).await;

    let out = brine_key(&master, &["accept", "--all", "--yes"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "No key was accepted.\n");

    TestMinion::stop_all(minions).await;
    master.stop().await;
}

/// The group key epoch of the master's next heartbeat.
async fn next_epoch(sub: &mut SubSocket) -> u32 {
    within("a heartbeat on the publish port", async {
        loop {
            let message = sub.recv().await.expect("a publication");
            let frame = message.into_vec().swap_remove(1); // after the topic
            let envelope = Envelope::from_bytes(&frame).expect("an envelope");
            assert_eq!(envelope.kind, BodyKind::Signed);
            let signed: SignedPublication = decode(&envelope.body).expect("signed");
            let header: PublicationHeader = decode(&signed.header).expect("header");
            if header.jid.is_none() {
                return header.group_epoch;
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_minion_is_cut_off_and_the_group_key_rotates() {
    let dir = tempfile::tempdir().unwrap();
    let master = start_master(dir.path()).await;
    let (minion, fingerprint) = accepted_minion(&master, dir.path(), "web1").await;

    let mut sub = SubSocket::new();
    within(
        "subscribing",
        sub.connect(&format!("tcp://127.0.0.1:{}", master.publish_port)),
    )
    .await
    .unwrap();
    within("subscribing", sub.subscribe("")).await.unwrap();
    let before = next_epoch(&mut sub).await;

    let out = brine_key(&master, &["reject", "web1", "--yes"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        format!("Key for minion web1 rejected: {fingerprint}\n")
    );
    // No job targets it any more.
    let out = brine(&master, &["*", "test.ping"]).await;
    assert_eq!(out.code, 4, "{out:?}");
    let out = brine_key(&master, &["list", "--out", "json"]).await;
    assert_eq!(
        json(&out)["rejected"],
        json!([{"id": "web1", "fingerprint": fingerprint}])
    );
    assert_eq!(json(&out)["accepted"], json!([]));

    // Publications from now on are sealed with a key the rejected minion never received.
    within("the group key rotating", async {
        while next_epoch(&mut sub).await <= before {}
    })
    .await;

    // A rejected key may be accepted again: the minion, still retrying, gets back in.
    let out = brine_key(
        &master,
        &["accept", "web1", "--fingerprint", &fingerprint, "--yes"],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    master.wait_connected(&["web1"]).await;
    master.ping_all(1).await;

    minion.stop().await;
    master.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_key_for_an_id_is_denied_and_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let master = start_master(dir.path()).await;
    let (minion, fingerprint) = accepted_minion(&master, dir.path(), "web1").await;
    let genuine_dir = master.minion_config(dir.path(), "web1").state_dir;

    // Same id, its own state: another key.
    let impostor_dir = dir.path().join("impostor");
    let impostor = TestMinion::start_with(MinionConfig {
        state_dir: impostor_dir.clone(),
        ..master.minion_config(dir.path(), "web1")
    });
    let denied = wait_key(&master, "web1", KeyState::Denied).await;
    assert_ne!(denied, fingerprint);
    assert_eq!(printed_fingerprint("web1", &impostor_dir).await, denied);

    let out = brine_key(&master, &["list", "--out", "json"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let lists = json(&out);
    assert_eq!(
        lists["accepted"],
        json!([{"id": "web1", "fingerprint": fingerprint}])
    );
    assert_eq!(
        lists["denied"],
        json!([{"id": "web1", "fingerprint": denied}])
    );
    assert_eq!(lists["pending"], json!([]));
    let out = brine_key(&master, &["list"]).await;
    assert!(
        out.stdout.contains(&format!(
            "Accepted Keys:\nweb1  {fingerprint}\nDenied Keys:\nweb1  {denied}\n"
        )),
        "{out:?}"
    );

    // The accepted minion still answers, once; the impostor never sees the job.
    let events = master.ping_all(1).await;
    let report = report(&events);
    assert_eq!(report.minions[0].id.as_str(), "web1");
    impostor.stop().await;
    let jid = report.jid.as_str();
    assert!(
        journal_mentions(&genuine_dir, jid),
        "the genuine minion ran {jid}"
    );
    assert!(
        !journal_mentions(&impostor_dir, jid),
        "the impostor must never start {jid}"
    );
    assert_eq!(
        states_of(&master, "web1").await,
        vec![
            (KeyState::Accepted, fingerprint),
            (KeyState::Denied, denied)
        ]
    );

    minion.stop().await;
    master.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_key_comes_back_pending_at_the_next_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let master = start_master(dir.path()).await;
    let (minion, fingerprint) = accepted_minion(&master, dir.path(), "web1").await;

    let out = brine_key(&master, &["delete", "web1", "--yes"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        format!("Key for minion web1 deleted: {fingerprint} (was accepted)\n")
    );

    // Its session ended; its next handshake presents the same key, which is new again.
    let again = wait_key(&master, "web1", KeyState::Pending).await;
    assert_eq!(again, fingerprint);
    let out = brine(&master, &["*", "test.ping"]).await;
    assert_eq!(out.code, 4, "{out:?}");

    let out = brine_key(
        &master,
        &["accept", "web1", "--fingerprint", &fingerprint, "--yes"],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    master.wait_connected(&["web1"]).await;
    master.ping_all(1).await;

    minion.stop().await;
    master.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_finger_is_the_fingerprint_minions_pin() {
    let dir = tempfile::tempdir().unwrap();
    let master = start_master(dir.path()).await;

    let out = brine_key(&master, &["master-finger"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, format!("{}\n", master.fingerprint));
    let out = brine_key(&master, &["master-finger", "--out", "json"]).await;
    assert_eq!(
        json(&out),
        json!({"master_fingerprint": master.fingerprint})
    );
    let out = brine_key(&master, &["finger"]).await;
    assert!(
        out.stdout
            .starts_with(&format!("Master Key:\n{}\n", master.fingerprint)),
        "{out:?}"
    );

    // Commands about ids the master does not know are refused with its words, exit 1.
    let out = brine_key(&master, &["reject", "nobody", "--yes"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(
        out.stderr,
        "brine-key: nobody has no pending or accepted key\n"
    );
    let out = brine_key(&master, &["delete", "nobody", "--yes"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.starts_with("brine-key: nobody has no"),
        "{out:?}"
    );
    let out = brine_key(&master, &["accept", "nobody", "--yes"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    let out = brine_key(&master, &["finger", "nobody"]).await;
    assert_eq!(out.code, 1, "{out:?}");

    master.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salt_key_flags_list_accept_and_finger_as_the_subcommands_do() {
    let dir = tempfile::tempdir().unwrap();
    let master = start_master(dir.path()).await;
    let minions = master.start_minions(dir.path(), &["web1", "web2", "db1"]);
    let web1 = wait_key(&master, "web1", KeyState::Pending).await;
    let web2 = wait_key(&master, "web2", KeyState::Pending).await;
    let db1 = wait_key(&master, "db1", KeyState::Pending).await;

    for (flags, subcommand) in [
        (&["-L"][..], &["list"][..]),
        (&["-L", "--out", "json"], &["list", "--out", "json"]),
    ] {
        let flagged = brine_key(&master, flags).await;
        assert_eq!(flagged.code, 0, "{flagged:?}");
        assert_eq!(flagged.stdout, brine_key(&master, subcommand).await.stdout);
    }

    // A script must say -y: nothing changes without it.
    let out = brine_key(&master, &["-a", "web1"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("--yes"), "{out:?}");
    assert_eq!(
        states_of(&master, "web1").await,
        vec![(KeyState::Pending, web1.clone())]
    );

    // The pending keys the glob matches, and only those.
    let out = brine_key(&master, &["-a", "web*", "-y"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        format!("Key for minion web1 accepted: {web1}\nKey for minion web2 accepted: {web2}\n")
    );
    assert_eq!(
        states_of(&master, "db1").await,
        vec![(KeyState::Pending, db1.clone())]
    );
    master.wait_connected(&["web1", "web2"]).await;
    let out = brine(&master, &["--out", "json", "web1", "test.ping"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(json(&out), json!({"web1": true}));

    let out = brine_key(&master, &["-l", "un"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, format!("Unaccepted Keys:\ndb1  {db1}\n"));
    let out = brine_key(&master, &["-l", "acc", "--out", "json"]).await;
    assert_eq!(
        json(&out),
        json!({
            "master_fingerprint": master.fingerprint,
            "accepted": [
                {"id": "web1", "fingerprint": web1},
                {"id": "web2", "fingerprint": web2},
            ],
        })
    );
    let out = brine_key(&master, &["-f", "web1"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, format!("Accepted Keys:\nweb1  {web1}\n"));

    let out = brine_key(&master, &["-A", "-y"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, format!("Key for minion db1 accepted: {db1}\n"));
    master.wait_connected(&["db1"]).await;
    master.ping_all(3).await;

    TestMinion::stop_all(minions).await;
    master.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salt_key_flags_reject_and_delete_as_salt_key_does() {
    let dir = tempfile::tempdir().unwrap();
    let master = start_master(dir.path()).await;
    let minions = master.start_minions(dir.path(), &["web1", "web2", "db1"]);
    let web1 = wait_key(&master, "web1", KeyState::Pending).await;
    let web2 = wait_key(&master, "web2", KeyState::Pending).await;
    let db1 = wait_key(&master, "db1", KeyState::Pending).await;
    let out = brine_key(&master, &["-a", "db1", "-y"]).await;
    assert_eq!(out.code, 0, "{out:?}");

    // As salt-key -r: pending keys only (`reject db1` would cut db1 off).
    let out = brine_key(&master, &["-r", "db1", "-y"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stderr, "brine-key: db1 has no pending key\n");
    let out = brine_key(&master, &["-r", "web1", "-y"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        format!("Key for minion web1 rejected: {web1}\n")
    );
    let out = brine_key(&master, &["-R", "-y"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        format!("Key for minion web2 rejected: {web2}\n")
    );
    assert_eq!(
        states_of(&master, "db1").await,
        vec![(KeyState::Accepted, db1.clone())]
    );

    // Stopped, no minion comes back with its key once it is deleted.
    TestMinion::stop_all(minions).await;
    let out = brine_key(&master, &["-d", "web1", "-y"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        format!("Key for minion web1 deleted: {web1} (was rejected)\n")
    );
    let out = brine_key(&master, &["-D", "-y"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        format!(
            "Key for minion db1 deleted: {db1} (was accepted)\n\
             Key for minion web2 deleted: {web2} (was rejected)\n"
        )
    );
    assert_eq!(keys(&master).await, vec![]);

    master.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_flag_points_at_the_subcommand_and_the_salt_key_flag() {
    let dir = tempfile::tempdir().unwrap();
    let master = start_master(dir.path()).await;

    let out = brine_key(&master, &["--list"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("unexpected argument '--list'")
            && out.stderr.contains("`brine-key -l STATE`")
            && out.stderr.contains("`brine-key list --state STATE`"),
        "{out:?}"
    );
    let out = brine_key(&master, &["-x"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("unexpected argument '-x'")
            && out.stderr.contains("a subcommand (list, accept, reject")
            && out.stderr.contains("salt-key's flags (-L, -l STATE, -a ID"),
        "{out:?}"
    );
    // One form at a time.
    for args in [&["-L", "list"][..], &["list", "-L"]] {
        let out = brine_key(&master, args).await;
        assert_eq!(out.code, 2, "{out:?}");
        assert!(out.stderr.contains("not both"), "{out:?}");
        assert!(out.stdout.is_empty(), "{out:?}");
    }

    master.stop().await;
}
