//! The PUB side: one task owns the PUB socket and sends, in order, every publication handed to
//! it and a heartbeat tick every `tick_interval`.
//!
//! Every publication is sealed with the current group key (so only accepted minions can read
//! it) and signed with the master's Ed25519 key; the signed header carries the group key's
//! epoch, the expiry and the jid in the clear, so a minion can refuse a stale, forged or
//! already executed job before it decrypts anything.
//!
//! PUB never waits for subscribers and drops what a slow or absent one misses; nothing relies
//! on a publication arriving (minions catch up over REQ), so a failed send is only logged.
//!
//! The loop beats a watchdog heartbeat on every turn, and turns when idle too; the socket's
//! threads beat their own (see `socket_thread`).

use std::sync::Arc;

use brine_proto::codec::BodyKind;
use brine_proto::msg::{PublicationHeader, SignedPublication, Tick, PUBLICATION_AAD};
use brine_proto::{encode, now_ms, Envelope, Publication};
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
    mut publications: mpsc::Receiver<Publication>,
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
        let publication = tokio::select! {
            _ = cancel.cancelled() => break,
            // The watchdog must see an idle loop turn (tick_interval may be longer).
            _ = turn.tick() => continue,
            Some(p) = publications.recv() => p,
            _ = ticks.tick() => {
                seq += 1;
                Publication::Tick(Tick {
                    seq,
                    master_time_ms: now_ms(),
                    tick_interval_ms: tick_interval.as_millis() as u64,
                })
            }
        };
        if let Publication::Job(job) = &publication {
            debug!(jid = %job.jid, fun = %job.fun, "publishing");
            // Blocks this loop as a lock held inside the zeromq crate would (watchdog tests).
            fail::fail_point!("master-pub-stall");
        }
        let message = ZmqMessage::from(seal(&shared, &publication));
        if let Err(err) = socket.send(message).await {
            warn!(cause = %err, "publish failed");
        }
    }
    drop(socket);
    for thread in threads {
        thread.stop().await;
    }
}

/// Seals `publication` with the group key and signs it: the bytes of one PUB message.
pub fn seal(shared: &Shared, publication: &Publication) -> Vec<u8> {
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
