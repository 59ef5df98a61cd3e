//! What a real minion can run: `sys.list_functions` through the real CLI lists every function
//! an operator types every day (issue 6's list), each documented in `sys.doc` and described by
//! `sys.argspec`.

use brine_tests::{json, Cluster};

/// The functions operators use most, by Salt's names.
const EVERYDAY: &[&str] = &[
    "cmd.run",
    "cmd.run_all",
    "cmd.shell",
    "test.ping",
    "test.echo",
    "grains.items",
    "grains.get",
    "grains.setval",
    "grains.delval",
    "saltutil.running",
    "saltutil.find_job",
    "saltutil.kill_job",
    "saltutil.refresh_grains",
    "service.start",
    "service.stop",
    "service.restart",
    "service.reload",
    "service.status",
    "service.enable",
    "service.disable",
    "service.enabled",
    "service.available",
    "service.get_all",
    "pkg.version",
    "pkg.list_pkgs",
    "pkg.install",
    "pkg.remove",
    "pkg.latest_version",
    "pkg.refresh_db",
    "pkg.upgrade",
    "file.file_exists",
    "file.directory_exists",
    "file.get_hash",
    "file.stats",
    "file.read",
    "file.write",
    "file.touch",
    "file.remove",
    "file.mkdir",
    "file.replace",
    "file.contains",
    "status.uptime",
    "status.loadavg",
    "status.meminfo",
    "disk.usage",
    "network.ip_addrs",
    "network.ping",
    "user.info",
    "user.list_users",
    "group.info",
    "sys.list_functions",
    "sys.doc",
    "sys.argspec",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minion_lists_documents_and_describes_every_everyday_function() {
    let cluster = Cluster::start(&["web1"]).await;
    let out = cluster
        .brine(&["--out", "json", "web1", "sys.list_functions"])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let listed = json(&out)["web1"].clone();
    let listed: Vec<&str> = listed
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    let missing: Vec<&&str> = EVERYDAY.iter().filter(|f| !listed.contains(f)).collect();
    assert!(missing.is_empty(), "not listed: {missing:?}");

    let out = cluster.brine(&["--out", "json", "web1", "sys.doc"]).await;
    let docs = json(&out)["web1"].clone();
    let argspec = cluster
        .brine(&["--out", "json", "web1", "sys.argspec"])
        .await;
    let specs = json(&argspec)["web1"].clone();
    for name in EVERYDAY {
        let doc = docs[*name].as_str().unwrap_or_default();
        assert!(
            doc.contains(&format!("brine '*' {name}")),
            "{name}: {doc:?}"
        );
        assert!(
            specs[*name].is_object(),
            "{name} has no argspec: {argspec:?}"
        );
    }
    cluster.stop().await;
}
