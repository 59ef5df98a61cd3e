//! Grain, grain regex, ipcidr, compound and nodegroup targets, through the real `brine` against
//! a real master and minions that carry custom grains from their configuration.

use brine_master::config::Nodegroup;
use brine_proto::Map;
use brine_tests::{json, Cluster};
use serde_json::json;

fn grains(value: serde_json::Value) -> Map {
    match value {
        serde_json::Value::Object(map) => map,
        other => panic!("grains are a map, not {other}"),
    }
}

/// web1, web2 (role web), db1, db2 (role db), with nodegroups over them.
async fn fleet() -> Cluster {
    let mut cluster = Cluster::start_with(&[], |config| {
        let groups = [
            ("webs", Nodegroup::Expression("G@role:web".into())),
            ("dbs", Nodegroup::Ids(vec!["db1".into(), "db2".into()])),
            ("everyone", Nodegroup::Expression("N@webs or N@dbs".into())),
        ];
        config.nodegroups = groups
            .into_iter()
            .map(|(name, group)| (name.to_owned(), group))
            .collect();
    })
    .await;
    for (id, role, dc) in [
        ("web1", "web", "ams1"),
        ("web2", "web", "fra1"),
        ("db1", "db", "ams1"),
        ("db2", "db", "fra1"),
    ] {
        let custom =
            grains(json!({"role": role, "roles": [role, "monitored"], "dc": {"name": dc}}));
        cluster.add_minion(id, |c| c.grains = custom).await;
    }
    cluster
}

