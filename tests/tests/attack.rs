//! The real `brine-master` process under hostile peers on its TCP ports: it keeps running,
//! stays under 64 MB, disconnects the attackers, and closes idle unauthenticated connections.

use std::process::Stdio;
use std::time::{Duration, Instant};

use brine_proto::control::{ControlEvent, ControlRequest};
use brine_tests::{binary, control, free_port, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A ZMTP 3.0 greeting (NULL mechanism, as a client) and a READY command for a REQ socket.
fn greeting_and_ready() -> Vec<u8> {
    let mut bytes = vec![0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 0];
    let mut mechanism = b"NULL".to_vec();
    mechanism.resize(20, 0);
    bytes.extend(mechanism);
    bytes.push(0); // as-server
    bytes.extend([0u8; 31]);
    let mut ready = vec![5];
    ready.extend(b"READY");
    ready.push(11);
    ready.extend(b"Socket-Type");
    ready.extend(3u32.to_be_bytes());
    ready.extend(b"REQ");
    bytes.push(0x04); // short command
    bytes.push(ready.len() as u8);
    bytes.extend(ready);
    bytes
}

/// The master's resident set size, in bytes (peak).
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Waits until the peer closes the connection; returns how long that took.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the master kept the connection open for {limit:?}"));
    started.elapsed()
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
    let rss = peak_rss(pid);
    eprintln!("master peak RSS after the attacks: {} KiB", rss / 1024);
    assert!(
        rss < 64 * 1024 * 1024,
        "peak RSS {} MiB",
        rss / (1024 * 1024)
    );

    master.start_kill().unwrap();
    let _ = within("the master exiting", master.wait()).await;
}
