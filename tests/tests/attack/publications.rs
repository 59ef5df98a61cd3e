//! Publications as a network attacker and a large job see them. Before the fix, a job
//! published to `-G role:web` (the master expected web1), captured and replayed to db1 after
//! `grains.setval role web` there, ran on db1: the master refused its return and `jobs.lookup`
//! never showed it. And a job for one minion reached every minion, which received and decrypted
//! it (10 × 15 MB jobs took one that was not targeted from 10.6 to 57 MB). Now the signed header
//! lists the minions the master expects (up to 2048; past that a minion asks the master before it
//! runs a job), a job for a few minions (up to 16) goes to each under its own topic and no other
//! minion gets it, and a job is at most 1 MiB.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use brine_proto::control::{ControlError, ControlEvent};
use brine_proto::limits::MAX_JOB_BYTES;
use brine_proto::msg::{topic_of, PublicationHeader, SignedPublication, TOPIC_EVERYONE};
use brine_proto::{decode, Envelope, GrainExpr, Jid, Map, MinionId, Target};
use brine_tests::fleet::{bounded, Fleet, MinionOptions};
use brine_tests::{journal_mentions, publish_no_wait};
use bytes::Bytes;
use tokio::sync::mpsc;
use zeromq::{PubSocket, Socket, SocketRecv, SocketSend, SubSocket, ZmqMessage};

/// The jid a PUB message's signed header names, if it is a job.
fn jid_of(message: &ZmqMessage) -> Option<Jid> {
    let envelope = Envelope::from_bytes(message.get(1)?).ok()?;
    let signed: SignedPublication = decode(&envelope.body).ok()?;
    decode::<PublicationHeader>(&signed.header).ok()?.jid
}

