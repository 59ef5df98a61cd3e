//! Local CLI authorization, end to end: the real command-line tools run as other users against
//! a real master (in this process, as root) and real minions.
//!
//! The tools run as `nobody` (uid 65534, gid `nogroup` 65534) through `setpriv`; the master's
//! `socket_group` is `nogroup`, so `nobody` can connect. What `nobody` may do then depends on
//! `publisher_acl` only. Each test checks the audit log line by line afterwards.
//!
//! Running as another uid needs `setpriv` (util-linux) and root: without them the tests print a
//! note and pass without checking anything.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use brine_master::acl::AclRule;
use brine_master::MasterConfig;
use brine_tests::{binary, cli, json, master_config, setpriv, within, Output, TestMaster};
use serde_json::{json, Value};

const NOBODY: u32 = 65534;
const NOGROUP: u32 = 65534;
/// A uid with no user name, in no group that may use the socket.
const STRANGER: u32 = 4242;

/// A test directory every user may enter, with copies of the command-line tools in `bin`.
struct World {
    dir: tempfile::TempDir,
    setpriv: PathBuf,
}

impl World {
    fn new(setpriv: PathBuf) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        for name in ["brine", "brine-run", "brine-key"] {
            let copy = bin.join(name);
            std::fs::copy(binary(name), &copy).expect("copying a tool");
            std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Self { dir, setpriv }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The master's configuration: the socket belongs to `nogroup`; `acl` for `publisher_acl`.
    fn config(&self, acl: &[(&str, &[&str], &[&str])]) -> MasterConfig {
        let mut publisher_acl = BTreeMap::new();
        for (user, targets, functions) in acl {
            publisher_acl
                .entry(user.to_string())
                .or_insert_with(Vec::new)
                .push(AclRule {
                    targets: targets.iter().map(|s| s.to_string()).collect(),
                    functions: functions.iter().map(|s| s.to_string()).collect(),
                });
        }
        MasterConfig {
            socket_group: "nogroup".into(),
            publisher_acl,
            ..master_config(self.path(), 0, 0)
        }
    }

    /// Runs the tool `name` as `uid`/`gid` (no supplementary groups) against `master`.
    async fn run_as(
        &self,
        uid: u32,
        gid: u32,
        master: &TestMaster,
        name: &str,
        args: &[&str],
    ) -> Output {
        let output = within(
            "a CLI command as another user",
            tokio::process::Command::new(&self.setpriv)
                .arg(format!("--reuid={uid}"))
                .arg(format!("--regid={gid}"))
                .arg("--clear-groups")
                .arg("--")
                .arg(self.path().join("bin").join(name))
                .args(args)
                .current_dir(self.path())
                .env("BRINE_SOCKET", &master.socket)
                .env("NO_COLOR", "1")
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("setpriv runs");
        Output {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    async fn nobody(&self, master: &TestMaster, name: &str, args: &[&str]) -> Output {
        self.run_as(NOBODY, NOGROUP, master, name, args).await
    }
}

/// Every line of the audit log.
fn audit_lines(config: &MasterConfig) -> Vec<Value> {
    let text = std::fs::read_to_string(config.audit_log_path()).expect("the audit log exists");
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

fn assert_denied(out: &Output, why: &str) {
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("permission denied"), "{out:?}");
    assert!(out.stderr.contains(why), "{out:?}");
}

/// Checks one audit line's caller and request, and gives it back for more.
fn assert_line<'a>(
    line: &'a Value,
    uid: u32,
    user: &str,
    request: &str,
    outcome: &str,
) -> &'a Value {
    assert_eq!(line["uid"], uid, "{line}");
    assert_eq!(line["user"], user, "{line}");
    assert_eq!(line["request"], request, "{line}");
    assert_eq!(line["outcome"], outcome, "{line}");
    assert!(line["pid"].as_u64().is_some_and(|pid| pid > 0), "{line}");
    let time = line["time"].as_str().expect("a time");
    assert!(time.len() == 24 && time.ends_with('Z'), "{line}");
    line
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_acl_entry_a_user_may_look_but_not_publish_or_manage_keys() {
    let Some(setpriv) = setpriv() else { return };
    let world = World::new(setpriv);
    let config = world.config(&[]);
    let master = TestMaster::start_with(config.clone()).await;
    let minions = master.start_minions(world.path(), &["web1"]);
    master.wait_connected(&["web1"]).await;

    // The socket is the group's, 0660.
    let meta = std::fs::metadata(&master.socket).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o660);
    assert_eq!(meta.gid(), NOGROUP);

    let out = world.nobody(&master, "brine", &["web1", "test.ping"]).await;
    assert_denied(&out, "user nobody has no publisher_acl entry");
    let out = world
        .nobody(
            &master,
            "brine",
            &["web1", "test.arg", "secret_thing=s3cr3t"],
        )
        .await;
    assert_denied(&out, "no publisher_acl entry");

    // Reading is allowed to whoever can connect.
    let out = world
        .nobody(&master, "brine-run", &["--out", "json", "manage.up"])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(json(&out), json!(["web1"]));
    let out = world.nobody(&master, "brine-run", &["jobs.list"]).await;
    assert_eq!(out.code, 0, "{out:?}");

    // Keys are for root and the master's user only.
    let out = world.nobody(&master, "brine-key", &["list"]).await;
    assert_denied(&out, "may not manage keys");
    let out = world
        .nobody(&master, "brine-key", &["delete", "web1", "--yes"])
        .await;
    assert_denied(&out, "may not manage keys");
    let out = cli("brine-key", &master.socket, &["--out", "json", "list"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(json(&out)["accepted"][0]["id"], "web1", "{out:?}");

    // Not in the socket's group: the kernel refuses the connection itself.
    let out = world
        .run_as(STRANGER, STRANGER, &master, "brine-run", &["manage.up"])
        .await;
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.to_lowercase().contains("permission denied"),
        "{out:?}"
    );
    // ... and says what to do about it: which group the socket is for, and its mode.
    assert_eq!(out.code, 77, "{out:?}");
    assert!(
        out.stderr.contains("is for group nogroup") && out.stderr.contains("(mode 0660)"),
        "{out:?}"
    );

    // Root may do everything.
    let out = cli("brine", &master.socket, &["web1", "test.ping"]).await;
    assert_eq!(out.code, 0, "{out:?}");

    let lines = audit_lines(&config);
    assert_eq!(lines.len(), 5, "{lines:#?}");
    let line = assert_line(&lines[0], NOBODY, "nobody", "publish", "denied");
    assert_eq!(line["gid"], NOGROUP);
    assert_eq!(line["target"], "web1");
    assert_eq!(line["function"], "test.ping");
    assert_eq!(line["jid"], Value::Null);
    assert_eq!(line["minions"], Value::Null, "refused before resolving");
    assert_eq!(line["reason"], "user nobody has no publisher_acl entry");
    let line = assert_line(&lines[1], NOBODY, "nobody", "publish", "denied");
    assert_eq!(line["kwarg"], json!({"secret_thing": "<redacted>"}));
    let line = assert_line(&lines[2], NOBODY, "nobody", "keys", "denied");
    assert_eq!(line["action"], "list");
    let line = assert_line(&lines[3], NOBODY, "nobody", "keys", "denied");
    assert_eq!(line["action"], "delete");
    assert_eq!(line["ids"], json!(["web1"]));
    // Root's key listing changes nothing and is not logged; its publish is.
    let line = assert_line(&lines[4], 0, "root", "publish", "allowed");
    assert_eq!(line["gid"], 0);
    assert!(
        line["jid"].as_str().is_some_and(|j| !j.is_empty()),
        "{line}"
    );
    assert_eq!(line["minions"], 1);
    let text = std::fs::read_to_string(config.audit_log_path()).unwrap();
    assert!(!text.contains("s3cr3t"), "{text}");
    let mode = std::fs::metadata(config.audit_log_path()).unwrap().mode();
    assert_eq!(mode & 0o777, 0o600);

    brine_tests::TestMinion::stop_all(minions).await;
    master.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_grants_its_functions_on_its_minions_and_nothing_else() {
    let Some(setpriv) = setpriv() else { return };
    let world = World::new(setpriv);
    let config = world.config(&[("nobody", &["web*"], &["test.*"])]);
    let master = TestMaster::start_with(config.clone()).await;
    let minions = master.start_minions(world.path(), &["web1", "db1"]);
    master.wait_connected(&["web1", "db1"]).await;

    // 0: granted: test.* on web*.
    let out = world
        .nobody(&master, "brine", &["--out", "json", "web*", "test.ping"])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(json(&out), json!({"web1": true}));
    // 1: `*` resolves to web1 and db1: db1 is not granted, so nothing runs anywhere.
    let out = world.nobody(&master, "brine", &["*", "test.ping"]).await;
    assert_denied(&out, "user nobody may not run test.ping on db1");
    // 2: the same by list and (3) by regex.
    let out = world
        .nobody(&master, "brine", &["-L", "web1,db1", "test.ping"])
        .await;
    assert_denied(&out, "on db1");
    let out = world
        .nobody(&master, "brine", &["-E", ".*", "test.ping"])
        .await;
    assert_denied(&out, "on db1");
    // 4: a function outside test.*, even on web1.
    let out = world
        .nobody(&master, "brine", &["web*", "cmd.run", "id"])
        .await;
    assert_denied(&out, "user nobody may not run cmd.run");
    // 5: secrets in keyword arguments are redacted in the log (the minion still gets them).
    let out = world
        .nobody(
            &master,
            "brine",
            &[
                "--out",
                "json",
                "web1",
                "test.arg",
                "x",
                "password=hunter2",
                "user=bob",
            ],
        )
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(json(&out)["web1"]["kwargs"]["password"], "hunter2");
    // 6: a granted function on a target that matches nothing.
    let out = world
        .nobody(&master, "brine", &["mail*", "test.ping"])
        .await;
    assert_eq!(out.code, 4, "{out:?}");
    // 7: root may do everything.
    let out = cli(
        "brine",
        &master.socket,
        &["--out", "json", "*", "test.ping"],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(json(&out), json!({"db1": true, "web1": true}));

    // Each job remembers who published it, under the jid the audit log gives.
    let out = cli("brine-run", &master.socket, &["--out", "json", "jobs.list"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let jobs: BTreeMap<String, String> = json(&out)
        .as_array()
        .expect("a list of jobs")
        .iter()
        .map(|j| {
            (
                j["jid"].as_str().unwrap().into(),
                j["user"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(jobs.len(), 3, "{jobs:?}");

    let lines = audit_lines(&config);
    assert_eq!(lines.len(), 8, "{lines:#?}");
    let line = assert_line(&lines[0], NOBODY, "nobody", "publish", "allowed");
    assert_eq!(line["gid"], NOGROUP);
    assert_eq!(line["target"], "web*");
    assert_eq!(line["function"], "test.ping");
    assert_eq!(line["minions"], 1);
    assert!(
        line["jid"].as_str().is_some_and(|j| !j.is_empty()),
        "{line}"
    );
    let line = assert_line(&lines[1], NOBODY, "nobody", "publish", "denied");
    assert_eq!(line["target"], "*");
    assert_eq!(line["minions"], 2);
    assert_eq!(line["jid"], Value::Null);
    assert_eq!(line["reason"], "user nobody may not run test.ping on db1");
    let line = assert_line(&lines[2], NOBODY, "nobody", "publish", "denied");
    assert_eq!(line["target"], "L@web1,db1");
    let line = assert_line(&lines[3], NOBODY, "nobody", "publish", "denied");
    assert_eq!(line["target"], "E@.*");
    let line = assert_line(&lines[4], NOBODY, "nobody", "publish", "denied");
    assert_eq!(line["function"], "cmd.run");
    assert_eq!(line["arg"], json!(["id"]));
    assert_eq!(line["minions"], Value::Null, "refused before resolving");
    let line = assert_line(&lines[5], NOBODY, "nobody", "publish", "allowed");
    assert_eq!(line["function"], "test.arg");
    assert_eq!(line["arg"], json!(["x"]));
    assert_eq!(
        line["kwarg"],
        json!({"password": "<redacted>", "user": "bob"})
    );
    let line = assert_line(&lines[6], NOBODY, "nobody", "publish", "no_minions");
    assert_eq!(line["minions"], 0);
    let line = assert_line(&lines[7], 0, "root", "publish", "allowed");
    assert_eq!(line["minions"], 2);
    for line in lines.iter().filter(|l| l["outcome"] == "allowed") {
        let jid = line["jid"].as_str().expect("an allowed publish has a jid");
        assert_eq!(
            Some(&line["user"]),
            jobs.get(jid).map(|u| json!(u)).as_ref()
        );
    }
    let text = std::fs::read_to_string(config.audit_log_path()).unwrap();
    assert!(!text.contains("hunter2"), "{text}");

    brine_tests::TestMinion::stop_all(minions).await;
    master.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_group_that_does_not_exist_keeps_the_masters_group() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = MasterConfig {
        socket_group: "no-such-group-brine-test".into(),
        ..master_config(dir.path(), 0, 0)
    };
    let master = TestMaster::start_with(config).await;
    // The master serves (the mode is set when serving starts: wait for an answer first).
    let out = cli("brine-run", &master.socket, &["manage.up"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let meta = std::fs::metadata(&master.socket).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o660);
    let own_gid = std::fs::metadata("/proc/self").unwrap().gid();
    assert_eq!(meta.gid(), own_gid);
    master.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_audit_log_cannot_be_written_nothing_is_published_or_changed() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = MasterConfig {
        // A directory cannot be appended to.
        audit_log: dir.path().to_path_buf(),
        ..master_config(dir.path(), 0, 0)
    };
    let master = TestMaster::start_with(config).await;
    let minions = master.start_minions(dir.path(), &["web1"]);
    master.wait_connected(&["web1"]).await;

    let out = cli("brine", &master.socket, &["web1", "test.ping"]).await;
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("audit log"), "{out:?}");
    let out = cli("brine-key", &master.socket, &["delete", "web1", "--yes"]).await;
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("audit log"), "{out:?}");

    // Nothing was published, and the key is still accepted.
    let out = cli("brine-run", &master.socket, &["--out", "json", "jobs.list"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(json(&out), json!([]));
    let out = cli("brine-key", &master.socket, &["--out", "json", "list"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(json(&out)["accepted"][0]["id"], "web1", "{out:?}");
    master.wait_connected(&["web1"]).await;

    brine_tests::TestMinion::stop_all(minions).await;
    master.stop().await;
}
