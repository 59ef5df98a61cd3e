//! `brine-run`'s job runners end to end: `jobs.active`, `jobs.list_jobs`'s filters and
//! `jobs.lookup --missing`, the real CLI against a real master and real minions.

use std::time::Duration;

use brine_proto::control::{JobReport, MinionState};
use brine_proto::{Jid, Map, Target, Value};
use brine_tests::{json, publish_no_wait, published_jid, report, within, Cluster, Output};
use serde_json::json;

/// How often a test looks again at something that changes by itself.
const POLL: Duration = Duration::from_millis(50);

/// Publishes without waiting for the returns; gives the jid.
async fn publish_async(
    cluster: &Cluster,
    target: Target,
    fun: &str,
    arg: Vec<Value>,
    kwarg: Map,
    timeout: Duration,
) -> Jid {
    let request = publish_no_wait(target, fun, arg, kwarg, timeout);
    published_jid(&cluster.master.control(request).await)
}

/// Publishes and waits for the job's end; gives its record.
async fn publish(cluster: &Cluster, target: Target, fun: &str, arg: Vec<Value>) -> JobReport {
    let events = cluster
        .master
        .publish(target, fun, arg, Duration::from_secs(1))
        .await;
    report(&events).clone()
}

/// Runs `brine-run` with `args` until `done` says its output is the one awaited, and gives that
/// output. Bounded: a state that never comes fails the test.
async fn poll_until(
    cluster: &Cluster,
    args: &[&str],
    what: &str,
    done: impl Fn(&Output) -> bool,
) -> Output {
    within(what, async {
        loop {
            let out = cluster.brine_run(args).await;
            if done(&out) {
                return out;
            }
            tokio::time::sleep(POLL).await;
        }
    })
    .await
}

/// The ids under `key` in one job of `jobs.active`'s JSON.
fn ids(job: &Value, key: &str) -> Vec<String> {
    job[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} list in {job}"))
        .iter()
        .map(|id| id.as_str().expect("an id").to_owned())
        .collect()
}