/// The ids that returned `true` to a `test.ping` with these target arguments.
async fn pinged(cluster: &Cluster, target: &[&str]) -> serde_json::Value {
    let mut args = vec!["--out", "json"];
    args.extend_from_slice(target);
    args.push("test.ping");
    let out = cluster.brine(&args).await;
    assert_eq!(out.code, 0, "{target:?}: {out:?}");
    let returned = json(&out);
    let ids: Vec<&String> = returned
        .as_object()
        .expect("a map of returns")
        .iter()
        .inspect(|(id, ret)| assert_eq!(**ret, json!(true), "{id}: {out:?}"))
        .map(|(id, _)| id)
        .collect();
    json!(ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_of_target_picks_exactly_its_minions() {
    let cluster = fleet().await;
    let cases: &[(&[&str], serde_json::Value)] = &[
        (&["-G", "role:web"], json!(["web1", "web2"])),
        (&["-G", "role:WEB"], json!(["web1", "web2"])),
        (
            &["-G", "roles:monitored"],
            json!(["db1", "db2", "web1", "web2"]),
        ),
        (&["-G", "dc:name:ams*"], json!(["db1", "web1"])),
        (
            &["--delimiter", ";", "-G", "dc;name;fra1"],
            json!(["db2", "web2"]),
        ),
        (&["-P", "role:(db|nothing)$"], json!(["db1", "db2"])),
        (
            &["-S", "127.0.0.0/8"],
            json!(["db1", "db2", "web1", "web2"]),
        ),
        (
            &["-C", "G@role:web and not web2 or L@db1"],
            json!(["db1", "web1"]),
        ),
        (
            &[
                "-C",
                "web* and G@dc:name:ams1 or (L@db1,db2 and not E@db2$)",
            ],
            json!(["db1", "web1"]),
        ),
        (&["-C", "not G@role:web"], json!(["db1", "db2"])),
        (&["-N", "dbs"], json!(["db1", "db2"])),
        (&["-N", "everyone"], json!(["db1", "db2", "web1", "web2"])),
        (&["-C", "N@webs and G@dc:name:fra1"], json!(["web2"])),
    ];
    for (target, expected) in cases {
        assert_eq!(&pinged(&cluster, target).await, expected, "{target:?}");
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minion_matched_by_its_cached_grains_is_reported_not_connected() {
    let mut cluster = fleet().await;
    cluster.stop_minion("db2").await;
    let out = cluster
        .brine(&["--out", "json", "-t", "1", "-G", "role:db", "test.ping"])
        .await;
    assert_eq!(out.code, 3, "{out:?}");
    let returns = json(&out);
    assert_eq!(returns["db1"], json!(true), "{out:?}");
    assert!(
        returns["db2"].to_string().contains("Not connected"),
        "the master knew db2's grains: {out:?}"
    );
    assert!(returns.get("web1").is_none(), "{out:?}");
    cluster.stop().await;
}

/// What `brine` says for an id it was told to target that has no accepted key.
const NO_KEY: &str = "Minion did not return. [No accepted key]";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_id_a_list_names_is_answered_for_also_without_a_key() {
    let cluster = fleet().await;
    let out = cluster
        .brine(&["-v", "-L", "web1,ghost", "test.ping"])
        .await;
    assert_eq!(out.code, 3, "ghost did not return: {out:?}");
    assert!(
        out.stdout.contains("web1:\n    True\n")
            && out.stdout.contains(&format!("ghost:\n    {NO_KEY}\n")),
        "{out:?}"
    );
    // The job's record lists ghost too, in the state of its own.
    let jid = out
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("Executing job with jid "))
        .unwrap_or_else(|| panic!("no jid: {out:?}"))
        .trim()
        .to_owned();
    let missing = cluster.brine_run(&["jobs.lookup", &jid, "--missing"]).await;
    assert_eq!(
        (missing.code, missing.stdout.as_str()),
        (3, "ghost  no accepted key\n"),
        "{missing:?}"
    );
    let lookup = cluster
        .brine_run(&["--out", "json", "jobs.lookup", &jid])
        .await;
    assert_eq!(
        json(&lookup),
        json!({"ghost": NO_KEY, "web1": true}),
        "{lookup:?}"
    );

    // L@ in a compound target names ids as well; the other parts match as ever.
    let out = cluster
        .brine(&[
            "--out",
            "json",
            "-C",
            "L@db1,ghost2 or G@role:web",
            "test.ping",
        ])
        .await;
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(
        json(&out),
        json!({"db1": true, "ghost2": NO_KEY, "web1": true, "web2": true}),
        "{out:?}"
    );
    // Only ids without a key: a job all the same, answered at once, nothing sent.
    let out = cluster
        .brine(&["--out", "json", "-L", "ghost", "test.ping"])
        .await;
    assert_eq!(
        (out.code, json(&out)),
        (3, json!({"ghost": NO_KEY})),
        "{out:?}"
    );
    // Under a `not`, an id is not targeted: nothing to answer for.
    let out = cluster
        .brine(&[
            "--out",
            "json",
            "-C",
            "G@role:db and not L@db2,ghost",
            "test.ping",
        ])
        .await;
    assert_eq!((out.code, json(&out)), (0, json!({"db1": true})), "{out:?}");
    // A list entry that cannot be an id is a usage error, before anything is sent.
    let out = cluster.brine(&["-L", "web1,-x", "test.ping"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains("\"-x\" in a target list is not a minion id"),
        "{out:?}"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_targets_are_usage_errors_that_say_where() {
    let cluster = fleet().await;
    let out = cluster.brine(&["-C", "web* and", "test.ping"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains("expected a target after \"and\", found the end")
            && out.stderr.contains("  web* and\n          ^"),
        "{out:?}"
    );
    let out = cluster.brine(&["-C", "web* X@foo", "test.ping"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("expected 'and' or 'or'"), "{out:?}");
    let out = cluster.brine(&["-G", "role", "test.ping"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("key:value"), "{out:?}");
    let out = cluster.brine(&["-N", "nope", "test.ping"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("no nodegroup \"nope\""), "{out:?}");
    let out = cluster.brine(&["-C", "N@nope or web1", "test.ping"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("no nodegroup \"nope\""), "{out:?}");
    let out = cluster.brine(&["-G", "-E", "web1", "test.ping"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    let out = cluster
        .brine(&["--delimiter", ";", "web1", "test.ping"])
        .await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("--delimiter goes with -G or -P"),
        "{out:?}"
    );
    let out = cluster.brine(&["-G", "role:nothing", "test.ping"]).await;
    assert_eq!(out.code, 4, "{out:?}");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grains_too_large_to_report_are_refused_and_change_nothing() {
    let cluster = fleet().await;
    let blob = "x".repeat(60 * 1024);
    let out = cluster
        .brine(&["--out", "json", "web1", "grains.setval", "blob", &blob])
        .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout
            .contains("more than the 49152 a minion may report"),
        "{out:?}"
    );
    let out = cluster
        .brine(&["--out", "json", "web1", "grains.get", "blob"])
        .await;
    assert_eq!(json(&out), json!({"web1": ""}), "{out:?}");
    assert_eq!(
        pinged(&cluster, &["-G", "role:web"]).await,
        json!(["web1", "web2"])
    );
    cluster.stop().await;
}
