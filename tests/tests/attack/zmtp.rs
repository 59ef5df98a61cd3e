//! A raw ZMTP 3.0 peer, as an attacker writes one: the greeting, READY, frames, and a
//! connection that keeps writing until the master closes it.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A ZMTP 3.0 greeting (NULL mechanism, as a client) and a READY command for `socket_type`.
pub fn handshake(socket_type: &str) -> Vec<u8> {
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
    ready.extend((socket_type.len() as u32).to_be_bytes());
    ready.extend(socket_type.as_bytes());
    bytes.push(0x04); // short command
    bytes.push(ready.len() as u8);
    bytes.extend(ready);
    bytes
}

/// One message frame (the last of its message).
pub fn frame(body: &[u8]) -> Vec<u8> {
    frame_with(0x00, body)
}

/// One message frame with more to come in its message.
pub fn frame_more(body: &[u8]) -> Vec<u8> {
    frame_with(0x01, body)
}

fn frame_with(flags: u8, body: &[u8]) -> Vec<u8> {
    let mut out = if body.len() > 255 {
        let mut header = vec![flags | 0x02];
        header.extend((body.len() as u64).to_be_bytes());
        header
    } else {
        vec![flags, body.len() as u8]
    };
    out.extend_from_slice(body);
    out
}

/// Connects to `port` on loopback and completes the client's half of the handshake; None when
/// the master does not take the connection.
pub async fn connect(port: u16, socket_type: &str) -> Option<TcpStream> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    stream.write_all(&handshake(socket_type)).await.ok()?;
    Some(stream)
}

/// Writes `bytes`; false when the peer closed, reset or stopped reading for a second.
pub async fn send(stream: &mut TcpStream, bytes: &[u8]) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(1), stream.write_all(bytes)).await,
        Ok(Ok(()))
    )
}

/// Waits until the peer closes the connection; panics when it stays open for `limit`.
pub async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Duration {
    let started = std::time::Instant::now();
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

/// Connects to `port` on 127.0.0.1 from the loopback address `source` (all of 127.0.0.0/8 is
/// this host's, so a test can play another host).
pub async fn connect_from(source: [u8; 4], port: u16) -> Option<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4().ok()?;
    socket
        .bind(std::net::SocketAddr::from((source, 0)))
        .expect("binding a loopback source address");
    socket
        .connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .ok()
}