/// `jobs.active --out json` shows job `jid` with exactly these running, returned and waiting
/// minions (and nobody missing).
fn shows(out: &Output, jid: &Jid, running: &[&str], returned: &[&str], waiting: &[&str]) -> bool {
    assert_eq!(out.code, 0, "{out:?}");
    let doc = json(out);
    let job = &doc[jid.as_str()];
    !job.is_null()
        && ids(job, "Running") == running
        && ids(job, "Returned") == returned
        && ids(job, "Waiting") == waiting
        && ids(job, "Missing").is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_active_shows_who_runs_a_job_until_it_ends() {
    let mut cluster = Cluster::start(&["fast", "slow", "down"]).await;
    cluster.stop_minion("down").await;
    // Four seconds on "slow", at once elsewhere; "down" keeps the job live to its deadline.
    let mut kwarg = Map::new();
    kwarg.insert("shell".into(), true.into());
    let command = r#"test "$BRINE_MINION_ID" != slow || sleep 4; echo done"#;
    let jid = publish_async(
        &cluster,
        Target::Glob("*".into()),
        "cmd.run",
        vec![command.into()],
        kwarg,
        Duration::from_secs(6),
    )
    .await;
    let active = ["--out", "json", "jobs.active"];

    let out = poll_until(
        &cluster,
        &active,
        "slow running the job, fast returned",
        |out| shows(out, &jid, &["slow"], &["fast"], &["down"]),
    )
    .await;
    let job = &json(&out)[jid.as_str()];
    assert_eq!(job["Function"], "cmd.run", "{out:?}");
    assert_eq!(job["Target"], "*", "{out:?}");
    assert!(
        job["User"].as_str().is_some_and(|u| !u.is_empty()),
        "{out:?}"
    );
    assert!(
        job["StartTime"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{out:?}"
    );
    // The same for people, in the nested layout.
    let human = cluster.brine_run(&["jobs.active"]).await;
    assert_eq!(human.code, 0, "{human:?}");
    assert!(human.stdout.starts_with(&format!("{jid}:\n")), "{human:?}");
    assert!(
        human.stdout.contains("    Running:\n        - slow\n"),
        "{human:?}"
    );

    // While it runs, --missing names the two minions without a return: exit 3.
    let lookup_missing = ["jobs.lookup", jid.as_str(), "--missing"];
    let out = poll_until(
        &cluster,
        &lookup_missing,
        "--missing while slow runs",
        |out| out.stdout == "down  waiting\nslow  running\n",
    )
    .await;
    assert_eq!(out.code, 3, "{out:?}");

    // Its return takes "slow" from the running; the job stays live for "down".
    poll_until(&cluster, &active, "slow returned", |out| {
        shows(out, &jid, &[], &["fast", "slow"], &["down"])
    })
    .await;
    // At the deadline nobody is left running it: the job has ended.
    poll_until(&cluster, &active, "the job's end", |out| {
        assert_eq!(out.code, 0, "{out:?}");
        json(out).get(jid.as_str()).is_none()
    })
    .await;
    let states = [
        ("down", MinionState::NotConnected),
        ("fast", MinionState::Returned),
        ("slow", MinionState::Returned),
    ];
    cluster.master.assert_job_states(&jid, &states).await;
    let out = cluster.brine_run(&lookup_missing).await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (3, "down  not connected\n"),
        "{out:?}"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_active_and_jobs_lookup_give_a_minion_the_same_state() {
    let mut cluster = Cluster::start(&["fast", "slow"]).await;
    cluster
        .add_minion("locked", |minion| {
            minion.disabled_functions = vec!["cmd.*".into()];
        })
        .await;
    let mut kwarg = Map::new();
    kwarg.insert("shell".into(), true.into());
    let command = r#"test "$BRINE_MINION_ID" != slow || sleep 3; echo done"#;
    let jid = publish_async(
        &cluster,
        Target::list_from_str("fast,slow,locked,ghost"),
        "cmd.run",
        vec![command.into()],
        kwarg,
        Duration::from_secs(6),
    )
    .await;
    // While "slow" runs: "locked" refused, "ghost" has no key; jobs.active says so too.
    let out = poll_until(
        &cluster,
        &["--out", "json", "jobs.active"],
        "locked's refusal stored while slow runs",
        |out| {
            let doc = json(out);
            let job = &doc[jid.as_str()];
            !job.is_null() && job.get("Rejected").is_some() && ids(job, "Running") == ["slow"]
        },
    )
    .await;
    let job = &json(&out)[jid.as_str()];
    assert_eq!(ids(job, "Rejected"), ["locked"], "{out:?}");
    assert_eq!(ids(job, "Returned"), ["fast"], "not the refusal: {out:?}");
    assert_eq!(ids(job, "Missing"), ["ghost"], "{out:?}");
    let states = [
        ("fast", MinionState::Returned),
        ("ghost", MinionState::NoKey),
        ("locked", MinionState::Rejected),
        ("slow", MinionState::Running),
    ];
    cluster.master.assert_job_states(&jid, &states).await;
    cluster.stop().await;
}

/// 2000-01-01 00:00:00 UTC: before every job of a test.
const LONG_AGO: &str = "2000-01-01 00:00:00";

/// A time on the master's clock in RFC 3339 with milliseconds.
fn rfc3339(ms: u64) -> String {
    let time = jiff::Timestamp::from_millisecond(ms as i64).expect("a time of this century");
    time.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// The jids `brine-run --out json` lists with `args`, newest first.
async fn listed(cluster: &Cluster, args: &[&str]) -> Vec<String> {
    let args: Vec<&str> = ["--out", "json"].iter().chain(args).copied().collect();
    let out = cluster.brine_run(&args).await;
    assert_eq!(out.code, 0, "{out:?}");
    json(&out)
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {out:?}"))
        .iter()
        .map(|job| job["jid"].as_str().expect("a jid").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_jobs_filters_give_exactly_the_matching_jobs() {
    let cluster = Cluster::start(&["web1", "web2", "db1"]).await;
    let glob = |s: &str| Target::Glob(s.into());
    let ping = publish(&cluster, glob("*"), "test.ping", vec![]).await;
    let echo_db = publish(&cluster, glob("db1"), "test.echo", vec!["hi".into()]).await;
    let version = publish(
        &cluster,
        Target::list_from_str("web1,web2"),
        "test.version",
        vec![],
    )
    .await;
    let echo_web = publish(&cluster, glob("web*"), "test.echo", vec!["again".into()]).await;
    let jid = |r: &JobReport| r.jid.to_string();
    let (ping, echo_db, version, echo_web) = (&ping, &echo_db, &version, &echo_web);
    assert!(
        echo_db.published_ms < version.published_ms,
        "one ms apart at least"
    );

    let all = [jid(echo_web), jid(version), jid(echo_db), jid(ping)];
    assert_eq!(listed(&cluster, &["jobs.list"]).await, all);
    // Salt's words and the flags.
    let echoes = [jid(echo_web), jid(echo_db)];
    assert_eq!(
        listed(&cluster, &["jobs.list_jobs", "search_function=test.echo"]).await,
        echoes
    );
    assert_eq!(
        listed(&cluster, &["jobs.list", "--search-function", "test.e*"]).await,
        echoes
    );
    assert_eq!(
        listed(&cluster, &["jobs.list_jobs", "search_function=test.[!e]*"]).await,
        [jid(version), jid(ping)]
    );
    // The target as written, or an expected minion.
    assert_eq!(
        listed(&cluster, &["jobs.list_jobs", "search_target=db1"]).await,
        [jid(echo_db), jid(ping)]
    );
    assert_eq!(
        listed(&cluster, &["jobs.list_jobs", "search_target=L@*"]).await,
        [jid(version)]
    );
    assert_eq!(
        listed(
            &cluster,
            &[
                "jobs.list_jobs",
                "search_target=web2",
                "search_function=test.echo"
            ]
        )
        .await,
        [jid(echo_web)]
    );
    // Times: inclusive, to the millisecond in RFC 3339, whole seconds in Salt's spelling.
    let from = format!("start_time={}", rfc3339(echo_db.published_ms));
    let to = format!("end_time={}", rfc3339(version.published_ms));
    assert_eq!(
        listed(&cluster, &["jobs.list_jobs", &from, &to]).await,
        [jid(version), jid(echo_db)]
    );
    let after_echo_db = rfc3339(echo_db.published_ms + 1);
    assert_eq!(
        listed(
            &cluster,
            &[
                "jobs.list",
                "--start-time",
                &after_echo_db,
                "search_function=test.*"
            ]
        )
        .await,
        [jid(echo_web), jid(version)]
    );
    let long_ago = format!("start_time={LONG_AGO}");
    assert_eq!(listed(&cluster, &["jobs.list_jobs", &long_ago]).await, all);
    assert!(listed(&cluster, &["jobs.list", "--end-time", LONG_AGO])
        .await
        .is_empty());
    // --limit bounds what passes the filters: the newest first.
    assert_eq!(
        listed(
            &cluster,
            &["jobs.list_jobs", "search_function=test.*", "--limit", "1"]
        )
        .await,
        [jid(echo_web)]
    );
    // The table for people holds the same jobs.
    let out = cluster
        .brine_run(&["jobs.list_jobs", "search_target=db1"])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout.lines().count(),
        3,
        "a header and two jobs: {out:?}"
    );
    assert!(
        out.stdout.contains(&jid(echo_db)) && !out.stdout.contains(&jid(version)),
        "{out:?}"
    );

    for bad in [
        &["jobs.list_jobs", "search_metadata={}"][..],
        &["jobs.list_jobs", "start_time=yesterday"],
        &["jobs.list_jobs", "search_target=a", "--search-target", "b"],
    ] {
        let out = cluster.brine_run(bad).await;
        assert_eq!(out.code, 2, "{bad:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{out:?}");
    }
    // The master refuses an oversized glob itself.
    let huge = format!("search_function={}", "*".repeat(300));
    let out = cluster.brine_run(&["jobs.list_jobs", &huge]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("longer than 256 bytes"), "{out:?}");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_missing_lists_exactly_the_minions_that_did_not_return() {
    let mut cluster = Cluster::start(&["up1", "up2", "down1"]).await;
    cluster.stop_minion("down1").await;
    let glob = |s: &str| Target::Glob(s.into());

    let everyone = publish(&cluster, glob("*"), "test.ping", vec![]).await;
    let jid = everyone.jid.to_string();
    let out = cluster.brine_run(&["jobs.lookup", &jid, "--missing"]).await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (3, "down1  not connected\n"),
        "{out:?}"
    );
    let out = cluster
        .brine_run(&["--out", "json", "jobs.lookup_jid", &jid, "--missing"])
        .await;
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(
        json(&out),
        json!({"down1": "Minion did not return. [Not connected]"})
    );
    // Without --missing, every expected minion.
    let out = cluster
        .brine_run(&["--out", "json", "jobs.lookup", &jid])
        .await;
    assert_eq!(
        json(&out),
        json!({"down1": "Minion did not return. [Not connected]", "up1": true, "up2": true})
    );

    // Every minion returned: nothing to print, and jobs.lookup's exit code.
    let ok = publish(&cluster, glob("up*"), "test.ping", vec![]).await;
    let out = cluster
        .brine_run(&["jobs.lookup", ok.jid.as_str(), "--missing"])
        .await;
    assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{out:?}");
    let failed = publish(&cluster, glob("up*"), "test.retcode", vec![2.into()]).await;
    let out = cluster
        .brine_run(&["jobs.lookup", failed.jid.as_str(), "--missing"])
        .await;
    assert_eq!((out.code, out.stdout.as_str()), (1, ""), "{out:?}");
    let out = cluster
        .brine_run(&["jobs.lookup", "20000101000000000000", "--missing"])
        .await;
    assert_eq!(out.code, 1, "{out:?}");
    cluster.stop().await;
}
