//! The PUB side: one task owns the PUB socket and sends, in order, every publication handed to
//! it and a heartbeat tick every `tick_interval`.
//!
//! PUB never waits for subscribers and drops what a slow or absent one misses; nothing relies
//! on a publication arriving (minions catch up over REQ), so a failed send is only logged.

use std::time::Duration;

use brine_proto::msg::Tick;
use brine_proto::{encode_envelope, now_ms, Publication};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use zeromq::{PubSocket, SocketSend, ZmqMessage};

pub async fn run(
    mut socket: PubSocket,
    mut publications: mpsc::Receiver<Publication>,
    tick_interval: Duration,
    cancel: CancellationToken,
) {
    let mut ticks = tokio::time::interval(tick_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq = 0u64;
    loop {
        let publication = tokio::select! {
            _ = cancel.cancelled() => break,
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
        }
        let message = ZmqMessage::from(encode_envelope(&publication));
        if let Err(err) = socket.send(message).await {
            warn!(cause = %err, "publish failed");
        }
    }
}
