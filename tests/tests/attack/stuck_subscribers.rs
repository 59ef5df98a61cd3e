//! Subscribers that never read. Anyone may subscribe on the publish port, and to any topic (the
//! publications are signed and encrypted), but the zeromq PUB socket queues up to 100,000
//! messages for a subscriber it cannot write to, and the guard stops reading from the socket
//! when it cannot write to its peer: so a peer that subscribed to a minion's topic and then
//! never read was closed only after 15 s without progress, and one that read a little every
//! few seconds never: every job published to that minion stayed in the master meanwhile. Now
//! the guard also closes a publish-port connection that has been behind for 10 s (it has not
//! caught up with the socket since), and with it the upstream connection, and the socket drops
//! that subscriber's queue.

use std::time::{Duration, Instant};

use brine_proto::{Map, MinionId, Target};
use brine_tests::fleet::{bounded, eventually, Fleet, MinionOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::{reset_peak, rss_of, zmtp, MIB};

/// Peers that subscribe and never read.
const STUCK: usize = 2;
/// Peers that subscribe and read a little now and then.
const SLOW: usize = 2;
/// Jobs root publishes to db1 meanwhile, of `JOB_BYTES` each: 88 MiB in all.
const JOBS: usize = 100;
const JOB_BYTES: usize = 900 * 1024;
/// What the master may rise by while the stuck peers hold on: the jobs published within the
/// guard's 10 s (all 100 here, published in about 4.3 s), the socket's copy of the one being
/// written to each connection, and what the allocator keeps; measured 105-106 MiB.
const PEAK_RISE: u64 = 128 * MIB;
/// How close to the baseline the master must come back.
const SETTLED_RISE: u64 = 32 * MIB;

/// A raw SUB peer with a small receive buffer (so that it stops taking bytes soon), subscribed
/// to db1's topic and to what goes to everyone; it reads nothing.
async fn stuck_subscriber(port: u16) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket
        .connect(([127, 0, 0, 1], port).into())
        .await
        .expect("connecting to the publish port");
    let topic = brine_proto::msg::topic_of(&MinionId::new("db1").unwrap());
    let subscribe = |topic: &[u8]| zmtp::frame(&[b"\x01", topic].concat());
    let hello = [
        zmtp::handshake("SUB"),
        subscribe(&topic),
        subscribe(brine_proto::msg::TOPIC_EVERYONE),
    ]
    .concat();
    stream.write_all(&hello).await.unwrap();
    stream
}

/// Reads 4 KiB every 100 ms (40 KB/s) until the master closes the connection: it never
/// stalls, but falls ever further behind 900 KiB jobs.
async fn read_slowly(mut stream: TcpStream) {
    let mut buf = [0u8; 4096];
    while let Ok(1..) = stream.read(&mut buf).await {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_that_never_read_are_closed_and_their_queues_dropped() {
    let mut fleet = Fleet::new().await;
    fleet.start_master().await;
    fleet.add_minion("web1", MinionOptions::default()).await;
    // db1's key is accepted, so its jobs are published under its topic, which the stuck peers
    // take; with db1 stopped nobody runs them (and web1 is not busy returning 88 MiB).
    fleet.add_minion("db1", MinionOptions::default()).await;
    fleet.wait_connected(&["web1", "db1"]).await;
    fleet.stop_minion("db1").await;
    let pid = fleet.master_pid().unwrap();
    let baseline = rss_of(pid).now;
    reset_peak(pid);

    let port = fleet.publish_port;
    let _stuck = bounded(
        "the stuck peers subscribing",
        Duration::from_secs(10),
        futures::future::join_all((0..STUCK).map(|_| stuck_subscriber(port))),
    )
    .await;
    let slow = bounded(
        "the slow peers subscribing",
        Duration::from_secs(10),
        futures::future::join_all((0..SLOW).map(|_| stuck_subscriber(port))),
    )
    .await;
    let slow: Vec<_> = slow
        .into_iter()
        .map(|s| tokio::spawn(read_slowly(s)))
        .collect();
    // A ping of web1 goes after the subscriptions: the PUB socket has them.
    bounded(
        "a ping of web1",
        Duration::from_secs(30),
        fleet.ping(&["web1"]),
    )
    .await;

    let started = Instant::now();
    let big = "x".repeat(JOB_BYTES);
    for _ in 0..JOBS {
        fleet
            .publish_control(
                Target::Glob("db1".into()),
                "test.arg",
                vec![big.clone().into()],
                Map::new(),
                Duration::from_secs(60),
            )
            .await;
    }
    let published = started.elapsed();
    // web1 reads on: it is answered while the stuck peers hold on.
    let ping = bounded(
        "a ping of web1 behind the jobs",
        Duration::from_secs(60),
        fleet.brine(&["-t", "30", "web1", "test.ping"]),
    )
    .await;
    assert_eq!(ping.code, 0, "{ping:?}");

    // The guard closes them all: the silent ones for not reading, the slow ones for falling
    // behind. (The kernel still holds what the guard had written to them.)
    eventually(
        "the guard to close the stuck peers",
        Duration::from_secs(60),
        || async {
            let log = fleet.master_log();
            let closed = log
                .lines()
                .filter(|l| l.contains("peer read nothing") || l.contains("peer fell behind"))
                .count();
            (closed >= STUCK + SLOW).then_some(())
        },
    )
    .await;
    let closed = started.elapsed();
    let peak = rss_of(pid).peak;
    let settled = eventually(
        "the master's memory to come back",
        Duration::from_secs(60),
        || async {
            let now = rss_of(pid).now;
            (now < baseline + SETTLED_RISE).then_some(now)
        },
    )
    .await;
    eprintln!(
        "master RSS: {} MiB before, {} MiB peak, {} MiB after; {JOBS} jobs of {JOB_BYTES} B published in {published:?}, the stuck peers closed {closed:?} after the first",
        baseline / MIB,
        peak / MIB,
        settled / MIB,
    );
    assert!(
        peak < baseline + PEAK_RISE,
        "the master's peak rose by {} MiB",
        (peak - baseline) / MIB
    );
    bounded(
        "a ping of web1 after",
        Duration::from_secs(30),
        fleet.ping(&["web1"]),
    )
    .await;
    for reader in slow {
        reader.abort();
    }
}
