//! The shipped configuration files and the daemons' start-up checks: `config/*.toml` list every
//! setting with a comment and load to exactly the defaults; a bad key or value, in the file or
//! in the environment, stops `brine-master` and `brine-minion` with one line and exit code 64
//! before they bind or create anything.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use brine_master::MasterConfig;
use brine_minion::MinionConfig;
use brine_tests::{binary, within, Output};

/// The documented exit code for a configuration that cannot be used.
const EXIT_CONFIG: i32 = 64;

fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config")
        .join(name)
}

/// The field names of a struct, read from its pretty `Debug` output.
fn debug_fields(pretty: &str) -> BTreeSet<String> {
    pretty
        .lines()
        .filter_map(|line| line.strip_prefix("    "))
        .filter(|line| !line.starts_with(' '))
        .filter_map(|line| line.split_once(':').map(|(key, _)| key.to_owned()))
        .collect()
}

/// The keys a TOML file sets, each checked to have a comment line right above it.
fn documented_keys(path: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(path).expect("reading a shipped config");
    let lines: Vec<&str> = text.lines().collect();
    let mut keys = BTreeSet::new();
    for (at, line) in lines.iter().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, _) = line
            .split_once(" = ")
            .unwrap_or_else(|| panic!("{}: not `key = value`: {line}", path.display()));
        assert!(
            at > 0 && lines[at - 1].starts_with('#'),
            "{}: {key} has no comment above it",
            path.display()
        );
        assert!(keys.insert(key.to_owned()), "{key} set twice");
    }
    keys
}

#[test]
fn master_toml_lists_every_setting_at_its_default() {
    let path = shipped("master.toml");
    let loaded = MasterConfig::load(Some(&path)).expect("config/master.toml loads");
    let default = MasterConfig::default();
    assert_eq!(format!("{loaded:#?}"), format!("{default:#?}"));
    assert_eq!(
        documented_keys(&path),
        debug_fields(&format!("{default:#?}"))
    );
}

#[test]
fn minion_toml_lists_every_setting_at_its_default() {
    let path = shipped("minion.toml");
    let loaded = MinionConfig::load(Some(&path)).expect("config/minion.toml loads");
    let default = MinionConfig::default();
    assert_eq!(format!("{loaded:#?}"), format!("{default:#?}"));
    assert_eq!(
        documented_keys(&path),
        debug_fields(&format!("{default:#?}"))
    );
}

/// Runs a daemon binary with `args` and `env` (and no other `BRINE_*` variable), bounded by
/// the harness's step timeout: one that does not stop fails the test and is killed.
async fn daemon(name: &str, args: &[&Path], env: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(binary(name));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("BRINE_") {
            command.env_remove(key);
        }
    }
    let output = within(
        name,
        command
            .args(args)
            .envs(env.iter().copied())
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the daemon runs");
    Output {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Asserts a configuration failure: exit 64, nothing on stdout, one line on stderr that names
/// the program and mentions `what`.
fn assert_config_error(out: &Output, program: &str, what: &str) {
    assert_eq!(out.code, EXIT_CONFIG, "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(out.stderr.ends_with('\n'), "{out:?}");
    assert!(out.stderr.starts_with(&format!("{program}: ")), "{out:?}");
    assert!(out.stderr.contains(what), "{out:?}");
}

/// A master config file in `dir`: state and socket inside `dir`, loopback, then `extra`.
fn master_file(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("master.toml");
    let toml = format!(
        "interface = \"127.0.0.1\"\nsocket = {:?}\nstate_dir = {:?}\n{extra}",
        dir.join("master.sock"),
        dir.join("state"),
    );
    std::fs::write(&path, toml).expect("writing a config");
    path
}

/// Nothing was bound or created in `dir` but the config file.
fn assert_untouched(dir: &Path) {
    assert!(!dir.join("master.sock").exists(), "the socket was bound");
    assert!(!dir.join("state").exists(), "the state directory was made");
}

#[tokio::test]
async fn master_unknown_key_exits_64_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = master_file(dir.path(), "publsh_port = 4505\n");
    let out = daemon("brine-master", &[Path::new("--config"), &file], &[]).await;
    assert_config_error(&out, "brine-master", "publsh_port");
    assert_untouched(dir.path());
}

#[tokio::test]
async fn master_invalid_value_exits_64_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = master_file(dir.path(), "publish_port = \"x\"\n");
    let out = daemon("brine-master", &[Path::new("--config"), &file], &[]).await;
    assert_config_error(&out, "brine-master", "publish_port");
    assert_untouched(dir.path());
}

#[tokio::test]
async fn master_reads_the_environment_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = master_file(dir.path(), "publish_port = 4505\n");
    let out = daemon(
        "brine-master",
        &[Path::new("--config"), &file],
        &[("BRINE_MASTER_PUBLISH_PORT", "abc")],
    )
    .await;
    assert_config_error(&out, "brine-master", "publish_port");
    assert_untouched(dir.path());
}

#[tokio::test]
async fn minion_bad_id_from_the_environment_exits_64() {
    let out = daemon(
        "brine-minion",
        &[Path::new("--config"), &shipped("minion.toml")],
        &[("BRINE_MINION_ID", "../x")],
    )
    .await;
    assert_config_error(&out, "brine-minion", " id");
}

#[tokio::test]
async fn minion_unknown_key_exits_64_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("minion.toml");
    std::fs::write(&file, "mastr = \"127.0.0.1\"\n").unwrap();
    let out = daemon("brine-minion", &[Path::new("--config"), &file], &[]).await;
    assert_config_error(&out, "brine-minion", "mastr");
}
