//! The minion's SUB side: receives the master's publications.
//!
//! The task connects (retrying until the master is there, whatever the start order),
//! subscribes to what is for every minion and to what is for this one (the two topics of
//! `brine_proto::msg`), and forwards each publication's envelope to the main loop, which checks
//! the signature before anything else. When told to (the main loop saw
//! no tick for three intervals: a half-open connection the zeromq crate cannot detect), or when
//! the socket fails, it drops the socket and connects anew.

use std::sync::Arc;
use std::time::Duration;

use brine_proto::msg::{topic_of, TOPIC_EVERYONE};
use brine_proto::MinionId;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use zeromq::{Socket, SocketOptions, SocketRecv, SubSocket};

/// What the SUB task tells the main loop.
#[derive(Debug)]
pub enum SubEvent {
    /// A new socket is connected and subscribed.
    Connected,
    /// One PUB message's envelope, unverified.
    Publication(Vec<u8>),
}

pub async fn run(
    id: MinionId,
    endpoint: String,
    connect_timeout: Duration,
    retry_max: Duration,
    events: mpsc::Sender<SubEvent>,
    rebuild: Arc<Notify>,
    stop: CancellationToken,
) {
    loop {
        let Some(mut socket) = connect(&id, &endpoint, connect_timeout, retry_max, &stop).await
        else {
            return;
        };
        if events.send(SubEvent::Connected).await.is_err() {
            return;
        }
        loop {
            let received = tokio::select! {
                _ = stop.cancelled() => return,
                _ = rebuild.notified() => {
                    info!(master = %endpoint, "rebuilding the subscription");
                    break;
                }
                received = socket.recv() => received,
            };
            match received {
                Ok(message) => {
                    // A topic, then the envelope.
                    let Ok([_topic, envelope]) = <[_; 2]>::try_from(message.into_vec()) else {
                        debug!("dropped a PUB message that is not a topic and an envelope");
                        continue;
                    };
                    if events
                        .send(SubEvent::Publication(envelope.to_vec()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Err(err) => {
                    debug!(cause = %err, "subscription failed; reconnecting");
                    break;
                }
            }
        }
    }
}

/// Connects a new subscribed socket, retrying with a capped, jittered backoff; None when
/// stopped.
async fn connect(
    id: &MinionId,
    endpoint: &str,
    connect_timeout: Duration,
    retry_max: Duration,
    stop: &CancellationToken,
) -> Option<SubSocket> {
    let mut attempts = 0u32;
    loop {
        let mut options = SocketOptions::default();
        options.connect_timeout(connect_timeout);
        let mut socket = SubSocket::with_options(options);
        let connected = tokio::select! {
            _ = stop.cancelled() => return None,
            connected = async {
                for topic in [TOPIC_EVERYONE.to_vec(), topic_of(id)] {
                    let topic = String::from_utf8(topic).expect("topics are ASCII");
                    socket.subscribe(&topic).await?;
                }
                socket.connect(endpoint).await
            } => connected,
        };
        match connected {
            Ok(()) => return Some(socket),
            Err(err) => {
                attempts += 1;
                if attempts == 1 || attempts.is_power_of_two() {
                    warn!(master = %endpoint, cause = %err, attempts, "cannot subscribe to the master; retrying");
                }
                tokio::select! {
                    _ = stop.cancelled() => return None,
                    _ = tokio::time::sleep(crate::backoff::jittered(attempts, retry_max)) => {}
                }
            }
        }
    }
}
