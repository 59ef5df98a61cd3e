//! The binaries' surface without a master: help, version, usage errors, an unreachable master.

use std::time::Duration;

use assert_cmd::cargo::cargo_bin_cmd;

fn run(bin: &str, args: &[&str]) -> std::process::Output {
    let mut cmd = match bin {
        "brine" => cargo_bin_cmd!("brine"),
        _ => cargo_bin_cmd!("brine-run"),
    };
    cmd.args(args)
        .env_remove("BRINE_SOCKET")
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_lists_the_exit_codes() {
    let out = run("brine", &["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    assert!(help.contains("Exit codes:"), "{help}");
    for code in ["  0 ", "  1 ", "  2 ", "  3 ", "  4 ", "  69 "] {
        assert!(help.contains(code), "{code:?} missing from\n{help}");
    }
    assert!(help.contains("BRINE_SOCKET"), "{help}");

    let out = run("brine-run", &["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    assert!(help.contains("Exit codes:"), "{help}");
    for sub in [
        "jobs.list",
        "jobs.lookup",
        "manage.up",
        "manage.down",
        "manage.status",
    ] {
        assert!(help.contains(sub), "{sub} missing from\n{help}");
    }
}

#[test]
fn version_names_the_program() {
    let out = run("brine", &["--version"]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout),
        format!("brine {}\n", env!("CARGO_PKG_VERSION"))
    );
    let out = run("brine-run", &["--version"]);
    assert_eq!(
        text(&out.stdout),
        format!("brine-run {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn an_unreachable_master_is_69_with_one_clear_line() {
    let out = run("brine", &["--socket", "/nonexistent", "*", "test.ping"]);
    assert_eq!(out.status.code(), Some(69));
    assert!(out.stdout.is_empty());
    assert_eq!(
        text(&out.stderr),
        "brine: cannot reach the master at /nonexistent: No such file or directory \
         (is brine-master running?)\n"
    );
    let out = run("brine-run", &["manage.up", "--socket", "/nonexistent"]);
    assert_eq!(out.status.code(), Some(69));
    assert!(text(&out.stderr).starts_with("brine-run: cannot reach the master at /nonexistent"));
}

#[test]
fn the_socket_comes_from_the_environment() {
    let out = cargo_bin_cmd!("brine")
        .args(["*", "test.ping"])
        .env("BRINE_SOCKET", "/nonexistent/from-env.sock")
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(69));
    assert!(text(&out.stderr).contains("/nonexistent/from-env.sock"));
}

#[test]
fn a_missing_function_is_a_usage_error() {
    let out = run("brine", &["--socket", "/nonexistent", "*"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("FUNCTION"),
        "{}",
        text(&out.stderr)
    );
    let out = run("brine", &["--socket", "/nonexistent", "*", "ping"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("module.function"));
}

#[test]
fn a_bad_target_is_a_usage_error() {
    let out = run(
        "brine",
        &["--socket", "/nonexistent", "-E", "(", "test.ping"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).starts_with("brine: invalid target:"));
}

#[test]
fn a_bad_jid_is_a_usage_error() {
    let out = run(
        "brine-run",
        &["--socket", "/nonexistent", "jobs.lookup", "notajid"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("a jid is 20 decimal digits"));
}
