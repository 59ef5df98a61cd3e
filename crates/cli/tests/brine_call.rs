//! `brine-call` run for real on this host (the real execution modules, a minion configuration
//! in a temporary directory), and `brine -d`, which needs no master either.

use std::path::Path;

use assert_cmd::cargo::cargo_bin_cmd;
use serde_json::json;

/// A minion configuration for `web9` with a custom grain, its state under `dir`.
fn config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("minion.toml");
    let toml = format!(
        "id = \"web9\"\nstate_dir = \"{}\"\n[grains]\nrole = \"web\"\n",
        dir.join("state").display()
    );
    std::fs::write(&path, toml).unwrap();
    path
}

fn call(config: &Path, args: &[&str]) -> (i32, String, String) {
    let out = cargo_bin_cmd!("brine-call")
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("BRINE_MINION_ID")
        .env("NO_COLOR", "1")
        .timeout(std::time::Duration::from_secs(30))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_function_runs_here_as_the_configured_minion() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let (code, out, err) = call(
        &config,
        &["--local", "--out", "json", "grains.item", "id", "role"],
    );
    assert_eq!(code, 0, "{err}");
    let value: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(value, json!({"local": {"id": "web9", "role": "web"}}));

    let (code, out, _) = call(&config, &["cmd.run", "echo hello | tr h j"]);
    assert_eq!(code, 0);
    assert_eq!(
        out, "local:\n    jello\n",
        "salt-call's layout, and a shell"
    );
}

#[test]
fn grains_set_here_are_stored_for_the_minion() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let (code, _, err) = call(&config, &["grains.setval", "color", "blue"]);
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = call(&config, &["--out", "json", "grains.get", "color"]);
    assert_eq!(out.trim(), "{\n    \"local\": \"blue\"\n}");
    let stored = std::fs::read_to_string(dir.path().join("state/grains.json")).unwrap();
    assert!(stored.contains("\"color\": \"blue\""), "{stored}");
}

#[test]
fn failures_exit_1_or_the_retcode_and_bad_input_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let (code, out, _) = call(&config, &["test.retcode", "3"]);
    assert_eq!(code, 1, "{out}");
    let (code, _, _) = call(&config, &["--retcode-passthrough", "test.retcode", "3"]);
    assert_eq!(code, 3);
    let (code, out, _) = call(&config, &["test.echo"]);
    assert_eq!(code, 1);
    assert!(out.contains("missing required argument 'text'"), "{out}");
    let (code, _, err) = call(&config, &["nodot"]);
    assert_eq!(code, 2, "{err}");
    std::fs::write(&config, "id = \"../x\"\n").unwrap();
    let (code, _, err) = call(&config, &["test.ping"]);
    assert_eq!(code, 2);
    assert!(err.contains("minion configuration"), "{err}");
}

#[test]
fn brine_d_prints_documentation_without_a_master() {
    let out = cargo_bin_cmd!("brine")
        .args(["-d", "test.ping"])
        .env("BRINE_SOCKET", "/nonexistent/master.sock")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("test.ping:\n\n    "), "{text}");
    assert!(text.contains("brine '*' test.ping"), "{text}");
    assert!(!text.contains("test.echo:"), "{text}");

    let out = cargo_bin_cmd!("brine")
        .args(["-d", "saltutil"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("saltutil.kill_job:") && text.contains("saltutil.running:"));

    let out = cargo_bin_cmd!("brine")
        .args(["-d", "nope.*"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no function matches"));
}
