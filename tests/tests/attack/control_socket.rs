//! Local users of the socket group against the control socket. Before the fix, 300 connections
//! each waiting on a live job took all 256 control slots, so root's `brine` and `brine-key list`
//! failed for as long as the job lived; silent connections delayed root by seconds per call;
//! partial 16 MiB frames from 121 connections took the master from 0.47 to 2.1 GB (the codec
//! reserved each frame's announced length). Now root and the master's user have seats of their
//! own, other users at most 32 each and 64 MiB of requests together, and a request's buffer
//! grows only as its bytes arrive.
//!
//! The attackers are uids with no name in the socket's group (`nogroup`), through `setpriv`:
//! without root and setpriv the test says so and checks nothing.

use std::time::Duration;

use brine_proto::control::ControlRequest;
use brine_tests::fleet::{bounded, eventually};

use crate::local_users::{frame, LocalUsers};
use crate::{rss_of, MIB};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_of_the_socket_group_cannot_lock_root_out_or_bloat_the_master() {
    let Some(users) = LocalUsers::started("web1").await else {
        return;
    };
    let fleet = &users.fleet;
    let pid = fleet.master_pid().unwrap();

    // Partial frames: each promises 16 MiB and sends 15, from 64 connections of two users.
    let before = rss_of(pid);
    let mut partial = Vec::new();
    let mut promise = (16u32 << 20).to_be_bytes().to_vec();
    promise.resize(4 + (15 << 20), 0);
    for uid in [60000, 60001] {
        partial.push(users.hold(uid, 32, &promise).await);
    }
    let after = rss_of(pid);
    eprintln!(
        "partial frames: RSS {} MiB before, peak {} MiB",
        before.now / MIB,
        after.peak / MIB
    );
    assert!(
        after.peak < before.now + 160 * MIB,
        "64 partial frames raised the master from {} to {} MiB",
        before.now / MIB,
        after.peak / MIB
    );
    for holder in partial {
        holder.stop().await;
    }

    // A live job, and more connections waiting on it than there are seats for other users;
    // silent connections besides.
    let jid = fleet.publish(300, &["web1", "test.sleep", "240"]).await;
    let lookup = frame(&ControlRequest::LookupJob {
        jid: jid.clone(),
        wait: true,
    });
    let mut held = Vec::new();
    for uid in 60000..60009 {
        held.push(users.hold(uid, 40, &lookup).await);
    }
    held.push(users.hold(60009, 40, &[]).await);

    // Another user is told the master is busy (the seats are taken: this is what the attack
    // did)...
    let jid_arg = jid.to_string();
    eventually(
        "another user to be told the master is busy",
        Duration::from_secs(20),
        || async {
            let out = users.brine_run(60010, &["jobs.lookup", &jid_arg]).await;
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            (out.status.code() == Some(69) && stderr.contains("busy")).then_some(())
        },
    )
    .await;
    // ... while root is served at once, keys and jobs alike.
    let keys = bounded(
        "root's brine-key list while other users hold their seats",
        Duration::from_secs(5),
        fleet.cli(&fleet.bins.brine_key, &["list", "--out", "json"]),
    )
    .await;
    assert_eq!(keys.code, 0, "{keys:?}");
    bounded(
        "root's test.ping while other users hold their seats",
        Duration::from_secs(5),
        fleet.ping(&["web1"]),
    )
    .await;

    for holder in held {
        holder.stop().await;
    }
    // And the other users are served again once the attackers are gone: a connection that
    // hangs up gives its seat back at once, not when the job it waited on ends.
    eventually(
        "another user to be served again",
        Duration::from_secs(20),
        || async {
            let out = users.brine_run(60010, &["jobs.lookup", &jid_arg]).await;
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            (out.status.code() != Some(69) && !stderr.contains("busy")).then_some(())
        },
    )
    .await;
}
