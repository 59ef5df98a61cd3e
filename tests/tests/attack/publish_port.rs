//! The publish port (4505) under floods from peers that hold no key: subscriptions by the
//! hundred thousand, and frames that are not subscriptions at all. A brine minion sends one
//! subscription per connection; the guard lets a connection send a few and closes it after,
//! and refuses anything that is not a subscription before the zeromq crate sees (and logs) it.

use std::time::{Duration, Instant};

use brine_tests::fleet::Fleet;

use crate::{rss_of, zmtp, MIB};

/// How long each flood lasts.
const ATTACK: Duration = Duration::from_secs(4);

/// Floods `port` until `until` from one task: connects as a SUB socket, sends the frames
/// `message(n)` makes (a new `n` each time) until the master closes the connection, then
/// connects again. Returns how many frames the kernel took.
async fn flood(port: u16, until: Instant, message: impl Fn(u64) -> Vec<u8>) -> u64 {
    let mut n = 0u64;
    while Instant::now() < until {
        let Some(mut stream) = zmtp::connect(port, "SUB").await else {
            tokio::task::yield_now().await;
            continue;
        };
        // A batch of frames per write, as a fast attacker sends them.
        loop {
            let batch: Vec<u8> = (0..64).flat_map(|i| message(n + i)).collect();
            if Instant::now() >= until || !zmtp::send(&mut stream, &batch).await {
                break;
            }
            n += 64;
        }
    }
    n
}

/// A distinct subscription of `len` bytes of topic.
fn subscription(n: u64, len: usize) -> Vec<u8> {
    let mut body = vec![0x01];
    body.extend(format!("{n:0len$}").into_bytes());
    zmtp::frame(&body)
}

/// Two connections at a time, each sending distinct subscriptions as fast as they can (1000
/// bytes of topic on one, 100 on the other), for four seconds. Before the fix the master grew
/// to gigabytes and both its runtime workers hung inside the zeromq crate for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_flood_neither_hangs_nor_bloats_the_master() {
    let fleet = Fleet::start(&["web1"]).await;
    let pid = fleet.master_pid().unwrap();
    let before = rss_of(pid);
    let until = Instant::now() + ATTACK;
    let port = fleet.publish_port;
    let long = tokio::spawn(flood(port, until, |n| subscription(n, 1000)));
    let short = tokio::spawn(flood(port, until, |n| subscription(n, 100)));

    // The master serves root's CLI and the minion while the flood lasts, and after it.
    let mut pings = 0;
    while Instant::now() < until {
        fleet.ping(&["web1"]).await;
        pings += 1;
    }
    let sent = long.await.unwrap() + short.await.unwrap();
    fleet.ping(&["web1"]).await;
    let after = rss_of(pid);
    eprintln!(
        "{sent} subscriptions sent, {pings} pings answered during the flood; master RSS {} -> {} MiB (peak {} MiB)",
        before.now / MIB,
        after.now / MIB,
        after.peak / MIB
    );
    assert!(sent > 10_000, "the flood never got going: {sent} frames");
    assert!(
        after.peak < before.peak + 64 * MIB,
        "the master grew from {} to {} MiB",
        before.peak / MIB,
        after.peak / MIB
    );
}

/// Two connections sending 2-byte frames that are not subscriptions. Before the fix the zeromq
/// crate logged a warning for each (millions of lines) and the master spent both cores on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_that_are_not_subscriptions_do_not_flood_the_log() {
    let fleet = Fleet::start(&["web1"]).await;
    let warnings = |log: String| {
        log.lines()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .count()
    };
    let before = warnings(fleet.master_log());
    let until = Instant::now() + ATTACK;
    let port = fleet.publish_port;
    let floods = [
        tokio::spawn(flood(port, until, |_| zmtp::frame(b"\x07x"))),
        tokio::spawn(flood(port, until, |_| zmtp::frame(b"\x07x"))),
    ];
    let mut pings = 0;
    while Instant::now() < until {
        fleet.ping(&["web1"]).await;
        pings += 1;
    }
    let mut sent = 0;
    for flood in floods {
        sent += flood.await.unwrap();
    }
    fleet.ping(&["web1"]).await;
    let logged = warnings(fleet.master_log()) - before;
    eprintln!("{sent} frames sent, {pings} pings answered, {logged} warnings logged");
    // The guard logs 20 refusals per 10 s window, then one line saying how many it held back.
    assert!(logged < 100, "{logged} warnings for {sent} frames");
}
