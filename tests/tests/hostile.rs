//! Malformed input on the master's return port never stops it from serving valid minions.

use std::time::Duration;

use brine_proto::control::MinionState;
use brine_proto::msg::ReplyError;
use brine_proto::{decode_envelope, encode, MasterReply, Target};
use brine_tests::{within, TestMaster, TestMinion};
use tokio::io::AsyncWriteExt;
use zeromq::{ReqSocket, Socket, SocketRecv, SocketSend, ZmqMessage};

/// Five hundred malformed requests of many kinds, each of which must get a `malformed` answer.
fn malformed_requests() -> Vec<Vec<u8>> {
    let valid_body = encode(&serde_json::json!({"type": "keepalive", "id": "m1"}));
    let mut requests = Vec::new();
    for i in 0..500usize {
        let bytes = match i % 10 {
            0 => vec![],
            1 => vec![0xc1],
            2 => (0..i).map(|b| b as u8).collect(),
            3 => vec![0x91; 100 + i],
            4 => vec![0xdd, 0xff, 0xff, 0xff, 0xff],
            5 => encode(&serde_json::json!({"v": 1, "kind": "plain", "body": "not bin"})),
            6 => encode(&serde_json::json!({"v": 99, "kind": "plain", "body": []})),
            7 => {
                // A valid envelope around a body naming a hostile id.
                let body = encode(&serde_json::json!({"type": "keepalive", "id": "../etc"}));
                envelope(&body)
            }
            8 => envelope(&encode(&serde_json::json!({"type": "publish", "id": "m1"}))),
            _ => {
                let mut truncated = envelope(&valid_body);
                truncated.truncate(i % truncated.len().max(1));
                truncated
            }
        };
        requests.push(bytes);
    }
    requests
}

fn envelope(body: &[u8]) -> Vec<u8> {
    // {v: 1, kind: "plain", body: bin}
    let mut bytes = vec![0x83, 0xa1, b'v', 0x01, 0xa4, b'k', b'i', b'n', b'd'];
    bytes.extend([
        0xa5, b'p', b'l', b'a', b'i', b'n', 0xa4, b'b', b'o', b'd', b'y',
    ]);
    bytes.push(0xc6);
    bytes.extend((body.len() as u32).to_be_bytes());
    bytes.extend(body);
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_answered_and_valid_minions_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let master = TestMaster::start(dir.path()).await;
    let minions = master.start_minions(dir.path(), &["ok1", "ok2"]);
    master.wait_connected(&["ok1", "ok2"]).await;

    // Raw TCP peers that are not ZMTP at all, left open while the rest goes on.
    let mut junk = Vec::new();
    for _ in 0..20 {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", master.ret_port))
            .await
            .unwrap();
        let _ = stream
            .write_all(b"GET / HTTP/1.1\r\n\r\n\xff\xff\xff")
            .await;
        junk.push(stream);
    }

    let endpoint = format!("tcp://127.0.0.1:{}", master.ret_port);
    let attacker = async {
        let mut socket = ReqSocket::new();
        socket.connect(&endpoint).await.unwrap();
        for request in malformed_requests() {
            socket.send(ZmqMessage::from(request)).await.unwrap();
            let reply = socket.recv().await.unwrap();
            let reply: MasterReply = decode_envelope(&reply.into_vec()[0]).unwrap();
            assert!(
                matches!(
                    reply,
                    MasterReply::Error {
                        code: ReplyError::Malformed,
                        ..
                    }
                ),
                "{reply:?}"
            );
        }
    };
    let pings = async {
        for _ in 0..5 {
            let events = master
                .publish(
                    Target::Glob("*".into()),
                    "test.ping",
                    vec![],
                    Duration::from_secs(5),
                )
                .await;
            let report = brine_tests::report(&events);
            assert!(report
                .minions
                .iter()
                .all(|m| m.state == MinionState::Returned));
        }
    };
    within("attack and pings", async { tokio::join!(attacker, pings) }).await;

    drop(junk);
    TestMinion::stop_all(minions).await;
    master.stop().await;
}
