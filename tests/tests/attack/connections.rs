//! Connections that are valid and then idle, from one host, more than the ports admit. Before
//! the fix they filled both ports' connection caps and a restarting minion was locked out for
//! as long as they were held: the cap was first come, first served, and a connection that had
//! sent one message could stay silent for ever. Now a full port makes room for a host that holds
//! fewer connections than the busiest (the busiest host's oldest connection is closed), and the
//! return port closes a connection that sends nothing for six keepalive intervals.

use std::time::Duration;

use brine_tests::fleet::{Fleet, MinionOptions};

use crate::zmtp;

/// The attacker's address: another host, as far as the master can tell.
const ATTACKER: [u8; 4] = [127, 0, 0, 2];

/// More than the master admits on a port with 1500 open files: (1500 − 512) / 6 = 164.
const HELD: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_from_one_host_do_not_lock_a_minion_out() {
    let mut fleet = Fleet::new().await;
    fleet.master_nofile = Some(1500);
    fleet.start_master().await;
    fleet.add_minion("web1", MinionOptions::default()).await;
    fleet.wait_connected(&["web1"]).await;

    // Both ports, filled past their caps: a valid handshake and one message each, then silence.
    let mut held = Vec::new();
    for (port, socket_type, message) in [
        (
            fleet.ret_port,
            "REQ",
            [zmtp::frame_more(b""), zmtp::frame(b"hello")].concat(),
        ),
        (fleet.publish_port, "SUB", zmtp::frame(b"\x01")),
    ] {
        for _ in 0..HELD {
            let Some(mut stream) = zmtp::connect_from(ATTACKER, port).await else {
                continue;
            };
            let mut bytes = zmtp::handshake(socket_type);
            bytes.extend_from_slice(&message);
            if zmtp::send(&mut stream, &bytes).await {
                held.push(stream);
            }
        }
    }

    assert!(
        fleet.master_log().contains("minions=164"),
        "the master's capacity is not what this test expects:\n{}",
        fleet.master_log()
    );
    eprintln!("{} connections held", held.len());

    // The minion restarts while they are held: it reconnects, and runs a job.
    fleet.stop_minion("web1").await;
    fleet
        .wait_connected_as(&["web1"], false, Duration::from_secs(10))
        .await;
    fleet.start_minion("web1").await;
    fleet
        .wait_connected_as(&["web1"], true, Duration::from_secs(15))
        .await;
    fleet.ping(&["web1"]).await;
    drop(held);
}
