//! A local user with no `publisher_acl` entry, always denied, against the audit log. Before the
//! fix every denied request was written with its positional arguments in full: large publish
//! requests grew the log by 300 MiB in 6.5 s, and the log fails closed, so a full disk would
//! have stopped every publish and key change. Now an argument list past 2 KiB is recorded by
//! size and SHA-256, and a user's refusals by at most 30 lines a minute (the rest counted).

use std::time::Duration;

use brine_proto::{Map, Target};
use brine_tests::fleet::bounded;
use brine_tests::publish_no_wait;
use serde_json::Value;

use crate::local_users::{frame, LocalUsers};

const ATTACKER: u32 = 60020;
const REQUESTS: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_who_is_always_denied_cannot_fill_the_disk_through_the_audit_log() {
    let Some(users) = LocalUsers::started("web1").await else {
        return;
    };
    let fleet = &users.fleet;
    let audit_log = fleet.master_state.join("audit.log");
    let log_size = |path: &std::path::Path| std::fs::metadata(path).map_or(0, |m| m.len());
    let audit_before = log_size(&audit_log);
    let master_log_before = fleet.master_log().len();

    // 100 publish requests of a 900 KiB argument (a job may take 1 MiB), one after the other,
    // each denied.
    let big = "x".repeat(900 * 1024);
    let request = frame(&publish_no_wait(
        Target::Glob("*".into()),
        "cmd.run",
        vec![big.into()],
        Map::new(),
        Duration::from_secs(5),
    ));
    users.each(ATTACKER, REQUESTS, &request).await;

    let audit_growth = log_size(&audit_log) - audit_before;
    eprintln!("{REQUESTS} denied 900 KiB requests: the audit log grew by {audit_growth} bytes");
    assert!(
        audit_growth < 64 * 1024,
        "the audit log grew by {audit_growth} bytes"
    );
    let text = std::fs::read_to_string(&audit_log).unwrap();
    let denied: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .filter(|line: &Value| line["uid"] == ATTACKER)
        .collect();
    assert!(
        !denied.is_empty() && denied.len() <= 30,
        "{} lines for the attacker",
        denied.len()
    );
    for line in &denied {
        assert_eq!(line["outcome"], "denied", "{line}");
        assert!(line["arg"]["sha256"].is_string(), "not a digest: {line}");
        assert!(
            line["arg"]["bytes"].as_u64().unwrap() > 900 * 1024,
            "{line}"
        );
    }
    let master_log = fleet.master_log();
    let warnings = master_log[master_log_before..]
        .matches("control request denied")
        .count();
    assert!(
        (1..=30).contains(&warnings),
        "{warnings} denial warnings in the master's log"
    );
    assert!(
        master_log.len() - master_log_before < 256 * 1024,
        "the master's log grew by {} bytes",
        master_log.len() - master_log_before
    );

    // Root still publishes, and that is written.
    bounded(
        "root's test.ping after the flood",
        Duration::from_secs(10),
        fleet.ping(&["web1"]),
    )
    .await;
    let text = std::fs::read_to_string(&audit_log).unwrap();
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["outcome"], "allowed", "{last}");
    assert_eq!(last["function"], "test.ping", "{last}");
}
