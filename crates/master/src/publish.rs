//! The PUB side: one task owns the PUB socket and sends, in order, every job handed to it and
//! a heartbeat tick every `tick_interval`.
//!
//! Every publication is sealed with the current group key (so only accepted minions can read
//! it) and signed with the master's Ed25519 key; the signed header carries the group key's
//! epoch, the expiry, the jid and (for a job of up to `MAX_LISTED_RECIPIENTS` minions) the ids
//! of the minions the master expects, in the clear, so a minion can refuse a stale, forged,
//! already executed or someone else's job before it decrypts anything. A job for up to
//! `MAX_TOPIC_RECIPIENTS` minions is sent once per minion under that minion's topic: the PUB
//! socket delivers it to that minion alone, so a large job for one minion costs the others
//! nothing. Every other publication goes once, under the topic every minion hears.
//!
//! PUB never waits for subscribers and drops what a slow or absent one misses; nothing relies
//! on a publication arriving (minions catch up over REQ), so a failed send is only logged.
//!
//! The loop beats a watchdog heartbeat on every turn, and turns when idle too; the socket's
//! threads beat their own (see `socket_thread`).

use std::sync::Arc;

use brine_proto::codec::BodyKind;
use brine_proto::limits::{MAX_LISTED_RECIPIENTS, MAX_TOPIC_RECIPIENTS};
use brine_proto::msg::{
    topic_of, PublicationHeader, Recipients, SignedPublication, Tick, PUBLICATION_AAD,
    TOPIC_EVERYONE,
};
use brine_proto::{encode, now_ms, Envelope, Job, MinionId, Publication};
use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::{debug, warn};
use zeromq::{PubSocket, SocketSend, ZmqMessage};

use crate::socket_thread::SocketThread;
use crate::Shared;

/// Publishes until the master is cancelled; then closes the socket and stops its threads
/// (its fan-out task and its connection tasks run there, see `socket_thread`).
pub async fn run(
    shared: Arc<Shared>,
    mut socket: PubSocket,
    threads: [SocketThread; 2],
    mut jobs: mpsc::Receiver<Outgoing>,
) {
    let heartbeat = shared.watchdog.heartbeat("the publish loop");
    let mut turn = heartbeat.ticker();
    let tick_interval = shared.config.tick_interval;
    let cancel = shared.cancel.clone();
    let mut ticks = tokio::time::interval(tick_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq = 0u64;
    loop {
        heartbeat.beat();
        let (publication, expected) = tokio::select! {
            _ = cancel.cancelled() => break,
            // The watchdog must see an idle loop turn (tick_interval may be longer).
            _ = turn.tick() => continue,
            Some(Outgoing { job, expected }) = jobs.recv() => {
                debug!(jid = %job.jid, fun = %job.fun, "publishing");
                // Blocks this loop as a lock held inside the zeromq crate would (watchdog tests).
                fail::fail_point!("master-pub-stall");
                (Publication::Job(job), Some(expected))
            }
            _ = ticks.tick() => {
                seq += 1;
                let tick = Tick {
                    seq,
                    master_time_ms: now_ms(),
                    tick_interval_ms: tick_interval.as_millis() as u64,
                };
                (Publication::Tick(tick), None)
            }
        };
        let to = expected.filter(|ids| ids.len() <= MAX_LISTED_RECIPIENTS);
        let envelope = Bytes::from(seal(&shared, &publication, to.as_deref()));
        let topics = match &to {
            Some(ids) if ids.len() <= MAX_TOPIC_RECIPIENTS => ids.iter().map(topic_of).collect(),
            _ => vec![TOPIC_EVERYONE.to_vec()],
        };
        for topic in topics {
            let message = ZmqMessage::try_from(vec![Bytes::from(topic), envelope.clone()])
                .expect("two frames");
            if let Err(err) = socket.send(message).await {
                warn!(cause = %err, "publish failed");
            }
        }
    }
    drop(socket);
    for thread in threads {
        thread.stop().await;
    }
}

/// A job to publish, and the minions the master expects to run it.
#[derive(Debug)]
pub struct Outgoing {
    pub job: Job,
    pub expected: Vec<MinionId>,
}

/// Seals `publication` with the group key and signs it, for the minions `to` (none: for every
/// minion the target matches, once the master confirms it): the envelope of one PUB message.
fn seal(shared: &Shared, publication: &Publication, to: Option<&[MinionId]>) -> Vec<u8> {
    let now = now_ms();
    let (jid, expires_ms) = match publication {
        Publication::Job(job) => (Some(job.jid.clone()), job.expires_ms),
        Publication::Tick(tick) => (None, now + 3 * tick.tick_interval_ms),
    };
    let group = shared.group_key();
    let (nonce, ciphertext) = group.encrypt(&encode(publication), PUBLICATION_AAD);
    let header = encode(&PublicationHeader {
        group_epoch: group.epoch(),
        jid,
        to: to.map(Recipients::of),
        expires_ms,
        master_time_ms: now,
        nonce: nonce.to_vec(),
        ciphertext,
    });
    let sig = shared.keys.sign(&header).to_vec();
    Envelope::new(
        BodyKind::Signed,
        None,
        encode(&SignedPublication { header, sig }),
    )
    .to_bytes()
}
