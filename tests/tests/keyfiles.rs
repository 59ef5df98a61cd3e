//! The daemons refuse to start on key files that others can read, and say why.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use brine_tests::{binary, free_port, within};

fn write_config(path: &Path, body: &str) {
    std::fs::write(path, body).unwrap();
}

/// Runs `program --config config` and returns (exit code, stderr).
async fn run(program: &str, config: &Path, extra: &[&str]) -> (i32, String) {
    let output = within(
        "the daemon refusing to start",
        tokio::process::Command::new(binary(program))
            .arg("--config")
            .arg(config)
            .args(extra)
            .env("RUST_LOG", "error")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_minion_key_readable_by_others_stops_the_minion() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("minion");
    let config = dir.path().join("minion.toml");
    write_config(
        &config,
        &format!(
            "id = \"m1\"\nmaster = \"127.0.0.1\"\nstate_dir = \"{}\"\ntrust_first_master = true\n",
            state.display()
        ),
    );
    // First start (print the fingerprint) creates the key, 0600 in a 0700 directory.
    let (code, stderr) = run("brine-minion", &config, &["--print-fingerprint"]).await;
    assert_eq!(code, 0, "{stderr}");
    let key = state.join("pki").join("minion.key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(state.join("pki"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, stderr) = run("brine-minion", &config, &[]).await;
    assert_ne!(code, 0);
    assert!(stderr.contains("minion.key"), "{stderr}");

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(state.join("pki"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (code, stderr) = run("brine-minion", &config, &[]).await;
    assert_ne!(code, 0);
    assert!(stderr.contains("pki"), "{stderr}");
}

#[tokio::test]
async fn a_master_key_readable_by_others_stops_the_master_before_it_binds() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("master");
    let pki = state.join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    std::fs::set_permissions(&pki, std::fs::Permissions::from_mode(0o700)).unwrap();
    // A key made by a master start would be fine; any file open to others is refused.
    brine_crypto::MasterKeys::load_or_create(&pki).unwrap();
    std::fs::set_permissions(
        pki.join("master.key"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    let port = free_port();
    let socket = dir.path().join("master.sock");
    let config = dir.path().join("master.toml");
    write_config(
        &config,
        &format!(
            "interface = \"127.0.0.1\"\npublish_port = {port}\nret_port = {}\nsocket = \"{}\"\nstate_dir = \"{}\"\n",
            free_port(),
            socket.display(),
            state.display()
        ),
    );
    let (code, stderr) = run("brine-master", &config, &[]).await;
    assert_ne!(code, 0);
    assert!(stderr.contains("master.key"), "{stderr}");
    assert!(!socket.exists(), "nothing was bound");
    // The port is free: nothing was bound.
    let bound = std::net::TcpListener::bind(("127.0.0.1", port));
    assert!(bound.is_ok());
}
