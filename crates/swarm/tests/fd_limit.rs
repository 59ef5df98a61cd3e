//! A swarm the open-file limit cannot hold is refused up front: one line, exit 69, nothing
//! started. The limit is lowered for this test process (and so for the swarm it starts), which
//! is why this test has a file, and a process, of its own.

use std::process::Stdio;

use brine_swarm::limits::files_needed;
use brine_tests::fleet::{bounded, PROCESS_LIMIT};
use nix::sys::resource::{setrlimit, Resource};
use tokio::process::Command;

#[tokio::test]
async fn more_minions_than_the_fd_limit_holds_exit_69_with_one_clear_line() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let state_dir = dir.path().join("state");
    let config = dir.path().join("swarm.toml");
    // A master that does not exist: the swarm must not get as far as looking for it.
    std::fs::write(
        &config,
        format!(
            "id = \"big\"\nmaster = \"127.0.0.1\"\npublish_port = 9\nret_port = 9\n\
             state_dir = \"{}\"\ntrust_first_master = true\n",
            state_dir.display()
        ),
    )
    .expect("writing the configuration");
    setrlimit(Resource::RLIMIT_NOFILE, 256, 256).expect("lowering the open-file limit");

    let output = bounded(
        "brine-swarm refusing",
        PROCESS_LIMIT,
        Command::new(env!("CARGO_BIN_EXE_brine-swarm"))
            .arg("--config")
            .arg(&config)
            .args(["--minions", "1000"])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("running brine-swarm");

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(69), "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "brine-swarm: cannot hold 1000 minions: they need about {} open files and this \
             process may have 256 (hard limit); run several swarms with --first\n",
            files_needed(1000)
        )
    );
    assert!(output.stdout.is_empty());
    assert!(
        !state_dir.exists(),
        "the swarm created state before refusing"
    );
}