/// A network attacker between the master's publish port and one minion: it relays every
/// publication, keeps the jobs it saw, and sends what it is told to.
struct Relay {
    port: u16,
    seen: Arc<Mutex<Vec<ZmqMessage>>>,
    inject: mpsc::Sender<ZmqMessage>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(master_publish_port: u16) -> Self {
        let mut sub = SubSocket::new();
        bounded("the relay subscribing", Duration::from_secs(10), async {
            sub.subscribe("").await.unwrap();
            sub.connect(&format!("tcp://127.0.0.1:{master_publish_port}"))
                .await
                .unwrap();
        })
        .await;
        let mut publisher = PubSocket::new();
        let endpoint = bounded(
            "the relay binding",
            Duration::from_secs(10),
            publisher.bind("tcp://127.0.0.1:0"),
        )
        .await
        .unwrap();
        let port = endpoint
            .to_string()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (inject, mut injected) = mpsc::channel::<ZmqMessage>(16);
        let kept = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    Ok(message) = sub.recv() => {
                        if jid_of(&message).is_some() {
                            kept.lock().unwrap().push(message.clone());
                        }
                        message
                    }
                    Some(message) = injected.recv() => message,
                    else => return,
                };
                let _ = publisher.send(message).await;
            }
        });
        Self {
            port,
            seen,
            inject,
            task,
        }
    }

    /// The first job publication it saw for `jid`.
    fn captured(&self, jid: &Jid) -> Option<ZmqMessage> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .find(|m| jid_of(m).as_ref() == Some(jid))
            .cloned()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn ok(fleet: &Fleet, what: &str, args: &[&str]) {
    let out = bounded(what, Duration::from_secs(30), fleet.brine(args)).await;
    assert_eq!(out.code, 0, "{what}: {out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_publication_runs_on_no_minion_the_master_did_not_expect() {
    let mut fleet = Fleet::new().await;
    fleet.start_master().await;
    fleet.add_minion("web1", MinionOptions::default()).await;
    // db1 hears the master's publications through the attacker.
    let relay = Relay::start(fleet.publish_port).await;
    let through_relay = MinionOptions {
        env: vec![("BRINE_MINION_PUBLISH_PORT".into(), relay.port.to_string())],
        ..MinionOptions::default()
    };
    fleet.add_minion("db1", through_relay).await;
    fleet.wait_connected(&["web1", "db1"]).await;
    ok(
        &fleet,
        "web1's grain",
        &["web1", "grains.setval", "role", "web"],
    )
    .await;
    ok(
        &fleet,
        "db1's grain",
        &["db1", "grains.setval", "role", "db"],
    )
    .await;

    // A job for the web servers: the master expects web1 alone. The attacker captures it.
    let jid = fleet
        .publish_control(
            Target::Grain(GrainExpr::new("role:web")),
            "test.ping",
            vec![],
            Map::new(),
            Duration::from_secs(60),
        )
        .await;
    let captured = brine_tests::fleet::eventually(
        "the relay to capture the job",
        Duration::from_secs(20),
        || async { relay.captured(&jid) },
    )
    .await;
    let (_, report) = fleet.wait_job(&jid).await;
    let ran: Vec<&str> = report.minions.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ran, ["web1"], "{report:?}");

    // db1 becomes a web server, and the attacker replays the job to it, under every topic db1
    // might hear. Each round ends with a job db1 answers, so db1 has handled the replay.
    ok(
        &fleet,
        "db1's new grain",
        &["db1", "grains.setval", "role", "web"],
    )
    .await;
    let db1 = MinionId::new("db1").unwrap();
    for _ in 0..3 {
        for topic in [topic_of(&db1), TOPIC_EVERYONE.to_vec(), b"".to_vec()] {
            let mut frames = captured.clone().into_vec();
            frames[0] = Bytes::from(topic);
            let replay = ZmqMessage::try_from(frames).unwrap();
            bounded(
                "injecting",
                Duration::from_secs(5),
                relay.inject.send(replay),
            )
            .await
            .unwrap();
        }
        bounded(
            "a ping of db1",
            Duration::from_secs(30),
            fleet.ping(&["db1"]),
        )
        .await;
    }
    assert!(
        !journal_mentions(&fleet.minion_state_dir("db1"), jid.as_str()),
        "db1 ran the replayed job {jid}"
    );
    let report = fleet.lookup(&jid).await;
    assert!(
        report.minions.iter().all(|m| m.id.as_str() == "web1"),
        "{report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_job_for_one_minion_costs_the_others_nothing_and_is_bounded() {
    let mut fleet = Fleet::new().await;
    fleet.start_master().await;
    fleet.add_minion("web1", MinionOptions::default()).await;
    let proxied = MinionOptions {
        proxied: true,
        ..MinionOptions::default()
    };
    fleet.add_minion("db1", proxied).await;
    fleet.wait_connected(&["web1", "db1"]).await;

    // A job past the bound is refused, and says why.
    let huge = "x".repeat(MAX_JOB_BYTES + 1);
    let request = publish_no_wait(
        Target::Glob("web1".into()),
        "test.arg",
        vec![huge.into()],
        Map::new(),
        Duration::from_secs(10),
    );
    match fleet.control(request).await.as_slice() {
        [ControlEvent::Error { code, message }] => {
            assert_eq!(*code, ControlError::BadRequest);
            assert!(message.contains("bytes"), "{message}");
        }
        other => panic!("a job past the bound was not refused: {other:?}"),
    }

    // Ten jobs of 900 KB for web1: db1 receives none of their bytes.
    let before = fleet.proxy("db1").publish.delivered();
    let big = "x".repeat(900 * 1024);
    for _ in 0..10 {
        let jid = fleet
            .publish_control(
                Target::Glob("web1".into()),
                "test.arg",
                vec![big.clone().into()],
                Map::new(),
                Duration::from_secs(30),
            )
            .await;
        let (_, report) = fleet.wait_job(&jid).await;
        assert_eq!(report.minions.len(), 1, "{report:?}");
    }
    // A job for db1 itself comes after them on its connection: what they sent db1 has arrived.
    bounded(
        "a ping of db1",
        Duration::from_secs(30),
        fleet.ping(&["db1"]),
    )
    .await;
    let delivered = fleet.proxy("db1").publish.delivered() - before;
    eprintln!(
        "db1 received {delivered} bytes on the publish port during 10 jobs of 900 KB for web1"
    );
    assert!(
        delivered < 512 * 1024,
        "db1 received {delivered} bytes of jobs for web1"
    );
}
