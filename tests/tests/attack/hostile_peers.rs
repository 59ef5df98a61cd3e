//! Hostile peers on the TCP ports: a frame header claiming 2^60 bytes, a flood of empty
//! frames, silent connections. The master keeps running, stays under 64 MB, disconnects the
//! attackers, and closes idle unauthenticated connections.

use std::process::Stdio;
use std::time::Duration;

use brine_proto::control::{ControlEvent, ControlRequest};
use brine_tests::{binary, control, free_port, within};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::rss_of;
use crate::zmtp::closed_within;

fn greeting_and_ready() -> Vec<u8> {
    crate::zmtp::handshake("REQ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_master_survives_hostile_peers_within_64_mb() {
    let dir = tempfile::tempdir().unwrap();
    let (publish_port, ret_port) = (free_port(), free_port());
    let socket = dir.path().join("master.sock");
    let config = dir.path().join("master.toml");
    std::fs::write(
        &config,
        format!(
            "interface = \"127.0.0.1\"\npublish_port = {publish_port}\nret_port = {ret_port}\n\
             socket = \"{}\"\nstate_dir = \"{}\"\n",
            socket.display(),
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let mut master = tokio::process::Command::new(binary("brine-master"))
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = master.id().unwrap();
    within("the master starting", async {
        while tokio::net::UnixStream::connect(&socket).await.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

    for port in [ret_port, publish_port] {
        // A frame header claiming 2^60 bytes.
        let mut huge = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut bytes = greeting_and_ready();
        bytes.push(0x02);
        bytes.extend((1u64 << 60).to_be_bytes());
        bytes.extend([0u8; 1024]);
        let _ = huge.write_all(&bytes).await;
        closed_within(&mut huge, Duration::from_secs(5)).await;

        // 50 MiB of empty multipart frames.
        let mut flood = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let _ = flood.write_all(&greeting_and_ready()).await;
        let chunk = [0x01u8, 0x00].repeat(32 * 1024);
        let mut sent = 0usize;
        while sent < 50 * 1024 * 1024 {
            match tokio::time::timeout(Duration::from_secs(5), flood.write_all(&chunk)).await {
                Ok(Ok(())) => sent += chunk.len(),
                _ => break,
            }
        }
        assert!(
            sent < 50 * 1024 * 1024,
            "the flood was never cut off (port {port})"
        );
        closed_within(&mut flood, Duration::from_secs(5)).await;
    }

    // Idle connections, one silent from the start and one silent after its handshake.
    let mut silent = TcpStream::connect(("127.0.0.1", ret_port)).await.unwrap();
    let mut shy = TcpStream::connect(("127.0.0.1", ret_port)).await.unwrap();
    shy.write_all(&greeting_and_ready()).await.unwrap();
    let (a, b) = tokio::join!(
        closed_within(&mut silent, Duration::from_secs(11)),
        closed_within(&mut shy, Duration::from_secs(11)),
    );
    assert!(a <= Duration::from_secs(11) && b <= Duration::from_secs(11));

    // Still alive, still answering, and small.
    assert!(master.try_wait().unwrap().is_none(), "the master died");
    let events = control(&socket, ControlRequest::Minions {}).await;
    assert!(
        matches!(events.first(), Some(ControlEvent::Minions { .. })),
        "{events:?}"
    );
    let rss = rss_of(pid).peak;
    eprintln!("master peak RSS after the attacks: {} KiB", rss / 1024);
    assert!(
        rss < 64 * 1024 * 1024,
        "peak RSS {} MiB",
        rss / (1024 * 1024)
    );

    master.start_kill().unwrap();
    let _ = within("the master exiting", master.wait()).await;
}
